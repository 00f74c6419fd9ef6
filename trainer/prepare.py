"""Before any model loads: check the settings, resolve the model (the main process first), load the data in the
chosen prompt style, pick and order the training programs, read the chat template's thinking policy and measure
what the completion budget needs. Everything that would fail late fails here, in one sentence."""

from __future__ import annotations

import logging

from trainer import distributed
from trainer.grpo import grpo_config_kwargs, make_grpo_config
from trainer.models import resolve_model
from trainer.settings import Plan, TrainError, TrainSettings, on_gpu, slow_bf16_warning
from trainer.sizing import refusal

logger = logging.getLogger(__name__)


def prepare(settings: TrainSettings) -> Plan:
    """Resolve the model and the dataset, decide the thinking policy and the completion budget, and check
    everything that would otherwise fail after training (or after a model loaded)."""
    from trainer.data import load_trace_dataset

    if settings.push and not settings.dry_run:
        if not settings.repo_id:
            raise TrainError("--repo-id USER/NAME is required unless --no-push is given.")
        # fail now, not after training: no token, or a malformed id
        from hub.auth import check_repo_id, resolve_token

        check_repo_id(settings.repo_id)
        settings.token = resolve_token(settings.token)
    check_output_dir(settings.resolved_output_dir())
    if not settings.dry_run:
        check_no_other_run(settings)
    if settings.epochs is not None and settings.epochs <= 0:
        raise TrainError("--epochs must be more than 0 (--max-steps 0 skips GRPO).")
    if settings.eval_limit is not None and settings.eval_limit < 1:
        raise TrainError("--eval-limit must be at least 1 (leave it out to evaluate the whole test split).")
    if settings.train_limit is not None and settings.train_limit < 1:
        raise TrainError("--train-limit must be at least 1.")
    if settings.lora_r < 1 or settings.lora_alpha <= 0:
        raise TrainError("--lora-r and --lora-alpha must be positive.")
    if settings.max_steps is not None and settings.max_steps < 0:
        raise TrainError("--max-steps must be 0 (no GRPO, with an SFT warm start) or more.")
    if settings.prompt_style == "minimal" and not settings.does_sft and not settings.direct_answers_only:
        raise TrainError(
            "--prompt-style minimal needs an SFT warm start to learn the format (--sft-epochs or "
            "--sft-steps); use --prompt-style compact without one."
        )
    settings.direct_answers = settings.direct_answers or settings.direct_answers_only
    from trainer.answers import FORMATS

    if settings.direct_answers_format not in FORMATS:
        raise TrainError(f"--direct-answers-format must be one of {', '.join(FORMATS)}.")
    if settings.lazy_answer_penalty and not settings.direct_answers:
        raise TrainError("--lazy-answer-penalty scores direct answers, so it goes with --direct-answers(-only).")
    if not 0 <= settings.lazy_answer_penalty <= 1:
        raise TrainError("--lazy-answer-penalty must be between 0 and 1 (a lazy answer scores minus it).")
    if settings.lazy_answer_penalty and not settings.does_grpo:
        raise TrainError("--lazy-answer-penalty is part of GRPO's reward, and --max-steps 0 runs no GRPO.")
    if len(settings.adapter_scale) > 1 and not settings.direct_answers:
        raise TrainError(
            "choosing among several --adapter-scale values asks held-out function calls CRUXEval's direct prompt, "
            "so it goes with --direct-answers or --direct-answers-only (give one scale otherwise)."
        )
    if settings.scale_calls and len(settings.adapter_scale) < 2:
        raise TrainError("--scale-calls goes with several --adapter-scale values (the calls to choose among them on).")
    if settings.direct_answers_format == "raw" and not settings.direct_answers_only:
        raise TrainError(
            "--direct-answers-format raw goes with --direct-answers-only: the traces are chat turns, and one run's "
            "prompts are all of one kind."
        )
    if not settings.does_grpo and not settings.does_sft:
        raise TrainError("--max-steps 0 trains nothing without an SFT warm start (--sft-epochs or --sft-steps).")
    if (settings.sft_steps or 0) < 0 or (settings.sft_epochs or 0) < 0 or settings.sft_batch_size < 1:
        raise TrainError("--sft-steps, --sft-epochs and --sft-batch-size must be positive.")
    if settings.sft_max_length is not None and settings.sft_max_length < 1:
        raise TrainError("--sft-max-length must be positive.")
    if settings.max_trace_steps is not None and settings.max_trace_steps < 1:
        raise TrainError("--max-trace-steps must be at least 1.")
    if settings.thinking_budget is not None and settings.thinking_budget < 0:
        raise TrainError("--thinking-budget must be 0 or more.")
    if not settings.benchmark and (settings.benchmark_data or settings.benchmark_limit):
        raise TrainError("--benchmark-data and --benchmark-limit go with --benchmark cruxeval.")
    if settings.benchmark:
        from trainer.benchmark import PROMPT_FORMATS, parse_prompts

        if settings.cruxeval_prompt_format not in PROMPT_FORMATS:
            raise TrainError(f"--cruxeval-prompt-format must be one of {', '.join(PROMPT_FORMATS)}.")
        try:
            parse_prompts(",".join(settings.cruxeval_prompts) or "none")
        except ValueError as exc:
            raise TrainError(str(exc)) from None
    if settings.report_to != "none":
        import importlib.util

        from trainer.settings import REPORTERS

        if settings.report_to not in REPORTERS:
            raise TrainError(f"--report-to must be one of {', '.join(REPORTERS)}.")
        if importlib.util.find_spec(settings.report_to) is None:
            raise TrainError(
                f"--report-to {settings.report_to} needs the {settings.report_to} package, which is not "
                f"installed: pip install {settings.report_to}."
            )
    if settings.plan_gpus is not None and (not settings.dry_run or settings.plan_gpus < 1):
        raise TrainError("--plan-gpus N (at least 1) goes with --dry-run.")
    if settings.ddp_timeout < 1:
        raise TrainError("--ddp-timeout must be at least 1 second.")
    gpu = settings.planned_gpu
    if settings.vllm_mode in ("colocate", "server"):
        from trainer.grpo import vllm_installed

        if not gpu:
            raise TrainError(f"--vllm-mode {settings.vllm_mode} needs a GPU, and this machine has none.")
        if not settings.dry_run and not vllm_installed():
            raise TrainError(
                f"--vllm-mode {settings.vllm_mode} needs vLLM, which is not installed: install the vllm "
                "extra on the GPU machine (pip install -e '.[train,vllm]', see docs/vllm.md)."
            )
    kwargs = grpo_config_kwargs(settings, settings.resolved_output_dir(), gpu)
    if gpu == on_gpu():  # a dry run that plans GPUs on a machine without one cannot build their config here
        check_vllm(kwargs, gpu)
        make_grpo_config(kwargs)  # bad settings: now
    # the main process builds or converts the model first (a GGUF conversion writes the cache), then the others
    with main_first():
        source = resolve_model(settings.model, settings.base_model_id)
    if settings.push and not settings.dry_run and not source.base_model_id:
        raise TrainError(
            f"the adapter must name its base model's Hub id, which {settings.model} does not tell: pass "
            "--base-model-id ID or --no-push."
        )
    logger.info(f"Loading dataset {settings.dataset}...")
    data = load_trace_dataset(settings.dataset)
    if len(data["train"]) == 0:
        raise TrainError(f"the train split of {settings.dataset} is empty.")
    from trainer.prompts import apply_prompt_style, target_traces

    try:
        data = type(data)({name: apply_prompt_style(split, settings.prompt_style) for name, split in data.items()})
    except ValueError as exc:
        raise TrainError(str(exc)) from None
    rows, described = select_training_rows(settings, data["train"])
    benchmark = None
    if settings.benchmark:  # loaded and traced now: a bad file or a missing sandbox fails before training
        from trainer.benchmark import prepare_benchmark

        benchmark = prepare_benchmark(
            settings.benchmark_data, limit=settings.benchmark_limit, prompt_style=settings.prompt_style
        )
        from trainer.benchmark import leave_out_shared_structures

        rows = leave_out_shared_structures(rows, benchmark)
        if len(rows) == 0:
            raise TrainError(
                "every training program has the structure of a CRUXEval item; nothing is left to train on."
            )
    held_out, holdout_record = [], None
    if len(settings.adapter_scale) > 1:  # calls kept out of training to choose the scale on (trainer.scaling)
        from trainer.scaling import calls_from, hold_out_calls

        try:
            if settings.scale_calls:  # another build's calls, e.g. of longer traces than the training calls
                avoid = benchmark.structures if benchmark else frozenset()
                held_out, holdout_record = calls_from(settings.scale_calls, rows, settings.scale_holdout, avoid)
            else:
                rows, held_out, holdout_record = hold_out_calls(rows, settings.scale_holdout)
        except ValueError as exc:
            raise TrainError(str(exc)) from None
        logger.info(
            f"Adapter scale: {len(held_out)} function calls "
            + (f"of {settings.scale_calls}" if settings.scale_calls else "held out of training")
            + f" to choose among {', '.join(f'{s:g}' for s in settings.adapter_scale)} ("
            + (
                f"{holdout_record['skipped_shared_structure']} others skipped for a training program's structure)."
                if settings.scale_calls
                else f"{holdout_record['left_out_of_training']} training programs left out with them: those calls "
                "and every program sharing their structure)."
            )
        )
    answers = []
    if settings.direct_answers:
        from trainer.answers import answer_examples

        answers = answer_examples(rows)
        if not answers:
            raise TrainError(
                "--direct-answers found no training program that is a function called with literal "
                "arguments; build the dataset with --drill-share and --drill-kind calls."
            )
        stages = " and ".join(s for s, on in (("SFT", settings.does_sft), ("GRPO", settings.does_grpo)) if on)
        verb = "train" if " " in stages else "trains"
        logger.info(
            f"Direct answers: {len(answers)} of the {len(rows)} training programs are functions called with literal "
            + (
                f"arguments; {stages} {verb} on their answers to CRUXEval's direct prompt alone, no traces."
                if settings.direct_answers_only
                else f"arguments; {stages} also {verb} them to answer CRUXEval's direct prompt."
            )
        )
    from trainer.models import load_tokenizer
    from trainer.thinking import (
        ThinkingError,
        completion_budget,
        context_room,
        default_thinking_budget,
        prompt_tokens,
        reference_tokens,
        thinking_policy,
    )

    tokenizer = load_tokenizer(source)
    try:
        policy = thinking_policy(tokenizer, settings.thinking, settings.model)
    except ThinkingError as exc:
        raise TrainError(str(exc)) from None
    # what GRPO generates for: the training programs' traces and the direct answers (`--direct-answers-only`: those)
    from trainer.answers import training_prompt

    prompts = [] if settings.direct_answers_only else list(rows["prompt"])
    references = [] if settings.direct_answers_only else target_traces(rows)
    prompts += [training_prompt(a, settings.direct_answers_format) for a in answers]
    longest_prompt = prompt_tokens(tokenizer, prompts, policy.chat_template_kwargs)
    context, room = context_room(source.path, longest_prompt)
    plan = Plan(
        source=source,
        data=data,
        rows=rows,
        described=described,
        policy=policy,
        thinking_budget=settings.thinking_budget
        if settings.thinking_budget is not None
        else default_thinking_budget(gpu),
        longest_reference=reference_tokens(tokenizer, references + [a["answer"] for a in answers]),
        gpu=gpu,
        room=room,
        world_size=settings.plan_gpus or distributed.world_size(),
        benchmark=benchmark,
        answers=answers,
        direct_answers_only=settings.direct_answers_only,
        direct_answers_format=settings.direct_answers_format,
        prompt_tokens_max=longest_prompt,
        held_out_calls=held_out,
        holdout_record=holdout_record,
    )
    logger.info(
        f"Chat template: {policy.template}; thinking {'on' if policy.enabled else 'off'} (--thinking "
        f"{settings.thinking}){'; ' + str(policy.chat_template_kwargs) if policy.chat_template_kwargs else ''}. "
        f"Longest reference {'answer' if settings.direct_answers_only else 'trace'}: {plan.longest_reference} tokens."
    )
    if not gpu and settings.dtype == "bfloat16" and (slow := slow_bf16_warning()):
        plan.warnings.append(slow)
        logger.warning(slow)
    uncapped = completion_budget(plan.longest_reference, policy, plan.thinking_budget)
    if settings.does_grpo and settings.max_completion_length is None and room is not None and uncapped > room:
        plan.warnings.append(
            f"The completion budget the data asks for ({uncapped} tokens: the longest reference trace "
            f"{plan.longest_reference} + margin{' + thinking' if policy.enabled else ''}) does not fit the model's "
            f"{context}-token context after the longest prompt ({longest_prompt} tokens), so completions are capped "
            f"at {room} tokens and the longest traces cannot be written in full (--max-trace-steps N trains on "
            "shorter ones)."
        )
        logger.warning(plan.warnings[-1])
    if settings.does_grpo:
        try:
            plan.sizing = size_grpo(settings, plan)
        except Exception as exc:  # a config the meta-device count cannot build (remote code, say): run unplanned
            plan.warnings.append(
                f"The run could not be planned ({type(exc).__name__}: {str(exc)[:200]}), so its "
                "memory was not checked before loading the model."
            )
            logger.warning(plan.warnings[-1])
        problem = refusal(plan.sizing) if plan.sizing else None
        if problem and not settings.dry_run:
            raise TrainError(problem)
    return plan


