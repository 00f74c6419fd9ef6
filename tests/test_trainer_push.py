"""`train-and-push` end to end against the local Hub server: a dataset built by the real `build-dataset`, the
`tiny` model, 2 GRPO steps, the push, and the repo downloaded back and loaded. Then a failed push, kept adapter,
and the push alone retried."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from trainer_fixtures import PROGRAMS

ROOT = Path(__file__).resolve().parent.parent
EXTRA_PROGRAMS = [
    "total = 0\nfor i in range(3):\n    total += i\n",
    "x = 5\nif x > 3:\n    y = 'big'\nelse:\n    y = 'small'\n",
    "w = 'abc'\nu = w.upper()\nv = u[::-1]\n",
    "p = (1, 2)\nq, r = p\ns = q + r\n",
    "k = [3, 1, 2]\nk.sort()\nm = k[0]\n",
]


def _script(name: str) -> list[str]:
    path = Path(sys.executable).parent / name
    if path.exists():
        return [str(path)]
    module = {"build-dataset": "dataset_builder.cli", "train-and-push": "trainer.cli"}[name]
    return [sys.executable, "-c", f"import sys; from {module} import main; sys.exit(main())"]


@pytest.fixture(scope="module")
def built_dataset(tmp_path_factory):
    """A dataset made by the real builder CLI (`--programs`: it does not depend on the template generator)."""
    folder = tmp_path_factory.mktemp("built")
    programs = folder / "programs.jsonl"
    codes = [code for code, _ in PROGRAMS] + EXTRA_PROGRAMS
    programs.write_text("".join(json.dumps({"id": f"p{i}", "code": c}) + "\n" for i, c in enumerate(codes)))
    out = subprocess.run(
        _script("build-dataset")
        + [
            "--programs",
            str(programs),
            "--test-size",
            "3",
            "--output",
            str(folder / "data"),
            "--quiet",
            "--workers",
            "2",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return folder / "data"


def test_train_and_push_tiny_against_the_test_hub(hub_server, built_dataset, model_cache, tmp_path):
    import torch
    from huggingface_hub import snapshot_download
    from peft import PeftModel

    from trainer.models import load_model

    token = hub_server.add_user("user")
    env = {**os.environ, **hub_server.env(token, hub_server.hf_home), "EWM_CACHE": str(model_cache)}
    output = tmp_path / "run"
    command = _script("train-and-push") + [
        "--dataset",
        str(built_dataset),
        "--model",
        "tiny",
        "--max-steps",
        "2",
        "--repo-id",
        "user/name",
        "--output-dir",
        str(output),
    ]
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "step 2/2" in done.stdout and "reward" in done.stdout
    assert "Pushed: " in done.stdout

    files = set(hub_server.files("user/name", "model"))
    assert {
        "adapter_model.safetensors",
        "adapter_config.json",
        "README.md",
        "reward_curve.png",
        "eval_results.json",
        "training_run.json",
    } <= files

    local = Path(snapshot_download("user/name", token=token, cache_dir=str(tmp_path / "dl")))
    config = json.loads((local / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "tiny"
    results = json.loads((local / "eval_results.json").read_text())
    assert results["n"] == 3  # the whole test split of the built dataset
    card = (local / "README.md").read_text()
    assert "| Metric | Base | Adapter |" in card and str(built_dataset) not in card
    # no local path in anything published: the records name local folders by their names only
    for name in ("training_run.json", "eval_results.json", "README.md"):
        text = (local / name).read_text()
        assert str(tmp_path) not in text and str(built_dataset) not in text, name
    assert json.loads((local / "training_run.json").read_text())["dataset"]["source"] == built_dataset.name
    adapter = results["models"]["adapter"]
    assert (
        f"| Mean State Accuracy | {100 * results['models']['base']['mean_state_accuracy']:.1f}% | "
        f"{100 * adapter['mean_state_accuracy']:.1f}% |" in card
    )
    assert "ADAPTER = 'user/name'" in card and "![Reward over training steps](reward_curve.png)" in card

    tokenizer, base = load_model(config["base_model_name_or_path"])
    downloaded = PeftModel.from_pretrained(base, str(local)).eval()
    _, base2 = load_model("tiny")
    on_disk = PeftModel.from_pretrained(base2, str(output / "adapter")).eval()
    inputs = tokenizer(["Line 1: State: {x=10}"], return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(downloaded(**inputs).logits, on_disk(**inputs).logits)


def test_failed_push_keeps_the_adapter_and_the_push_alone_can_be_retried(
    hub_server, tiny_dataset, model_cache, tmp_path, monkeypatch
):
    from click.testing import CliRunner

    from trainer.cli import main

    token = hub_server.add_user("user")
    monkeypatch.setenv("HF_TOKEN", token)
    output = tmp_path / "run"
    hub_server.stop()
    result = CliRunner().invoke(
        main,
        [
            "--dataset",
            str(tiny_dataset),
            "--model",
            "tiny",
            "--max-steps",
            "1",
            "--max-completion-length",
            "16",
            "--eval-limit",
            "1",
            "--repo-id",
            "user/name",
            "--output-dir",
            str(output),
        ],
    )
    assert result.exit_code == 1, result.output
    assert "The push to user/name failed" in result.output and "Traceback" not in result.output
    assert f"train-and-push --push-only --output-dir {output} --repo-id user/name" in result.output
    assert (output / "adapter" / "adapter_model.safetensors").is_file()

    hub_server.start()
    retry = CliRunner().invoke(main, ["--push-only", "--output-dir", str(output), "--repo-id", "user/name"])
    assert retry.exit_code == 0, retry.output
    assert "adapter_model.safetensors" in hub_server.files("user/name", "model")
    # pushing the same run under another name re-renders the card for that name
    retry = CliRunner().invoke(main, ["--push-only", "--output-dir", str(output), "--repo-id", "user/other"])
    assert retry.exit_code == 0, retry.output
    card = (output / "adapter" / "README.md").read_text()
    assert "ADAPTER = 'user/other'" in card
    # no local path in the card: a dataset read from a folder is named by the folder's name only
    assert str(tiny_dataset) not in card and f"| Dataset | `{tiny_dataset.name}` (a local folder) (" in card

    # naming the dataset's Hub copy afterwards renders the card (and the run record) again, pushed in one commit
    push_again = ["--push-only", "--output-dir", str(output), "--repo-id", "user/other", "--dataset-id", "user/traces"]
    retry = CliRunner().invoke(main, push_again)
    assert retry.exit_code == 0, retry.output
    card = hub_server.read("user/other", "README.md", "model").decode()
    assert "| Dataset | `user/traces` (" in card and "datasets:\n- user/traces\n" in card
    assert json.loads(hub_server.read("user/other", "training_run.json", "model"))["dataset"]["hub_id"] == "user/traces"
    assert len(hub_server.commits("user/other", "model")) == 3  # created, first push, this push
    wrong = CliRunner().invoke(main, push_again[:-1] + ["no-namespace"])
    assert wrong.exit_code == 1 and "is not a Hub dataset id" in wrong.output and "Traceback" not in wrong.output
