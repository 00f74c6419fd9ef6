"""The push: render the card for the repo and upload OUTPUT/adapter; alone with `--push-only` (e.g. after a failed
push), since the adapter, its record and card stay on disk."""

from __future__ import annotations

import logging
from pathlib import Path

from trainer.models import looks_like_hub_id
from trainer.record import read_run, write_run
from trainer.settings import ADAPTER_DIR, PushError, TrainError

logger = logging.getLogger(__name__)


def push(
    output_dir: Path,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    dataset_id: str | None = None,
) -> str:
    """Render the card for `repo_id` and upload OUTPUT/adapter. Can be retried alone after a failure.
    `dataset_id` names the dataset's Hub copy in the run record and the card (`--push-only --dataset-id`)."""
    from trainer.card import write_card

    adapter_dir = Path(output_dir) / ADAPTER_DIR
    run = read_run(adapter_dir)
    if not (adapter_dir / "adapter_model.safetensors").is_file():
        raise TrainError(f"{adapter_dir} holds no adapter_model.safetensors; train first.")
    base = run.get("training", {}).get("base_model")
    if not base or base == run.get("training", {}).get("model_path"):
        raise TrainError("the adapter names no Hub base model; retrain with --base-model-id ID.")
    if dataset_id:
        if "/" not in dataset_id or not looks_like_hub_id(dataset_id):
            raise TrainError(f"--dataset-id {dataset_id!r} is not a Hub dataset id (USER/NAME).")
        run["dataset"] = {**(run.get("dataset") or {}), "hub_id": dataset_id}
        write_run(adapter_dir, run)
    write_card(adapter_dir, run, repo_id)
    _drop_local_paths(adapter_dir)
    try:
        from hub.errors import HubError
        from hub.publish import upload_model_folder
    except ImportError as exc:
        raise PushError(f"the hub package is not available ({exc})") from exc
    logger.info(f"Pushing {adapter_dir} to {repo_id}...")
    try:
        return upload_model_folder(
            str(adapter_dir),
            repo_id,
            token=token,
            private=private,
            commit_message=commit_message(run),
        )
    except HubError as exc:
        raise PushError(str(exc)) from exc
    except OSError as exc:  # connection errors that the hub layer did not wrap
        raise PushError(f"{type(exc).__name__}: {exc}") from exc


def _drop_local_paths(adapter_dir: Path) -> None:
    """The records that travel with the adapter name local folders (the dataset, the model cache, a warm start)
    by their folder name only: a path such as /home/NAME/... says nothing to a reader and tells who trained it."""
    import json
    import os

    def public(value):
        if isinstance(value, dict):
            return {k: public(v) for k, v in value.items()}
        if isinstance(value, list):
            return [public(v) for v in value]
        if isinstance(value, str) and os.path.isabs(value) and os.path.exists(value):
            return Path(value).name
        return value

    for path in sorted(adapter_dir.rglob("*.json")):  # every record, a separate evaluation's too
        record = json.loads(path.read_text())
        cleaned = public(record)
        if cleaned != record:
            path.write_text(json.dumps(cleaned, indent=2) + "\n")
    for path in sorted(adapter_dir.rglob("*.jsonl")):
        lines = path.read_text().splitlines()
        cleaned = [json.dumps(public(json.loads(line))) for line in lines if line.strip()]
        if cleaned != [line for line in lines if line.strip()]:
            path.write_text("".join(line + "\n" for line in cleaned))


def commit_message(run: dict) -> str:
    training = run.get("training", {})
    parts = []
    if training.get("sft"):
        parts.append(f"{training['sft'].get('steps', '?')} SFT steps")
    if training.get("grpo") is not None or not training.get("sft"):
        parts.append(f"{training.get('global_steps', '?')} GRPO steps")
    return f"Upload execution-trace LoRA adapter ({' + '.join(parts)})"
