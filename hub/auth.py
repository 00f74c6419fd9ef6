"""Token, endpoint and repo-id checks shared by the dataset push and the trainer's folder upload.

The token comes from `--token` if given, else the standard places `huggingface_hub` reads (HF_TOKEN, then the
cached `hf auth login`); the endpoint from HF_ENDPOINT (default https://huggingface.co). The token is handed
to the clients and never printed, logged or written anywhere.
"""

from __future__ import annotations

import re

from hub.errors import HubError

_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
_REPO_ID = re.compile(rf"^({_PART})/({_PART})$")


def resolve_token(token: str | None = None) -> str:
    """`token` if given, else HF_TOKEN or the cached login; raises HubError when there is none."""
    if token is not None and token.strip():
        return token.strip()
    from huggingface_hub import get_token

    found = get_token()
    if not found:
        raise HubError("No Hugging Face token found: set HF_TOKEN, run `hf auth login`, or pass --token.")
    return found


def endpoint() -> str:
    """The Hub the clients talk to (HF_ENDPOINT, read by huggingface_hub at import)."""
    from huggingface_hub import constants

    return constants.ENDPOINT.rstrip("/")


def check_repo_id(repo_id: str) -> tuple[str, str]:
    """(namespace, name) of a `USER/NAME` repo id; raises HubError when it is malformed."""
    match = _REPO_ID.match(repo_id or "")
    if not match or "--" in repo_id or ".." in repo_id or repo_id.endswith((".git", ".ipynb")):
        raise HubError(
            f"Malformed repo id {repo_id!r}: use USER/NAME with letters, digits, '-', '_' or '.' (e.g. alice/execution-traces)."
        )
    return match.group(1), match.group(2)


def authorize(api, repo_id: str) -> str:
    """Check that the api's token may write under the repo's namespace; returns the user name."""
    namespace, _ = check_repo_id(repo_id)
    info = api.whoami()
    user = info.get("name", "")
    allowed = {user} | {org.get("name") for org in info.get("orgs", []) if isinstance(org, dict)}
    if namespace not in allowed:
        raise HubError(
            f"The token belongs to {user!r}, which cannot write to the namespace {namespace!r}: "
            f"push to {user}/{repo_id.split('/', 1)[1]} or use a token of {namespace!r}."
        )
    return user
