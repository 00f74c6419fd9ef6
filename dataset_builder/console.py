"""How every command leaves: a user mistake as `Error: <one sentence>` with exit code 1 and no traceback, Ctrl-C as
a sentence saying what was kept with exit code 130 (`user_errors`). Click's own usage errors (an option missing or
contradicting another) keep click's `Usage:` block and exit code 2.

Imported by the CLI modules before `--help` answers, so nothing heavy is imported here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import click

EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C


def sentence(exc: BaseException) -> str:
    """The error's message as one line: capitalised, unless it starts with a path or an option (`data/x`)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    first = text.split(" ", 1)[0]
    if any(c in first for c in "/\\.-_~") or not first[0].isalpha():
        return text
    return text[0].upper() + text[1:]


@contextlib.contextmanager
def user_errors(*error_types: type[BaseException], interrupted: str | Callable[[], str] = "Interrupted."):
    """Inside, an exception of `error_types` (the library's errors that are the user's to fix) leaves as click's
    `Error: <sentence>` with exit code 1; Ctrl-C prints `interrupted` (or what it returns, when what was kept
    depends on how far the command got) and exits with 130. Anything else is a bug and keeps its traceback."""
    try:
        yield
    except error_types as exc:
        raise click.ClickException(sentence(exc)) from None
    except KeyboardInterrupt:
        click.echo(interrupted() if callable(interrupted) else interrupted, err=True)
        raise SystemExit(EXIT_INTERRUPTED) from None
