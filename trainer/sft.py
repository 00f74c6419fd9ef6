"""The SFT warm start: TRL's `SFTTrainer` on prompt → reference trace (loss on the trace only), a fresh LoRA with the
settings GRPO uses, saved in OUTPUT/sft/adapter for GRPO to continue (one adapter). Examples are sized from the
data (`max_length` = the longest one unless `--sft-max-length`; cut ones are counted and warned about), and the run
checks that the adapter moved.

Why a warm start: from a raw small base the reward is about 0 for every completion, so GRPO's advantages are 0 and
nothing moves. A few hundred supervised traces teach the format and the easy values first; GRPO then has
completions that differ in reward to compare."""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING

from transformers.trainer_callback import ProgressCallback
from trl import SFTConfig, SFTTrainer

from trainer import distributed
from trainer.learning_signal import fingerprint, sft_signal, weight_change
from trainer.lm_head import labelled_positions_only
from trainer.lora import lora_config, lora_summary, set_adapter_base
from trainer.progress import RewardProgress, SaveEvery
from trainer.record import jsonable, library_versions, round4
from trainer.settings import (
    ADAPTER_DIR,
    CHECKPOINT_DIR,
    LOG_FILE,
    SFT_DIR,
    SFT_RUN_FILE,
    TrainError,
    TrainSettings,
    latest_checkpoint,
    model_dtype,
    tracking_kwargs,
)
from trainer.sizing import CHECKPOINT_MAX_MINUTES, checkpoint_every
from trainer.thinking import context_room

if TYPE_CHECKING:
    from trainer.settings import Plan

logger = logging.getLogger(__name__)


