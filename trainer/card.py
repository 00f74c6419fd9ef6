"""The model card (rendered from the top-level `model_card.md`) and the reward plot.

The card's numbers all come from the run record (`training_run.json`): the measured evaluation, the settings
used, the library versions; nothing is typed by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

from trainer.prompts import instructions_for

TEMPLATE = Path(__file__).resolve().parent.parent / "model_card.md"
CARD_FILE = "README.md"


def card_metadata(run: dict, repo_id: str) -> dict:
    """The card's YAML: base_model, library_name, datasets, tags, license, pipeline_tag, model-index."""
    from trainer.evaluate import METRICS

    training = run.get("training", {})
    evaluation = run.get("evaluation") or {}
    base = training.get("base_model")
    dataset_id = (run.get("dataset") or {}).get("hub_id")
    data: dict = {}
    if base and training.get("model_kind") != "tiny":
        data["base_model"] = base
    data["library_name"] = "peft"
    data["license"] = run.get("license") or "apache-2.0"
    data["pipeline_tag"] = "text-generation"
    if dataset_id:
        data["datasets"] = [dataset_id]
    tags = (
        ["lora", "peft", "trl"]
        + (["sft"] if training.get("sft") else [])
        + (["grpo"] if training.get("grpo") else [])
        + ["code", "python", "execution-trace", "world-model"]
    )
    if base and training.get("model_kind") != "tiny":
        tags.append(f"base_model:adapter:{base}")
    if training.get("model_kind") == "tiny":
        tags.append("smoke-test")
    data["tags"] = tags
    adapter = (evaluation.get("models") or {}).get("adapter")
    if adapter:
        metrics = [
            {"type": key, "name": title, "value": round(float(adapter[key]), 4)}
            for key, title in METRICS
            if key in adapter and key != "cut_off"
        ]
        data["model-index"] = [
            {
                "name": repo_id.split("/")[-1],
                "results": [
                    {
                        "task": {"type": "text-generation", "name": "Execution trace prediction"},
                        "dataset": {
                            "name": dataset_id or "execution traces",
                            "type": dataset_id or "execution-traces",
                            "split": evaluation.get("split", "test"),
                        },
                        "metrics": metrics,
                    }
                ]
                + benchmark_results(evaluation),
            }
        ]
    return data


def benchmark_results(evaluation: dict) -> list[dict]:
    """model-index results for the benchmarks the run evaluated (CRUXEval-O: the dataset `cruxeval-org/cruxeval`;
    a subset or a local copy of its items says so in the dataset's name)."""
    from dataset_builder.benchmark import HUB_ID
    from trainer.benchmark import compared_adapter

    entries = []
    crux = (evaluation.get("benchmarks") or {}).get("cruxeval")
    models = (crux or {}).get("models") or {}
    entry = crux.get("compared_adapter") or compared_adapter(models) if crux else None
    adapter = models.get(entry) if entry else None
    if adapter:
        name = "CRUXEval"
        if crux.get("dataset") != HUB_ID or crux.get("limit"):
            name += f": {crux.get('n')} items from {crux.get('dataset')}"
        how = "through predicted traces" if entry == "adapter" else "asked with CRUXEval's direct prompt"
        entries.append(
            {
                "task": {"type": "text-generation", "name": f"Code output prediction (CRUXEval-O, {how})"},
                "dataset": {"name": name, "type": HUB_ID, "split": crux.get("split", "test")},
                "metrics": [
                    {
                        "type": "accuracy",
                        "name": "CRUXEval-O output accuracy",
                        "value": round(float(adapter["output_accuracy"]), 4),
                    }
                ],
            }
        )
    return entries


def benchmark_facts(evaluation: dict) -> dict | None:
    """What the card says about CRUXEval-O (None without it): the scope, the harness check, its own table (every
    base entry, the adapter, the paired interval and the sentence that compares them) and how the base was asked
    (results of runs before the base had CRUXEval's prompts have only a trace-prompt `base`: the card says so)."""
    from trainer.benchmark import PROMPT_TITLES, format_table

    crux = (evaluation.get("benchmarks") or {}).get("cruxeval")
    if not crux:
        return None
    check = crux.get("tracer_check") or {}
    asked = crux.get("base_prompts") or {}
    prompts = sorted({PROMPT_TITLES[entry["prompt"]] for entry in asked.values()})
    formats = sorted(
        {
            "as a raw completion (no chat template)"
            if entry["format"] == "raw"
            else "as one user message through its chat template"
            for entry in asked.values()
        }
    )
    return {
        "scope": f"the first {crux.get('n')} items" if crux.get("limit") else f"all {crux.get('n')} items",
        "dataset": crux.get("dataset"),
        "split": crux.get("split", "test"),
        "tracer": f"{100 * float(check.get('output_accuracy', 0)):.1f}%",
        "table": format_table(crux).split("\n", 1)[1].strip(),
        "base_prompts": " and ".join(prompts),
        "base_formats": " and ".join(formats),
        "interval": crux.get("paired_difference_method"),
        "overlap": _overlap_sentence(crux),
        "adapter_asked": "The adapter answers in the trace notation it was trained on."
        if "adapter_prompts" not in crux
        else "The adapter was also trained to answer CRUXEval's direct prompt (direct answers), so it is "
        "asked both ways, and the comparison is with it asked that way, through its chat template.",
    }


