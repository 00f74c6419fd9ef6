"""The LoRA adapter both trainers train: its configuration, its summary in the run records, and the base model it
names when saved."""

from __future__ import annotations

import json
from pathlib import Path

from peft import LoraConfig

from trainer.settings import LORA_TARGETS, TrainSettings


def lora_config(settings: TrainSettings, model):
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    targets = [t for t in LORA_TARGETS if t in names] or "all-linear"
    return LoraConfig(
        r=settings.lora_r,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        target_modules=targets,
        layers_to_transform=lora_layers(settings, model.config.num_hidden_layers),
        task_type="CAUSAL_LM",
    )


def lora_layers(settings: TrainSettings, layers: int) -> list[int] | None:
    """The layers `--lora-layers N` puts LoRA on (the last N of the model's `layers`); None: every layer. Gradients
    then stop at the lowest of them, which is what makes a step cheaper."""
    if settings.lora_layers is None or settings.lora_layers >= layers:
        return None
    return list(range(layers - settings.lora_layers, layers))


def lora_summary(settings, peft_config) -> dict:
    """The LoRA settings as recorded in the SFT and GRPO run summaries."""
    modules = peft_config.target_modules
    return {
        "r": settings.lora_r,
        "alpha": settings.lora_alpha,
        "dropout": settings.lora_dropout,
        "target_modules": modules if isinstance(modules, str) else sorted(modules),
        "layers": peft_config.layers_to_transform or "all",
    }


def set_adapter_base(adapter_dir: Path, base_model_id: str) -> None:
    """Point the saved adapter at the base model's Hub id (the trainer writes the local path it loaded)."""
    path = Path(adapter_dir) / "adapter_config.json"
    config = json.loads(path.read_text())
    config["base_model_name_or_path"] = base_model_id
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
