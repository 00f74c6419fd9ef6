"""Benchmark: SFT tokens per second on this machine, TRL's LM head as shipped against the product's, in one run.

Each variant runs the real SFT warm start of `train-and-push` (trainer.sft.sft) for the same steps on the same
programs, one after the other in this process:

  trl-head        TRL 1.16 as shipped: the loss's fused LM head projects every position (prompt included) on a CPU
  labelled-only   the product: only the labelled positions (the trace) go through the vocabulary (trainer.lm_head)
  no-dropout      the product with --lora-dropout 0 (peft's dropout draws a mask on every LoRA input)
  last-12-layers  no-dropout with --lora-layers 12 (LoRA on the last 12 layers: the backward pass stops below them)
  last-8-layers   no-dropout with --lora-layers 8

    python scripts/bench_sft_speed.py --dataset data/cpu-recipe-1100 \\
        --model ~/.cache/huggingface/execution-world-model/qwen2.5-coder-0.5b/qwen2.5-coder-0.5b-instruct.gguf \\
        --base-model-id Qwen/Qwen2.5-Coder-0.5B-Instruct --steps 10 --json results/sft_speed.json

Without --model it uses the tiny test model (a smoke run: its vocabulary is small, so the head costs little).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

VARIANTS = {
    "trl-head": {"labelled_only": False, "lora_dropout": 0.05},
    "labelled-only": {"labelled_only": True, "lora_dropout": 0.05},
    "no-dropout": {"labelled_only": True, "lora_dropout": 0.0},
    "last-12-layers": {"labelled_only": True, "lora_dropout": 0.0, "lora_layers": 12},
    "last-8-layers": {"labelled_only": True, "lora_dropout": 0.0, "lora_layers": 8},
}


def measure(args, name: str, workdir: Path) -> dict:
    import trainer.sft as sft_module
    from trainer.prepare import prepare
    from trainer.settings import TrainSettings, set_cpu_threads

    variant = VARIANTS[name]
    settings = TrainSettings(
        dataset=args.dataset,
        model=args.model,
        base_model_id=args.base_model_id,
        output_dir=str(workdir / name),
        push=False,
        max_steps=0,
        prompt_style=args.prompt_style,
        sft_steps=args.steps,
        train_limit=4 * args.steps,
        sft_learning_rate=args.learning_rate,
        dtype=args.dtype,
        cpu_threads=args.cpu_threads,
        lora_dropout=variant["lora_dropout"],
        lora_layers=variant.get("lora_layers"),
    )
    set_cpu_threads(settings)
    plan = prepare(settings)
    head = sft_module.labelled_positions_only
    if not variant["labelled_only"]:
        sft_module.labelled_positions_only = contextlib.nullcontext  # TRL's own head, as shipped
    try:
        summary = sft_module.sft(settings, plan, workdir / name)
    finally:
        sft_module.labelled_positions_only = head
    return {
        "variant": name,
        **variant,
        "steps": summary["steps"],
        "seconds": summary["seconds"],
        "tokens": summary["tokens"],
        "completion_tokens": summary["completion_tokens"],
        "tokens_per_second": summary["tokens_per_second"],
        "first_loss": summary["first_loss"],
        "last_loss": summary["last_loss"],
        "trainable_parameters": summary["trainable_parameters"],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True, help="a build-dataset folder (its first 4 x --steps programs)")
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--base-model-id", default=None)
    parser.add_argument("--steps", type=int, default=10, help="SFT optimizer steps per variant (4 programs each)")
    parser.add_argument("--prompt-style", default="minimal")
    parser.add_argument("--learning-rate", type=float, default=3e-4)
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--cpu-threads", type=int, default=2)
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    if unknown := [n for n in names if n not in VARIANTS]:
        parser.error(f"unknown variant {unknown[0]!r}; choose from {', '.join(VARIANTS)}")

    from trainer.cli import _quiet_library_warnings

    _quiet_library_warnings()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            rows.append(measure(args, name, Path(tmp)))
            row = rows[-1]
            print(
                f"{name:14} {row['tokens']:7d} tokens ({row['completion_tokens']} trace) in {row['seconds']:7.1f} s:"
                f" {row['tokens_per_second']:6.1f} tokens/s, loss {row['first_loss']:.3f} -> {row['last_loss']:.3f}",
                flush=True,
            )
    base = rows[0]["seconds"]
    for row in rows[1:]:
        print(f"{row['variant']}: {base / row['seconds']:.2f}x the speed of {rows[0]['variant']}")
    if args.json:
        import torch
        import trl
        from cpu_recipe import _cpu_name  # this script's folder

        record = {
            "what": "SFT warm-start speed, one variant after another in one process (scripts/bench_sft_speed.py)",
            "model": args.base_model_id or args.model,
            "dataset": args.dataset,
            "steps": args.steps,
            "prompt_style": args.prompt_style,
            "dtype": args.dtype,
            "cpu_threads": args.cpu_threads,
            "machine": _cpu_name(),
            "torch": torch.__version__,
            "trl": trl.__version__,
            "variants": rows,
        }
        Path(args.json).write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
