"""Runs you can trust: two real processes (torchrun, gloo on CPU), a run that says when it learned nothing, the
thinking policy on tiny models carrying each kind of chat template, and records that match the run."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from trainer_fixtures import trainer_messages

pytestmark = pytest.mark.training  # every test here trains, evaluates or loads the trainer's settings (torch)

ROOT = Path(__file__).resolve().parent.parent


def _cli(args):
    from click.testing import CliRunner

    from trainer.cli import main

    return CliRunner().invoke(main, [str(a) for a in args])


def _record(folder) -> dict:
    return json.loads((Path(folder) / "adapter" / "training_run.json").read_text())


# --- two processes ------------------------------------------------------------------------------------------------


def _torchrun() -> list[str]:
    script = Path(sys.executable).parent / "train-and-push"
    entry = [str(script)] if script.exists() else ["-m", "trainer.cli"]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *entry]


def test_two_processes_train_evaluate_once_and_push_once(hub_server, tiny_dataset, model_cache, tmp_path):
    """torchrun, 2 CPU processes with gloo: both train (DDP: an SFT warm start, then GRPO continuing the adapter
    the main process saved), each evaluates its share of the test split, the main process alone writes the
    adapter, the record, the card and pushes it (one commit)."""
    token = hub_server.add_user("user")
    env = {
        **os.environ,
        **hub_server.env(token, hub_server.hf_home),
        "EWM_CACHE": str(model_cache),
        "OMP_NUM_THREADS": "1",
    }
    output = tmp_path / "run"
    done = subprocess.run(
        _torchrun()
        + [
            "--dataset",
            tiny_dataset,
            "--model",
            "tiny",
            "--sft-steps",
            "2",
            "--sft-batch-size",
            "1",
            "--max-steps",
            "2",
            "--repo-id",
            "user/two",
            "--output-dir",
            output,
            "--eval-max-new-tokens",
            "8",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={k: str(v) for k, v in env.items()},
        timeout=600,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    assert out.count("Pushed: ") == 1 and out.count("Adapter, metrics and card saved") == 1
    assert [line.split()[1] for line in done.stdout.splitlines() if line.startswith("step ")] == ["1/2", "2/2"]
    uploads = [c for c in hub_server.commits("user/two", "model") if c["title"] != "initial commit"]
    assert len(uploads) == 1  # one process pushed, once
    run = _record(output)
    training = run["training"]
    assert training["world_size"] == 2
    assert training["global_batch"] == 2 * 2  # 2 completions per device, 2 processes
    assert training["prompts_per_step"] == 2
    assert training["sft"]["world_size"] == 2 and training["sft"]["learning_signal"]["adapter_changed"]
    assert "GRPO continues the SFT adapter" in done.stdout
    results = run["evaluation"]
    assert results["decoding"]["processes"] == 2
    assert results["n"] == 3 and all(m["n"] == 3 for m in results["models"].values())  # the whole test split
    predictions = [
        json.loads(line) for line in (output / "adapter" / "eval_predictions.jsonl").read_text().splitlines()
    ]
    for model in ("base", "sft", "adapter"):
        assert sorted(p["id"] for p in predictions if p["model"] == model) == ["te0", "te1", "te2"]  # each once
    card = (output / "adapter" / "README.md").read_text()
    assert "| Processes (world size) | 2 |" in card and "| Prompts per step | 2 |" in card


# --- the learning signal ------------------------------------------------------------------------------------------


def test_run_that_learned_nothing_says_so_and_fails_before_the_push(
    hub_server, tiny_dataset, model_cache, tmp_path, monkeypatch
):
    """GRPO alone on tiny: every completion scores 0 (and is cut off), so every group has zero reward spread, the
    gradient is 0 and lora_B stays 0. The console, the record and the card say so; --fail-on-no-signal exits 1
    before anything reaches the Hub."""
    monkeypatch.setenv("HF_TOKEN", hub_server.add_user("user"))
    output = tmp_path / "run"
    result = _cli(
        [
            "--dataset",
            tiny_dataset,
            "--model",
            "tiny",
            "--max-steps",
            "1",
            "--repo-id",
            "user/nothing",
            "--output-dir",
            output,
            "--eval-limit",
            "1",
            "--eval-max-new-tokens",
            "4",
            "--fail-on-no-signal",
        ]
    )
    assert result.exit_code == 1, result.output
    assert "learned nothing" in result.output and "--fail-on-no-signal" in result.output
    assert "Traceback" not in result.output and "Pushing" not in result.output
    assert "WARNING: this run learned nothing" in result.output
    with pytest.raises(Exception):
        hub_server.commits("user/nothing", "model")  # no repo was created
    run = _record(output)
    assert run["no_signal"] is True
    signal = run["training"]["learning_signal"]
    assert signal["frac_reward_zero_std_mean"] == 1.0 and signal["grad_norm_max"] == 0.0
    assert signal["lora_B_all_zero"] and not signal["adapter_changed"]
    assert any("frac_reward_zero_std" in w for w in run["warnings"])
    assert any("lora_B" in w for w in run["warnings"])
    card = (output / "adapter" / "README.md").read_text()
    assert "**Warning: this run learned nothing.**" in card
    # the same run without the option finishes (and still warns)
    again = _cli(
        [
            "--dataset",
            tiny_dataset,
            "--model",
            "tiny",
            "--max-steps",
            "1",
            "--no-push",
            "--output-dir",
            tmp_path / "again",
            "--eval-limit",
            "1",
            "--eval-max-new-tokens",
            "4",
        ]
    )
    assert again.exit_code == 0 and "WARNING: this run learned nothing" in again.output


def test_weight_change_sees_one_changed_value():
    import torch

    from trainer.learning_signal import fingerprint, weight_change

    model = torch.nn.Module()
    model.lora_A = torch.nn.Parameter(torch.ones(2, 2))
    model.lora_B = torch.nn.Parameter(torch.zeros(2, 2))
    before = fingerprint(model)
    assert weight_change(before, fingerprint(model)) == {
        "tensors": 2,
        "tensors_changed": 0,
        "adapter_changed": False,
        "lora_B_all_zero": True,
    }
    with torch.no_grad():
        model.lora_B[1, 1] = 1e-6
    change = weight_change(before, fingerprint(model))
    assert change["adapter_changed"] and change["tensors_changed"] == 1 and not change["lora_B_all_zero"]


# --- thinking: tiny models with each kind of chat template ---------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_templates(tmp_path_factory):
    from trainer.models import build_tiny_model

    root = tmp_path_factory.mktemp("templates")
    return {kind: build_tiny_model(root / kind, template=kind) for kind in ("thinking", "hybrid", "none")}


def test_template_kinds_and_the_thinking_policy(tiny_templates):
    from trainer.models import load_tokenizer
    from trainer.thinking import ThinkingError, template_kind, thinking_policy

    tok = {kind: load_tokenizer(str(folder)) for kind, folder in tiny_templates.items()}
    assert template_kind(tok["thinking"]) == ("thinking", None)
    assert template_kind(tok["hybrid"]) == ("hybrid", True)  # thinks by default, like Qwen3's hybrids
    assert template_kind(tok["none"]) == ("none", None)

    policy = thinking_policy(tok["thinking"], "auto")
    assert policy.enabled and policy.opens_think and policy.chat_template_kwargs == {}
    with pytest.raises(ThinkingError, match="no enable_thinking switch"):
        thinking_policy(tok["thinking"], "off")

    auto = thinking_policy(tok["hybrid"], "auto")
    assert auto.enabled and not auto.opens_think and auto.chat_template_kwargs == {"enable_thinking": True}
    off = thinking_policy(tok["hybrid"], "off")
    assert not off.enabled and off.chat_template_kwargs == {"enable_thinking": False}
    prompt = tok["hybrid"].apply_chat_template(
        [{"role": "user", "content": "x"}], tokenize=False, add_generation_prompt=True, **off.chat_template_kwargs
    )
    assert prompt.endswith("<think>\n\n</think>\n\n")

    assert not thinking_policy(tok["none"], "auto").enabled
    with pytest.raises(ThinkingError, match="has no thinking"):
        thinking_policy(tok["none"], "on")


@pytest.mark.parametrize(
    "kind, mode, thinks", [("hybrid", "off", False), ("none", "auto", False), ("hybrid", "on", True)]
)
def test_the_policy_reaches_the_budget_the_trainer_and_the_evaluation(
    kind, mode, thinks, tiny_templates, tiny_dataset, tmp_path
):
    from trainer.grpo import grpo_config_kwargs, make_grpo_config
    from trainer.prepare import prepare
    from trainer.settings import TrainSettings
    from trainer.thinking import MARGIN

    settings = TrainSettings(
        dataset=str(tiny_dataset), model=str(tiny_templates[kind]), push=False, thinking=mode, thinking_budget=40
    )
    plan = prepare(settings)
    kwargs = grpo_config_kwargs(settings, tmp_path, gpu=False, plan=plan)
    assert plan.longest_reference > 10
    assert kwargs["max_completion_length"] == plan.longest_reference + MARGIN + (40 if thinks else 0)
    assert kwargs["mask_truncated_completions"] is thinks  # a cut-off thinking has no answer to learn from
    assert kwargs.get("chat_template_kwargs") == ({"enable_thinking": thinks} if kind == "hybrid" else None)
    assert make_grpo_config(kwargs).chat_template_kwargs == kwargs.get("chat_template_kwargs")
    # explicit options still win
    settings.max_completion_length = 7
    assert grpo_config_kwargs(settings, tmp_path, gpu=False, plan=plan)["max_completion_length"] == 7


def test_hybrid_template_with_thinking_off_end_to_end(tiny_templates, tiny_dataset, tmp_path):
    """A real GRPO step and evaluation with enable_thinking=False passed to the template: greedy, stopped at the
    trace's end, budget without thinking; the record and the card say so."""
    output = tmp_path / "run"
    result = _cli(
        [
            "--dataset",
            tiny_dataset,
            "--model",
            tiny_templates["hybrid"],
            "--thinking",
            "off",
            "--max-steps",
            "1",
            "--no-push",
            "--output-dir",
            output,
            "--eval-limit",
            "1",
            "--skip-base-eval",
        ]
    )
    assert result.exit_code == 0, result.output
    run = _record(output)
    thinking = run["training"]["thinking"]
    assert (thinking["template"], thinking["enabled"], thinking["chat_template_kwargs"]) == (
        "hybrid",
        False,
        {"enable_thinking": False},
    )
    assert run["training"]["grpo"]["chat_template_kwargs"] == {"enable_thinking": False}
    assert run["training"]["grpo"]["mask_truncated_completions"] is False
    decoding = run["evaluation"]["decoding"]
    assert decoding["greedy"] is True and decoding["stop_at_trace_end"] is True
    assert decoding["max_new_tokens_rule"] == "longest reference trace + 32 tokens"
    card = (output / "adapter" / "README.md").read_text()
    assert "| Thinking | off (chat template: hybrid; --thinking off) |" in card
    assert "enable_thinking=False" in card  # the usage snippet renders the prompt as in training


