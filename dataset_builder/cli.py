"""`build-dataset`: options in, one call of `build.build_dataset`, a progress bar and a summary out.

Heavy libraries (datasets, pyarrow) are imported inside the command, so `--help` answers at once.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from .console import user_errors

DEFAULT_OUTPUT = "data/execution-traces"
ESTIMATE_FROM = 50_000  # generated programs; below this the bar's own time left comes soon enough
# generated programs kept per second and worker in the bubblewrap sandbox: benchmarks/build_speed.py measured 823/s
# on 2 workers (n = 20,000, benchmarks/build_speed_results.json); a --programs build also traces each one twice
KEPT_PER_SECOND_PER_WORKER = 410


def _parse_shard(value: str) -> tuple[int, int]:
    try:
        index, count = (int(part) for part in value.split("/"))
    except ValueError:
        raise click.BadParameter("give i/k, for instance 0/4", param_hint="--shard") from None
    if not 0 <= index < count:
        raise click.BadParameter("i/k needs 0 <= i < k", param_hint="--shard")
    return index, count


def _parse_test_size(ctx, param, value: str) -> float:
    try:
        size = float(value)
    except ValueError:
        raise click.BadParameter("give a fraction such as 0.2 or a number of programs such as 100") from None
    if size < 0 or (size >= 1 and size != int(size)):
        raise click.BadParameter("give a fraction below 1 or a whole number of programs")
    return size


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(package_name="execution-world-model")  # the distribution in pyproject.toml
@click.option("--n", "n", type=click.IntRange(min=1), default=600, help="Number of programs to keep (generated mode).")
@click.option("--seed", type=int, default=0, help="Generator and split seed: the same seed gives the same dataset.")
@click.option(
    "--programs",
    "programs_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help='Trace your own programs instead: a JSONL file, one {"id": ..., "code": ...} per line ("id" optional).',
)
@click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_OUTPUT,
    help="Folder to save the DatasetDict (train/test) and report.json in.",
)
@click.option("--overwrite", is_flag=True, help="Replace --output if it already exists.")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=os.cpu_count() or 1,
    show_default="number of cores",
    help="Worker processes tracing in parallel.",
)
@click.option("--timeout", type=click.FloatRange(min=0.1), default=5.0, help="Wall-clock seconds per program.")
@click.option(
    "--memory-mb",
    type=click.IntRange(min=128),
    default=1024,
    help="Address-space limit of each program's process; where cgroups can be created, a worker's whole "
    "process tree also gets this much memory (+256 MiB for the worker itself).",
)
@click.option("--max-steps", type=click.IntRange(min=1), default=1000, help="Programs with longer traces are dropped.")
@click.option(
    "--max-value-chars",
    type=click.IntRange(min=8),
    default=160,
    help="Longer value reprs are truncated, with a visible marker.",
)
@click.option(
    "--max-output-chars", type=click.IntRange(min=0), default=8192, help="Programs printing more are dropped."
)
@click.option(
    "--test-size",
    default="0.1667",
    callback=_parse_test_size,
    show_default="1/6, about 100 of 600",
    help="Test split: a fraction below 1, or a number of programs. Split by program structure.",
)
@click.option("--min-lines", type=click.IntRange(min=1), default=None, show_default="3 generated, none for --programs")
@click.option("--max-lines", type=click.IntRange(min=1), default=None, show_default="20 generated, none for --programs")
@click.option(
    "--shard",
    default="0/1",
    callback=lambda ctx, param, value: _parse_shard(value),
    help="Build part i of k (0-based) of the seed's program stream: shards never overlap; join them "
    "with merge-datasets.",
)
@click.option(
    "--sandbox",
    type=click.Choice(["auto", "bwrap", "none"]),
    default="auto",
    help="Run the traced programs inside bubblewrap (bwrap: no network, no view of your files, nothing "
    "outside to signal). auto: bwrap when it works here; without it, generated programs run "
    "unsandboxed with a note and --programs is refused. none: no sandbox (trusted code only).",
)
@click.option(
    "--drill-share",
    type=click.FloatRange(min=0, max=1, max_open=True),
    default=0.0,
    help="Share of the train split made of drills: extra 3-8-line programs of what small models most "
    "often get wrong (a branch after a comparison, arithmetic, slices, string and list methods, dict "
    "updates), spread evenly through it. The test split stays as without drills; no drill shares a "
    "structure with a test program.",
)
@click.option(
    "--drill-kind",
    type=click.Choice(["snippets", "calls"]),
    default="snippets",
    show_default=True,
    help="What the drills are. snippets: the short programs above. calls: one function called with literal "
    "arguments, in the shape of CRUXEval's items (a loop over a string or list with a test and an "
    "accumulator, string, list and dict methods, an early return), 6-40 trace steps.",
)
@click.option(
    "--drill-max-steps",
    type=click.IntRange(min=1),
    default=None,
    show_default="--max-steps",
    help="Drills with longer traces are dropped (calls run longer than the main programs).",
)
@click.option("--quiet", is_flag=True, help="No progress bar or summary.")
@click.pass_context
def main(ctx, quiet: bool, **options) -> None:
    """Build a dataset of short Python programs with their real line-by-line execution traces.

    Generates N deduplicated 3-20-line programs from composable templates (or reads yours with
    --programs), traces each in its own process inside a sandbox with a timeout and resource limits, splits
    train/test so that no program structure is in both, and saves it with `datasets` at --output.
    """
    from .build import BuildError, BuildOptions, build_dataset

    if options["programs_file"] is not None and ctx.get_parameter_source("n") == click.core.ParameterSource.COMMANDLINE:
        raise click.UsageError("Use either --n (generated programs) or --programs (your own), not both.")
    build_options = BuildOptions(**options)
    with user_errors(BuildError, interrupted="Interrupted: the build stopped and nothing was written."):
        report = build_dataset(build_options) if quiet else _build_with_progress(build_options)
    for note in report.notes:
        click.echo(note, err=True)
    if not quiet:
        _print_summary(report)


def _build_with_progress(options):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from .build import build_dataset

    label = "Tracing until kept" if options.programs_file is None else "Tracing"
    if options.programs_file is None and (guess := estimate(options.n, options.workers)):
        click.echo(guess)
    rate = TextColumn("{task.fields[rate]}")  # programs per second, once rich has measured a speed
    with Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        rate,
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        transient=True,
    ) as bar:
        task = bar.add_task("trace", total=None, rate="")

        def show(done, total):
            bar.update(task, completed=done, total=total or None)
            speed = next(t.speed for t in bar.tasks if t.id == task)
            bar.update(task, rate=f"{speed:,.0f}/s" if speed else "")

        return build_dataset(options, show)


def estimate(n: int, workers: int) -> str | None:
    """What a build of `n` generated programs on `workers` workers should take, said up front for a big one (None
    for a small one): at the rate measured on this project's 2-core machine, so labelled as an estimate."""
    if n < ESTIMATE_FROM:
        return None
    minutes = n / (KEPT_PER_SECOND_PER_WORKER * max(workers, 1)) / 60
    took = f"about {minutes:.0f} minutes" if minutes >= 2 else "about a minute or two"
    return (
        f"Estimate: {took} for {n:,} programs on {workers} workers, at the {KEPT_PER_SECOND_PER_WORKER} programs/s "
        "per worker measured on a 2-core machine; the bar's time left corrects it once it has measured this one."
    )


