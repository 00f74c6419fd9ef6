"""User-facing failures: every error the Hub tools report is a `HubError` holding one sentence.

`translate` turns what the clients raise (HTTP errors, refused connections, a server failing mid-push) into
that sentence; the CLI prints it and exits with 1, no traceback. Tokens never appear in a message: they are
not put there, and `HubError` scrubs any token it is told about as a last line of defence.
"""

from __future__ import annotations

import contextlib
import errno
import os

_NETWORK_ERRORS = {
    "ConnectError",
    "ConnectTimeout",
    "ReadTimeout",
    "WriteTimeout",
    "PoolTimeout",
    "TimeoutException",
    "NetworkError",
    "ReadError",
    "WriteError",
    "RemoteProtocolError",
    "TransportError",
    "ConnectionError",  # requests / builtins
    "OfflineModeIsEnabled",
}


class HubError(Exception):
    """A failure the user can act on, described in one sentence."""

    def __init__(self, message: str, *, secrets: tuple[str | None, ...] = ()):
        for secret in secrets:
            if secret:
                message = message.replace(secret, "***")
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def _chain(exc: BaseException):
    """The exception and everything it was raised from, outermost first (no loops)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _is_network(exc: BaseException) -> bool:
    names = {cls.__name__ for cls in type(exc).__mro__}
    if names & _NETWORK_ERRORS:
        return True
    return isinstance(exc, OSError) and exc.errno in (
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
    )


def _xet_hint(endpoint: str) -> str:
    """Uploads go through Xet unless HF_HUB_DISABLE_XET is set, and a Hub other than huggingface.co (a local or
    self-hosted server) may not speak it: then its connection breaks, and the user should know what to set."""
    from urllib.parse import urlparse

    host = urlparse(endpoint).hostname or ""
    if (
        os.environ.get("HF_HUB_DISABLE_XET", "").strip().lower() in ("1", "true", "yes", "on")
        or host in ("huggingface.co", "hf.co")
        or host.endswith(".huggingface.co")
    ):
        return ""
    return " (uploads go through Xet, which a Hub other than huggingface.co may not speak: set HF_HUB_DISABLE_XET=1)"


def _server_says(exc) -> str:
    message = getattr(exc, "server_message", None) or ""
    message = message.strip().splitlines()[0] if message.strip() else ""
    message = message.rstrip(".")
    return message[:200]


def translate(
    exc: BaseException,
    *,
    endpoint: str,
    repo_id: str | None = None,
    action: str = "push",
    token: str | None = None,
) -> HubError | None:
    """The one-sentence `HubError` for `exc`, or None if it is not a Hub/network failure (a bug: let it raise)."""
    secrets = (token,)
    where = f" to {repo_id}" if repo_id else ""
    retry = "nothing local was changed, so run the same command again to finish"
    for err in _chain(exc):
        if isinstance(err, HubError):
            return HubError(err.message, secrets=secrets)
    # Network failures win: when the Hub goes away mid-push, the connection error can carry an earlier HTTP
    # answer in its chain (a 404 from "does the repo exist?"), which is not what went wrong.
    for err in _chain(exc):
        if _is_network(err):
            kind = type(err).__name__
            if kind in ("ConnectError", "ConnectTimeout", "OfflineModeIsEnabled") or isinstance(
                err, ConnectionRefusedError
            ):
                return HubError(
                    f"Cannot reach the Hub at {endpoint} ({kind}) during the {action}{where}; "
                    f"check the network or HF_ENDPOINT, then run the same command again.",
                    secrets=secrets,
                )
            return HubError(
                f"The connection to the Hub at {endpoint} broke ({kind}) during the {action}{where}"
                f"{_xet_hint(endpoint)}; {retry}.",
                secrets=secrets,
            )
    for err in _chain(exc):
        response = getattr(err, "response", None)
        status = getattr(response, "status_code", None)
        if status is None or not hasattr(err, "server_message"):  # an HfHubHTTPError and its subclasses
            continue
        says = _server_says(err)
        if type(err).__name__ == "RepositoryNotFoundError" and status in (401, 404):
            return HubError(
                f"Repository {repo_id} was not found on {endpoint} or this token cannot see it.", secrets=secrets
            )
        if status == 401:
            return HubError(
                f"The Hub at {endpoint} rejected the token (HTTP 401): set a valid HF_TOKEN, run `hf auth login`, or pass --token.",
                secrets=secrets,
            )
        if status == 403:
            return HubError(
                f"The token is not allowed to write{where} (HTTP 403{': ' + says if says else ''}).", secrets=secrets
            )
        if status == 429:
            return HubError(
                f"The Hub at {endpoint} is rate-limiting this token (HTTP 429); wait a minute and run the command again.",
                secrets=secrets,
            )
        if status >= 500:
            return HubError(
                f"The Hub at {endpoint} failed during the {action}{where} (HTTP {status}); {retry}.", secrets=secrets
            )
        return HubError(
            f"The Hub at {endpoint} refused the {action}{where} (HTTP {status}{': ' + says if says else ''}).",
            secrets=secrets,
        )
    for err in _chain(exc):
        if isinstance(err, ValueError) and "Invalid metadata in README.md" in str(err):
            first = " ".join(str(err).split("\n")[1:2]).lstrip("- ").rstrip(".")
            return HubError(f"The Hub rejected the card's metadata{': ' + first if first else ''}.", secrets=secrets)
    return None


@contextlib.contextmanager
def hub_errors(*, endpoint: str, repo_id: str | None = None, action: str = "push", token: str | None = None):
    """Turn client failures inside the block into a one-sentence `HubError` (raised without its chain)."""
    try:
        yield
    except HubError as err:
        raise HubError(err.message, secrets=(token,)) from None
    except Exception as exc:
        translated = translate(exc, endpoint=endpoint, repo_id=repo_id, action=action, token=token)
        if translated is None:
            raise
        raise translated from None
