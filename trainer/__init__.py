"""Train LoRA adapters (an SFT warm start, then GRPO) that predict execution traces, evaluate them, publish them."""
