"""Training: GRPO with a LoRA adapter on the dataset's chat prompts, rewarded by the execution reward; then the
honest evaluation, the model card and the push.

`run(settings)` is what `train-and-push` calls. Its steps are separate functions so each can run alone:

    prepare   → resolve the model, load the dataset (in the chosen prompt style), pick and order the training
                programs (curriculum), check what would fail late (before any training)
    sft       → optional warm start: TRL SFTTrainer on prompt → expected_trace with the same LoRA settings;
                the adapter in OUTPUT/sft/adapter (`--sft-epochs` / `--sft-steps`; off by default)
    train     → GRPOTrainer continuing the SFT adapter (or a fresh LoRA); checkpoints in OUTPUT/checkpoints; the
                adapter in OUTPUT/adapter (`--max-steps 0`: no GRPO, the SFT adapter is the adapter)
    evaluate  → base vs (SFT only vs) adapter on the test split → OUTPUT/adapter/eval_results.json
    card      → OUTPUT/adapter/README.md and reward_curve.png
    push      → OUTPUT/adapter to the Hub (alone with `--push-only`, e.g. after a failed push)

Why the warm start: from a raw small base the reward is about 0 for every completion, so GRPO's advantages are 0
and nothing moves. A few hundred supervised traces teach the format and the easy values first; GRPO
then has completions that differ in reward to compare.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

from trainer import distributed
from trainer.models import DEFAULT_MODEL, ModelSource, looks_like_hub_id, resolve_model
from trainer.thinking import QWEN_SAMPLING, ThinkingPolicy

ADAPTER_DIR = "adapter"
SFT_DIR = "sft"
SFT_RUN_FILE = "sft_run.json"
CHECKPOINT_DIR = "checkpoints"
RUN_FILE = "training_run.json"
LOG_FILE = "training_log.json"
PLOT_FILE = "reward_curve.png"
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
DEFAULT_EPOCHS = 1.0  # GRPO passes over the training programs when neither --max-steps nor --epochs is given


class TrainError(Exception):
    """A user mistake found while preparing or running training; its message is one sentence."""


class PushError(Exception):
    """The push failed; the adapter is still on disk and the push alone can be retried."""


class NoSignalError(TrainError):
    """`--fail-on-no-signal` and the run learned nothing: nothing was pushed."""


@dataclass
class TrainSettings:
    """What `train-and-push` takes. `None` means: the default for the device this runs on."""

    dataset: str
    repo_id: str | None = None
    model: str = DEFAULT_MODEL
    base_model_id: str | None = None  # the Hub id the adapter names as its base (folders and GGUF files)
    output_dir: str | None = None
    max_steps: int | None = None
    epochs: float | None = None
    lora_r: int = 64
    lora_alpha: int = 128
    lora_dropout: float = 0.05
    num_generations: int | None = None
    max_completion_length: int | None = None
    learning_rate: float | None = None
    seed: int = 0
    resume: bool = False
    config_file: str | None = None  # YAML of further GRPOConfig settings
    grpo_overrides: dict = field(default_factory=dict)  # further GRPOConfig settings (after the file)
    train_limit: int | None = None  # use only the first N training rows (after --max-trace-steps)
    max_trace_steps: int | None = None  # train only on programs whose trace has at most N steps
    curriculum: str = "none"  # "none" | "short-first" (by trace length in steps)
    prompt_style: str = "dataset"  # "dataset" | "short" (trainer.prompts)
    sft_epochs: float | None = None  # SFT warm start: passes over the training programs
    sft_steps: int | None = None  # SFT warm start: optimizer steps (wins over sft_epochs)
    sft_learning_rate: float = 2e-4
    sft_batch_size: int = 4  # programs per SFT optimizer step
    sft_max_length: int | None = None  # tokens per SFT example (prompt + trace); default: the longest example
    thinking: str = "auto"  # "auto" | "on" | "off" (trainer.thinking)
    thinking_budget: int | None = None  # thinking tokens on top of the longest trace; default 8192 GPU, 64 CPU
    eval_greedy: bool = False  # greedy evaluation even for a thinking run (default there: Qwen's sampling)
    fail_on_no_signal: bool = False  # exit non-zero (before any push) when the run learned nothing
    cpu_threads: int | None = None  # torch threads per process on a CPU; default: $OMP_NUM_THREADS, else 1
    dtype: str = "auto"  # base weights: "auto" (bf16 on a GPU, fp32 on a CPU), "float32", "bfloat16"
    eval_limit: int | None = None  # evaluate on the first N test rows (default: the whole test split)
    eval_batch_size: int | None = None
    eval_max_new_tokens: int | None = None  # default: the longest reference trace (+32) without thinking, else
    # the completion length used in training
    skip_base_eval: bool = False
    skip_sft_eval: bool = False  # with a warm start, do not evaluate the SFT-only adapter separately
    dataset_id: str | None = None  # the dataset's Hub id for the card when --dataset is a folder
    license: str = "apache-2.0"
    private: bool = False
    push: bool = True
    token: str | None = None

    @property
    def does_sft(self) -> bool:
        return bool(self.sft_steps) or bool(self.sft_epochs)

    @property
    def does_grpo(self) -> bool:
        return self.max_steps != 0

    def resolved_output_dir(self) -> Path:
        if self.output_dir:
            return Path(self.output_dir).expanduser()
        name = (self.repo_id or "adapter").split("/")[-1]
        return Path("outputs") / name


@dataclass
class RunResult:
    output_dir: Path
    adapter_dir: Path
    results: dict | None
    url: str | None
    seconds: dict
    warnings: list = field(default_factory=list)


@dataclass
class Plan:
    """What `prepare` found out before any model loads: the model, the data, the thinking policy and the
    completion budget derived from the data."""

    source: ModelSource
    data: object  # DatasetDict
    rows: object  # the training programs (after filter, limit and curriculum order)
    described: str
    policy: ThinkingPolicy
    thinking_budget: int
    longest_reference: int  # tokens of the longest reference trace among the training programs
    gpu: bool
    room: int | None = None  # completion tokens the model's context leaves after the longest training prompt
    world_size: int = 1
    warnings: list = field(default_factory=list)


DTYPES = ("auto", "float32", "bfloat16")


def model_dtype(settings: "TrainSettings", mixed_precision_bf16: bool = False):
    """The dtype the base model's weights are loaded in. `auto`: bf16 when training runs in bf16 mixed precision
    (GPU), else fp32. `bfloat16` on a CPU: bf16 base weights (about 2x faster matmuls where the CPU has bf16
    instructions) with the LoRA weights and the optimizer in fp32."""
    import torch

    if settings.dtype == "bfloat16" or (settings.dtype == "auto" and mixed_precision_bf16):
        return torch.bfloat16
    return torch.float32


def on_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


# ---------------------------------------------------------------------------------------------------------
# GRPOConfig


def default_grpo_settings(gpu: bool) -> dict:
    """Defaults for a GPU (bf16, gradient checkpointing, Qwen's sampling, room for thinking) and a CPU (fp32,
    small everything)."""
    common = {
        "logging_steps": 1,
        "save_strategy": "steps",
        "save_steps": 50,
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
        return {
            **common,
            "bf16": True,
            "activation_checkpointing": True,  # transformers 5's name for gradient checkpointing
            "activation_checkpointing_kwargs": {"use_reentrant": False},
            "num_generations": 8,
            "per_device_train_batch_size": 8,
            "gradient_accumulation_steps": 4,  # 4 prompts x 8 completions per optimizer step
            "max_completion_length": 4096,
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


def grpo_config_kwargs(settings: TrainSettings, output_dir: Path, gpu: bool, plan: Plan | None = None) -> dict:
    """The GRPOConfig arguments: device defaults, then what the data and the thinking policy decide (`plan`: the
    completion budget, `enable_thinking`, masking cut-off completions of a thinking run), then the config file,
    then the explicit options."""
    from trl import GRPOConfig

    kwargs = default_grpo_settings(gpu)
    if plan is not None:
        kwargs["max_completion_length"] = plan_completion_length(plan)
        kwargs["mask_truncated_completions"] = plan.policy.enabled  # a cut-off thinking has no answer to learn
        if plan.policy.chat_template_kwargs:
            kwargs["chat_template_kwargs"] = dict(plan.policy.chat_template_kwargs)
    extra = {}
    if settings.config_file:
        extra.update(read_config_file(settings.config_file))
    extra.update(settings.grpo_overrides or {})
    known = {f.name for f in dataclasses.fields(GRPOConfig)}
    unknown = sorted(set(extra) - known)
    if unknown:
        raise TrainError(f"unknown GRPOConfig setting(s): {', '.join(unknown)}.")
    for old, new in (("gradient_checkpointing", "activation_checkpointing"),
                     ("gradient_checkpointing_kwargs", "activation_checkpointing_kwargs")):
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
    if kwargs["num_generations"] < 2:
        raise TrainError("--num-generations must be at least 2 (GRPO compares completions of one prompt).")
    return kwargs


def make_grpo_config(kwargs: dict):
    from trl import GRPOConfig

    try:
        return GRPOConfig(**kwargs)
    except (ValueError, TypeError) as exc:
        raise TrainError(f"invalid training settings: {str(exc).splitlines()[0]}") from None


def lora_config(settings: TrainSettings, model):
    from peft import LoraConfig

    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    targets = [t for t in LORA_TARGETS if t in names] or "all-linear"
    return LoraConfig(
        r=settings.lora_r,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
    )


# ---------------------------------------------------------------------------------------------------------
# Progress on the terminal


def progress_callback(log=print):
    from transformers import TrainerCallback

    class RewardProgress(TrainerCallback):
        """One line per logged step: the reward as it goes."""

        def __init__(self):
            self.started = None
            self.first_step = 0

        def on_train_begin(self, args, state, control, **kwargs):
            self.started = time.perf_counter()
            self.first_step = state.global_step

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not state.is_world_process_zero or not logs:
                return
            done = max(state.global_step - self.first_step, 1)
            per_step = (time.perf_counter() - self.started) / done if self.started else 0.0
            if "reward" not in logs:
                if "train_runtime" in logs:
                    log(f"done: {state.global_step} steps in {logs['train_runtime']:.1f} s")
                elif "loss" in logs:  # SFT
                    parts = [f"sft step {state.global_step}/{state.max_steps}", f"loss {logs['loss']:.4f}"]
                    if "mean_token_accuracy" in logs:
                        parts.append(f"token accuracy {logs['mean_token_accuracy']:.3f}")
                    parts.append(f"{per_step:.1f} s/step")
                    log("  ".join(parts))
                return
            parts = [
                f"step {state.global_step}/{state.max_steps}",
                f"reward {logs['reward']:.3f} ± {logs.get('reward_std', 0.0):.3f}",
                f"loss {logs.get('loss', 0.0):.4f}",
            ]
            if "completions/mean_length" in logs:
                parts.append(f"completion {logs['completions/mean_length']:.0f} tok")
            if "completions/clipped_ratio" in logs:
                parts.append(f"cut off {100 * logs['completions/clipped_ratio']:.0f}%")
            parts.append(f"{per_step:.1f} s/step")
            log("  ".join(parts))

    return RewardProgress()


# ---------------------------------------------------------------------------------------------------------
# The steps


def set_cpu_threads(settings: TrainSettings) -> dict:
    """Torch's CPU threads per process, set deliberately: `--cpu-threads N`, else `$OMP_NUM_THREADS`, else 1.
    One thread per process is the steady choice: on a machine shared with other jobs, threads that busy-wait for
    a core another job holds make every step slower (the README's smoke test: about 20 s with 1 thread, 2-7 times
    that with 2 on this project's shared 2-core machine), and the models trained on a CPU here are small. On a
    dedicated machine pass `--cpu-threads` (up to the cores per process). Returns what was set and why (recorded
    in the run)."""
    import torch

    if settings.cpu_threads is not None:
        if settings.cpu_threads < 1:
            raise TrainError("--cpu-threads must be at least 1.")
        threads, rule = settings.cpu_threads, "--cpu-threads"
    elif os.environ.get("OMP_NUM_THREADS", "").strip().isdigit() and int(os.environ["OMP_NUM_THREADS"]) > 0:
        threads, rule = int(os.environ["OMP_NUM_THREADS"]), "OMP_NUM_THREADS"
    else:
        threads, rule = 1, "default (1 per process)"
    if not on_gpu():
        torch.set_num_threads(threads)
    return {"cpu_threads": torch.get_num_threads(), "rule": rule}


def check_vllm(kwargs: dict, gpu: bool) -> None:
    """`use_vllm` needs vLLM (an optional extra) and a GPU: say so before any model loads."""
    if not kwargs.get("use_vllm"):
        return
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        raise TrainError("use_vllm=true needs vLLM, which is not installed: install the vllm extra on a GPU "
                         "machine (pip install -e '.[train,vllm]', see the README) or drop use_vllm.")
    if not gpu:
        raise TrainError("use_vllm=true needs a GPU, and this machine has none.")


def prepare(settings: TrainSettings, log=print) -> Plan:
    """Resolve the model and the dataset, decide the thinking policy and the completion budget, and check
    everything that would otherwise fail after training (or after a model loaded)."""
    from trainer.data import load_trace_dataset

    if settings.push:
        if not settings.repo_id:
            raise TrainError("--repo-id USER/NAME is required unless --no-push is given.")
        # fail now, not after training: no token, or a malformed id
        from hub.auth import check_repo_id, resolve_token

        check_repo_id(settings.repo_id)
        settings.token = resolve_token(settings.token)
    if settings.lora_r < 1 or settings.lora_alpha <= 0:
        raise TrainError("--lora-r and --lora-alpha must be positive.")
    if settings.max_steps is not None and settings.max_steps < 0:
        raise TrainError("--max-steps must be 0 (no GRPO, with an SFT warm start) or more.")
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
    gpu = on_gpu()
    kwargs = grpo_config_kwargs(settings, settings.resolved_output_dir(), gpu)
    check_vllm(kwargs, gpu)
    make_grpo_config(kwargs)  # bad settings: now
    # the main process builds or converts the model first (a GGUF conversion writes the cache), then the others
    with main_first():
        source = resolve_model(settings.model, settings.base_model_id)
    if settings.push and not source.base_model_id:
        raise TrainError(
            f"the adapter must name its base model's Hub id, which {settings.model} does not tell: pass "
            "--base-model-id ID or --no-push."
        )
    log(f"Loading dataset {settings.dataset}...")
    data = load_trace_dataset(settings.dataset)
    if len(data["train"]) == 0:
        raise TrainError(f"the train split of {settings.dataset} is empty.")
    from trainer.prompts import apply_prompt_style

    try:
        data = type(data)({name: apply_prompt_style(split, settings.prompt_style) for name, split in data.items()})
    except ValueError as exc:
        raise TrainError(str(exc)) from None
    rows, described = select_training_rows(settings, data["train"], log)
    from trainer.models import load_tokenizer
    from trainer.thinking import (ThinkingError, completion_budget, context_room, default_thinking_budget,
                                  prompt_tokens, reference_tokens, thinking_policy)

    tokenizer = load_tokenizer(source)
    try:
        policy = thinking_policy(tokenizer, settings.thinking, settings.model)
    except ThinkingError as exc:
        raise TrainError(str(exc)) from None
    longest_prompt = prompt_tokens(tokenizer, rows["prompt"], policy.chat_template_kwargs)
    context, room = context_room(source.path, longest_prompt)
    plan = Plan(
        source=source, data=data, rows=rows, described=described, policy=policy,
        thinking_budget=settings.thinking_budget if settings.thinking_budget is not None else
        default_thinking_budget(gpu),
        longest_reference=reference_tokens(tokenizer, rows["expected_trace"]), gpu=gpu, room=room,
        world_size=distributed.world_size(),
    )
    log(f"Chat template: {policy.template}; thinking {'on' if policy.enabled else 'off'} (--thinking "
        f"{settings.thinking}){'; ' + str(policy.chat_template_kwargs) if policy.chat_template_kwargs else ''}. "
        f"Longest reference trace: {plan.longest_reference} tokens.")
    uncapped = completion_budget(plan.longest_reference, policy, plan.thinking_budget)
    if settings.max_completion_length is None and room is not None and uncapped > room:
        plan.warnings.append(
            f"The completion budget the data asks for ({uncapped} tokens: the longest reference trace "
            f"{plan.longest_reference} + margin{' + thinking' if policy.enabled else ''}) does not fit the model's "
            f"{context}-token context after the longest prompt ({longest_prompt} tokens), so completions are capped "
            f"at {room} tokens and the longest traces cannot be written in full (--max-trace-steps N trains on "
            "shorter ones).")
        log(f"Warning: {plan.warnings[-1]}")
    return plan


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


def plan_completion_length(plan: Plan) -> int:
    """The completion budget the data asks for: the longest reference trace + a margin (+ the thinking budget)."""
    from trainer.thinking import completion_budget

    return completion_budget(plan.longest_reference, plan.policy, plan.thinking_budget, plan.room)


def completion_budget_record(settings: TrainSettings, plan: Plan, kwargs: dict) -> dict:
    from trainer.thinking import MARGIN

    if settings.max_completion_length is not None:
        rule = "--max-completion-length"
    elif kwargs["max_completion_length"] != plan_completion_length(plan):
        rule = "--config / --set"
    elif plan.policy.enabled:
        rule = f"longest reference trace + {MARGIN} + thinking budget {plan.thinking_budget}"
    else:
        rule = f"longest reference trace + {MARGIN}"
    if plan.room is not None and kwargs["max_completion_length"] == plan.room and rule.startswith("longest"):
        rule += ", capped at what the model's context leaves after the longest prompt"
    return {"max_completion_length": kwargs["max_completion_length"], "rule": rule,
            "longest_reference_tokens": plan.longest_reference,
            "thinking_budget": plan.thinking_budget if plan.policy.enabled else None}


def select_training_rows(settings: TrainSettings, train_split, log=print):
    """The training programs after --max-trace-steps, --train-limit and the curriculum's order."""
    from trainer.data import DataError, training_rows

    try:
        rows, described = training_rows(train_split, max_trace_steps=settings.max_trace_steps,
                                        limit=settings.train_limit, curriculum=settings.curriculum)
    except DataError as exc:
        raise TrainError(str(exc)) from None
    log(f"Training programs: {described}.")
    return rows, described


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
        "save_strategy": "no",  # short; the adapter is saved at the end (a rerun with --resume skips a finished SFT)
        "report_to": "none",
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
        kwargs.update(bf16=True, activation_checkpointing=True,
                      activation_checkpointing_kwargs={"use_reentrant": False},
                      per_device_train_batch_size=per_device,
                      gradient_accumulation_steps=max(settings.sft_batch_size // per_device, 1))
    else:
        # batch 1: no padding, and on 2 cores as fast per token as bigger batches
        kwargs.update(use_cpu=True, bf16=False, fp16=False, activation_checkpointing=False,
                      per_device_train_batch_size=1, gradient_accumulation_steps=settings.sft_batch_size)
    if settings.sft_steps:
        kwargs["max_steps"] = settings.sft_steps
    else:
        kwargs["num_train_epochs"] = settings.sft_epochs
        kwargs["max_steps"] = -1
    return kwargs


def sft_rows(train_rows, chat_template_kwargs: dict | None = None):
    """The SFT view of the training programs: TRL's conversational prompt-completion format (the completion is the
    assistant's turn holding the reference trace; the loss covers only it). A hybrid template's `enable_thinking`
    travels as TRL's per-example `chat_template_kwargs`."""

    def example(row):
        out = {"completion": [{"role": "assistant", "content": row["expected_trace"]}]}
        if chat_template_kwargs:
            out["chat_template_kwargs"] = dict(chat_template_kwargs)
        return out

    return train_rows.map(example, remove_columns=[c for c in train_rows.column_names if c != "prompt"],
                          desc="SFT examples")


def example_lengths(tokenizer, examples, chat_template_kwargs: dict | None = None) -> list[int]:
    """Tokens of every SFT example as the trainer renders it (prompt and completion through the chat template)."""
    lengths = []
    for prompt, completion in zip(examples["prompt"], examples["completion"]):
        text = tokenizer.apply_chat_template(prompt + completion, tokenize=False, **(chat_template_kwargs or {}))
        lengths.append(len(tokenizer(text, add_special_tokens=False).input_ids))
    return lengths


def sft(settings: TrainSettings, plan: Plan, output_dir: Path, log=print, callbacks=()) -> dict:
    """The warm start: supervised fine-tuning of a fresh LoRA adapter (same rank, alpha, targets as GRPO) on the
    reference traces. Saves OUTPUT/sft/adapter and returns its summary. With --resume, a finished warm start is
    reused."""
    import torch
    from transformers.trainer_callback import ProgressCallback
    from trl import SFTConfig, SFTTrainer

    from trainer.learning_signal import fingerprint, sft_signal, weight_change
    from trainer.models import load_model

    source, train_rows = plan.source, plan.rows
    adapter_dir = output_dir / SFT_DIR / ADAPTER_DIR
    if settings.resume and (adapter_dir / SFT_RUN_FILE).is_file():
        log(f"--resume: reusing the finished SFT warm start in {adapter_dir}.")
        return json.loads((adapter_dir / SFT_RUN_FILE).read_text())
    gpu = plan.gpu
    kwargs = sft_config_kwargs(settings, output_dir, gpu)
    dtype = model_dtype(settings, kwargs["bf16"])
    log(f"Loading model {source.spec} for the SFT warm start ({'GPU' if gpu else 'CPU'}, "
        f"{str(dtype).replace('torch.', '')})...")
    tokenizer, model = load_model(source, dtype=dtype, device=distributed.device())
    examples = sft_rows(train_rows, plan.policy.chat_template_kwargs)
    lengths = example_lengths(tokenizer, examples, plan.policy.chat_template_kwargs)
    kwargs["max_length"] = settings.sft_max_length or max(lengths)  # sized from the data: nothing is cut
    over = sum(n > kwargs["max_length"] for n in lengths)
    warnings = []
    if over:
        warnings.append(f"{over} of {len(lengths)} SFT examples are longer than --sft-max-length "
                        f"{kwargs['max_length']} tokens (the longest has {max(lengths)}) and were cut, losing the end "
                        "of their trace and the end-of-turn token.")
        log(f"Warning: {warnings[-1]}")
    try:
        config = SFTConfig(**kwargs)
    except (ValueError, TypeError) as exc:
        raise TrainError(f"invalid SFT settings: {str(exc).splitlines()[0]}") from None
    peft_config = lora_config(settings, model)
    trainer = SFTTrainer(model=model, args=config, train_dataset=examples, processing_class=tokenizer,
                         peft_config=peft_config)
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(progress_callback(log))
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
    log(
        f"SFT warm start on {len(examples)} programs ({tokens} tokens, up to {config.max_length} per example): "
        f"LoRA r={settings.lora_r} alpha={settings.lora_alpha}, "
        f"{config.per_device_train_batch_size * config.gradient_accumulation_steps * plan.world_size} "
        f"programs per step, lr {config.learning_rate:g}, "
        + (f"{config.max_steps} steps." if config.max_steps > 0 else f"{config.num_train_epochs:g} epoch(s).")
    )
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    before = fingerprint(trainer.model)
    started_at = time.time()
    started = time.perf_counter()
    trainer.train()
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
        "lora": _lora_summary(settings, peft_config),
        "learning_signal": signal["signal"],
        "warnings": warnings + signal["warnings"],
        "config": {k: _jsonable(v) for k, v in kwargs.items() if k != "output_dir"},
        "log_history": history,
    }
    if distributed.is_main():
        (adapter_dir / "training_args.bin").unlink(missing_ok=True)
        set_adapter_base(adapter_dir, source.base_model_id or source.path)
        (adapter_dir / SFT_RUN_FILE).write_text(json.dumps(summary, indent=1) + "\n")
    distributed.barrier()  # GRPO on every process continues the adapter the main process just wrote
    log(f"SFT done: {summary['steps']} steps in {seconds:.0f} s; loss {_round4(summary['first_loss'])} -> "
        f"{_round4(summary['last_loss'])}.")
    del trainer, model
    if gpu:
        torch.cuda.empty_cache()
    return summary


def train(settings: TrainSettings, plan: Plan, output_dir: Path, log=print, callbacks=(),
          init_adapter: Path | None = None) -> dict:
    """Run GRPO, continuing the adapter in `init_adapter` (the SFT warm start) or a fresh LoRA; save the adapter in
    OUTPUT/adapter (the main process). Returns the training summary (settings, log history, learning signal)."""
    import torch
    from transformers.trainer_callback import ProgressCallback
    from trl import GRPOTrainer

    from trainer.learning_signal import fingerprint, grpo_signal, weight_change
    from trainer.models import load_model
    from trainer.rewards import ExecutionReward

    source, train_rows, gpu = plan.source, plan.rows, plan.gpu
    kwargs = grpo_config_kwargs(settings, output_dir, gpu, plan)
    config = make_grpo_config(kwargs)
    checkpoint = None
    if settings.resume:
        checkpoint = latest_checkpoint(output_dir)
        if checkpoint is None:
            log(f"--resume: no checkpoint in {output_dir / CHECKPOINT_DIR} yet, starting from the beginning.")
        else:
            log(f"Resuming from {checkpoint}.")
    dtype = model_dtype(settings, config.bf16)
    log(f"Loading model {source.spec} ({'GPU' if gpu else 'CPU'}, {str(dtype).replace('torch.', '')})...")
    tokenizer, model = load_model(source, dtype=dtype, device=distributed.device())
    if source.is_tiny:
        log("Note: 'tiny' is a randomly initialized smoke-test model; it learns nothing useful.")
    reward = ExecutionReward(thinking=plan.policy.opens_think)
    peft_config = lora_config(settings, model)
    if init_adapter is not None:
        from peft import PeftModel

        log(f"GRPO continues the SFT adapter in {init_adapter}.")
        model = PeftModel.from_pretrained(model, str(init_adapter), is_trainable=True)
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[reward],
        args=config,
        train_dataset=train_rows,
        processing_class=tokenizer,
        peft_config=None if init_adapter is not None else peft_config,
    )
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(progress_callback(log))
    for callback in callbacks:
        trainer.add_callback(callback)
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    world = config.world_size
    global_batch = config.per_device_train_batch_size * config.gradient_accumulation_steps * world
    log(
        f"GRPO on {len(train_rows)} programs: LoRA r={settings.lora_r} alpha={settings.lora_alpha} "
        f"({trainable / 1e6:.2f}M trainable parameters), {config.num_generations} completions per prompt, "
        f"{global_batch // config.num_generations} prompts per step over {world} process(es), "
        f"up to {config.max_completion_length} tokens each, lr {config.learning_rate:g}."
    )
    before = fingerprint(trainer.model)
    started_at = time.time()
    started = time.perf_counter()
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
        "thinking": plan.policy.record(),
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
        "warm_start": str(init_adapter) if init_adapter is not None else None,
        "trainable_parameters": trainable,
        "lora": _lora_summary(settings, peft_config),
        "learning_signal": signal["signal"],
        "warnings": signal["warnings"],
        "grpo": {k: _jsonable(v) for k, v in kwargs.items() if k != "output_dir"},
        "versions": library_versions(),
    }
    del trainer, model
    if gpu:
        torch.cuda.empty_cache()
    return summary


