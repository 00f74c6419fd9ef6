"""The trainer on CPU with the `tiny` model: a real GRPO run, the adapter saved and reloaded, the log, the card,
the settings, the CLI's errors. (Evaluation: test_evaluate.py; the push: test_trainer_push.py.)"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from trainer_fixtures import save_dataset, trainer_messages

ROOT = Path(__file__).resolve().parent.parent


# --- the CLI without heavy imports ----------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["main", "evaluate_main"])
def test_help_imports_no_heavy_library(command):
    code = (
        "import sys\nfrom trainer import cli\n"
        f"try:\n    cli.{command}(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('HEAVY', sorted(m for m in ('torch', 'transformers', 'datasets', 'trl', 'peft') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout
    assert "--dataset" in out.stdout


# --- models ---------------------------------------------------------------------------------------------------


def test_tiny_model_is_a_qwen3_with_a_thinking_template(model_cache):
    from trainer.models import load_model, resolve_model, thinking_template

    source = resolve_model("tiny")
    assert source.kind == "tiny" and source.base_model_id == "tiny"
    tokenizer, model = load_model(source)
    assert model.config.model_type == "qwen3"
    assert model.num_parameters() < 1_000_000
    assert thinking_template(tokenizer)
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert text.endswith("<|im_start|>assistant\n<think>\n")
    ids = tokenizer("<think>a</think>\n<execution_trace>").input_ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == "<think>a</think>\n<execution_trace>"


@pytest.mark.training
def test_tiny_model_builds_the_same_weights_every_time(tmp_path):
    from safetensors.torch import load_file

    from trainer.models import build_tiny_model

    a = load_file(str(build_tiny_model(tmp_path / "a") / "model.safetensors"))
    b = load_file(str(build_tiny_model(tmp_path / "b") / "model.safetensors"))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    assert (tmp_path / "a" / "tokenizer.json").read_text() == (tmp_path / "b" / "tokenizer.json").read_text()


@pytest.mark.training
def test_resolve_model_kinds_and_mistakes(tmp_path):
    from trainer.models import DEFAULT_MODEL, ModelError, resolve_model

    assert resolve_model(None).path == DEFAULT_MODEL == "Qwen/Qwen3-4B-Thinking-2507"
    hub = resolve_model("Qwen/Qwen3-0.6B")
    assert (hub.kind, hub.base_model_id) == ("hub", "Qwen/Qwen3-0.6B")
    folder = tmp_path / "ckpt"
    folder.mkdir()
    with pytest.raises(ModelError, match="no config.json"):
        resolve_model(str(folder))
    (folder / "config.json").write_text("{}")
    assert resolve_model(str(folder)).base_model_id is None
    assert resolve_model(str(folder), base_model_id="org/model").base_model_id == "org/model"
    (folder / "base_model_id.txt").write_text("org/from-marker\n")
    assert resolve_model(str(folder)).base_model_id == "org/from-marker"
    with pytest.raises(ModelError, match="does not exist"):
        resolve_model(str(tmp_path / "missing.gguf"))
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(ModelError, match="not a .gguf"):
        resolve_model(str(tmp_path / "weights.bin"))
    with pytest.raises(ModelError, match="neither"):
        resolve_model("./no/such/folder")
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf file")
    with pytest.raises(ModelError, match="could not read GGUF"):
        resolve_model(str(bad))


# --- GRPOConfig settings --------------------------------------------------------------------------------------


def _settings(**kw):
    from trainer.settings import TrainSettings

    return TrainSettings(dataset="d", push=False, **kw)


@pytest.mark.training
def test_cpu_defaults_make_a_valid_fp32_config(tmp_path):
    from trainer.grpo import grpo_config_kwargs, make_grpo_config

    kwargs = grpo_config_kwargs(_settings(), tmp_path, gpu=False)
    assert kwargs["use_cpu"] and not kwargs["bf16"] and not kwargs["activation_checkpointing"]
    config = make_grpo_config(kwargs)
    assert config.num_generations == 2 and config.generation_batch_size % config.num_generations == 0
    assert config.output_dir == str(tmp_path / "checkpoints")


@pytest.mark.training
def test_gpu_defaults_use_bf16_checkpointing_qwen_sampling_and_room_to_think(tmp_path):
    from trainer.grpo import grpo_config_kwargs

    kwargs = grpo_config_kwargs(_settings(), tmp_path, gpu=True)
    assert kwargs["bf16"] and kwargs["activation_checkpointing"]
    assert (kwargs["temperature"], kwargs["top_p"], kwargs["top_k"]) == (0.6, 0.95, 20)
    assert kwargs["max_completion_length"] >= 4096
    assert (kwargs["per_device_train_batch_size"] * kwargs["gradient_accumulation_steps"]) % kwargs[
        "num_generations"
    ] == 0


@pytest.mark.training
def test_config_file_then_explicit_options_win(tmp_path):
    from trainer.grpo import grpo_config_kwargs, make_grpo_config

    config_file = tmp_path / "grpo.yaml"
    config_file.write_text("save_steps: 7\nlearning_rate: 0.5\nbeta: 0.04\ngradient_checkpointing: false\n")
    settings = _settings(
        config_file=str(config_file), learning_rate=2e-5, num_generations=4, max_steps=3, grpo_overrides={"beta": 0.01}
    )
    kwargs = grpo_config_kwargs(settings, tmp_path, gpu=False)
    assert kwargs["save_steps"] == 7 and kwargs["learning_rate"] == 2e-5 and kwargs["beta"] == 0.01
    assert kwargs["num_generations"] == 4 and kwargs["per_device_train_batch_size"] == 4
    assert "activation_checkpointing" not in kwargs and kwargs["gradient_checkpointing"] is False
    assert make_grpo_config(kwargs).max_steps == 3


@pytest.mark.training
def test_config_mistakes_are_sentences(tmp_path):
    from trainer.grpo import grpo_config_kwargs, make_grpo_config
    from trainer.settings import TrainError

    with pytest.raises(TrainError, match="unknown GRPOConfig setting.*no_such_thing"):
        grpo_config_kwargs(_settings(grpo_overrides={"no_such_thing": 1}), tmp_path, gpu=False)
    with pytest.raises(TrainError, match="at least 2"):
        grpo_config_kwargs(_settings(num_generations=1), tmp_path, gpu=False)
    with pytest.raises(TrainError, match="does not exist"):
        grpo_config_kwargs(_settings(config_file=str(tmp_path / "nope.yaml")), tmp_path, gpu=False)
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(TrainError, match="mapping"):
        grpo_config_kwargs(_settings(config_file=str(tmp_path / "list.yaml")), tmp_path, gpu=False)
    kwargs = grpo_config_kwargs(_settings(grpo_overrides={"generation_batch_size": 3}), tmp_path, gpu=False)
    with pytest.raises(TrainError, match="invalid training settings"):
        make_grpo_config(kwargs)


# --- the real GRPO run ----------------------------------------------------------------------------------------


def test_grpo_run_saves_an_adapter_that_names_its_base(trained_run):
    adapter = trained_run["result"].adapter_dir
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "tiny"  # the id, never the cache path it was loaded from
    assert config["r"] == 64 and config["lora_alpha"] == 128
    assert set(config["target_modules"]) == {
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    }
    for name in (
        "adapter_model.safetensors",
        "README.md",
        "reward_curve.png",
        "eval_results.json",
        "eval_predictions.jsonl",
        "training_log.json",
        "training_run.json",
        "tokenizer.json",
    ):
        assert (adapter / name).is_file(), name
    assert not (adapter / "training_args.bin").exists()
    assert (trained_run["output"] / "checkpoints" / "checkpoint-2").is_dir()


def test_adapter_reloads_with_identical_logits(trained_run):
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file

    from trainer.models import load_model

    adapter = trained_run["result"].adapter_dir
    weights = load_file(str(adapter / "adapter_model.safetensors"))
    assert any(k.endswith("lora_B.weight") and v.abs().sum() > 0 for k, v in weights.items()), "LoRA never moved"
    trained = trained_run["model"].eval()
    tokenizer, base = load_model("tiny")
    reloaded = PeftModel.from_pretrained(base, str(adapter)).eval()
    inputs = tokenizer(["Line 1: State: {x=10}", "def f(n):\n    return n"], return_tensors="pt", padding=True)
    with torch.no_grad():
        expected = trained(**inputs).logits
        got = reloaded(**inputs).logits
        with reloaded.disable_adapter():
            plain = reloaded(**inputs).logits
    assert torch.equal(expected, got)
    assert not torch.equal(plain, got)  # the adapter changes the model


def test_reward_is_in_the_training_log_and_on_the_terminal(trained_run):
    adapter = trained_run["result"].adapter_dir
    history = json.loads((adapter / "training_log.json").read_text())
    steps = [h for h in history if "reward" in h]
    assert [h["step"] for h in steps] == [1, 2]
    assert all("rewards/execution_reward/mean" in h and 0 <= h["reward"] <= 1.05 for h in steps)
    printed = [line for line in trained_run["log"] if line.startswith("step ")]
    assert len(printed) == 2 and all("reward " in line for line in printed)
    assert any("learns nothing useful" in line for line in trained_run["log"])
    png = (adapter / "reward_curve.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 2000


def test_run_record_holds_settings_versions_and_metrics(trained_run):
    run = json.loads((trained_run["result"].adapter_dir / "training_run.json").read_text())
    training = run["training"]
    assert training["global_steps"] == 2 and training["device"] == "cpu"
    assert training["grpo"]["max_completion_length"] == 24 and training["grpo"]["bf16"] is False
    assert set(training["versions"]) >= {"python", "torch", "transformers", "trl", "peft"}
    assert run["evaluation"]["models"]["adapter"]["n"] == 2


def test_card_renders_with_valid_yaml_the_measured_table_and_a_working_snippet(trained_run, tmp_path):
    adapter = trained_run["result"].adapter_dir
    card = (adapter / "README.md").read_text()
    assert card.startswith("---\n")
    meta = yaml.safe_load(card.split("---\n")[1])
    assert meta["library_name"] == "peft" and meta["pipeline_tag"] == "text-generation"
    assert meta["license"] == "apache-2.0" and "grpo" in meta["tags"]
    assert "base_model" not in meta  # `tiny` is not a Hub model
    metrics = {m["type"]: m["value"] for m in meta["model-index"][0]["results"][0]["metrics"]}
    results = json.loads((adapter / "eval_results.json").read_text())
    assert metrics["execution_prediction_accuracy"] == round(
        results["models"]["adapter"]["execution_prediction_accuracy"], 4
    )
    assert "| Metric | Base | Adapter |" in card and "| Mean State Accuracy |" in card
    assert "![Reward over training steps](reward_curve.png)" in card
    assert "learns nothing useful" in card
    assert "transformers 5." in card and "trl " in card and "peft " in card and "python 3." in card
    assert "r=64, alpha=128" in card
    # the usage snippet runs as written (pointed at the local adapter folder instead of the Hub repo)
    snippet = card.split("````python\n")[1].split("````")[0]
    repo_line = next(line for line in snippet.splitlines() if line.startswith("ADAPTER = "))
    snippet = snippet.replace(repo_line, f"ADAPTER = {str(adapter)!r}")
    out = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip()


def test_resume_continues_from_the_last_checkpoint(trained_run, tiny_dataset):
    from trainer.grpo import train
    from trainer.prepare import prepare
    from trainer.settings import TrainSettings

    output = trained_run["output"]
    settings = TrainSettings(
        dataset=str(tiny_dataset),
        model="tiny",
        output_dir=str(output),
        max_steps=3,
        max_completion_length=24,
        push=False,
        resume=True,
        grpo_overrides={"save_steps": 1},
    )
    with trainer_messages() as lines:
        summary = train(settings, prepare(settings), output)
    assert any(line.startswith("Resuming from") and "checkpoint-2" in line for line in lines)
    assert summary["global_steps"] == 3
    assert [line.split()[1] for line in lines if line.startswith("step ")] == ["3/3"]


def _help_examples(command) -> dict[str, list[str]]:
    """The examples of a command's --help: {the comment above it: its arguments}, continuation lines joined."""
    import shlex

    from click.testing import CliRunner

    text = CliRunner().invoke(command, ["--help"]).output.split("Options:")[0]
    examples, comment, pending = {}, None, ""
    for line in (line.strip() for line in text.splitlines()):
        if line.startswith("#"):
            comment = line[1:].strip()
        elif comment and line:
            pending += line.rstrip("\\") + " "
            if not line.endswith("\\"):
                examples[comment], comment, pending = shlex.split(pending), None, ""
    return examples


