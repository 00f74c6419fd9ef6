"""`train-and-push` and `evaluate-traces`: options in, one library call, user mistakes out as one sentence.

A `train-and-push` option is declared twice, with nothing said twice: the TrainSettings field of its name in
trainer/settings.py (name, type, default) and its click decorator here (flag, help, checks); the default comes from
the field. Nothing heavy is imported at module level, so `--help` answers at once (no torch, transformers, datasets,
trl: trainer.settings imports none of them).
"""

from __future__ import annotations

import contextlib
import dataclasses
from types import SimpleNamespace

import click

from dataset_builder.console import sentence, setup_logging, user_errors
from trainer.settings import DEFAULT_EPOCHS, REPORTERS, PushError, TrainSettings
from trainer.thinking import ThinkingPolicy

# not given: left out of the settings (_cruxeval_settings, _adapter_scale), which keep their own defaults
CLI_SHAPED = ("cruxeval_prompts", "cruxeval_prompt_format", "adapter_scale")


def _show_log(verbosity: int) -> None:
    from trainer.distributed import is_main

    setup_logging(verbosity, main_process=is_main())


def _quiet_library_warnings() -> None:
    """Deprecation chatter from inside transformers/peft that the user cannot act on, and transformers' warning
    that a tokenized sequence is longer than the model's maximum: the tool tokenizes whole traces on purpose, to
    measure them, and says itself when training examples are cut (no model ever sees an over-long sequence); and
    peft's warning at every checkpoint saved offline that it could not look up the base's config on the Hub to see
    whether the vocabulary changed: the LoRA adapters here never train the embeddings, so the answer is no."""
    import logging
    import warnings

    warnings.filterwarnings("ignore", message=r".*is_gradient_checkpointing.*", category=FutureWarning)
    warnings.filterwarnings("ignore", message=r"Could not find a config file in ", category=UserWarning)
    logging.getLogger("transformers.tokenization_utils_base").addFilter(
        lambda record: not record.getMessage().startswith("Token indices sequence length is longer")
    )


def _user_errors():
    """The exception types whose message is a sentence for the user (imported lazily)."""
    from dataset_builder.benchmark import BenchmarkError
    from dataset_builder.sandbox import SandboxUnavailable
    from trainer.data import DataError
    from trainer.models import ModelError
    from trainer.settings import PushError, TrainError

    types = [DataError, ModelError, TrainError, PushError, BenchmarkError, SandboxUnavailable]
    try:
        from hub.errors import HubError

        types.append(HubError)
    except ImportError:
        pass
    return tuple(types)


def _parse_set(values) -> dict:
    import yaml

    out = {}
    for item in values:
        if "=" not in item:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE.", param_hint="--set")
        key, raw = item.split("=", 1)
        try:
            out[key.strip()] = yaml.safe_load(raw)
        except yaml.YAMLError:
            out[key.strip()] = raw
    return out


