"""One line per logged training step on the terminal (SFT: loss and token accuracy; GRPO: reward, cut-off share),
and a checkpoint at least every so many minutes."""

from __future__ import annotations

import logging
import time

from transformers import TrainerCallback

from trainer import distributed
from trainer.learning_signal import cut_off_share

logger = logging.getLogger(__name__)


class RewardProgress(TrainerCallback):
    """One line per logged step: the reward as it goes."""

    def __init__(self):
        self.started = None
        self.first_step = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.perf_counter()
        self.first_step = state.global_step

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        done = max(state.global_step - self.first_step, 1)
        per_step = (time.perf_counter() - self.started) / done if self.started else 0.0
        if "reward" not in logs:
            if "train_runtime" in logs:
                logger.info(f"done: {state.global_step} steps in {logs['train_runtime']:.1f} s")
            elif "loss" in logs:  # SFT
                parts = [f"sft step {state.global_step}/{state.max_steps}", f"loss {logs['loss']:.4f}"]
                if "mean_token_accuracy" in logs:
                    parts.append(f"token accuracy {logs['mean_token_accuracy']:.3f}")
                parts.append(f"{per_step:.1f} s/step")
                logger.info("  ".join(parts))
            return
        parts = [
            f"step {state.global_step}/{state.max_steps}",
            f"reward {logs['reward']:.3f} ± {logs.get('reward_std', 0.0):.3f}",
            f"loss {logs.get('loss', 0.0):.4f}",
        ]
        if "completions/mean_length" in logs:
            parts.append(f"completion {logs['completions/mean_length']:.0f} tok")
        cut_off = cut_off_share(logs, args.max_completion_length)
        if cut_off is not None:
            parts.append(f"cut off {100 * cut_off:.0f}%")
        parts.append(f"{per_step:.1f} s/step")
        logger.info("  ".join(parts))


class SaveEvery(TrainerCallback):
    """A checkpoint at least every `minutes` of training, besides the trainer's `save_steps`: a crash loses at most
    that much of a long run, whatever a step costs."""

    def __init__(self, minutes: float):
        self.minutes = minutes
        self.last = time.monotonic()

    def on_step_end(self, args, state, control, **kwargs):
        due = time.monotonic() - self.last >= self.minutes * 60
        if distributed.broadcast(due):  # the main process's clock decides: every process saves, or none
            control.should_save = True

    def on_save(self, args, state, control, **kwargs):
        self.last = time.monotonic()
