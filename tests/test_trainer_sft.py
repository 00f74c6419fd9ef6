"""The SFT warm start, the curriculum and the prompt styles, on CPU with the `tiny` model: a real SFT run whose
adapter GRPO then continues (the same adapter), evaluated base / SFT only / SFT + GRPO side by side."""

from __future__ import annotations

import json

import pytest
import yaml

from dataset_builder.trace import TRACE_CLOSE, Step, format_trace, make_prompt
from trainer_fixtures import CaptureModel, shaped_reward_class, trainer_messages

# --- the curriculum (no model) -----------------------------------------------------------------------------------


def _split(step_counts, with_num_steps=True):
    from datasets import Dataset

    rows = {"id": [], "code": [], "steps": [], "prompt": [], "expected_trace": []}
    for i, n in enumerate(step_counts):
        steps = [Step(k + 1, state=(("x", str(k)),)) for k in range(n)]
        code = "\n".join(f"x = {k}" for k in range(n)) + "\n"
        rows["id"].append(f"p{i}")
        rows["code"].append(code)
        rows["steps"].append([s.to_row() for s in steps])
        rows["prompt"].append(make_prompt(code))
        rows["expected_trace"].append(format_trace(steps))
    if with_num_steps:
        rows["num_steps"] = list(step_counts)
    return Dataset.from_dict(rows)


def test_short_first_orders_by_trace_length_and_keeps_ties_in_order():
    from trainer.data import training_rows

    rows, described = training_rows(_split([5, 2, 9, 2, 1]), curriculum="short-first")
    assert list(rows["id"]) == ["p4", "p1", "p3", "p0", "p2"]
    assert "5 of 5 programs" in described and "1-9 steps" in described and "shortest traces first" in described
    unchanged, _ = training_rows(_split([5, 2, 9]), curriculum="none")
    assert list(unchanged["id"]) == ["p0", "p1", "p2"]


def test_max_trace_steps_filters_then_limit_then_order():
    from trainer.data import DataError, training_rows

    rows, described = training_rows(_split([5, 2, 9, 3, 1, 4]), max_trace_steps=4, limit=3, curriculum="short-first")
    assert list(rows["id"]) == ["p4", "p1", "p3"]  # the first 3 with <= 4 steps (p1, p3, p4), shortest first
    assert "3 of 6 programs (traces of at most 4 steps)" in described
    with pytest.raises(DataError, match="at most 0 steps"):
        training_rows(_split([2, 3]), max_trace_steps=0)
    with pytest.raises(DataError, match="unknown curriculum"):
        training_rows(_split([2]), curriculum="longest-first")


def test_trace_length_without_a_num_steps_column():
    from trainer.data import trace_length, trace_lengths

    split = _split([3, 1], with_num_steps=False)
    assert trace_lengths(split) == [3, 1]
    assert trace_lengths(split.remove_columns("steps")) == [3, 1]  # parsed from expected_trace
    assert trace_length({"expected_trace": split[0]["expected_trace"]}) == 3


# --- settings ----------------------------------------------------------------------------------------------------


def _settings(**kw):
    from trainer.settings import TrainSettings

    return TrainSettings(dataset="d", push=False, **kw)