def test_a_budget_past_the_model_context_is_capped_and_warned(tmp_path, model_cache):
    """The data asks for more completion tokens than tiny's 4096-token context leaves: capped, recorded, warned."""
    from datasets import Dataset, DatasetDict

    from dataset_builder.trace import Step, format_trace, make_prompt
    from trainer.grpo import completion_budget_record, grpo_config_kwargs
    from trainer.prepare import prepare
    from trainer.settings import TrainSettings

    steps = [Step(1 + i % 3, state=(("value", repr(list(range(i % 40)))),)) for i in range(400)]
    row = {
        "id": ["long"],
        "code": ["x = 1\n"],
        "prompt": [make_prompt("x = 1\n")],
        "expected_trace": [format_trace(steps)],
    }
    DatasetDict({"train": Dataset.from_dict(row), "test": Dataset.from_dict(row)}).save_to_disk(str(tmp_path / "d"))
    settings = TrainSettings(dataset=str(tmp_path / "d"), model="tiny", push=False)
    plan = prepare(settings)
    assert plan.longest_reference > 4096 and plan.room < 4096
    kwargs = grpo_config_kwargs(settings, tmp_path, gpu=False, plan=plan)
    assert kwargs["max_completion_length"] == plan.room
    assert "capped at what the model's context leaves" in completion_budget_record(settings, plan, kwargs)["rule"]
    assert any("does not fit the model's 4096-token context" in w for w in plan.warnings)


