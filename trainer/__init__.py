"""Train LoRA adapters (GRPO) that predict execution traces, evaluate them, publish them."""
