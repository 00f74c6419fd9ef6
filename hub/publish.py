"""Push a built dataset (with its card) to a dataset repo, and an adapter folder to a model repo."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from hub.auth import authorize, check_repo_id, endpoint, resolve_token
from hub.errors import HubError, hub_errors


def upload_model_folder(
    folder: str | Path,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    commit_message: str = "Upload adapter with its model card",
) -> str:
    """Upload every file of `folder` to the model repo `repo_id` (created if needed) in one commit, deleting
    files in the repo that are no longer in the folder (`.gitattributes` is kept). Returns the repo URL.
    Raises HubError (one sentence) on a missing folder, no token, a malformed id, a namespace the token does
    not own, or a Hub that is down or fails; run it again to finish an interrupted upload."""
    folder = Path(folder)
    if not folder.is_dir() or not any(p.is_file() for p in folder.rglob("*")):
        raise HubError(f"There is no folder with files to upload at {folder}.")
    check_repo_id(repo_id)
    token = resolve_token(token)
    url = endpoint()
    with hub_errors(endpoint=url, repo_id=repo_id, action="upload", token=token):
        from huggingface_hub import HfApi

        api = HfApi(endpoint=url, token=token)
        authorize(api, repo_id)
        repo_url = api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        api.upload_folder(
            folder_path=str(folder),
            repo_id=repo_id,
            repo_type="model",
            commit_message=commit_message,
            delete_patterns=["*", "**/*"],
        )
    return str(repo_url)


# ---------------------------------------------------------------------------------------------------------
# Datasets

SPLITS = ("train", "test")
COLUMNS = ("id", "code", "steps", "stdout", "error", "prompt", "expected_trace", "num_lines", "num_steps", "constructs", "skeleton")
MAX_ROW_BYTES = 200_000  # one row bigger than this breaks the Hub viewer's first page


@dataclass
class PushResult:
    url: str  # the dataset's page
    commit: str  # head of main after the push
    changed: bool  # False when the Hub already held exactly this dataset and card
    splits: dict  # split -> rows
    first_rows_kb: dict  # split -> size of the viewer's first rows, in KB of JSON
    warnings: list = field(default_factory=list)


def load_built_dataset(folder: str | Path):
    """The `DatasetDict` and `report.json` that `build-dataset` saved in `folder` (read only: nothing in the
    folder is changed). Raises HubError naming what is missing or wrong."""
    folder = Path(folder)
    if not folder.is_dir():
        raise HubError(f"There is no dataset folder at {folder}: build one with `build-dataset --output {folder}`.")
    if not (folder / "dataset_dict.json").is_file():
        raise HubError(f"{folder} is not a dataset saved by build-dataset (it has no dataset_dict.json).")
    try:
        report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
        if not isinstance(report, dict):
            raise ValueError
    except (OSError, ValueError):
        raise HubError(f"{folder} has no readable report.json (build-dataset writes it; the card needs it).") from None
    from datasets import DatasetDict

    try:
        dsd = DatasetDict.load_from_disk(str(folder))
    except Exception as exc:  # datasets raises many kinds for a damaged folder
        raise HubError(f"The dataset in {folder} cannot be read ({type(exc).__name__}); rebuild it with build-dataset.") from None
    missing_splits = [s for s in SPLITS if s not in dsd]
    if missing_splits:
        raise HubError(f"The dataset in {folder} lacks the split(s) {', '.join(missing_splits)}.")
    for name in dsd:
        missing = [c for c in COLUMNS if c not in dsd[name].column_names]
        if missing:
            raise HubError(f"The {name} split in {folder} lacks the column(s) {', '.join(missing)}.")
    if len(dsd["train"]) == 0:
        raise HubError(f"The train split in {folder} is empty.")
    return dsd, report


def _null_columns(feature, path: str) -> list[str]:
    """Columns (nested ones too) whose type is `null`: the viewer cannot type them."""
    from datasets import List, Sequence, Value

    if isinstance(feature, Value):
        return [path] if feature.dtype == "null" else []
    if isinstance(feature, dict):
        return [p for key, sub in feature.items() for p in _null_columns(sub, f"{path}.{key}" if path else key)]
    if isinstance(feature, (List, Sequence)):
        return _null_columns(feature.feature, f"{path}[]")
    return []


def viewer_problems(dsd) -> tuple[list[str], list[str]]:
    """(errors, warnings) against what the Hub dataset viewer needs (DESIGN §4). Errors break it: splits with
    different column types, untyped (null) columns. Warnings only make it truncate cells: a row over 200 KB of
    JSON, or a first page (10 rows) over 200 KB."""
    from hub.card import FIRST_ROWS, FIRST_ROWS_MAX_BYTES, first_rows_bytes, row_bytes

    errors, warnings = [], []
    features = {name: dsd[name].features for name in dsd}
    first = next(iter(features.values()))
    if any(f != first for f in features.values()):
        errors.append("the splits do not share one set of column types")
    errors += [f"column {c!r} has no type (all its values are null)" for c in _null_columns(dict(first), "")]
    for name in dsd:
        biggest = max((row_bytes(row) for row in dsd[name]), default=0)
        if biggest > MAX_ROW_BYTES:
            warnings.append(f"a row of the {name} split is {biggest // 1000} KB of JSON (over {MAX_ROW_BYTES // 1000} KB): the viewer will truncate it")
        size = first_rows_bytes(dsd[name])
        if size > FIRST_ROWS_MAX_BYTES:
            warnings.append(
                f"the first {FIRST_ROWS} rows of {name} are {size // 1000} KB of JSON (over {FIRST_ROWS_MAX_BYTES // 1000} KB): the viewer will truncate cells"
            )
    return errors, warnings


def push_dataset(
    folder: str | Path,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    pretty_name: str = "Python execution traces",
) -> PushResult:
    """Push both splits of the dataset `build-dataset` saved in `folder` to the dataset repo `repo_id` as
    parquet (with `datasets`' push_to_hub), then its card (rendered from `dataset_card.md`) and histogram.
    Pushing the same data again makes no commit; pushing changed data replaces the old shards. Raises HubError
    (one sentence) on any failure; the local folder is only read, so running it again finishes the push."""
    check_repo_id(repo_id)
    dsd, report = load_built_dataset(folder)
    errors, warnings = viewer_problems(dsd)
    if errors:
        raise HubError(f"The dataset in {folder} would break the Hub viewer: {'; '.join(errors)}.")
    token = resolve_token(token)
    url = endpoint()
    from hub.card import HISTOGRAM_PATH, histogram_svg, render_card

    with hub_errors(endpoint=url, repo_id=repo_id, action="push", token=token):
        from huggingface_hub import CommitOperationAdd, CommitOperationDelete, DatasetCard, HfApi
        from huggingface_hub.errors import RepositoryNotFoundError
        from huggingface_hub.utils.sha import git_hash

        api = HfApi(endpoint=url, token=token)
        authorize(api, repo_id)
        try:
            before = api.dataset_info(repo_id).sha
        except RepositoryNotFoundError:
            before = None
        dsd.push_to_hub(repo_id, private=private or None, token=token, commit_message="Upload dataset splits")
        info = api.dataset_info(repo_id, files_metadata=False)
        if private and not info.private:
            api.update_repo_settings(repo_id, repo_type="dataset", private=True)

        # The card keeps the `configs` and `dataset_info` that datasets just wrote (sizes included), so the next
        # push of the same data finds nothing to change.
        pushed = Path(api.hf_hub_download(repo_id, "README.md", repo_type="dataset", revision=info.sha)).read_text("utf-8")
        meta = DatasetCard(pushed).data.to_dict()
        hub_metadata = {"configs": meta["configs"], "dataset_info": meta["dataset_info"]}
        card, figures = render_card(dsd, report, repo_id, hub_metadata=hub_metadata, pretty_name=pretty_name)
        svg = histogram_svg(figures).encode()
        remote = {f.path: f for f in api.list_repo_tree(repo_id, repo_type="dataset", recursive=True, revision=info.sha)
                  if hasattr(f, "blob_id")}
        operations = []
        if str(card) != pushed:
            operations.append(CommitOperationAdd("README.md", str(card).encode()))
        if HISTOGRAM_PATH not in remote or remote[HISTOGRAM_PATH].blob_id != git_hash(svg):
            operations.append(CommitOperationAdd(HISTOGRAM_PATH, svg))
        stale_dir = HISTOGRAM_PATH.rsplit("/", 1)[0] + "/"
        operations += [CommitOperationDelete(p) for p in remote if p.startswith(stale_dir) and p != HISTOGRAM_PATH]
        if operations:
            api.create_commit(repo_id, operations, commit_message="Update dataset card", repo_type="dataset", parent_commit=info.sha)
        after = api.dataset_info(repo_id).sha
    return PushResult(
        url=f"{url}/datasets/{repo_id}",
        commit=after,
        changed=after != before,
        splits={name: len(dsd[name]) for name in dsd},
        first_rows_kb=figures["first_rows_kb"],
        warnings=warnings,
    )
