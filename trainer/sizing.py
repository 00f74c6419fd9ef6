"""How big a GRPO run is before any weight loads: tokens, memory, steps and checkpoints (`--dry-run` prints it and
writes OUTPUT/plan.json; a real run records it in training_run.json and refuses a GPU run that cannot fit).

Everything comes from the model's config (parameters counted on the meta device: no weights are read), the
longest prompt and the completion budget measured on the data, and the GRPOConfig the run will use. Memory figures
are upper bounds per GPU, in GiB (2^30 bytes):

- weights: parameters x bytes of the weights' dtype (bf16 on a GPU);
- adapter: the LoRA parameters in fp32 with their gradients and AdamW's two moments (16 bytes each);
- KV cache: layers x KV heads x head dim x 2 (K and V) x bytes, per token, for every sequence of one generation
  call (`per_device_train_batch_size x steps_per_generation` per GPU) at its longest (prompt + completion);
- activations of one training micro-batch, from the usual transformer estimate (Korthikanti et al. 2022: about
  34 x tokens x hidden bytes per layer in 16 bits, attention scores left to fused kernels); with gradient
  checkpointing only each layer's input is kept (2 x tokens x hidden bytes) plus one layer recomputed.

With transformers' `generate` the KV cache sits beside the weights and the adapter during generation, and the
activations take its place while the trainer steps. With vLLM colocated,
vLLM takes its share of the card (`vllm_gpu_memory_utilization`) for its own copy of the weights and its paged KV
cache; the share is sized here to hold every sequence of a generation call, and sleep mode (vLLM frees its memory
while the trainer steps) is turned on when the two would not otherwise fit side by side.
"""

from __future__ import annotations

import math

GIB = 1 << 30
DEFAULT_GPU_MEMORY_GB = 80.0  # when no GPU is visible: an A100/H100 80 GB
CHECKPOINT_SHARE = 0.10  # a checkpoint at least every 10% of the optimizer steps
CHECKPOINT_MAX_MINUTES = 30  # and at least every 30 minutes of training (progress.SaveEvery)
VLLM_OVERHEAD_GIB = 2.0  # vLLM's CUDA graphs, activations and allocator slack inside its share
HEADROOM = 0.05  # of the card left free for the allocator's fragmentation


def kv_bytes_per_token(config, dtype_bytes: int) -> int:
    """Layers x KV heads x head dim x 2 (K and V) x bytes per element."""
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return config.num_hidden_layers * kv_heads * head_dim * 2 * dtype_bytes