def latest_checkpoint(output_dir: Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    folder = output_dir / CHECKPOINT_DIR
    if not folder.is_dir():
        return None
    return get_last_checkpoint(str(folder))


def set_adapter_base(adapter_dir: Path, base_model_id: str) -> None:
    """Point the saved adapter at the base model's Hub id (the trainer writes the local path it loaded)."""
    path = Path(adapter_dir) / "adapter_config.json"
    config = json.loads(path.read_text())
    config["base_model_name_or_path"] = base_model_id
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def library_versions() -> dict:
    import importlib.metadata as md

    versions = {"python": platform.python_version()}
    for name in ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "huggingface-hub"):
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _round4(value):
    return round(value, 4) if isinstance(value, float) else value


def _lora_summary(settings, peft_config) -> dict:
    """The LoRA settings as recorded in the SFT and GRPO run summaries."""
    modules = peft_config.target_modules
    return {
        "r": settings.lora_r,
        "alpha": settings.lora_alpha,
        "dropout": settings.lora_dropout,
        "target_modules": modules if isinstance(modules, str) else sorted(modules),
    }


def _jsonable(value):
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return str(value)


def dataset_label(settings: TrainSettings) -> str | None:
    """The dataset's Hub id for the card, if known."""
    if settings.dataset_id:
        return settings.dataset_id
    if not Path(settings.dataset).expanduser().exists() and looks_like_hub_id(settings.dataset):
        return settings.dataset
    return None