def _overlap_sentence(crux: dict) -> str:
    """How the training programs were kept apart from the benchmark ("" for an evaluation without training)."""
    overlap = crux.get("training_overlap")
    if not overlap:
        return ""
    checked = (
        f"all {overlap['training_programs_checked']} training programs were checked by structure (skeleton: "
        f"names and constants abstracted) against the {overlap['items_checked']} CRUXEval items"
    )
    if overlap["shared_structure"]:
        return (
            f"No CRUXEval item was trained on: {checked}, and the {overlap['shared_structure']} that shared an "
            "item's structure were left out of training."
        )
    return f"No CRUXEval item was trained on: {checked}, and none shared an item's structure."


def usage_snippet(run: dict, repo_id: str) -> str:
    """Python that loads the adapter, prompts it the way it was trained, and reads the answer after </think>."""
    training = run.get("training", {})
    evaluation = run.get("evaluation") or {}
    decoding = evaluation.get("decoding") or {}
    max_new = int(decoding.get("max_new_tokens") or 4096)
    thinking = training.get("thinking") or {}
    template_kwargs = "".join(f", {k}={v!r}" for k, v in (thinking.get("chat_template_kwargs") or {}).items())
    sampling = decoding.get("sampling")
    generate_kwargs = (
        f"do_sample=True, temperature={sampling['temperature']}, top_p={sampling['top_p']}, top_k={sampling['top_k']}"
        if sampling
        else "do_sample=False"
    )
    if training.get("model_kind") == "tiny":
        load_base = (
            "from trainer.models import build_tiny_model  # the smoke-test base (execution-world-model toolkit)\n"
            "model = AutoModelForCausalLM.from_pretrained(build_tiny_model())"
        )
    else:
        load_base = f'model = AutoModelForCausalLM.from_pretrained({training.get("base_model")!r}, dtype="auto", device_map="auto")'
    text = instructions_for(training.get("prompt_style") or "dataset")
    if '"""' in text or "\\" in text:
        instructions = repr(text)
    else:
        instructions = '"""' + text + '"""'
    if thinking.get("enabled", training.get("thinking_template")):
        answer = (
            "# The chat template opens the thinking; the answer is what follows the last </think>.\n"
            'answer = text.split("</think>")[-1].strip() if "</think>" in text else ""\n'
            'print(answer or "(no answer: the thinking was cut off; raise max_new_tokens)")'
        )
    else:
        answer = "print(text)  # the <execution_trace> block"
    if training.get("prompt_style") in ("compact", "minimal"):
        answer += (
            "\n# Compact notation: each line step shows only the variables it changed. Full states:\n"
            "# from dataset_builder.trace import parse_trace; parse_trace(text).steps  (this toolkit)"
        )
    return f"""from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

ADAPTER = {repo_id!r}
tokenizer = AutoTokenizer.from_pretrained(ADAPTER)
{load_base}
model = PeftModel.from_pretrained(model, ADAPTER)

# The prompt the adapter was trained on: the instructions, then the program with numbered lines.
INSTRUCTIONS = {instructions}
code = "x = 10\\ny = [x, 2]\\ny.append(x * 2)\\n"
lines = code.splitlines()
width = len(str(len(lines)))
numbered = "\\n".join(f"{{i:>{{width}}}} | {{line}}" for i, line in enumerate(lines, 1))
fence = "`" * 3
messages = [{{"role": "user", "content": f"{{INSTRUCTIONS}}\\n\\nProgram:\\n{{fence}}python\\n{{numbered}}\\n{{fence}}"}}]

inputs = tokenizer.apply_chat_template(
    messages, add_generation_prompt=True, return_tensors="pt", return_dict=True{template_kwargs}
).to(model.device)
output = model.generate(**inputs, max_new_tokens={max_new}, {generate_kwargs})
text = tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
{answer}"""


