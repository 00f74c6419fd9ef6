"""Benchmark: `build-dataset` end to end, sandboxed and not, against the build before the sandbox and a naive
single-process tracer over the same programs.

    .venv/bin/python benchmarks/build_speed.py                     # n = 600 and 20,000
    .venv/bin/python benchmarks/build_speed.py --sizes 600,5000    # quicker

For each n, in one run on one machine:
- the pipeline: the real `build-dataset --n N` command in a subprocess (generation, normalization and
  deduplication, sandboxed tracing, Arrow writing, split, save) with `--sandbox bwrap` (when bwrap works here)
  and `--sandbox none`, its wall time, and the peak RSS of its whole process tree (the command and its workers,
  sampled every 20 ms);
- before: the same command from `--baseline-ref` (default: the last commit before the sandbox, which traced
  many programs per worker process with no sandbox), run from a copy of that commit's `dataset_builder`;
- untrusted programs: the kept programs again as a `--programs` file, where every program gets its own process
  (bwrap), against the same file built by the baseline;
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
BASELINE_REF = "fe46024"  # before the sandbox: batches of programs per worker interpreter, pickle, no bwrap


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


def run_measured(cmd: list[str], cwd: Path | None = None) -> tuple[float, int, int, str]:
    """Run `cmd`; return (wall seconds, peak RSS and peak anonymous RSS of its process tree in MiB, stdout)."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd)
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


def baseline_copy(ref: str, tmp: Path) -> Path:
    """The `dataset_builder` package of `ref`, extracted next to nothing else (its workers import it from there)."""
    folder = tmp / f"baseline-{ref}"
    folder.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(HERE.parent), "archive", ref, "dataset_builder"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def build_command(args: list[str], baseline: Path | None = None) -> list[str]:
    if baseline is None:
        return [str(BIN / "build-dataset"), *args]
    code = f"import sys; sys.path.insert(0, {str(baseline)!r}); from dataset_builder.cli import main; main()"
    return [sys.executable, "-c", code, *args]


def bench(n: int, workers: int, tmp: Path, baseline: Path, sandboxes: list[str]) -> dict:
    common = ["--overwrite", "--quiet", "--workers", str(workers)]
    runs = {}
    for name, extra, base in [("before", [], baseline)] + [(s, ["--sandbox", s], None) for s in sandboxes]:
        out = tmp / f"ds-{n}-{name}"
        # cwd: the baseline's workers import the package from their working directory (`python -c`)
        wall, peak, _, _ = run_measured(
            build_command(["--n", str(n), "--output", str(out), *common, *extra], base), cwd=baseline
        )
        runs[name] = {
            "s": round(wall, 2),
            "per_s": round(n / wall, 1),
            "peak_rss_mib": peak,
            "worker_s": json.loads((out / "report.json").read_text())["timings"]["worker_s"],
        }
    out = tmp / f"ds-{n}-{sandboxes[0]}"
    report = json.loads((out / "report.json").read_text())

    from datasets import load_from_disk

    data = load_from_disk(str(out))
    codes_file = tmp / f"codes-{n}.jsonl"
    programs_file = tmp / f"programs-{n}.jsonl"
    with open(codes_file, "w") as codes, open(programs_file, "w") as programs:
        for split in data.values():
            for program_id, code in zip(split["id"], split["code"]):
                codes.write(json.dumps(code) + "\n")
                programs.write(json.dumps({"id": program_id, "code": code}) + "\n")
    for name, extra, base in [
        ("file_before", [], baseline),
        ("file_" + sandboxes[0], ["--sandbox", sandboxes[0]], None),
    ]:
        wall, _, _, _ = run_measured(
            build_command(
                ["--programs", str(programs_file), "--output", str(tmp / f"file-{n}-{name}"), *common, *extra], base
            ),
            cwd=baseline,
        )
        runs[name] = {"s": round(wall, 2), "per_s": round(n / wall, 1)}
    _, naive_peak_mib, _, naive_out = run_measured([sys.executable, __file__, "--naive", str(codes_file)])
    naive = json.loads(naive_out)
    return {
        "n": n,
        "runs": runs,
        "naive_s": round(naive["seconds"], 2),
        "naive_per_s": round(naive["programs"] / naive["seconds"], 1),
        "naive_peak_rss_mib": naive_peak_mib,
        "traced_programs": report["timings"]["traced_programs"],
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
    parser.add_argument("--sizes", default="600,20000")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--baseline-ref", default=BASELINE_REF, help="git commit to compare with")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--naive", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.naive:
        return naive_main(args.naive)

    sys.path.insert(0, str(HERE.parent))
    from dataset_builder.sandbox import probe_bwrap

    works, detail = probe_bwrap()
    sandboxes = ["bwrap", "none"] if works else ["none"]
    if not works:
        print(f"bwrap is not usable here ({detail}): measuring --sandbox none only", file=sys.stderr)
    results = []
    with tempfile.TemporaryDirectory(prefix="build-bench-") as tmp:
        baseline = baseline_copy(args.baseline_ref, Path(tmp))
        for n in (int(s) for s in args.sizes.split(",")):
            results.append(bench(n, args.workers, Path(tmp), baseline, sandboxes))
            print(f"n={n}: done", file=sys.stderr)
    figures = {
        "cores": os.cpu_count(),
        "workers": args.workers,
        "baseline_ref": args.baseline_ref,
        "help_s": round(help_time(), 3),
        "sizes": results,
    }

    print(
        f"\nbuild-dataset --help: {figures['help_s']:.3f} s (median of 5)   cores: {figures['cores']}   "
        f"before = {args.baseline_ref}"
    )
    names = ["before", *sandboxes]
    header = " | ".join(
        [
            f"{'n':>7}",
            *(f"{name + ' prog/s':>14}" for name in names),
            f"{'cost (' + sandboxes[0] + ')':>12}",
            f"{'naive prog/s':>12}",
            f"{'peak RSS':>17}",
        ]
    )
    print("Generated programs (--n N):")
    print(header)
    print("-" * len(header))
    for r in results:
        runs = r["runs"]
        cost = 1 - runs[sandboxes[0]]["per_s"] / runs["before"]["per_s"]
        rss = "/".join(str(runs[name]["peak_rss_mib"]) for name in names)
        print(
            " | ".join(
                [
                    f"{r['n']:>7}",
                    *(f"{runs[name]['per_s']:>14}" for name in names),
                    f"{cost:>12.0%}",
                    f"{r['naive_per_s']:>12}",
                    f"{rss + ' MiB':>17}",
                ]
            )
        )
    print("\nThe same programs from a --programs file (one process per program with the sandbox):")
    for r in results:
        runs = r["runs"]
        before, after = runs["file_before"]["per_s"], runs["file_" + sandboxes[0]]["per_s"]
        print(
            f"{r['n']:>7} | before {before:>7} prog/s | {sandboxes[0]} {after:>7} prog/s | cost {1 - after / before:.0%}"
        )
    print("\nWhere the time goes (worker seconds summed over workers; parent wall seconds):")
    for r in results:
        for name in names:
            stages = ", ".join(f"{k} {v}" for k, v in r["runs"][name]["worker_s"].items())
            print(f"{r['n']:>7} {name:>7}: workers: {stages}")
        print(
            f"{r['n']:>7} parent: trace phase {r['parent_trace_phase_s']}, write {r['write_s']} | traced "
            f"{r['traced_programs']} for {r['n']} kept | data {r['data_mib']} MiB"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