@pytest.mark.training
def test_curriculum_turns_shuffling_off_in_both_trainers(tmp_path):
    from trl import SFTConfig

    from trainer.grpo import grpo_config_kwargs
    from trainer.sft import sft_config_kwargs

    assert grpo_config_kwargs(_settings(), tmp_path, gpu=False)["shuffle_dataset"] is True
    assert grpo_config_kwargs(_settings(curriculum="short-first"), tmp_path, gpu=False)["shuffle_dataset"] is False
    kwargs = sft_config_kwargs(_settings(curriculum="short-first", sft_epochs=1, sft_batch_size=8), tmp_path, gpu=False)
    assert kwargs["train_sampling_strategy"] == "sequential"
    # CPU: batch 1 (no padding), gradient accumulation to the requested programs per step; no bf16 autocast
    assert (kwargs["per_device_train_batch_size"], kwargs["gradient_accumulation_steps"]) == (1, 8)
    config = SFTConfig(**kwargs)
    assert config.completion_only_loss and not config.bf16 and config.num_train_epochs == 1
    gpu = sft_config_kwargs(_settings(sft_steps=5, sft_batch_size=16), tmp_path, gpu=True)
    assert gpu["bf16"] and gpu["max_steps"] == 5
    assert gpu["per_device_train_batch_size"] * gpu["gradient_accumulation_steps"] == 16
    assert sft_config_kwargs(_settings(sft_epochs=1), tmp_path, gpu=False)["train_sampling_strategy"] == "random"


@pytest.mark.training
def test_sft_is_off_by_default_and_max_steps_zero_needs_it():
    from trainer.prepare import prepare
    from trainer.settings import TrainError

    settings = _settings()
    assert not settings.does_sft and settings.does_grpo
    with pytest.raises(TrainError, match="trains nothing"):
        prepare(_settings(max_steps=0, model="tiny"))


def test_tiny_chat_template_renders_the_prompt_as_a_prefix_of_prompt_plus_answer(model_cache):
    """SFT on a thinking template: the generation prompt (ending in `<think>\\n`) must start the rendered
    conversation, as with Qwen3-Thinking, so the completion is exactly the assistant's turn."""
    from trainer.models import load_model

    tokenizer, _ = load_model("tiny")
    prompt = [{"role": "user", "content": "hi"}]
    head = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(
        prompt + [{"role": "assistant", "content": "<execution_trace>"}], tokenize=False
    )
    assert full.startswith(head) and full.endswith("</think>\n\n<execution_trace><|im_end|>\n")


def test_short_prompt_style_rebuilds_prompts_from_code():
    from trainer.prompts import SHORT_INSTRUCTIONS, apply_prompt_style, instructions_for, make_short_prompt

    split = _split([2])
    assert apply_prompt_style(split, "dataset") is split
    short = apply_prompt_style(split, "short")
    assert short[0]["prompt"] == make_short_prompt(split[0]["code"])
    assert short[0]["prompt"][0]["content"].startswith(SHORT_INSTRUCTIONS)
    assert "1 | x = 0" in short[0]["prompt"][0]["content"]
    assert len(SHORT_INSTRUCTIONS) < len(instructions_for("dataset")) / 2
    with pytest.raises(ValueError, match="unknown prompt style"):
        apply_prompt_style(split, "long")


def test_compact_prompt_style_asks_for_and_trains_on_the_compact_trace():
    """`compact`: the prompt asks for changed variables only, the SFT target is the compact form of the reference,
    and that target scores exactly against the full reference (what every metric compares with)."""
    from dataset_builder.trace import compare_traces
    from trainer.prompts import COMPACT_INSTRUCTIONS, TARGET_COLUMN, apply_prompt_style, target_traces
    from trainer.sft import sft_rows

    split = _split([3, 1])
    compact = apply_prompt_style(split, "compact")
    assert compact[0]["prompt"][0]["content"].startswith(COMPACT_INSTRUCTIONS)
    assert compact[0]["expected_trace"] == split[0]["expected_trace"]  # the full reference stays the reference
    target = compact[0][TARGET_COLUMN]
    assert target.splitlines()[1:-1] == ["Line 1: {x=0}", "Line 2: {x=1}", "Line 3: {x=2}"]
    assert compare_traces(target, compact[0]["expected_trace"]).exact
    assert target_traces(compact) == list(compact[TARGET_COLUMN]) and target_traces(split) == list(
        split["expected_trace"]
    )
    assert sft_rows(compact)[0]["completion"] == [{"role": "assistant", "content": target}]
    assert sft_rows(split)[0]["completion"][0]["content"] == split[0]["expected_trace"]


