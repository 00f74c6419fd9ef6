"""The plan of a GPU run, made before any weight loads (`--dry-run`, trainer.sizing), and what keeps a long run alive:
the process group's timeout, checkpoints in both stages, `--resume` after an interrupted SFT, the Ctrl-C message.

No test needs a GPU or the network: the GPU plan is made for a Qwen3-4B-shaped model (a folder with only its
config.json and the tiny model's tokenizer), and the figures are checked against arithmetic done here by hand.
"""

import json
import math
import re
import shutil
import subprocess
import sys

import pytest

from trainer_fixtures import trainer_messages

pytestmark = pytest.mark.training

# Qwen/Qwen3-4B-Thinking-2507's config.json (the fields a config needs).
QWEN3_4B = {
    "architectures": ["Qwen3ForCausalLM"],
    "model_type": "qwen3",
    "hidden_size": 2560,
    "intermediate_size": 9728,
    "num_hidden_layers": 36,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "vocab_size": 151936,
    "tie_word_embeddings": True,
    "max_position_embeddings": 262144,
    "rms_norm_eps": 1e-06,
    "rope_theta": 5000000,
    "hidden_act": "silu",
    "attention_bias": False,
    "torch_dtype": "bfloat16",
    "bos_token_id": 151643,
    "eos_token_id": 151645,
}
# By hand: embeddings 151936 x 2560 (tied); per layer q 2560x4096, k and v 2560x1024, o 4096x2560, MLP 3 x 2560 x 9728,
# norms 2 x 2560 + q/k norms 2 x 128; a final norm of 2560.
PER_LAYER = 2 * 2560 * 4096 + 2 * 2560 * 1024 + 3 * 2560 * 9728 + 2 * 2560 + 2 * 128
PARAMETERS = 151936 * 2560 + 36 * PER_LAYER + 2560  # 4,022,468,096
LORA = 36 * 64 * ((2560 + 4096) * 2 + (2560 + 1024) * 2 + (2560 + 9728) * 3)  # rank 64 on all 7 projections
KV_PER_TOKEN = 36 * 8 * 128 * 2 * 2  # layers x KV heads x head dim x (K, V) x bf16 bytes = 147,456
GIB = 2**30


@pytest.fixture(scope="module")
def qwen3_4b_folder(tmp_path_factory, model_cache):
    """A model folder with only Qwen3-4B's config and a tokenizer: what a plan may read (no weights)."""
    from trainer.models import build_tiny_model

    folder = tmp_path_factory.mktemp("qwen3-4b-shape")
    tiny = build_tiny_model()
    for name in tiny.iterdir():
        if name.name.startswith(("tokenizer", "special_tokens", "chat_template", "vocab", "merges")):
            shutil.copy(name, folder / name.name)
    (folder / "config.json").write_text(json.dumps(QWEN3_4B))
    return folder


def _dry_run(folder, dataset, output, *args):
    code = "import sys\nfrom trainer.cli import main\nsys.exit(main())"
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "--dataset",
            str(dataset),
            "--model",
            str(folder),
            "--output-dir",
            str(output),
            "--no-push",
            "--dry-run",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"},
    )
    return done


def test_quiet_leaves_the_progress_out_and_the_plan_in(qwen3_4b_folder, tiny_dataset, tmp_path):
    said = _dry_run(qwen3_4b_folder, tiny_dataset, tmp_path / "said", "--plan-gpus", "1")
    quiet = _dry_run(qwen3_4b_folder, tiny_dataset, tmp_path / "quiet", "--plan-gpus", "1", "-q")
    assert said.returncode == quiet.returncode == 0, quiet.stderr
    assert "Loading dataset" in said.stdout and "nothing was trained" in said.stdout
    assert "Loading dataset" not in quiet.stdout and "nothing was trained" not in quiet.stdout
    assert (tmp_path / "said" / "plan.json").read_text() == (tmp_path / "quiet" / "plan.json").read_text()


