"""Training: GRPO with a LoRA adapter on the dataset's chat prompts, rewarded by the execution reward; then the
honest evaluation, the model card and the push.

`run(settings)` is what `train-and-push` calls. Its steps are separate functions so each can run alone:

    prepare   → resolve the model, load the dataset, check what would fail late (before any training)
    train     → GRPOTrainer + LoRA; checkpoints in OUTPUT/checkpoints; the adapter in OUTPUT/adapter
    evaluate  → base vs adapter on the test split → OUTPUT/adapter/eval_results.json
    card      → OUTPUT/adapter/README.md and reward_curve.png
    push      → OUTPUT/adapter to the Hub (alone with `--push-only`, e.g. after a failed push)

An SFT warm start would slot in as another step between prepare and train, writing an adapter that GRPO
continues from; the output layout already leaves room for it (OUTPUT/sft/).
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

from trainer.models import DEFAULT_MODEL, ModelSource, looks_like_hub_id, resolve_model

ADAPTER_DIR = "adapter"
CHECKPOINT_DIR = "checkpoints"
RUN_FILE = "training_run.json"
LOG_FILE = "training_log.json"
PLOT_FILE = "reward_curve.png"
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
# Qwen's recommended sampling for its thinking models
QWEN_SAMPLING = {"temperature": 0.6, "top_p": 0.95, "top_k": 20, "min_p": 0.0}


class TrainError(Exception):
    """A user mistake found while preparing or running training; its message is one sentence."""


class PushError(Exception):
    """The push failed; the adapter is still on disk and the push alone can be retried."""


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
    train_limit: int | None = None  # use only the first N training rows
    eval_limit: int | None = None  # evaluate on the first N test rows (default: the whole test split)
    eval_batch_size: int | None = None
    eval_max_new_tokens: int | None = None  # default: the completion length used in training
    skip_base_eval: bool = False
    dataset_id: str | None = None  # the dataset's Hub id for the card when --dataset is a folder
    license: str = "apache-2.0"
    private: bool = False
    push: bool = True
    token: str | None = None

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
        "mask_truncated_completions": False,
        "shuffle_dataset": True,
        "remove_unused_columns": False,
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


def grpo_config_kwargs(settings: TrainSettings, output_dir: Path, gpu: bool) -> dict:
    """The GRPOConfig arguments: device defaults, then the config file, then the explicit options."""
    from trl import GRPOConfig

    kwargs = default_grpo_settings(gpu)
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
            if "reward" not in logs:
                if "train_runtime" in logs:
                    log(f"done: {state.global_step} steps in {logs['train_runtime']:.1f} s")
                return
            done = max(state.global_step - self.first_step, 1)
            per_step = (time.perf_counter() - self.started) / done if self.started else 0.0
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


def prepare(settings: TrainSettings, log=print):
    """Resolve the model and the dataset and check everything that would otherwise fail after training."""
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
    source = resolve_model(settings.model, settings.base_model_id)
    if settings.push and not source.base_model_id:
        raise TrainError(
            f"the adapter must name its base model's Hub id, which {settings.model} does not tell: pass "
            "--base-model-id ID or --no-push."
        )
    make_grpo_config(grpo_config_kwargs(settings, settings.resolved_output_dir(), on_gpu()))  # bad settings: now
    log(f"Loading dataset {settings.dataset}...")
    data = load_trace_dataset(settings.dataset)
    if len(data["train"]) == 0:
        raise TrainError(f"the train split of {settings.dataset} is empty.")
    return source, data


def train(settings: TrainSettings, source: ModelSource, train_rows, output_dir: Path, log=print,
          callbacks=()) -> dict:
    """Run GRPO; save the adapter in OUTPUT/adapter. Returns the training summary (settings, log history)."""
    import torch
    from transformers.trainer_callback import ProgressCallback
    from trl import GRPOTrainer

    from trainer.models import load_model, thinking_template
    from trainer.rewards import ExecutionReward

    gpu = on_gpu()
    kwargs = grpo_config_kwargs(settings, output_dir, gpu)
    if not gpu:
        torch.set_num_threads(max(torch.get_num_threads(), 1))
    config = make_grpo_config(kwargs)
    checkpoint = None
    if settings.resume:
        checkpoint = latest_checkpoint(output_dir)
        if checkpoint is None:
            log(f"--resume: no checkpoint in {output_dir / CHECKPOINT_DIR} yet, starting from the beginning.")
        else:
            log(f"Resuming from {checkpoint}.")
    log(f"Loading model {source.spec} ({'GPU, bf16' if gpu else 'CPU, fp32'})...")
    tokenizer, model = load_model(source, dtype=torch.bfloat16 if config.bf16 else torch.float32)
    if source.is_tiny:
        log("Note: 'tiny' is a randomly initialized smoke-test model; it learns nothing useful.")
    thinking = thinking_template(tokenizer)
    reward = ExecutionReward(thinking=thinking)
    peft_config = lora_config(settings, model)
    if settings.train_limit:
        train_rows = train_rows.select(range(min(settings.train_limit, len(train_rows))))
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[reward],
        args=config,
        train_dataset=train_rows,
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(progress_callback(log))
    for callback in callbacks:
        trainer.add_callback(callback)
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    log(
        f"GRPO on {len(train_rows)} programs: LoRA r={settings.lora_r} alpha={settings.lora_alpha} "
        f"({trainable / 1e6:.2f}M trainable parameters), {config.num_generations} completions per prompt, "
        f"up to {config.max_completion_length} tokens each, lr {config.learning_rate:g}."
    )
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=checkpoint)
    seconds = time.perf_counter() - started
    adapter_dir = output_dir / ADAPTER_DIR
    trainer.save_model(str(adapter_dir))
    (adapter_dir / "training_args.bin").unlink(missing_ok=True)  # a pickle; the settings are in training_run.json
    set_adapter_base(adapter_dir, source.base_model_id or source.path)
    history = [dict(entry) for entry in trainer.state.log_history]
    (adapter_dir / LOG_FILE).write_text(json.dumps(history, indent=1) + "\n")
    summary = {
        "model": source.spec,
        "model_kind": source.kind,
        "base_model": source.base_model_id,
        "thinking_template": thinking,
        "device": "cuda" if gpu else "cpu",
        "global_steps": trainer.state.global_step,
        "train_seconds": round(seconds, 2),
        "train_rows": len(train_rows),
        "trainable_parameters": trainable,
        "lora": {
            "r": settings.lora_r,
            "alpha": settings.lora_alpha,
            "dropout": settings.lora_dropout,
            "target_modules": sorted(peft_config.target_modules)
            if not isinstance(peft_config.target_modules, str)
            else peft_config.target_modules,
        },
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
    for name in ("torch", "transformers", "trl", "peft", "datasets", "huggingface-hub"):
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


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


def run_evaluation(settings: TrainSettings, source: ModelSource, test_rows, adapter_dir: Path, summary: dict,
                   log=print) -> dict:
    from trainer.evaluate import evaluate_adapter

    rows = test_rows
    if settings.eval_limit:
        rows = rows.select(range(min(settings.eval_limit, len(rows))))
    max_new = settings.eval_max_new_tokens or summary["grpo"]["max_completion_length"]
    return evaluate_adapter(
        source,
        adapter_dir,
        rows,
        batch_size=settings.eval_batch_size,
        max_new_tokens=max_new,
        include_base=not settings.skip_base_eval,
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
            commit_message=f"Upload execution-trace LoRA adapter ({run.get('training', {}).get('global_steps', '?')} GRPO steps)",
        )
    except HubError as exc:
        raise PushError(str(exc)) from exc
    except OSError as exc:  # connection errors that the hub layer did not wrap
        raise PushError(f"{type(exc).__name__}: {exc}") from exc


def run(settings: TrainSettings, log=print, callbacks=()) -> RunResult:
    """Everything `train-and-push` does: train, evaluate, write the card and the plot, push."""
    from trainer.card import write_card, write_reward_plot

    timings = {}
    started = time.perf_counter()
    output_dir = settings.resolved_output_dir()
    source, data = prepare(settings, log)
    output_dir.mkdir(parents=True, exist_ok=True)
    summary = train(settings, source, data["train"], output_dir, log, callbacks)
    timings["train"] = summary["train_seconds"]
    adapter_dir = output_dir / ADAPTER_DIR
    summary["model_path"] = source.path
    t = time.perf_counter()
    results = run_evaluation(settings, source, data["test"], adapter_dir, summary, log)
    timings["evaluate"] = round(time.perf_counter() - t, 2)
    history = json.loads((adapter_dir / LOG_FILE).read_text())
    plot = write_reward_plot(history, adapter_dir / PLOT_FILE)
    run_info = {
        "training": summary,
        "evaluation": results,
        "dataset": {
            "source": str(settings.dataset),
            "hub_id": dataset_label(settings),
            "train_rows": summary["train_rows"],
            "test_rows": len(data["test"]),
        },
        "license": settings.license,
        "plot": PLOT_FILE if plot else None,
    }
    write_run(adapter_dir, run_info)
    write_card(adapter_dir, run_info, settings.repo_id or f"your-name/{output_dir.name}")
    log(f"Adapter, metrics and card saved in {adapter_dir}.")
    url = None
    if settings.push:
        url = push(output_dir, settings.repo_id, token=settings.token, private=settings.private, log=log)
        log(f"Pushed: {url}")
    timings["total"] = round(time.perf_counter() - started, 2)
    return RunResult(output_dir, adapter_dir, results, url, timings)


def environment_note() -> str:
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs"