def size_grpo(settings: TrainSettings, plan: Plan) -> dict:
    """The GRPO run's plan (trainer.sizing) from the model's config, the data and the config the run will use."""
    from transformers import AutoConfig

    from trainer.grpo import vllm_installed
    from trainer.lora import lora_layers
    from trainer.settings import LORA_TARGETS
    from trainer.sizing import gpu_memory_gb, size_run

    kwargs = grpo_config_kwargs(settings, settings.resolved_output_dir(), plan.gpu, plan)
    config = AutoConfig.from_pretrained(plan.source.path)
    return size_run(
        config=config,
        kwargs=kwargs,
        prompt_tokens_max=plan.prompt_tokens_max,
        train_rows=plan.grpo_prompts,
        world_size=plan.world_size,
        gpu=plan.gpu,
        lora_targets=LORA_TARGETS,
        lora_r=settings.lora_r,
        lora_layers=lora_layers(settings, config.num_hidden_layers),
        gpu_memory=gpu_memory_gb(settings.gpu_memory_gb) if plan.gpu else None,
        vllm_installed=vllm_installed(),
    )


def check_output_dir(folder) -> None:
    """--output-dir must be a folder this process can make and write in: say so now, not after the model loaded
    (and leave nothing behind: the check writes and removes one empty file in the nearest existing folder)."""
    import os
    from pathlib import Path

    given, folder = Path(folder), Path(folder).absolute()
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        where = "is a file, not a folder" if existing == folder else f"cannot be made: {existing} is a file"
        raise TrainError(f"--output-dir {given} {where}.")
    probe = existing / f".write-check-{os.getpid()}"
    try:
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise TrainError(
            f"--output-dir {given} cannot be written in {existing} ({exc.strerror or type(exc).__name__})."
        ) from None


