"""Benchmark: `build-dataset` end to end against a naive single-process tracer over the same programs.

    .venv/bin/python benchmarks/build_speed.py                     # n = 600, 20,000 and 100,000
    .venv/bin/python benchmarks/build_speed.py --sizes 600,5000    # quicker

For each n, in one run on one machine:
- the pipeline: the real `build-dataset --n N` command in a subprocess (generation, normalization and
  deduplication, isolated tracing, Arrow writing, split, save), its wall time, and the peak RSS of its whole
  process tree (the command and its workers, sampled every 20 ms);
- the baseline: `naive_tracer.naive_trace` over exactly the programs the pipeline kept, in one process with
  no isolation, timing only the tracing loop, and its peak RSS;
- where the pipeline's time goes: the workers' seconds per stage (from report.json) and the parent's
  trace phase and write.
Also `build-dataset --help`, median of 5 runs. Nothing here is asserted: it prints figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent


def _rss_kib(pid: int) -> tuple[int, int]:
    """(resident KiB, of which anonymous KiB): the rest is file pages, such as memory-mapped Arrow data."""
    rss = anon = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("RssAnon:"):
                    anon = int(line.split()[1])
    except OSError:
        pass
    return rss, anon


def _tree(root: int) -> list[int]:
    """`root` and all its descendants, from /proc (workers live in their own sessions but stay children)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return found


def run_measured(cmd: list[str]) -> tuple[float, int, int, str]:
    """Run `cmd`; return (wall seconds, peak RSS and peak anonymous RSS of its process tree in MiB, stdout)."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = peak_anon = 0
    while proc.poll() is None:
        sizes = [_rss_kib(pid) for pid in _tree(proc.pid)]
        peak = max(peak, sum(rss for rss, _ in sizes))
        peak_anon = max(peak_anon, sum(anon for _, anon in sizes))
        time.sleep(0.02)
    out, err = proc.communicate()
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err}")
    return wall, peak // 1024, peak_anon // 1024, out


def naive_main(codes_file: str) -> None:
    """Subprocess entry: trace every program of a JSONL file with the naive tracer; print the loop's time."""
    sys.path.insert(0, str(HERE))
    from naive_tracer import naive_trace

    codes = [json.loads(line) for line in open(codes_file)]
    started = time.perf_counter()
    for code in codes:
        naive_trace(code)
    print(json.dumps({"seconds": time.perf_counter() - started, "programs": len(codes)}))


def bench(n: int, workers: int, tmp: Path) -> dict:
    out = tmp / f"ds-{n}"
    cmd = [str(BIN / "build-dataset"), "--n", str(n), "--output", str(out), "--overwrite", "--quiet",
           "--workers", str(workers)]
    wall, peak_mib, peak_anon_mib, _ = run_measured(cmd)
    report = json.loads((out / "report.json").read_text())

    from datasets import load_from_disk

    data = load_from_disk(str(out))
    codes_file = tmp / f"codes-{n}.jsonl"
    with open(codes_file, "w") as f:
        for split in data.values():
            for code in split["code"]:
                f.write(json.dumps(code) + "\n")
    _, naive_peak_mib, _, naive_out = run_measured([sys.executable, __file__, "--naive", str(codes_file)])
    naive = json.loads(naive_out)
    return {
        "n": n,
        "pipeline_s": round(wall, 2),
        "pipeline_per_s": round(n / wall, 1),
        "naive_s": round(naive["seconds"], 2),
        "naive_per_s": round(naive["programs"] / naive["seconds"], 1),
        "ratio": round((n / wall) / (naive["programs"] / naive["seconds"]), 3),
        "peak_rss_mib": peak_mib,
        "peak_anon_rss_mib": peak_anon_mib,
        "naive_peak_rss_mib": naive_peak_mib,
        "traced_programs": report["timings"]["traced_programs"],
        "worker_s": report["timings"]["worker_s"],
        "parent_trace_phase_s": report["timings"]["trace_phase_s"],
        "write_s": report["timings"]["write_s"],
        "data_mib": round(sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 2**20, 1),
    }


def help_time() -> float:
    times = []
    for _ in range(5):
        started = time.perf_counter()
        subprocess.run([str(BIN / "build-dataset"), "--help"], capture_output=True, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="600,20000,100000")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--naive", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.naive:
        return naive_main(args.naive)

    results = []
    with tempfile.TemporaryDirectory(prefix="build-bench-") as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            results.append(bench(n, args.workers, Path(tmp)))
            print(f"n={n}: done", file=sys.stderr)
    figures = {"cores": os.cpu_count(), "workers": args.workers, "help_s": round(help_time(), 3), "sizes": results}

    print(f"\nbuild-dataset --help: {figures['help_s']:.3f} s (median of 5)   cores: {figures['cores']}")
    header = (f"{'n':>8} | {'pipeline s':>10} | {'prog/s':>7} | {'naive s':>8} | {'prog/s':>7} | {'ratio':>5} | "
              f"{'peak RSS (heap)':>17} | {'naive RSS':>9} | {'data':>8}")
    print(header)
    print("-" * len(header))
    for r in results:
        print(f"{r['n']:>8} | {r['pipeline_s']:>10} | {r['pipeline_per_s']:>7} | {r['naive_s']:>8} | "
              f"{r['naive_per_s']:>7} | {r['ratio']:>5} | {r['peak_rss_mib']:>4} ({r['peak_anon_rss_mib']:>4}) MiB | "
              f"{r['naive_peak_rss_mib']:>5} MiB | {r['data_mib']:>5} MiB")
    print("peak RSS: the whole process tree (command and workers); heap: its anonymous part, without the "
          "memory-mapped Arrow data")
    print("\nWhere the pipeline's time goes (worker seconds summed over workers; parent wall seconds):")
    for r in results:
        stages = ", ".join(f"{k} {v}" for k, v in r["worker_s"].items())
        print(f"{r['n']:>8}: workers: {stages} | parent: trace phase {r['parent_trace_phase_s']}, "
              f"write {r['write_s']} | traced {r['traced_programs']} for {r['n']} kept")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