@pytest.mark.parametrize(
    "kind, mode, message", [("none", "on", "has no thinking"), ("thinking", "off", "no enable_thinking switch")]
)
def test_impossible_thinking_modes_are_one_sentence(kind, mode, message, tiny_templates, tiny_dataset, tmp_path):
    result = _cli(
        [
            "--dataset",
            tiny_dataset,
            "--model",
            tiny_templates[kind],
            "--thinking",
            mode,
            "--no-push",
            "--output-dir",
            tmp_path / "o",
        ]
    )
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output
    assert "Loading model" not in result.output


# --- records that match the run -----------------------------------------------------------------------------------


def test_help_defaults_are_the_real_ones(tmp_path):
    from trl import GRPOConfig

    from trainer.grpo import grpo_config_kwargs
    from trainer.settings import DEFAULT_EPOCHS, TrainSettings

    help_text = _cli(["--help"]).output
    assert f"[default: {DEFAULT_EPOCHS:g}]" in " ".join(help_text.split())
    kwargs = grpo_config_kwargs(TrainSettings(dataset="d", push=False), tmp_path, gpu=False)
    assert GRPOConfig(**kwargs).num_train_epochs == DEFAULT_EPOCHS
    assert kwargs["learning_rate"] == 1e-5 and "[default: 1e-5]" in help_text


