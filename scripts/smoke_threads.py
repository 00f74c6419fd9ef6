#!/usr/bin/env python3
"""The CPU smoke test's wall time with 1 torch thread and with one per core, interleaved. Prints figures.

    .venv/bin/python scripts/smoke_threads.py            # from the repository root; a few minutes on 2 cores

Runs docs/training.md's smoke test (`train-and-push --model tiny --max-steps 2 --no-push` on a 600-program dataset,
whole test split evaluated) `--repeat` times with each `--cpu-threads` value, alternating, and prints each wall
time with the median. On a machine shared with other jobs, threads that busy-wait for a core another job holds
make every step slower; one thread per process is the steady choice there.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="data/execution-traces")
    parser.add_argument("--work", default="outputs/smoke-threads")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", default=f"1,{os.cpu_count() or 1}")
    args = parser.parse_args(argv)
    if not Path(args.dataset).is_dir():
        subprocess.run(
            [str(BIN / "build-dataset"), "--n", "600", "--output", args.dataset, "--quiet"], check=True, cwd=ROOT
        )
    counts = [int(t) for t in args.threads.split(",")]
    walls: dict[int, list[float]] = {t: [] for t in counts}
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"} | {"HF_HUB_OFFLINE": "1"}
    for _ in range(args.repeat):
        for threads in counts:
            output = Path(args.work) / f"threads-{threads}"
            started = time.perf_counter()
            subprocess.run(
                [
                    str(BIN / "train-and-push"),
                    "--dataset",
                    args.dataset,
                    "--model",
                    "tiny",
                    "--max-steps",
                    "2",
                    "--no-push",
                    "--max-completion-length",
                    "128",
                    "--eval-max-new-tokens",
                    "128",
                    "--output-dir",
                    str(output),
                    "--cpu-threads",
                    str(threads),
                ],
                check=True,
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            walls[threads].append(round(time.perf_counter() - started, 1))
            record = json.loads((output / "adapter" / "training_run.json").read_text())
            print(
                f"--cpu-threads {threads}: {walls[threads][-1]} s (startup {record['timings']['startup']} s, "
                f"GRPO {record['timings']['grpo']} s, evaluation {record['timings']['evaluate']} s)",
                flush=True,
            )
    for threads, values in walls.items():
        print(
            f"--cpu-threads {threads}: median {statistics.median(values)} s, min {min(values)} s, max {max(values)} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
