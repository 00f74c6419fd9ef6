"""Shared fixtures for the trainer tests (imported by test_trainer*.py and test_evaluate*.py): a small dataset of
hand-traced programs, and one real `tiny` GRPO run that several tests inspect (trained once per session)."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os

import pytest

from dataset_builder.console import terminal_line
from dataset_builder.trace import Step, format_trace, make_prompt


@contextlib.contextmanager
def trainer_messages():
    """The messages the trainer logs inside the block (INFO and up), in order, as the commands show them."""
    lines = []

    class Keep(logging.Handler):
        def emit(self, record):
            lines.append(terminal_line(record))

    logger, keep = logging.getLogger("trainer"), Keep()
    level = logger.level
    logger.addHandler(keep)
    logger.setLevel(logging.INFO)
    try:
        yield lines
    finally:
        logger.removeHandler(keep)
        logger.setLevel(level)


PROGRAMS = [
    (
        "x = 10\ny = 20\nz = 30\n",
        [
            Step(1, state=(("x", "10"),)),
            Step(2, state=(("x", "10"), ("y", "20"))),
            Step(3, state=(("x", "10"), ("y", "20"), ("z", "30"))),
        ],
    ),
    ("a = [1]\na.append(2)\n", [Step(1, state=(("a", "[1]"),)), Step(2, state=(("a", "[1, 2]"),))]),
    (
        "s = 'hi, you'\nt = s * 2\nprint(t)\n",
        [
            Step(1, state=(("s", "'hi, you'"),)),
            Step(2, state=(("s", "'hi, you'"), ("t", "'hi, youhi, you'"))),
            Step(3, state=(("s", "'hi, you'"), ("t", "'hi, youhi, you'")), output="hi, youhi, you\n"),
        ],
    ),
    ("n = 3\nn += 1\n", [Step(1, state=(("n", "3"),)), Step(2, state=(("n", "4"),))]),
    ("d = {}\nd['k'] = 1\n", [Step(1, state=(("d", "{}"),)), Step(2, state=(("d", "{'k': 1}"),))]),
    (
        "def f(n):\n    return n + 1\nr = f(1)\n",
        [
            Step(1, state=()),
            Step(1, "call", "f", 1, (("n", "1"),)),
            Step(2, "line", "f", 1, (("n", "1"),)),
            Step(2, "return", "f", 1, value="2"),
            Step(3, state=(("r", "2"),)),
        ],
    ),
    ("x = 1 / 0\n", [Step(1, "exception", value="ZeroDivisionError: division by zero")]),
]


def _rows(items, prefix):
    return {
        "id": [f"{prefix}{i}" for i in range(len(items))],
        "code": [code for code, _ in items],
        "steps": [[s.to_row() for s in steps] for _, steps in items],
        "stdout": ["".join(s.output for s in steps) for _, steps in items],
        "error": ["" for _ in items],
        "prompt": [make_prompt(code) for code, _ in items],
        "expected_trace": [format_trace(steps) for _, steps in items],
    }


def save_dataset(folder, n_train=4):
    from datasets import Dataset, DatasetDict

    DatasetDict(
        {
            "train": Dataset.from_dict(_rows(PROGRAMS[:n_train], "tr")),
            "test": Dataset.from_dict(_rows(PROGRAMS[n_train:], "te")),
        }
    ).save_to_disk(str(folder))
    return folder


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """A DatasetDict folder in the builder's layout: 4 train and 3 test programs, traced by hand."""
    return save_dataset(tmp_path_factory.mktemp("data") / "traces")


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory):
    """One cache for the tiny model across the session (tests set HF_HOME per test)."""
    folder = tmp_path_factory.mktemp("ewm_cache")
    previous = os.environ.get("EWM_CACHE")
    os.environ["EWM_CACHE"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("EWM_CACHE", None)
    else:
        os.environ["EWM_CACHE"] = previous


class CaptureModel:
    """A trainer callback that keeps the trained model (to compare with the adapter reloaded from disk)."""

    def __new__(cls):
        from transformers import TrainerCallback

        class _Capture(TrainerCallback):
            model = None

            def on_train_end(self, args, state, control, model=None, **kwargs):
                self.model = model

        return _Capture()


def shaped_reward_class():
    """The execution reward plus a tiny deterministic term that differs between completions. A random tiny
    model never writes a trace, so the real reward is 0 for every completion, GRPO's advantages are 0, and the
    LoRA weights would never move; this keeps the same reward name and gives the optimizer something to do, so
    that 'the adapter reloads with identical logits' is tested on weights that are not all zero."""
    from trainer.rewards import ExecutionReward, completion_text

    class Shaped(ExecutionReward):
        def __call__(self, prompts=None, completions=None, completion_ids=None, **columns):
            base = super().__call__(prompts, completions, completion_ids, **columns)
            return [
                b + int(hashlib.md5(completion_text(c).encode()).hexdigest()[:4], 16) / 65535 * 0.05
                for b, c in zip(base, completions)
            ]

    return Shaped


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, tiny_dataset, model_cache):
    """`trainer.run.run` on `tiny`: 2 GRPO steps, evaluation on 2 test programs, card; no push."""
    import trainer.rewards
    from trainer.run import run
    from trainer.settings import TrainSettings

    output = tmp_path_factory.mktemp("run") / "out"
    capture = CaptureModel()
    settings = TrainSettings(
        dataset=str(tiny_dataset),
        model="tiny",
        output_dir=str(output),
        max_steps=2,
        max_completion_length=24,
        learning_rate=5e-3,
        eval_limit=2,
        eval_max_new_tokens=12,
        push=False,
        # tiny thinks (its template opens <think>) and never ends a completion, so with the thinking default of
        # masking cut-off completions nothing would be trained; these tests need weights that moved
        grpo_overrides={"save_steps": 1, "mask_truncated_completions": False},
    )
    with pytest.MonkeyPatch.context() as patch, trainer_messages() as lines:
        patch.setattr(trainer.rewards, "ExecutionReward", shaped_reward_class())
        result = run(settings, callbacks=[capture])
    return {"result": result, "model": capture.model, "log": lines, "settings": settings, "output": output}
