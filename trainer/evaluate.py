"""Honest evaluation: the whole test split, batched, base model and adapter side by side; greedy decoding for a
model that answers directly, Qwen's recommended sampling (fixed seed) for a thinking one.

Every number comes from `dataset_builder.trace.compare_traces` (via `trainer.rewards.compare_completion`), the
same comparison the reward uses:

- execution_prediction_accuracy: share of programs whose predicted trace matches exactly
- mean_state_accuracy: mean over programs of the share of steps right at their position (same event, function,
  line and state), over the longer of the predicted and the real trace (extra steps cost)
- output_accuracy: share with the right final module state, printed output and uncaught exception
- format_validity: share with a closed <execution_trace> block whose every line parsed
- mean_reward: mean of the gradual reward
- cut_off: share of completions that hit the token limit (no end of turn), which usually means no answer
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from dataset_builder.trace import TRACE_CLOSE

RESULTS_FILE = "eval_results.json"
PREDICTIONS_FILE = "eval_predictions.jsonl"
BENCHMARK_TITLES = {"cruxeval": "CRUXEval-O output accuracy"}
METRICS = (
    ("execution_prediction_accuracy", "Execution Prediction Accuracy"),
    ("mean_state_accuracy", "Mean State Accuracy"),
    ("output_accuracy", "Output accuracy"),
    ("format_validity", "Format validity"),
    ("mean_reward", "Mean reward"),
    ("cut_off", "Cut off at the token limit"),
)

logger = logging.getLogger(__name__)


@dataclass
class ModelEvaluation:
    metrics: dict[str, float]
    predictions: list[dict] = field(default_factory=list)  # per row: id, completion, score, exact, ...
    seconds: float = 0.0


def summarize(comparisons, cut_off=None) -> dict[str, float]:
    """The metrics of a list of `Comparison`s (and, optionally, per-row cut-off flags)."""
    cut = list(cut_off) if cut_off is not None else [None] * len(comparisons)
    return summarize_predictions(
        [prediction_scores(c, flag) for c, flag in zip(comparisons, cut)], with_cut_off=cut_off is not None
    )


def prediction_scores(comparison, cut_off=None) -> dict:
    """What one prediction scored: the per-row record the metrics are means of."""
    from trainer.rewards import clamp_score

    return {
        "cut_off": cut_off,
        "exact": comparison.exact,
        "state_accuracy": comparison.state_accuracy,
        "output_match": comparison.output_match,
        "valid_format": comparison.valid_format,
        "reward": clamp_score(comparison.score),
    }


def trace_scores(row: dict, completion: str, thinking: bool) -> dict:
    """One completion scored against the row's reference trace (`expected_trace`)."""
    from trainer.rewards import compare_completion

    return prediction_scores(compare_completion(completion, row["expected_trace"], thinking=thinking))


def describe_trace_metrics(metrics: dict) -> str:
    return (
        f"exact {100 * metrics['execution_prediction_accuracy']:.1f}%, state accuracy "
        f"{100 * metrics['mean_state_accuracy']:.1f}%, mean reward {metrics['mean_reward']:.3f}, cut off "
        f"{100 * metrics['cut_off']:.0f}%"
    )


def summarize_predictions(predictions, with_cut_off: bool = True) -> dict[str, float]:
    """The metrics: means over the per-row records of `prediction_scores` (gathered from every process)."""

    def mean(key):
        values = [float(p[key]) for p in predictions]
        return float(sum(values) / len(values)) if values else 0.0

    metrics = {
        "n": len(predictions),
        "execution_prediction_accuracy": mean("exact"),
        "mean_state_accuracy": mean("state_accuracy"),
        "output_accuracy": mean("output_match"),
        "format_validity": mean("valid_format"),
        "mean_reward": mean("reward"),
    }
    if with_cut_off:
        metrics["cut_off"] = mean("cut_off")
    return metrics


@dataclass(frozen=True)
class Scoring:
    """What an evaluation measures: `score(row, completion, opens_think)` gives one completion's per-row record
    (generation adds `cut_off`), `summarize(records)` the metrics (means over the records of every process),
    `describe(metrics)` the log line; the files the main process writes; `conclude(results, predictions)`
    whatever compares the models (e.g. a paired interval)."""

    score: Callable[[dict, str, bool], dict]
    summarize: Callable[[list], dict]
    describe: Callable[[dict], str]
    results_file: str = RESULTS_FILE
    predictions_file: str = PREDICTIONS_FILE
    unit: str = "programs"
    # further fields for the results from them and every model's predictions (the main process, after all models)
    conclude: Callable[[dict, list], dict] | None = None


