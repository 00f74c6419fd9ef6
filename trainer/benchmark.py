"""CRUXEval-O in every evaluation: the benchmark's items as programs, prompted as the dataset's programs are, the
models' traces scored by the value of `result` (`dataset_builder.benchmark`), base and adapters side by side with
the test-split evaluation's own batching, decoding and thinking policy (`trainer.evaluate.evaluate_adapter`).

The base model has never seen the trace notation, so it is also asked the way CRUXEval itself asks
(`dataset_builder.cruxeval_prompts`: CRUXEval's direct and chain-of-thought output-prediction prompts, its answer
extraction, scored by value without running anything), in the same evaluation: `base_cruxeval_direct`,
`base_cruxeval_cot` (`..._raw` / `..._chat` when both formats are asked), `base_trace` (the trace prompt), then
the adapters. The adapter is compared with the best of the base's entries (`best_base`) on the same items: the
difference and a paired 95% interval (`paired_difference`, `paired_difference_ci95`, `paired_difference_method`).

Before any model runs, the items are traced in sandboxed workers: the traces give the token budget (the longest
reference trace + a margin, as on the test split) and the tracer's own answers, scored the same way, check the
harness (`tracer_check` in the results; `evaluate-traces --benchmark cruxeval --tracer-only` runs that alone).

Nothing heavy is imported at module level: the tracer-only path runs without torch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from dataset_builder import benchmark as crux
from dataset_builder import cruxeval_prompts as crux_prompts

RESULTS_FILE = "cruxeval_results.json"
PREDICTIONS_FILE = "cruxeval_predictions.jsonl"
METRICS = (
    ("n", "Items"),
    ("output_accuracy", "CRUXEval-O output accuracy"),
    ("valid_format", "Format validity (a well-formed trace; with CRUXEval's prompts, a literal answer)"),
    ("answered", "Answered (a `result` in the trace, or an answer read)"),
    ("cut_off", "Cut off at the token limit"),
)
TRACE_BASE = "base_trace"  # the base asked in the trace notation (`base` in results written before it had company)
PROMPT_FORMATS = ("auto", "raw", "chat", "both")
PROMPT_TITLES = {"cruxeval_direct": "CRUXEval's direct prompt", "cruxeval_cot": "CRUXEval's chain-of-thought prompt"}
RESAMPLES, SEED = 10_000, 0
PAIRED_METHOD = (
    f"paired bootstrap over the items ({RESAMPLES:,} resamples, seed {SEED}): the 2.5th and 97.5th "
    "percentiles of the resampled mean of adapter-right minus base-right"
)

logger = logging.getLogger(__name__)


@dataclass
class Benchmark:
    """The items, as loaded and traced, ready for the models."""

    source: str  # how records name the data (a Hub id, or a file's name: never a path)
    items: list
    rows: list  # per item: id, index, code (the program), prompt, expected_trace ("" if tracing failed), output
    tracer: list  # the tracer's per-item scores
    limit: int | None = None
    structures: frozenset = frozenset()  # of every item's program in the data (not only the first `limit`)
    structures_of: int = 0  # how many items those are
    training_overlap: dict | None = None  # set by `leave_out_shared_structures` when a run trains

    def record(self) -> dict:
        """The head of the results: which benchmark, from where, the harness check and, for a training run, how
        its training programs were kept apart from the items."""
        check = crux.summarize(self.tracer)
        failures = [{"id": p["id"], "failure": p["failure"]} for p in self.tracer if p.get("failure")]
        return {
            "benchmark": crux.NAME,
            "dataset": self.source,
            "split": crux.SPLIT,
            "limit": self.limit,
            "tracer_check": {**check, "failures": failures[:20]},
            **({"training_overlap": self.training_overlap} if self.training_overlap else {}),
        }


def prepare_benchmark(
    spec: str | None,
    *,
    limit: int | None = None,
    prompt_style: str = "dataset",
    sandbox: str = "auto",
    workers: int = 2,
) -> Benchmark:
    """Load the items (`spec`: a JSONL or parquet file or a Hub id; default cruxeval-org/cruxeval), trace them in
    sandboxed workers and build the prompts. With several processes the main one loads and traces and the others
    get its result."""
    from trainer import distributed

    distributed.start()
    if distributed.is_main():
        prepared = _prepare(spec, limit, prompt_style, sandbox, workers)
    else:
        prepared = None
    prepared = distributed.broadcast(prepared)
    if isinstance(prepared, Exception):  # the main process's one-sentence error, raised on every process
        raise prepared
    return prepared


def _prepare(spec, limit, prompt_style, sandbox, workers):
    from dataset_builder.sandbox import SandboxUnavailable, resolve
    from dataset_builder.workers import WorkerStartError
    from trainer.prompts import BASE_PROMPT_COLUMN, TARGET_COLUMN, base_style_for, prompt_for, target_for

    try:
        items = crux.load_items(spec, limit=limit)
        everything = items if limit is None else crux.load_items(spec)  # a training run stays apart from all
        chosen, _ = resolve(sandbox, untrusted=True)
    except (crux.BenchmarkError, SandboxUnavailable) as exc:
        return exc
    structures = frozenset(filter(None, (crux.structure_of(crux.program_of(item)) for item in everything)))
    source = crux.describe_source(spec)
    logger.info(f"CRUXEval: {len(items)} items from {source}; tracing them in {chosen.describe()} workers...")
    try:
        traces = crux.trace_items(items, sandbox=chosen, workers=workers)
    except WorkerStartError as exc:
        return crux.BenchmarkError(f"the tracing workers could not start ({exc}).")
    references = crux.reference_traces(traces)
    rows = []
    for index, (item, reference) in enumerate(zip(items, references)):
        program = crux.program_of(item)
        rows.append(
            {
                "id": item["id"],
                "index": index,
                "code": program,
                "prompt": prompt_for(prompt_style, program),
                "expected_trace": reference,
                TARGET_COLUMN: target_for(prompt_style, reference),
                "output": item["output"],
            }
        )
        if base_style_for(prompt_style) != prompt_style:
            rows[-1][BASE_PROMPT_COLUMN] = prompt_for(base_style_for(prompt_style), program)
    tracer = crux.tracer_scores(items, traces)
    check = crux.summarize(tracer)
    logger.info(
        f"  The tracer itself: output accuracy {100 * check['output_accuracy']:.1f}% "
        f"({sum(bool(p.get('failure')) for p in tracer)} items failed to trace)."
    )
    return Benchmark(
        source=source,
        items=items,
        rows=rows,
        tracer=tracer,
        limit=limit,
        structures=structures,
        structures_of=len(everything),
    )


def leave_out_shared_structures(rows, benchmark: Benchmark):
    """The training programs (a `datasets.Dataset` with `code`) without those that have the structure of one of
    the benchmark's items (all of them, not only the evaluated ones): no item, and nothing shaped like one, is
    trained on. What was checked and left out goes into the benchmark's results (`training_overlap`)."""
    shared = [i for i, code in enumerate(rows["code"]) if crux.structure_of(code) in benchmark.structures]
    benchmark.training_overlap = {
        "items_checked": benchmark.structures_of,
        "training_programs_checked": len(rows),
        "shared_structure": len(shared),
        "left_out_ids": [rows[i]["id"] for i in shared[:20]],
        "rule": "a training program is left out when its skeleton (names and constants abstracted) is that of an "
        "item's program `<code>\nresult = f(<input>)`",
    }
    if shared:
        logger.info(f"  {len(shared)} training programs have the structure of a CRUXEval item: left out of training.")
        left_out = set(shared)
        rows = rows.select([i for i in range(len(rows)) if i not in left_out])
    else:
        logger.info(f"  No training program has the structure of any of the {benchmark.structures_of} CRUXEval items.")
    return rows


