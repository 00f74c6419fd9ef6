"""Push a built dataset (with its card) to a dataset repo, and an adapter folder to a model repo: each publish is
one `create_commit` holding every added, changed and deleted file, and none when the repo already holds them."""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from hub.auth import authorize, check_repo_id, endpoint, resolve_token
from hub.errors import HubError, hub_errors
from hub.layout import DATA_DIR, hub_metadata, write_parquet_shards


def upload_model_folder(
    folder: str | Path,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    commit_message: str = "Upload adapter with its model card",
) -> str:
    """Upload every file of `folder` to the model repo `repo_id` (created if needed) in one commit, deleting
    files in the repo that are no longer in the folder (`.gitattributes` is kept); no commit when the repo already
    holds exactly these files. Returns the repo URL. Raises HubError (one sentence) on a missing folder, no token,
    a malformed id, a namespace the token does not own, or a Hub that is down or fails; run it again to finish an
    interrupted upload."""
    folder = Path(folder)
    if not folder.is_dir() or not any(p.is_file() for p in folder.rglob("*")):
        raise HubError(f"There is no folder with files to upload at {folder}.")
    check_repo_id(repo_id)
    token = resolve_token(token)
    url = endpoint()
    wanted = {
        p.relative_to(folder).as_posix(): str(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not _ignored(p.relative_to(folder))
    }
    with hub_errors(endpoint=url, repo_id=repo_id, action="upload", token=token):
        from huggingface_hub import HfApi

        api = HfApi(endpoint=url, token=token)
        authorize(api, repo_id)
        head = _repo_head(api, repo_id, "model", private)
        operations = _changes(api, repo_id, head, wanted, managed=("",), repo_type="model")
        if operations:
            api.create_commit(repo_id, operations, commit_message=commit_message, repo_type="model", parent_commit=head)
    return f"{url}/{repo_id}"


def _ignored(relative: Path) -> bool:
    """Local clutter `upload_folder` would skip too: git metadata and huggingface_hub's upload cache."""
    return ".git" in relative.parts or relative.as_posix().startswith(".cache/huggingface/")


def _repo_head(api, repo_id: str, repo_type: str, private: bool, revision: str | None = None) -> str:
    """The head to commit on: of main, or of the branch `revision` (made from main when it does not exist yet),
    creating the repo or making it private first."""
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        info = api.repo_info(repo_id, repo_type=repo_type)
    except RepositoryNotFoundError:
        api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
        info = api.repo_info(repo_id, repo_type=repo_type)
    if private and not info.private:
        api.update_repo_settings(repo_id, repo_type=repo_type, private=True)
    if revision in (None, "main"):
        return info.sha
    if revision not in {ref.name for ref in api.list_repo_refs(repo_id, repo_type=repo_type).branches}:
        api.create_branch(repo_id, branch=revision, repo_type=repo_type)
        return info.sha
    return api.repo_info(repo_id, repo_type=repo_type, revision=revision).sha


def _changes(api, repo_id: str, revision: str, wanted: dict, *, managed: tuple[str, ...], repo_type: str):
    """The commit operations that make the repo at `revision` hold `wanted` ({path: local file or bytes}): an add
    for each new or changed file, a delete for each file under a `managed` prefix that is not wanted (never
    `.gitattributes`: the Hub's LFS rules). Empty when the repo already holds exactly that."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete
    from huggingface_hub.hf_api import RepoFile

    remote = {
        f.path: f
        for f in api.list_repo_tree(repo_id, repo_type=repo_type, recursive=True, revision=revision)
        if isinstance(f, RepoFile)
    }
    adds = [CommitOperationAdd(path, content) for path, content in wanted.items()]
    operations = [op for op in adds if not _same_file(remote.get(op.path_in_repo), op)]
    stale = sorted(p for p in remote if p.startswith(managed) and p not in wanted and p != ".gitattributes")
    return operations + [CommitOperationDelete(p) for p in stale]


def _same_file(remote, add) -> bool:
    """Whether the repo's file already holds the content of `add` (LFS files by sha256, others by git blob id)."""
    from huggingface_hub.utils.sha import git_hash

    if remote is None:
        return False
    if remote.lfs is not None:
        return remote.lfs.sha256 == add.upload_info.sha256.hex()
    with add.as_file() as f:
        return remote.blob_id == git_hash(f.read())


# ---------------------------------------------------------------------------------------------------------
# Datasets

SPLITS = ("train", "test")
COLUMNS = (
    "id",
    "code",
    "steps",
    "stdout",
    "error",
    "prompt",
    "expected_trace",
    "num_lines",
    "num_steps",
    "constructs",
    "skeleton",
)
MAX_ROW_BYTES = 200_000  # one row bigger than this breaks the Hub viewer's first page


@dataclass
class PushResult:
    url: str  # the dataset's page
    commit: str  # head of the branch pushed to (main unless --revision) after the push; the PR's commit with one
    changed: bool  # False when the Hub already held exactly this dataset and card
    splits: dict  # split -> rows
    first_rows_kb: dict  # split -> size of the viewer's first rows, in KB of JSON
    warnings: list = field(default_factory=list)
    revision: str = "main"  # the branch pushed to
    pull_request: str | None = None  # the pull request's page, when one was opened (create_pr)


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
        raise HubError(
            f"The dataset in {folder} cannot be read ({type(exc).__name__}); rebuild it with build-dataset."
        ) from None
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
    """(errors, warnings) against what the Hub dataset viewer needs (docs/design.md §6). Errors break it: splits
    with different column types, untyped (null) columns. Warnings only make it truncate cells: a row over 200 KB
    of JSON, or a first page (10 rows) over 200 KB."""
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
            warnings.append(
                f"a row of the {name} split is {biggest // 1000} KB of JSON (over {MAX_ROW_BYTES // 1000} KB): the viewer will truncate it"
            )
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
    license: str | None = None,
    commit_message: str | None = None,
    revision: str | None = None,
    create_pr: bool = False,
) -> PushResult:
    """Publish the dataset `build-dataset` saved in `folder` to the dataset repo `repo_id` (created if needed) in
    one commit: both splits as parquet shards, the card (rendered from `dataset_card.md`) and its histogram, and
    the deletion of files under data/ and images/ the new version no longer has. Pushing the same data again
    makes no commit. Raises HubError (one sentence) on any failure; the local folder is only read and a failed
    commit changes nothing on the Hub, so running it again finishes the push. `license`: the Hub's license id of
    the data [default: apache-2.0]; `commit_message`: the commit's title [default: what it publishes]; `revision`:
    the branch to push to (created from main when new) [default: main]; `create_pr`: open a pull request against
    main with the commit instead of committing to main (nothing is opened when main already holds it all)."""
    from hub.card import LICENSE

    check_repo_id(repo_id)
    license = license or LICENSE
    if not re.fullmatch(r"[a-z0-9][a-z0-9.+-]*", license):
        raise HubError(
            f"--license {license!r} is not a license id as the Hub writes them (lowercase, such as "
            "apache-2.0, mit, cc-by-4.0 or other)."
        )
    if commit_message is not None and not commit_message.strip():
        raise HubError("--commit-message is empty.")
    if create_pr and revision not in (None, "main"):
        raise HubError("--create-pr opens a pull request against main; leave out --revision.")
    revision = revision or "main"
    dsd, report = load_built_dataset(folder)
    errors, warnings = viewer_problems(dsd)
    if errors:
        raise HubError(f"The dataset in {folder} would break the Hub viewer: {'; '.join(errors)}.")
    token = resolve_token(token)
    url = endpoint()
    from huggingface_hub import HfApi

    from hub.card import HISTOGRAM_PATH, histogram_svg, render_card

    api = HfApi(endpoint=url, token=token)
    with hub_errors(endpoint=url, repo_id=repo_id, action="push", token=token):
        authorize(api, repo_id)  # a wrong token or namespace is said before any shard is written
    with tempfile.TemporaryDirectory(prefix="push-dataset-") as scratch:
        # Everything the commit holds is made locally first: nothing goes to the Hub until it is all ready.
        shards = write_parquet_shards(dsd, scratch)
        card, figures = render_card(
            dsd, report, repo_id, hub_metadata=hub_metadata(dsd, shards), pretty_name=pretty_name, license=license
        )
        wanted = {
            **{path: str(file) for path, file in shards.items()},
            "README.md": str(card).encode(),
            HISTOGRAM_PATH: histogram_svg(figures).encode(),
        }
        with hub_errors(endpoint=url, repo_id=repo_id, action="push", token=token):
            head = _repo_head(api, repo_id, "dataset", private, revision)
            managed = (f"{DATA_DIR}/", HISTOGRAM_PATH.rsplit("/", 1)[0] + "/")  # data/ and images/ are ours
            operations = _changes(api, repo_id, head, wanted, managed=managed, repo_type="dataset")
            after, pull_request = head, None
            if operations:
                rows = " / ".join(f"{len(dsd[name])} {name}" for name in dsd)
                message = commit_message or f"Publish dataset ({rows} programs) with its card"
                commit = api.create_commit(
                    repo_id,
                    operations,
                    commit_message=message,
                    repo_type="dataset",
                    parent_commit=head,
                    revision=None if create_pr else revision,
                    create_pr=create_pr,
                )
                after, pull_request = commit.oid, commit.pr_url
    return PushResult(
        url=f"{url}/datasets/{repo_id}",
        commit=after,
        changed=bool(operations),
        revision=revision,
        pull_request=pull_request,
        splits={name: len(dsd[name]) for name in dsd},
        first_rows_kb=figures["first_rows_kb"],
        warnings=warnings,
    )