TRACE_SCORING = Scoring(trace_scores, summarize_predictions, describe_trace_metrics)


def predictions_path(output: Path, scoring: Scoring = TRACE_SCORING) -> Path:
    """Where the per-row predictions go beside the results file `output`: `eval_results-test-2.json` gets
    `eval_predictions-test-2.jsonl`; any other name its own, `crux.json` `crux-predictions.jsonl` (so two results
    files in one folder never share, and overwrite, one predictions file)."""
    results_stem = scoring.results_file.removesuffix(".json")
    if output.name.startswith(results_stem):
        suffix = output.name[len(results_stem) :].removesuffix(".json")
        return output.with_name(scoring.predictions_file.removesuffix(".jsonl") + suffix + ".jsonl")
    return output.with_name(f"{output.stem}-predictions.jsonl")


def generate(
    model,
    tokenizer,
    prompts,
    *,
    batch_size: int,
    max_new_tokens: int,
    progress=None,
    stop_at: str | None = None,
    sampling: dict | None = None,
    seed: int = 0,
    chat_template_kwargs: dict | None = None,
):
    """Completions for `prompts` (chat messages, or raw text: `trainer.prompts.render_prompt`), batched (longest
    first, so padding stays small): greedy, or sampled with `sampling` (temperature, top_p, top_k, min_p) from
    `seed`. Returns (texts, cut_off flags) in the order of `prompts`. `stop_at`: a completion also ends at its first
    `stop_at` (e.g. `</execution_trace>`; only for a model that answers without thinking: a thinking model may draft
    an answer while it thinks), so a model that closes its answer and rambles on does not hold its batch up.
    `chat_template_kwargs`: e.g. a hybrid template's `enable_thinking`."""
    import torch

    from trainer.prompts import render_prompt

    texts = [render_prompt(tokenizer, p, chat_template_kwargs) for p in prompts]
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
    if sampling:
        decoding = {"do_sample": True, **sampling}
        torch.manual_seed(seed)
    else:
        decoding = {"do_sample": False, "temperature": None, "top_p": None, "top_k": None, "min_p": None}
    written = 0  # tokens generated so far (the padding after a finished row left out), for the progress line
    try:
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            inputs = tokenizer([texts[i] for i in batch], return_tensors="pt", padding=True, add_special_tokens=False)
            inputs = {k: v.to(device) for k, v in inputs.items()}
            with torch.inference_mode():
                output = model.generate(
                    **inputs,
                    max_new_tokens=max_new_tokens,
                    **decoding,
                    pad_token_id=tokenizer.pad_token_id,
                    eos_token_id=sorted(eos_ids),
                    **({"stop_strings": [stop_at], "tokenizer": tokenizer} if stop_at else {}),
                )
            new = output[:, inputs["input_ids"].shape[1] :]
            for row, i in zip(new.tolist(), batch):
                text = tokenizer.decode(row, skip_special_tokens=True)
                ended = any(t in eos_ids for t in row) or bool(stop_at and stop_at in text)
                completions[i] = text
                cut_off[i] = not ended
                written += sum(token != tokenizer.pad_token_id for token in row)
            if progress:
                progress(min(start + batch_size, len(order)), len(order), written)
    finally:
        model.train(was_training)
    return completions, cut_off


