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


def generate(model, tokenizer, prompts, *, batch_size: int, max_new_tokens: int, progress=None):
    """Greedy completions for chat `prompts`, batched (longest first, so padding stays small). Returns
    (texts, cut_off flags) in the order of `prompts`."""
    import torch

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
                )
            new = output[:, inputs["input_ids"].shape[1] :]
            for row, i in zip(new.tolist(), batch):
                ended = any(t in eos_ids for t in row)
                completions[i] = tokenizer.decode(row, skip_special_tokens=True)
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
        progress=progress,
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


def evaluate_adapter(base, adapter_dir, rows, *, batch_size: int | None = None, max_new_tokens: int = 256,
                     include_base: bool = True, dataset_name: str = "", split: str = "test",
                     output: str | Path | None = None, log=print) -> dict:
    """Evaluate the base model and the adapter in `adapter_dir` on `rows`; write the results JSON (default: next
    to the adapter) and the per-row predictions; return the results."""
    import torch
    from peft import PeftModel

    from trainer.models import load_model, resolve_model, thinking_template

    source = resolve_model(base) if isinstance(base, str) else base
    rows = [dict(r) for r in rows]
    on_gpu = torch.cuda.is_available()
    batch_size = batch_size or default_batch_size(on_gpu)
    tokenizer, model = load_model(source)
    thinking = thinking_template(tokenizer)
    results: dict = {
        "dataset": dataset_name,
        "split": split,
        "n": len(rows),
        "decoding": {"greedy": True, "max_new_tokens": max_new_tokens, "batch_size": batch_size},
        "thinking_template": thinking,
        "base_model": source.base_model_id or source.spec,
        "models": {},
    }

    def progress_for(name):
        def report(done, total):
            log(f"  {name}: {done}/{total} programs")

        return report

    predictions = []
    if include_base:
        log(f"Evaluating the base model on {len(rows)} programs (greedy, up to {max_new_tokens} new tokens)...")
        base_eval = evaluate_model(model, tokenizer, rows, thinking=thinking, batch_size=batch_size,
                                   max_new_tokens=max_new_tokens, label="base", progress=progress_for("base"))
        results["models"]["base"] = {**base_eval.metrics, "seconds": round(base_eval.seconds, 2)}
        predictions += base_eval.predictions
    log(f"Evaluating the adapter on {len(rows)} programs...")
    model = PeftModel.from_pretrained(model, str(adapter_dir))
    adapter_eval = evaluate_model(model, tokenizer, rows, thinking=thinking, batch_size=batch_size,
                                  max_new_tokens=max_new_tokens, label="adapter", progress=progress_for("adapter"))
    results["models"]["adapter"] = {**adapter_eval.metrics, "seconds": round(adapter_eval.seconds, 2)}
    predictions += adapter_eval.predictions

    output = Path(output) if output else Path(adapter_dir) / RESULTS_FILE
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n")
    with open(output.with_name(PREDICTIONS_FILE), "w") as handle:
        for p in predictions:
            handle.write(json.dumps(p) + "\n")
    del model
    return results


def format_table(results: dict) -> str:
    """A Markdown table of the metrics, base vs adapter (percentages)."""
    models = results.get("models", {})
    names = [m for m in ("base", "adapter") if m in models]
    lines = ["| Metric | " + " | ".join(n.capitalize() for n in names) + " |",
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