def terminal_text(text: str) -> str:
    """`text` safe to print with rich: markup escaped, control characters (ESC, OSC, ...) shown as escapes."""
    from rich.markup import escape

    return escape("".join(c if c.isprintable() else repr(c)[1:-1] for c in text))


def _print_summary(report) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=terminal_text(f"Dataset saved to {report.output}"), show_header=False)
    counts = report.counts
    table.add_row(
        "kept", f"{counts['kept']} (train {counts['train'] - counts.get('drills', 0)}, test {counts['test']})"
    )
    if counts.get("drills"):
        table.add_row("drills (train only)", str(counts["drills"]))
    where = f" (each with its reason in {Path(report.output) / 'report.json'})" if counts["rejected"] else ""
    table.add_row("rejected", terminal_text(f"{counts['rejected']}{where}"))
    for reason, count in report.rejected_by_reason.items():
        table.add_row(f"  {terminal_text(reason)}", str(count))
    table.add_row("distinct skeletons", str(report.distinct_skeletons))
    if report.construct_kinds:
        table.add_row("construct kinds", str(len(report.construct_kinds)))
    steps = report.steps
    table.add_row("trace steps", f"median {steps['median']}, mean {steps['mean']}, max {steps['max']}")
    table.add_row("sandbox", report.sandbox)
    table.add_row("process limits", report.process_limits)
    table.add_row("time", f"{report.elapsed_s:.1f} s")
    Console().print(table)


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(package_name="execution-world-model")  # the distribution in pyproject.toml
@click.argument("folders", nargs=-1, required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--output", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--overwrite", is_flag=True, help="Replace --output if it already exists.")
@click.option("--test-size", default="0.1667", callback=_parse_test_size, show_default="1/6")
@click.option("--seed", type=int, default=0, help="Seed of the train/test split.")
def merge_main(folders, output, overwrite, test_size, seed) -> None:
    """Join datasets that build-dataset made separately (for instance with --shard 0/4 ... 3/4): programs
    found in more than one are kept once, and train/test is split again by structure over the whole."""
    from .build import BuildError, merge_datasets

    with user_errors(BuildError, interrupted="Interrupted: the merge stopped and nothing was written."):
        report = merge_datasets(list(folders), output, test_size=test_size, seed=seed, overwrite=overwrite)
    counts = report["counts"]
    click.echo(
        f"Merged {len(folders)} datasets into {output}: {counts['kept']} programs "
        f"(train {counts['train']}, test {counts['test']}), {counts['rejected']} duplicates dropped."
    )