def evaluate_model(
    model,
    tokenizer,
    rows,
    *,
    thinking: bool,
    batch_size: int,
    max_new_tokens: int,
    label: str = "",
    progress=None,
    opens_think: bool | None = None,
    sampling: dict | None = None,
    seed: int = 0,
    chat_template_kwargs: dict | None = None,
    scoring: Scoring = TRACE_SCORING,
    stop_at: str | None = TRACE_CLOSE,
) -> ModelEvaluation:
    """Generate for every row (dicts with `prompt`, `expected_trace`, optionally `id` and `index`) and score each
    completion (`scoring`: by default against the reference trace). `thinking`: the model thinks first (no early
    stop at the first `stop_at`, the end of the answer: by default `</execution_trace>`); `opens_think`: the prompt
    already opened the `<think>` block (default: as `thinking`)."""
    started = time.perf_counter()
    common = dict(
        max_new_tokens=max_new_tokens,
        progress=progress,
        stop_at=None if thinking else stop_at,
        sampling=sampling,
        seed=seed,
        chat_template_kwargs=chat_template_kwargs,
    )
    prompts = [r["prompt"] for r in rows]
    if hasattr(model, "complete"):  # a vLLM engine (trainer.vllm_eval): it batches by itself
        completions, cut_off = model.complete(tokenizer, prompts, **common)
    else:
        completions, cut_off = generate(model, tokenizer, prompts, batch_size=batch_size, **common)
    opens = thinking if opens_think is None else opens_think
    predictions = []
    for i, (r, c, cut) in enumerate(zip(rows, completions, cut_off)):
        predictions.append(
            {
                "model": label,
                "id": r.get("id", i),
                "index": r.get("index", i),
                "completion": c,
                **scoring.score(r, c, opens),
                "cut_off": cut,
                "tokens": len(tokenizer(c, add_special_tokens=False).input_ids),
            }
        )
    return ModelEvaluation(scoring.summarize(predictions), predictions, time.perf_counter() - started)


def _duration(seconds: float) -> str:
    return (
        f"{seconds:.0f} s"
        if seconds < 90
        else f"{seconds / 60:.0f} min"
        if seconds < 5400
        else f"{seconds / 3600:.1f} h"
    )


def default_batch_size(on_gpu: bool) -> int:
    return 16 if on_gpu else 4


def auto_max_new_tokens(tokenizer, rows, margin: int | None = None) -> int:
    """The token budget that cuts off no right answer: the longest reference trace of `rows` in tokens (in the
    notation the model is asked for), plus a margin. (A completion longer than that is longer than every
    reference, so it cannot be exact.)"""
    from trainer.prompts import target_traces
    from trainer.thinking import MARGIN, reference_tokens

    return reference_tokens(tokenizer, target_traces(rows)) + (MARGIN if margin is None else margin)


@dataclass(frozen=True)
class BasePrompt:
    """One more way to ask the base model in the same evaluation (CRUXEval's own prompts, `trainer.benchmark`):
    `rows` like the evaluation's (the same items in the same order) whose `prompt` is a text, sent as one user
    message through the chat template with the run's thinking policy (`chat`) or as the model's whole input with
    no template (`raw`: a raw completion, so no thinking); `auto` is chat for a model that thinks, raw otherwise.
    A completion gets up to `max_new_tokens` (plus the thinking budget where the model thinks) and, where it does
    not think, ends at its first `stop_at`. `record`: what the results say of it, under `base_prompts`."""

    rows: list
    max_new_tokens: int
    stop_at: str | None = None
    format: str = "auto"  # raw | chat | auto
    record: dict = field(default_factory=dict)