def stage_labels(settings: TrainSettings) -> dict | None:
    """Column titles of the results table for what was trained."""
    if settings.does_sft and settings.does_grpo:
        return {"base": "Base", "sft": "SFT only", "adapter": "SFT + GRPO"}
    if settings.does_sft:
        return {"base": "Base", "adapter": "SFT only"}
    return None


def run_evaluation(settings: TrainSettings, plan: Plan, adapter_dir: Path, summary: dict, log=print,
                   extra_adapters: dict | None = None) -> dict | None:
    """Every process evaluates its share of the test programs; the main process gathers them, writes the files
    and gets the results (the others get None)."""
    from trainer.evaluate import evaluate_adapter

    rows = plan.data["test"]
    if settings.eval_limit:
        rows = rows.select(range(min(settings.eval_limit, len(rows))))
    return evaluate_adapter(
        plan.source,
        adapter_dir,
        rows,
        batch_size=settings.eval_batch_size,
        max_new_tokens=settings.eval_max_new_tokens,
        thinking=plan.policy,
        thinking_budget=plan.thinking_budget,
        greedy=settings.eval_greedy,
        seed=settings.seed,
        extra_adapters=extra_adapters,
        labels=stage_labels(settings),
        include_base=not settings.skip_base_eval,
        dtype=summary["weights_dtype"],
        dataset_name=dataset_label(settings) or str(settings.dataset),
        split="test",
        log=log,
    )


