"""`train-and-push` from top to bottom: `run(settings)`.

    prepare   → check the settings, resolve the model, load the data, pick and order the training programs, the
                thinking policy and the completion budget (trainer.prepare)
    sft       → optional warm start in OUTPUT/sft/adapter (trainer.sft; `--sft-epochs` / `--sft-steps`)
    grpo      → GRPO continuing that adapter or a fresh LoRA; OUTPUT/adapter (trainer.grpo; `--max-steps 0`: none,
                the SFT adapter is the adapter)
    scale     → optional: the adapter's update scaled (`--adapter-scale`; several: chosen on function calls held
                out of training), the adapter as trained kept in OUTPUT/unscaled-adapter (trainer.scaling)
    evaluate  → base vs (SFT only vs) adapter on the test split, sharded across processes (trainer.evaluate);
                with --benchmark cruxeval, on CRUXEval-O too (trainer.benchmark)
    record    → OUTPUT/adapter/training_run.json with the learning signal and its warnings (trainer.record)
    card      → OUTPUT/adapter/README.md and reward_curve.png (trainer.card)
    push      → OUTPUT/adapter to the Hub (trainer.push), unless the run learned nothing and --fail-on-no-signal

With several processes (torchrun, accelerate launch) every one trains and evaluates its share; the main process
alone writes and pushes (trainer.distributed).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

from trainer import distributed
from trainer.grpo import train
from trainer.prepare import prepare
from trainer.push import push
from trainer.record import dataset_label, dataset_name, run_record, write_run
from trainer.settings import (
    ADAPTER_DIR,
    LOG_FILE,
    PLAN_FILE,
    PLOT_FILE,
    RUN_ITEMS,
    SFT_DIR,
    UNSCALED_DIR,
    NoSignalError,
    Plan,
    RunResult,
    TrainSettings,
    set_cpu_threads,
)
from trainer.sft import sft, sft_only_summary

logger = logging.getLogger(__name__)


def run(settings: TrainSettings, callbacks=(), process_started: float | None = None) -> RunResult:
    """Everything `train-and-push` does: (SFT warm start,) GRPO, evaluate, write the record, the card and the plot,
    push. With several processes every one trains and evaluates its share; the main process alone writes and
    pushes. `process_started`: `time.time()` when the process started (the CLI's), for the start-up and total
    times."""
    from trainer.card import write_card, write_reward_plot
    from trainer.learning_signal import banner, verdict

    run_started = time.time()
    process_started = process_started or run_started
    distributed.start(settings.ddp_timeout)
    main = distributed.is_main()
    threads = set_cpu_threads(settings)
    timings = {"before_run": round(run_started - process_started, 2)}
    output_dir = settings.resolved_output_dir()
    adapter_dir = output_dir / ADAPTER_DIR

    # 1. prepare: the settings checked, the model resolved, the data loaded, the thinking policy and the budget,
    # the run planned (a GPU run whose plan cannot fit is refused here, before any weight loads)
    plan = prepare(settings)
    if main:
        if settings.overwrite:  # the run this folder held (prepare refused it without --overwrite or --resume)
            for name in RUN_ITEMS:
                shutil.rmtree(output_dir / name, ignore_errors=True)
        output_dir.mkdir(parents=True, exist_ok=True)
        if plan.sizing:
            (output_dir / PLAN_FILE).write_text(json.dumps(plan.sizing, indent=2) + "\n")

    # 2. the SFT warm start (optional), then 3. GRPO continuing its adapter (or only the SFT adapter)
    sft_summary = sft_adapter = None
    if settings.does_sft:
        sft_summary = sft(settings, plan, output_dir, callbacks)
        sft_adapter = output_dir / SFT_DIR / ADAPTER_DIR
        timings["sft"] = sft_summary["seconds"]
    if settings.does_grpo:
        summary = train(settings, plan, output_dir, callbacks, init_adapter=sft_adapter)
        timings["grpo"] = summary["train_seconds"]
    else:
        summary = sft_only_summary(settings, plan, sft_summary, sft_adapter, adapter_dir)
    # start-up: process start to the first training step of this run (a warm start reused by --resume is older)
    starts = [t for t in ((sft_summary or {}).get("started_at"), summary.get("started_at")) if t and t >= run_started]
    timings["startup"] = round((min(starts) if starts else run_started) - process_started, 2)
    timings["train"] = round(sum(timings.get(k, 0.0) for k in ("sft", "grpo")), 2)

    # 3b. --adapter-scale: the trained update scaled (chosen on held-out calls among several), before anything
    # measures, records or pushes the adapter
    if settings.adapter_scale != (1.0,):
        started = time.perf_counter()
        summary["adapter_scale"] = scale_adapter(settings, plan, output_dir, adapter_dir, summary)
        timings["adapter_scale"] = round(time.perf_counter() - started, 2)

    # 4. evaluation: every process its share of the test split; the main process gets the results
    started = time.perf_counter()
    extra = {}
    if sft_adapter is not None and settings.does_grpo and not settings.skip_sft_eval:
        extra["sft"] = sft_adapter
    results = run_evaluation(settings, plan, adapter_dir, summary, extra_adapters=extra)
    timings["evaluate"] = round(time.perf_counter() - started, 2)
    if not main:  # the main process writes, warns and pushes; the others are done
        distributed.finish()
        return RunResult(output_dir, adapter_dir, None, None, timings)
    for name, metrics in results.get("models", {}).items():
        timings[f"evaluate_{name}"] = metrics.get("seconds")
    for benchmark, figures in (results.get("benchmarks") or {}).items():
        for name, metrics in figures.get("models", {}).items():
            timings[f"evaluate_{benchmark}_{name}"] = metrics.get("seconds")

    # 5. the record, the plot and the card, with what the run learned (or did not)
    warnings, no_signal = verdict(plan.warnings, sft_summary, summary if settings.does_grpo else None, results)
    history = json.loads((adapter_dir / LOG_FILE).read_text())
    plot = write_reward_plot(history, adapter_dir / PLOT_FILE, floor=-(summary.get("lazy_answer_penalty") or 0.0))
    timings["total"] = round(time.time() - process_started, 2)  # until this record is written; the push follows
    run_info = run_record(
        settings,
        plan,
        summary,
        sft_summary,
        results,
        threads=threads,
        warnings=warnings,
        no_signal=no_signal,
        timings=timings,
        plot=PLOT_FILE if plot else None,
    )
    write_run(adapter_dir, run_info)
    write_card(adapter_dir, run_info, settings.repo_id or f"your-name/{output_dir.name}")
    logger.info(f"Adapter, metrics and card saved in {adapter_dir}.")
    for line in banner(warnings, no_signal):
        logger.info(line)
    distributed.finish()

    # 6. the push, unless the run learned nothing and --fail-on-no-signal
    if no_signal and settings.fail_on_no_signal:
        raise NoSignalError(
            f"the run learned nothing (no stage changed the adapter; the reasons are listed above "
            f"and in training_run.json), so --fail-on-no-signal stops it before any push; the "
            f"adapter, its record and card are in {adapter_dir}."
        )
    url = None
    if settings.push:
        url = push(output_dir, settings.repo_id, token=settings.token, private=settings.private)
        logger.info(f"Pushed: {url}")
    timings["total_with_push"] = round(time.time() - process_started, 2)
    return RunResult(output_dir, adapter_dir, results, url, timings, warnings)


def dry_run(settings: TrainSettings) -> dict:
    """`--dry-run`: prepare everything a run would (settings, model config and tokenizer, data, thinking policy,
    budgets), print the plan and write OUTPUT/plan.json; no weights load and nothing trains. Returns the plan."""
    from trainer.sizing import describe

    plan = prepare(settings)
    if plan.sizing is None:
        logger.info("Dry run: no GRPO (--max-steps 0), so there is no generation to plan.")
        return {}
    for line in describe(plan.sizing):
        logger.info(line)
    output_dir = settings.resolved_output_dir()
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / PLAN_FILE).write_text(json.dumps(plan.sizing, indent=2) + "\n")
    logger.info(f"Plan written to {output_dir / PLAN_FILE}; nothing was trained.")
    return plan.sizing


def resume_hint(output_dir: Path, does_grpo: bool = True) -> str:
    """What `--resume` would do with what OUTPUT holds now (for the message after Ctrl-C)."""
    from trainer.settings import SFT_RUN_FILE, latest_checkpoint

    grpo = latest_checkpoint(output_dir)
    if grpo:
        return f"--resume continues GRPO from {Path(grpo).name}."
    sft_done = (output_dir / SFT_DIR / ADAPTER_DIR / SFT_RUN_FILE).is_file()
    sft_checkpoint = latest_checkpoint(output_dir / SFT_DIR)
    then = ", then runs GRPO" if does_grpo else ""
    if sft_done:
        return (
            "--resume reuses the finished SFT warm start and starts GRPO from its beginning."
            if does_grpo
            else "--resume reuses the finished SFT warm start and evaluates it."
        )
    if sft_checkpoint:
        return f"--resume continues the SFT warm start from {Path(sft_checkpoint).name}{then}."
    return "no checkpoint was saved yet, so --resume would start from the beginning."


def run_evaluation(
    settings: TrainSettings, plan: Plan, adapter_dir: Path, summary: dict, extra_adapters: dict | None = None
) -> dict | None:
    """Every process evaluates its share of the test programs (and of the benchmark's items, with --benchmark);
    the main process gathers them, writes the files and gets the results (the others get None). The benchmark's
    results go into the test split's under `benchmarks` (and into their own files)."""
    from trainer.evaluate import RESULTS_FILE, evaluate_adapter

    rows = plan.data["test"]
    if settings.eval_limit:
        rows = rows.select(range(min(settings.eval_limit, len(rows))))
    common = dict(
        evaluation_settings(settings, plan, summary),
        extra_adapters=extra_adapters,
        labels=stage_labels(settings),
        prompt_style=settings.prompt_style,
    )
    name = dataset_label(settings) or dataset_name(str(settings.dataset))
    if len(rows):
        results = evaluate_adapter(plan.source, adapter_dir, rows, dataset_name=name, split="test", **common)
    else:  # nothing measured must not look like a measured zero: no figures, and the card says why
        logger.info(
            "The dataset has no test programs, so nothing is evaluated (the card says so and states no figures)."
        )
        results = {"dataset": name, "split": "test", "n": 0, "models": {}} if distributed.is_main() else None
        if results is not None:
            adapter_dir.mkdir(parents=True, exist_ok=True)
            (adapter_dir / RESULTS_FILE).write_text(json.dumps(results, indent=2) + "\n")
    if plan.benchmark is None:
        return results
    from trainer.benchmark import evaluate_benchmark

    benchmark = evaluate_benchmark(
        plan.source,
        adapter_dir,
        plan.benchmark,
        **common,
        cruxeval_prompts=settings.cruxeval_prompts,
        cruxeval_prompt_format=settings.cruxeval_prompt_format,
        direct_answers=settings.direct_answers,
        direct_answers_only=settings.direct_answers_only,
        direct_answers_format=settings.direct_answers_format,
    )
    if results is None:  # not the main process
        return None
    results["benchmarks"] = {benchmark["benchmark"]: benchmark}
    (adapter_dir / RESULTS_FILE).write_text(json.dumps(results, indent=2) + "\n")
    return results


def evaluation_settings(settings: TrainSettings, plan: Plan, summary: dict) -> dict:
    """How every evaluation of the run generates (`trainer.evaluate.evaluate_adapter`'s settings)."""
    return dict(
        batch_size=settings.eval_batch_size,
        max_new_tokens=settings.eval_max_new_tokens,
        thinking=plan.policy,
        thinking_budget=plan.thinking_budget,
        greedy=settings.eval_greedy,
        seed=settings.seed,
        include_base=not settings.skip_base_eval,
        use_cache=settings.eval_cache,
        backend="transformers" if settings.vllm_mode == "off" else "auto",
        dtype=summary["weights_dtype"],
    )


def scale_adapter(settings: TrainSettings, plan: Plan, output_dir: Path, adapter_dir: Path, summary: dict) -> dict:
    """`--adapter-scale`: the scale given, or the one chosen among several on the held-out calls
    (`trainer.scaling.choose_scale`); OUTPUT/adapter scaled by it in place, the adapter as trained kept in
    OUTPUT/unscaled-adapter. Returns the record of it (`training.adapter_scale`), on every process."""
    from trainer.scaling import apply_scale, choose_scale

    scales = settings.adapter_scale
    if len(scales) == 1:
        record = {"scale": scales[0], "chosen_on": None}
    else:
        record = choose_scale(
            plan.source,
            adapter_dir,
            output_dir,
            plan.held_out_calls,
            scales,
            plan.holdout_record,
            **evaluation_settings(settings, plan, summary),
            direct_answers_format=plan.direct_answers_format,
        )
    if record["scale"] != 1:
        record["unscaled_adapter"] = UNSCALED_DIR
        if distributed.is_main():
            apply_scale(adapter_dir, output_dir, record["scale"])
    distributed.barrier()  # every process evaluates the scaled adapter next
    how = "given" if record["chosen_on"] is None else f"chosen on {len(plan.held_out_calls)} held-out function calls"
    logger.info(f"Adapter scale {record['scale']:g} ({how}): the trained update scaled by it.")
    return record


def stage_labels(settings: TrainSettings) -> dict | None:
    """Column titles of the results table for what was trained."""
    if settings.does_sft and settings.does_grpo:
        return {"base": "Base", "sft": "SFT only", "adapter": "SFT + GRPO"}
    if settings.does_sft:
        return {"base": "Base", "adapter": "SFT only"}
    return None