def test_the_help_s_smoke_test_runs_as_written(tiny_dataset, model_cache, tmp_path, monkeypatch):
    """The --help examples say how long they take; the CPU smoke test, run exactly as --help writes it (on the test
    dataset), trains, evaluates and finishes."""
    from trainer.cli import evaluate_main, main

    examples = _help_examples(main)
    for comment in [*examples, *_help_examples(evaluate_main)]:  # each says how long it takes
        assert any(word in f"{comment} " for word in (" s ", "minutes", "hours")), comment
    (smoke,) = [args for comment, args in examples.items() if comment.startswith("a smoke test on a CPU")]
    assert smoke[0] == "train-and-push" and "--model" in smoke and smoke[smoke.index("--model") + 1] == "tiny"
    args = [str(tiny_dataset) if a == "data/execution-traces" else a for a in smoke[1:]]
    monkeypatch.chdir(tmp_path)
    result = _cli(args)
    assert result.exit_code == 0, result.output
    assert "Done in" in result.output and list(tmp_path.glob("outputs/*/adapter/adapter_model.safetensors"))


# --- CLI mistakes: one sentence, exit 1, no traceback ----------------------------------------------------------


def _cli(args, env=None):
    from click.testing import CliRunner

    from trainer.cli import main

    return CliRunner().invoke(main, args, env=env)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--no-push"], "--dataset is required"),
        (["--dataset", "x"], "--repo-id USER/NAME is required"),
        (["--dataset", "/no/such/dir", "--no-push", "--model", "tiny"], "does not exist"),
        # what could be a Hub id and is no folder here: both were tried, and the message says so (the tests are
        # offline: the Hub lookup fails at once)
        (
            ["--dataset", "someone/missing", "--no-push", "--model", "tiny"],
            "There is no folder someone/missing here, and dataset someone/missing could not be loaded from the Hub",
        ),
        (["--dataset", "{data}", "--no-push", "--model", "/no/such.gguf"], "GGUF file /no/such.gguf does not exist"),
        (["--dataset", "{data}", "--no-push", "--model", "tiny", "--set", "bogus=1"], "unknown GRPOConfig setting"),
        (["--dataset", "{data}", "--no-push", "--model", "tiny", "--set", "nonsense"], "KEY=VALUE"),
        (["--dataset", "{data}", "--no-push", "--model", "tiny", "--num-generations", "1"], "at least 2"),
        (["--dataset", "{data}", "--repo-id", "bad id!", "--model", "tiny"], "Malformed repo id"),
        (["--push-only", "--repo-id", "a/b"], "--push-only needs --output-dir"),
        (["--push-only", "--repo-id", "a/b", "--output-dir", "/no/such/out"], "holds no trained adapter"),
    ],
)
def test_cli_mistakes_are_one_sentence(args, message, tiny_dataset, model_cache, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_dummy")
    result = _cli([a.replace("{data}", str(tiny_dataset)) for a in args])
    assert result.exit_code in (1, 2), result.output
    assert message.lower() in result.output.lower()
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)