def test_every_option_defaults_to_what_the_settings_default_to():
    """Each `train-and-push` option and its `TrainSettings` field agree on the default, and `--help` shows it (an
    option not given is the field's default: `--cruxeval-prompts`/`--cruxeval-prompt-format` are left out of the
    settings then), so what `--help` shows is what runs; every field but the library-only ones is an option."""
    import dataclasses

    import click

    from trainer import cli
    from trainer.settings import TrainSettings

    fields = {f.name: f for f in dataclasses.fields(TrainSettings)}
    inverted = {"no_push": "push", "no_eval_cache": "eval_cache"}
    context = click.Context(cli.main)
    seen = set()
    for param in cli.main.params:
        name = inverted.get(param.name, param.name)
        if name not in fields:
            assert param.name in ("version", "verbose", "quiet", "set_values", "push_only"), param.name  # CLI-only
            continue
        seen.add(name)
        field = fields[name]
        if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            continue  # required (--dataset)
        wanted = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        shown = param.get_default(context)
        shown = None if shown is click.core.UNSET else shown
        if param.name in inverted:
            shown = not shown
        if name in cli.CLI_SHAPED:
            assert shown is None and cli._cruxeval_settings(None, None) == {}, name
            continue
        assert shown == wanted, (param.name, shown, wanted)
        help_text = " ".join(param.get_help_record(context)[1].split())
        if wanted is not None and not isinstance(wanted, bool):
            assert f"[default: {wanted}" in help_text, (param.name, help_text)
        else:
            assert "[default: " not in help_text or "[default: " in (param.help or ""), (param.name, help_text)
    library_only = {"grpo_overrides"}  # filled from --set and --config, not an option of its own
    assert set(fields) - seen - library_only == set()


def test_use_vllm_without_vllm_is_one_sentence_before_any_model_loads(tiny_dataset, tmp_path):
    pytest.importorskip("torch")
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here")
    result = _cli(
        [
            "--dataset",
            tiny_dataset,
            "--model",
            "tiny",
            "--no-push",
            "--set",
            "use_vllm=true",
            "--output-dir",
            tmp_path / "o",
        ]
    )
    assert result.exit_code == 1, result.output
    assert "needs vLLM, which is not installed" in result.output
    assert "Traceback" not in result.output and "Loading" not in result.output


