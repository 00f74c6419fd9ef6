"""`--adapter-scale`: a trained adapter's update, scaled.

A LoRA adapter adds (alpha / r) * B @ A to each weight it targets. Scaled by s, the weights lie s of the way from the
base model's to the trained adapter's, as WiSE-FT (Wortsman et al., 2022) interpolates a fine-tuned model with the
one it started from. Why: what a short run learns can come with drift that costs more than the run gains. Measured
on Qwen2.5-Coder-0.5B (docs/cruxeval.md): an hour of raw GRPO on direct answers lost 4.2 points of CRUXEval-O at full
strength, gained 1.8 at half and 0.1 at 0.75, the scale that calls it had not trained on chose (where it gained 15
points): a scale keeps an adapter from drifting, it does not make what it learnt carry over.

A scaled adapter is an ordinary adapter: its `lora_B` weights are multiplied by s and its config is untouched, so
peft, vLLM and a merge load it as they load any other.

`train-and-push --adapter-scale 0.25,0.5,0.75,1 --direct-answers-only` chooses among several scales on function
calls held out of its own training programs (`hold_out_calls`), or on another dataset's (`--scale-calls`,
`calls_from`), never on the benchmark it is then compared on: the
base model and the adapter at each scale answer CRUXEval's direct prompt for those calls, and the scale that answers
most of them wins (the smallest of equals: the least drift for the same answers).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
from pathlib import Path

from trainer.settings import SCALES_DIR, UNSCALED_DIR

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "adapter_model.safetensors"
RULE = (
    "the scale whose adapter answers the most held-out calls right (CRUXEval's direct prompt, greedy, scored as "
    "its harness scores); the smallest of equals"
)


def parse_scales(text: str) -> tuple[float, ...]:
    """`--adapter-scale`: one positive number, or several separated by commas (to choose among), in increasing
    order. ValueError with one sentence for anything else."""
    try:
        scales = sorted({float(part) for part in str(text).split(",") if part.strip()})
    except ValueError:
        scales = []
    if not scales or any(not (0 < s < float("inf")) for s in scales):
        raise ValueError(
            f"--adapter-scale {text!r} is not a positive number or a comma-separated list of them (e.g. 0.5 or "
            "0.25,0.5,0.75,1)."
        )
    return tuple(scales)


def write_scaled(source: str | Path, destination: str | Path, scale: float) -> Path:
    """The adapter in `source` with its update scaled by `scale` (every `lora_B` weight multiplied by it), written
    to `destination` with the folder's other files (its config, tokenizer, card, records); subfolders are not
    copied. `destination` may be `source` (scaled in place). Returns `destination`."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    source, destination = Path(source), Path(destination)
    weights = source / WEIGHTS_FILE
    if not weights.is_file():
        raise FileNotFoundError(f"{source} holds no {WEIGHTS_FILE}, so it is no adapter to scale.")
    with safe_open(str(weights), "pt") as handle:
        metadata = handle.metadata()
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 (a safetensors handle)
    scaled = 0
    for key, tensor in tensors.items():
        if ".lora_B." in key:
            tensors[key] = tensor * scale
            scaled += 1
    if not scaled:
        raise ValueError(f"{weights} holds no lora_B weights, so there is no LoRA update to scale.")
    destination.mkdir(parents=True, exist_ok=True)
    if destination.resolve() != source.resolve():
        for path in source.iterdir():
            if path.is_file() and path.name != WEIGHTS_FILE:
                shutil.copy2(path, destination / path.name)
    partial = destination / (WEIGHTS_FILE + ".partial")  # never a half-written adapter under the real name
    save_file(tensors, str(partial), metadata=metadata)
    partial.replace(destination / WEIGHTS_FILE)
    return destination


@contextlib.contextmanager
def scaled_copy(adapter: str | Path, scale: float):
    """A temporary copy of `adapter` with its update scaled by `scale` (the folder itself where the scale is 1),
    removed afterwards."""
    if scale == 1:
        yield Path(adapter)
        return
    with tempfile.TemporaryDirectory(prefix="adapter-scale-") as folder:
        yield write_scaled(adapter, Path(folder) / "adapter", scale)


def hold_out_calls(rows, count: int):
    """The training programs (a `datasets.Dataset`) without `count` of their function calls, held out to choose a
    scale on, and without every other program that shares the structure of one of them (so the choice is made on
    structures the adapter never trained on). Returns (rows to train on, the held-out direct-answer examples, a
    record of what was held out). ValueError with one sentence where too few calls are there."""
    from dataset_builder import benchmark as crux
    from trainer.answers import answer_examples

    answers = answer_examples(rows)
    if len(answers) < 2 * count:
        raise ValueError(
            f"choosing an --adapter-scale holds out {count} function calls of the training programs "
            f"(--scale-holdout), and they hold {len(answers)}: at least {2 * count} are needed, so that as many are "
            "left to train on (build with more --drill-share of --drill-kind calls, or a smaller --scale-holdout)."
        )
    # the last calls: a build spreads its calls evenly, so they are like the others (--curriculum short-first: the
    # longest)
    held = answers[-count:]
    structure_of = {row_id: crux.structure_of(code) for row_id, code in zip(rows["id"], rows["code"])}
    held_structures = {structure_of[example["id"]] for example in held}
    keep = [i for i, row_id in enumerate(rows["id"]) if structure_of[row_id] not in held_structures]
    record = {
        "calls": count,
        "left_out_of_training": len(rows) - len(keep),  # the held-out calls and the programs sharing a structure
        "rule": "the last function calls of the training programs, and every training program whose skeleton "
        "(names and constants abstracted) is one of theirs, are left out of training",
    }
    return rows.select(keep), held, record


