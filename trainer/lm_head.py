"""Where the training loss projects hidden states through the vocabulary.

TRL 1.16's SFT and GRPO trainers replace the model's LM head by a fused, chunked one that returns per-token
log-probabilities. Where Triton runs (CUDA, XPU) it projects only the positions that carry a label. Everywhere else it
projects every position, the prompt included, and masks the result afterwards: its comment says why (on Neuron a
varying number of positions would recompile the graph), a reason that does not hold on the CPU, where nothing is
compiled. On the CPU recipe's data 56% of the positions are prompt, and the head (151,936 rows for Qwen, in fp32,
recomputed in the backward pass) took 30% of an SFT step. `labelled_positions_only` makes the head take TRL's own
labelled-positions path on the CPU too: the same loss and gradients (tests/test_lm_head.py checks them), for less
work; `scripts/bench_sft_speed.py` measures it.
"""

from __future__ import annotations

from contextlib import contextmanager

import trl.trainer.utils as trl_utils


@contextmanager
def labelled_positions_only():
    """While active, TRL's fused LM head projects only labelled positions on the CPU as well as on Triton devices."""
    uses_triton = trl_utils._use_triton  # TRL's own switch for the labelled-positions path (pinned: trl 1.16.x)
    trl_utils._use_triton = lambda device: device.type == "cpu" or uses_triton(device)
    try:
        yield
    finally:
        trl_utils._use_triton = uses_triton