def test_sft_max_length_comes_from_the_data_and_cut_examples_are_counted(tiny_dataset, model_cache, tmp_path):
    from trainer.run import run
    from trainer.settings import TrainSettings

    def sft_run(name, **kw):
        settings = TrainSettings(
            dataset=str(tiny_dataset),
            model="tiny",
            output_dir=str(tmp_path / name),
            push=False,
            sft_steps=1,
            sft_batch_size=1,
            max_steps=0,
            eval_limit=1,
            eval_max_new_tokens=2,
            skip_base_eval=True,
            **kw,
        )
        with trainer_messages() as lines:
            result = run(settings)
        return result, _record(result.output_dir)["training"]["sft"], lines

    _, sft, _ = sft_run("whole")
    longest = sft["longest_example_tokens"]
    assert sft["max_length"] == longest and sft["examples_over_max_length"] == 0  # sized from the data
    result, sft, lines = sft_run("cut", sft_max_length=longest - 1)
    assert sft["max_length"] == longest - 1 and sft["examples_over_max_length"] >= 1
    over = sft["examples_over_max_length"]
    assert any(f"{over} of 4 SFT examples are longer than --sft-max-length {longest - 1}" in w for w in result.warnings)
    assert any(line.startswith(f"Warning: {over} of 4 SFT examples") for line in lines)


def test_bf16_weights_on_a_cpu_are_recorded_and_evaluated_as_trained(tiny_dataset, model_cache, tmp_path):
    """`--set bf16=true` on a CPU: the base weights are bf16 in training, in the record and in evaluation; the
    record also holds the thread count, the start-up and the total time."""
    output = tmp_path / "bf16"
    result = _cli(
        [
            "--dataset",
            tiny_dataset,
            "--model",
            "tiny",
            "--max-steps",
            "1",
            "--no-push",
            "--set",
            "bf16=true",
            "--set",
            "mask_truncated_completions=false",
            "--output-dir",
            output,
            "--eval-limit",
            "1",
            "--eval-max-new-tokens",
            "2",
            "--skip-base-eval",
            "--cpu-threads",
            "1",
        ]
    )
    assert result.exit_code == 0, result.output
    assert "Loading model tiny (CPU, bfloat16)" in result.output
    run = _record(output)
    assert run["training"]["weights_dtype"] == "bfloat16" == run["evaluation"]["decoding"]["dtype"]
    assert run["training"]["cpu_threads"] == {"cpu_threads": 1, "rule": "--cpu-threads"}
    from trainer.settings import cpu_features

    assert run["training"]["cpu"] == cpu_features()  # the record says whether this CPU has bf16 instructions
    timings = run["timings"]
    assert 0 < timings["startup"] <= timings["total"] and timings["grpo"] <= timings["total"]
    assert "bf16 mixed precision, bf16 base weights" in (output / "adapter" / "README.md").read_text()


def test_mean_state_accuracy_counts_steps_at_their_position_and_line():
    from dataset_builder.trace import Step, compare_traces, format_trace

    ref = [Step(1, state=(("x", "1"),)), Step(2, state=(("x", "1"), ("y", "2"))), Step(3, state=(("z", "3"),))]
    text = format_trace(ref)
    assert compare_traces(text, text).state_accuracy == 1.0
    invented = format_trace(ref + [Step(4 + i, state=(("w", str(i)),)) for i in range(6)])
    assert compare_traces(invented, text).state_accuracy == pytest.approx(3 / 9)  # extra steps cost
    wrong_line = format_trace([ref[0], Step(5, state=ref[1].state), ref[2]])
    assert compare_traces(wrong_line, text).state_accuracy == pytest.approx(2 / 3)  # right values, wrong line
    assert compare_traces(format_trace(ref[:2]), text).state_accuracy == pytest.approx(2 / 3)  # missing costs


def test_an_output_dir_holding_another_run_is_refused_unless_resumed_or_overwritten(
    tiny_dataset, model_cache, tmp_path
):
    """As build-dataset refuses an existing output: a second run into the folder of a finished one is one sentence
    naming --resume and --overwrite, and the first run's files stay byte for byte; --overwrite replaces them."""
    output = tmp_path / "run"
    quick = [
        "--dataset",
        tiny_dataset,
        "--model",
        "tiny",
        "--max-steps",
        "1",
        "--no-push",
        "--output-dir",
        output,
        "--eval-limit",
        "1",
        "--eval-max-new-tokens",
        "2",
        "--skip-base-eval",
        "--cpu-threads",
        "1",
    ]
    assert _cli(quick).exit_code == 0
    before = {p: p.read_bytes() for p in output.rglob("*") if p.is_file()}
    again = _cli(quick)
    assert again.exit_code == 1 and len(again.output.strip().splitlines()) == 1
    assert f"--output-dir {output} holds another run (adapter" in again.output
    assert "--resume" in again.output and "--overwrite" in again.output
    assert {p: p.read_bytes() for p in output.rglob("*") if p.is_file()} == before
    both = _cli([*quick, "--resume", "--overwrite"])
    assert both.exit_code == 1 and "give one of them" in both.output
    replaced = _cli([*quick, "--overwrite", "--seed", "1"])
    assert replaced.exit_code == 0, replaced.output
    record = output / "adapter" / "training_run.json"
    assert _record(output)["training"]["global_steps"] >= 1 and record.read_bytes() != before[record]