def write_run(adapter_dir: Path, run: dict) -> None:
    (Path(adapter_dir) / RUN_FILE).write_text(json.dumps(run, indent=2) + "\n")


def read_run(adapter_dir: Path) -> dict:
    path = Path(adapter_dir) / RUN_FILE
    if not path.is_file():
        raise TrainError(f"{adapter_dir} holds no trained adapter ({RUN_FILE} is missing); train first.")
    return json.loads(path.read_text())


def push(output_dir: Path, repo_id: str, *, token: str | None = None, private: bool = False, log=print) -> str:
    """Render the card for `repo_id` and upload OUTPUT/adapter. Can be retried alone after a failure."""
    from trainer.card import write_card

    adapter_dir = Path(output_dir) / ADAPTER_DIR
    run = read_run(adapter_dir)
    if not (adapter_dir / "adapter_model.safetensors").is_file():
        raise TrainError(f"{adapter_dir} holds no adapter_model.safetensors; train first.")
    base = run.get("training", {}).get("base_model")
    if not base or base == run.get("training", {}).get("model_path"):
        raise TrainError("the adapter names no Hub base model; retrain with --base-model-id ID.")
    write_card(adapter_dir, run, repo_id)
    try:
        from hub.errors import HubError
        from hub.publish import upload_model_folder
    except ImportError as exc:
        raise PushError(f"the hub package is not available ({exc})") from exc
    log(f"Pushing {adapter_dir} to {repo_id}...")
    try:
        return upload_model_folder(
            str(adapter_dir), repo_id, token=token, private=private,
            commit_message=commit_message(run),
        )
    except HubError as exc:
        raise PushError(str(exc)) from exc
    except OSError as exc:  # connection errors that the hub layer did not wrap
        raise PushError(f"{type(exc).__name__}: {exc}") from exc


