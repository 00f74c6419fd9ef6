"""CRUXEval-O through predicted traces: the items of `tests/cruxeval_fixture.jsonl` (CRUXEval's shape: `code`,
`input`, `output`, `id`) loaded from a file, from parquet and from the local test Hub; the project's own tracer
answering every one of them through the sandboxed workers (anything short of 100% is a harness bug); the `tiny`
model, base and adapter, through `evaluate-traces --benchmark cruxeval`; and `train-and-push --benchmark cruxeval`
writing the figures into the run record and the card."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dataset_builder.benchmark import (
    BenchmarkError,
    answer_of,
    item_of,
    literal,
    load_items,
    output_matches,
    program_of,
    score_completion,
)
from dataset_builder.trace import answer_text, parse_trace
from sandboxes import BWRAP, needs_bwrap

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = Path(__file__).resolve().parent / "cruxeval_fixture.jsonl"


def _items():
    return [json.loads(line) for line in FIXTURE.read_text().splitlines()]


def _evaluate_traces(args, env=None, cwd=None):
    """The real `evaluate-traces` in a subprocess (the console script where installed)."""
    script = Path(sys.executable).parent / "evaluate-traces"
    command = (
        [str(script)]
        if script.exists()
        else [sys.executable, "-c", "import sys; from trainer.cli import evaluate_main; sys.exit(evaluate_main())"]
    )
    return subprocess.run(
        command + args,
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
    )


# --- the fixture and the scoring --------------------------------------------------------------------------------


def test_the_fixture_has_the_shapes_that_make_cruxeval_hard_to_score():
    items = _items()
    assert len(items) >= 20 and len({i["id"] for i in items}) == len(items)
    assert all(set(i) == {"code", "input", "output", "id"} for i in items)
    inputs = {i["input"] for i in items}
    assert "(1, ), (1, ), (1, 2)" in inputs and "'abc', 2" in inputs  # several arguments
    outputs = [literal(i["output"]) for i in items]
    assert all(ok for ok, _ in outputs)  # every output is a Python literal
    values = [v for _, v in outputs]

    def walk(v):
        yield v
        if isinstance(v, dict):
            for k, x in v.items():
                yield from walk(k)
                yield from walk(x)
        elif isinstance(v, (list, tuple, set)):
            for x in v:
                yield from walk(x)

    inside = [x for v in values for x in walk(v)]
    assert {tuple, dict, set, list, str, int, float, bytes} <= {type(x) for x in inside}
    assert None in inside and True in inside and False in inside
    assert any(isinstance(x, (int, float)) and not isinstance(x, bool) and x < 0 for x in inside)
    assert any(isinstance(x, list) and any(isinstance(y, list) for y in x) for x in inside)  # nested containers
    strings = [x for x in inside if isinstance(x, str)]
    assert any("'" in s for s in strings) and any('"' in s for s in strings) and any("\\" in s for s in strings)
    assert any("</execution_trace>" in s for s in strings)  # the block's own tag inside a value
    assert any(len(s) > 160 for s in strings)  # longer than the builder's value cap


@pytest.mark.parametrize(
    "answer, output, right",
    [
        ("[(4,1),(4, 1)]", "[(4, 1), (4, 1)]", True),  # spacing does not matter
        ("{2: None, 1: None}", "{1: None, 2: None}", True),  # a dict is a dict in any order
        ("{'c', 'a', 'b'}", "{'a', 'b', 'c'}", True),  # so is a set
        ("\"say 'hi'\\\\n\"", "\"say 'hi'\\\\n\"", True),  # the same string, quoted either way
        ("'say \\'hi\\'\\\\n'", "\"say 'hi'\\\\n\"", True),
        ("(1, 2)", "[1, 2]", False),  # a tuple is not a list
        ("'1'", "1", False),
        ("-0.5", "-0.5", True),
        ("1.0", "1", True),  # Python's ==, as CRUXEval's own harness compares
        ("inf", "inf", True),  # not literals on either side: the texts
        ("inf", "-inf", False),
        ("<truncated 5000 chars: 'xx'>", "'xx'", False),
        (None, "None", False),  # no answer at all
        ("None", "None", True),
    ],
)
def test_answers_are_compared_as_python_values(answer, output, right):
    assert output_matches(answer, output) is right


def test_the_answer_is_result_in_the_last_module_level_state():
    trace = (
        "<execution_trace>\nLine 1: State: {}\n  Call f at line 1: State: {x=1}\n"
        "  Line 2 in f: State: {x=1, result=99}\n  Return from f at line 2: 2\nLine 3: State: {result=2}\n"
        "</execution_trace>"
    )
    assert answer_of(parse_trace(answer_text(trace))) == "2"
    assert answer_of(parse_trace(answer_text("Line 3: State: {result=2}"))) is None  # no trace block: no answer
    assert answer_of(parse_trace(answer_text(trace.replace("result=2", "r=2")))) is None
    # a thinking model: the answer is read after the last </think>, a draft in the thinking does not count
    drafted = "<think>\n" + trace.replace("result=2", "result=5") + "</think>\n\n" + trace
    assert score_completion(drafted, "2")["output_match"] is True
    assert score_completion("<think>\n" + trace, "2") == {"answer": None, "output_match": False, "valid_format": False}


def test_the_model_scorer_reads_a_thinking_completion_as_the_reward_does():
    """`trainer.benchmark`'s per-item scorer (what base and adapter are scored with): with a template that opens
    `<think>` the completion starts inside it."""
    from trainer.benchmark import _score

    row = {"output": "'abcabc2'"}
    trace = "<execution_trace>\nLine 3: State: {result='abcabc2'}\n</execution_trace>"
    assert _score(row, "thinking...</think>\n\n" + trace, True)["output_match"] is True
    assert _score(row, trace, True)["output_match"] is False  # still thinking: cut off before </think>
    assert _score(row, trace, False) == {
        "answer": "'abcabc2'",
        "output_match": True,
        "valid_format": True,
        "expected": "'abcabc2'",
    }


def test_the_figures_are_means_over_the_items():
    from dataset_builder.benchmark import summarize

    trace = "<execution_trace>\nLine 3: State: {result=%s}\n</execution_trace>"
    completions = [
        (trace % "[1, 2]", "[1,2]", False),
        (trace % "(1, 2)", "[1, 2]", False),
        ("Line 3: State: {result=3}", "3", True),
        (trace % "'a'", "'a'", False),
    ]
    records = [{**score_completion(c, output), "cut_off": cut} for c, output, cut in completions]
    assert [r["output_match"] for r in records] == [True, False, False, True]
    assert summarize(records) == {
        "n": 4,
        "output_accuracy": 0.5,
        "valid_format": 0.75,
        "answered": 0.75,
        "cut_off": 0.25,
    }
    assert "cut_off" not in summarize([{k: v for k, v in r.items() if k != "cut_off"} for r in records])


# --- loading: files, parquet, errors ---------------------------------------------------------------------------


def test_items_load_from_jsonl_and_parquet_alike(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    items = load_items(str(FIXTURE))
    assert items == [{"id": i["id"], "code": i["code"], "input": i["input"], "output": i["output"]} for i in _items()]
    pq.write_table(pa.Table.from_pylist(_items()), tmp_path / "crux.parquet")
    assert load_items(str(tmp_path / "crux.parquet")) == items
    assert load_items(str(FIXTURE), limit=3) == items[:3]
    assert program_of(items[2]) == items[2]["code"] + "\nresult = f('abc', 2)"


def test_a_function_called_with_literals_reads_back_as_an_item():
    """`item_of` undoes `program_of` for every fixture item, and refuses what is not one function called once with
    literal arguments (the answer would need more than the function to work out) or whose output is no literal."""
    for item in load_items(str(FIXTURE)):
        assert item_of(program_of(item), item["output"]) == {k: item[k] for k in ("code", "input", "output")}
    function = "def f(x):\n    return x * 2"
    assert item_of(f"{function}\nresult = f(x=[1, 2])", "[1, 2, 1, 2]")["input"] == "x=[1, 2]"
    assert item_of(f"{function}\nresult = f(3)", "<truncated 900 chars: '...'>") is None  # no literal output
    for program in (
        f"{function}\nresult = f(len('ab'))",  # a call in the arguments
        f"s = 2\n{function}\nresult = f(s)",  # module-level state
        f"{function}\nresult = f(3) + 1",
        f"{function}\nvalue = f(3)",
        "def g(x):\n    return x\nresult = g(3)",
        "result = f(3)",
        f"{function}\nresult = f(3",
    ):
        assert item_of(program, "6") is None, program


@pytest.mark.parametrize(
    "content, name, message",
    [
        (None, "missing.jsonl", "does not exist"),
        ('{"code": "def f(x):\\n    return x", "input": "1"}\n', "no_output.jsonl", "has no output column"),
        ('{"code": "def f(x): return x", "input": "1", "output": "1"}\nnot json\n', "bad.jsonl", "line 2 of"),
        ('{"code": "def f(x): return x", "input": 1, "output": "1"}\n', "number.jsonl", "must be text"),
        ("", "empty.jsonl", "holds no benchmark items"),
        ("x", "items.csv", "neither a .jsonl nor a .parquet file"),
        ("not parquet", "broken.parquet", "is not a readable parquet file"),
        (None, "a/b/c", "does not exist"),
        (None, "nobody/no-such-benchmark", "could not load the benchmark nobody/no-such-benchmark"),  # offline Hub
    ],
)
def test_bad_benchmark_data_is_one_sentence_and_exit_1(tmp_path, content, name, message):
    if content is not None:
        (tmp_path / name).write_text(content)
    with pytest.raises(BenchmarkError, match=message):
        load_items(str(tmp_path / name) if content is not None else name)
    done = _evaluate_traces(["--benchmark", "cruxeval", "--tracer-only", "--benchmark-data", name], cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and message.lower() in done.stderr.lower()
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


# --- the tracer-only check --------------------------------------------------------------------------------------


@needs_bwrap
def test_tracer_only_scores_every_fixture_item_right_through_the_cli(tmp_path):
    out = tmp_path / "tracer.json"
    code = (
        "import sys\nfrom trainer.cli import evaluate_main\n"
        f"evaluate_main(['--benchmark', 'cruxeval', '--tracer-only', '--benchmark-data', {str(FIXTURE)!r}, "
        f"'--output', {str(out)!r}], standalone_mode=False)\n"
        "heavy = ('torch', 'transformers', 'datasets', 'trl', 'peft')\n"
        "print('HEAVY', sorted(m for m in heavy if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "HEAVY []" in done.stdout  # no model, no torch, no datasets for a local file: no training extra needed
    results = json.loads(out.read_text())
    n = len(_items())
    assert results["benchmark"] == "cruxeval" and results["n"] == n
    assert results["models"] == {"tracer": {"n": n, "output_accuracy": 1.0, "valid_format": 1.0, "answered": 1.0}}
    assert "bubblewrap" in done.stdout and "| CRUXEval-O output accuracy | 100.0% |" in done.stdout
    predictions = [json.loads(line) for line in (tmp_path / "tracer-predictions.jsonl").read_text().splitlines()]
    assert [p["id"] for p in predictions] == [i["id"] for i in _items()]
    for p, item in zip(predictions, _items()):  # the tracer's answer is the value the function returns
        assert literal(p["answer"])[1] == literal(item["output"])[1], p


@needs_bwrap
def test_compact_traces_answer_every_fixture_item_as_the_full_ones_do():
    """A model trained on the compact notation is scored on the benchmark the same way: the compact form of each
    item's reference trace still answers it right (`result` read from the expanded last module-level state)."""
    from dataset_builder.benchmark import reference_traces, trace_items
    from trainer.prompts import target_for

    items = _items()
    references = reference_traces(trace_items(items, sandbox=BWRAP))
    compact = [target_for("compact", reference) for reference in references]
    assert sum(map(len, compact)) < sum(map(len, references))
    assert [score_completion(c, item["output"])["output_match"] for c, item in zip(compact, items)] == [True] * len(
        items
    )