@pytest.mark.parametrize("gpus", [1, 8])
def test_the_plan_of_the_4b_run_matches_the_arithmetic(qwen3_4b_folder, tiny_dataset, tmp_path, gpus):
    output = tmp_path / "out"
    done = _dry_run(qwen3_4b_folder, tiny_dataset, output, "--plan-gpus", str(gpus), "--gpu-memory-gb", "80")
    assert done.returncode == 0, done.stderr
    assert "nothing was trained" in done.stdout and not (output / "adapter").exists()
    plan = json.loads((output / "plan.json").read_text())
    assert plan["model_parameters"] == PARAMETERS and plan["lora_parameters"] == LORA
    assert plan["kv_cache_bytes_per_token"] == KV_PER_TOKEN
    assert plan["weights_gib"] == round(PARAMETERS * 2 / GIB, 2) == 7.49
    assert plan["adapter_and_optimizer_gib"] == round(LORA * 16 / GIB, 2)
    # the thinking template: the budget is the longest reference trace + 32 + the GPU thinking budget
    from trainer.thinking import GPU_THINKING_BUDGET

    assert plan["completion_budget"] > GPU_THINKING_BUDGET + 32
    assert plan["sequences_per_generation"] == 4 * 4  # per_device_train_batch_size x steps_per_generation
    sequence = plan["prompt_tokens_max"] + plan["completion_budget"]
    assert plan["sequence_tokens_max"] == sequence
    assert plan["kv_cache_gib_per_device"] == round(16 * sequence * KV_PER_TOKEN / GIB, 2)
    # 4 prompts x 8 completions per GPU and optimizer step
    assert plan["generated_tokens_per_step"] == 4 * 8 * gpus * plan["completion_budget"]
    assert plan["world_size"] == gpus and plan["generation_backend"] == "transformers"  # no vLLM installed here
    train_rows = 4
    assert plan["optimizer_steps"] == math.ceil(train_rows / (4 * 8 * gpus // 8))  # one epoch, 4 prompts per GPU
    assert plan["checkpoint_every_steps"] == math.ceil(plan["optimizer_steps"] / 10)
    # generation (KV cache) and training (activations) take turns beside the weights and the adapter
    transformers_need = (
        plan["weights_gib"]
        + plan["adapter_and_optimizer_gib"]
        + max(plan["kv_cache_gib_per_device"], plan["activations_gib_per_device"])
    )
    assert plan["memory_gib_per_device"] == pytest.approx(transformers_need, abs=0.05)
    assert plan["fits"] is True and plan["gpu_memory_gb"] == 80.0
    assert f"{plan['kv_cache_bytes_per_token']:,} bytes per token" in done.stdout


def test_lora_on_the_last_layers_only_is_planned_with_their_parameters(qwen3_4b_folder, tiny_dataset, tmp_path):
    """--lora-layers 9: LoRA on the last 9 of Qwen3-4B's 36 (identical) layers, a quarter of the adapter."""
    output = tmp_path / "out"
    done = _dry_run(qwen3_4b_folder, tiny_dataset, output, "--plan-gpus", "1", "--lora-layers", "9")
    assert done.returncode == 0, done.stderr
    plan = json.loads((output / "plan.json").read_text())
    assert plan["lora_parameters"] == LORA // 4 and plan["model_parameters"] == PARAMETERS


def test_a_plan_that_cannot_fit_is_refused_with_the_options_that_fix_it(qwen3_4b_folder, tiny_dataset, tmp_path):
    from trainer.prepare import prepare
    from trainer.settings import TrainError, TrainSettings
    from trainer.sizing import refusal

    done = _dry_run(
        qwen3_4b_folder,
        tiny_dataset,
        tmp_path / "dry",
        "--plan-gpus",
        "1",
        "--gpu-memory-gb",
        "16",
        "--thinking-budget",
        "30000",
    )
    assert done.returncode == 0, done.stderr  # a dry run reports; it does not refuse
    plan = json.loads((tmp_path / "dry" / "plan.json").read_text())
    assert plan["fits"] is False and "DOES NOT FIT" in done.stdout
    sentence = refusal(plan)
    assert "--thinking-budget" in sentence and "--gpu-memory-gb" in sentence
    assert sentence.endswith(".") and not re.search(r"\.\s+[A-Z]", sentence)  # one sentence
    # a real run with the same plan stops in prepare, before any weight loads
    settings = TrainSettings(
        dataset=str(tiny_dataset),
        model=str(qwen3_4b_folder),
        push=False,
        output_dir=str(tmp_path / "run"),
        thinking_budget=30000,
        gpu_memory_gb=16,
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(TrainSettings, "planned_gpu", property(lambda self: True))
        with pytest.raises(TrainError, match="needs up to .* GiB per GPU"):
            prepare(settings)


def test_the_grpo_config_of_a_gpu_plan(qwen3_4b_folder, tiny_dataset, tmp_path):
    """What a GPU run would hand TRL, computed without a GPU: vLLM's context and memory share from the plan, the
    process group's timeout, the checkpoint interval."""
    from trainer.grpo import grpo_config_kwargs
    from trainer.prepare import prepare
    from trainer.settings import TrainSettings

    settings = TrainSettings(
        dataset=str(tiny_dataset),
        model=str(qwen3_4b_folder),
        push=False,
        dry_run=True,
        plan_gpus=1,
        vllm_mode="colocate",
        gpu_memory_gb=80,
        ddp_timeout=3600,
        output_dir=str(tmp_path / "out"),
    )
    plan = prepare(settings)
    sizing = plan.sizing
    assert sizing["generation_backend"] == "vllm-colocate"
    assert sizing["vllm_max_model_length"] == sizing["prompt_tokens_max"] + sizing["completion_budget"]
    share = sizing["vllm_gpu_memory_utilization"]
    card = 80e9 / GIB
    # the share holds vLLM's copy of the weights and every sequence of a generation call
    assert share * card >= sizing["weights_gib"] + sizing["kv_cache_gib_per_device"]
    assert share < 0.5 and sizing["fits"] is True
    kwargs = grpo_config_kwargs(settings, tmp_path / "out", True, plan, vllm=True)
    assert kwargs["use_vllm"] is True and kwargs["vllm_mode"] == "colocate"
    assert kwargs["vllm_max_model_length"] == sizing["vllm_max_model_length"]
    assert kwargs["vllm_gpu_memory_utilization"] == share
    assert kwargs["vllm_enable_sleep_mode"] == sizing["vllm_enable_sleep_mode"]
    assert kwargs["ddp_timeout"] == 3600 and kwargs["save_steps"] == sizing["checkpoint_every_steps"]
    assert kwargs["bf16"] is True and kwargs["mask_truncated_completions"] is True  # thinking: cut-off masked
    # TRL accepts the rest of it (bf16 and vLLM need a GPU here, so those two are left out of the check)
    from trl import GRPOConfig

    config = GRPOConfig(
        **{**kwargs, "bf16": False, "use_cpu": True, "use_vllm": False, "output_dir": str(tmp_path / "ck")}
    )
    assert config.generation_batch_size == sizing["sequences_per_generation"] == 16
    assert config.per_device_train_batch_size * config.gradient_accumulation_steps == 32
    # an explicit setting still wins over the plan
    settings.grpo_overrides = {"save_steps": 7, "vllm_gpu_memory_utilization": 0.5}
    kwargs = grpo_config_kwargs(settings, tmp_path / "out", True, plan, vllm=True)
    assert kwargs["save_steps"] == 7 and kwargs["vllm_gpu_memory_utilization"] == 0.5
    # vLLM's server mode: generation on other GPUs, its context length still planned
    settings.vllm_mode, settings.grpo_overrides = "server", {}
    plan = prepare(settings)
    assert plan.sizing["generation_backend"] == "vllm-server"
    assert plan.sizing["memory_gib_per_device"] < sizing["memory_gib_per_device"]


def test_the_process_group_gets_the_run_timeout(monkeypatch):
    import datetime

    import torch.distributed as dist

    from trainer import distributed

    seen = {}
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda backend, **kw: seen.update(backend=backend, **kw))
    distributed.start(2400)
    assert seen["timeout"] == datetime.timedelta(seconds=2400) and seen["backend"] == "gloo"


def test_resume_continues_an_interrupted_sft(tiny_dataset, model_cache, tmp_path):
    """Ctrl-C in the SFT stage: the message says what --resume will do, and --resume continues from the SFT
    checkpoint rather than starting over."""
    from transformers import TrainerCallback

    from trainer.run import resume_hint, run
    from trainer.settings import TrainSettings

    class Interrupt(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if state.global_step >= 3:
                raise KeyboardInterrupt

    output = tmp_path / "out"
    common = dict(
        dataset=str(tiny_dataset),
        model="tiny",
        output_dir=str(output),
        push=False,
        sft_steps=6,
        sft_batch_size=1,
        max_steps=0,
        eval_limit=1,
        eval_max_new_tokens=4,
        skip_base_eval=True,
    )
    assert resume_hint(output) == "no checkpoint was saved yet, so --resume would start from the beginning."
    with pytest.raises(KeyboardInterrupt):
        run(TrainSettings(**common), callbacks=[Interrupt()])
    saved = sorted(p.name for p in (output / "sft" / "checkpoints").iterdir())
    assert saved and saved[-1] == "checkpoint-3"  # a checkpoint every ceil(6 / 10) = 1 step, the last two kept
    assert resume_hint(output) == "--resume continues the SFT warm start from checkpoint-3, then runs GRPO."
    assert resume_hint(output, does_grpo=False) == "--resume continues the SFT warm start from checkpoint-3."
    with trainer_messages() as lines:
        result = run(TrainSettings(**common, resume=True))
    assert any("continuing the SFT warm start from" in line and "checkpoint-3" in line for line in lines)
    summary = json.loads((result.adapter_dir / "training_run.json").read_text())["training"]["sft"]
    assert summary["steps"] == 6
    assert resume_hint(output) == "--resume reuses the finished SFT warm start and starts GRPO from its beginning."
    assert resume_hint(output, does_grpo=False) == "--resume reuses the finished SFT warm start and evaluates it."


def test_ctrl_c_says_what_resume_will_do(tiny_dataset, model_cache, tmp_path):
    """The CLI's message after Ctrl-C, in a real process interrupted during SFT."""
    import os
    import signal
    import time

    output = tmp_path / "out"
    code = "import sys\nfrom trainer.cli import main\nsys.exit(main())"
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            code,
            "--dataset",
            str(tiny_dataset),
            "--model",
            "tiny",
            "--output-dir",
            str(output),
            "--no-push",
            "--sft-steps",
            "400",
            "--sft-batch-size",
            "1",
            "--max-steps",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    deadline = time.monotonic() + 240
    checkpoints = output / "sft" / "checkpoints"
    while time.monotonic() < deadline and not (checkpoints.is_dir() and any(checkpoints.iterdir())):
        time.sleep(0.2)
    assert checkpoints.is_dir(), "SFT saved no checkpoint"
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130
    last = err.strip().splitlines()[-1]
    assert last.startswith(
        "Interrupted; what was saved is kept: --resume continues the SFT warm start from checkpoint-"
    ), last


AVX2_EPYC = "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu sse2 avx avx2 fma\n\n"
BF16_EPYC = "processor\t: 0\nmodel name\t: AMD EPYC 9B14\nflags\t\t: fpu avx2 avx512f avx512_bf16\n\n"


def test_bf16_weights_on_a_cpu_without_bf16_instructions_are_a_warning(tiny_dataset, model_cache, tmp_path):
    """bf16 pays on a CPU only with bf16 instructions (7x slower than fp32 without them): the CPU's flags are read,
    the record names them, and --dtype bfloat16 on a CPU without them is a warning in the plan and the run."""
    from trainer import prepare as prepare_module
    from trainer.prepare import prepare
    from trainer.settings import TrainSettings, cpu_features, slow_bf16_warning

    (tmp_path / "avx2").write_text(AVX2_EPYC)
    (tmp_path / "bf16").write_text(BF16_EPYC)
    avx2, bf16 = cpu_features(str(tmp_path / "avx2")), cpu_features(str(tmp_path / "bf16"))
    assert avx2 == {"model": "AMD EPYC 7B13", "flags": ["avx2"], "bf16_instructions": False}
    assert bf16 == {"model": "AMD EPYC 9B14", "flags": ["avx2", "avx512_bf16", "avx512f"], "bf16_instructions": True}
    assert slow_bf16_warning(bf16) is None and "7x slower than fp32" in slow_bf16_warning(avx2)
    assert cpu_features(str(tmp_path / "missing"))["bf16_instructions"] is False

    settings = TrainSettings(
        dataset=str(tiny_dataset), model="tiny", push=False, output_dir=str(tmp_path / "run"), dtype="bfloat16"
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(prepare_module, "slow_bf16_warning", lambda: slow_bf16_warning(avx2))
        warned = prepare(settings).warnings
        patch.setattr(prepare_module, "slow_bf16_warning", lambda: slow_bf16_warning(bf16))
        quiet = prepare(settings).warnings
    assert [w for w in warned if "bf16 instructions" in w] == [slow_bf16_warning(avx2)]
    assert not [w for w in quiet if "bf16 instructions" in w]