def check_no_other_run(settings: TrainSettings) -> None:
    """A folder that holds another run is refused unless --resume continues it or --overwrite replaces it (as
    build-dataset refuses an existing output): the first run's files stay as they were."""
    from trainer.settings import RUN_ITEMS

    if settings.resume and settings.overwrite:
        raise TrainError("--resume continues the run in --output-dir and --overwrite replaces it: give one of them.")
    folder = settings.resolved_output_dir()
    held = [name for name in RUN_ITEMS if (folder / name).exists()]
    if held and not settings.resume and not settings.overwrite:
        raise TrainError(
            f"--output-dir {folder} holds another run ({', '.join(held)}): pass --resume to continue "
            "it, --overwrite to replace it, or another --output-dir."
        )


def check_vllm(kwargs: dict, gpu: bool) -> None:
    """`use_vllm` needs vLLM (an optional extra) and a GPU: say so before any model loads."""
    if not kwargs.get("use_vllm"):
        return
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        raise TrainError(
            "the setting use_vllm=true needs vLLM, which is not installed: install the vllm extra on a GPU "
            "machine (pip install -e '.[train,vllm]', see docs/vllm.md) or drop use_vllm."
        )
    if not gpu:
        raise TrainError("the setting use_vllm=true needs a GPU, and this machine has none.")


class main_first:
    """`with main_first():` the main process runs the block, then the others do."""

    def __enter__(self):
        distributed.start()
        if not distributed.is_main():
            distributed.barrier()

    def __exit__(self, *exc):
        if distributed.is_main():
            distributed.barrier()
        return False


def select_training_rows(settings: TrainSettings, train_split):
    """The training programs after --max-trace-steps, --train-limit and the curriculum's order."""
    from trainer.data import DataError, training_rows

    try:
        rows, described = training_rows(
            train_split,
            max_trace_steps=settings.max_trace_steps,
            limit=settings.train_limit,
            curriculum=settings.curriculum,
        )
    except DataError as exc:
        raise TrainError(str(exc)) from None
    logger.info(f"Training programs: {described}.")
    return rows, described