def _score(row: dict, completion: str, opens_think: bool) -> dict:
    """One completion on one item: a trace (the value of `result`), or, for a row asked with one of CRUXEval's own
    prompts (`cruxeval_prompt`), the answer read as CRUXEval's harness reads it (a raw prompt is a string, a chat
    prompt messages)."""
    from trainer.rewards import THINK_OPEN

    text = (THINK_OPEN if opens_think else "") + completion
    if row.get("cruxeval_prompt"):
        scores = crux_prompts.score_prediction(
            text, row["input"], row["output"], row["cruxeval_prompt"], chat=not isinstance(row["prompt"], str)
        )
    else:
        scores = crux.score_completion(text, row["output"])
    return {**scores, "expected": row["output"]}


def _describe(metrics: dict) -> str:
    return (
        f"CRUXEval-O output accuracy {100 * metrics['output_accuracy']:.1f}%, format validity "
        f"{100 * metrics['valid_format']:.1f}%, cut off {100 * metrics.get('cut_off', 0.0):.0f}%"
    )


def scoring():
    from trainer.evaluate import Scoring

    return Scoring(
        _score,
        crux.summarize,
        _describe,
        results_file=RESULTS_FILE,
        predictions_file=PREDICTIONS_FILE,
        unit="items",
        conclude=compare,
    )


