"""The loss's LM head on the CPU: `labelled_positions_only` projects only the positions that carry a label (the
trace, not the prompt) and gives the same loss, per-token figures and gradients as TRL's every-position path."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.training


def _fused_pass(model, input_ids, labels, monkeypatch):
    """One forward and backward pass through TRL's fused head; returns its outputs, the gradients and the number of
    positions it projected through the vocabulary."""
    import trl.trainer.utils as trl_utils

    projected = []
    real = trl_utils._ChunkedLogProbFunction

    class Counting:
        @staticmethod
        def apply(hidden, *args):
            projected.append(hidden.shape[0])
            return real.apply(hidden, *args)

    monkeypatch.setattr(trl_utils, "_ChunkedLogProbFunction", Counting)
    model.zero_grad()
    out = model(input_ids=input_ids, labels=labels, fused_lm_head=True)
    out.loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    monkeypatch.setattr(trl_utils, "_ChunkedLogProbFunction", real)
    return out, grads, sum(projected)


def test_labelled_positions_only_projects_the_trace_alone_with_the_same_loss_and_gradients(model_cache, monkeypatch):
    import torch
    from trl.trainer.utils import add_fused_lm_head

    from trainer.lm_head import labelled_positions_only
    from trainer.models import load_model

    _, model = load_model("tiny", dtype=torch.float32)
    add_fused_lm_head(model, outputs=("log_probs", "entropy", "is_top1"))
    torch.manual_seed(0)
    input_ids = torch.randint(0, model.config.vocab_size, (2, 40))
    labels = input_ids.clone()
    labels[:, :28] = -100  # a 28-token prompt, a 12-token completion
    labels[1, 34:] = -100  # the second example's completion is shorter (padding)

    every, every_grads, every_rows = _fused_pass(model, input_ids, labels, monkeypatch)
    with labelled_positions_only():
        only, only_grads, only_rows = _fused_pass(model, input_ids, labels, monkeypatch)

    assert every_rows == 2 * 39  # TRL on the CPU: every position but the last of each sequence
    assert only_rows == 12 + 6  # the labelled next-token positions alone
    torch.testing.assert_close(only.loss, every.loss)
    for field in ("log_probs", "entropy", "is_top1"):
        torch.testing.assert_close(getattr(only, field), getattr(every, field))
    assert every_grads.keys() == only_grads.keys() and every_grads
    for name, grad in every_grads.items():
        torch.testing.assert_close(only_grads[name], grad, rtol=1e-4, atol=1e-6)


def test_labelled_positions_only_restores_trl_afterwards():
    import torch
    import trl.trainer.utils as trl_utils

    from trainer.lm_head import labelled_positions_only

    before = trl_utils._use_triton
    with pytest.raises(RuntimeError), labelled_positions_only():
        assert trl_utils._use_triton(torch.device("cpu"))
        raise RuntimeError("a training error inside")
    assert trl_utils._use_triton is before and not trl_utils._use_triton(torch.device("cpu"))
