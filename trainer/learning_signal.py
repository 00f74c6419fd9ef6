"""Did the run learn anything? Read from what the trainers logged and from the adapter's weights.

GRPO learns only from differences in reward between the completions of one prompt: a group whose completions all
score the same (`frac_reward_zero_std`) has advantage 0 and contributes no gradient. A run where every group is
like that (a raw small base scores 0 everywhere; a thinking model cut off before `</think>` everywhere) has
gradient norm 0, and its LoRA stays where it started: a fresh LoRA's `lora_B` matrices start at 0, so the adapter
*is* the base model. This module says so, in words a user can act on.
"""

from __future__ import annotations

import torch

CUT_OFF_WARNING = 0.5  # warn when at least this share of completions hit the length limit


def fingerprint(model) -> dict[str, tuple[float, float]]:
    """Per trainable tensor: (L2 norm, sum of absolute values), in float64. Cheap to keep (two numbers per tensor)
    and changes whenever an optimizer step changes the tensor."""
    out = {}
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.requires_grad:
                # under DeepSpeed ZeRO-3 a process holds only its shard of each weight (`ds_tensor`)
                data = getattr(param, "ds_tensor", None)
                data = (param if data is None else data).detach().double()
                out[name] = (float(data.norm()), float(data.abs().sum()))
    return out


def weight_change(before: dict, after: dict) -> dict:
    """What training did to the trainable weights: changed at all, and are the lora_B matrices all exactly 0."""
    changed = sorted(name for name in after if before.get(name) != after[name])
    lora_b = [name for name in after if "lora_B" in name]
    return {
        "tensors": len(after),
        "tensors_changed": len(changed),
        "adapter_changed": bool(changed),
        "lora_B_all_zero": bool(lora_b) and all(after[name][1] == 0.0 for name in lora_b),
    }


def _values(history, key):
    return [float(h[key]) for h in history if key in h and h[key] is not None]


def _mean(values):
    return sum(values) / len(values) if values else None


def cut_off_share(log: dict, max_completion_length: int | None) -> float | None:
    """The share of a GRPO step's completions cut off at the length limit. TRL's `completions/clipped_ratio`
    counts every completion that does not end in an end-of-sequence token: also one that a stop string ended (a raw
    direct answer's `[/ANSWER]`) on the step's last generated token, where no padding follows it. A step whose
    longest completion is shorter than the limit cut nothing off; otherwise the rows that ended earlier were padded
    with the end-of-sequence token, so the ratio is exact."""
    ratio = log.get("completions/clipped_ratio")
    if ratio is None:
        return None
    longest = log.get("completions/max_length")
    if max_completion_length and longest is not None and longest < max_completion_length:
        return 0.0
    return float(ratio)


def grpo_signal(history: list[dict], change: dict, max_completion_length: int | None) -> dict:
    """The GRPO stage's learning signal and its warnings (sentences)."""
    steps = [h for h in history if "reward" in h]
    zero_std = _values(steps, "frac_reward_zero_std")
    grad = _values(steps, "grad_norm")
    clipped = [c for c in (cut_off_share(h, max_completion_length) for h in steps) if c is not None]
    rewards = _values(steps, "reward")
    signal = {
        "steps": len(steps),
        "frac_reward_zero_std_mean": _mean(zero_std),
        "grad_norm_max": max(grad) if grad else None,
        "clipped_ratio_mean": _mean(clipped),
        "reward_first": rewards[0] if rewards else None,
        "reward_last": rewards[-1] if rewards else None,
        **change,
    }
    warnings = []
    if zero_std and all(v >= 1.0 for v in zero_std):
        warnings.append(
            "GRPO had nothing to learn from: in every step every group of completions had the same "
            "reward (frac_reward_zero_std = 1), so every advantage was 0."
        )
    if grad and max(grad) == 0.0:
        warnings.append("The GRPO gradient norm was 0 at every step.")
    if clipped and _mean(clipped) >= CUT_OFF_WARNING:
        warnings.append(
            f"{100 * _mean(clipped):.0f}% of the GRPO completions were cut off at "
            f"{max_completion_length} tokens (a thinking model cut off before `</think>` scores 0): "
            "raise --thinking-budget or --max-completion-length."
        )
    if not change["adapter_changed"]:
        warnings.append("GRPO did not change the adapter: its weights are exactly what they were before GRPO.")
    if change["lora_B_all_zero"]:
        warnings.append("Every lora_B matrix of the adapter is exactly 0, so the adapter is the base model.")
    signal["no_signal"] = not change["adapter_changed"] or change["lora_B_all_zero"]
    return {"signal": signal, "warnings": warnings}


def sft_signal(change: dict) -> dict:
    warnings = []
    if not change["adapter_changed"]:
        warnings.append("The SFT warm start did not change the adapter.")
    if change["lora_B_all_zero"]:
        warnings.append("Every lora_B matrix of the SFT adapter is exactly 0, so it is the base model.")
    return {
        "signal": {**change, "no_signal": not change["adapter_changed"] or change["lora_B_all_zero"]},
        "warnings": warnings,
    }


def eval_warnings(results: dict) -> list[str]:
    """The trained adapter's completions mostly cut off in evaluation."""
    adapter = (results.get("models") or {}).get("adapter") or {}
    decoding = results.get("decoding") or {}
    warnings = []
    if "capped" in (decoding.get("max_new_tokens_rule") or ""):
        warnings.append(
            f"Evaluation completions were capped at {decoding.get('max_new_tokens')} new tokens by the "
            "model's context, shorter than the longest reference trace (plus thinking)."
        )
    share = adapter.get("cut_off")
    if share is not None and share >= CUT_OFF_WARNING:
        warnings.append(
            f"{100 * share:.0f}% of the adapter's evaluation completions were cut off at "
            f"{decoding.get('max_new_tokens')} new tokens."
        )
    return warnings


def verdict(
    prepare_warnings: list, sft_summary: dict | None, grpo_summary: dict | None, results: dict
) -> tuple[list[str], bool]:
    """All the run's warnings, and whether it learned nothing: no stage that ran changed the adapter (an SFT warm
    start that learned followed by a GRPO stage that did not is a warning, not "nothing")."""
    stages = [s for s in (sft_summary, grpo_summary) if s]
    warnings = list(prepare_warnings) + [w for s in stages for w in s.get("warnings", [])] + eval_warnings(results)
    signals = [s.get("learning_signal") or {} for s in stages]
    return warnings, bool(signals) and all(signal.get("no_signal") for signal in signals)


def banner(warnings: list[str], no_signal: bool) -> list[str]:
    """The console lines that nobody scrolls past."""
    if not warnings:
        return []
    bar = "!" * 100
    head = (
        "WARNING: this run learned nothing; the adapter is not worth publishing."
        if no_signal
        else "WARNING: check these before trusting the adapter."
    )
    return [bar, head] + [f"  - {w}" for w in warnings] + [bar]
