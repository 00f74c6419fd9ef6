"""Honest evaluation: the whole test split, greedy decoding, batched, base model and adapter side by side.

Every number comes from `dataset_builder.trace.compare_traces` (via `trainer.rewards.compare_completion`), the
same comparison the reward uses (DESIGN §7):

- execution_prediction_accuracy: share of programs whose predicted trace matches exactly
- mean_state_accuracy: mean over programs of the share of real steps whose state the prediction matches
- output_accuracy: share with the right final module state, printed output and uncaught exception
- format_validity: share with a closed <execution_trace> block whose every line parsed
- mean_reward: mean of the gradual reward
- cut_off: share of completions that hit the token limit (no end of turn), which usually means no answer
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

RESULTS_FILE = "eval_results.json"
PREDICTIONS_FILE = "eval_predictions.jsonl"
METRICS = (
    ("execution_prediction_accuracy", "Execution Prediction Accuracy"),
    ("mean_state_accuracy", "Mean State Accuracy"),
    ("output_accuracy", "Output accuracy"),
    ("format_validity", "Format validity"),
    ("mean_reward", "Mean reward"),
    ("cut_off", "Cut off at the token limit"),
)


@dataclass
class ModelEvaluation:
    metrics: dict[str, float]
    predictions: list[dict] = field(default_factory=list)  # per row: id, completion, score, exact, ...
    seconds: float = 0.0


def summarize(comparisons, cut_off=None) -> dict[str, float]:
    """The metrics of a list of `Comparison`s (and, optionally, per-row cut-off flags)."""
    from trainer.rewards import clamp_score

    n = len(comparisons)

    def mean(values):
        values = list(values)
        return float(sum(values) / len(values)) if values else 0.0

    metrics = {
        "n": n,
        "execution_prediction_accuracy": mean(c.exact for c in comparisons),
        "mean_state_accuracy": mean(c.state_accuracy for c in comparisons),
        "output_accuracy": mean(c.output_match for c in comparisons),
        "format_validity": mean(c.valid_format for c in comparisons),
        "mean_reward": mean(clamp_score(c.score) for c in comparisons),
    }
    if cut_off is not None:
        metrics["cut_off"] = mean(cut_off)
    return metrics


def generate(model, tokenizer, prompts, *, batch_size: int, max_new_tokens: int, progress=None,
             stop_at_trace_end: bool = False):
    """Greedy completions for chat `prompts`, batched (longest first, so padding stays small). Returns
    (texts, cut_off flags) in the order of `prompts`. `stop_at_trace_end`: a completion also ends at its first
    `</execution_trace>` (only for models that answer without thinking: a thinking model may draft a trace while
    it thinks), so a model that closes its trace and rambles on does not hold its batch up."""
    import torch

    from dataset_builder.trace import TRACE_CLOSE

    texts = [tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts]
    lengths = [len(tokenizer(t, add_special_tokens=False).input_ids) for t in texts]
    order = sorted(range(len(texts)), key=lambda i: -lengths[i])
    completions: list[str] = [""] * len(texts)
    cut_off: list[bool] = [False] * len(texts)
    eos = model.generation_config.eos_token_id
    eos_ids = set(eos if isinstance(eos, (list, tuple)) else [eos]) | {tokenizer.eos_token_id}
    eos_ids.discard(None)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    tokenizer.padding_side = "left"
    try:
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            inputs = tokenizer([texts[i] for i in batch], return_tensors="pt", padding=True, add_special_tokens=False)
            inputs = {k: v.to(device) for k, v in inputs.items()}
            with torch.inference_mode():
                output = model.generate(
                    **inputs,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    temperature=None,
                    top_p=None,
                    top_k=None,
                    min_p=None,
                    pad_token_id=tokenizer.pad_token_id,
                    eos_token_id=sorted(eos_ids),
                    **({"stop_strings": [TRACE_CLOSE], "tokenizer": tokenizer} if stop_at_trace_end else {}),
                )
            new = output[:, inputs["input_ids"].shape[1] :]
            for row, i in zip(new.tolist(), batch):
                text = tokenizer.decode(row, skip_special_tokens=True)
                ended = any(t in eos_ids for t in row) or (stop_at_trace_end and TRACE_CLOSE in text)
                completions[i] = text
                cut_off[i] = not ended
            if progress:
                progress(min(start + batch_size, len(order)), len(order))
    finally:
        model.train(was_training)
    return completions, cut_off


def evaluate_model(model, tokenizer, rows, *, thinking: bool, batch_size: int, max_new_tokens: int,
                   label: str = "", progress=None) -> ModelEvaluation:
    """Generate for every row (dicts with `prompt`, `expected_trace`, optionally `id`) and compare."""
    from trainer.rewards import clamp_score, compare_completion

    started = time.perf_counter()
    completions, cut_off = generate(
        model, tokenizer, [r["prompt"] for r in rows], batch_size=batch_size, max_new_tokens=max_new_tokens,
        progress=progress, stop_at_trace_end=not thinking,
    )
    comparisons = [
        compare_completion(c, r["expected_trace"], thinking=thinking) for c, r in zip(completions, rows)
    ]
    predictions = [
        {
            "model": label,
            "id": r.get("id", i),
            "completion": c,
            "cut_off": cut,
            "exact": cmp.exact,
            "state_accuracy": cmp.state_accuracy,
            "output_match": cmp.output_match,
            "valid_format": cmp.valid_format,
            "reward": clamp_score(cmp.score),
        }
        for i, (r, c, cut, cmp) in enumerate(zip(rows, completions, cut_off, comparisons))
    ]
    return ModelEvaluation(summarize(comparisons, cut_off), predictions, time.perf_counter() - started)


def default_batch_size(on_gpu: bool) -> int:
    return 16 if on_gpu else 4


AUTO_MARGIN = 32  # tokens past the longest reference trace: room for the end of turn and small differences


def auto_max_new_tokens(tokenizer, rows, margin: int = AUTO_MARGIN) -> int:
    """The token budget that cuts off no right answer: the longest reference trace of `rows` in tokens, plus a
    margin. (A completion longer than that is longer than every reference, so it cannot be exact.)"""
    longest = max((len(tokenizer(r["expected_trace"], add_special_tokens=False).input_ids) for r in rows), default=0)
    return longest + margin


def evaluate_adapter(base, adapter_dir, rows, *, batch_size: int | None = None, max_new_tokens: int | None = None,
                     thinking_max_new_tokens: int = 1024, extra_adapters: dict | None = None,
                     labels: dict | None = None, include_base: bool = True, dataset_name: str = "",
                     split: str = "test", output: str | Path | None = None, dtype: str | None = None,
                     log=print) -> dict:
    """Evaluate the base model, the adapters in `extra_adapters` ({name: folder}, e.g. the SFT warm start) and the
    adapter in `adapter_dir` on `rows`, on one loaded base model; write the results JSON (default: next to the
    adapter) and the per-row predictions; return the results.

    `max_new_tokens=None`: for a model that answers directly, the longest reference trace plus a margin
    (`auto_max_new_tokens`); for a thinking model, `thinking_max_new_tokens` (its thinking needs the room).

    Each adapter is merged into a freshly loaded base model for its evaluation (the same numbers as the unmerged
    adapter up to rounding, and no LoRA overhead in generation). `dtype`: "float32" or "bfloat16" weights
    [default: bf16 on a GPU that supports it, else fp32]."""
    import torch
    from peft import PeftModel

    from trainer.models import load_model, resolve_model, thinking_template

    source = resolve_model(base) if isinstance(base, str) else base
    rows = [dict(r) for r in rows]
    on_gpu = torch.cuda.is_available()
    batch_size = batch_size or default_batch_size(on_gpu)
    torch_dtype = getattr(torch, dtype) if dtype else None
    tokenizer, model = load_model(source, dtype=torch_dtype)
    thinking = thinking_template(tokenizer)
    if max_new_tokens:
        rule = "given"
    elif thinking:
        max_new_tokens, rule = thinking_max_new_tokens, "thinking budget (the training completion length)"
    else:
        max_new_tokens = auto_max_new_tokens(tokenizer, rows)
        rule = f"longest reference trace + {AUTO_MARGIN} tokens"
    names = (["base"] if include_base else []) + list(extra_adapters or {}) + ["adapter"]
    titles = {"base": "Base", "adapter": "Adapter", **(labels or {})}
    results: dict = {
        "dataset": dataset_name,
        "split": split,
        "n": len(rows),
        "decoding": {"greedy": True, "max_new_tokens": max_new_tokens, "max_new_tokens_rule": rule,
                     "batch_size": batch_size, "stop_at_trace_end": not thinking,
                     "dtype": str(next(model.parameters()).dtype).replace("torch.", "")},
        "thinking_template": thinking,
        "base_model": source.base_model_id or source.spec,
        "labels": {name: titles.get(name, name) for name in names},
        "models": {},
    }

    def progress_for(name):
        def report(done, total):
            log(f"  {name}: {done}/{total} programs")

        return report

    predictions = []

    def evaluate(name):
        log(f"Evaluating {titles.get(name, name)} on {len(rows)} programs (greedy, up to {max_new_tokens} new "
            "tokens)...")
        evaluation = evaluate_model(model, tokenizer, rows, thinking=thinking, batch_size=batch_size,
                                    max_new_tokens=max_new_tokens, label=name, progress=progress_for(name))
        results["models"][name] = {**evaluation.metrics, "seconds": round(evaluation.seconds, 2)}
        predictions.extend(evaluation.predictions)
        log(f"  {titles.get(name, name)}: exact {100 * evaluation.metrics['execution_prediction_accuracy']:.1f}%, "
            f"state accuracy {100 * evaluation.metrics['mean_state_accuracy']:.1f}%, "
            f"mean reward {evaluation.metrics['mean_reward']:.3f} ({evaluation.seconds:.0f} s)")

    if include_base:
        evaluate("base")
    adapters = {**(extra_adapters or {}), "adapter": adapter_dir}
    for name, folder in adapters.items():
        if include_base or name != next(iter(adapters)):
            del model
            _, model = load_model(source, dtype=torch_dtype)
        model = PeftModel.from_pretrained(model, str(folder)).merge_and_unload()
        evaluate(name)

    output = Path(output) if output else Path(adapter_dir) / RESULTS_FILE
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n")
    with open(output.with_name(PREDICTIONS_FILE), "w") as handle:
        for p in predictions:
            handle.write(json.dumps(p) + "\n")
    del model
    return results


def format_table(results: dict) -> str:
    """A Markdown table of the metrics, base vs adapter(s) (percentages)."""
    models = results.get("models", {})
    names = [m for m in ("base", "sft", "adapter") if m in models] + [
        m for m in models if m not in ("base", "sft", "adapter")]
    titles = {"base": "Base", "adapter": "Adapter", "sft": "SFT only", **(results.get("labels") or {})}
    lines = ["| Metric | " + " | ".join(titles.get(n, n) for n in names) + " |",
             "| --- | " + " | ".join("---:" for _ in names) + " |"]
    for key, title in METRICS:
        if not all(key in models[n] for n in names):
            continue
        cells = []
        for n in names:
            value = models[n][key]
            cells.append(f"{value:.3f}" if key == "mean_reward" else f"{100 * value:.1f}%")
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def is_finite_results(results: dict) -> bool:
    return all(
        isinstance(v, (int, float)) and math.isfinite(v)
        for m in results.get("models", {}).values()
        for v in m.values()
    )
