"""What `train-and-push` takes (`TrainSettings`), where it writes, its errors, and the device-level choices every
stage shares: the dtype of the base weights and the CPU threads."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from trainer.models import DEFAULT_MODEL, ModelSource
from trainer.thinking import ThinkingPolicy

ADAPTER_DIR = "adapter"
SFT_DIR = "sft"
SFT_RUN_FILE = "sft_run.json"
CHECKPOINT_DIR = "checkpoints"
RUN_FILE = "training_run.json"
PLAN_FILE = "plan.json"  # the run as planned before any weight loads (trainer.sizing), in OUTPUT
LOG_FILE = "training_log.json"
PLOT_FILE = "reward_curve.png"
UNSCALED_DIR = "unscaled-adapter"  # the adapter as trained, where --adapter-scale scaled OUTPUT/adapter
SCALES_DIR = "adapter-scales"  # each scale's results on the held-out calls, where --adapter-scale chose one
# what a run leaves in OUTPUT (besides plan.json, a dry run's)
RUN_ITEMS = (ADAPTER_DIR, SFT_DIR, CHECKPOINT_DIR, UNSCALED_DIR, SCALES_DIR)
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
    lora_layers: int | None = None  # LoRA on the last N transformer layers only (backward stops below); default: all
    num_generations: int | None = None
    max_completion_length: int | None = None
    learning_rate: float | None = None
    seed: int = 0
    resume: bool = False
    overwrite: bool = False  # replace the run --output-dir holds (else it is refused, unless --resume)
    report_to: str = "none"  # an experiment tracker TRL logs loss and reward to (REPORTERS)
    config_file: str | None = None  # YAML of further GRPOConfig settings
    grpo_overrides: dict = field(default_factory=dict)  # further GRPOConfig settings (after the file)
    train_limit: int | None = None  # use only the first N training rows (after --max-trace-steps)
    max_trace_steps: int | None = None  # train only on programs whose trace has at most N steps
    curriculum: str = "none"  # "none" | "short-first" (by trace length in steps)
    prompt_style: str = "dataset"  # trainer.prompts.PROMPT_STYLES
    direct_answers: bool = False  # SFT and GRPO also on CRUXEval's direct prompt for function calls (trainer.answers)
    direct_answers_only: bool = False  # SFT and GRPO on those direct answers alone, no traces (implies direct_answers)
    direct_answers_format: str = "chat"  # how their prompts reach the model: chat or raw (trainer.answers.FORMATS)
    lazy_answer_penalty: float = 0.0  # a lazy wrong direct answer scores minus this (trainer.answers.is_lazy_answer)
    adapter_scale: tuple = (1.0,)  # the trained update scaled by this; several: chosen on held-out calls (scaling)
    scale_holdout: int = 200  # function calls held out of training to choose the scale on (trainer.scaling)
    scale_calls: str | None = None  # choose it on another dataset's calls instead (none trained on: their structure)
    sft_epochs: float | None = None  # SFT warm start: passes over the training programs
    sft_steps: int | None = None  # SFT warm start: optimizer steps (wins over sft_epochs)
    sft_learning_rate: float = 2e-4
    sft_batch_size: int = 4  # programs per SFT optimizer step
    sft_max_length: int | None = None  # tokens per SFT example (prompt + trace); default: the longest example
    thinking: str = "auto"  # "auto" | "on" | "off" (trainer.thinking)
    thinking_budget: int | None = None  # thinking tokens on top of the longest trace; default 4096 GPU, 64 CPU
    eval_greedy: bool = False  # greedy evaluation even for a thinking run (default there: Qwen's sampling)
    fail_on_no_signal: bool = False  # exit non-zero (before any push) when the run learned nothing
    cpu_threads: int | None = None  # torch threads per process on a CPU; default: $OMP_NUM_THREADS, else 1
    dtype: str = "auto"  # base weights: "auto" (bf16 on a GPU, fp32 on a CPU), "float32", "bfloat16"
    eval_limit: int | None = None  # evaluate on the first N test rows (default: the whole test split)
    eval_batch_size: int | None = None
    eval_max_new_tokens: int | None = None  # default: the longest reference trace (+32) without thinking, else
    # the completion length used in training
    skip_base_eval: bool = False
    eval_cache: bool = True  # the base model's figures from an identical earlier evaluation (trainer.eval_cache)
    skip_sft_eval: bool = False  # with a warm start, do not evaluate the SFT-only adapter separately
    benchmark: str | None = None  # "cruxeval": CRUXEval-O through predicted traces in the evaluation too
    benchmark_data: str | None = None  # its items: a JSONL or parquet file or a Hub id (default: the Hub's)
    benchmark_limit: int | None = None  # the first N items only
    cruxeval_prompts: tuple = ("direct", "cot")  # the base also asked with these CRUXEval prompts (trainer.benchmark)
    cruxeval_prompt_format: str = "auto"  # how they reach it: raw | chat | both | auto (chat where the model thinks)
    dataset_id: str | None = None  # the dataset's Hub id for the card when --dataset is a folder
    license: str = "apache-2.0"
    private: bool = False
    push: bool = True
    token: str | None = None
    dry_run: bool = False  # plan the run (trainer.sizing), write OUTPUT/plan.json, load no weights, train nothing
    gpu_memory_gb: float | None = None  # the card the plan is checked against (default: the visible GPU's, else 80)
    plan_gpus: int | None = None  # with dry_run: plan for this many GPUs even where none is visible
    vllm_mode: str = "auto"  # "auto" (colocate on a GPU when vLLM is installed) | "colocate" | "server" | "off"
    ddp_timeout: int = 1800  # seconds the processes wait for each other (process group and Trainer)

    @property
    def does_sft(self) -> bool:
        return bool(self.sft_steps) or bool(self.sft_epochs)

    @property
    def does_grpo(self) -> bool:
        return self.max_steps != 0

    @property
    def planned_gpu(self) -> bool:
        """This run is planned (or runs) on GPUs: a GPU is visible, or a dry run plans for some."""
        return bool(self.dry_run and self.plan_gpus) or on_gpu()

    def resolved_output_dir(self) -> Path:
        """--output-dir, else outputs/NAME: the repo's name, or without one DATASET-MODEL (their last path parts,
        e.g. outputs/execution-traces-Qwen3-4B-Thinking-2507), so runs on other data or models do not meet."""
        if self.output_dir:
            return Path(self.output_dir).expanduser()
        if self.repo_id:
            return Path("outputs") / self.repo_id.split("/")[-1]
        dataset, model = (Path(str(spec).rstrip("/")).name.removesuffix(".gguf") for spec in (self.dataset, self.model))
        return Path("outputs") / f"{dataset}-{model}"


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
    benchmark: object = None  # trainer.benchmark.Benchmark: the items loaded and traced, when --benchmark
    answers: list = field(default_factory=list)  # --direct-answers: the direct-answer examples (trainer.answers)
    direct_answers_only: bool = False  # --direct-answers-only: those examples without the traces
    direct_answers_format: str = "chat"  # --direct-answers-format: chat or raw (trainer.answers.training_prompt)
    prompt_tokens_max: int = 0  # tokens of the longest training prompt, rendered for generation
    held_out_calls: list = field(default_factory=list)  # several --adapter-scale values: the calls to choose on
    holdout_record: dict | None = None  # what was held out for that (trainer.scaling.hold_out_calls)
    sizing: dict | None = None  # the GRPO run's plan (trainer.sizing): tokens, memory, steps; None without GRPO

    @property
    def generation_policy(self) -> ThinkingPolicy:
        """The thinking of what GRPO generates: the run's, except for raw direct answers, which never pass through
        the chat template, so a model does not think there (its completion budget has no thinking budget)."""
        if self.direct_answers_only and self.direct_answers_format == "raw":
            return ThinkingPolicy(self.policy.template, "off", enabled=False, opens_think=False)
        return self.policy

    @property
    def grpo_prompts(self) -> int:
        """GRPO's prompts: the training programs' traces and the direct answers (`trainer.answers.grpo_rows`)."""
        return len(self.answers) + (0 if self.direct_answers_only else len(self.rows))


@dataclass
class RunResult:
    output_dir: Path
    adapter_dir: Path
    results: dict | None
    url: str | None
    seconds: dict
    warnings: list = field(default_factory=list)


def latest_checkpoint(stage_dir: Path) -> str | None:
    """The newest checkpoint a stage saved in STAGE_DIR/checkpoints (OUTPUT for GRPO, OUTPUT/sft for SFT)."""
    from transformers.trainer_utils import get_last_checkpoint

    folder = Path(stage_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return None
    return get_last_checkpoint(str(folder))


# Instructions that make bf16 matmuls fast on a CPU (x86: AVX-512 BF16, AMX; Arm: the BF16 extension). Without
# them torch emulates bf16: a Qwen2.5-Coder-0.5B forward of 4 x 200 tokens on an AVX2-only EPYC took 38.4 s in bf16
# against 5.5 s in fp32 (7x slower); with avx512_bf16, bf16 weights made SFT about 2x faster than fp32 here.
BF16_INSTRUCTIONS = ("avx512_bf16", "amx_bf16", "bf16")


REPORTERS = ("none", "trackio", "tensorboard", "wandb")  # --report-to: the package each needs has that name
TRACKING_PROJECT = "execution-world-model"  # trackio's project (one SQLite file under TRACKIO_DIR)


def tracking_kwargs(settings: "TrainSettings", stage: str) -> dict:
    """The Trainer arguments that send a stage's ("sft" or "grpo") logged loss, reward and learning rate to the
    tracker of --report-to: one project, a run per stage named after the output folder. The trainers log on the
    main process only."""
    if settings.report_to == "none":
        return {"report_to": "none"}
    return {
        "report_to": settings.report_to,
        "project": TRACKING_PROJECT,
        "run_name": f"{settings.resolved_output_dir().name}-{stage}",
    }


def cpu_features(cpuinfo_path: str = "/proc/cpuinfo") -> dict:
    """This machine's CPU as a record shows it: its model name, the flags that decide how fast bf16 and fp32 run,
    and whether it has bf16 instructions (`bf16_instructions`; from /proc/cpuinfo, False where it cannot be read)."""
    model, flags = "", set()
    try:
        with open(cpuinfo_path) as cpuinfo:
            for line in cpuinfo:
                key, _, value = (part.strip() for part in line.partition(":"))
                if key in ("model name", "CPU part") and not model:
                    model = value
                elif key in ("flags", "Features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    relevant = sorted(flags & {"avx2", "avx512f", *BF16_INSTRUCTIONS})
    return {"model": model, "flags": relevant, "bf16_instructions": any(f in flags for f in BF16_INSTRUCTIONS)}


def slow_bf16_warning(cpu: dict | None = None) -> str | None:
    """One sentence when bf16 weights were asked for on a CPU (`cpu_features()`) that has no bf16 instructions,
    else None."""
    cpu = cpu or cpu_features()
    if cpu["bf16_instructions"]:
        return None
    return (
        f"--dtype bfloat16 on a CPU without bf16 instructions ({cpu['model'] or 'unknown CPU'}: no "
        f"{', '.join(BF16_INSTRUCTIONS[:2])}) runs bf16 in emulation, about 7x slower than fp32 as measured on an "
        "AVX2-only EPYC: --dtype float32 is faster there."
    )


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


def set_cpu_threads(settings: TrainSettings) -> dict:
    """Torch's CPU threads per process, set deliberately: `--cpu-threads N`, else `$OMP_NUM_THREADS`, else 1.
    One thread per process is the steady choice: on a machine shared with other jobs, threads that busy-wait for
    a core another job holds make every step slower (docs/training.md's smoke test: about 20 s with 1 thread, 2-7 times
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