def test_minimal_prompt_style_is_compact_under_a_few_words_and_keeps_the_full_prompt_for_the_base():
    """`minimal`: the same compact target under a few words of instructions (the format is learned in SFT); the
    base model, which has not learned it, keeps the compact prompt with the full instructions (`base_prompt`)."""
    from trainer.prompts import (
        BASE_PROMPT_COLUMN,
        COMPACT_INSTRUCTIONS,
        MINIMAL_INSTRUCTIONS,
        TARGET_COLUMN,
        apply_prompt_style,
        prompt_for,
    )

    split = _split([3, 1])
    minimal, compact = apply_prompt_style(split, "minimal"), apply_prompt_style(split, "compact")
    content = minimal[0]["prompt"][0]["content"]
    assert content.startswith(MINIMAL_INSTRUCTIONS) and "1 | x = 0" in content
    assert len(MINIMAL_INSTRUCTIONS) * 10 < len(COMPACT_INSTRUCTIONS)
    assert minimal[TARGET_COLUMN] == compact[TARGET_COLUMN]
    assert minimal[BASE_PROMPT_COLUMN] == compact["prompt"] == [prompt_for("compact", c) for c in split["code"]]
    assert BASE_PROMPT_COLUMN not in compact.column_names  # every other style prompts base and adapter alike
    again = apply_prompt_style(minimal, "compact")  # restyling drops the columns of the previous style
    assert BASE_PROMPT_COLUMN not in again.column_names and again["prompt"] == compact["prompt"]


def test_minimal_prompt_style_without_sft_is_refused_in_one_sentence(tmp_path):
    from trainer.prepare import prepare
    from trainer.settings import TrainError, TrainSettings

    settings = TrainSettings(
        dataset=str(tmp_path),
        model="tiny",
        push=False,
        output_dir=str(tmp_path / "out"),
        prompt_style="minimal",
        max_steps=2,
    )
    with pytest.raises(TrainError, match=r"^--prompt-style minimal needs an SFT warm start .*compact without one\.$"):
        prepare(settings)


# --- evaluation helpers --------------------------------------------------------------------------------------------


def test_auto_token_budget_is_the_longest_reference_plus_a_margin(model_cache):
    from trainer.evaluate import auto_max_new_tokens
    from trainer.models import load_model
    from trainer.thinking import MARGIN as AUTO_MARGIN

    tokenizer, _ = load_model("tiny")
    rows = [{"expected_trace": format_trace([Step(1, state=(("x", "1"),))] * n)} for n in (1, 4, 2)]
    longest = len(tokenizer(rows[1]["expected_trace"], add_special_tokens=False).input_ids)
    assert auto_max_new_tokens(tokenizer, rows) == longest + AUTO_MARGIN
    # a model asked for the compact notation gets the budget of its (shorter) target
    target = format_trace([Step(1, state=(("x", "1"),))] * 4, compact=True)
    compact = [dict(row, target_trace=target) for row in rows]
    shorter = len(tokenizer(target, add_special_tokens=False).input_ids)
    assert shorter < longest and auto_max_new_tokens(tokenizer, compact) == shorter + AUTO_MARGIN


def test_models_answering_directly_stop_at_the_end_of_their_trace(model_cache, monkeypatch):
    import trainer.evaluate as evaluate
    from trainer.models import load_model

    tokenizer, model = load_model("tiny")
    seen = []

    def fake_generate(*args, **kwargs):
        seen.append(kwargs["stop_at"])
        return ["x"], [False]

    monkeypatch.setattr(evaluate, "generate", fake_generate)
    rows = [{"prompt": [{"role": "user", "content": "a"}], "expected_trace": "<execution_trace>\n</execution_trace>"}]
    evaluate.evaluate_model(model, tokenizer, rows, thinking=False, batch_size=1, max_new_tokens=4)
    evaluate.evaluate_model(model, tokenizer, rows, thinking=True, batch_size=1, max_new_tokens=4)
    assert seen == [TRACE_CLOSE, None]  # a thinking model may draft a trace while it thinks: no early stop


