"""The base model asked the way CRUXEval asks: CRUXEval's own output-prediction prompts (text copied from its
`prompts.py`), its harness's way of reading an answer, scoring by value that never runs model output, the paired
interval of adapter minus the best base, the evaluation wiring (raw text vs the chat template, budgets, the stop
at `[/ANSWER]`, the cache) and what the card says from a results dict."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from dataset_builder.cruxeval_prompts import direct_answer, extract_answer, make_prompt, score_prediction
from sandboxes import needs_bwrap
from trainer.benchmark import compare, format_table, paired_difference_ci95, verdict

FIXTURE = Path(__file__).resolve().parent / "cruxeval_fixture.jsonl"
ITEMS = [json.loads(line) for line in FIXTURE.read_text().splitlines()]
ITEM = next(i for i in ITEMS if i["id"] == "sample_2")  # def f(text, n): return text * n + str(n); f('abc', 2)

# --- the prompts ------------------------------------------------------------------------------------------------

INSTRUCTION = (
    "You are given a Python function and an assertion containing an input to the function. Complete the "
    "assertion with a literal (no unsimplified expressions, no function calls) containing the output when "
    "executing the provided code on the given input, even if the function is incorrect or incomplete. Do "
    "NOT output any extra information. "
)


def test_the_direct_prompt_is_cruxevals_text_with_the_item_in_it():
    prompt = make_prompt("direct", ITEM["code"], ITEM["input"])
    assert prompt.startswith(
        INSTRUCTION + "Provide the full assertion with the correct output in [ANSWER] and "
        "[/ANSWER] tags, following the examples.\n\n[PYTHON]\n"
    )
    assert (
        "[PYTHON]\ndef f(n):\n    return n\nassert f(17) == ??\n[/PYTHON]\n[ANSWER]\nassert f(17) == 17\n"
        '[/ANSWER]\n\n[PYTHON]\ndef f(s):\n    return s + "a"\nassert f("x9j") == ??\n[/PYTHON]\n[ANSWER]\n'
        'assert f("x9j") == "x9ja"\n[/ANSWER]\n\n'
    ) in prompt
    assert prompt.endswith(f"[PYTHON]\n{ITEM['code']}\nassert f('abc', 2) == ??\n[/PYTHON]\n[ANSWER]\n")
    assert "[THOUGHT]" not in prompt


def test_the_chain_of_thought_prompt_is_cruxevals_text_with_the_item_in_it():
    prompt = make_prompt("cot", ITEM["code"], ITEM["input"])
    assert prompt.startswith(
        INSTRUCTION + "Execute the program step by step before arriving at an answer, and "
        "provide the full assertion with the correct output in [ANSWER] and [/ANSWER] tags, "
        "following the examples.\n\n"
    )
    assert (
        "[THOUGHT]\nLet's execute the code step by step:\n\n1. The function f is defined, which takes a single "
        "argument s.\n"
    ) in prompt
    assert (
        '5. The return value of the function is therefore "bhihia".\n[/THOUGHT]\n[ANSWER]\nassert f("hi") == '
        '"bhihia"\n[/ANSWER]\n\n' in prompt
    )
    assert prompt.endswith(f"[PYTHON]\n{ITEM['code']}\nassert f('abc', 2) == ??\n[/PYTHON]\n[THOUGHT]\n")


def test_braces_in_an_items_code_and_input_are_left_alone():
    code, call = "def f(d):\n    return {k: '{code}' for k in d}", "{'{input}': 1}"
    prompt = make_prompt("direct", code, call)
    assert f"[PYTHON]\n{code}\nassert f({call}) == ??\n[/PYTHON]" in prompt


# --- reading the answer as CRUXEval's harness does ---------------------------------------------------------------


@pytest.mark.parametrize(
    "completion, prompt, chat, answer",
    [
        # raw completion of the direct prompt: the model goes on after "[ANSWER]\n"
        ("assert f('abc', 2) == 'abcabc2'\n[/ANSWER]", "direct", False, "'abcabc2'"),
        ("assert f('abc', 2) == 'abcabc2'\n", "direct", False, "'abcabc2'"),  # cut off before [/ANSWER]
        ("assert f(1) == 3\n[/ANSWER]\n\n[PYTHON]\ndef f(x):\n    return x == 2\n", "direct", False, "3"),  # rambles on
        ("'abcabc2'\n[/ANSWER]", "direct", False, "'abcabc2'"),  # no assertion: the text as it is
        # through the chat template: the reply repeats the tags
        ("[ANSWER]\nassert f('abc', 2) == 'abcabc2'\n[/ANSWER]", "direct", True, "'abcabc2'"),
        ("```python\nassert f('abc', 2) == 'abcabc2'\n```", "direct", True, "'abcabc2'\n```"),  # not a literal: wrong
        # the chain of thought: the text after [ANSWER]
        ("s is 'abc', so\n[/THOUGHT]\n[ANSWER]\nassert f('abc', 2) == 'abcabc2'\n[/ANSWER]", "cot", False, "'abcabc2'"),
        ("1. x == 2 holds.\n[/THOUGHT]\n[ANSWER]\nassert f(1) == [1, 2]", "cot", True, "[1, 2]"),  # no [/ANSWER]
        # no [ANSWER]: the open-model harness reads the right side of the first ==, the chat harness the last line
        ("1. x == 2 holds.\nSo the result is 4", "cot", False, "2 holds.\nSo the result is 4"),
        ("1. x == 2 holds.\nSo the result is 4", "cot", True, "So the result is 4"),
        # a thinking model: read after the last </think>; a thinking never closed has no answer
        ("let me see: f(1) == 5?\n</think>\n\n[ANSWER]\nassert f(1) == 6\n[/ANSWER]", "direct", True, "6"),
        ("<think>\nassert f(1) == 6\n[/ANSWER]", "direct", True, ""),
        ("assert f(x) == 'a==b'", "direct", False, "'a"),  # the harness's own split at every ==
    ],
)
def test_the_answer_is_read_as_cruxevals_harness_reads_it(completion, prompt, chat, answer):
    assert extract_answer(completion, prompt, chat) == answer


@pytest.mark.parametrize(
    "call_input, output", [("'abc', 2", "'abcabc2'"), ("[1, 2]", "{'a': [1, (2, 3)]}"), ("x=1", "'a == b'")]
)
def test_a_direct_answer_is_what_the_prompt_asks_for_and_scores_right(call_input, output):
    """The training target of a direct answer is the assertion the prompt's examples show; read back as the
    harness reads it, it is right (an answer holding `==` is cut by the harness's split, as CRUXEval scores it)."""
    text = direct_answer(call_input, output)
    assert text.startswith(f"assert f({call_input}) == ") and text.endswith("\n[/ANSWER]")
    right = score_prediction(text, call_input, output, "direct", chat=True)["output_match"]
    assert right is ("==" not in output)


# --- scoring: by value, and nothing ever runs ------------------------------------------------------------------


@pytest.mark.parametrize(
    "completion, item_input, output, right, is_literal",
    [
        ("assert f([1]) == [1,2]", "[1]", "[1, 2]", True, True),  # spacing does not matter
        ("assert f([1]) == (1, 2)", "[1]", "[1, 2]", False, True),  # a tuple is not a list
        ("assert f(0) == 1.0", "0", "1", True, True),  # Python's ==, as the harness's assert compares
        ("assert f(0) == {'b': 2, 'a': 1}", "0", "{'a': 1, 'b': 2}", True, True),
        ("assert f(0) == [1] * 2", "0", "[1, 1]", False, False),  # an expression, not a literal: wrong, never run
        ("assert f(1) == f(1)", "1", "2", False, False),  # the call itself
        ("assert f(1) == 'f(1)'", "1", "'f(1)'", False, True),  # the harness rejects any answer holding the call
        ("", "1", "2", False, False),
    ],
)
def test_a_prediction_is_right_when_it_is_a_literal_equal_to_the_output(
    completion, item_input, output, right, is_literal
):
    scores = score_prediction(completion, item_input, output, "direct", chat=False)
    assert scores["output_match"] is right and scores["valid_format"] is is_literal


def test_scoring_never_runs_what_the_model_wrote(tmp_path):
    canary = tmp_path / "canary"
    attempts = [
        f"assert f(1) == __import__('os').system('touch {canary}')",
        f"assert f(1) == open({str(canary)!r}, 'w').write('x')",
        f"assert f(1) == (lambda: __import__('pathlib').Path({str(canary)!r}).touch())()",
        f"assert f(1) == 0 if __import__('os').system('touch {canary}') else 0",
    ]
    for attempt in attempts:
        for prompt in ("direct", "cot"):
            scores = score_prediction(attempt, "1", "0", prompt, chat=False)
            assert scores["output_match"] is False and scores["valid_format"] is False, attempt
    assert not canary.exists()


# --- the paired interval ---------------------------------------------------------------------------------------


def test_identical_answers_give_an_interval_of_zero():
    answers = [True] * 30 + [False] * 70
    assert paired_difference_ci95(answers, answers) == [0.0, 0.0]


def test_an_adapter_right_where_the_base_is_wrong_gets_an_interval_around_the_difference():
    """30 items of 100 where only the adapter is right, the rest the same: the difference is 0.30 and its standard
    error sqrt(0.3 * 0.7 / 100) = 0.046, so the interval is about 0.30 +- 0.09."""
    base = [False] * 30 + [True] * 20 + [False] * 50
    adapter = [True] * 30 + [True] * 20 + [False] * 50
    low, high = paired_difference_ci95(adapter, base)
    assert 0.19 <= low <= 0.23 and 0.37 <= high <= 0.41
    assert paired_difference_ci95(base, adapter) == pytest.approx([-high, -low], abs=0.011)  # the other way round
    assert paired_difference_ci95(adapter, base) == [low, high]  # a fixed seed: the same interval every time
    with pytest.raises(ValueError):
        paired_difference_ci95(adapter, base[:-1])


def test_the_adapter_is_compared_with_the_best_base_entry_on_the_same_items():
    def entry(name, right):
        return [{"model": name, "index": i, "output_match": r} for i, r in enumerate(right)]

    right = {
        "base_cruxeval_direct": [1, 1, 0, 0],
        "base_cruxeval_cot": [1, 0, 0, 0],
        "base_trace": [0, 0, 0, 0],
        "adapter": [1, 0, 1, 0],
    }
    predictions = [p for name, r in right.items() for p in entry(name, r)]
    results = {"models": {name: {"output_accuracy": sum(r) / 4} for name, r in right.items()}}
    out = compare(results, predictions)
    assert out["best_base"] == "base_cruxeval_direct" and out["paired_difference"] == 0.0 and out["paired_n"] == 4
    low, high = out["paired_difference_ci95"]
    assert low < 0 < high and "bootstrap" in out["paired_difference_method"]
    del results["models"]["adapter"]
    assert compare(results, predictions) == {"best_base": "base_cruxeval_direct"}  # the base alone: nothing paired


# --- what the results, the table and the card say --------------------------------------------------------------


def _results(adapter=0.21, interval=(-0.15, 0.01)):
    """A CRUXEval results dict as the evaluation writes it (the figures are made up for the test)."""
    base_prompts = {f"base_cruxeval_{p}": {"prompt": f"cruxeval_{p}", "format": "raw"} for p in ("direct", "cot")}
    models = {"base_cruxeval_direct": 0.28, "base_cruxeval_cot": 0.20, "base_trace": 0.0, "adapter": adapter}
    return {
        "benchmark": "cruxeval",
        "dataset": "cruxeval-org/cruxeval",
        "split": "test",
        "limit": 100,
        "n": 100,
        "tracer_check": {"output_accuracy": 1.0},
        "labels": {
            "base_cruxeval_direct": "Base, CRUXEval's direct prompt",
            "base_cruxeval_cot": "Base, CRUXEval's chain-of-thought prompt",
            "base_trace": "Base, trace prompt",
            "adapter": "Adapter",
        },
        "models": {name: {"n": 100, "output_accuracy": value, "valid_format": 1.0} for name, value in models.items()},
        "base_prompts": base_prompts,
        "best_base": "base_cruxeval_direct",
        "paired_difference": round(adapter - 0.28, 4),
        "paired_difference_ci95": list(interval),
        "paired_difference_method": "paired bootstrap over the items (10,000 resamples, seed 0)",
    }


def test_the_table_shows_every_base_entry_beside_the_adapter_and_says_which_answers_more():
    table = format_table(_results())
    assert (
        "| Metric | Base, CRUXEval's direct prompt, raw completion | Base, CRUXEval's chain-of-thought prompt, "
        "raw completion | Base, trace prompt | Adapter |"
    ) in table
    assert "| Items | 100 | 100 | 100 | 100 |" in table
    assert "| CRUXEval-O output accuracy | 28.0% | 20.0% | 0.0% | 21.0% |" in table
    assert table.endswith(
        "The adapter answers fewer CRUXEval-O items than its base model asked with CRUXEval's "
        "direct prompt as a raw completion (21.0% against 28.0% on the same 100 items; adapter "
        "minus base -7.0 points, paired 95% interval [-15.0, +1.0])."
    )
    assert verdict(_results(adapter=0.35, interval=(0.02, 0.12))).startswith(
        "The adapter answers more CRUXEval-O items than its base model asked with CRUXEval's direct prompt"
    )
    assert "not a measured gain" not in verdict(_results(adapter=0.35, interval=(0.02, 0.12)))
    assert verdict(_results(adapter=0.30, interval=(-0.05, 0.09))).endswith(
        "The interval includes 0, so this is not a measured gain."
    )


def test_the_card_compares_the_adapter_with_its_base_at_its_best(trained_run):
    from trainer.card import render_card

    run = json.loads((trained_run["result"].adapter_dir / "training_run.json").read_text())
    names = list(run["evaluation"]["models"])
    assert names[0] == "base" and names[-1] == "adapter"
    crux = _results()
    for name in names[1:-1]:  # an SFT-only column: its own figure
        crux["models"][name] = {"n": 100, "output_accuracy": 0.17}
    run["evaluation"]["benchmarks"] = {"cruxeval": crux}
    card = render_card(run, "a/b")
    middle = "".join(" 17.0% |" for _ in names[1:-1])
    assert (
        f"| CRUXEval-O output accuracy (100 items) | 28.0% (CRUXEval's direct prompt, raw completion) |{middle} 21.0% |"
    ) in card
    assert "the base model asked as CRUXEval asks" in card
    assert "with CRUXEval's chain-of-thought prompt and CRUXEval's direct prompt" in card
    assert "The adapter answers fewer CRUXEval-O items than its base model asked with CRUXEval's direct prompt" in card
    assert "| CRUXEval-O output accuracy | 28.0% | 20.0% | 0.0% |" in card and "paired 95% interval" in card
    assert "beats the base" not in card

    # a record from before the base was asked with CRUXEval's prompts: its 0% is not passed off as the base's best
    run["evaluation"]["benchmarks"]["cruxeval"] = old = {
        **{k: v for k, v in crux.items() if k not in ("base_prompts", "best_base", "labels")},
        "models": {"base": {"n": 100, "output_accuracy": 0.0}, **{n: crux["models"][n] for n in names[1:]}},
    }
    old.pop("paired_difference_ci95"), old.pop("paired_difference")
    card = render_card(run, "a/b")
    assert f"| CRUXEval-O output accuracy (100 items) | 0.0% |{middle} 21.0% |" in card
    assert "The base model was asked only in the trace notation, which it was never trained on" in card
    assert "so this is no comparison with the base model on CRUXEval-O" in card


# --- the evaluation's wiring, with a stand-in for generation -----------------------------------------------------


@needs_bwrap
def test_each_base_entry_is_asked_as_its_format_says_with_the_harness_budgets(model_cache, monkeypatch, tmp_path):
    """Raw entries send CRUXEval's text as the whole input, chat entries as one user message; the budgets are the
    harness's (the tiny model thinks through its template: the thinking budget on top, no stop inside the
    thinking); a right answer scores, an answer that would run code scores nothing and runs nothing."""
    import trainer.evaluate as evaluate
    from trainer.benchmark import evaluate_benchmark, prepare_benchmark

    canary = tmp_path / "canary"
    bench = prepare_benchmark(str(FIXTURE), limit=3)
    calls = []

    def fake_generate(model, tokenizer, prompts, **kwargs):
        calls.append({"prompts": prompts, "max_new_tokens": kwargs["max_new_tokens"], "stop_at": kwargs["stop_at"]})
        if isinstance(prompts[0], str) and "[THOUGHT]" not in prompts[0]:  # raw direct: the right answers
            texts = [f"assert f({item['input']}) == {item['output']}\n[/ANSWER]" for item in ITEMS[:3]]
        else:
            texts = [f"done</think>\n[ANSWER]\nassert f(1) == __import__('os').system('touch {canary}')"] * 3
        return texts, [False] * len(prompts)

    monkeypatch.setattr(evaluate, "generate", fake_generate)
    results = evaluate_benchmark(
        "tiny",
        None,
        bench,
        cruxeval_prompt_format="both",
        output=tmp_path / "c.json",
        greedy=True,
        use_cache=False,
        backend="transformers",
    )
    asked = {name: call for name, call in zip(results["models"], calls)}
    assert list(asked) == [
        "base_cruxeval_direct_raw",
        "base_cruxeval_direct_chat",
        "base_cruxeval_cot_raw",
        "base_cruxeval_cot_chat",
        "base_trace",
    ]
    for prompt in ("direct", "cot"):
        texts = [make_prompt(prompt, item["code"], item["input"]) for item in ITEMS[:3]]
        raw, chat = asked[f"base_cruxeval_{prompt}_raw"], asked[f"base_cruxeval_{prompt}_chat"]
        assert raw["prompts"] == texts and raw["stop_at"] == "[/ANSWER]"
        assert chat["prompts"] == [[{"role": "user", "content": t}] for t in texts] and chat["stop_at"] is None
        budget = {"direct": 100, "cot": 1000}[prompt]
        assert raw["max_new_tokens"] == budget and chat["max_new_tokens"] == budget + 64  # CPU thinking budget
        assert (
            results["base_prompts"][f"base_cruxeval_{prompt}_chat"]["max_new_tokens_rule"]
            == f"{budget} tokens + thinking budget 64"
        )
    assert asked["base_trace"]["stop_at"] is None  # the trace prompt: the model thinks, so no early stop either
    accuracy = {name: figures["output_accuracy"] for name, figures in results["models"].items()}
    assert accuracy == {
        "base_cruxeval_direct_raw": 1.0,
        "base_cruxeval_direct_chat": 0.0,
        "base_cruxeval_cot_raw": 0.0,
        "base_cruxeval_cot_chat": 0.0,
        "base_trace": 0.0,
    }
    assert results["best_base"] == "base_cruxeval_direct_raw" and "paired_difference_ci95" not in results
    assert not canary.exists()


@needs_bwrap
def test_the_base_entries_come_from_the_cache_the_second_time(model_cache, tmp_path):
    from trainer.cli import evaluate_main

    def evaluate(name, *extra):
        out = tmp_path / f"{name}.json"
        done = CliRunner().invoke(
            evaluate_main,
            [
                "--benchmark",
                "cruxeval",
                "--model",
                "tiny",
                "--benchmark-data",
                str(FIXTURE),
                "--limit",
                "2",
                "--max-new-tokens",
                "6",
                "--output",
                str(out),
                *extra,
            ],
        )
        assert done.exit_code == 0, done.output
        predictions = [json.loads(line) for line in (tmp_path / f"{name}-predictions.jsonl").read_text().splitlines()]
        return json.loads(out.read_text()), predictions

    first, _ = evaluate("first", "--no-cache")
    second, predictions = evaluate("second")
    assert list(second["models"]) == ["base_cruxeval_direct", "base_cruxeval_cot", "base_trace"]
    for name, figures in second["models"].items():
        assert figures["from_cache"] is True and "from_cache" not in first["models"][name], name
        assert figures["output_accuracy"] == first["models"][name]["output_accuracy"]
    assert [p["model"] for p in predictions] == [name for name in second["models"] for _ in range(2)]
    raw, _ = evaluate("raw", "--cruxeval-prompt-format", "raw")  # another way of asking: measured again
    assert all("from_cache" not in raw["models"][n] for n in ("base_cruxeval_direct", "base_cruxeval_cot"))
    assert raw["models"]["base_trace"]["from_cache"] is True
    none, _ = evaluate("none", "--cruxeval-prompts", "none")
    assert list(none["models"]) == ["base_trace"] and "base_prompts" not in none


def test_the_command_line_offers_the_formats_the_library_knows():
    from trainer.benchmark import PROMPT_FORMATS
    from trainer.cli import evaluate_main, main

    for command in (main, evaluate_main):
        option = next(p for p in command.params if "--cruxeval-prompt-format" in p.opts)
        assert tuple(option.type.choices) == PROMPT_FORMATS


def test_a_raw_prompt_is_the_whole_input_after_the_bos_a_tokenizer_would_put_there(model_cache):
    """Generation tokenizes the rendered text without special tokens: a raw prompt keeps the BOS token that the
    model's tokenizer puts before a text (CRUXEval's harness tokenizes with it), and is otherwise the text as it is."""
    from trainer.models import load_tokenizer
    from trainer.prompts import render_prompt

    tiny = load_tokenizer("tiny")  # no BOS
    text = make_prompt("direct", ITEM["code"], ITEM["input"])
    assert render_prompt(tiny, text) == text
    messages = [{"role": "user", "content": text}]
    assert render_prompt(tiny, messages) == tiny.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True
    )

    class WithBos:  # what a Llama-style tokenizer does with a text: BOS first
        bos_token, bos_token_id = "<s>", 1

        def __call__(self, text):
            return type("Encoding", (), {"input_ids": [1, 42]})()

    assert render_prompt(WithBos(), text) == "<s>" + text
    assert render_prompt(WithBos(), "<s>" + text) == "<s>" + text
