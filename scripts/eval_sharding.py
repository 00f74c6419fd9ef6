#!/usr/bin/env python3
"""Evaluation with several processes: sharded across them, or once on the main process? Measured, not assumed.

    .venv/bin/python scripts/eval_sharding.py            # from the repository root; about a minute on 2 cores

Builds a small dataset, then runs `train-and-push` on the `tiny` model (1 GRPO step, the whole test split
evaluated, base and adapter, a fixed token budget: --max-new-tokens, 256 by default) three ways and prints the
evaluation wall time of each:

- 1 process with 1 thread: what "evaluate once on the main process" costs in a 2-process run (the main process
  evaluates everything while the other waits at a barrier);
- 2 processes (torchrun, gloo), 1 thread each, the test split sharded between them (what `train-and-push` does);
- 1 process with 2 threads: the whole machine on one evaluation, for reference.

Figures print; nothing is asserted. The record of each run is in OUTPUT/<name>/adapter/training_run.json.
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
    parser.add_argument("--work", default="outputs/eval-sharding", help="where the dataset and the runs go")
    parser.add_argument("--n", type=int, default=150, help="build-dataset --n (about a sixth are test programs)")
    parser.add_argument(
        "--max-new-tokens",
        type=int,
        default=256,
        help="tiny never ends a completion, so every one takes exactly this many tokens",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs of each way (the median is printed)")
    args = parser.parse_args(argv)
    work = Path(args.work)
    data = work / "data"
    subprocess.run(
        [
            str(BIN / "build-dataset"),
            "--n",
            str(args.n),
            "--seed",
            "1",
            "--max-steps",
            "10",
            "--output",
            str(data),
            "--overwrite",
            "--quiet",
        ],
        check=True,
        cwd=ROOT,
    )
    common = [
        "--dataset",
        str(data),
        "--model",
        "tiny",
        "--max-steps",
        "1",
        "--no-push",
        "--eval-max-new-tokens",
        str(args.max_new_tokens),
        "--eval-batch-size",
        "4",
    ]
    runs = {
        "1 process, 1 thread (= once on the main process)": ([str(BIN / "train-and-push")], "1"),
        "2 processes, 1 thread each, sharded": (
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--standalone",
                "--nproc_per_node",
                "2",
                str(BIN / "train-and-push"),
            ],
            "1",
        ),
        "1 process, 2 threads": ([str(BIN / "train-and-push")], "2"),
    }
    figures = {name: {"evaluate_s": [], "wall_s": []} for name in runs}
    for repeat in range(args.repeat):  # interleaved, so a busy spell on a shared machine hits every way
        for i, (name, (launcher, threads)) in enumerate(runs.items()):
            output = work / f"run{i}"
            env = {**os.environ, "OMP_NUM_THREADS": threads, "HF_HUB_OFFLINE": "1"}
            started = time.perf_counter()
            subprocess.run(
                launcher + common + ["--output-dir", str(output)],
                check=True,
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            run = json.loads((output / "adapter" / "training_run.json").read_text())
            figures[name]["evaluate_s"].append(run["timings"]["evaluate"])
            figures[name]["wall_s"].append(round(time.perf_counter() - started, 1))
            figures[name]["programs"] = run["evaluation"]["n"]
    for name, fig in figures.items():
        print(
            f"{name}: evaluation {statistics.median(fig['evaluate_s']):.1f} s (median of {fig['evaluate_s']}) "
            f"for {fig['programs']} programs x 2 models x {args.max_new_tokens} tokens; whole command "
            f"{statistics.median(fig['wall_s']):.1f} s",
            flush=True,
        )
    (work / "eval_sharding.json").write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