def commit_message(run: dict) -> str:
    training = run.get("training", {})
    parts = []
    if training.get("sft"):
        parts.append(f"{training['sft'].get('steps', '?')} SFT steps")
    if training.get("grpo") is not None or not training.get("sft"):
        parts.append(f"{training.get('global_steps', '?')} GRPO steps")
    return f"Upload execution-trace LoRA adapter ({' + '.join(parts)})"


def run(settings: TrainSettings, log=print, callbacks=(), process_started: float | None = None) -> RunResult:
    """Everything `train-and-push` does: (SFT warm start,) GRPO, evaluate, write the card and the plot, push.
    With several processes every one trains and evaluates its share; the main process alone writes and pushes.
    `process_started`: `time.time()` when the process started (the CLI's), for the start-up and total times."""
    from trainer.card import write_card, write_reward_plot
    from trainer.learning_signal import banner, eval_warnings

    run_started = time.time()
    process_started = process_started or run_started
    distributed.start()
    main = distributed.is_main()
    say = log if main else (lambda *args, **kwargs: None)
    threads = set_cpu_threads(settings)
    timings = {"before_run": round(run_started - process_started, 2)}
    output_dir = settings.resolved_output_dir()
    plan = prepare(settings, say)
    if main:
        output_dir.mkdir(parents=True, exist_ok=True)
    adapter_dir = output_dir / ADAPTER_DIR
    sft_summary = sft_adapter = None
    if settings.does_sft:
        sft_summary = sft(settings, plan, output_dir, say, callbacks)
        sft_adapter = output_dir / SFT_DIR / ADAPTER_DIR
        timings["sft"] = sft_summary["seconds"]
    if settings.does_grpo:
        summary = train(settings, plan, output_dir, say, callbacks, init_adapter=sft_adapter)
        timings["grpo"] = summary["train_seconds"]
    else:
        summary = sft_only_summary(settings, plan, sft_summary, sft_adapter, adapter_dir)
    first_stage = (sft_summary or summary).get("started_at") or run_started
    timings["startup"] = round(first_stage - process_started, 2)
    timings["train"] = round(sum(timings.get(k, 0.0) for k in ("sft", "grpo")), 2)
    summary["model_path"] = plan.source.path
    summary["prompt_style"] = settings.prompt_style
    summary["cpu_threads"] = threads
    summary["curriculum"] = {"order": settings.curriculum, "max_trace_steps": settings.max_trace_steps,
                             "train_limit": settings.train_limit, "programs": plan.described}
    summary["sft"] = {k: v for k, v in sft_summary.items() if k != "log_history"} if sft_summary else None
    t = time.perf_counter()
    extra = {}
    if sft_adapter is not None and settings.does_grpo and not settings.skip_sft_eval:
        extra["sft"] = sft_adapter
    results = run_evaluation(settings, plan, adapter_dir, summary, say, extra_adapters=extra)
    timings["evaluate"] = round(time.perf_counter() - t, 2)
    if not main:  # the main process writes, warns and pushes; the others are done
        distributed.finish()
        return RunResult(output_dir, adapter_dir, None, None, timings)
    for name, metrics in results.get("models", {}).items():
        timings[f"evaluate_{name}"] = metrics.get("seconds")
    warnings = list(plan.warnings) + (sft_summary or {}).get("warnings", []) + (
        summary.get("warnings", []) if settings.does_grpo else []) + eval_warnings(results)
    # nothing learned: no stage that ran changed the adapter (SFT that learned and GRPO that did not is a warning)
    stages = [s.get("learning_signal") or {} for s in ((sft_summary,) if sft_summary else ()) + (
        (summary,) if settings.does_grpo else ())]
    no_signal = bool(stages) and all(stage.get("no_signal") for stage in stages)
    history = json.loads((adapter_dir / LOG_FILE).read_text())
    plot = write_reward_plot(history, adapter_dir / PLOT_FILE)
    timings["total"] = round(time.time() - process_started, 2)  # until this record is written; the push follows
    run_info = {
        "training": summary,
        "evaluation": results,
        "dataset": {
            "source": str(settings.dataset),
            "hub_id": dataset_label(settings),
            "train_rows": summary["train_rows"],
            "train_split_rows": len(plan.data["train"]),
            "test_rows": len(plan.data["test"]),
        },
        "warnings": warnings,
        "no_signal": no_signal,
        "timings": dict(timings),
        "license": settings.license,
        "plot": PLOT_FILE if plot else None,
    }
    write_run(adapter_dir, run_info)
    write_card(adapter_dir, run_info, settings.repo_id or f"your-name/{output_dir.name}")
    log(f"Adapter, metrics and card saved in {adapter_dir}.")
    for line in banner(warnings, no_signal):
        log(line)
    distributed.finish()
    if no_signal and settings.fail_on_no_signal:
        raise NoSignalError(f"the run learned nothing ({warnings[0].rstrip('.')}), so --fail-on-no-signal stops "
                            f"it before any push; the adapter, its record and card are in {adapter_dir}.")
    url = None
    if settings.push:
        url = push(output_dir, settings.repo_id, token=settings.token, private=settings.private, log=log)
        log(f"Pushed: {url}")
    timings["total_with_push"] = round(time.time() - process_started, 2)
    return RunResult(output_dir, adapter_dir, results, url, timings, warnings)


def sft_only_summary(settings: TrainSettings, plan: Plan, sft_summary: dict, sft_adapter: Path,
                     adapter_dir: Path) -> dict:
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


def environment_note() -> str:
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs"