def test_report_to_trackio_logs_the_loss_and_the_reward_in_its_local_store(tiny_dataset, model_cache, tmp_path):
    """--report-to trackio: each stage is a run of the project in trackio's local SQLite store (TRACKIO_DIR), with
    the SFT loss and the GRPO reward at their steps; a tracker that is not installed is one sentence."""
    import sqlite3

    from trainer.cli import main
    from trainer.settings import REPORTERS, TRACKING_PROJECT

    output = tmp_path / "tracked"
    # the real command in its own process: trackio reads TRACKIO_DIR once, when it is imported
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "train-and-push"),
            "--dataset",
            str(tiny_dataset),
            "--model",
            "tiny",
            "--max-steps",
            "2",
            "--sft-steps",
            "2",
            "--no-push",
            "--output-dir",
            str(output),
            "--eval-limit",
            "1",
            "--eval-max-new-tokens",
            "2",
            "--skip-base-eval",
            "--cpu-threads",
            "1",
            "--max-completion-length",
            "8",
            "--report-to",
            "trackio",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "TRACKIO_DIR": str(tmp_path / "trackio")},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    store = sqlite3.connect(tmp_path / "trackio" / f"{TRACKING_PROJECT}.db")
    logged: dict = {}
    for run, step, metrics in store.execute("select run_name, step, metrics from metrics order by id"):
        for key, value in json.loads(metrics).items():
            logged.setdefault(run, {}).setdefault(key, []).append((step, value))
    training = _record(output)["training"]
    assert [step for step, _ in logged["tracked-sft"]["train/loss"]] == [0, 1]  # trackio counts from 0
    assert len(logged["tracked-grpo"]["train/reward"]) == training["global_steps"] == 2
    last = [h for h in json.loads((output / "adapter" / "training_log.json").read_text()) if "reward" in h][-1]
    assert logged["tracked-grpo"]["train/reward"][-1][1] == pytest.approx(last["reward"])

    choices = next(p for p in main.params if p.name == "report_to").type.choices
    assert tuple(choices) == REPORTERS
    if importlib.util.find_spec("wandb") is None:
        missing = _cli(["--dataset", tiny_dataset, "--model", "tiny", "--no-push", "--report-to", "wandb"])
        assert missing.exit_code == 1 and "--report-to wandb needs the wandb package" in missing.output


def test_a_completion_ended_by_a_stop_string_is_not_counted_as_cut_off():
    """TRL counts a completion without an end-of-sequence token as clipped, which a raw direct answer stopped at
    `[/ANSWER]` on its step's last generated token is: a step whose longest completion is under the limit cut
    nothing off, and the run says so instead of warning about a limit nothing reached."""
    from trainer.learning_signal import cut_off_share, grpo_signal

    stopped = {"reward": 0.0, "completions/clipped_ratio": 1.0, "completions/max_length": 27.0}
    cut = {"reward": 0.0, "completions/clipped_ratio": 0.75, "completions/max_length": 157.0}
    assert cut_off_share(stopped, 157) == 0.0 and cut_off_share(cut, 157) == 0.75
    change = {"tensors": 2, "tensors_changed": 2, "adapter_changed": True, "lora_B_all_zero": False}
    quiet = grpo_signal([stopped, stopped], change, 157)
    assert quiet["signal"]["clipped_ratio_mean"] == 0.0 and not any("cut off" in w for w in quiet["warnings"])
    loud = grpo_signal([cut, cut], change, 157)
    assert loud["signal"]["clipped_ratio_mean"] == 0.75
    assert any("75% of the GRPO completions were cut off at 157 tokens" in w for w in loud["warnings"])