def count_parameters(config, lora_targets, lora_r: int, lora_layers=None) -> tuple[int, int]:
    """(parameters of the model, of a rank-`lora_r` LoRA on `lora_targets` in `lora_layers`, default every layer),
    counted on the meta device."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    params = sum(p.numel() for p in model.parameters())
    lora = sum(
        lora_r * (module.in_features + module.out_features)
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear)
        and name.rsplit(".", 1)[-1] in lora_targets
        and (lora_layers is None or layer_of(name) in lora_layers)
    )
    return params, lora


def layer_of(module_name: str) -> int | None:
    """The transformer layer a module is in (`model.layers.12.self_attn.q_proj` -> 12), as peft counts them."""
    parts = module_name.split(".")
    for before, index in zip(parts, parts[1:]):
        if before == "layers" and index.isdigit():
            return int(index)
    return None


def gpu_memory_gb(requested: float | None = None) -> tuple[float, str]:
    """(GB of the card the plan is checked against, where that figure came from)."""
    if requested:
        return float(requested), "--gpu-memory-gb"
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_properties(0).total_memory / 1e9, torch.cuda.get_device_name(0)
    except Exception:
        pass
    return DEFAULT_GPU_MEMORY_GB, "default (no GPU visible)"


def optimizer_steps(kwargs: dict, train_rows: int, world_size: int) -> int:
    """Optimizer steps of the run: `max_steps`, else epochs x ceil(programs / prompts per step)."""
    if kwargs.get("max_steps", -1) > 0:
        return int(kwargs["max_steps"])
    prompts_per_step = max(
        1,
        kwargs["per_device_train_batch_size"]
        * kwargs["gradient_accumulation_steps"]
        * world_size
        // kwargs["num_generations"],
    )
    return max(1, math.ceil(kwargs.get("num_train_epochs", 1.0) * math.ceil(train_rows / prompts_per_step)))


def checkpoint_every(steps: int) -> int:
    return max(1, math.ceil(steps * CHECKPOINT_SHARE))


def size_run(
    *,
    config,
    kwargs: dict,
    prompt_tokens_max: int,
    train_rows: int,
    world_size: int,
    gpu: bool,
    lora_targets,
    lora_r: int,
    lora_layers=None,
    gpu_memory: tuple[float, str] | None = None,
    vllm_installed: bool = False,
) -> dict:
    """The plan of a GRPO run (see the module's docstring): a flat dict of figures, written to plan.json."""
    dtype_bytes = 2 if kwargs.get("bf16") else 4
    completion = int(kwargs["max_completion_length"])
    sequence = prompt_tokens_max + completion
    per_device = kwargs["per_device_train_batch_size"]
    steps_per_generation = kwargs.get("steps_per_generation") or kwargs["gradient_accumulation_steps"]
    sequences = per_device * steps_per_generation
    per_token = kv_bytes_per_token(config, dtype_bytes)
    params, lora = count_parameters(config, lora_targets, lora_r, lora_layers)
    weights = params * dtype_bytes / GIB
    adapter = lora * 16 / GIB
    hidden, layers = config.hidden_size, config.num_hidden_layers
    tokens = per_device * sequence
    if kwargs.get("activation_checkpointing") or kwargs.get("gradient_checkpointing"):
        activations = (layers * 2 + 34) * tokens * hidden / GIB
    else:
        activations = layers * 34 * tokens * hidden / GIB
    kv = sequences * sequence * per_token / GIB
    steps = optimizer_steps(kwargs, train_rows, world_size)
    backend = _backend(kwargs)
    plan = {
        "model_parameters": params,
        "lora_parameters": lora,
        "weights_dtype_bytes": dtype_bytes,
        "weights_gib": round(weights, 2),
        "adapter_and_optimizer_gib": round(adapter, 2),
        "kv_cache_bytes_per_token": per_token,
        "prompt_tokens_max": prompt_tokens_max,
        "completion_budget": completion,
        "sequence_tokens_max": sequence,
        "sequences_per_generation": sequences,
        "generated_tokens_per_step": per_device * kwargs["gradient_accumulation_steps"] * world_size * completion,
        "kv_cache_gib_per_device": round(kv, 2),
        "activations_gib_per_device": round(activations, 2),
        "generation_backend": backend,
        "vllm_installed": vllm_installed,
        "optimizer_steps": steps,
        "checkpoint_every_steps": int(kwargs.get("save_steps") or checkpoint_every(steps)),
        "checkpoint_every_minutes": CHECKPOINT_MAX_MINUTES,
        "world_size": world_size,
        "device": "cuda" if gpu else "cpu",
    }
    if not gpu:
        plan.update(gpu_memory_gb=None, memory_gib_per_device=None, fits=None)
        return plan
    card_gb, card_source = gpu_memory or gpu_memory_gb()
    card = card_gb * 1e9 / GIB
    trainer = weights + adapter + activations
    if backend == "transformers":
        need = weights + adapter + max(kv, activations)  # the KV cache lives during generation, activations after
    elif backend == "vllm-colocate":
        wanted = weights + kv + VLLM_OVERHEAD_GIB  # vLLM's own weights and every sequence's KV
        least = weights + sequence * per_token / GIB + VLLM_OVERHEAD_GIB  # one longest sequence at least
        cap = math.floor((1 - HEADROOM - (weights + adapter) / card) * 100) / 100  # what the trainer leaves
        share = max(min(math.ceil(max(wanted, least) / card * 100) / 100, cap), 0.05)
        sleep = trainer + share * card > card * (1 - HEADROOM)
        plan.update(
            vllm_max_model_length=sequence,
            vllm_gpu_memory_utilization=share,
            vllm_enable_sleep_mode=sleep,
            vllm_kv_gib=round(share * card - weights - VLLM_OVERHEAD_GIB, 2),
        )
        # awake: the trainer's weights and adapter beside vLLM; while training, vLLM asleep (or beside it)
        need = max(weights + adapter + share * card, trainer + (0 if sleep else share * card))
        if share * card < least:
            need = max(need, weights + adapter + least)
    else:  # vllm-server: generation runs on other GPUs
        plan.update(vllm_max_model_length=sequence)
        need = trainer
    plan.update(
        gpu_memory_gb=round(card_gb, 1),
        gpu_memory_source=card_source,
        memory_gib_per_device=round(need, 2),
        fits=need <= card * (1 - HEADROOM),
    )
    return plan


def _backend(kwargs: dict) -> str:
    if not kwargs.get("use_vllm"):
        return "transformers"
    return "vllm-server" if kwargs.get("vllm_mode") == "server" else "vllm-colocate"


def vllm_settings(plan: dict) -> dict:
    """The GRPOConfig settings a GPU plan decides for vLLM (empty without vLLM)."""
    keys = ("vllm_max_model_length", "vllm_gpu_memory_utilization", "vllm_enable_sleep_mode")
    return {k: plan[k] for k in keys if k in plan}


def describe(plan: dict) -> list[str]:
    """The plan as lines for the terminal."""
    lines = [
        f"Model: {plan['model_parameters'] / 1e9:.2f}B parameters, {plan['weights_gib']} GiB of weights; LoRA "
        f"{plan['lora_parameters'] / 1e6:.1f}M parameters, {plan['adapter_and_optimizer_gib']} GiB with gradients "
        "and AdamW.",
        f"Tokens: longest prompt {plan['prompt_tokens_max']}, completion budget {plan['completion_budget']}; "
        f"{plan['sequences_per_generation']} sequences per generation call per device; up to "
        f"{plan['generated_tokens_per_step']:,} generated tokens per optimizer step over {plan['world_size']} "
        "process(es).",
        f"KV cache: {plan['kv_cache_bytes_per_token']:,} bytes per token, up to {plan['kv_cache_gib_per_device']} GiB "
        f"per device for one generation call; training activations about {plan['activations_gib_per_device']} GiB.",
        f"Generation: {plan['generation_backend']}"
        + (f" (max model length {plan['vllm_max_model_length']}" if "vllm_max_model_length" in plan else "")
        + (
            f", {plan['vllm_gpu_memory_utilization']:.0%} of the card, sleep mode "
            f"{'on' if plan['vllm_enable_sleep_mode'] else 'off'})"
            if "vllm_gpu_memory_utilization" in plan
            else (")" if "vllm_max_model_length" in plan else "")
        )
        + "."
        + (
            ""
            if plan["generation_backend"] != "transformers" or plan["device"] != "cuda"
            else " Without vLLM every step decodes up to the whole completion budget token by token with "
            "transformers' generate (install the vllm extra for paged, batched generation)."
        ),
        f"Steps: {plan['optimizer_steps']} optimizer steps, a checkpoint every {plan['checkpoint_every_steps']} "
        f"steps and at least every {plan['checkpoint_every_minutes']} minutes.",
    ]
    if plan["fits"] is None:
        lines.append("Device: CPU (no GPU memory check).")
    else:
        lines.append(
            f"Memory: up to {plan['memory_gib_per_device']} GiB per GPU of {plan['gpu_memory_gb']} GB "
            f"({plan['gpu_memory_source']}): {'fits' if plan['fits'] else 'DOES NOT FIT'}."
        )
    return lines


def refusal(plan: dict) -> str | None:
    """One sentence when a GPU plan's upper bound does not fit the card, naming the options that fix it."""
    if plan.get("fits") is not False:
        return None
    return (
        f"the run needs up to {plan['memory_gib_per_device']} GiB per GPU and the card has "
        f"{plan['gpu_memory_gb']} GB ({plan['sequences_per_generation']} sequences of up to "
        f"{plan['sequence_tokens_max']} tokens per generation call, {plan['kv_cache_gib_per_device']} GiB of KV "
        "cache): lower --thinking-budget or --max-completion-length, generate fewer sequences at once "
        "(--set per_device_train_batch_size=N, --num-generations N), install the vllm extra, or pass "
        "--gpu-memory-gb if the card is larger (train-and-push --dry-run shows the plan)."
    )
