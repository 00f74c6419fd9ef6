"""Evaluation: metrics from compare_traces, batched greedy generation, base vs adapter, the command."""

from __future__ import annotations

import json
import re

import pytest

from dataset_builder.trace import Step, compare_traces, format_trace
from trainer.evaluate import format_table, summarize
from trainer_fixtures import PROGRAMS

REF = format_trace(PROGRAMS[0][1])


def test_summarize_uses_the_contract_comparison():
    half = format_trace(PROGRAMS[0][1][:1] + [Step(2, state=(("x", "10"), ("y", "0")))] + PROGRAMS[0][1][2:])
    comparisons = [compare_traces(REF, REF), compare_traces(half, REF), compare_traces("junk", REF)]
    metrics = summarize(comparisons, cut_off=[False, False, True])
    assert metrics["n"] == 3
    assert metrics["execution_prediction_accuracy"] == pytest.approx(1 / 3)
    assert metrics["mean_state_accuracy"] == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert metrics["output_accuracy"] == pytest.approx(2 / 3)  # the last state is right in `half`
    assert metrics["format_validity"] == pytest.approx(2 / 3)
    assert metrics["mean_reward"] == pytest.approx(sum(min(max(c.score, 0), 1) for c in comparisons) / 3)
    assert metrics["cut_off"] == pytest.approx(1 / 3)
    assert summarize([])["n"] == 0


def test_table_shows_base_and_adapter_side_by_side():
    results = {
        "models": {
            "base": summarize([compare_traces("x", REF)], [True]),
            "adapter": summarize([compare_traces(REF, REF)], [False]),
        }
    }
    table = format_table(results)
    assert table.splitlines()[0] == "| Metric | Base | Adapter |"
    assert "| Execution Prediction Accuracy | 0.0% | 100.0% |" in table
    assert "| Mean reward | 0.000 | 1.000 |" in table


def test_evaluate_model_scores_what_the_model_wrote(model_cache, monkeypatch):
    """The wiring from generated text to metrics: a model that writes the right trace for one program and junk
    for the other scores 50% everywhere (thinking template: the answer follows </think>)."""
    import trainer.evaluate as evaluate
    from trainer.models import load_model

    tokenizer, model = load_model("tiny")
    rows = [
        {"id": "a", "prompt": [{"role": "user", "content": "a"}], "expected_trace": REF},
        {"id": "b", "prompt": [{"role": "user", "content": "b"}], "expected_trace": REF},
    ]
    monkeypatch.setattr(
        evaluate, "generate", lambda *a, **k: ([f"hmm</think>\n\n{REF}", "still thinking"], [False, True])
    )
    result = evaluate.evaluate_model(model, tokenizer, rows, thinking=True, batch_size=2, max_new_tokens=8)
    assert result.metrics["execution_prediction_accuracy"] == 0.5
    assert result.metrics["mean_reward"] == 0.5
    assert result.metrics["cut_off"] == 0.5
    assert [p["exact"] for p in result.predictions] == [True, False]


def test_a_compact_answer_is_scored_on_its_expanded_states(model_cache, monkeypatch):
    """A model trained on the compact notation is scored against the full reference, exactly as a full trace:
    the compact form of the reference is exact; a wrong changed value is wrong."""
    import trainer.evaluate as evaluate
    from trainer.models import load_model

    tokenizer, model = load_model("tiny")
    steps = PROGRAMS[0][1]
    compact = format_trace(steps, compact=True)
    wrong = compact.replace(f"{steps[-1].state[-1][0]}={steps[-1].state[-1][1]}", f"{steps[-1].state[-1][0]}=12345")
    assert wrong != compact
    rows = [{"id": i, "prompt": [{"role": "user", "content": "p"}], "expected_trace": REF} for i in "ab"]
    monkeypatch.setattr(evaluate, "generate", lambda *a, **k: ([compact, wrong], [False, False]))
    result = evaluate.evaluate_model(model, tokenizer, rows, thinking=False, batch_size=2, max_new_tokens=8)
    assert [p["exact"] for p in result.predictions] == [True, False]
    assert result.predictions[1]["state_accuracy"] == pytest.approx((len(steps) - 1) / len(steps))


def test_greedy_generation_is_batched_and_deterministic(model_cache):
    from dataset_builder.trace import make_prompt
    from trainer.evaluate import generate
    from trainer.models import load_model

    tokenizer, model = load_model("tiny")
    prompts = [make_prompt(code) for code, _ in PROGRAMS[:3]]
    first, cut = generate(model, tokenizer, prompts, batch_size=2, max_new_tokens=6)
    again, _ = generate(model, tokenizer, prompts, batch_size=2, max_new_tokens=6)
    assert first == again and len(first) == 3 and all(isinstance(c, bool) for c in cut)
    single, _ = generate(model, tokenizer, prompts[:1], batch_size=1, max_new_tokens=6)
    assert single[0] == first[0]


