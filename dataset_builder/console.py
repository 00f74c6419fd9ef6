"""How the commands talk and leave.

Messages: the library logs with `logging.getLogger(__name__)`; a command calls `setup_logging` once, which shows
its packages' records on the terminal as plain lines (a warning starts with `Warning: `), INFO and up on the main
process and WARNING and up on the others (under torchrun or accelerate launch), one level more per `-v` and one
less per `-q`. Rich stays for progress bars and tables.

Leaving: a user mistake as `Error: <one sentence>` with exit code 1 and no traceback, Ctrl-C as
a sentence saying what was kept with exit code 130 (`user_errors`). Click's own usage errors (an option missing or
contradicting another) keep click's `Usage:` block and exit code 2.

Imported by the CLI modules before `--help` answers, so nothing heavy is imported here.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

import click

EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C
PACKAGES = ("dataset_builder", "hub", "trainer")  # the loggers whose records a command shows


def terminal_line(record: logging.LogRecord) -> str:
    """A record as the commands show it: the message, after `Warning: ` or `Error: ` at those levels."""
    text = record.getMessage()
    return f"{record.levelname.capitalize()}: {text}" if record.levelno >= logging.WARNING else text


class _Terminal(logging.Handler):
    """Each record as one line through click.echo, to the stdout of the moment (a test runner swaps it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            click.echo(terminal_line(record))
        except Exception:
            self.handleError(record)


def setup_logging(verbosity: int = 0, main_process: bool = True) -> None:
    """Show the library's records on the terminal: INFO and up on the main process, WARNING and up on the others;
    `verbosity` (the count of -v minus the count of -q) moves the level by one step each, from DEBUG to ERROR.
    Calling it again replaces what an earlier call set up."""
    level = (logging.INFO if main_process else logging.WARNING) - 10 * verbosity
    level = min(max(level, logging.DEBUG), logging.ERROR)
    for name in PACKAGES:
        logger = logging.getLogger(name)
        logger.handlers = [h for h in logger.handlers if not isinstance(h, _Terminal)]
        logger.addHandler(_Terminal())
        logger.setLevel(level)


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