def parse_prompts(text: str) -> tuple[str, ...]:
    """`--cruxeval-prompts`: a comma-separated list of CRUXEval's prompts (direct, cot), or none. ValueError with
    one sentence for anything else."""
    names = tuple(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))
    if names == ("none",):
        return ()
    wrong = [p for p in names if p not in crux_prompts.PROMPTS]
    if wrong or not names:
        raise ValueError(f"{text!r} is not a list of CRUXEval prompts: give direct, cot, direct,cot or none.")
    return names


def base_prompts(benchmark: Benchmark, prompts=crux_prompts.PROMPTS, prompt_format: str = "auto") -> dict:
    """The base model's entries asked with CRUXEval's own prompts (`evaluate.BasePrompt`s by name): one per prompt,
    two (`_raw`, `_chat`) with `prompt_format` both. Budgets and the end of an answer are the harness's
    (`cruxeval_prompts.MAX_NEW_TOKENS`, `[/ANSWER]`)."""
    from trainer.evaluate import BasePrompt

    formats = ("raw", "chat") if prompt_format == "both" else (prompt_format,)
    entries = {}
    for prompt in prompts:
        rows = [
            {
                "id": row["id"],
                "prompt": crux_prompts.make_prompt(prompt, item["code"], item["input"]),
                "expected_trace": row["expected_trace"],
                "input": item["input"],
                "output": item["output"],
                "cruxeval_prompt": prompt,
            }
            for item, row in zip(benchmark.items, benchmark.rows)
        ]
        for form in formats:
            name = f"base_cruxeval_{prompt}" + (f"_{form}" if prompt_format == "both" else "")
            record = {"prompt": f"cruxeval_{prompt}", "source": crux_prompts.SOURCE, "scoring": crux_prompts.SCORING}
            entries[name] = BasePrompt(
                rows, crux_prompts.MAX_NEW_TOKENS[prompt], stop_at=crux_prompts.ANSWER_CLOSE, format=form, record=record
            )
    return entries