def test_generation_can_stop_at_the_trace_end(model_cache):
    """The stop string path of `generate` runs (the random tiny model never writes the tag, so it only has to
    behave like the plain path)."""
    from trainer.evaluate import generate
    from trainer.models import load_model

    tokenizer, model = load_model("tiny")
    prompts = [make_prompt("x = 1\n"), make_prompt("y = 2\nz = 3\n")]
    plain, _ = generate(model, tokenizer, prompts, batch_size=2, max_new_tokens=5)
    stopping, cut = generate(model, tokenizer, prompts, batch_size=2, max_new_tokens=5, stop_at=TRACE_CLOSE)
    assert stopping == plain and len(cut) == 2


def test_table_with_three_models_uses_their_labels():
    from dataset_builder.trace import compare_traces
    from trainer.evaluate import format_table, summarize

    ref = format_trace([Step(1, state=(("x", "1"),))])
    results = {
        "labels": {"base": "Base", "sft": "SFT only", "adapter": "SFT + GRPO"},
        "models": {
            "adapter": summarize([compare_traces(ref, ref)]),
            "base": summarize([compare_traces("x", ref)]),
            "sft": summarize([compare_traces(ref, ref)]),
        },
    }
    table = format_table(results)
    assert table.splitlines()[0] == "| Metric | Base | SFT only | SFT + GRPO |"
    assert "| Execution Prediction Accuracy | 0.0% | 100.0% | 100.0% |" in table


# --- a real SFT warm start, continued by GRPO in the same adapter ---------------------------------------------------


@pytest.fixture(scope="module")
def sft_run(tmp_path_factory, tiny_dataset, model_cache):
    import trainer.rewards
    from trainer.run import run
    from trainer.settings import TrainSettings

    output = tmp_path_factory.mktemp("sft") / "out"
    capture = CaptureModel()
    settings = TrainSettings(
        dataset=str(tiny_dataset),
        model="tiny",
        output_dir=str(output),
        push=False,
        sft_steps=4,
        sft_batch_size=2,
        sft_learning_rate=1e-2,
        curriculum="short-first",
        max_steps=1,
        learning_rate=1e-12,
        max_completion_length=12,
        eval_limit=2,
        eval_max_new_tokens=8,
        prompt_style="short",
    )
    with pytest.MonkeyPatch.context() as patch, trainer_messages() as lines:
        patch.setattr(trainer.rewards, "ExecutionReward", shaped_reward_class())
        result = run(settings, callbacks=[capture])
    return {"result": result, "log": lines, "output": output, "model": capture.model}


def _lora(folder, part="lora_B"):
    from safetensors.torch import load_file

    weights = load_file(str(folder / "adapter_model.safetensors"))
    return {k: v for k, v in weights.items() if part in k}


def test_sft_learns_and_saves_its_adapter(sft_run):
    sft_dir = sft_run["output"] / "sft" / "adapter"
    summary = json.loads((sft_dir / "sft_run.json").read_text())
    assert summary["steps"] == 4 and summary["rows"] == 4
    assert summary["last_loss"] < summary["first_loss"]  # it learns (on 4 programs, at a high rate)
    assert summary["completion_tokens"] and summary["completion_tokens"] < summary["tokens"]  # loss on the trace only
    config = json.loads((sft_dir / "adapter_config.json").read_text())
    assert (config["r"], config["lora_alpha"], config["base_model_name_or_path"]) == (64, 128, "tiny")
    assert any(v.abs().sum() > 0 for v in _lora(sft_dir).values())
    # the run itself checked that the warm start moved the adapter, and says so in its record
    assert summary["learning_signal"]["adapter_changed"] and not summary["learning_signal"]["lora_B_all_zero"]
    run = json.loads((sft_run["result"].adapter_dir / "training_run.json").read_text())
    assert run["training"]["sft"]["learning_signal"]["no_signal"] is False and run["no_signal"] is False
    assert not any("SFT" in w for w in run["warnings"])
    # GRPO at a learning rate of 1e-12, its completions all cut off and masked: truthfully reported as a no-op
    assert any(w.startswith("GRPO did not change the adapter") for w in run["warnings"])
    printed = [line for line in sft_run["log"] if line.startswith("sft step ")]
    assert len(printed) == 4 and all("loss " in line and "token accuracy" in line for line in printed)
    assert any("shortest traces first" in line for line in sft_run["log"])


