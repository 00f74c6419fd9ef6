"""The run record (`training_run.json`): what ran, as it ran, written by the main process and read back by the push
and `evaluate-traces`."""

from __future__ import annotations

import json
import platform
from pathlib import Path

from trainer.models import looks_like_hub_id
from trainer.settings import RUN_FILE, TrainError, TrainSettings, cpu_features


def write_run(adapter_dir: Path, run: dict) -> None:
    (Path(adapter_dir) / RUN_FILE).write_text(json.dumps(run, indent=2) + "\n")


def read_run(adapter_dir: Path) -> dict:
    path = Path(adapter_dir) / RUN_FILE
    if not path.is_file():
        raise TrainError(f"{adapter_dir} holds no trained adapter ({RUN_FILE} is missing); train first.")
    return json.loads(path.read_text())


def library_versions() -> dict:
    import importlib.metadata as md

    versions = {"python": platform.python_version()}
    for name in ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "huggingface-hub"):
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def round4(value):
    return round(value, 4) if isinstance(value, float) else value


def jsonable(value):
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return str(value)


def dataset_name(spec: str) -> str:
    """How records name a dataset: a Hub id as it is, a local folder by its name only (never a path)."""
    path = Path(spec).expanduser()
    return path.resolve().name if path.exists() else spec


def dataset_label(settings: TrainSettings) -> str | None:
    """The dataset's Hub id for the card, if known."""
    if settings.dataset_id:
        return settings.dataset_id
    if not Path(settings.dataset).expanduser().exists() and looks_like_hub_id(settings.dataset):
        return settings.dataset
    return None


def run_record(
    settings: TrainSettings,
    plan,
    summary: dict,
    sft_summary: dict | None,
    results: dict,
    *,
    threads: dict,
    warnings: list,
    no_signal: bool,
    timings: dict,
    plot: str | None,
) -> dict:
    """`training_run.json`: the training summary (with the run's prompt style, curriculum, CPU threads and the SFT
    summary), the evaluation, the dataset, the warnings and the timings."""
    summary = {
        **summary,
        "model_path": plan.source.path,
        "prompt_style": settings.prompt_style,
        "direct_answers": len(plan.answers),  # SFT examples and GRPO prompts of CRUXEval's direct prompt
        "direct_answers_only": plan.direct_answers_only,  # trained on those alone, no traces (trainer.answers)
        "direct_answers_format": plan.direct_answers_format if plan.answers else None,  # chat or raw
        "cpu_threads": threads,
        "cpu": cpu_features(),  # what decides whether bf16 pays on a CPU (settings.BF16_INSTRUCTIONS)
        "curriculum": {
            "order": settings.curriculum,
            "max_trace_steps": settings.max_trace_steps,
            "train_limit": settings.train_limit,
            "programs": plan.described,
        },
        "sft": {k: v for k, v in sft_summary.items() if k != "log_history"} if sft_summary else None,
        "plan": plan.sizing,  # the GRPO run as planned before any weight loaded (trainer.sizing)
    }
    return {
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
        "plot": plot,
    }