def evaluate_benchmark(
    base,
    adapter_dir,
    benchmark: Benchmark,
    *,
    cruxeval_prompts=crux_prompts.PROMPTS,
    cruxeval_prompt_format: str = "auto",
    labels: dict | None = None,
    trace_base: bool = True,
    direct_answers: bool = False,
    direct_answers_only: bool = False,
    direct_answers_format: str = "chat",
    **kwargs,
) -> dict | None:
    """The base model asked with CRUXEval's own prompts (`cruxeval_prompts`, in `cruxeval_prompt_format`: raw, chat,
    auto or both) and in the trace notation, and the adapters (as `evaluate_adapter` takes them;
    `adapter_dir=None`: the base model alone), on the benchmark's items; the adapter against the best base entry,
    paired. Writes `cruxeval_results.json` and `cruxeval_predictions.jsonl` (default: next to the adapter) on the
    main process and returns the results there (None on the others). `trace_base=False`: the base model is asked
    with CRUXEval's prompts only (the trace notation, which it has not learnt, costs the most tokens).
    `direct_answers`: the adapter was trained to answer CRUXEval's direct prompt too (`trainer.answers`), so it is
    also asked that way, as it was trained (`direct_answers_format`: chat or raw; `adapter_cruxeval_direct`);
    `direct_answers_only`: it was trained on those alone, so neither it nor the base is asked in the trace notation
    (the longest answers to generate, of a notation it never learnt)."""
    from trainer.answers import ENTRY
    from trainer.evaluate import evaluate_adapter

    entries = base_prompts(benchmark, cruxeval_prompts, cruxeval_prompt_format)
    adapter_entries = (
        {ENTRY: base_prompts(benchmark, ("direct",), direct_answers_format)["base_cruxeval_direct"]}
        if direct_answers and adapter_dir is not None
        else {}
    )
    titles = {
        TRACE_BASE: "Base, trace prompt",
        **{name: f"Base, {PROMPT_TITLES[entry.record['prompt']]}" for name, entry in entries.items()},
        **{k: v for k, v in (labels or {}).items() if k != "base"},
    }
    if adapter_entries:
        titles[ENTRY] = f"{titles.get('adapter', 'Adapter')}, {PROMPT_TITLES['cruxeval_direct']}"
    return evaluate_adapter(
        base,
        adapter_dir,
        benchmark.rows,
        scoring=scoring(),
        record=benchmark.record(),
        dataset_name=benchmark.source,
        split=crux.SPLIT,
        base_name=TRACE_BASE,
        base_prompts=entries,
        base_on_rows=trace_base and not direct_answers_only,
        labels=titles,
        adapter_prompts=adapter_entries,
        adapter_on_rows=not direct_answers_only,
        **kwargs,
    )


# ---------------------------------------------------------------------------------------------------------
# The adapter against its base


def is_base(name: str) -> bool:
    return name == "base" or name.startswith("base_")


def trace_base(models: dict) -> dict | None:
    """The base model asked in the trace notation: `base_trace`, or `base` in results written before the base was
    also asked with CRUXEval's prompts (both stay readable)."""
    return models.get(TRACE_BASE) or models.get("base")


def best_base(models: dict) -> str | None:
    """The base entry with the highest output accuracy (the first of equals, in the results' order), or None."""
    bases = [name for name in models if is_base(name)]
    return max(bases, key=lambda name: models[name]["output_accuracy"]) if bases else None


def paired_difference_ci95(adapter: list, base: list, resamples: int = RESAMPLES, seed: int = SEED) -> list:
    """A paired 95% interval for mean(adapter) - mean(base), where both are per-item right/wrong on the same items:
    the percentile bootstrap over items. Only the per-item differences (+1, 0, -1) matter, so resampling the n items
    with replacement is drawing the counts of the three from a multinomial (exactly, and fast); [low, high]."""
    import numpy as np

    differences = [int(bool(a)) - int(bool(b)) for a, b in zip(adapter, base, strict=True)]
    n = len(differences)
    if not n:
        raise ValueError("a paired interval needs at least one item")
    shares = [differences.count(1) / n, differences.count(-1) / n]
    counts = np.random.default_rng(seed).multinomial(n, shares + [max(0.0, 1 - sum(shares))], size=resamples)
    low, high = np.quantile((counts[:, 0] - counts[:, 1]) / n, [0.025, 0.975])
    return [round(float(low), 4), round(float(high), 4)]


def compared_adapter(models: dict) -> str | None:
    """The adapter entry compared with the base: the way it was trained to answer, CRUXEval's direct prompt where it
    was trained with direct answers (`trainer.answers`), else its traces; None without an adapter."""
    from trainer.answers import ENTRY

    return ENTRY if ENTRY in models else "adapter" if "adapter" in models else None


def compare(results: dict, predictions: list) -> dict:
    """`best_base`, and with an adapter the paired difference on the same items: the compared adapter entry
    (`compared_adapter`) minus the best base (`paired_difference`, `paired_difference_ci95`,
    `paired_difference_method`)."""
    models = results.get("models", {})
    best = best_base(models)
    if best is None:
        return {}
    out = {"best_base": best}
    entry = compared_adapter(models)
    if entry is not None:
        right: dict = {}
        for p in predictions:
            right.setdefault(p["model"], {})[p["index"]] = bool(p["output_match"])
        items = [i for i in right[entry] if i in right[best]]
        adapter, base = [right[entry][i] for i in items], [right[best][i] for i in items]
        out.update(
            compared_adapter=entry,
            paired_difference=round((sum(adapter) - sum(base)) / len(items), 4),
            paired_difference_ci95=paired_difference_ci95(adapter, base),
            paired_difference_method=PAIRED_METHOD,
            paired_n=len(items),
        )
    return out