def test_cli_without_token_fails_before_training(tiny_dataset, model_cache, monkeypatch, tmp_path):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    result = _cli(
        [
            "--dataset",
            str(tiny_dataset),
            "--repo-id",
            "user/name",
            "--model",
            "tiny",
            "--output-dir",
            str(tmp_path / "out"),
        ]
    )
    assert result.exit_code == 1 and "No Hugging Face token" in result.output
    assert not (tmp_path / "out").exists()


def test_dataset_without_prompt_columns_is_rebuilt_from_code_and_steps(tmp_path):
    from datasets import load_from_disk

    from dataset_builder.trace import format_trace, make_prompt
    from trainer.data import load_trace_dataset
    from trainer_fixtures import PROGRAMS

    folder = save_dataset(tmp_path / "d")
    stripped = load_from_disk(str(folder))
    stripped = stripped.remove_columns(["prompt", "expected_trace"])
    stripped.save_to_disk(str(tmp_path / "stripped"))
    data = load_trace_dataset(str(tmp_path / "stripped"))
    assert data["train"][0]["prompt"] == make_prompt(PROGRAMS[0][0])
    assert data["train"][0]["expected_trace"] == format_trace(PROGRAMS[0][1])
    assert math.isfinite(len(data["test"]))


def test_the_default_output_dir_names_the_repo_or_the_data_and_the_model():
    """Without --output-dir a run goes to outputs/NAME (--repo-id USER/NAME), else outputs/DATASET-MODEL: two runs
    on other data or another model do not meet in one folder (which would be refused as holding another run)."""
    from trainer.settings import TrainSettings

    assert str(TrainSettings(dataset="data/x", repo_id="you/my-lora").resolved_output_dir()) == "outputs/my-lora"
    assert (
        str(TrainSettings(dataset="data/execution-traces/").resolved_output_dir())
        == "outputs/execution-traces-Qwen3-4B-Thinking-2507"
    )
    assert (
        str(TrainSettings(dataset="you/traces", model="/m/SmolLM2-135M-Instruct.Q4_1.gguf").resolved_output_dir())
        == "outputs/traces-SmolLM2-135M-Instruct.Q4_1"
    )
    assert str(TrainSettings(dataset="d", model="tiny", output_dir="~/runs/a").resolved_output_dir()).endswith("runs/a")


def test_measuring_long_traces_prints_no_transformers_warning(model_cache):
    """The tool tokenizes whole traces to measure them (and says itself when a training example is cut): the
    commands silence transformers' warning about sequences longer than the model's maximum, and nothing else."""
    import logging

    from trainer.cli import _quiet_library_warnings
    from trainer.models import load_tokenizer

    seen = []
    handler = logging.Handler()
    handler.emit = seen.append
    logging.getLogger("transformers").addHandler(handler)
    try:
        tokenizer = load_tokenizer("tiny")
        _quiet_library_warnings()
        tokenizer("x = 1\n" * 5000)  # far over the tiny model's 4096 tokens
        logging.getLogger("transformers.tokenization_utils_base").warning("something else")
    finally:
        logging.getLogger("transformers").removeHandler(handler)
    assert [record.getMessage() for record in seen] == ["something else"]
