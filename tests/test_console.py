"""One way out for every command: a user mistake is `Error: <one sentence>` on stderr with exit code 1 and no
traceback, the same in all five commands; Ctrl-C says what was kept and exits with 130. And one way to talk: the
library logs, and a command shows its records at the level its process and -v/-q ask for."""

import logging

import click
import pytest
from click.testing import CliRunner

from dataset_builder.cli import main as build_dataset
from dataset_builder.cli import merge_main as merge_datasets
from dataset_builder.console import EXIT_INTERRUPTED, PACKAGES, setup_logging, user_errors
from hub.cli import main as push_dataset
from trainer.cli import evaluate_main as evaluate_traces
from trainer.cli import main as train_and_push


@pytest.mark.parametrize(
    "command, args, message",
    [
        (build_dataset, ["--programs", "{missing}", "--output", "{tmp}/out"], "Cannot read --programs file"),
        (
            merge_datasets,
            ["{missing}", "{missing}", "--output", "{tmp}/merged"],
            "is not a dataset saved by build-dataset",
        ),
        (push_dataset, ["{missing}", "--repo-id", "alice/traces", "--token", "hf_x"], "no dataset folder"),
        (train_and_push, ["--dataset", "{missing}", "--no-push", "--model", "/no/such.gguf"], "does not exist"),
        (evaluate_traces, ["--dataset", "{missing}", "--adapter", "{missing}"], "no adapter_config.json"),
    ],
)
def test_a_user_mistake_leaves_every_command_the_same_way(command, args, message, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there: nothing can be fetched
    args = [a.format(missing=tmp_path / "missing", tmp=tmp_path) for a in args]
    result = CliRunner().invoke(command, args)
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)  # no traceback
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], result.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "merged").exists()


def test_ctrl_c_says_what_was_kept_and_exits_130():
    kept = []

    @click.command()
    def interrupted_command():
        with user_errors(ValueError, interrupted=lambda: f"Interrupted: {len(kept)} files kept."):
            kept.append("one")
            raise KeyboardInterrupt

    result = CliRunner().invoke(interrupted_command, [])
    assert result.exit_code == EXIT_INTERRUPTED == 130
    assert result.stderr == "Interrupted: 1 files kept.\n"


def test_a_bug_keeps_its_traceback():
    """Only the library's user errors become a sentence: anything else is a bug, and hiding it would hide it."""

    @click.command()
    def buggy_command():
        with user_errors(ValueError):
            raise KeyError("a bug")

    result = CliRunner().invoke(buggy_command, [])
    assert isinstance(result.exception, KeyError) and result.exit_code == 1


@pytest.fixture
def restored_loggers():
    loggers = [logging.getLogger(name) for name in PACKAGES]
    saved = [(logger.level, list(logger.handlers)) for logger in loggers]
    yield
    for logger, (level, handlers) in zip(loggers, saved):
        logger.setLevel(level)
        logger.handlers = handlers


@pytest.mark.parametrize(
    "verbosity, main_process, shown",
    [
        (0, True, ["info", "Warning: warning"]),
        (0, False, ["Warning: warning"]),  # another process of a torchrun: warnings only
        (-1, True, ["Warning: warning"]),  # -q
        (-2, True, ["Error: error"]),  # -qq
        (1, True, ["debug", "info", "Warning: warning"]),  # -v
    ],
)
def test_the_log_shows_what_the_process_and_its_options_ask_for(
    verbosity, main_process, shown, capsys, restored_loggers
):
    setup_logging(verbosity, main_process=main_process)
    setup_logging(verbosity, main_process=main_process)  # a second call replaces the first: no line twice
    logger = logging.getLogger("trainer.somewhere")
    logger.debug("debug")
    logger.info("info")
    logger.warning("warning")
    logger.error("error")
    assert capsys.readouterr().out.splitlines() == [*shown, *([] if "Error: error" in shown else ["Error: error"])]