def _cruxeval_prompts(ctx, param, value):
    if value is None:
        return None
    from trainer.benchmark import parse_prompts

    try:
        return parse_prompts(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _adapter_scale(ctx, param, value):
    if value is None:
        return None
    from trainer.scaling import parse_scales

    try:
        scales = parse_scales(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if param.name == "adapter_scale_one" and len(scales) > 1:
        raise click.BadParameter("evaluate-traces takes one scale (train-and-push chooses among several).")
    return scales


_cruxeval_prompts_option = click.option(
    "--cruxeval-prompts",
    metavar="LIST",
    callback=_cruxeval_prompts,
    help="With --benchmark cruxeval: also ask the base model with CRUXEval's own output-prediction prompts (its "
    "answer extraction; right when the answer is a literal equal to the output, never run): direct, cot, "
    "direct,cot or none [default: direct,cot].",
)
_cruxeval_format_option = click.option(
    "--cruxeval-prompt-format",
    type=click.Choice(["auto", "raw", "chat", "both"]),
    help="How CRUXEval's prompts reach the base model: raw (the prompt is the whole input, no chat template, as "
    "CRUXEval's harness asks open models), chat (one user message through the chat template), both (an "
    "entry for each), auto (chat for a model that thinks, raw otherwise) [default: auto].",
)
_benchmark_data_option = click.option(
    "--benchmark-data",
    metavar="PATH_OR_REPO_ID",
    help="The benchmark's items: a JSONL or parquet file, or a Hub dataset id (split test) "
    "[default: cruxeval-org/cruxeval].",
)


def _defaults_from_settings(command):
    """Each option of `train-and-push` fills the TrainSettings field of its name, and takes that field's default
    (declared once, in trainer/settings.py), shown in --help; a field whose default is None gets its value from the
    device or the data, which the option's help text explains."""
    fields = {f.name: f for f in dataclasses.fields(TrainSettings)}
    for param in command.params:
        field = fields.get(param.name)
        if field is None or field.default is dataclasses.MISSING or param.name in CLI_SHAPED:
            continue
        param.default = field.default
        param.show_default = field.default is not None and not isinstance(field.default, bool)
    return command


def _verbosity(command):
    """-v and -q, counted: how much the library's log says (INFO by default; dataset_builder/console.py)."""
    command = click.option("-q", "--quiet", count=True, help="Say less: warnings only (-qq: errors only).")(command)
    return click.option("-v", "--verbose", count=True, help="Say more: the library's debug messages too.")(command)


@_defaults_from_settings
@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="execution-world-model")  # the distribution in pyproject.toml
@click.option("--dataset", metavar="DIR_OR_REPO_ID", help="A folder saved by build-dataset, or a Hub dataset id.")
@click.option("--repo-id", metavar="USER/NAME", help="The Hub model repo to push the adapter to.")
@click.option(
    "--model",
    help="Base model: a Hub id, a local folder, a .gguf file (converted once), or 'tiny' (a random "
    "smoke-test model built offline; it learns nothing useful).",
)
@click.option(
    "--base-model-id",
    metavar="ID",
    help="The Hub id the adapter names as its base, when --model is a folder or a .gguf file.",
)
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False),
    help="Where checkpoints, the adapter (OUTPUT/adapter) and the SFT warm start (OUTPUT/sft) go "
    "[default: outputs/NAME for --repo-id USER/NAME, else outputs/DATASET-MODEL].",
)
@click.option(
    "--max-steps",
    type=click.IntRange(min=0),
    help="Stop after this many GRPO steps (overrides --epochs); 0: no GRPO (SFT warm start only) "
    "[default: the steps of --epochs].",
)
@click.option(
    "--epochs",
    type=click.FloatRange(min=0, min_open=True),
    help=f"GRPO passes over the training programs [default: {DEFAULT_EPOCHS:g}].",
)
@click.option("--lora-r", type=int, help="LoRA rank.")
@click.option("--lora-alpha", type=int, help="LoRA alpha.")
@click.option("--lora-dropout", type=float, help="LoRA dropout.")
@click.option(
    "--lora-layers",
    type=click.IntRange(min=1),
    help="LoRA on the last N transformer layers only [default: every layer]: the backward pass stops below them, "
    "so a step costs less and learns less (the last 12 of Qwen2.5-Coder-0.5B's 24 layers: 1.49x the SFT tokens/s "
    "on a CPU, and 14% exact traces instead of 24% for the CPU recipe; docs/training.md).",
)
@click.option("--num-generations", type=int, help="Completions per prompt [default: 8 on a GPU, 2 on a CPU].")
@click.option(
    "--max-completion-length",
    type=int,
    help="Tokens per GRPO completion, thinking included [default: the longest reference trace of the "
    "training programs + 32, plus --thinking-budget when the model thinks].",
)
@click.option(
    "--thinking",
    type=click.Choice(["auto", "on", "off"]),
    help="Let the model think before its trace: auto follows the chat template (a thinking-only template "
    "thinks, a hybrid one (enable_thinking) follows its default, others do not); on/off set "
    "enable_thinking on a hybrid template and are refused where the template cannot do them.",
)
@click.option(
    "--thinking-budget",
    type=int,
    help="Thinking tokens on top of the longest reference trace, for a thinking run "
    "[default: 4096 on a GPU (see the 4B run's plan in docs/training.md), 64 on a CPU].",
)
@click.option("--learning-rate", type=float, help="[default: 1e-5]")
@click.option("--seed", type=int)
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint in --output-dir.")
@click.option(
    "--report-to",
    type=click.Choice(REPORTERS),
    help="An experiment tracker for the SFT and GRPO stages' loss, reward and learning rate (main process "
    "only; the package of that name must be installed): trackio keeps a local SQLite store under "
    "$TRACKIO_DIR (default ~/.cache/huggingface/trackio; look with `trackio show`), tensorboard writes "
    "under each stage's checkpoints folder, wandb needs its login.",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace the run that --output-dir holds (its adapter, SFT warm start and checkpoints); without "
    "it, or --resume, a folder holding a run is refused.",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    help="YAML file of further GRPOConfig settings (e.g. per_device_train_batch_size, save_steps) [default: none].",
)
@click.option(
    "--set",
    "set_values",
    multiple=True,
    metavar="KEY=VALUE",
    help="One further GRPOConfig setting; repeatable; wins over --config [default: none].",
)
@click.option(
    "--sft-epochs",
    type=float,
    help="SFT warm start before GRPO: passes over the training programs (TRL SFTTrainer on prompt -> "
    "expected_trace, same LoRA, same adapter) [default: no warm start].",
)
@click.option(
    "--sft-steps",
    type=click.IntRange(min=1),
    help="SFT warm start: optimizer steps (wins over --sft-epochs) [default: no warm start].",
)
@click.option("--sft-learning-rate", type=float)
@click.option(
    "--sft-batch-size",
    type=int,
    help="Programs per SFT optimizer step (on a CPU: batch 1 with gradient accumulation).",
)
@click.option(
    "--sft-max-length",
    type=int,
    help="Tokens per SFT example; longer ones are cut (counted and warned about) [default: the longest "
    "example, so none is cut].",
)
@click.option(
    "--curriculum",
    type=click.Choice(["none", "short-first"]),
    help="Order of the training programs: short-first sorts them by trace length in steps (SFT and GRPO).",
)
@click.option(
    "--direct-answers",
    is_flag=True,
    help="Also train every training program that is a function called with literal arguments (build-dataset "
    "--drill-kind calls) to answer CRUXEval's direct output prompt: SFT on its traced result, GRPO rewarded by "
    "whether the answer is that value; with --benchmark cruxeval the adapter is then compared asked that way.",
)
@click.option(
    "--direct-answers-only",
    is_flag=True,
    help="--direct-answers without the traces: SFT and GRPO train only the direct answers (the run that aims at "
    "CRUXEval-O itself; docs/cruxeval.md).",
)
@click.option(
    "--direct-answers-format",
    type=click.Choice(["chat", "raw"]),
    default="chat",
    show_default=True,
    help="How the direct prompts reach the model: chat (one user turn through the chat template) or raw (CRUXEval's "
    "prompt as the whole input, as its harness asks open models; GRPO's completions stop at [/ANSWER]; with "
    "--direct-answers-only; it never reaches the chat template, so a thinking model does not think there). Ask the "
    "base both ways first: Qwen2.5-Coder-0.5B "
    "answers 29.0% of CRUXEval-O raw and 23.2% through its chat template.",
)
@click.option(
    "--lazy-answer-penalty",
    type=float,
    default=0.0,
    show_default=True,
    metavar="P",
    help="A wrong direct answer that skips the call's work (gives back its first argument unchanged, or no literal "
    "at all) scores -P instead of 0, so GRPO also learns from groups of wrong answers (0 to 1; with "
    "--direct-answers(-only)). Without it an hour of CPU GRPO nearly doubled such answers to CRUXEval-O "
    "(docs/cruxeval.md).",
)
@click.option(
    "--adapter-scale",
    metavar="SCALE[,SCALE...]",
    callback=_adapter_scale,
    help="Scale the trained LoRA update by this before evaluating and pushing (the weights that far from the "
    "base's towards the trained ones; the adapter as trained stays in OUTPUT/unscaled-adapter). Several "
    "(e.g. 0.25,0.5,0.75,1): choose the one whose adapter answers the most function calls held out of training "
    "(--scale-holdout), asked CRUXEval's direct prompt; needs --direct-answers(-only). An hour of CPU GRPO on "
    "direct answers lost 4.2 CRUXEval-O points at 1, gained 1.8 at 0.5 and 0.1 at 0.75, the scale held-out calls "
    "chose (docs/cruxeval.md). [default: 1]",
)
@click.option(
    "--scale-holdout",
    type=click.IntRange(min=1),
    help="Function calls held out of training to choose the --adapter-scale on (with every training program "
    "sharing one's structure), with several --adapter-scale values.",
)
@click.option(
    "--scale-calls",
    metavar="DIR_OR_REPO_ID",
    help="Choose the --adapter-scale on the function calls of this dataset (a build-dataset folder or Hub id, "
    "e.g. calls with longer traces than the training ones) instead of calls held out of training; calls sharing "
    "a training program's structure (or, with --benchmark, an item's) are skipped [default: held out of training].",
)
@click.option(
    "--max-trace-steps",
    type=click.IntRange(min=1),
    help="Train only on programs whose trace has at most N steps [default: no limit].",
)
@click.option(
    "--train-limit",
    type=click.IntRange(min=1),
    help="Train on the first N training programs only (after --max-trace-steps) [default: all of them].",
)
@click.option(
    "--prompt-style",
    type=click.Choice(["dataset", "short", "compact", "minimal"]),
    help="The dataset's prompt (full instructions); a short fixed one (~170 fewer tokens per program); "
    "compact: short, and the trace asked for shows only changed variables (about half the tokens; "
    "expanded back to full states before scoring); or minimal: compact under a few words of "
    "instructions, learned in the SFT warm start (which it needs; the base model is evaluated on the "
    "compact prompt).",
)
@click.option(
    "--dtype",
    type=click.Choice(["auto", "float32", "bfloat16"]),
    help="Base model weights in training and evaluation: auto is bf16 on a GPU, fp32 on a CPU; bfloat16 "
    "on a CPU with bf16 instructions is about 2x faster (LoRA weights stay fp32).",
)
@click.option(
    "--eval-limit", type=click.IntRange(min=1), help="Evaluate on the first N test programs [default: all of them]."
)
@click.option("--eval-batch-size", type=int, help="Generation batch size in evaluation [default: 16 GPU, 4 CPU].")
@click.option(
    "--eval-max-new-tokens",
    type=int,
    help="Tokens per completion of a trace prompt (CRUXEval's own prompts get its harness's 100 and 1000) "
    "[default: the longest reference trace of the evaluated programs + 32, plus --thinking-budget "
    "when the model thinks].",
)
@click.option(
    "--eval-greedy",
    is_flag=True,
    help="Greedy evaluation of a thinking run too [default there: temperature 0.6, top-p 0.95, top-k 20, "
    "seeded by --seed, as Qwen recommends for its thinking models; greedy for a model that answers "
    "directly].",
)
@click.option("--skip-base-eval", is_flag=True, help="Evaluate the adapter only, not the base model.")
@click.option(
    "--no-eval-cache",
    is_flag=True,
    help="Evaluate the base model again even when an identical earlier evaluation (same model, programs, "
    "decoding and libraries) is cached; cached figures are marked from_cache in the results.",
)
@click.option(
    "--benchmark",
    type=click.Choice(["cruxeval"]),
    help="Also evaluate on a public benchmark: cruxeval is CRUXEval-O through predicted traces (the items "
    "traced in the bubblewrap sandbox first), the base model also asked with CRUXEval's own prompts "
    "(--cruxeval-prompts); its figures go into the run record and the card.",
)
@_benchmark_data_option
@click.option("--benchmark-limit", type=int, help="Evaluate on the first N benchmark items [default: all of them].")
@_cruxeval_prompts_option
@_cruxeval_format_option
@click.option("--skip-sft-eval", is_flag=True, help="With a warm start, do not evaluate the SFT-only adapter too.")
@click.option(
    "--dataset-id",
    metavar="USER/NAME",
    help="The dataset's Hub id, for the card, when --dataset is a folder (with --push-only: the card is "
    "rendered again with it).",
)
@click.option("--license", help="The adapter's license.")
@click.option("--private", is_flag=True, help="Create the model repo as private.")
@click.option("--token", envvar="HF_TOKEN", show_envvar=True, help="Hub token [default: the logged-in token].")
@click.option("--no-push", is_flag=True, help="Train, evaluate and write the card, but keep everything local.")
@click.option(
    "--fail-on-no-signal",
    is_flag=True,
    help="Exit with an error, before any push, when the run learned nothing (adapter weights unchanged, "
    "lora_B all zero); the adapter, record and card stay on disk.",
)
@click.option(
    "--cpu-threads",
    type=int,
    help="Torch threads per process on a CPU [default: $OMP_NUM_THREADS if set, else 1: steady on a "
    "machine shared with other jobs; raise it on a dedicated machine].",
)
@click.option(
    "--push-only",
    is_flag=True,
    help="Push the adapter already trained in --output-dir (e.g. after a failed push); no training.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Plan the run and stop: resolve the settings, the model's config and tokenizer (no weights), the "
    "data and the budgets, print tokens, memory per GPU, steps and checkpoints, and write "
    "OUTPUT/plan.json.",
)
@click.option(
    "--gpu-memory-gb",
    type=click.FloatRange(min=1),
    help="GPU memory the plan must fit [default: the visible GPU's, else 80].",
)
@click.option(
    "--plan-gpus",
    type=click.IntRange(min=1),
    help="With --dry-run: plan for this many GPUs, even on a machine without one.",
)
@click.option(
    "--vllm-mode",
    type=click.Choice(["auto", "colocate", "server", "off"]),
    help="Generation in GRPO on GPUs: colocate runs vLLM inside each training process, sized by the plan "
    "(auto: when the vllm extra is installed); server uses `trl vllm-serve` on other GPUs (see the "
    "docs/vllm.md); off uses transformers' generate.",
)
@click.option(
    "--ddp-timeout",
    type=click.IntRange(min=1),
    help="Seconds a process waits for the others (after generation, after evaluation) with several processes.",
)
@_verbosity
def main(**options):
    """Train a LoRA adapter with GRPO (optionally after an SFT warm start) to predict execution traces, evaluate
    it against the base model on the test split, write a model card, and push it to the Hub.

    \b
    # the full run: Qwen3-4B-Thinking on a GPU, hours (docs/training.md has the plan)
    train-and-push --dataset data/execution-traces --repo-id you/qwen3-4b-exec-lora
    # a smoke test on a CPU, about 10 s on 2 cores (the caps keep tiny's generations short)
    train-and-push --dataset data/execution-traces --model tiny --max-steps 2 --no-push \\
      --max-completion-length 64 --eval-limit 8 --eval-max-new-tokens 64
    # a real small model (Qwen2.5-Coder-0.5B GGUF) on a CPU: 11 minutes on 2 cores in fp32
    train-and-push --dataset data/execution-traces --model M.gguf --sft-steps 4 --curriculum short-first \\
      --max-steps 1 --max-completion-length 256 --eval-limit 4 --eval-max-new-tokens 256 --no-push
    # two processes (gloo), about 15 s on 2 cores
    OMP_NUM_THREADS=1 torchrun --standalone --nproc_per_node 2 $(which train-and-push) --dataset DIR \\
      --model tiny --max-steps 2 --max-completion-length 64 --eval-limit 8 --eval-max-new-tokens 64 --no-push
    """
    process_started = _process_start_time()
    _show_log(options.pop("verbose") - options.pop("quiet"))
    # the options that are not settings; every other one is the TrainSettings field of its name
    push_only, no_push, no_eval_cache = options.pop("push_only"), options.pop("no_push"), options.pop("no_eval_cache")
    overrides = options.pop("set_values")
    cruxeval = _cruxeval_settings(options.pop("cruxeval_prompts"), options.pop("cruxeval_prompt_format"))
    if options["adapter_scale"] is None:
        options.pop("adapter_scale")
    given = SimpleNamespace(**options)
    if push_only:
        if not given.repo_id or not given.output_dir:
            raise click.UsageError("--push-only needs --output-dir (the earlier run's) and --repo-id.")
        if no_push:
            raise click.UsageError("--push-only and --no-push contradict each other.")
    elif not given.dataset:
        raise click.UsageError("--dataset is required (a folder saved by build-dataset, or a Hub dataset id).")
    if not no_push and not given.repo_id and not given.dry_run:
        raise click.UsageError("--repo-id USER/NAME is required unless --no-push is given.")
    if given.plan_gpus and not given.dry_run:
        raise click.UsageError("--plan-gpus goes with --dry-run.")
    if (given.benchmark_data or given.benchmark_limit) and not given.benchmark:
        raise click.UsageError("--benchmark-data and --benchmark-limit go with --benchmark cruxeval.")
    if cruxeval and not given.benchmark:
        raise click.UsageError("--cruxeval-prompts and --cruxeval-prompt-format go with --benchmark cruxeval.")
    overrides = _parse_set(overrides)
    _quiet_library_warnings()

    from pathlib import Path

    made = {}  # the settings, once made: what Ctrl-C says depends on them

    def interrupted() -> str:
        if "settings" not in made:
            return "Interrupted before training started; nothing was saved."
        from trainer.run import resume_hint

        settings = made["settings"]
        return f"Interrupted; what was saved is kept: {resume_hint(settings.resolved_output_dir(), settings.does_grpo)}"

    with user_errors(*_user_errors(), interrupted=interrupted):
        from trainer.push import push
        from trainer.run import run

        if push_only:
            url = push(
                Path(given.output_dir),
                given.repo_id,
                token=given.token,
                private=given.private,
                dataset_id=given.dataset_id,
            )
            click.echo(f"Pushed: {url}")
            return
        settings = made["settings"] = TrainSettings(
            **options, push=not no_push, eval_cache=not no_eval_cache, grpo_overrides=overrides, **cruxeval
        )
        output = settings.resolved_output_dir()
        if settings.dry_run:
            from trainer.run import dry_run as plan_only

            plan_only(settings)
            return
        try:
            result = run(settings, process_started=process_started)
        except PushError as exc:
            raise PushError(
                f"The push to {settings.repo_id} failed: {sentence(exc).rstrip('.')}. The trained adapter is "
                f"saved in {output / 'adapter'}; retry the push alone with: train-and-push --push-only "
                f"--output-dir {output} --repo-id {settings.repo_id}"
            ) from None
    if result.results is not None:  # the main process
        click.echo(f"Done in {result.seconds.get('total_with_push', 0):.0f} s. Adapter: {result.adapter_dir}")