@needs_bwrap
def test_benchmark_items_run_in_the_sandbox_never_in_this_process(tmp_path):
    """An item is code from elsewhere: the one that writes a file beside the tests writes nothing here."""
    from dataset_builder.benchmark import trace_items, tracer_scores

    target = tmp_path / "written"
    items = [
        {
            "id": "w",
            "code": "def f(p):\n    open(p, 'w').write('x')\n    return 'wrote'",
            "input": repr(str(target)),
            "output": "'wrote'",
        }
    ]
    traces = trace_items(items, sandbox=BWRAP)
    assert not target.exists()
    assert (
        "FileNotFoundError" in traces[0].error or "PermissionError" in traces[0].error or "OSError" in traces[0].error
    ), traces[0]
    assert tracer_scores(items, traces)[0]["output_match"] is False


@needs_bwrap
def test_the_hub_loader_reads_a_dataset_pushed_to_the_test_hub(hub_server, tmp_path):
    from datasets import Dataset

    token = hub_server.add_user("user")
    Dataset.from_list(_items()).push_to_hub("user/cruxeval", split="test", token=token)
    env = hub_server.env(token, tmp_path / "home")
    out = tmp_path / "hub.json"
    done = _evaluate_traces(
        [
            "--benchmark",
            "cruxeval",
            "--tracer-only",
            "--benchmark-data",
            "user/cruxeval",
            "--output",
            str(out),
            "--limit",
            "21",
        ],
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(out.read_text())
    assert results["dataset"] == "user/cruxeval" and results["n"] == 21 and results["limit"] == 21
    assert results["models"]["tracer"]["output_accuracy"] == 1.0
    missing = _evaluate_traces(
        ["--benchmark", "cruxeval", "--tracer-only", "--benchmark-data", "user/nothing"], env=env, cwd=tmp_path
    )
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert "Could not load the benchmark user/nothing (split test) from the Hub" in missing.stderr
    wrong = Dataset.from_list([{"code": i["code"], "answer": i["output"]} for i in _items()])
    wrong.push_to_hub("user/wrong-columns", split="test", token=token)
    bad = _evaluate_traces(
        ["--benchmark", "cruxeval", "--tracer-only", "--benchmark-data", "user/wrong-columns"], env=env, cwd=tmp_path
    )
    assert bad.returncode == 1 and "has no input, output columns" in bad.stderr and "Traceback" not in bad.stderr


# --- models: evaluate-traces and train-and-push -----------------------------------------------------------------


def _recomputed(predictions, model):
    """The benchmark's figures for `model`, recomputed from its completions with the trace contract alone."""
    from trainer.rewards import THINK_OPEN

    rows = [p for p in predictions if p["model"] == model]
    right = [
        output_matches(answer_of(parse_trace(answer_text(THINK_OPEN + p["completion"]))), p["expected"]) for p in rows
    ]
    valid = [parse_trace(answer_text(THINK_OPEN + p["completion"])).valid for p in rows]
    return {
        "output_accuracy": sum(right) / len(rows),
        "valid_format": sum(valid) / len(rows),
        "cut_off": sum(p["cut_off"] for p in rows) / len(rows),
    }


def _recomputed_cruxeval(predictions, model, prompt, chat):
    """A base entry asked with CRUXEval's prompt, recomputed: the answer read from each completion as CRUXEval's
    harness reads it (the tiny model's template opens `<think>`, so a chat completion starts inside it; a raw one
    has no template), right when it is a literal equal to the expected output."""
    from dataset_builder.cruxeval_prompts import extract_answer
    from trainer.rewards import THINK_OPEN

    rows = [p for p in predictions if p["model"] == model]
    for p in rows:
        answer = extract_answer((THINK_OPEN if chat else "") + p["completion"], prompt, chat) or None
        assert p["answer"] == answer, (model, p)
        assert p["output_match"] == bool(answer and literal(answer)[0] and output_matches(answer, p["expected"]))
    return {
        "output_accuracy": sum(p["output_match"] for p in rows) / len(rows),
        "cut_off": sum(p["cut_off"] for p in rows) / len(rows),
    }


BASES = {
    "base_cruxeval_direct_raw": ("direct", False),
    "base_cruxeval_direct_chat": ("direct", True),
    "base_cruxeval_cot_raw": ("cot", False),
    "base_cruxeval_cot_chat": ("cot", True),
}


@needs_bwrap
def test_evaluate_traces_benchmark_base_and_adapter_on_tiny(trained_run, tmp_path):
    """The real command on the tiny model: the base asked with both of CRUXEval's prompts, raw and through the chat
    template, and in the trace notation, then the adapter; every figure is the mean of the per-item scores, and the
    adapter is compared with the best base entry on the same items."""
    from click.testing import CliRunner

    from trainer.cli import evaluate_main

    adapter = trained_run["result"].adapter_dir
    out = tmp_path / "crux.json"
    result = CliRunner().invoke(
        evaluate_main,
        [
            "--benchmark",
            "cruxeval",
            "--adapter",
            str(adapter),
            "--benchmark-data",
            str(FIXTURE),
            "--limit",
            "4",
            "--max-new-tokens",
            "8",
            "--output",
            str(out),
            "--cruxeval-prompt-format",
            "both",
        ],
    )
    assert result.exit_code == 0, result.output
    results = json.loads(out.read_text())
    assert results["benchmark"] == "cruxeval" and results["n"] == 4
    assert list(results["models"]) == [*BASES, "base_trace", "adapter"]
    assert results["tracer_check"]["output_accuracy"] == 1.0
    predictions = [json.loads(line) for line in (tmp_path / "crux-predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == 4 * 6
    for model in ("base_trace", "adapter"):
        figures = results["models"][model]
        assert figures["n"] == 4
        for key, value in _recomputed(predictions, model).items():
            assert figures[key] == pytest.approx(value), (model, key)
    for model, (prompt, chat) in BASES.items():
        assert results["models"][model]["n"] == 4
        for key, value in _recomputed_cruxeval(predictions, model, prompt, chat).items():
            assert results["models"][model][key] == pytest.approx(value), (model, key)
        asked = results["base_prompts"][model]
        assert (asked["prompt"], asked["format"]) == (f"cruxeval_{prompt}", "chat" if chat else "raw")
        # CRUXEval's own budgets (--max-new-tokens is the trace prompts'), the CPU thinking budget where it thinks
        assert asked["max_new_tokens"] == {"direct": 100, "cot": 1000}[prompt] + (64 if chat else 0)
        assert asked["stop_at"] == (None if chat else "[/ANSWER]")  # the tiny model thinks through its template
    bases = [m for m in results["models"] if m.startswith("base")]
    best = results["best_base"]
    assert best in bases and results["models"][best]["output_accuracy"] == max(
        results["models"][m]["output_accuracy"] for m in bases
    )
    low, high = results["paired_difference_ci95"]
    difference = results["models"]["adapter"]["output_accuracy"] - results["models"][best]["output_accuracy"]
    assert results["paired_difference"] == pytest.approx(difference) and low <= difference <= high
    assert results["paired_n"] == 4 and "bootstrap" in results["paired_difference_method"]
    header = result.output.splitlines()[
        result.output.splitlines().index("CRUXEval-O on 4 items from cruxeval_fixture.jsonl (a local file):") + 1
    ]
    assert header == (
        "| Metric | Base, CRUXEval's direct prompt, raw completion | Base, CRUXEval's direct prompt, "
        "chat template | Base, CRUXEval's chain-of-thought prompt, raw completion | Base, CRUXEval's "
        "chain-of-thought prompt, chat template | Base, trace prompt | Adapter |"
    )
    assert "| Items | 4 | 4 | 4 | 4 | 4 | 4 |" in result.output
    assert "The adapter answers" in result.output and "paired 95% interval" in result.output
    # the test split's files next to the adapter are left alone
    assert json.loads((adapter / "eval_results.json").read_text()).get("benchmark") is None


@needs_bwrap
def test_the_base_alone_asked_with_cruxevals_prompts_only(model_cache, tmp_path):
    """`--model M --no-trace-base`: the base model's figures the way CRUXEval asks, without the trace notation
    (which it has not learnt and which costs the most tokens); no adapter, so no comparison."""
    from click.testing import CliRunner

    from trainer.cli import evaluate_main

    out = tmp_path / "crux.json"
    result = CliRunner().invoke(
        evaluate_main,
        [
            "--benchmark",
            "cruxeval",
            "--model",
            "tiny",
            "--benchmark-data",
            str(FIXTURE),
            "--limit",
            "3",
            "--cruxeval-prompts",
            "direct",
            "--cruxeval-prompt-format",
            "raw",
            "--no-trace-base",
            "--output",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    results = json.loads(out.read_text())
    assert list(results["models"]) == ["base_cruxeval_direct"] and results["models"]["base_cruxeval_direct"]["n"] == 3
    assert results["best_base"] == "base_cruxeval_direct" and "paired_difference_ci95" not in results
    predictions = [json.loads(line) for line in (tmp_path / "crux-predictions.jsonl").read_text().splitlines()]
    figures = _recomputed_cruxeval(predictions, "base_cruxeval_direct", "direct", False)
    assert results["models"]["base_cruxeval_direct"]["output_accuracy"] == pytest.approx(figures["output_accuracy"])
    result = CliRunner().invoke(
        evaluate_main, ["--benchmark", "cruxeval", "--model", "tiny", "--no-trace-base", "--cruxeval-prompts", "none"]
    )
    assert result.exit_code == 2 and "leaves nothing to ask the base model" in result.output
    result = CliRunner().invoke(
        evaluate_main, ["--dataset", str(tmp_path), "--adapter", str(tmp_path), "--no-trace-base"]
    )
    assert result.exit_code == 2 and "go with --benchmark cruxeval" in result.output


@needs_bwrap
def test_train_and_push_with_the_benchmark_writes_it_into_the_record_and_the_card(tiny_dataset, model_cache, tmp_path):
    from click.testing import CliRunner

    from trainer.cli import main

    output = tmp_path / "run"
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
            "8",
            "--eval-limit",
            "1",
            "--eval-max-new-tokens",
            "8",
            "--no-push",
            "--output-dir",
            str(output),
            "--benchmark",
            "cruxeval",
            "--benchmark-limit",
            "3",
            "--benchmark-data",
            str(FIXTURE),
            "--cruxeval-prompts",
            "direct",
            "--cruxeval-prompt-format",
            "raw",
        ],
    )
    assert result.exit_code == 0, result.output
    adapter = output / "adapter"
    run = json.loads((adapter / "training_run.json").read_text())
    crux = run["evaluation"]["benchmarks"]["cruxeval"]
    assert crux["n"] == 3 and crux["limit"] == 3 and crux["dataset"] == "cruxeval_fixture.jsonl (a local file)"
    assert list(crux["models"]) == ["base_cruxeval_direct", "base_trace", "adapter"]
    assert crux["base_prompts"]["base_cruxeval_direct"]["format"] == "raw"
    assert crux["tracer_check"]["output_accuracy"] == 1.0
    assert json.loads((adapter / "eval_results.json").read_text())["benchmarks"]["cruxeval"] == crux
    assert json.loads((adapter / "cruxeval_results.json").read_text()) == crux
    predictions = [json.loads(line) for line in (adapter / "cruxeval_predictions.jsonl").read_text().splitlines()]
    for model in ("base_trace", "adapter"):
        assert crux["models"][model]["output_accuracy"] == pytest.approx(
            _recomputed(predictions, model)["output_accuracy"]
        )
    assert crux["models"]["base_cruxeval_direct"]["output_accuracy"] == pytest.approx(
        _recomputed_cruxeval(predictions, "base_cruxeval_direct", "direct", False)["output_accuracy"]
    )
    assert {
        "evaluate_cruxeval_base_cruxeval_direct",
        "evaluate_cruxeval_base_trace",
        "evaluate_cruxeval_adapter",
    } <= set(run["timings"])

    card = (adapter / "README.md").read_text()
    best, trained = crux["best_base"], 100 * crux["models"]["adapter"]["output_accuracy"]
    base = 100 * crux["models"][best]["output_accuracy"]
    how = {"base_cruxeval_direct": "CRUXEval's direct prompt, raw completion", "base_trace": "trace prompt"}[best]
    assert f"| CRUXEval-O output accuracy (3 items) | {base:.1f}% ({how}) | {trained:.1f}% |" in card
    assert "the first 3 items of CRUXEval" in card and str(FIXTURE) not in card
    assert "| Metric | Base, CRUXEval's direct prompt, raw completion | Base, trace prompt | Adapter |" in card
    assert "paired 95% interval" in card
    # every training program was checked against every item of the file (not only the 3 evaluated)
    items = len(FIXTURE.read_text().splitlines())
    overlap = crux["training_overlap"]
    assert overlap["items_checked"] == items and overlap["training_programs_checked"] == run["training"]["train_rows"]
    assert overlap["shared_structure"] == 0 and f"against the {items} CRUXEval items, and none shared" in card
    meta = yaml.safe_load(card.split("---")[1])
    entry = meta["model-index"][0]["results"][1]
    assert entry["dataset"]["type"] == "cruxeval-org/cruxeval" and entry["dataset"]["split"] == "test"
    assert "3 items from cruxeval_fixture.jsonl" in entry["dataset"]["name"]
    assert entry["metrics"] == [
        {
            "type": "accuracy",
            "name": "CRUXEval-O output accuracy",
            "value": round(crux["models"]["adapter"]["output_accuracy"], 4),
        }
    ]


def test_a_direct_answer_holds_the_traced_repr_of_result():
    """The answer is the value the tracer recorded for `result`, as Python prints it (not the whitespace-free form
    scores compare); a program that is no function call, a call that raised (no `result`), or one whose output the
    harness would cut at `==`, gives none."""
    from trainer.answers import answer_examples

    def row(code, result):
        trace = f"<execution_trace>\nLine 1: State: {{}}\nLine 3: State: {{result={result}}}\n</execution_trace>"
        return {"id": code, "code": code, "expected_trace": trace}

    call = "def f(x):\n    return [x, (x, 'a b')]\nresult = f(1)"
    raised = {
        "id": "raised",
        "code": call,
        "expected_trace": "<execution_trace>\nLine 3: State: {}\nException at line 3: IndexError: out of range\n"
        "</execution_trace>",
    }
    rows = [row(call, "[1, (1, 'a b')]"), row("x = 1\ny = 2\nresult = x", "1"), row(call, "'a == b'"), raised]
    [example] = answer_examples(rows)
    assert example["answer"] == "assert f(1) == [1, (1, 'a b')]\n[/ANSWER]"
    assert example["prompt"].endswith("return [x, (x, 'a b')]\nassert f(1) == ??\n[/PYTHON]\n[ANSWER]\n")


def test_grpo_mixes_direct_answer_prompts_into_the_traces_and_each_reward_scores_its_own_rows():
    """GRPO's prompts under --direct-answers: the traces with the direct-answer prompts spread through them; the
    trace reward scores traces and leaves direct answers (None), the direct-answer reward the reverse, with 1.0 only
    for the traced value as the harness reads it (a thinking model's answer after `</think>`)."""
    from datasets import Dataset

    from trainer.answers import INPUT_COLUMN, OUTPUT_COLUMN, DirectAnswerReward, answer_examples, grpo_rows
    from trainer.rewards import ExecutionReward

    def row(i):
        code = f"def f(x):\n    return x + {i}\nresult = f(1)"
        trace = f"<execution_trace>\nLine 3: State: {{result={i + 1}}}\n</execution_trace>"
        prompt = [{"role": "user", "content": f"Trace program {i}"}]
        return {"id": str(i), "code": code, "expected_trace": trace, "prompt": prompt, "steps": 1}

    rows = Dataset.from_list([row(i) for i in range(4)])
    answers = answer_examples(rows)[:2]
    mixed = grpo_rows(rows, answers)
    assert len(mixed) == 6 and [r[OUTPUT_COLUMN] for r in mixed] == [None, "1", None, None, "2", None]
    assert mixed[1]["prompt"] == [{"role": "user", "content": answers[0]["prompt"]}] and mixed[1]["code"] is None
    only = grpo_rows(rows, answers, only=True)
    assert only.column_names == ["prompt", INPUT_COLUMN, OUTPUT_COLUMN] and len(only) == 2
    assert grpo_rows(rows, answers, only=True, form="raw")["prompt"] == [a["prompt"] for a in answers]  # plain text
    batch = {c: mixed[c][:2] for c in mixed.column_names}  # a trace row, then a direct-answer row
    right, wrong = "assert f(1) == 1\n[/ANSWER]", "assert f(1) == '1'\n[/ANSWER]"
    trace_scores = ExecutionReward()(completions=[batch["expected_trace"][0], right], **batch)
    assert trace_scores[0] == 1.0 and trace_scores[1] is None
    direct = DirectAnswerReward()
    assert direct(completions=["junk", right], **batch) == [None, 1.0]
    assert direct(completions=["junk", wrong], **batch) == [None, 0.0]
    assert DirectAnswerReward(thinking=True)(completions=["x", "so 1\n</think>\n" + right], **batch)[1] == 1.0
    assert DirectAnswerReward(thinking=True)(completions=["x", right], **batch)[1] == 0.0  # still thinking


def test_the_lazy_answer_penalty_scores_answers_that_skip_the_work_below_other_wrong_ones():
    """--lazy-answer-penalty: a wrong direct answer that gives the call's first argument back unchanged, or no
    literal at all, scores minus the penalty; any other wrong answer 0; giving the argument back where it is the
    result is right (1). Without the penalty every wrong answer scores 0."""
    from trainer.answers import INPUT_COLUMN, OUTPUT_COLUMN, DirectAnswerReward

    batch = {INPUT_COLUMN: ["'abc', 2"] * 5 + ["1", "[1, 2]"], OUTPUT_COLUMN: ["'abcabc'"] * 5 + ["2", "[1, 2]"]}
    answers = ["'abcabc'", "'abc'", "'ab'", "2", "f('abc', 2)", "True", "[1, 2]"]
    completions = [f"assert f({i}) == {a}\n[/ANSWER]" for i, a in zip(batch[INPUT_COLUMN], answers, strict=True)]
    # right; the first argument back; wrong; the second argument (not skipping); the call, no literal; True is not
    # the argument 1; the first argument back where that is the result
    assert DirectAnswerReward(lazy_penalty=0.5)(completions=completions, **batch) == [1, -0.5, 0, 0, -0.5, 0, 1]
    assert DirectAnswerReward()(completions=completions, **batch) == [1, 0, 0, 0, 0, 0, 1]
    assert DirectAnswerReward(lazy_penalty=0.5)(completions=["nothing"], **{k: v[:1] for k, v in batch.items()}) == [
        -0.5
    ]


@needs_bwrap
def test_direct_answers_train_function_calls_and_compare_the_adapter_asked_that_way(model_cache, tmp_path):
    """`--direct-answers`: every training program that is a function called with literal arguments is also an SFT
    example of CRUXEval's direct prompt answered with its traced result; CRUXEval asks the adapter both ways and
    compares the base with it asked the way it was trained to answer."""
    from click.testing import CliRunner
    from datasets import load_from_disk

    from dataset_builder.cli import main as build_main
    from trainer.answers import answer_examples
    from trainer.cli import main
    from trainer.models import load_model

    data = tmp_path / "data"
    built = CliRunner().invoke(
        build_main,
        [
            "--n",
            "8",
            "--test-size",
            "2",
            "--drill-share",
            "0.5",
            "--drill-kind",
            "calls",
            "--output",
            str(data),
            "--quiet",
        ],
    )
    assert built.exit_code == 0, built.output
    answers = answer_examples(load_from_disk(str(data))["train"])
    assert len(answers) >= 4 and all(a["prompt"].startswith("You are given a Python function") for a in answers)
    assert all(a["answer"].startswith("assert f(") and a["answer"].endswith("\n[/ANSWER]") for a in answers)
    output = tmp_path / "run"
    result = CliRunner().invoke(
        main,
        [
            "--dataset",
            str(data),
            "--model",
            "tiny",
            "--sft-steps",
            "2",
            "--max-steps",
            "0",
            "--direct-answers",
            "--eval-limit",
            "1",
            "--eval-max-new-tokens",
            "8",
            "--no-push",
            "--output-dir",
            str(output),
            "--benchmark",
            "cruxeval",
            "--benchmark-limit",
            "3",
            "--benchmark-data",
            str(FIXTURE),
            "--cruxeval-prompts",
            "direct",
            "--cruxeval-prompt-format",
            "raw",
        ],
    )
    assert result.exit_code == 0, result.output
    adapter = output / "adapter"
    run = json.loads((adapter / "training_run.json").read_text())
    assert run["training"]["direct_answers"] == len(answers)
    assert run["training"]["sft"]["rows"] == run["training"]["train_rows"] + len(answers)
    crux = run["evaluation"]["benchmarks"]["cruxeval"]
    assert list(crux["models"]) == ["base_cruxeval_direct", "base_trace", "adapter", "adapter_cruxeval_direct"]
    assert crux["adapter_prompts"]["adapter_cruxeval_direct"]["format"] == "chat"
    assert crux["compared_adapter"] == "adapter_cruxeval_direct" and crux["paired_n"] == 3
    predictions = [json.loads(line) for line in (adapter / "cruxeval_predictions.jsonl").read_text().splitlines()]
    assert crux["models"]["adapter_cruxeval_direct"]["output_accuracy"] == pytest.approx(
        _recomputed_cruxeval(predictions, "adapter_cruxeval_direct", "direct", True)["output_accuracy"]
    )
    card = (adapter / "README.md").read_text()
    assert "| Direct answers |" in card and "the comparison is with it asked that way" in card
    assert "| SFT only | SFT only, CRUXEval's direct prompt, chat template |" in card  # --max-steps 0: SFT only
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["model-index"][0]["results"][1]["metrics"][0]["value"] == round(
        crux["models"]["adapter_cruxeval_direct"]["output_accuracy"], 4
    )

    def grpo(output, *options):
        """A GRPO run without a warm start: 2 steps of one prompt, 2 completions each."""
        result = CliRunner().invoke(
            main,
            ["--dataset", str(data), "--model", "tiny", "--max-steps", "2", "--num-generations", "2", *options]
            + ["--eval-limit", "1", "--eval-max-new-tokens", "8", "--no-push", "--output-dir", str(output)],
        )
        assert result.exit_code == 0, result.output
        history = json.loads((output / "adapter" / "training_log.json").read_text())
        return json.loads((output / "adapter" / "training_run.json").read_text()), [h for h in history if "reward" in h]

    # GRPO with --direct-answers: the traces and the direct answers, each logged under its own reward
    run, steps = grpo(tmp_path / "mixed", "--direct-answers")
    assert run["training"]["rewards"] == ["execution_reward", "direct_answer_reward"]
    assert run["training"]["train_rows"] == run["dataset"]["train_split_rows"] + len(answers)
    assert len(steps) == 2 and all("rewards/direct_answer_reward/mean" in h for h in steps)
    # --direct-answers-only: GRPO on the direct-answer prompts alone, rewarded by the traced value
    only = tmp_path / "only"
    benchmark = ["--benchmark", "cruxeval", "--benchmark-limit", "3", "--benchmark-data", str(FIXTURE)]
    run, steps = grpo(only, "--direct-answers-only", *benchmark, "--cruxeval-prompts", "direct")
    training = run["training"]
    assert training["direct_answers_only"] and training["rewards"] == ["direct_answer_reward"]
    assert training["train_rows"] == training["direct_answer_prompts"] == len(answers)
    tokenizer = load_model("tiny")[0]
    longest_answer = max(len(tokenizer(a["answer"], add_special_tokens=False).input_ids) for a in answers)
    assert training["completion_budget"]["longest_reference_tokens"] == longest_answer  # an answer's, not a trace's
    assert len(steps) == 2 and all(h["rewards/direct_answer_reward/mean"] in (0.0, 0.5, 1.0) for h in steps)
    card = (only / "adapter" / "README.md").read_text()
    assert "trained to answer CRUXEval's direct output prompt through the chat template alone" in card
    # asked only CRUXEval's direct prompt: it never learnt the trace notation, so nobody is asked in it there
    crux = run["evaluation"]["benchmarks"]["cruxeval"]
    assert sorted(crux["models"]) == ["adapter_cruxeval_direct", "base_cruxeval_direct"]
    assert crux["compared_adapter"] == "adapter_cruxeval_direct" and crux["paired_n"] == 3
    # without a function call among the programs, it is refused in one sentence
    plain = tmp_path / "plain"
    assert (
        CliRunner().invoke(build_main, ["--n", "6", "--test-size", "2", "--output", str(plain), "--quiet"]).exit_code
        == 0
    )
    refused = CliRunner().invoke(
        main,
        [
            "--dataset",
            str(plain),
            "--model",
            "tiny",
            "--sft-steps",
            "1",
            "--max-steps",
            "0",
            "--direct-answers",
            "--no-push",
            "--output-dir",
            str(tmp_path / "plain-run"),
        ],
    )
    assert refused.exit_code == 1 and "found no training program that is a function called" in refused.output


@needs_bwrap
def test_raw_direct_answers_end_at_the_answer_close_and_are_asked_raw(model_cache, tmp_path, monkeypatch):
    """`--direct-answers-format raw`: CRUXEval's prompt is the model's whole input (SFT learns the answer after it as
    plain text), GRPO's completions end at the answer's close instead of running on to the budget (here a space,
    which tiny's random text holds within a few tokens, stands in for `[/ANSWER]`, which it never writes), and the
    adapter is asked CRUXEval's direct prompt raw; with the traces (not --direct-answers-only) it is refused."""
    from click.testing import CliRunner

    import trainer.answers
    from dataset_builder.cli import main as build_main
    from trainer.cli import main
    from trainer.models import load_model
    from trainer.sft import example_lengths, sft_rows

    data = tmp_path / "data"
    built = CliRunner().invoke(
        build_main,
        ["--n", "8", "--test-size", "2", "--drill-share", "0.5", "--drill-kind", "calls", "--output", str(data)]
        + ["--quiet"],
    )
    assert built.exit_code == 0, built.output
    common = ["--dataset", str(data), "--model", "tiny", "--eval-limit", "1", "--eval-max-new-tokens", "8", "--no-push"]
    refused = CliRunner().invoke(
        main, [*common, "--direct-answers", "--direct-answers-format", "raw", "--output-dir", str(tmp_path / "no")]
    )
    assert refused.exit_code == 1 and "goes with --direct-answers-only" in refused.output
    assert not (tmp_path / "no").exists()
    # the minimal prompt style needs SFT to learn the trace format, which a direct-answer-only run never asks for
    planned = CliRunner().invoke(
        main,
        [*common, "--prompt-style", "minimal", "--direct-answers-only", "--dry-run", "--output-dir", str(tmp_path)],
    )
    assert planned.exit_code == 0, planned.output

    monkeypatch.setattr(trainer.answers, "ANSWER_CLOSE", " ")
    output = tmp_path / "raw"
    benchmark = ["--benchmark", "cruxeval", "--benchmark-limit", "3", "--benchmark-data", str(FIXTURE)]
    result = CliRunner().invoke(
        main,
        [*common, "--sft-steps", "1", "--max-steps", "2", "--num-generations", "2", "--direct-answers-only"]
        + ["--direct-answers-format", "raw", "--output-dir", str(output), *benchmark, "--cruxeval-prompts", "direct"]
        + ["--lazy-answer-penalty", "0.5"],
    )
    assert result.exit_code == 0, result.output
    training = json.loads((output / "adapter" / "training_run.json").read_text())["training"]
    assert training["direct_answers_format"] == "raw" and training["stop_at"] == " "
    assert training["lazy_answer_penalty"] == 0.5
    budget = training["completion_budget"]
    assert budget["thinking_budget"] is None  # tiny's template thinks, but a raw prompt never reaches it
    steps = [h for h in json.loads((output / "adapter" / "training_log.json").read_text()) if "reward" in h]
    assert len(steps) == 2
    assert any(h["reward"] < 0 for h in steps)  # tiny writes no literal answer: the penalty reached TRL's reward
    assert all(h["completions/max_length"] < budget["max_completion_length"] for h in steps)  # all stopped early
    assert training["learning_signal"]["clipped_ratio_mean"] == 0.0  # though TRL counts the last one's as clipped
    crux = json.loads((output / "adapter" / "cruxeval_results.json").read_text())
    assert crux["adapter_prompts"]["adapter_cruxeval_direct"]["format"] == "raw"
    card = (output / "adapter" / "README.md").read_text()
    assert "direct output prompt as a raw completion" in card
    assert "-0.5 for a wrong answer that skips the call's work" in card
    # SFT's examples: the prompt and the answer as plain text, counted with the end-of-sequence token TRL appends
    example = {"prompt": "P", "answer": "A", "input": "1", "output": "2"}
    rows = sft_rows(None, answers=[example], only=True, form="raw")
    assert rows[0]["prompt"] == "P" and rows[0]["completion"] == "A"
    tokenizer = load_model("tiny")[0]
    assert example_lengths(tokenizer, rows) == [len(tokenizer("PA" + tokenizer.eos_token).input_ids)]


@needs_bwrap
def test_training_programs_shaped_like_a_benchmark_item_are_left_out(tmp_path):
    """A training program with the structure of a CRUXEval item (its program with other names and constants) is
    left out of training; others stay; the record says what was checked."""
    from datasets import Dataset

    from dataset_builder.benchmark import load_items, program_of
    from trainer.benchmark import leave_out_shared_structures, prepare_benchmark

    benchmark = prepare_benchmark(str(FIXTURE), limit=2)
    item = load_items(str(FIXTURE))[5]  # beyond the 2 evaluated: every item of the data counts
    renamed = program_of(item).replace("f(", "g(")  # the same skeleton under another name
    rows = Dataset.from_list(
        [
            {"id": "mine", "code": "x = 1\ny = x + 2"},
            {"id": "copy", "code": renamed},
            {"id": "item", "code": program_of(item)},
        ]
    )
    kept = leave_out_shared_structures(rows, benchmark)
    assert kept["id"] == ["mine"]
    overlap = benchmark.record()["training_overlap"]
    assert (overlap["items_checked"], overlap["training_programs_checked"], overlap["shared_structure"]) == (
        len(FIXTURE.read_text().splitlines()),
        3,
        2,
    )
    assert overlap["left_out_ids"] == ["copy", "item"]


def test_benchmark_options_without_the_benchmark_are_refused(tiny_dataset, tmp_path):
    from click.testing import CliRunner

    from trainer.cli import evaluate_main, main

    result = CliRunner().invoke(evaluate_main, ["--tracer-only"])
    assert result.exit_code == 2 and "go with --benchmark cruxeval" in result.output
    result = CliRunner().invoke(evaluate_main, ["--benchmark", "cruxeval"])
    assert result.exit_code == 2 and "--adapter DIR or --model M" in result.output
    result = CliRunner().invoke(evaluate_main, ["--benchmark", "cruxeval", "--dataset", str(tiny_dataset)])
    assert result.exit_code == 2 and "exclude each other" in result.output
    result = CliRunner().invoke(main, ["--dataset", str(tiny_dataset), "--no-push", "--benchmark-limit", "3"])
    assert result.exit_code == 2 and "go with --benchmark cruxeval" in result.output
    for given in (["--cruxeval-prompts", "cot"], ["--cruxeval-prompt-format", "raw"]):
        result = CliRunner().invoke(main, ["--dataset", str(tiny_dataset), "--no-push", *given])
        assert result.exit_code == 2 and "go with --benchmark cruxeval" in result.output
        result = CliRunner().invoke(evaluate_main, ["--benchmark", "cruxeval", "--tracer-only", *given])
        assert result.exit_code == 2 and "asks no model" in result.output
    result = CliRunner().invoke(
        evaluate_main, ["--benchmark", "cruxeval", "--model", "tiny", "--cruxeval-prompts", "direct,fancy"]
    )
    assert result.exit_code == 2 and "is not a list of CRUXEval prompts" in result.output


def test_train_and_push_refuses_bad_benchmark_data_before_training(tiny_dataset, model_cache, tmp_path):
    from click.testing import CliRunner

    from trainer.cli import main

    output = tmp_path / "run"
    result = CliRunner().invoke(
        main,
        [
            "--dataset",
            str(tiny_dataset),
            "--model",
            "tiny",
            "--no-push",
            "--output-dir",
            str(output),
            "--benchmark",
            "cruxeval",
            "--benchmark-data",
            "missing.jsonl",
        ],
    )
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "The benchmark data missing.jsonl does not exist" in result.output
    assert not (output / "adapter").exists()  # nothing trained