def sft_config_kwargs(settings: TrainSettings, output_dir: Path, gpu: bool, max_length: int | None = None) -> dict:
    """The SFTConfig arguments of the warm start: the same precision choices as GRPO, small batches with gradient
    accumulation (fp32 logits over a large vocabulary are what costs memory), loss on the trace only.
    `max_length`: tokens per example (default: `--sft-max-length`, else what the caller measured on the data)."""
    kwargs = {
        "output_dir": str(output_dir / SFT_DIR / CHECKPOINT_DIR),
        "learning_rate": settings.sft_learning_rate,
        "lr_scheduler_type": "linear",
        "warmup_steps": 0,
        "logging_steps": 1,
        # checkpoints every 10% of the steps (set in `sft` once the data is known) and every 30 minutes, so --resume
        # continues an interrupted warm start; a finished one is reused whole
        "save_strategy": "steps",
        "save_total_limit": 2,
        **tracking_kwargs(settings, "sft"),
        "ddp_timeout": settings.ddp_timeout,
        "seed": settings.seed,
        "completion_only_loss": True,
        "packing": False,
        "dataloader_num_workers": 0,
        # the curriculum's order holds only without shuffling
        "train_sampling_strategy": "sequential" if settings.curriculum != "none" else "random",
        "max_length": settings.sft_max_length or max_length,
    }
    if gpu:
        per_device = min(settings.sft_batch_size, 8)
        kwargs.update(
            bf16=True,
            activation_checkpointing=True,
            activation_checkpointing_kwargs={"use_reentrant": False},
            per_device_train_batch_size=per_device,
            gradient_accumulation_steps=max(settings.sft_batch_size // per_device, 1),
        )
    else:
        # batch 1: no padding, and on 2 cores as fast per token as bigger batches
        kwargs.update(
            use_cpu=True,
            bf16=False,
            fp16=False,
            activation_checkpointing=False,
            per_device_train_batch_size=1,
            gradient_accumulation_steps=settings.sft_batch_size,
        )
    if settings.sft_steps:
        kwargs["max_steps"] = settings.sft_steps
    else:
        kwargs["num_train_epochs"] = settings.sft_epochs
        kwargs["max_steps"] = -1
    return kwargs


def sft_rows(
    train_rows, chat_template_kwargs: dict | None = None, answers: list = (), only: bool = False, form: str = "chat"
):
    """The SFT view of the training programs: TRL's conversational prompt-completion format (the completion is the
    assistant's turn holding the reference trace, in the prompt style's notation; the loss covers only it). A
    hybrid template's `enable_thinking` travels as TRL's per-example `chat_template_kwargs`. `answers`
    (`trainer.answers.answer_examples`): direct-answer examples, spread evenly through the traces (`only`: the
    direct answers alone; `form`: their prompts through the chat template or raw, `trainer.answers.training_prompt`)."""
    import datasets

    from trainer.answers import spread_through, training_completion, training_prompt
    from trainer.prompts import target_of

    extra = {"chat_template_kwargs": dict(chat_template_kwargs)} if chat_template_kwargs else {}

    def example(row):
        return {"completion": [{"role": "assistant", "content": target_of(row)}], **extra}

    direct = datasets.Dataset.from_list(
        [{"prompt": training_prompt(a, form), "completion": training_completion(a, form), **extra} for a in answers]
    )
    if only:
        return direct
    traces = train_rows.map(
        example, remove_columns=[c for c in train_rows.column_names if c != "prompt"], desc="SFT examples"
    )
    if not answers:
        return traces
    return spread_through(traces, direct.cast(traces.features))


def example_lengths(tokenizer, examples, chat_template_kwargs: dict | None = None) -> list[int]:
    """Tokens of every SFT example as the trainer renders it (prompt and completion through the chat template; a
    raw direct answer as its text and the end-of-sequence token TRL appends)."""
    lengths = []
    for prompt, completion in zip(examples["prompt"], examples["completion"]):
        if isinstance(prompt, str):
            text = prompt + completion + tokenizer.eos_token
        else:
            text = tokenizer.apply_chat_template(prompt + completion, tokenize=False, **(chat_template_kwargs or {}))
        lengths.append(len(tokenizer(text, add_special_tokens=False).input_ids))
    return lengths


def sft(settings: TrainSettings, plan: Plan, output_dir: Path, callbacks=()) -> dict:
    """The warm start: supervised fine-tuning of a fresh LoRA adapter (same rank, alpha, targets as GRPO) on the
    reference traces. Saves OUTPUT/sft/adapter and returns its summary. With --resume, a finished warm start is
    reused."""
    from trainer.models import free_gpu_memory, load_model

    source, train_rows = plan.source, plan.rows
    adapter_dir = output_dir / SFT_DIR / ADAPTER_DIR
    if settings.resume and (adapter_dir / SFT_RUN_FILE).is_file():
        logger.info(f"--resume: reusing the finished SFT warm start in {adapter_dir}.")
        return json.loads((adapter_dir / SFT_RUN_FILE).read_text())
    gpu = plan.gpu
    kwargs = sft_config_kwargs(settings, output_dir, gpu)
    dtype = model_dtype(settings, kwargs["bf16"])
    logger.info(
        f"Loading model {source.spec} for the SFT warm start ({'GPU' if gpu else 'CPU'}, "
        f"{str(dtype).replace('torch.', '')})..."
    )
    tokenizer, model = load_model(source, dtype=dtype, device=distributed.device())
    examples = sft_rows(
        train_rows,
        plan.policy.chat_template_kwargs,
        plan.answers,
        only=plan.direct_answers_only,
        form=plan.direct_answers_format,
    )
    lengths = example_lengths(tokenizer, examples, plan.policy.chat_template_kwargs)
    # sized from the data (nothing is cut), within the model's context
    context, _ = context_room(source.path, 0)
    kwargs["max_length"] = settings.sft_max_length or min(max(lengths), context or max(lengths))
    over = sum(n > kwargs["max_length"] for n in lengths)
    warnings = []
    if over:
        limit = "--sft-max-length" if settings.sft_max_length else "the model's context of"
        warnings.append(
            f"{over} of {len(lengths)} SFT examples are longer than {limit} {kwargs['max_length']} tokens "
            f"(the longest has {max(lengths)}) and were cut, losing the end of their trace and the "
            "end-of-turn token."
        )
        logger.warning(warnings[-1])
    per_step = kwargs["per_device_train_batch_size"] * kwargs["gradient_accumulation_steps"] * plan.world_size
    total_steps = settings.sft_steps or math.ceil(settings.sft_epochs * math.ceil(len(examples) / per_step))
    kwargs["save_steps"] = checkpoint_every(total_steps)
    checkpoint = latest_checkpoint(output_dir / SFT_DIR) if settings.resume else None
    if checkpoint:
        logger.info(f"--resume: continuing the SFT warm start from {checkpoint}.")
    try:
        config = SFTConfig(**kwargs)
    except (ValueError, TypeError) as exc:
        raise TrainError(f"invalid SFT settings: {str(exc).splitlines()[0]}") from None
    peft_config = lora_config(settings, model)
    trainer = SFTTrainer(
        model=model, args=config, train_dataset=examples, processing_class=tokenizer, peft_config=peft_config
    )
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(RewardProgress())
    trainer.add_callback(SaveEvery(CHECKPOINT_MAX_MINUTES))
    for callback in callbacks:
        trainer.add_callback(callback)
    tokens = sum(len(ids) for ids in trainer.train_dataset["input_ids"])
    columns = trainer.train_dataset.column_names
    if "labels" in columns:
        trained_tokens = sum(sum(label != -100 for label in labels) for labels in trainer.train_dataset["labels"])
    elif "completion_mask" in columns:
        trained_tokens = sum(sum(mask) for mask in trainer.train_dataset["completion_mask"])
    else:
        trained_tokens = None
    logger.info(
        f"SFT warm start on {len(examples)} "
        + (f"examples ({len(plan.answers)} of them direct answers, " if plan.answers else "programs (")
        + f"{tokens} tokens, up to {config.max_length} per example): "
        f"LoRA r={settings.lora_r} alpha={settings.lora_alpha}, "
        f"{config.per_device_train_batch_size * config.gradient_accumulation_steps * plan.world_size} "
        f"programs per step, lr {config.learning_rate:g}, "
        + (f"{config.max_steps} steps." if config.max_steps > 0 else f"{config.num_train_epochs:g} epoch(s).")
    )
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    before = fingerprint(trainer.model)
    started_at = time.time()
    started = time.perf_counter()
    with labelled_positions_only():  # the loss's LM head skips the prompt's positions on the CPU too
        trainer.train(resume_from_checkpoint=checkpoint)
    seconds = time.perf_counter() - started
    signal = sft_signal(weight_change(before, fingerprint(trainer.model)))
    trainer.save_model(str(adapter_dir))
    history = [dict(entry) for entry in trainer.state.log_history]
    steps_logged = [h for h in history if "loss" in h and "train_runtime" not in h]
    summary = {
        "steps": trainer.state.global_step,
        "epochs": round(float(trainer.state.epoch or 0.0), 3),
        "seconds": round(seconds, 2),
        "started_at": started_at,
        "rows": len(examples),
        "direct_answers": len(plan.answers),
        "tokens": tokens,
        "completion_tokens": trained_tokens,
        "tokens_per_second": round(tokens * (trainer.state.epoch or 1.0) / seconds, 1) if seconds else None,
        "max_length": config.max_length,
        "longest_example_tokens": max(lengths),
        "examples_over_max_length": over,
        "first_loss": steps_logged[0]["loss"] if steps_logged else None,
        "last_loss": steps_logged[-1]["loss"] if steps_logged else None,
        "first_token_accuracy": steps_logged[0].get("mean_token_accuracy") if steps_logged else None,
        "last_token_accuracy": steps_logged[-1].get("mean_token_accuracy") if steps_logged else None,
        "trainable_parameters": trainable,
        "weights_dtype": str(dtype).replace("torch.", ""),
        "world_size": plan.world_size,
        "thinking": plan.policy.record(),
        "thinking_template": plan.policy.opens_think,
        "lora": lora_summary(settings, peft_config),
        "learning_signal": signal["signal"],
        "warnings": warnings + signal["warnings"],
        "config": {k: jsonable(v) for k, v in kwargs.items() if k != "output_dir"},
        "log_history": history,
    }
    if distributed.is_main():
        (adapter_dir / "training_args.bin").unlink(missing_ok=True)
        set_adapter_base(adapter_dir, source.base_model_id or source.path)
        (adapter_dir / SFT_RUN_FILE).write_text(json.dumps(summary, indent=1) + "\n")
    distributed.barrier()  # GRPO on every process continues the adapter the main process just wrote
    logger.info(
        f"SFT done: {summary['steps']} steps in {seconds:.0f} s; loss {round4(summary['first_loss'])} -> "
        f"{round4(summary['last_loss'])}."
    )
    del trainer, model
    free_gpu_memory()
    return summary


def sft_only_summary(
    settings: TrainSettings, plan: Plan, sft_summary: dict, sft_adapter: Path, adapter_dir: Path
) -> dict:
    """`--max-steps 0`: no GRPO; the SFT adapter is the adapter (copied to OUTPUT/adapter by the main process)."""
    import shutil

    if distributed.is_main():
        shutil.copytree(sft_adapter, adapter_dir, dirs_exist_ok=True)
        (adapter_dir / SFT_RUN_FILE).unlink(missing_ok=True)
        (adapter_dir / LOG_FILE).write_text(json.dumps(sft_summary.get("log_history", []), indent=1) + "\n")
    distributed.barrier()
    return {
        "model": plan.source.spec,
        "model_kind": plan.source.kind,
        "base_model": plan.source.base_model_id,
        "thinking": plan.policy.record(),
        "thinking_template": plan.policy.opens_think,
        "device": "cuda" if plan.gpu else "cpu",
        "weights_dtype": sft_summary.get("weights_dtype"),
        "world_size": plan.world_size,
        "global_steps": 0,
        "train_seconds": 0.0,
        "train_rows": len(plan.rows),
        "warm_start": str(sft_adapter),
        "trainable_parameters": sft_summary.get("trainable_parameters"),
        "lora": sft_summary.get("lora"),
        "learning_signal": None,
        "grpo": None,
        "versions": library_versions(),
    }
