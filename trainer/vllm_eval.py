"""Evaluation with vLLM on a GPU: one engine for the base model, each adapter served as a LoRA request.

transformers' `generate` decodes a thinking model's completions token by token with a padded batch: up to an hour
per model on the 4B run's test split (docs/training.md's plan). vLLM pages the KV cache and batches continuously, so the
same evaluation takes minutes. It is used when `backend` is `auto` and vLLM is installed, a GPU is visible and one
process evaluates (several processes shard the split with transformers), or when asked for (`vllm`). The engine
answers exactly as `evaluate.generate` does: completions and cut-off flags in the order of the prompts, greedy or
sampled from a seed, ending at the end of the answer (`stop_at`) for a model that answers directly.

**Not yet run on a GPU in this repository** (no GPU was lent; `scripts/gpu_check.py` exercises it). It has run on
vLLM 0.30.0's CPU build (`scripts/vllm_cpu_check.py`: the same completions as transformers, an adapter applied
through its LoRA request), its arguments are read against the source of the version the `vllm` extra pins, and a
run that fails here falls back to transformers rather than losing the evaluation (`evaluate.evaluate_adapter`).
"""

from __future__ import annotations

import json
from pathlib import Path

BACKENDS = ("auto", "vllm", "transformers")
MEMORY_SHARE_OF_FREE = 0.9  # of the GPU memory free when the engine starts (the trainer's model is gone by then)
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # vLLM 0.30 accepts only these as max_lora_rank (LoRAConfig)


def usable(backend: str, world_size: int) -> tuple[bool, str]:
    """(use vLLM, why not) for `backend` here."""
    import importlib.util

    if backend == "transformers":
        return False, "asked for transformers"
    if importlib.util.find_spec("vllm") is None:
        return False, "vLLM is not installed"
    import torch

    if not torch.cuda.is_available():
        return False, "no GPU is visible"
    if world_size > 1:
        return False, "several processes evaluate (each its share, with transformers)"
    return True, ""


def lora_rank(adapters: dict) -> int:
    """The room vLLM reserves for the adapters: the smallest rank it accepts that holds the largest of theirs."""
    ranks = [
        json.loads((Path(folder) / "adapter_config.json").read_text()).get("r", 16) for folder in adapters.values()
    ]
    largest = max(ranks, default=16)
    for allowed in LORA_RANKS:
        if allowed >= largest:
            return allowed
    raise ValueError(f"adapter rank {largest} is above vLLM's largest LoRA rank {LORA_RANKS[-1]}")


class VllmModel:
    """The base model in a vLLM engine; `use(name, folder)` picks an adapter (None: the base) for `complete`."""

    def __init__(self, source, *, adapters: dict, max_model_len: int, dtype: str | None, seed: int = 0):
        import torch
        from vllm import LLM

        free, total = torch.cuda.mem_get_info()
        self.dtype = dtype or "bfloat16"
        self.llm = LLM(
            model=source.path,
            dtype=self.dtype,
            max_model_len=max_model_len,
            seed=seed,
            gpu_memory_utilization=round(MEMORY_SHARE_OF_FREE * free / total, 2),
            enable_lora=bool(adapters),
            max_lora_rank=lora_rank(adapters),
            max_loras=1,
        )
        self.adapters = {name: i + 1 for i, name in enumerate(adapters)}
        self.request = None

    def use(self, name: str, folder) -> None:
        from vllm.lora.request import LoRARequest

        self.request = None if folder is None else LoRARequest(name, self.adapters[name], str(folder))

    def complete(
        self,
        tokenizer,
        prompts,
        *,
        max_new_tokens: int,
        stop_at: str | None = None,
        sampling: dict | None = None,
        seed: int = 0,
        chat_template_kwargs: dict | None = None,
        progress=None,
    ) -> tuple[list[str], list[bool]]:
        """As `evaluate.generate`: (texts, cut-off flags) in the order of `prompts`."""
        from vllm import SamplingParams

        from trainer.prompts import render_prompt

        texts = [render_prompt(tokenizer, p, chat_template_kwargs) for p in prompts]
        # token ids, not text: vLLM would tokenize text with special tokens and put a second BOS before the
        # template's (Llama, Gemma); transformers' path tokenizes without them, and both must see the same prompt
        inputs = [{"prompt_token_ids": tokenizer(t, add_special_tokens=False).input_ids} for t in texts]
        decoding = dict(sampling) if sampling else {"temperature": 0.0}
        params = SamplingParams(
            max_tokens=max_new_tokens,
            seed=seed,
            skip_special_tokens=True,
            stop=[stop_at] if stop_at else None,
            include_stop_str_in_output=bool(stop_at),
            **decoding,
        )
        outputs = self.llm.generate(inputs, params, lora_request=self.request, use_tqdm=False)
        completions = [out.outputs[0].text for out in outputs]
        cut_off = [out.outputs[0].finish_reason == "length" for out in outputs]
        if progress:
            progress(len(texts), len(texts), sum(len(out.outputs[0].token_ids) for out in outputs))
        return completions, cut_off

    def close(self) -> None:
        from trainer.models import free_gpu_memory

        del self.llm
        free_gpu_memory()