def evaluate_adapter(
    base,
    adapter_dir,
    rows,
    *,
    batch_size: int | None = None,
    max_new_tokens: int | None = None,
    thinking=None,
    thinking_budget: int | None = None,
    greedy: bool = False,
    seed: int = 0,
    extra_adapters: dict | None = None,
    labels: dict | None = None,
    include_base: bool = True,
    dataset_name: str = "",
    split: str = "test",
    output: str | Path | None = None,
    dtype: str | None = None,
    scoring: Scoring = TRACE_SCORING,
    record: dict | None = None,
    use_cache: bool = True,
    backend: str = "auto",
    prompt_style: str | None = None,
    base_name: str = "base",
    base_prompts: dict[str, BasePrompt] | None = None,
    base_on_rows: bool = True,
    adapter_prompts: dict[str, BasePrompt] | None = None,
    adapter_on_rows: bool = True,
) -> dict | None:
    """Evaluate the base model, the adapters in `extra_adapters` ({name: folder}, e.g. the SFT warm start) and the
    adapter in `adapter_dir` (None: the base model alone) on `rows`; write the results JSON (default: next to the
    adapter) and the per-row predictions beside it; return the results. `scoring`: what is measured (default:
    the predicted traces against the reference traces); `record`: further fields for the results' head.

    With several processes each evaluates every world_size-th row (each program exactly once), the main process
    gathers the per-row scores, computes the metrics, writes the files and returns the results; the others
    return None.

    `thinking`: the `ThinkingPolicy` the adapter was trained with (default: `auto` on this tokenizer). A thinking
    run decodes as Qwen recommends for its thinking models (temperature 0.6, top-p 0.95, top-k 20, from `seed`)
    unless `greedy`; a model that answers directly decodes greedily. `max_new_tokens=None`: the longest reference
    trace plus a margin, plus `thinking_budget` for a thinking run (a `BasePrompt` has its own budget).

    Each adapter is merged into a freshly loaded base model for its evaluation (the same numbers as the unmerged
    adapter up to rounding, and no LoRA overhead in generation). `dtype`: "float32" or "bfloat16" weights, the
    trained ones [default: bf16 on a GPU that supports it, else fp32]. `use_cache`: take the base model's figures
    from an identical earlier evaluation when there is one (`eval_cache`; one process only), and say so; every
    base evaluation of one process is stored for the next. `backend`: `auto` generates with vLLM where it can
    (`vllm_eval`: installed, a GPU, one process) and with transformers otherwise; `vllm` insists; `transformers`.
    A vLLM evaluation that fails starts again with transformers, with a warning.

    Rows with a `base_prompt` (the `minimal` prompt style) prompt the base model with it and every adapter with
    `prompt`; `prompt_style` (the adapters' style) names both in the results (`prompts`). The base model asked
    with the rows is `base_name` in the results; `base_prompts` ({name: `BasePrompt`}) asks it other ways too,
    each its own entry, evaluated first (and cached, and left out with the base: `include_base=False`);
    `base_on_rows=False` asks the base model those other ways only. `adapter_prompts` asks the adapter in
    `adapter_dir` other ways too (after its own prompt, on the same merged model; under `adapter_prompts` in the
    results), as it was trained to answer besides the traces (`trainer.answers`); `adapter_on_rows=False` asks it
    those other ways only, and the `extra_adapters` not at all (an adapter trained on direct answers alone)."""
    import torch
    from peft import PeftModel

    from trainer import distributed, vllm_eval
    from trainer.models import load_model, load_tokenizer, resolve_model
    from trainer.prompts import BASE_PROMPT_COLUMN, base_style_for
    from trainer.settings import TrainError
    from trainer.thinking import (
        MARGIN,
        QWEN_SAMPLING,
        context_room,
        default_thinking_budget,
        prompt_tokens,
        thinking_policy,
    )

    distributed.start()  # under torchrun without `run` (evaluate-traces): join the process group
    source = resolve_model(base) if isinstance(base, str) else base
    rows = [dict(r, index=i) for i, r in enumerate(rows)]
    on_gpu = torch.cuda.is_available()
    batch_size = batch_size or default_batch_size(on_gpu)
    torch_dtype = getattr(torch, dtype) if dtype else None
    device = distributed.device()
    rank, world = distributed.rank(), distributed.world_size()
    with_vllm, why_not = vllm_eval.usable(backend, world)
    if backend == "vllm" and not with_vllm:
        raise TrainError(f"the vllm evaluation backend cannot run here: {why_not}.")
    tokenizer = load_tokenizer(source)
    policy = thinking if thinking is not None else thinking_policy(tokenizer, "auto")
    if thinking_budget is None:
        thinking_budget = default_thinking_budget(on_gpu)
    given = bool(max_new_tokens)
    if given:
        rule = "given"
    elif policy.enabled:
        max_new_tokens = auto_max_new_tokens(tokenizer, rows) + thinking_budget
        rule = f"longest reference trace + {MARGIN} + thinking budget {thinking_budget}"
    else:
        max_new_tokens = auto_max_new_tokens(tokenizer, rows)
        rule = f"longest reference trace + {MARGIN} tokens"
    adapters = {**(extra_adapters or {}), **({"adapter": adapter_dir} if adapter_dir is not None else {})}
    with_base = include_base or not adapters
    asks = (base_prompts or {}) if with_base else {}
    adapter_asks = (adapter_prompts or {}) if adapter_dir is not None else {}
    # the base model's prompt where it differs from the adapters' (it has not learned the minimal format)
    base_rows = [dict(r, prompt=r.get(BASE_PROMPT_COLUMN) or r["prompt"]) for r in rows]
    every_ask = {**asks, **adapter_asks}
    chat = {name: ask.format == "chat" or (ask.format == "auto" and policy.enabled) for name, ask in every_ask.items()}
    ask_rows = {
        name: [
            dict(r, index=i, prompt=[{"role": "user", "content": r["prompt"]}] if chat[name] else r["prompt"])
            for i, r in enumerate(ask.rows)
        ]
        for name, ask in every_ask.items()
    }
    everything = rows + base_rows + [r for share in ask_rows.values() for r in share]
    longest_prompt = prompt_tokens(tokenizer, [r["prompt"] for r in everything], policy.chat_template_kwargs)
    _, room = context_room(source.path, longest_prompt)

    def capped(budget: int, why: str) -> tuple[int, str]:
        if room is not None and budget > room:
            return room, why + ", capped at what the model's context leaves after the longest prompt"
        return budget, why

    if not given:
        max_new_tokens, rule = capped(max_new_tokens, rule)
    sampling = None if (greedy or not policy.enabled) else dict(QWEN_SAMPLING)
    # every pass: the rows it asks, its budget, whether the model thinks in it and where an answer ends
    passes = {}
    for name, ask in every_ask.items():
        thinks = chat[name] and policy.enabled
        budget, why = ask.max_new_tokens, f"{ask.max_new_tokens} tokens"
        if thinks:
            budget, why = budget + thinking_budget, f"{why} + thinking budget {thinking_budget}"
        budget, why = capped(budget, why)
        passes[name] = {
            "rows": ask_rows[name],
            "max_new_tokens": budget,
            "thinks": thinks,
            "opens_think": chat[name] and policy.opens_think,
            "stop_at": ask.stop_at,
            "record": {
                **ask.record,
                "format": "chat" if chat[name] else "raw",
                "thinking": thinks,
                "max_new_tokens": budget,
                "max_new_tokens_rule": why,
                "stop_at": None if thinks else ask.stop_at,
            },
        }
    traces = {
        "max_new_tokens": max_new_tokens,
        "thinks": policy.enabled,
        "opens_think": policy.opens_think,
        "stop_at": TRACE_CLOSE,
    }
    if with_base and (base_on_rows or not asks):
        passes[base_name] = {"rows": base_rows, **traces}
    passes.update(
        {
            name: {"rows": rows, "folder": folder, **traces}
            for name, folder in adapters.items()
            if adapter_on_rows or not adapter_asks
        }
    )
    if not any(name in passes for name in (base_name, *adapters)):  # nobody asked for a trace: no trace budget
        max_new_tokens, rule = None, "no trace prompt asked; each prompt's own budget is in its entry"
    for name in adapter_asks:  # asked after the adapter's own prompt, on the same merged model
        passes[name] = {**passes.pop(name), "folder": adapter_dir, "adapter": "adapter"}  # after its traces, if any
    model = None
    if with_vllm:
        longest_budget = max(p["max_new_tokens"] for p in passes.values())
        try:
            model = vllm_eval.VllmModel(
                source, adapters=adapters, max_model_len=longest_prompt + longest_budget, dtype=dtype, seed=seed
            )
        except Exception as exc:  # a missing kernel, too little memory: the evaluation still happens
            logger.warning(
                f"vLLM did not start ({type(exc).__name__}: {str(exc)[:200]}); evaluating with transformers instead."
            )
    if model is None:
        tokenizer, model = load_model(source, dtype=torch_dtype, device=device)
    names = list(passes)
    titles = {base_name: "Base", "adapter": "Adapter", **(labels or {})}
    results: dict = {
        **(record or {}),
        "dataset": dataset_name,
        "split": split,
        "n": len(rows),
        "decoding": {
            "greedy": sampling is None,
            "sampling": sampling,
            "seed": None if sampling is None else seed,
            "seed_rule": None if sampling is None else "seed + process rank, set before each model's pass",
            "max_new_tokens": max_new_tokens,
            "max_new_tokens_rule": rule,
            "batch_size": batch_size,
            "stop_at_trace_end": not policy.enabled,
            "backend": "vllm" if isinstance(model, vllm_eval.VllmModel) else "transformers",
            "dtype": model.dtype
            if isinstance(model, vllm_eval.VllmModel)
            else str(next(model.parameters()).dtype).replace("torch.", ""),
            "processes": world,
        },
        "thinking": policy.record(),
        "thinking_template": policy.opens_think,
        "base_model": source.base_model_id or source.spec,
        "labels": {name: titles.get(name, name) for name in names},
        "models": {},
    }
    if asks:
        results["base_prompts"] = {name: passes[name]["record"] for name in asks}
    if adapter_asks:
        results["adapter_prompts"] = {name: passes[name]["record"] for name in adapter_asks}
    if prompt_style:
        results["prompts"] = {
            name: every_ask[name].record.get("prompt", name)
            if name in every_ask
            else base_style_for(prompt_style)
            if name == base_name
            else prompt_style
            for name in names
        }

    def progress_for(name):
        started = time.perf_counter()

        def report(done, total, tokens=0):
            """After each batch: done of total, the rate in items and generated tokens, and the time left at that
            rate (a log line, not a bar: it reads the same in a terminal, a log file and under torchrun)."""
            spent = time.perf_counter() - started
            left = spent / done * (total - done) if done else 0.0
            logger.info(
                f"  {name}: {done}/{total} {scoring.unit}"
                + (" (this process's share)" if world > 1 else "")
                + (
                    f", {done / spent:.2f} {scoring.unit}/s, {tokens / spent:.0f} tokens/s, about {_duration(left)} left"
                    if spent > 0 and done < total
                    else ""
                )
            )

        return report

    predictions = []
    cache_keys = {}
    if world == 1 and with_base:  # stored even with use_cache=False: that run refreshes the entry
        from trainer import eval_cache

        decoding = {k: v for k, v in results["decoding"].items() if k not in ("seed_rule", "processes")}
        if base_name in passes:
            cache_keys[base_name] = eval_cache.cache_key(
                source, base_rows, decoding, results["thinking"], scoring.results_file
            )
        for name in asks:  # each other way of asking: its own prompts, budget and end of answer in the key
            asked = {**decoding, **passes[name]["record"]}
            cache_keys[name] = eval_cache.cache_key(
                source, passes[name]["rows"], asked, results["thinking"], f"{scoring.results_file}#{name}"
            )

    def evaluate(name):
        setting = passes[name]
        if use_cache and name in cache_keys and (cached := eval_cache.load(cache_keys[name])) is not None:
            metrics, gathered = cached
            # this run spent nothing on it: its seconds are 0, the original ones kept beside them
            results["models"][name] = {
                **metrics,
                "from_cache": True,
                "seconds": 0.0,
                "seconds_when_measured": metrics.get("seconds"),
            }
            predictions.extend(dict(p, model=name) for p in gathered)
            logger.info(
                f"  {titles.get(name, name)}: {scoring.describe(metrics)} (from the cache of an identical earlier "
                "evaluation: same model, prompts, decoding and libraries)"
            )
            return
        how = (
            "greedy"
            if sampling is None
            else f"sampled: temperature {sampling['temperature']}, top-p "
            f"{sampling['top_p']}, top-k {sampling['top_k']}, seed {seed}"
        )
        logger.info(
            f"Evaluating {titles.get(name, name)} on {len(rows)} {scoring.unit} ({how}, up to "
            f"{setting['max_new_tokens']} new tokens{f', over {world} processes' if world > 1 else ''})..."
        )
        started = time.perf_counter()
        evaluation = evaluate_model(
            model,
            tokenizer,
            setting["rows"][rank::world],
            thinking=setting["thinks"],
            opens_think=setting["opens_think"],
            batch_size=batch_size,
            max_new_tokens=setting["max_new_tokens"],
            label=name,
            progress=progress_for(name),
            sampling=sampling,
            seed=seed + rank,
            chat_template_kwargs=policy.chat_template_kwargs,
            scoring=scoring,
            stop_at=setting["stop_at"],
        )
        shares = distributed.gather(evaluation.predictions)
        if shares is None:
            return
        gathered = sorted((p for share in shares for p in share), key=lambda p: p["index"])
        metrics = scoring.summarize(gathered)
        seconds = time.perf_counter() - started
        generated = sum(p.get("tokens", 0) for p in gathered)  # what decoding cost: tokens written, per second
        results["models"][name] = {
            **metrics,
            "seconds": round(seconds, 2),
            "generated_tokens": generated,
            "tokens_per_second": round(generated / max(seconds, 1e-9), 1),
        }
        predictions.extend(gathered)
        logger.info(f"  {titles.get(name, name)}: {scoring.describe(metrics)} ({seconds:.0f} s)")
        if name in cache_keys:
            eval_cache.store(cache_keys[name], results["models"][name], gathered)

    def evaluate_all() -> None:
        nonlocal model
        merged = None  # the adapter merged into the loaded model (None: none yet)
        for name, setting in passes.items():
            folder = setting.get("folder")
            if isinstance(model, vllm_eval.VllmModel):
                model.use(setting.get("adapter", name), folder)  # the base (None), or a LoRA on the same engine
            elif folder is not None and folder != merged:
                if merged is not None:
                    del model
                    _, model = load_model(source, dtype=torch_dtype, device=device)
                model = PeftModel.from_pretrained(model, str(folder)).merge_and_unload()
                merged = folder
            evaluate(name)

    try:
        evaluate_all()
    except Exception as exc:
        if not isinstance(model, vllm_eval.VllmModel):
            raise
        logger.warning(
            f"the vLLM evaluation failed ({type(exc).__name__}: {str(exc)[:200]}); evaluating again with transformers."
        )
        model.close()
        results["models"].clear()
        predictions.clear()
        cache_keys.clear()  # the keys named the vLLM backend: nothing from this pass is cached under them
        results["decoding"]["backend"] = "transformers"
        tokenizer, model = load_model(source, dtype=torch_dtype, device=device)
        results["decoding"]["dtype"] = str(next(model.parameters()).dtype).replace("torch.", "")
        evaluate_all()
    if isinstance(model, vllm_eval.VllmModel):
        model.close()
    model = None  # the weights go now, not when the results are written
    if not distributed.is_main():
        return None
    if scoring.conclude:  # what the scoring makes of every model's predictions together (e.g. a paired interval)
        results.update(scoring.conclude(results, predictions))
    output = Path(output) if output else Path(adapter_dir if adapter_dir is not None else ".") / scoring.results_file
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n")
    with open(predictions_path(output, scoring), "w") as handle:
        for p in predictions:
            handle.write(json.dumps({k: v for k, v in p.items() if k != "index"}) + "\n")
    return results