def calls_from(spec: str, rows, count: int, avoid=frozenset()):
    """`count` function calls of another dataset (`--scale-calls`, every split, in order) to choose a scale on:
    none with the structure of a training program (`rows`) or one in `avoid` (a benchmark's). Returns (the
    direct-answer examples, a record). ValueError with one sentence where too few are there."""
    from dataset_builder import benchmark as crux
    from trainer.answers import answer_examples
    from trainer.data import load_trace_dataset

    data = load_trace_dataset(spec, splits=())
    trained = {crux.structure_of(code) for code in rows["code"]} | set(avoid)
    calls, shared = [], 0
    for split in data.values():
        structure_of = {row_id: crux.structure_of(code) for row_id, code in zip(split["id"], split["code"])}
        for example in answer_examples(split):
            if structure_of[example["id"]] in trained:
                shared += 1
            elif len(calls) < count:
                calls.append(example)
    if len(calls) < count:
        raise ValueError(
            f"--scale-calls {spec} holds {len(calls)} function calls whose structure no training program has, and "
            f"--scale-holdout asks for {count}."
        )
    record = {
        "calls": count,
        "from": spec,
        "left_out_of_training": 0,
        "skipped_shared_structure": shared,
        "rule": "the first function calls of that dataset whose skeleton (names and constants abstracted) is no "
        "training program's" + (" and no benchmark item's" if avoid else ""),
    }
    return calls, record


def choose_scale(source, adapter_dir: Path, output_dir: Path, held_out: list, scales, holdout_record: dict, **common):
    """Ask the base model and the adapter at each of `scales` CRUXEval's direct prompt for the `held_out` calls
    (`hold_out_calls`; in the adapter's `direct_answers_format`), every process its share; write each scale's
    results under OUTPUT/adapter-scales; return the record with the chosen scale, on every process. `common`: the
    run's evaluation settings (`trainer.run.run_evaluation`) and `direct_answers_format`. The base model is asked
    beside every scale (from the evaluation cache after the first, on one process) for each scale's paired interval."""
    from dataset_builder.cruxeval_prompts import ANSWER_CLOSE, MAX_NEW_TOKENS
    from trainer import distributed
    from trainer.answers import ENTRY
    from trainer.benchmark import PAIRED_METHOD
    from trainer.evaluate import BasePrompt

    form = common.pop("direct_answers_format", "chat")
    base_asked = common.get("include_base", True)
    rows = [
        {
            "id": example["id"],
            "prompt": example["prompt"],
            "input": example["input"],
            "output": example["output"],
            "expected_trace": "",
            "cruxeval_prompt": "direct",
        }
        for example in held_out
    ]
    ask = BasePrompt(rows, MAX_NEW_TOKENS["direct"], stop_at=ANSWER_CLOSE, format=form)
    folder = output_dir / SCALES_DIR
    tried, base = [], None
    for index, scale in enumerate(scales):
        candidate = adapter_dir if scale == 1 else folder / f"scale-{scale:g}"
        if distributed.is_main() and scale != 1:
            write_scaled(adapter_dir, candidate, scale)
        distributed.barrier()
        logger.info(f"Adapter scale {scale:g}: asking {len(rows)} held-out function calls CRUXEval's direct prompt...")
        settings = dict(common, use_cache=common.get("use_cache", True) or index > 0)  # the first one stored it
        results = _evaluate(source, candidate, rows, ask, output=folder / f"scale-{scale:g}.json", **settings)
        if results is not None:
            base = base or results["models"].get("base_cruxeval_direct")
            tried.append(
                {
                    "scale": scale,
                    "output_accuracy": results["models"][ENTRY]["output_accuracy"],
                    "paired_difference_ci95": results.get("paired_difference_ci95"),  # against the base, same calls
                }
            )
        distributed.barrier()
        if distributed.is_main() and scale != 1:
            shutil.rmtree(candidate, ignore_errors=True)  # its results stay; the weights are one multiplication away
    record = None
    if distributed.is_main():
        best = max(tried, key=lambda t: (t["output_accuracy"], -t["scale"]))
        record = {
            "scale": best["scale"],
            "chosen_on": {
                **holdout_record,
                "format": form,
                "candidates": tried,
                "base_output_accuracy": base["output_accuracy"] if base else None,
                **({} if base_asked else {"base": "not asked (--skip-base-eval), so no paired intervals"}),
                "rule": RULE,
                "paired_method": PAIRED_METHOD,
            },
        }
    return distributed.broadcast(record)


def _evaluate(source, adapter, rows, ask, *, output: Path, **common):
    from trainer.answers import ENTRY
    from trainer.benchmark import scoring
    from trainer.evaluate import evaluate_adapter

    return evaluate_adapter(
        source,
        adapter,
        rows,
        scoring=scoring(),
        split="held-out calls",
        base_prompts={"base_cruxeval_direct": ask},
        base_on_rows=False,
        adapter_prompts={ENTRY: ask},
        adapter_on_rows=False,
        output=output,
        **common,
    )


def apply_scale(adapter_dir: Path, output_dir: Path, scale: float) -> None:
    """The adapter in OUTPUT/adapter scaled in place, the one as trained kept in OUTPUT/unscaled-adapter (main
    process only)."""
    unscaled = output_dir / UNSCALED_DIR
    shutil.rmtree(unscaled, ignore_errors=True)
    shutil.copytree(adapter_dir, unscaled)
    write_scaled(unscaled, adapter_dir, scale)
