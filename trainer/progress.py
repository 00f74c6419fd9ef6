"""One line per logged training step on the terminal (SFT: loss and token accuracy; GRPO: reward, cut-off share)."""

from __future__ import annotations

import time


def progress_callback(log=print):
    from transformers import TrainerCallback

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
                    log(f"done: {state.global_step} steps in {logs['train_runtime']:.1f} s")
                elif "loss" in logs:  # SFT
                    parts = [f"sft step {state.global_step}/{state.max_steps}", f"loss {logs['loss']:.4f}"]
                    if "mean_token_accuracy" in logs:
                        parts.append(f"token accuracy {logs['mean_token_accuracy']:.3f}")
                    parts.append(f"{per_step:.1f} s/step")
                    log("  ".join(parts))
                return
            parts = [
                f"step {state.global_step}/{state.max_steps}",
                f"reward {logs['reward']:.3f} ± {logs.get('reward_std', 0.0):.3f}",
                f"loss {logs.get('loss', 0.0):.4f}",
            ]
            if "completions/mean_length" in logs:
                parts.append(f"completion {logs['completions/mean_length']:.0f} tok")
            if "completions/clipped_ratio" in logs:
                parts.append(f"cut off {100 * logs['completions/clipped_ratio']:.0f}%")
            parts.append(f"{per_step:.1f} s/step")
            log("  ".join(parts))

    return RewardProgress()
