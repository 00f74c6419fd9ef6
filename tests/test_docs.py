"""The figures the README quotes come from one place: the results files and the constants the code names.

A figure that drifts (a benchmark rerun, a changed default) fails here instead of being read by a user."""

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?(?:%| s\b)?")


def _section(title: str) -> str:
    start = README.index(title)
    end = README.find("\n### ", start + 1)
    return README[start:end if end > 0 else None]


def _numbers(text: str) -> list[str]:
    return NUMBER.findall(text.replace("**", ""))


def test_the_cpu_recipe_table_quotes_results_cpu_recipe_json():
    sys.path.insert(0, str(ROOT / "scripts"))
    from cpu_recipe import results_table

    models = json.loads((ROOT / "results" / "cpu_recipe.json").read_text())["models"]
    section = _section("### Results on a CPU")
    readme_rows = [line for line in section.splitlines() if line.startswith("| ")]
    assert models
    for name, record in models.items():
        for row in results_table(record).splitlines()[2:]:
            wanted = _numbers(row.split("|", 2)[2])
            assert any(all(n in _numbers(line) for n in wanted) for line in readme_rows), (name, row)


def test_the_recipe_script_runs_the_measured_recipe_by_default():
    """`scripts/cpu_recipe.py --model M` with no other option is the run whose figures the README shows."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from cpu_recipe import parse_args

    for name, record in json.loads((ROOT / "results" / "cpu_recipe.json").read_text())["models"].items():
        args, training = parse_args(["--model", name]), record["training"]
        build = record["dataset"]["build_options"]
        assert (build["n"], str(build["test_size"]), build["max_steps"]) == (args.n, args.test_size, args.max_steps)
        assert build.get("drill_share", 0.0) == args.drill_share
        assert training["prompt_style"] == args.prompt_style
        assert training["curriculum"]["train_limit"] == (args.train_limit or None)
        assert training["sft"]["config"]["learning_rate"] == args.sft_learning_rate
        assert training["sft"]["epochs"] == args.sft_epochs and len(record["grpo_log"]) == args.grpo_steps
        assert ("sft" not in record["evaluation"]["models"]) == args.skip_sft_eval
        assert record["evaluation"]["benchmarks"]["cruxeval"]["n"] == args.benchmark_limit


def test_the_build_speed_table_quotes_the_benchmark_results():
    figures = json.loads((ROOT / "benchmarks" / "build_speed_results.json").read_text())
    section = _section("### Speed, memory and scaling")
    for size in figures["sizes"]:
        runs, n = size["runs"], f"{size['n']:,}"
        generated = next(line for line in section.splitlines() if line.startswith(f"| {n} (generated)"))
        for name in ("before", "bwrap", "none"):
            assert f"{round(runs[name]['per_s']):,}/s" in generated, (n, name)
        cost = 1 - runs["bwrap"]["per_s"] / runs["before"]["per_s"]
        assert f"| {round(100 * cost)}% |" in generated, n
        from_file = next(line for line in section.splitlines() if line.startswith(f"| {n} (`--programs`)"))
        assert f"{round(runs['file_before']['per_s']):,}/s" in from_file and \
            f"{round(runs['file_bwrap']['per_s']):,}/s" in from_file, n


def test_the_limits_the_readme_names_are_the_code_s():
    from dataset_builder.build import GENERATED_PER_PROCESS
    from dataset_builder.cgroups import TEMPLATE_HEADROOM_BYTES
    from dataset_builder.rows import MAX_CODE_CHARS
    from dataset_builder.sandbox import SANDBOX_HOME, SCRATCH_BYTES
    from dataset_builder.trace import MAX_MESSAGE_CHARS
    from dataset_builder.tracer import TraceLimits
    from dataset_builder.workers import WorkerLimits

    sandbox = _section("### The sandbox: traced code is hostile")
    text = " ".join(sandbox.split())
    for path, size in SCRATCH_BYTES.items():
        name = "HOME" if path == SANDBOX_HOME else path
        assert f"{name} ({size >> 20} MiB)" in text, path
    assert f"one process per batch of {GENERATED_PER_PROCESS}" in text
    assert f"over {MAX_CODE_CHARS:,} characters is rejected unparsed" in text
    assert f"cut at {MAX_MESSAGE_CHARS:,} characters" in text
    assert f"a trace over {TraceLimits().max_trace_chars:,} characters is rejected" in text
    assert f"their number ({WorkerLimits().max_processes} for a program and its children)" in text
    assert f"`--memory-mb` + {TEMPLATE_HEADROOM_BYTES >> 20} MiB" in text
    assert {2: "two"}[WorkerLimits().batch_size] + " at a time" in text


def test_the_gpu_defaults_the_readme_plans_are_the_code_s():
    from trainer.grpo import default_grpo_settings
    from trainer.sizing import CHECKPOINT_MAX_MINUTES, CHECKPOINT_SHARE
    from trainer.thinking import GPU_THINKING_BUDGET, MARGIN

    plan = " ".join(_section("### The default run, planned before it starts").split())
    gpu = default_grpo_settings(gpu=True)
    per_step = gpu["per_device_train_batch_size"] * gpu["gradient_accumulation_steps"]
    assert f"the thinking budget {GPU_THINKING_BUDGET:,}" in plan and f"+ {MARGIN} +" in plan
    assert f"({per_step // gpu['num_generations']} prompts x {gpu['num_generations']} per GPU) | {per_step} |" in plan
    per_call = gpu["per_device_train_batch_size"] * gpu["steps_per_generation"]
    calls = gpu["gradient_accumulation_steps"] // gpu["steps_per_generation"]
    assert f"| {per_call} / {calls} |" in plan
    assert f"micro-batch of {gpu['per_device_train_batch_size']} sequences" in plan
    assert f"every {round(100 * CHECKPOINT_SHARE)}% of the optimizer steps and at least every " \
           f"{CHECKPOINT_MAX_MINUTES} minutes" in plan