def test_grpo_continues_the_sft_adapter(sft_run):
    """GRPO (one step at a negligible learning rate) starts from the SFT weights: a fresh LoRA would have
    lora_B = 0. Same rank, alpha and targets: one adapter."""
    import torch

    sft_dir = sft_run["output"] / "sft" / "adapter"
    final = sft_run["result"].adapter_dir
    sft_b, final_b = _lora(sft_dir), _lora(final)
    assert sft_b.keys() == final_b.keys()
    assert all(torch.allclose(sft_b[k], final_b[k], atol=1e-6) for k in sft_b)
    # peft keeps the targets as a set: their order in the saved JSON follows the process's hash seed.
    assert set(json.loads((sft_dir / "adapter_config.json").read_text())["target_modules"]) == set(
        json.loads((final / "adapter_config.json").read_text())["target_modules"]
    )
    assert any(line.startswith("GRPO continues the SFT adapter") for line in sft_run["log"])
    assert [line.split()[1] for line in sft_run["log"] if line.startswith("step ")] == ["1/1"]


def test_run_evaluates_base_sft_and_adapter_and_records_the_stages(sft_run):
    adapter = sft_run["result"].adapter_dir
    results = json.loads((adapter / "eval_results.json").read_text())
    assert list(results["models"]) == ["base", "sft", "adapter"]
    assert results["labels"] == {"base": "Base", "sft": "SFT only", "adapter": "SFT + GRPO"}
    run = json.loads((adapter / "training_run.json").read_text())
    assert run["training"]["prompt_style"] == "short"
    assert run["training"]["curriculum"]["order"] == "short-first"
    assert run["training"]["sft"]["steps"] == 4 and "log_history" not in run["training"]["sft"]
    assert set(run["timings"]) >= {"sft", "grpo", "evaluate_base", "evaluate_sft", "evaluate_adapter"}
    card = (adapter / "README.md").read_text()
    meta = yaml.safe_load(card.split("---\n")[1])
    assert "sft" in meta["tags"] and "grpo" in meta["tags"]
    assert "| Metric | Base | SFT only | SFT + GRPO |" in card
    assert "SFT warm start (TRL `SFTTrainer`), then GRPO" in card and "| SFT steps | 4 " in card
    assert "Trace this Python program" in card  # the usage snippet prompts the way it was trained (short)
    predictions = (adapter / "eval_predictions.jsonl").read_text().splitlines()
    assert sorted({json.loads(p)["model"] for p in predictions}) == ["adapter", "base", "sft"]


def test_compact_run_records_its_style_and_the_card_explains_it(tmp_path, tiny_dataset, model_cache):
    from trainer.run import run
    from trainer.settings import TrainSettings

    settings = TrainSettings(
        dataset=str(tiny_dataset),
        model="tiny",
        output_dir=str(tmp_path / "out"),
        push=False,
        sft_steps=1,
        sft_batch_size=1,
        max_steps=0,
        eval_limit=1,
        eval_max_new_tokens=4,
        prompt_style="compact",
    )
    result = run(settings)
    run_info = json.loads((result.adapter_dir / "training_run.json").read_text())
    assert run_info["training"]["prompt_style"] == "compact"
    card = (result.adapter_dir / "README.md").read_text()
    assert "only the variables each line changed" in card and "changed since the previous step" in card
    assert "parse_trace(text).steps" in card  # the usage snippet says how to get full states back