def test_training_run_evaluated_base_and_adapter(trained_run):
    results = json.loads((trained_run["result"].adapter_dir / "eval_results.json").read_text())
    assert set(results["models"]) == {"base", "adapter"}
    # tiny thinks (its template opens <think>): sampled as Qwen recommends for thinking models, from a fixed seed
    assert results["decoding"]["greedy"] is False and results["split"] == "test"
    assert results["decoding"]["sampling"] == {"temperature": 0.6, "top_p": 0.95, "top_k": 20, "min_p": 0.0}
    assert results["decoding"]["seed"] == 0 and results["thinking"]["enabled"] is True
    run = json.loads((trained_run["result"].adapter_dir / "training_run.json").read_text())
    assert results["decoding"]["dtype"] == run["training"]["weights_dtype"] == "float32"  # evaluated = trained
    for metrics in results["models"].values():
        assert metrics["n"] == 2
        for key in (
            "execution_prediction_accuracy",
            "mean_state_accuracy",
            "output_accuracy",
            "format_validity",
            "mean_reward",
            "cut_off",
        ):
            assert 0.0 <= metrics[key] <= 1.0
    lines = (trained_run["result"].adapter_dir / "eval_predictions.jsonl").read_text().splitlines()
    assert len(lines) == 4 and {json.loads(line)["model"] for line in lines} == {"base", "adapter"}


def test_evaluate_command_on_the_whole_split(trained_run, tiny_dataset, tmp_path):
    from click.testing import CliRunner

    from trainer.cli import evaluate_main

    output = tmp_path / "results.json"
    result = CliRunner().invoke(
        evaluate_main,
        [
            "--dataset",
            str(tiny_dataset),
            "--adapter",
            str(trained_run["result"].adapter_dir),
            "--max-new-tokens",
            "6",
            "--batch-size",
            "3",
            "--output",
            str(output),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "| Execution Prediction Accuracy |" in result.output
    results = json.loads(output.read_text())
    assert results["n"] == 3  # the whole test split
    assert results["base_model"] == "tiny"
    # the adapter's own thinking policy and dtype, as in training: sampled (tiny thinks), unless --greedy
    assert results["thinking"]["enabled"] and results["decoding"]["greedy"] is False
    assert results["decoding"]["dtype"] == "float32"
    # progress after each batch of 2: done of all, the rate and the time left, then done
    progress = CliRunner().invoke(
        evaluate_main,
        [
            "--dataset",
            str(tiny_dataset),
            "--adapter",
            str(trained_run["result"].adapter_dir),
            "--max-new-tokens",
            "4",
            "--batch-size",
            "2",
            "--no-base",
            "--output",
            str(tmp_path / "progress.json"),
        ],
    )
    lines = [line for line in progress.output.splitlines() if line.startswith("  adapter: ")]
    assert re.fullmatch(r"  adapter: 2/3 programs, \d+\.\d\d programs/s, \d+ tokens/s, about \d+ s left", lines[0]), (
        lines
    )
    assert lines[1] == "  adapter: 3/3 programs"
    greedy = CliRunner().invoke(
        evaluate_main,
        [
            "--dataset",
            str(tiny_dataset),
            "--adapter",
            str(trained_run["result"].adapter_dir),
            "--max-new-tokens",
            "4",
            "--limit",
            "1",
            "--no-base",
            "--greedy",
            "--output",
            str(tmp_path / "greedy.json"),
        ],
    )
    assert greedy.exit_code == 0, greedy.output
    assert json.loads((tmp_path / "greedy.json").read_text())["decoding"]["greedy"] is True


def test_evaluate_command_mistakes(tmp_path, tiny_dataset):
    from click.testing import CliRunner

    from trainer.cli import evaluate_main

    result = CliRunner().invoke(evaluate_main, ["--dataset", str(tiny_dataset), "--adapter", str(tmp_path)])
    assert result.exit_code == 1 and "not an adapter folder" in result.output
    assert "Traceback" not in result.output


def test_minimal_style_prompts_the_base_with_full_instructions_and_the_adapter_as_trained(
    trained_run, tiny_dataset, monkeypatch, tmp_path
):
    """The base model has not learned the minimal prompt's format: it is asked with the compact prompt (the
    row's `base_prompt`), every adapter with the minimal one, and the results name both prompts."""
    from datasets import load_from_disk

    import trainer.evaluate as evaluate
    from trainer.prompts import MINIMAL_INSTRUCTIONS, apply_prompt_style

    rows = list(apply_prompt_style(load_from_disk(str(tiny_dataset))["test"].select(range(2)), "minimal"))
    asked = []

    def fake_generate(model, tokenizer, prompts, **kwargs):
        asked.append([p[0]["content"] for p in prompts])
        return ["junk"] * len(prompts), [False] * len(prompts)

    monkeypatch.setattr(evaluate, "generate", fake_generate)
    results = evaluate.evaluate_adapter(
        "tiny",
        trained_run["result"].adapter_dir,
        rows,
        max_new_tokens=4,
        greedy=True,
        use_cache=False,
        output=tmp_path / "r.json",
        prompt_style="minimal",
        backend="transformers",
    )
    base_asked, adapter_asked = asked
    assert base_asked == [r["base_prompt"][0]["content"] for r in rows]
    assert adapter_asked == [r["prompt"][0]["content"] for r in rows]
    assert all(p.startswith(MINIMAL_INSTRUCTIONS) for p in adapter_asked)
    assert not any(p.startswith(MINIMAL_INSTRUCTIONS) for p in base_asked)
    assert results["prompts"] == {"base": "compact", "adapter": "minimal"}