def _cruxeval_settings(prompts, prompt_format) -> dict:
    """The CRUXEval prompt options that were given (the others keep the library's defaults)."""
    given = {"cruxeval_prompts": prompts, "cruxeval_prompt_format": prompt_format}
    return {k: v for k, v in given.items() if v is not None}


def _process_start_time() -> float:
    """When this process started (`time.time()` scale), for the start-up time in the run record."""
    import time

    try:
        import psutil

        return psutil.Process().create_time()
    except Exception:  # psutil comes with accelerate; without it the clock starts here
        return time.time()


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="execution-world-model")  # the distribution in pyproject.toml
@click.option("--dataset", metavar="DIR_OR_REPO_ID", help="A folder saved by build-dataset, or a Hub dataset id.")
@click.option(
    "--adapter",
    "adapter_dir",
    type=click.Path(file_okay=False),
    help="The adapter folder (OUTPUT/adapter of train-and-push).",
)
@click.option(
    "--model",
    help="Base model [default: the one the adapter was trained on]; with --benchmark and no "
    "--adapter, the model to evaluate.",
)
@click.option(
    "--benchmark",
    type=click.Choice(["cruxeval"]),
    help="A public benchmark instead of a dataset split: cruxeval is CRUXEval-O, each item traced as "
    "`<code>\\nresult = f(<input>)` and scored by the value of `result` in the last module-level "
    "state; the base model is also asked with CRUXEval's own prompts (--cruxeval-prompts).",
)
@_benchmark_data_option
@_cruxeval_prompts_option
@_cruxeval_format_option
@click.option(
    "--tracer-only",
    is_flag=True,
    help="With --benchmark: no model; the project's own tracer answers every item, scored the same way "
    "(anything short of 100% is a harness bug).",
)
@click.option(
    "--sandbox",
    type=click.Choice(["auto", "bwrap", "none"]),
    default="auto",
    show_default=True,
    help="With --benchmark: where the items are traced; auto is bubblewrap and refuses to run without it.",
)
@click.option("--split", default="test", show_default=True)
@click.option("--limit", type=int, help="Evaluate on the first N programs (or benchmark items) [default: all].")
@click.option("--batch-size", type=int, help="[default: 16 on a GPU, 4 on a CPU]")
@click.option(
    "--max-new-tokens",
    type=int,
    help="Tokens per completion of a trace prompt (CRUXEval's own prompts get its harness's 100 and 1000) "
    "[default: the longest reference trace + 32, plus the run's thinking budget when the model "
    "thinks].",
)
@click.option(
    "--greedy",
    is_flag=True,
    help="Greedy decoding for a thinking model too [default there: temperature 0.6, top-p 0.95, top-k 20].",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Sampling seed (thinking models).")
@click.option(
    "--prompt-style",
    type=click.Choice(["dataset", "short", "compact", "minimal"]),
    help="[default: the one the adapter was trained with; the base model gets compact where the adapter gets minimal]",
)
@click.option(
    "--dtype",
    type=click.Choice(["auto", "float32", "bfloat16"]),
    default="auto",
    show_default=True,
    help="Model weights: auto is what the adapter was trained with (else bf16 on a GPU, fp32 on a CPU).",
)
@click.option(
    "--adapter-scale",
    "adapter_scale_one",
    metavar="SCALE",
    callback=_adapter_scale,
    help="Evaluate the adapter with its LoRA update scaled by this (0.5: the weights halfway between the base's "
    "and the adapter's; a scaled copy, the folder is not changed); results say so and go to their own file "
    "[default: 1].",
)
@click.option("--no-base", is_flag=True, help="Evaluate the adapter only.")
@click.option(
    "--no-trace-base",
    is_flag=True,
    help="With --benchmark: ask the base model with CRUXEval's own prompts only, not in the trace notation "
    "(which it has not learnt, and which costs the most tokens).",
)
@click.option(
    "--backend",
    type=click.Choice(["auto", "vllm", "transformers"]),
    default="auto",
    show_default=True,
    help="Generation: auto is vLLM on a GPU where the vllm extra is installed (one process), else transformers.",
)
@click.option(
    "--no-cache",
    is_flag=True,
    help="Evaluate the base model again even when an identical earlier evaluation is cached.",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False),
    help="Results JSON, the predictions beside it [default: ADAPTER/evaluations/eval_results-SPLIT-N.json; "
    "with --benchmark ADAPTER/evaluations/cruxeval_results-N.json, or ./cruxeval_results.json "
    "without an adapter; the run's own eval_results.json is never replaced].",
)
@_verbosity
def evaluate_main(
    dataset,
    adapter_dir,
    model,
    benchmark,
    benchmark_data,
    cruxeval_prompts,
    cruxeval_prompt_format,
    tracer_only,
    sandbox,
    split,
    limit,
    batch_size,
    max_new_tokens,
    greedy,
    seed,
    prompt_style,
    dtype,
    adapter_scale_one,
    no_base,
    no_trace_base,
    output,
    no_cache,
    backend,
    verbose,
    quiet,
):
    """Evaluate a trained adapter and its base model on a dataset split, batched, with the thinking policy it was
    trained with (greedy unless the model thinks); prints the table of Execution Prediction Accuracy, Mean State
    Accuracy, output accuracy, format validity, mean reward and the share cut off at the token limit.

    \b
    # an adapter and its base on a dataset's test split: minutes to hours with the model (--limit N: first N)
    evaluate-traces --dataset DIR_OR_REPO --adapter DIR
    # CRUXEval-O through the adapter's traces, the base asked CRUXEval's way too (all 800 items: hours on a CPU)
    evaluate-traces --benchmark cruxeval --adapter DIR [--benchmark-data FILE_OR_REPO] [--limit N]
    # a 0.5B base alone, CRUXEval's direct prompt: the 800 items took 28 minutes on 2 cores (bf16, batches of 16)
    evaluate-traces --benchmark cruxeval --model M.gguf --cruxeval-prompts direct --no-trace-base --dtype bfloat16 \\
      --batch-size 16
    # the tracer alone, no model: 800 items in about 5 s
    evaluate-traces --benchmark cruxeval --tracer-only
    """
    _show_log(verbose - quiet)
    if benchmark:
        if dataset:
            raise click.UsageError("--dataset and --benchmark exclude each other: evaluate on one of them.")
        if tracer_only and (adapter_dir or model):
            raise click.UsageError("--tracer-only runs no model; leave out --adapter and --model.")
        if not tracer_only and not (adapter_dir or model):
            raise click.UsageError("--benchmark needs --adapter DIR or --model M (or --tracer-only).")
        if no_trace_base and cruxeval_prompts == ():  # --cruxeval-prompts none
            raise click.UsageError("--no-trace-base with --cruxeval-prompts none leaves nothing to ask the base model.")
        if tracer_only and (cruxeval_prompts is not None or cruxeval_prompt_format):
            raise click.UsageError(
                "--tracer-only asks no model; leave out --cruxeval-prompts and --cruxeval-prompt-format."
            )
    else:
        if tracer_only or benchmark_data or cruxeval_prompts is not None or cruxeval_prompt_format or no_trace_base:
            raise click.UsageError(
                "--tracer-only, --benchmark-data, --cruxeval-prompts, --cruxeval-prompt-format and "
                "--no-trace-base go with --benchmark cruxeval."
            )
        if not dataset or not adapter_dir:
            raise click.UsageError("--dataset and --adapter are required (or --benchmark cruxeval).")
    if limit is not None and limit < 1:
        raise click.UsageError("--limit must be at least 1.")
    scale = adapter_scale_one[0] if adapter_scale_one else 1.0
    if adapter_scale_one and not adapter_dir:
        raise click.UsageError("--adapter-scale scales an adapter: give --adapter DIR.")
    if tracer_only:
        _tracer_only(benchmark_data, limit, sandbox, output)
        return

    from pathlib import Path

    _quiet_library_warnings()
    interrupted = "Interrupted: no results were written (a base model's finished evaluation stays cached)."
    stack = contextlib.ExitStack()  # holds the scaled copy of the adapter, if any, until the evaluation is done
    with user_errors(*_user_errors(), interrupted=interrupted), stack:
        from trainer.evaluate import evaluate_adapter, format_table
        from trainer.models import resolve_model
        from trainer.scaling import scaled_copy

        adapter = Path(adapter_dir) if adapter_dir else None
        context = _adapter_context(adapter, model, prompt_style, dtype)
        scaled = f"-scale{scale:g}" if scale != 1 else ""  # a scaled adapter's results go to their own file
        common = dict(
            batch_size=batch_size,
            max_new_tokens=max_new_tokens,
            thinking=context.policy,
            thinking_budget=context.thinking_budget,
            greedy=greedy,
            seed=seed,
            output=output,
            include_base=not no_base or adapter is None,
            dtype=context.dtype,
            use_cache=not no_cache,
            backend=backend,
            prompt_style=context.prompt_style,
            labels={"adapter": f"Adapter, update x{scale:g}"} if scaled else None,
        )
        base = resolve_model(context.model, context.base_model)
        asked = stack.enter_context(scaled_copy(adapter, scale)) if adapter is not None else None
        if benchmark:
            from trainer.benchmark import RESULTS_FILE, evaluate_benchmark, prepare_benchmark
            from trainer.benchmark import format_table as format_benchmark

            bench = prepare_benchmark(benchmark_data, limit=limit, prompt_style=context.prompt_style, sandbox=sandbox)
            common["output"] = output or _own_file(adapter, RESULTS_FILE, f"{len(bench.rows)}{scaled}")
            results = evaluate_benchmark(
                base,
                asked,
                bench,
                **common,
                trace_base=not no_trace_base,
                direct_answers=context.direct_answers,
                direct_answers_only=context.direct_answers_only,
                direct_answers_format=context.direct_answers_format,
                **_cruxeval_settings(cruxeval_prompts, cruxeval_prompt_format),
            )
            table = format_benchmark
        else:
            from trainer.evaluate import RESULTS_FILE as EVAL_FILE
            from trainer.record import dataset_name

            rows = _split_rows(dataset, split, context.prompt_style, limit)
            common["output"] = output or _own_file(adapter, EVAL_FILE, f"{split}-{len(rows)}{scaled}")
            results = evaluate_adapter(base, asked, rows, dataset_name=dataset_name(dataset), split=split, **common)
            table = format_table
        written = common["output"]
    if results is None:  # not the main process (torchrun): the main one writes and prints
        return
    if scaled:  # the results name the adapter the user gave, and the scale it was asked at
        import json

        results = {**results, "adapter": str(adapter), "adapter_scale": scale}
        Path(written).write_text(json.dumps(results, indent=2) + "\n")
    click.echo(table(results))
    click.echo(f"Written: {written}")


