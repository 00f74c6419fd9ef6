"""`--adapter-scale` (trainer.scaling): a trained adapter's update scaled, in evaluate-traces and in train-and-push,
where several scales are chosen among on function calls held out of training."""

from __future__ import annotations

import hashlib
import json

import pytest
from click.testing import CliRunner

from dataset_builder.trace import Step
from trainer_fixtures import _rows

pytestmark = pytest.mark.training

# functions called with literal arguments, each of its own structure (the skeleton abstracts names and constants)
# but the first, which shares the last one's: holding the last calls out must leave the first out of training too
CALLS = [
    ("def f(y):\n    return str(y) * 3\nresult = f(7)\n", "'777'"),
    ("def f(x):\n    return x + 1\nresult = f(1)\n", "2"),
    ("def f(x):\n    return [x, x]\nresult = f(3)\n", "[3, 3]"),
    ("def f(s):\n    return s.upper()\nresult = f('ab')\n", "'AB'"),
    ("def f(x, y):\n    return x * y - 1\nresult = f(2, 5)\n", "9"),
    ("def f(s):\n    return len(s) > 2\nresult = f('abc')\n", "True"),
    ("def f(d):\n    return sorted(d)\nresult = f({'b': 1, 'a': 2})\n", "['a', 'b']"),
    ("def f(x):\n    return str(x) * 2\nresult = f(4)\n", "'44'"),
]


def _calls_dataset(folder, calls=CALLS):
    from datasets import Dataset, DatasetDict

    items = [(code, [Step(1, state=()), Step(3, state=(("result", value),))]) for code, value in calls]
    DatasetDict(
        {"train": Dataset.from_dict(_rows(items, "call")), "test": Dataset.from_dict(_rows(items[:1], "te"))}
    ).save_to_disk(str(folder))
    return folder


