"""GRPO: the `GRPOConfig` (device defaults, then what the data and the thinking policy decide, then the config file,
then the explicit options), and the training itself with TRL's `GRPOTrainer`, continuing the SFT adapter or a fresh
LoRA, rewarded by the execution reward. The adapter lands in OUTPUT/adapter (written by the main process), and the
run's learning signal (zero-spread groups, gradient norm, cut-off share, weights moved) in its summary."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from peft import PeftModel
from transformers.trainer_callback import ProgressCallback
from trl import GRPOConfig, GRPOTrainer

from trainer import distributed
from trainer.learning_signal import fingerprint, grpo_signal, weight_change
from trainer.lm_head import labelled_positions_only
from trainer.lora import lora_config, lora_summary, set_adapter_base
from trainer.progress import RewardProgress, SaveEvery
from trainer.record import jsonable, library_versions
from trainer.settings import (
    ADAPTER_DIR,
    CHECKPOINT_DIR,
    DEFAULT_EPOCHS,
    LOG_FILE,
    TrainError,
    TrainSettings,
    latest_checkpoint,
    model_dtype,
    tracking_kwargs,
)
from trainer.sizing import CHECKPOINT_MAX_MINUTES
from trainer.thinking import QWEN_SAMPLING

if TYPE_CHECKING:
    from trainer.settings import Plan

logger = logging.getLogger(__name__)


def vllm_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def default_grpo_settings(gpu: bool, vllm_mode: str = "off") -> dict:
    """Defaults for a GPU (bf16, gradient checkpointing, Qwen's sampling, vLLM when `vllm_mode` is colocate or
    server) and a CPU (fp32, small everything). The completion lengths here hold only until `prepare` has measured
    the data, and the checkpoint interval and vLLM's sizes until it has planned the run (`grpo_config_kwargs` with
    a plan)."""
    common = {
        "logging_steps": 1,
        "save_strategy": "steps",
        "save_total_limit": 2,
        "report_to": "none",
        "learning_rate": 1e-5,
        "lr_scheduler_type": "constant_with_warmup",
        "warmup_steps": 0,
        "beta": 0.0,
        "loss_type": "dapo",
        "num_train_epochs": DEFAULT_EPOCHS,
        "mask_truncated_completions": False,
        "shuffle_dataset": True,
        "remove_unused_columns": False,
        "ddp_find_unused_parameters": False,  # every LoRA weight takes part in every forward pass
        **QWEN_SAMPLING,
    }
    if gpu:
        vllm = {"use_vllm": True, "vllm_mode": vllm_mode} if vllm_mode in ("colocate", "server") else {}
        return {
            **common,
            "bf16": True,
            "activation_checkpointing": True,  # transformers 5's name for gradient checkpointing
            "activation_checkpointing_kwargs": {"use_reentrant": False},
            # 4 prompts x 8 completions per optimizer step and process, as 8 micro-batches of 4 sequences (the
            # training activations of 4 long sequences, not 8) generated 16 at a time (2 calls per step: half the KV
            # cache of one call of 32); docs/training.md's plan of the 4B run has the arithmetic
            "num_generations": 8,
            "per_device_train_batch_size": 4,
            "gradient_accumulation_steps": 8,
            "steps_per_generation": 4,
            "max_completion_length": 4096,
            **vllm,
        }
    return {
        **common,
        "use_cpu": True,
        "bf16": False,
        "fp16": False,
        "activation_checkpointing": False,
        "num_generations": 2,
        "per_device_train_batch_size": 2,
        "gradient_accumulation_steps": 1,
        "max_completion_length": 256,
        "dataloader_num_workers": 0,
    }


def read_config_file(path: str) -> dict:
    import yaml

    try:
        with open(path) as handle:
            data = yaml.safe_load(handle) or {}
    except FileNotFoundError:
        raise TrainError(f"config file {path} does not exist.") from None
    except yaml.YAMLError as exc:
        raise TrainError(f"config file {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise TrainError(f"config file {path} must hold a mapping of GRPOConfig settings.")
    return data


def resolved_vllm_mode(settings: TrainSettings, gpu: bool, installed: bool | None = None) -> str:
    """colocate, server or off: `--vllm-mode auto` is colocate on a GPU where vLLM is installed."""
    if settings.vllm_mode != "auto":
        return settings.vllm_mode
    installed = vllm_installed() if installed is None else installed
    return "colocate" if gpu and installed else "off"


def grpo_config_kwargs(
    settings: TrainSettings, output_dir: Path, gpu: bool, plan: Plan | None = None, vllm: bool | None = None
) -> dict:
    """The GRPOConfig arguments: device defaults, then what the data and the thinking policy decide (`plan`: the
    completion budget, `enable_thinking`, masking cut-off completions of a thinking run) and what the run's sizing
    decides (a checkpoint every 10% of the optimizer steps; `plan.sizing`: vLLM's context length, memory share and
    sleep mode), then the config file, then the explicit options. `vllm`: whether vLLM is installed (default: look)."""
    from trainer.sizing import checkpoint_every, optimizer_steps, vllm_settings

    kwargs = default_grpo_settings(gpu, resolved_vllm_mode(settings, gpu, vllm))
    kwargs["ddp_timeout"] = settings.ddp_timeout
    kwargs.update(tracking_kwargs(settings, "grpo"))
    if plan is not None:
        kwargs["max_completion_length"] = plan_completion_length(plan)
        policy = plan.generation_policy
        kwargs["mask_truncated_completions"] = policy.enabled  # a cut-off thinking has no answer to learn
        if policy.chat_template_kwargs:
            kwargs["chat_template_kwargs"] = dict(policy.chat_template_kwargs)
        if plan.sizing and kwargs.get("use_vllm"):
            kwargs.update(vllm_settings(plan.sizing))
    extra = {}
    if settings.config_file:
        extra.update(read_config_file(settings.config_file))
    extra.update(settings.grpo_overrides or {})
    known = {f.name for f in dataclasses.fields(GRPOConfig)}
    unknown = sorted(set(extra) - known)
    if unknown:
        raise TrainError(f"unknown GRPOConfig setting(s): {', '.join(unknown)}.")
    for old, new in (
        ("gradient_checkpointing", "activation_checkpointing"),
        ("gradient_checkpointing_kwargs", "activation_checkpointing_kwargs"),
    ):
        if old in extra and new not in extra:  # the user's deprecated spelling wins over our default
            kwargs.pop(new, None)
    if isinstance(extra.get("chat_template_kwargs"), dict) and kwargs.get("chat_template_kwargs"):
        extra["chat_template_kwargs"] = {**kwargs["chat_template_kwargs"], **extra["chat_template_kwargs"]}
    kwargs.update(extra)
    explicit = {
        "max_steps": settings.max_steps,
        "num_train_epochs": settings.epochs,
        "num_generations": settings.num_generations,
        "max_completion_length": settings.max_completion_length,
        "learning_rate": settings.learning_rate,
    }
    kwargs.update({k: v for k, v in explicit.items() if v is not None})
    if settings.num_generations is not None and "per_device_train_batch_size" not in extra:
        # keep whole groups of completions per generation batch
        per_device = kwargs["per_device_train_batch_size"]
        if per_device % settings.num_generations:
            kwargs["per_device_train_batch_size"] = settings.num_generations
    if settings.curriculum != "none" and "shuffle_dataset" not in extra:
        kwargs["shuffle_dataset"] = False  # the curriculum's order holds only without shuffling
    kwargs["seed"] = settings.seed
    kwargs["output_dir"] = str(output_dir / CHECKPOINT_DIR)
    if kwargs.get("max_steps") is None:
        kwargs["max_steps"] = -1
    if plan is not None and "save_steps" not in extra:  # a checkpoint every 10% of the run (and every 30 minutes)
        kwargs["save_steps"] = checkpoint_every(optimizer_steps(kwargs, plan.grpo_prompts, plan.world_size))
    if kwargs["num_generations"] < 2:
        raise TrainError("--num-generations must be at least 2 (GRPO compares completions of one prompt).")
    return kwargs


def make_grpo_config(kwargs: dict):
    try:
        return GRPOConfig(**kwargs)
    except (ValueError, TypeError) as exc:
        raise TrainError(f"invalid training settings: {str(exc).splitlines()[0]}") from None


def plan_completion_length(plan: Plan) -> int:
    """The completion budget the data asks for: the longest reference trace + a margin (+ the thinking budget)."""
    from trainer.thinking import completion_budget

    return completion_budget(plan.longest_reference, plan.generation_policy, plan.thinking_budget, plan.room)


def completion_budget_record(settings: TrainSettings, plan: Plan, kwargs: dict) -> dict:
    from trainer.thinking import MARGIN

    if settings.max_completion_length is not None:
        rule = "--max-completion-length"
    elif kwargs["max_completion_length"] != plan_completion_length(plan):
        rule = "--config / --set"
    elif plan.generation_policy.enabled:
        rule = f"longest reference trace + {MARGIN} + thinking budget {plan.thinking_budget}"
    else:
        rule = f"longest reference trace + {MARGIN}"
    if plan.room is not None and kwargs["max_completion_length"] == plan.room and rule.startswith("longest"):
        rule += ", capped at what the model's context leaves after the longest prompt"
    return {
        "max_completion_length": kwargs["max_completion_length"],
        "rule": rule,
        "longest_reference_tokens": plan.longest_reference,
        "thinking_budget": plan.thinking_budget if plan.generation_policy.enabled else None,
    }


def train(
    settings: TrainSettings, plan: Plan, output_dir: Path, callbacks=(), init_adapter: Path | None = None
) -> dict:
    """Run GRPO, continuing the adapter in `init_adapter` (the SFT warm start) or a fresh LoRA; save the adapter in
    OUTPUT/adapter (the main process). Returns the training summary (settings, log history, learning signal)."""
    from trainer.answers import DirectAnswerReward, grpo_rows, pass_tokenizer, stop_at_answer_end
    from trainer.models import free_gpu_memory, load_model
    from trainer.rewards import ExecutionReward

    source, gpu = plan.source, plan.gpu
    raw = plan.direct_answers_format == "raw"
    train_rows = grpo_rows(plan.rows, plan.answers, only=plan.direct_answers_only, form=plan.direct_answers_format)
    kwargs = grpo_config_kwargs(settings, output_dir, gpu, plan)
    config = make_grpo_config(kwargs)
    checkpoint = None
    if settings.resume:
        checkpoint = latest_checkpoint(output_dir)
        if checkpoint is None:
            logger.info(f"--resume: no checkpoint in {output_dir / CHECKPOINT_DIR} yet, starting from the beginning.")
        else:
            logger.info(f"Resuming from {checkpoint}.")
    dtype = model_dtype(settings, config.bf16)
    logger.info(f"Loading model {source.spec} ({'GPU' if gpu else 'CPU'}, {str(dtype).replace('torch.', '')})...")
    tokenizer, model = load_model(source, dtype=dtype, device=distributed.device())
    if source.is_tiny:
        logger.info("Note: 'tiny' is a randomly initialized smoke-test model; it learns nothing useful.")
    rewards = [] if plan.direct_answers_only else [ExecutionReward(thinking=plan.generation_policy.opens_think)]
    if plan.answers:  # each reward scores its own rows (None for the others); TRL logs them apart
        rewards.append(
            DirectAnswerReward(thinking=plan.generation_policy.opens_think, lazy_penalty=settings.lazy_answer_penalty)
        )
    stop_at = stop_at_answer_end(config, tokenizer) if raw else None  # not at an end of turn: at [/ANSWER]
    peft_config = lora_config(settings, model)
    if init_adapter is not None:
        logger.info(f"GRPO continues the SFT adapter in {init_adapter}.")
        model = PeftModel.from_pretrained(model, str(init_adapter), is_trainable=True)
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=rewards,
        args=config,
        train_dataset=train_rows,
        processing_class=tokenizer,
        peft_config=None if init_adapter is not None else peft_config,
    )
    if raw and not config.use_vllm:
        pass_tokenizer(trainer.model, tokenizer)
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(RewardProgress())
    trainer.add_callback(SaveEvery(CHECKPOINT_MAX_MINUTES))
    for callback in callbacks:
        trainer.add_callback(callback)
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    world = config.world_size
    global_batch = config.per_device_train_batch_size * config.gradient_accumulation_steps * world
    logger.info(
        f"GRPO on {len(train_rows)} prompts"
        + (f" ({len(plan.answers)} of them direct answers)" if plan.answers else "")
        + f": LoRA r={settings.lora_r} alpha={settings.lora_alpha} "
        f"({trainable / 1e6:.2f}M trainable parameters), {config.num_generations} completions per prompt, "
        f"{global_batch // config.num_generations} prompts per step over {world} process(es), "
        f"up to {config.max_completion_length} tokens each, lr {config.learning_rate:g}."
    )
    before = fingerprint(trainer.model)
    started_at = time.time()
    started = time.perf_counter()
    with labelled_positions_only():  # the loss's LM head skips the prompt's positions on the CPU too
        trainer.train(resume_from_checkpoint=checkpoint)
    seconds = time.perf_counter() - started
    history = [dict(entry) for entry in trainer.state.log_history]
    signal = grpo_signal(history, weight_change(before, fingerprint(trainer.model)), config.max_completion_length)
    adapter_dir = output_dir / ADAPTER_DIR
    trainer.save_model(str(adapter_dir))  # writes on the main process only (every process must call it)
    if distributed.is_main():
        (adapter_dir / "training_args.bin").unlink(missing_ok=True)  # a pickle; the settings are in the record
        set_adapter_base(adapter_dir, source.base_model_id or source.path)
        (adapter_dir / LOG_FILE).write_text(json.dumps(history, indent=1) + "\n")
    distributed.barrier()
    summary = {
        "model": source.spec,
        "model_kind": source.kind,
        "base_model": source.base_model_id,
        "thinking": plan.policy.record(),  # the run's, as its evaluation uses it (raw direct answers never think)
        "thinking_template": plan.policy.opens_think,
        "completion_budget": completion_budget_record(settings, plan, kwargs),
        "device": "cuda" if gpu else "cpu",
        "weights_dtype": str(dtype).replace("torch.", ""),
        "world_size": world,
        "global_batch": global_batch,
        "prompts_per_step": global_batch // config.num_generations,
        "global_steps": trainer.state.global_step,
        "train_seconds": round(seconds, 2),
        "started_at": started_at,
        "train_rows": len(train_rows),
        "direct_answer_prompts": len(plan.answers),
        "direct_answers_format": plan.direct_answers_format if plan.answers else None,
        "rewards": [reward.__name__ for reward in rewards],
        "lazy_answer_penalty": settings.lazy_answer_penalty if plan.answers else None,
        "warm_start": str(init_adapter) if init_adapter is not None else None,
        "trainable_parameters": trainable,
        "lora": lora_summary(settings, peft_config),
        "learning_signal": signal["signal"],
        "warnings": signal["warnings"],
        "grpo": {k: jsonable(v) for k, v in kwargs.items() if k != "output_dir"},
        "stop_at": stop_at,  # where a completion ends besides the end of sequence (a raw direct answer's close)
        "versions": library_versions(),
    }
    del trainer, model
    free_gpu_memory()
    return summary
