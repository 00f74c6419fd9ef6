"""Push a built dataset (with its card) to a dataset repo, and an adapter folder to a model repo."""

from __future__ import annotations

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
