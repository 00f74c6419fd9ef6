"""The base model's evaluation, cached: a rerun (or a second recipe on the same data) pays for it once.

The base model does not change between runs, so its scores on the same programs with the same decoding are the
same: on the CPU recipe that is about 200 s of every run. An entry is keyed by everything its figures depend on:
the model (its id, or a local folder's weight and config files by name, size and modification time), the rows
(prompts and reference traces: the prompt style is in the prompts), the decoding (greedy or sampling and its seed,
the token cap, the batch size, the dtype, the thinking policy), what is scored, and the versions of the libraries
that generate. A figure that came from the cache says so in the results (`from_cache`). One process only: with
several, each evaluates its own share with its own seed, and nothing is cached.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

CACHE_VERSION = 1  # raise when what a cached entry means changes (scoring, the predictions' fields)


def _model_identity(source) -> list:
    folder = Path(source.path)
    if not folder.is_dir():
        return [source.path]
    files = sorted(p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin", ".json", ".jinja"))
    return [str(folder.resolve())] + [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files]


def cache_key(source, rows: list, decoding: dict, policy: dict, scoring: str) -> str:
    from trainer.record import library_versions

    versions = {k: v for k, v in library_versions().items() if k in ("python", "torch", "transformers", "peft")}
    content = [(r["prompt"], r["expected_trace"]) for r in rows]
    material = json.dumps(
        [CACHE_VERSION, _model_identity(source), content, decoding, policy, scoring, versions],
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(material.encode()).hexdigest()[:32]


def _path(key: str) -> Path:
    from trainer.models import cache_dir

    return cache_dir() / "evaluations" / f"base-{key}.json"


def load(key: str) -> tuple[dict, list] | None:
    """(metrics, predictions) of a cached base evaluation, or None."""
    try:
        entry = json.loads(_path(key).read_text())
        return entry["metrics"], entry["predictions"]
    except (OSError, ValueError, KeyError):
        return None


def store(key: str, metrics: dict, predictions: list) -> None:
    path = _path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"metrics": metrics, "predictions": predictions}) + "\n")
    tmp.replace(path)  # whole or not at all