PROMPT_DESCRIPTIONS = {
    "dataset": "the dataset's `prompt` column",
    "short": "the short fixed prompt of `trainer.prompts` (shown in the usage snippet)",
    "compact": "the compact prompt of `trainer.prompts` (shown in the usage snippet): the trace asked for shows only "
    "the variables each line changed; `dataset_builder.trace.parse_trace` expands it back to full states, "
    "and every score here was computed on the expanded trace",
    "minimal": "the minimal prompt of `trainer.prompts` (shown in the usage snippet): a few words of instructions, "
    "the format (the compact notation, only the variables each line changed) learned in the SFT warm "
    "start; the base model was evaluated on the compact prompt's full instructions; every score was "
    "computed on the trace expanded to full states",
}


def settings_table(run: dict) -> str:
    training = run.get("training", {})
    grpo = training.get("grpo") or {}
    lora = training.get("lora", {})
    dataset = run.get("dataset", {})
    targets = lora.get("target_modules")
    targets = ", ".join(targets) if isinstance(targets, list) else str(targets)
    sft = training.get("sft") or {}
    sft_config = sft.get("config") or {}
    curriculum = training.get("curriculum") or {}
    rows = [
        ("Base model", f"`{training.get('base_model') or training.get('model')}`"),
        (
            "Dataset",
            f"{dataset_label(dataset)} ({dataset.get('train_rows')} train / {dataset.get('test_rows')} test programs)",
        ),
        ("Method", method_text(training)),
        ("Prompt", PROMPT_DESCRIPTIONS.get(training.get("prompt_style") or "dataset", PROMPT_DESCRIPTIONS["short"])),
    ]
    if curriculum.get("programs"):
        rows.append(("Training programs", curriculum["programs"]))
    if training.get("direct_answers"):
        rows.append(("Direct answers", direct_answers_text(training)))
    thinking = training.get("thinking") or {}
    if thinking:
        rows.append(
            (
                "Thinking",
                f"{'on' if thinking.get('enabled') else 'off'} (chat template: "
                f"{thinking.get('template')}; --thinking {thinking.get('mode')})",
            )
        )
    rows += [
        (
            "LoRA",
            f"r={lora.get('r')}, alpha={lora.get('alpha')}, dropout={lora.get('dropout')}, on {targets}"
            + (f" of layers {layers[0]}-{layers[-1]} only" if isinstance(layers := lora.get("layers"), list) else ""),
        ),
        ("Trainable parameters", f"{training.get('trainable_parameters') or 0:,}"),
    ]
    if training.get("adapter_scale"):
        rows.append(("Adapter scale", scale_text(training["adapter_scale"])))
    if sft:
        batch = (sft_config.get("per_device_train_batch_size") or 1) * (
            sft_config.get("gradient_accumulation_steps") or 1
        )
        rows += [
            (
                "SFT steps",
                f"{sft.get('steps')} ({sft.get('epochs')} epochs of {sft.get('rows')} programs, {batch} per step)",
            ),
            ("SFT learning rate", f"{sft_config.get('learning_rate')} ({sft_config.get('lr_scheduler_type')})"),
            (
                "SFT loss",
                f"{_round(sft.get('first_loss'))} → {_round(sft.get('last_loss'))} (token accuracy "
                f"{_round(sft.get('first_token_accuracy'))} → {_round(sft.get('last_token_accuracy'))})",
            ),
            ("SFT time", f"{sft.get('seconds')} s"),
        ]
    if grpo:
        rows += [
            (
                "GRPO steps",
                f"{training.get('global_steps')} (max_steps={grpo.get('max_steps')}, "
                f"epochs={grpo.get('num_train_epochs', 'default')})",
            ),
            ("Completions per prompt", grpo.get("num_generations")),
            ("Processes (world size)", training.get("world_size", 1)),
            ("Completions per optimizer step (all processes)", training.get("global_batch", "?")),
            ("Prompts per step", training.get("prompts_per_step", _prompts_per_step(grpo))),
            (
                "Max completion length",
                f"{grpo.get('max_completion_length')} tokens"
                + (f" ({budget['rule']})" if (budget := training.get("completion_budget")) else ""),
            ),
            (
                "Cut-off completions",
                "masked out of the loss" if grpo.get("mask_truncated_completions") else "trained on",
            ),
            (
                "Sampling",
                f"temperature {grpo.get('temperature')}, top_p {grpo.get('top_p')}, top_k {grpo.get('top_k')}, "
                f"min_p {grpo.get('min_p')}",
            ),
            ("Learning rate", f"{grpo.get('learning_rate')} ({grpo.get('lr_scheduler_type')})"),
            ("Loss", f"{grpo.get('loss_type')}, beta={grpo.get('beta')}"),
            ("Precision", _precision(training, grpo)),
            (
                "Gradient checkpointing",
                "yes" if grpo.get("activation_checkpointing", grpo.get("gradient_checkpointing")) else "no",
            ),
            ("Seed", grpo.get("seed")),
            ("GRPO time", f"{training.get('train_seconds')} s"),
        ]
    else:
        rows += [("Precision", _precision(training, sft_config)), ("Seed", sft_config.get("seed"))]
    rows.append(
        (
            "Hardware",
            f"{training.get('device')}, {training.get('world_size', 1)} process(es)"
            + (
                f", {threads['cpu_threads']} CPU thread(s) each"
                if (threads := training.get("cpu_threads")) and training.get("device") == "cpu"
                else ""
            ),
        )
    )
    lines = ["| Setting | Value |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    return "\n".join(lines)


def dataset_label(dataset: dict) -> str:
    """The dataset as the card names it: its Hub id when known, else only the name of the local folder it was
    read from (a path on the training machine means nothing to a reader and tells more than it should)."""
    if dataset.get("hub_id"):
        return f"`{dataset['hub_id']}`"
    return f"`{Path(str(dataset.get('source') or 'unknown')).name}` (a local folder)"


def method_text(training: dict) -> str:
    """How the adapter was trained, in words."""
    if training.get("sft") and training.get("grpo"):
        return "SFT warm start (TRL `SFTTrainer`), then GRPO (TRL `GRPOTrainer`), one LoRA adapter (peft)"
    if training.get("sft"):
        return "SFT (TRL `SFTTrainer`) with a LoRA adapter (peft); no GRPO"
    return "GRPO (TRL `GRPOTrainer`) with a LoRA adapter (peft)"


def direct_answers_text(training: dict) -> str:
    """What `--direct-answers` (`--direct-answers-only`) trained, in words."""
    how = [
        how
        for stage, how in (
            ("sft", "the SFT warm start on their traced result"),
            ("grpo", "GRPO rewarded by whether the answer is their traced result" + lazy_text(training)),
        )
        if training.get(stage)
    ]
    alone = " alone: the adapter was not trained on traces" if training.get("direct_answers_only") else " too"
    form = (
        " as a raw completion (the prompt is the whole input; GRPO's completions end at `[/ANSWER]`)"
        if training.get("direct_answers_format") == "raw"
        else " through the chat template"
    )
    return (
        f"{training['direct_answers']} of the training programs (functions called with literal arguments) were "
        f"trained to answer CRUXEval's direct output prompt{form}{alone}; {' and '.join(how)}"
    )


def lazy_text(training: dict) -> str:
    """What `--lazy-answer-penalty` changed in the direct-answer reward, in words ("" without one)."""
    penalty = training.get("lazy_answer_penalty")
    if not penalty:
        return ""
    return (
        f" (1 if so, 0 if not, and -{penalty:g} for a wrong answer that skips the call's work: its first argument "
        "given back unchanged, or no literal at all)"
    )


def scale_text(scale: dict) -> str:
    """What `--adapter-scale` did: the trained update scaled by how much, given or chosen on which calls."""
    text = (
        f"{scale['scale']:g}: the trained LoRA update scaled by it (its `lora_B` weights; every figure here is of "
        "the scaled adapter)"
    )
    chosen = scale.get("chosen_on")
    if chosen:
        tried = ", ".join(f"{c['scale']:g}: {100 * c['output_accuracy']:.1f}%" for c in chosen["candidates"])
        base = chosen.get("base_output_accuracy")
        where = (
            f"function calls of {chosen['from']} that share no training program's structure"
            if chosen.get("from")
            else f"function calls held out of training (with the {chosen['left_out_of_training']} training programs "
            "sharing their structures)"
        )
        text += f", chosen on {chosen['calls']} {where}, asked CRUXEval's direct prompt: {tried}" + (
            f"; the base model {100 * base:.1f}%" if base is not None else ""
        )
    else:
        text += ", as given"
    return text + ("; the adapter as trained was not pushed" if scale.get("unscaled_adapter") else "")


def _precision(training: dict, config: dict) -> str:
    weights = "bf16" if training.get("weights_dtype") == "bfloat16" else "fp32"
    if config.get("bf16"):
        return f"bf16 mixed precision, {weights} base weights"
    if weights == "bf16":
        return "bf16 base weights, fp32 LoRA weights and optimizer"
    return "fp32"


def _round(value, digits: int = 3):
    return round(value, digits) if isinstance(value, (int, float)) else value


def _prompts_per_step(grpo: dict):
    try:
        batch = grpo["per_device_train_batch_size"] * grpo.get("gradient_accumulation_steps", 1)
        return batch // grpo["num_generations"]
    except (KeyError, TypeError, ZeroDivisionError):
        return "?"


def render_card(run: dict, repo_id: str, template: str | Path | None = None) -> str:
    import jinja2
    import yaml

    from trainer.evaluate import format_table

    training = run.get("training", {})
    evaluation = run.get("evaluation") or {}
    versions = training.get("versions", {})
    n = evaluation.get("n", 0)
    test_rows = (run.get("dataset") or {}).get("test_rows")
    if test_rows and n == test_rows:
        eval_scope = f"the whole test split ({n} programs)"
    else:
        eval_scope = f"the first {n} programs of the test split" + (f" (of {test_rows})" if test_rows else "")
    env = jinja2.Environment(keep_trailing_newline=True, undefined=jinja2.StrictUndefined, autoescape=False)
    text = Path(template or TEMPLATE).read_text()
    decoding = evaluation.get("decoding") or {}
    sampling = decoding.get("sampling")
    if sampling:
        decoding_text = (
            f"sampled as the model makers recommend for thinking models (temperature "
            f"{sampling['temperature']}, top-p {sampling['top_p']}, top-k {sampling['top_k']}, seed "
            f"{decoding.get('seed')})"
        )
    else:
        decoding_text = "greedy decoding"
    prompts = evaluation.get("prompts") or {}
    if prompts.get("base") and len(set(prompts.values())) > 1:  # the minimal style: the base got full instructions
        decoding_text += (
            f"; the base model was prompted with the {prompts['base']} prompt (full instructions), "
            f"the adapter with the {prompts.get('adapter', training.get('prompt_style'))} one it "
            "was trained on"
        )
    return env.from_string(text).render(
        decoding_text=decoding_text,
        warnings=run.get("warnings") or [],
        no_signal=bool(run.get("no_signal")),
        card_yaml=yaml.safe_dump(card_metadata(run, repo_id), sort_keys=False, allow_unicode=True).strip(),
        repo_name=repo_id.split("/")[-1],
        base_label=training.get("base_model") or training.get("model"),
        is_tiny=training.get("model_kind") == "tiny",
        gguf_file=Path(training.get("model") or "").name if training.get("model_kind") == "gguf" else "",
        measured=bool(n),
        eval=evaluation or {"decoding": {"max_new_tokens": "?", "batch_size": "?"}},
        eval_scope=eval_scope,
        results_table=format_table(evaluation) if evaluation else "(not evaluated)",
        crux=benchmark_facts(evaluation),
        settings_table=settings_table(run),
        plot=run.get("plot"),
        usage=usage_snippet(run, repo_id),
        steps=training.get("global_steps", 0),
        method=method_text(training),
        sft_steps=(training.get("sft") or {}).get("steps", 0),
        has_grpo=bool(training.get("grpo")),
        train_rows=(run.get("dataset") or {}).get("train_rows", "?"),
        versions=", ".join(f"{k} {v}" for k, v in versions.items()),
    )


def write_card(adapter_dir: str | Path, run: dict, repo_id: str) -> Path:
    path = Path(adapter_dir) / CARD_FILE
    path.write_text(render_card(run, repo_id))
    return path


def reward_points(history: list[dict]) -> list[tuple[int, float, float]]:
    """(step, mean reward, std) for every logged training step."""
    points = []
    for entry in history:
        if "reward" in entry and "step" in entry:
            points.append((int(entry["step"]), float(entry["reward"]), float(entry.get("reward_std", 0.0))))
    return points


def write_reward_plot(history: list[dict], path: str | Path, floor: float = 0.0) -> Path | None:
    """A PNG of the mean reward per GRPO step; None when nothing was logged. `floor`: the lowest reward a completion
    can get (below 0 with `--lazy-answer-penalty`)."""
    points = reward_points(history)
    if not points:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [p[0] for p in points]
    mean = [p[1] for p in points]
    low = [max(p[1] - p[2], floor) for p in points]
    high = [min(p[1] + p[2], 1.0) for p in points]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    try:
        ax.fill_between(steps, low, high, alpha=0.2, color="tab:blue", linewidth=0)
        ax.plot(steps, mean, marker="o" if len(points) < 30 else None, color="tab:blue", label="mean reward")
        ax.set_xlabel("GRPO step")
        ax.set_ylabel("execution reward")
        ax.set_ylim(floor, 1)
        ax.set_title("Reward over training")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
    return Path(path)


def load_json(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())