def test_sft_only_run_with_max_steps_zero(tmp_path, tiny_dataset, model_cache):
    from trainer.run import run
    from trainer.settings import TrainSettings

    settings = TrainSettings(
        dataset=str(tiny_dataset),
        model="tiny",
        output_dir=str(tmp_path / "out"),
        push=False,
        sft_steps=1,
        sft_batch_size=1,
        max_steps=0,
        eval_limit=1,
        eval_max_new_tokens=4,
    )
    with trainer_messages() as lines:
        result = run(settings)
    assert not any(line.startswith("step ") for line in lines)  # no GRPO
    results = json.loads((result.adapter_dir / "eval_results.json").read_text())
    assert list(results["models"]) == ["base", "adapter"] and results["labels"]["adapter"] == "SFT only"
    run_info = json.loads((result.adapter_dir / "training_run.json").read_text())
    assert run_info["training"]["grpo"] is None and run_info["plot"] is None
    assert "no GRPO" in (result.adapter_dir / "README.md").read_text()
    assert (result.adapter_dir / "adapter_model.safetensors").is_file()


def test_lora_layers_trains_the_last_layers_only(tmp_path, tiny_dataset, model_cache):
    """--lora-layers 1 on the 2-layer tiny model: the adapter holds LoRA weights of layer 1 only, and the record
    and the card say which layers."""
    from safetensors.torch import load_file

    from trainer.run import run
    from trainer.settings import TrainSettings

    settings = TrainSettings(
        dataset=str(tiny_dataset),
        model="tiny",
        output_dir=str(tmp_path / "out"),
        push=False,
        sft_steps=2,
        sft_batch_size=1,
        max_steps=0,
        lora_layers=1,
        eval_limit=1,
        eval_max_new_tokens=4,
    )
    with trainer_messages():
        result = run(settings)
    weights = load_file(str(result.adapter_dir / "adapter_model.safetensors"))
    assert weights and all(".layers.1." in name for name in weights)
    assert any(name.endswith("lora_B.weight") and tensor.abs().sum() > 0 for name, tensor in weights.items())
    training = json.loads((result.adapter_dir / "training_run.json").read_text())["training"]
    assert training["sft"]["lora"]["layers"] == [1]
    assert "of layers 1-1 only" in (result.adapter_dir / "README.md").read_text()


def test_cli_takes_the_warm_start_options(tiny_dataset, model_cache, tmp_path):
    from click.testing import CliRunner

    from trainer.cli import main

    result = CliRunner().invoke(
        main,
        [
            "--dataset",
            str(tiny_dataset),
            "--model",
            "tiny",
            "--no-push",
            "--output-dir",
            str(tmp_path / "o"),
            "--sft-steps",
            "1",
            "--sft-batch-size",
            "1",
            "--max-steps",
            "0",
            "--curriculum",
            "short-first",
            "--max-trace-steps",
            "3",
            "--prompt-style",
            "short",
            "--eval-limit",
            "1",
            "--eval-max-new-tokens",
            "2",
            "--skip-base-eval",
        ],
    )
    assert result.exit_code == 0, result.output
    run_info = json.loads((tmp_path / "o" / "adapter" / "training_run.json").read_text())
    assert run_info["training"]["curriculum"]["max_trace_steps"] == 3
    assert run_info["training"]["train_rows"] == 4  # the tiny dataset's traces have 2-3 steps
    bad = CliRunner().invoke(main, ["--dataset", str(tiny_dataset), "--model", "tiny", "--no-push", "--max-steps", "0"])
    assert bad.exit_code == 1 and "trains nothing" in bad.output