def _own_file(adapter, results_file: str, what: str):
    """Where a separate evaluation's results go by default: ADAPTER/evaluations/NAME-WHAT.json, never over the
    run's own files (which its card and record were made from); ./NAME without an adapter."""
    from pathlib import Path

    if adapter is None:
        return Path(results_file)
    return adapter / "evaluations" / f"{results_file.removesuffix('.json')}-{what}.json"


@dataclasses.dataclass(frozen=True)
class AdapterContext:
    """How `evaluate-traces` asks a model: what the adapter's run record says, where the options do not."""

    model: str | None  # the base model to load
    base_model: str | None  # its Hub id, when `model` is a folder or a GGUF file
    policy: ThinkingPolicy | None  # the thinking it was trained with (None: the template's default)
    thinking_budget: int | None
    prompt_style: str
    dtype: str | None
    direct_answers: bool  # trained with --direct-answers: also asked CRUXEval's direct prompt
    direct_answers_only: bool  # trained on those alone: not asked in the trace notation
    direct_answers_format: str  # how it was asked them: chat or raw


def _adapter_context(adapter, model, prompt_style, dtype) -> AdapterContext:
    """What an adapter's run record says about evaluating it: its base model, thinking policy, thinking budget,
    prompt style and weights dtype (options given on the command line win)."""
    import json

    from trainer.settings import RUN_FILE, TrainError

    run_info, config = {}, {}
    if adapter is not None:
        if not (adapter / "adapter_config.json").is_file():
            raise TrainError(f"{adapter} holds no adapter_config.json, so it is not an adapter folder.")
        config = json.loads((adapter / "adapter_config.json").read_text())
        if (adapter / RUN_FILE).is_file():
            run_info = json.loads((adapter / RUN_FILE).read_text())
    training = run_info.get("training", {})
    policy = None
    if training.get("thinking"):
        policy = ThinkingPolicy(**training["thinking"])
    return AdapterContext(
        model=model or training.get("model") or config.get("base_model_name_or_path"),
        base_model=training.get("base_model"),
        policy=policy,
        thinking_budget=(training.get("completion_budget") or {}).get("thinking_budget"),
        prompt_style=prompt_style or training.get("prompt_style") or "dataset",
        dtype=training.get("weights_dtype") if dtype == "auto" else dtype,
        direct_answers=bool(training.get("direct_answers")),  # also ask it CRUXEval's direct prompt
        direct_answers_only=bool(training.get("direct_answers_only")),
        direct_answers_format=training.get("direct_answers_format") or "chat",  # records before it: chat
    )