def format_table(results: dict) -> str:
    """A Markdown table of the metrics, base vs adapter(s) (percentages)."""
    models = results.get("models", {})
    names = [m for m in ("base", "sft", "adapter") if m in models] + [
        m for m in models if m not in ("base", "sft", "adapter")
    ]
    titles = {"base": "Base", "adapter": "Adapter", "sft": "SFT only", **(results.get("labels") or {})}
    lines = [
        "| Metric | " + " | ".join(titles.get(n, n) for n in names) + " |",
        "| --- | " + " | ".join("---:" for _ in names) + " |",
    ]
    for key, title in METRICS:
        if not all(key in models[n] for n in names):
            continue
        cells = []
        for n in names:
            value = models[n][key]
            cells.append(f"{value:.3f}" if key == "mean_reward" else f"{100 * value:.1f}%")
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    for benchmark, figures in (results.get("benchmarks") or {}).items():  # one line each: its headline figure
        from trainer.benchmark import title as entry_title

        scores = dict(figures.get("models", {}))
        best, compared, how = figures.get("best_base"), figures.get("compared_adapter"), {}
        if best in scores and best != "base":  # the base column: the base at its best, saying how it was asked
            scores["base"], how["base"] = scores[best], f" ({entry_title(figures, best).removeprefix('Base, ')})"
        if compared in scores and compared != "adapter":  # the adapter column: asked as it was trained to answer
            scores["adapter"], how["adapter"] = scores[compared], " (CRUXEval's direct prompt)"
        if all(n in scores for n in names):
            title = f"{BENCHMARK_TITLES.get(benchmark, benchmark)} ({figures.get('n', 0)} items)"
            lines.append(
                f"| {title} | "
                + " | ".join(f"{100 * scores[n]['output_accuracy']:.1f}%" + how.get(n, "") for n in names)
                + " |"
            )
    return "\n".join(lines)


def is_finite_results(results: dict) -> bool:
    return all(
        isinstance(v, (int, float)) and math.isfinite(v) for m in results.get("models", {}).values() for v in m.values()
    )
