"""CRUXEval-O in every evaluation: the benchmark's items as programs, prompted as the dataset's programs are, the
models' traces scored by the value of `result` (`dataset_builder.benchmark`), base and adapters side by side with
the test-split evaluation's own batching, decoding and thinking policy (`trainer.evaluate.evaluate_adapter`).

Before any model runs, the items are traced in sandboxed workers: the traces give the token budget (the longest
reference trace + a margin, as on the test split) and the tracer's own answers, scored the same way, check the
harness (`tracer_check` in the results; `evaluate-traces --benchmark cruxeval --tracer-only` runs that alone).

Nothing heavy is imported at module level: the tracer-only path runs without torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from dataset_builder import benchmark as crux

RESULTS_FILE = "cruxeval_results.json"
PREDICTIONS_FILE = "cruxeval_predictions.jsonl"
METRICS = (
    ("output_accuracy", "CRUXEval-O output accuracy"),
    ("valid_format", "Format validity"),
    ("answered", "Answered (a `result` in the trace)"),
    ("cut_off", "Cut off at the token limit"),
)


@dataclass
class Benchmark:
    """The items, as loaded and traced, ready for the models."""

    source: str  # how records name the data (a Hub id, or a file's name: never a path)
    items: list
    rows: list  # per item: id, index, code (the program), prompt, expected_trace ("" if tracing failed), output
    tracer: list  # the tracer's per-item scores
    limit: int | None = None

    def record(self) -> dict:
        """The head of the results: which benchmark, from where, and the harness check."""
        check = crux.summarize(self.tracer)
        failures = [{"id": p["id"], "failure": p["failure"]} for p in self.tracer if p.get("failure")]
        return {"benchmark": crux.NAME, "dataset": self.source, "split": crux.SPLIT, "limit": self.limit,
                "tracer_check": {**check, "failures": failures[:20]}}


def prepare_benchmark(spec: str | None, *, limit: int | None = None, prompt_style: str = "dataset",
                      sandbox: str = "auto", workers: int = 2, log=print) -> Benchmark:
    """Load the items (`spec`: a JSONL or parquet file or a Hub id; default cruxeval-org/cruxeval), trace them in
    sandboxed workers and build the prompts. With several processes the main one loads and traces and the others
    get its result."""
    from trainer import distributed

    distributed.start()
    if distributed.is_main():
        prepared = _prepare(spec, limit, prompt_style, sandbox, workers, log)
    else:
        prepared = None
    prepared = distributed.broadcast(prepared)
    if isinstance(prepared, Exception):  # the main process's one-sentence error, raised on every process
        raise prepared
    return prepared


def _prepare(spec, limit, prompt_style, sandbox, workers, log):
    from dataset_builder.sandbox import SandboxUnavailable, resolve
    from dataset_builder.workers import WorkerStartError

    from trainer.prompts import BASE_PROMPT_COLUMN, TARGET_COLUMN, base_style_for, prompt_for, target_for

    try:
        items = crux.load_items(spec, limit=limit)
        chosen, _ = resolve(sandbox, untrusted=True)
    except (crux.BenchmarkError, SandboxUnavailable) as exc:
        return exc
    source = crux.describe_source(spec)
    log(f"CRUXEval: {len(items)} items from {source}; tracing them in {chosen.describe()} workers...")
    try:
        traces = crux.trace_items(items, sandbox=chosen, workers=workers)
    except WorkerStartError as exc:
        return crux.BenchmarkError(f"the tracing workers could not start ({exc}).")
    references = crux.reference_traces(traces)
    rows = []
    for index, (item, reference) in enumerate(zip(items, references)):
        program = crux.program_of(item)
        rows.append({"id": item["id"], "index": index, "code": program, "prompt": prompt_for(prompt_style, program),
                     "expected_trace": reference, TARGET_COLUMN: target_for(prompt_style, reference),
                     "output": item["output"]})
        if base_style_for(prompt_style) != prompt_style:
            rows[-1][BASE_PROMPT_COLUMN] = prompt_for(base_style_for(prompt_style), program)
    tracer = crux.tracer_scores(items, traces)
    check = crux.summarize(tracer)
    log(f"  The tracer itself: output accuracy {100 * check['output_accuracy']:.1f}% "
        f"({sum(bool(p.get('failure')) for p in tracer)} items failed to trace).")
    return Benchmark(source=source, items=items, rows=rows, tracer=tracer, limit=limit)


def _score(row: dict, completion: str, opens_think: bool) -> dict:
    from trainer.rewards import THINK_OPEN

    return {**crux.score_completion((THINK_OPEN if opens_think else "") + completion, row["output"]),
            "expected": row["output"]}


def _describe(metrics: dict) -> str:
    return (f"CRUXEval-O output accuracy {100 * metrics['output_accuracy']:.1f}%, format validity "
            f"{100 * metrics['valid_format']:.1f}%, cut off {100 * metrics.get('cut_off', 0.0):.0f}%")


def scoring():
    from trainer.evaluate import Scoring

    return Scoring(_score, crux.summarize, _describe, results_file=RESULTS_FILE, predictions_file=PREDICTIONS_FILE,
                   unit="items")


def evaluate_benchmark(base, adapter_dir, benchmark: Benchmark, **kwargs) -> dict | None:
    """Base (and adapters, as `evaluate_adapter` takes them; `adapter_dir=None`: the base model alone) on the
    benchmark's items; writes `cruxeval_results.json` and `cruxeval_predictions.jsonl` (default: next to the
    adapter) on the main process and returns the results there (None on the others)."""
    from trainer.evaluate import evaluate_adapter

    return evaluate_adapter(base, adapter_dir, benchmark.rows, scoring=scoring(), record=benchmark.record(),
                            dataset_name=benchmark.source, split=crux.SPLIT, **kwargs)


def tracer_results(benchmark: Benchmark) -> dict:
    """The results of the tracer-only check, in the same shape as a model evaluation's."""
    record = benchmark.record()
    return {**record, "n": len(benchmark.items), "models": {"tracer": crux.summarize(benchmark.tracer)}}


def format_table(results: dict) -> str:
    """A Markdown table of the benchmark's metrics, one column per model (percentages)."""
    models = results.get("models", {})
    titles = {"tracer": "Tracer", "base": "Base", "adapter": "Adapter", "sft": "SFT only",
              **(results.get("labels") or {})}
    names = list(models)
    lines = [f"CRUXEval-O on {results.get('n', 0)} items from {results.get('dataset', crux.HUB_ID)}:",
             "| Metric | " + " | ".join(titles.get(n, n) for n in names) + " |",
             "| --- | " + " | ".join("---:" for _ in names) + " |"]
    for key, title in METRICS:
        if all(key in models[n] for n in names):
            lines.append(f"| {title} | " + " | ".join(f"{100 * models[n][key]:.1f}%" for n in names) + " |")
    return "\n".join(lines)


def write_tracer_predictions(benchmark: Benchmark, path) -> None:
    import json

    with open(path, "w") as handle:
        for p in benchmark.tracer:
            handle.write(json.dumps(p) + "\n")
