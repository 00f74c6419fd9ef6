"""Whether the model thinks before it answers, and how many tokens a completion gets.

A chat template is one of three kinds, read from what it renders (never from the model's name):

- `thinking`: the generation prompt always opens a `<think>` block (Qwen3-Thinking-2507); no switch.
- `hybrid`: the template takes `enable_thinking` and renders differently with it (Qwen3's hybrid models: thinking
  by default; `enable_thinking=False` pre-fills an empty `<think></think>`).
- `none`: no thinking at all (SmolLM2, most instruct models).

`--thinking auto|on|off` picks the policy: `auto` follows the template (thinking-only: on; hybrid: its default;
none: off); `on` and `off` are checked against what the template can do, and a hybrid template gets
`enable_thinking` through `chat_template_kwargs` in training (TRL) and in evaluation alike.

A thinking run needs room to think: the completion budget is the longest reference trace of the data in tokens,
plus a margin, plus `--thinking-budget`. Without thinking it is the longest reference trace plus the margin, so
no right answer is ever cut off and no budget is wasted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trainer.prompts import render_prompt

THINKING_MODES = ("auto", "on", "off")
TEMPLATE_KINDS = ("thinking", "hybrid", "none")
MARGIN = 32  # tokens past the longest reference trace: the end of turn and small differences
# Qwen's recommended sampling for its thinking models (also used by GRPO)
QWEN_SAMPLING = {"temperature": 0.6, "top_p": 0.95, "top_k": 20, "min_p": 0.0}


class ThinkingError(ValueError):
    """A thinking mode the chat template cannot do; the message is one sentence."""


@dataclass(frozen=True)
class ThinkingPolicy:
    template: str  # "thinking" | "hybrid" | "none"
    mode: str  # what the user asked: "auto" | "on" | "off"
    enabled: bool  # the model thinks in this run
    opens_think: bool  # the generation prompt ends inside an open <think> block
    chat_template_kwargs: dict = field(default_factory=dict)
    hybrid_default: bool | None = None  # a hybrid template's default (None for the other kinds)

    def record(self) -> dict:
        return {
            "template": self.template,
            "mode": self.mode,
            "enabled": self.enabled,
            "opens_think": self.opens_think,
            "chat_template_kwargs": dict(self.chat_template_kwargs),
            "hybrid_default": self.hybrid_default,
        }


def _render(tokenizer, **kwargs) -> str | None:
    try:
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": "x"}], tokenize=False, add_generation_prompt=True, **kwargs
        )
    except Exception:  # no template, or one that cannot render a bare user turn
        return None


def _opens_think(text: str | None) -> bool:
    return bool(text) and text.rstrip().endswith("<think>")


def template_kind(tokenizer) -> tuple[str, bool | None]:
    """(kind, hybrid default) of the tokenizer's chat template."""
    default = _render(tokenizer)
    on, off = _render(tokenizer, enable_thinking=True), _render(tokenizer, enable_thinking=False)
    if on is not None and off is not None and on != off:
        return "hybrid", default != off
    if _opens_think(default):
        return "thinking", None
    return "none", None


def thinking_policy(tokenizer, mode: str = "auto", model: str = "the model") -> ThinkingPolicy:
    """The policy for `mode` on this tokenizer's template; `ThinkingError` when the template cannot do it."""
    if mode not in THINKING_MODES:
        raise ThinkingError(f"unknown thinking mode {mode!r}; choose one of {', '.join(THINKING_MODES)}.")
    kind, hybrid_default = template_kind(tokenizer)
    if kind == "thinking":
        if mode == "off":
            raise ThinkingError(
                f"--thinking off is not possible: the chat template of {model} always opens a "
                "<think> block and has no enable_thinking switch."
            )
        return ThinkingPolicy(kind, mode, True, True)
    if kind == "hybrid":
        enabled = hybrid_default if mode == "auto" else mode == "on"
        kwargs = {"enable_thinking": bool(enabled)}
        return ThinkingPolicy(
            kind, mode, bool(enabled), _opens_think(_render(tokenizer, **kwargs)), kwargs, hybrid_default
        )
    if mode == "on":
        raise ThinkingError(
            f"--thinking on is not possible: the chat template of {model} has no thinking (no "
            "<think> block and no enable_thinking switch)."
        )
    return ThinkingPolicy(kind, mode, False, False)


def reference_tokens(tokenizer, traces) -> int:
    """The longest of `traces` (reference trace texts) in tokens."""
    return max((len(tokenizer(t, add_special_tokens=False).input_ids) for t in traces), default=0)


def completion_budget(
    longest_reference: int, policy: ThinkingPolicy, thinking_budget: int, room: int | None = None
) -> int:
    """Tokens a completion may take: the longest reference trace + the margin (+ the thinking budget), at most
    `room` (what the model's context leaves after the longest prompt)."""
    budget = longest_reference + MARGIN + (thinking_budget if policy.enabled else 0)
    return min(budget, room) if room else budget


def prompt_tokens(tokenizer, prompts, chat_template_kwargs: dict | None = None) -> int:
    """The longest of `prompts` (chat messages, or raw text) in tokens, rendered as for generation."""
    longest = 0
    for prompt in prompts:
        text = render_prompt(tokenizer, prompt, chat_template_kwargs)
        longest = max(longest, len(tokenizer(text, add_special_tokens=False).input_ids))
    return longest


def context_room(model_path: str, longest_prompt: int) -> tuple[int | None, int | None]:
    """(the model's context length, what it leaves for a completion after the longest prompt); None when the
    config does not say."""
    from transformers import AutoConfig

    try:
        context = getattr(AutoConfig.from_pretrained(model_path), "max_position_embeddings", None)
    except Exception:  # an unusual config: no cap rather than no run
        return None, None
    if not context:
        return None, None
    return int(context), max(int(context) - longest_prompt, 1)


GPU_THINKING_BUDGET = 4096


def default_thinking_budget(gpu: bool) -> int:
    """Tokens of thinking before the answer: 4096 on a GPU, 64 on a CPU (smoke tests). Qwen3-Thinking's card
    recommends up to 32,768 output tokens for hard problems; a 3-20-line program needs far fewer, and every token
    is paid in every completion: with 4096 the default 4B run's plan on the default 600-program build (16 sequences
    of up to 13,625 tokens per generation call, the longest trace included: 30 GiB of KV cache at 144 KiB per
    token) fits one 80 GB card in 39 GiB, where 8192 with the earlier batch sizes planned to 87 GiB (docs/training.md's
    training section has the arithmetic).
    A completion cut off inside its thinking is masked out of the loss, so a budget that is too small costs
    signal, never wrong gradients; raise it with --thinking-budget."""
    return GPU_THINKING_BUDGET if gpu else 64