def _split_rows(dataset, split, prompt_style, limit):
    """A dataset split's rows in the prompt style, the first `limit` of them."""
    from trainer.data import load_trace_dataset
    from trainer.prompts import apply_prompt_style
    from trainer.settings import TrainError

    data = load_trace_dataset(dataset, splits=(split,))
    if len(data[split]) == 0:
        raise TrainError(f"the {split} split of {dataset} is empty: there is nothing to evaluate.")
    try:
        rows = apply_prompt_style(data[split], prompt_style)
    except ValueError as exc:
        raise TrainError(str(exc)) from None
    return rows.select(range(min(limit, len(rows)))) if limit else rows


def _tracer_only(benchmark_data, limit, sandbox, output) -> None:
    """`--tracer-only`: the items traced in sandboxed workers and the tracer's own answers scored (no torch)."""
    import json
    from pathlib import Path

    from dataset_builder.benchmark import BenchmarkError
    from dataset_builder.sandbox import SandboxUnavailable
    from trainer.benchmark import (
        RESULTS_FILE,
        format_table,
        prepare_benchmark,
        scoring,
        tracer_results,
        write_tracer_predictions,
    )
    from trainer.evaluate import predictions_path

    with user_errors(BenchmarkError, SandboxUnavailable, interrupted="Interrupted: no results were written."):
        bench = prepare_benchmark(benchmark_data, limit=limit, sandbox=sandbox)
    results = tracer_results(bench)
    path = Path(output or RESULTS_FILE)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    write_tracer_predictions(bench, predictions_path(path, scoring()))
    click.echo(format_table(results))
    click.echo(f"Written: {path}")


if __name__ == "__main__":
    main()