def _weights(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


def _digest(folder) -> str:
    return hashlib.sha256((folder / "adapter_model.safetensors").read_bytes()).hexdigest()


def test_a_scaled_adapter_puts_the_weights_that_share_of_the_way_from_the_base(trained_run, tmp_path):
    """Merged, the adapter at scale s gives base + s x (trained - base) for every weight LoRA changed; the copy keeps
    the adapter's config and files, and a bad scale or a folder without weights is refused in one sentence."""
    import torch
    from peft import PeftModel

    from trainer.models import load_model
    from trainer.scaling import parse_scales, write_scaled

    adapter = trained_run["result"].adapter_dir
    half = write_scaled(adapter, tmp_path / "half", 0.5)
    assert (half / "adapter_config.json").read_text() == (adapter / "adapter_config.json").read_text()
    assert (half / "README.md").is_file()
    trained, scaled = _weights(adapter), _weights(half)
    assert all(torch.equal(scaled[k], trained[k] * (0.5 if ".lora_B." in k else 1)) for k in trained)

    def merged(folder):
        return PeftModel.from_pretrained(load_model("tiny")[1], str(folder)).merge_and_unload().state_dict()

    base, full, at_half = load_model("tiny")[1].state_dict(), merged(adapter), merged(half)
    moved = [k for k in base if not torch.equal(base[k], full[k])]
    assert moved, "the trained run's adapter changes no weight, so scaling it shows nothing"
    for key in moved:
        assert torch.allclose(at_half[key], base[key] + 0.5 * (full[key] - base[key]), atol=1e-6)
    assert parse_scales("1,0.5, 0.25") == (0.25, 0.5, 1.0)
    for wrong in ("0", "-1", "half", "", "0.5,inf"):
        with pytest.raises(ValueError, match="is not a positive number"):
            parse_scales(wrong)
    with pytest.raises(FileNotFoundError, match="no adapter to scale"):
        write_scaled(tmp_path, tmp_path / "x", 0.5)


def test_evaluate_traces_asks_a_scaled_copy_and_says_so(trained_run, tiny_dataset):
    """`evaluate-traces --adapter-scale 0.5`: the results name the scale and go to their own file; the adapter
    folder itself is not changed. One scale only, and only with an adapter."""
    from trainer.cli import evaluate_main

    adapter = trained_run["result"].adapter_dir
    before = _digest(adapter)
    args = ["--dataset", str(tiny_dataset), "--adapter", str(adapter), "--limit", "1", "--max-new-tokens", "8"]
    result = CliRunner().invoke(evaluate_main, [*args, "--no-base", "--adapter-scale", "0.5"])
    assert result.exit_code == 0, result.output
    written = adapter / "evaluations" / "eval_results-test-1-scale0.5.json"
    results = json.loads(written.read_text())
    assert results["adapter_scale"] == 0.5 and results["adapter"] == str(adapter)
    assert list(results["models"]) == ["adapter"] and results["labels"]["adapter"] == "Adapter, update x0.5"
    assert _digest(adapter) == before
    for wrong, message in (("0.5,1", "takes one scale"), ("-2", "is not a positive number")):
        refused = CliRunner().invoke(evaluate_main, [*args, "--adapter-scale", wrong])
        assert refused.exit_code == 2 and message in refused.output
    alone = CliRunner().invoke(evaluate_main, ["--benchmark", "cruxeval", "--model", "tiny", "--adapter-scale", "0.5"])
    assert alone.exit_code == 2 and "give --adapter DIR" in alone.output


def test_train_and_push_chooses_the_scale_on_held_out_calls_and_pushes_that_adapter(model_cache, tmp_path):
    """Several --adapter-scale values: calls held out of training (and every training program sharing one's
    structure) are asked CRUXEval's direct prompt by the base and by the adapter at each scale; the best scale
    (the smallest of equals) is applied to OUTPUT/adapter, whose record and card say so, and the adapter as trained
    stays in OUTPUT/unscaled-adapter."""
    from trainer.cli import main

    data = _calls_dataset(tmp_path / "calls")
    output = tmp_path / "run"
    # an SFT warm start alone: weights that surely moved, in seconds
    run_options = ["--dataset", str(data), "--model", "tiny", "--sft-steps", "2", "--max-steps", "0"]
    run_options += ["--eval-limit", "1", "--eval-max-new-tokens", "8", "--no-push", "--sft-batch-size", "1"]
    result = CliRunner().invoke(
        main,
        [*run_options, "--direct-answers-only", "--direct-answers-format", "raw", "--output-dir", str(output)]
        + ["--adapter-scale", "1,0.5", "--scale-holdout", "2"],
    )
    assert result.exit_code == 0, result.output
    run = json.loads((output / "adapter" / "training_run.json").read_text())
    scale = run["training"]["adapter_scale"]
    chosen = scale["chosen_on"]
    assert chosen["calls"] == 2 and chosen["left_out_of_training"] == 3  # the last 2 calls, and the one like them
    assert run["training"]["train_rows"] == len(CALLS) - 3
    tried = {c["scale"]: c["output_accuracy"] for c in chosen["candidates"]}
    assert sorted(tried) == [0.5, 1.0]
    best = max(tried.values())
    assert scale["scale"] == min(s for s, accuracy in tried.items() if accuracy == best)
    assert chosen["base_output_accuracy"] is not None and "base" not in chosen
    for s in (0.5, 1):
        results = json.loads((output / "adapter-scales" / f"scale-{s:g}.json").read_text())
        assert results["n"] == 2 and "adapter_cruxeval_direct" in results["models"]
        assert results["decoding"]["max_new_tokens"] is None  # no trace asked: only the direct prompt's own budget
        assert results["adapter_prompts"]["adapter_cruxeval_direct"]["max_new_tokens"] == 100
        assert results["models"]["adapter_cruxeval_direct"]["output_accuracy"] == tried[s]
        predictions = (output / "adapter-scales" / f"scale-{s:g}-predictions.jsonl").read_text().splitlines()
        assert len(predictions) == 2 * 2  # its own file: the base's answers and this scale's, 2 calls each
    card = (output / "adapter" / "README.md").read_text()
    assert f"| Adapter scale | {scale['scale']:g}: the trained LoRA update scaled by it" in card
    assert "held out of training" in card
    if scale["scale"] != 1:
        trained, pushed = _weights(output / "unscaled-adapter"), _weights(output / "adapter")
        assert all((pushed[k] == trained[k] * (scale["scale"] if ".lora_B." in k else 1)).all() for k in trained)

    # one scale is applied as given, to any run; several need direct answers to choose on
    given = tmp_path / "given"
    result = CliRunner().invoke(
        main, [*run_options, "--direct-answers-only", "--output-dir", str(given), "--adapter-scale", "0.5"]
    )
    assert result.exit_code == 0, result.output
    run = json.loads((given / "adapter" / "training_run.json").read_text())
    assert run["training"]["adapter_scale"] == {"scale": 0.5, "chosen_on": None, "unscaled_adapter": "unscaled-adapter"}
    trained, pushed = _weights(given / "unscaled-adapter"), _weights(given / "adapter")
    assert any(t.abs().sum() > 0 for k, t in trained.items() if ".lora_B." in k)  # a real update was scaled
    assert all((pushed[k] == trained[k] * (0.5 if ".lora_B." in k else 1)).all() for k in trained)
    assert (
        "| Adapter scale | 0.5: the trained LoRA update scaled by it" in (given / "adapter" / "README.md").read_text()
    )

    # --scale-calls: another dataset's calls, but none with a training program's structure
    other = [("def f(z):\n    return z + 5\nresult = f(2)\n", "7")]  # shaped like a training call: skipped
    other += [
        ("def f(a):\n    return a[::-1]\nresult = f('ab')\n", "'ba'"),
        ("def f(n):\n    return -n\nresult = f(3)\n", "-3"),
    ]
    elsewhere = tmp_path / "elsewhere"
    result = CliRunner().invoke(
        main,
        [*run_options, "--direct-answers-only", "--output-dir", str(elsewhere), "--adapter-scale", "0.5,1"]
        + ["--scale-holdout", "2", "--scale-calls", str(_calls_dataset(tmp_path / "other", other))]
        + ["--skip-base-eval"],
    )
    assert result.exit_code == 0, result.output
    run = json.loads((elsewhere / "adapter" / "training_run.json").read_text())
    chosen = run["training"]["adapter_scale"]["chosen_on"]
    assert chosen["from"] == str(tmp_path / "other") and chosen["calls"] == 2
    assert chosen["base_output_accuracy"] is None and "--skip-base-eval" in chosen["base"]  # says why no base
    assert chosen["skipped_shared_structure"] == 2  # the shaped-alike call, in the train and the test split
    assert run["training"]["train_rows"] == len(CALLS)  # nothing of the training data held out
    assert f"function calls of {tmp_path / 'other'} that share no" in (elsewhere / "adapter" / "README.md").read_text()
    one = CliRunner().invoke(
        main,
        [*run_options, "--output-dir", str(tmp_path / "one"), "--adapter-scale", "0.5"]
        + ["--scale-calls", str(tmp_path / "other")],
    )
    assert one.exit_code == 1 and "--scale-calls goes with several" in one.output
    refused = CliRunner().invoke(main, [*run_options, "--output-dir", str(tmp_path / "no"), "--adapter-scale", "0.5,1"])
    assert refused.exit_code == 1 and "goes with --direct-answers" in refused.output
    only = ["--direct-answers-only"]
    for penalty, direct, says in (
        ("0.5", [], "scores direct answers"),
        ("2", only, "between 0"),
        ("1", only, "no GRPO"),
    ):
        lazy = CliRunner().invoke(
            main, [*run_options, *direct, "--output-dir", str(tmp_path / "lazy"), "--lazy-answer-penalty", penalty]
        )
        assert lazy.exit_code == 1 and says in lazy.output and "Traceback" not in lazy.output
    too_few = CliRunner().invoke(
        main,
        [*run_options, "--direct-answers-only", "--output-dir", str(tmp_path / "few")]
        + ["--adapter-scale", "0.5,1", "--scale-holdout", "5"],
    )
    assert too_few.exit_code == 1 and "at least 10 are needed" in too_few.output