def title(results: dict, name: str) -> str:
    """A model entry's column title: its label, with how a base entry asked with CRUXEval's prompt was sent."""
    label = (results.get("labels") or {}).get(name) or {
        "tracer": "Tracer",
        "base": "Base",
        TRACE_BASE: "Base, trace prompt",
        "adapter": "Adapter",
        "sft": "SFT only",
    }.get(name, name)
    asked_how = {**(results.get("base_prompts") or {}), **(results.get("adapter_prompts") or {})}.get(name)
    if asked_how:
        label += ", raw completion" if asked_how["format"] == "raw" else ", chat template"
    return label


def verdict(results: dict) -> str | None:
    """One sentence: the adapter against the best of its base's entries on the same items (None without both)."""
    models = results.get("models", {})
    best = results.get("best_base") or best_base(models)
    entry = results.get("compared_adapter") or compared_adapter(models)
    if entry is None or best is None:
        return None
    if not (results.get("base_prompts") or {}):
        return (
            "The base model was asked only in the trace notation, which it was never trained on and which is "
            "not how CRUXEval asks, so this is no comparison with the base model on CRUXEval-O."
        )
    got, base = models[entry]["output_accuracy"], models[best]["output_accuracy"]
    asked = results["base_prompts"].get(best)
    how = (
        "asked in the trace notation"
        if asked is None
        else f"asked with {PROMPT_TITLES[asked['prompt']]}"
        + (" as a raw completion" if asked["format"] == "raw" else " through its chat template")
    )
    who = (
        "The adapter"
        if entry == "adapter"
        else (
            f"The adapter, asked with {PROMPT_TITLES[results['adapter_prompts'][entry]['prompt']]} as it was trained to "
            "answer,"
        )
    )
    figures = f"{100 * got:.1f}% against {100 * base:.1f}% on the same {results.get('n')} items"
    low, high = results.get("paired_difference_ci95") or (None, None)
    if low is not None:
        figures += (
            f"; adapter minus base {100 * (got - base):+.1f} points, paired 95% interval "
            f"[{100 * low:+.1f}, {100 * high:+.1f}]"
        )
    if got < base:
        return f"{who} answers fewer CRUXEval-O items than its base model {how} ({figures})."
    if got == base:
        return f"{who} answers as many CRUXEval-O items as its base model {how} ({figures})."
    unsure = " The interval includes 0, so this is not a measured gain." if low is not None and low <= 0 else ""
    return f"{who} answers more CRUXEval-O items than its base model {how} ({figures}).{unsure}"


def tracer_results(benchmark: Benchmark) -> dict:
    """The results of the tracer-only check, in the same shape as a model evaluation's."""
    record = benchmark.record()
    return {**record, "n": len(benchmark.items), "models": {"tracer": crux.summarize(benchmark.tracer)}}


def format_table(results: dict) -> str:
    """A Markdown table of the benchmark's metrics, one column per model entry (percentages; the items each was
    scored on), then the adapter against the best base entry in one sentence."""
    models = results.get("models", {})
    names = list(models)
    lines = [
        f"CRUXEval-O on {results.get('n', 0)} items from {results.get('dataset', crux.HUB_ID)}:",
        "| Metric | " + " | ".join(title(results, n) for n in names) + " |",
        "| --- | " + " | ".join("---:" for _ in names) + " |",
    ]
    for key, row_title in METRICS:
        if all(key in models[n] for n in names):
            cells = [str(models[n][key]) if key == "n" else f"{100 * models[n][key]:.1f}%" for n in names]
            lines.append(f"| {row_title} | " + " | ".join(cells) + " |")
    sentence = verdict(results)
    return "\n".join(lines + ([f"\n{sentence}"] if sentence else []))


def write_tracer_predictions(benchmark: Benchmark, path) -> None:
    import json

    with open(path, "w") as handle:
        for p in benchmark.tracer:
            handle.write(json.dumps(p) + "\n")
