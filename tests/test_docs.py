"""The figures the README and the pages under docs/ quote come from one place: the results files and the constants
the code names.

A figure that drifts (a benchmark rerun, a changed default) fails here instead of being read by a user."""

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = [(ROOT / "README.md").read_text()] + [page.read_text() for page in sorted((ROOT / "docs").glob("*.md"))]
README = "\n".join(PAGES)  # the README and the manual's pages: a figure is checked wherever it lives
NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?(?:%| s\b)?")


def _section(title: str) -> str:
    """The part of a page under the heading `title` (its level ignored: "### X" finds "# X" or "## X" too), up to
    the next heading of the same level or above."""
    name = title.lstrip("#").strip()
    for page in PAGES:
        lines, fenced, start, level = page.split("\n"), False, None, 0
        for i, line in enumerate(lines):
            fenced ^= line.startswith("```")  # a `# comment` in a code block is no heading
            heading = None if fenced else re.match(r"(#+) (.*)", line)
            if heading and start is not None and len(heading.group(1)) <= level:
                return "\n".join(lines[start:i])
            if heading and start is None and heading.group(2).startswith(name):
                start, level = i, len(heading.group(1))
        if start is not None:
            return "\n".join(lines[start:])
    raise AssertionError(f"no page has the heading {name!r}")


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


def test_the_recipe_s_first_errors_and_longer_traces_the_docs_quote_are_recorded():
    """docs/cpu-results.md quotes what cpu_recipe.py measured after the Qwen run: where the adapter's traces first go
    wrong (held-out split and CRUXEval) and the adapter on a default build's longer traces, by trace length."""
    record = json.loads((ROOT / "results" / "cpu_recipe.json").read_text())["models"]["qwen2.5-coder-0.5b"]
    text = " ".join(README.split())
    test, crux = record["first_errors"]["test"], record["first_errors"]["cruxeval"]
    assert f"Of the 100 test programs {test['first_error']['exact']} are exact" in text
    assert f"the right prefix covers {100 * test['mean_right_prefix']:.1f}% of a reference's steps" in text
    assert f"a wrong value at the right line {test['first_error']['wrong value']} times" in text
    assert f"{crux['first_error']['exact']} of the adapter's traces are exact" in text
    assert (
        f"covers {100 * crux['mean_right_prefix']:.1f}% of a reference's steps: the first error is a wrong value"
        in text
    )
    errors, lines = crux["first_error"], crux["source_line_kinds"]
    assert f"wrong value {errors['wrong value']} times (the line holds a string method" in text
    assert f"string method {lines['wrong value <- string method']} times, a list method" in text
    assert f"wrong control flow {errors['wrong control flow']} times and an invalid trace" in text
    longer = record["default_build_held_out"]
    assert f"gets {100 * longer['execution_prediction_accuracy']:.0f}% exact traces and" in text
    quoted = [f"{100 * b['mean_state_accuracy']:.1f}% on the {b['n']}" for b in longer["by_trace_steps"]]
    assert all(q in text for q in quoted), quoted
    assert f"{100 * longer['mean_state_accuracy']:.1f}% state accuracy: {quoted[0]}" in text


def test_the_lever_table_quotes_results_cpu_levers_json():
    sys.path.insert(0, str(ROOT / "scripts"))
    from cpu_recipe import lever_table

    runs = json.loads((ROOT / "results" / "cpu_levers.json").read_text())["qwen_full_recipe"]["runs"]
    section = _section("### Results on a CPU")
    assert len(runs) >= 3
    for row in lever_table(runs).splitlines():
        assert row in section, row


def test_the_sft_speed_the_readme_quotes_is_the_benchmark_s():
    figures = json.loads((ROOT / "results" / "sft_speed.json").read_text())["variants"]
    baseline, head, no_dropout = (
        next(v for v in figures if v["variant"] == name) for name in ("trl-head", "labelled-only", "no-dropout")
    )
    text = " ".join(README.split())
    assert f"{baseline['seconds'] / head['seconds']:.2f}x the SFT tokens/s" in text
    assert f"{baseline['seconds'] / no_dropout['seconds']:.2f}x with `--lora-dropout 0`" in text


def test_the_lora_layers_speed_the_docs_quote_is_the_measured_one():
    record = json.loads((ROOT / "results" / "sft_speed_layers.json").read_text())["variants"]
    every, twelve, eight = (next(v for v in record if v["variant"] == name) for name in VARIANTS_BY_LAYERS)
    text = " ".join(README.split())
    assert f"the last 12 layers gave {every['seconds'] / twelve['seconds']:.2f}x the tokens/s of every layer" in text
    assert f"the last 8 {every['seconds'] / eight['seconds']:.2f}x" in text
    assert (
        f"the loss was {twelve['last_loss']:.3f} and {eight['last_loss']:.3f} against {every['last_loss']:.3f}" in text
    )


VARIANTS_BY_LAYERS = ("no-dropout", "last-12-layers", "last-8-layers")


def test_the_cruxeval_figures_the_readme_quotes_are_the_recipe_s():
    from trainer.benchmark import trace_base

    models = json.loads((ROOT / "results" / "cpu_recipe.json").read_text())["models"]
    start = README.index("- **Figures**: on the first")
    bullet = " ".join(README[start : README.index("\n- ", start + 1)].split())
    for name, label in (
        ("qwen2.5-coder-0.5b", "Qwen2.5-Coder-0.5B adapter gets"),
        ("smollm2-135m", "SmolLM2-135M's adapter gets"),
    ):
        crux = models[name]["evaluation"]["benchmarks"]["cruxeval"]
        assert f"first {crux['n']} items" in bullet
        assert f"{label} {100 * crux['models']['adapter']['output_accuracy']:.0f}%" in bullet, name
        base = trace_base(crux["models"])  # `base` in records made before `base_trace`
        assert base["output_accuracy"] == 0.0 and "base 0% in the trace notation" in bullet
    # Qwen's run asked its base CRUXEval's way too: the comparison is with that, paired; SmolLM2's never did
    crux = models["qwen2.5-coder-0.5b"]["evaluation"]["benchmarks"]["cruxeval"]
    best, (low, high) = crux["models"][crux["best_base"]], crux["paired_difference_ci95"]
    assert (
        crux["best_base"] == "base_cruxeval_direct" and crux["base_prompts"]["base_cruxeval_direct"]["format"] == "raw"
    )
    assert f"its base {100 * best['output_accuracy']:.1f}% asked CRUXEval's direct prompt as a raw completion" in bullet
    assert (
        f"{100 * crux['paired_difference']:+.1f} points, paired 95% interval [{100 * low:+.1f}, {100 * high:+.1f}]"
        in (bullet)
    )
    smollm = models["smollm2-135m"]["evaluation"]["benchmarks"]["cruxeval"]
    assert not smollm.get("base_prompts") and "that run never asked its base CRUXEval's way" in bullet


def test_the_base_cruxeval_figures_the_docs_quote_are_the_measured_ones():
    record = json.loads((ROOT / "results" / "cruxeval_base.json").read_text())
    text = " ".join(README.split())
    for name in ("base_cruxeval_direct_raw", "base_cruxeval_direct_chat"):
        figures, right = record["models"][name], record["right_per_item"][name]
        assert len(right) == figures["n"] == 800 and right.count("1") / len(right) == figures["output_accuracy"]
        assert f"{100 * figures['output_accuracy']:.1f}% ({right.count('1')} of 800)" in text, name
    assert record["best_base"] == "base_cruxeval_direct_raw" and "raw is its best way" in text
    assert "29.0% of all 800 items (`results/cruxeval_base.json`)" in text
    cot = record["chain_of_thought_first_100"]
    right, direct = cot["right_per_item"]["base_cruxeval_cot_raw"], record["right_per_item"]["base_cruxeval_direct_raw"]
    assert len(right) == cot["models"]["base_cruxeval_cot_raw"]["n"] == 100
    assert (
        f"{right.count('1')}% ({right.count('1')} of 100), against {direct[:100].count('1')}% "
        f"({direct[:100].count('1')} of 100) for the direct prompt on the same items" in text
    )


def test_the_adapter_s_paired_cruxeval_figures_are_the_measured_ones():
    """docs/cruxeval.md quotes results/cruxeval_adapter.json: the adapter and the base's best prompt on the same
    items, their difference and its paired interval, each recomputed from the per-item marks."""
    record = json.loads((ROOT / "results" / "cruxeval_adapter.json").read_text())
    base = json.loads((ROOT / "results" / "cruxeval_base.json").read_text())
    text = " ".join(README.split())
    adapter, n = record["right_per_item"]["adapter"], record["models"]["adapter"]["n"]
    best = record["best_base"]
    base_right = base["right_per_item"][best][:n]
    assert len(adapter) == n and record["models"][best]["right"] == base_right.count("1")
    assert record["paired_difference"] == round((adapter.count("1") - base_right.count("1")) / n, 4)
    low, high = record["paired_difference_ci95"]
    assert f"{100 * adapter.count('1') / n:.1f}% ({adapter.count('1')} of {n})" in text
    assert f"{100 * base_right.count('1') / n:.1f}% ({base_right.count('1')} of {n})" in text
    assert (
        f"{100 * record['paired_difference']:+.1f} points, paired 95% interval [{100 * low:+.1f}, {100 * high:+.1f}]"
        in text
    )
    direct = record["adapter_asked_direct_raw"]  # the same adapter asked the base's way
    right, n = direct["right_per_item"].count("1"), direct["n"]
    assert right == direct["right"] and len(direct["right_per_item"]) == n
    assert direct["paired_difference"] == round((right - base["right_per_item"][best][:n].count("1")) / n, 4)
    low, high = direct["paired_difference_ci95"]
    assert f"{100 * right / n:.1f}% ({right} of {n}): {100 * direct['paired_difference']:+.1f} points" in text
    assert f"paired 95% interval [{100 * low:+.1f}, {100 * high:+.1f}]" in text


def test_the_direct_answer_probes_the_docs_quote_are_the_measured_ones():
    """docs/cruxeval.md quotes results/direct_answer_probes.json: each probe's accuracy, the base's on the same
    items (recomputed from results/cruxeval_base.json's marks) and the paired intervals."""
    record = json.loads((ROOT / "results" / "direct_answer_probes.json").read_text())
    marks = json.loads((ROOT / "results" / "cruxeval_base.json").read_text())["right_per_item"]
    text = " ".join(README.split())

    def share(right, n):
        return f"{100 * right / n:.1f}% ({right} of {n})"

    for probe in record["probes"]:
        n, right = probe["n"], probe["right_per_item"]
        assert len(right) == n and probe["right"] == right.count("1") and share(probe["right"], n) in text
        for compared in (probe["base_same_format"], probe["base_best"]):
            assert compared["right"] == marks[compared["entry"]][:n].count("1")
            assert share(compared["right"], n) in text
            low, high = compared["paired_difference_ci95"]
            assert f"[{100 * low:+.1f}, {100 * high:+.1f}]" in text
    calls = record["base_on_the_training_calls"]
    assert share(calls["right"], calls["n"]) in text and calls["output_accuracy"] == calls["right"] / calls["n"]
    cost = record["grpo_on_direct_answers_cost"]
    assert f"{cost['seconds_per_step']} s a step" in text
    cpu = record["grpo_direct_answers_only_cpu"]  # the product's --direct-answers-only on this CPU
    seconds = cpu["seconds_per_step"]
    assert f"{cpu['steps']} steps of 1 prompt x 8 completions took {min(seconds):.0f} to {max(seconds):.0f} s" in text
    assert f"{cpu['train_seconds']:.0f} s in all" in text and set(cpu["rewards"]) == {0.0}
    raw = record["grpo_direct_answers_raw_cpu"]  # the same 4 steps asked raw, stopped at [/ANSWER]
    seconds, longest = raw["seconds_per_step"], raw["completion_max_tokens"]
    assert f"{min(seconds):.0f} to {max(seconds):.0f} s a step, {raw['train_seconds']:.0f} s in all" in text
    assert f"{min(longest):.0f} to {max(longest):.0f} tokens" in text and max(longest) < raw["completion_budget"]
    hour = record["grpo_direct_answers_raw_hour"]  # an hour of it, then CRUXEval-O paired with the base
    assert f"{hour['steps']} steps of 1 prompt x 8" in text and f"took {hour['train_seconds']:,.0f} s" in text
    assert f"{hour['groups_mixed']} of the {hour['steps']} groups had mixed rewards" in text
    crux, base_marks = hour["cruxeval"], marks["base_cruxeval_direct_raw"][: hour["cruxeval"]["n"]]
    adapter = crux["right_per_item"]
    assert crux["adapter"]["right"] == adapter.count("1") and crux["best_base"] == "base_cruxeval_direct_raw"
    assert share(adapter.count("1"), crux["n"]) in text and share(base_marks.count("1"), crux["n"]) in text
    assert crux["paired_difference"] == round((adapter.count("1") - base_marks.count("1")) / crux["n"], 4)
    low, high = crux["paired_difference_ci95"]
    assert f"{100 * crux['paired_difference']:+.1f} points, paired 95% interval" in text
    assert f"[{100 * low:+.1f}, {100 * high:+.1f}] ({crux['gained']} items gained, {crux['lost']} lost)" in text
    half = record["grpo_direct_answers_raw_hour_half_scale"]  # the same adapter, its update halved
    right = half["right_per_item"]
    for part, (start, end) in (("first_400", (0, 400)), ("last_400", (400, 800)), ("all_800", (0, 800))):
        figures, base_part = half[part], marks["base_cruxeval_direct_raw"][start:end]
        assert figures["right"] == right[start:end].count("1") and figures["base_right"] == base_part.count("1")
        assert share(figures["right"], figures["n"]) in text and share(figures["base_right"], figures["n"]) in text
        assert f"{100 * figures['paired_difference']:+.1f} points" in text
        low, high = figures["paired_difference_ci95"]
        assert f"[{100 * low:+.1f}, {100 * high:+.1f}]" in text, part
    chosen = record["adapter_scale_on_held_out_calls"]  # the scale chosen without CRUXEval, then CRUXEval at it
    for name in ("held_out_like_training", "held_out_longer"):
        calls, n = chosen[name], chosen[name]["base"]["n"]
        assert calls["base"]["right"] == calls["base"]["right_per_item"].count("1")
        assert share(calls["base"]["right"], n) in text
        scales = calls["scales"]
        assert ", ".join(f"{100 * scales[s]['right'] / n:.1f}%" for s in ("0.25", "0.5", "0.75", "1.0")) in text
        best = max(scales, key=lambda s: (scales[s]["right"], -float(s)))  # the rule: most right, smallest of equals
        assert float(best) == calls["chosen"] == chosen["chosen_scale"]
        at = scales[best]
        assert at["right"] == at["right_per_item"].count("1")
        low, high = at["paired_difference_ci95"]
        gain = 100 * (at["right"] - calls["base"]["right"]) / n
        assert f"{gain:+.1f} points (paired 95% interval [{100 * low:+.1f}, {100 * high:+.1f}])" in text
    on_crux = chosen["cruxeval_at_chosen_scale"]["all_800"]
    right = chosen["cruxeval_at_chosen_scale"]["right_per_item"]
    assert on_crux["right"] == right.count("1") and on_crux["base_right"] == marks["base_cruxeval_direct_raw"].count(
        "1"
    )
    assert share(on_crux["right"], 800) in text and share(on_crux["base_right"], 800) in text
    low, high = on_crux["paired_difference_ci95"]
    assert (
        f"{100 * on_crux['paired_difference']:+.1f} points, paired 95% interval [{100 * low:+.1f}, {100 * high:+.1f}]"
        in text
    )
    errors = record["answer_errors"]  # how the direct answers go wrong: the first argument given back unchanged
    ours, theirs = errors["adapter"]["first_argument_unchanged"], errors["base"]["first_argument_unchanged"]
    assert (
        f"for {ours['answered']} items, its base for {theirs['answered']}, where that is right for "
        f"{ours['items_where_it_is_right']} ({ours['of_them_right']} of the adapter's echoes are right, "
        f"{theirs['of_them_right']} of the base's)" in text
    )
    for kind in ("bool", "dict"):
        ours, theirs = errors["adapter"]["by_output_type"][kind], errors["base"]["by_output_type"][kind]
        assert f"{kind}s ({ours['right']} of {ours['n']} against {theirs['right']})" in text
    live = record["grpo_direct_answers_raw_hour_live_calls"]  # the hour again, on calls where every line matters
    assert len(live["rewards"]) == live["steps"] == 60
    groups = (live["groups_mixed"], live["groups_all_right"], live["groups_all_wrong"])
    assert sum(groups) == 60 and groups[0] == 60 - sum(live["frac_reward_zero_std"])
    assert f"{live['train_seconds']:,.0f} s ({groups[0]} groups mixed, {groups[1]} all right, {groups[2]}" in text
    choice = live["scale_choice"]
    base_calls = choice["base"]
    assert base_calls["right"] == base_calls["right_per_item"].count("1")
    assert f"base {share(base_calls['right'], 200)}" in text
    assert ", ".join(f"{100 * v['right'] / 200:.1f}%" for v in choice["scales"].values()) + " at 0.5, 0.75, 1" in text
    assert all(v["right"] == v["right_per_item"].count("1") for v in choice["scales"].values())
    scales = choice["scales"]
    best = max(scales, key=lambda k: (scales[k]["right"], -float(k)))
    assert float(best) == choice["chosen"]
    low, high = scales[best]["paired_difference_ci95"]
    gain = 100 * (scales[best]["right"] - base_calls["right"]) / 200
    assert f"{gain:+.1f} points, paired 95% interval [{100 * low:+.1f}, {100 * high:+.1f}], over its base" in text
    echoes = [choice["first_argument_unchanged"][k] for k in scales]
    echoed = ", ".join(str(e["answered"]) for e in echoes)
    base_echoes = base_calls["first_argument_unchanged"]["answered"]
    assert (
        f"(the base {base_echoes}, then {echoed} at 0.5, 0.75, 1, of which {echoes[0]['of_them_right']} right" in text
    )
    crux = live["cruxeval"]
    assert crux["right"] == crux["right_per_item"].count("1") and crux["base_right"] == marks[
        "base_cruxeval_direct_raw"
    ].count("1")
    assert share(crux["right"], 800) in text and share(crux["base_right"], 800) in text
    low, high = crux["paired_difference_ci95"]
    assert (
        f"{100 * crux['paired_difference']:+.1f} points, paired 95% interval [{100 * low:+.1f}, {100 * high:+.1f}]"
        f" ({crux['gained']} gained, {crux['lost']} lost)" in text
    )
    echo = live["answer_errors"]["first_argument_unchanged"]
    assert f"{echo['answered']} answers give back the first argument ({echo['of_them_right']} right)" in text
    lazy = record["grpo_direct_answers_raw_hour_lazy_penalty"]  # the same hour, lazy answers scored -0.5
    groups = lazy["groups"]
    assert sum(groups.values()) == lazy["steps"] == len(lazy["rewards"]) == 60
    assert (
        f"took {lazy['train_seconds']:,.0f} s" in text
        and f"{groups['with_a_right_answer_and_a_wrong_one']} held a right and a wrong answer, "
        f"{groups['all_right']} were all right, {groups['no_right_answer_but_mixed_by_the_penalty']} had no right "
        f"answer but lazy ones"
        in text
        and f"{groups['all_wrong_no_signal']} were all wrong alike" in text
    )
    choice, calls_base = lazy["scale_choice"], lazy["scale_choice"]["base"]
    assert calls_base["right"] == calls_base["right_per_item"].count("1")
    assert f"the base asked again here answers {share(calls_base['right'], 200)}" in text
    scales = choice["scales"]
    assert all(v["right"] == v["right_per_item"].count("1") for v in scales.values())
    assert ", ".join(f"{100 * v['right'] / 200:.1f}%" for v in scales.values()) + " at 0.25, 0.5, 0.75" in text
    best = max(scales, key=lambda k: (scales[k]["right"], -float(k)))
    assert float(best) == choice["chosen"]
    low, high = scales[best]["paired_difference_ci95"]
    gain = 100 * (scales[best]["right"] - calls_base["right"]) / 200
    assert f"so {best} ({gain:+.1f} points, paired 95% interval [{100 * low:+.1f}, {100 * high:+.1f}])" in text
    crux = lazy["cruxeval"]
    assert crux["right"] == crux["right_per_item"].count("1")
    assert crux["base_right"] == marks["base_cruxeval_direct_raw"].count("1")
    low, high = crux["paired_difference_ci95"]
    assert (
        f"{share(crux['right'], 800)} against the base's {share(crux['base_right'], 800)}, "
        f"{100 * crux['paired_difference']:+.1f} points, paired 95% interval [{100 * low:+.1f}, {100 * high:+.1f}] "
        f"({crux['gained']} gained, {crux['lost']} lost)" in text
    )
    echo = lazy["answer_errors"]["first_argument_unchanged"]
    assert f"{echo['answered']} answers give back the first argument ({echo['of_them_right']} right)" in text
    echoes = ", ".join(str(v["first_argument_unchanged"]["answered"]) for v in scales.values())
    assert f"({calls_base['first_argument_unchanged']['answered']}, then {echoes} at 0.25, 0.5, 0.75)" in text
    for kind, base_right in (("bool", 21), ("dict", 37)):  # the base's, in the answer_errors record
        typed = lazy["answer_errors"]["by_output_type"][kind]
        assert errors["base"]["by_output_type"][kind]["right"] == base_right
        assert f"{kind}s {typed['right']} of {typed['n']} (the base {base_right})" in text or (
            f"{kind}s {typed['right']} of {typed['n']} ({base_right})" in text
        )
    again = lazy["base_on_this_machine"]  # the recorded base marks hold on the machine that measured this hour
    assert again["right"] == again["right_per_item"].count("1") == again["recorded_right"]
    assert again["same_mark"] == again["n"] == 200
    assert f"it gave the same mark on all {again['n']} ({again['right']} right)" in text
    votes, n = record["base_sampled_votes"], record["base_sampled_votes"]["n"]  # 5 samples of the base per item
    for name in ("first_sample", "majority_vote_of_5", "any_of_5"):
        assert votes[name]["right"] == votes["right_per_item"][name].count("1")
    greedy = marks["base_cruxeval_direct_raw"][:n].count("1")
    assert (
        f"{100 * votes['any_of_5']['right'] / n:.1f}% ({votes['any_of_5']['right']} of {n}; one sample alone {100 * votes['first_sample']['right'] / n:.1f}%, "
        f"a majority vote of the 5 {100 * votes['majority_vote_of_5']['right'] / n:.1f}%, greedy "
        f"{100 * greedy / n:.1f}%)" in text
    )
    plan = record["gpu_plan_direct_answers_raw"]
    assert f"{plan['prompts']:,} prompts" in text and f"budget is {plan['completion_budget']}" in text
    assert f"{plan['optimizer_steps']} steps in {plan['memory_gib_per_device']} GiB" in text


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
        assert training["lora"]["dropout"] == args.lora_dropout
        assert training["sft"]["epochs"] == args.sft_epochs and len(record["grpo_log"]) == args.grpo_steps
        sft_column = record["evaluation"]["models"].get("sft")
        assert (sft_column is not None and not sft_column.get("after_the_timed_run")) == (not args.skip_sft_eval)
        assert bool(sft_column and sft_column.get("after_the_timed_run")) == bool(args.evaluate_sft_after)
        crux = record["evaluation"]["benchmarks"]["cruxeval"]
        assert crux["n"] == args.benchmark_limit
        if crux.get("base_prompts"):  # records made since the recipe asks the base CRUXEval's way
            asked = {entry["prompt"].removeprefix("cruxeval_") for entry in crux["base_prompts"].values()}
            assert asked == set(args.cruxeval_prompts.split(",")), name


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
        assert (
            f"{round(runs['file_before']['per_s']):,}/s" in from_file
            and f"{round(runs['file_bwrap']['per_s']):,}/s" in from_file
        ), n


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
    assert (
        f"every {round(100 * CHECKPOINT_SHARE)}% of the optimizer steps and at least every "
        f"{CHECKPOINT_MAX_MINUTES} minutes" in plan
    )


def test_the_vllm_cpu_check_the_readme_quotes_is_the_script_s():
    figures = json.loads((ROOT / "results" / "vllm_cpu_check.json").read_text())
    text = " ".join(_section("### vLLM").split())
    base = [figures[f"base_stop_at_trace_end_{stop}"] for stop in ("false", "true")]
    assert f"for {base[0]['identical']} and {base[1]['identical']} of {base[0]['of']}" in text
    lora = figures["adapter_as_lora_request"]
    assert f"engine reserved rank {figures['engine_max_lora_rank']}" in text
    assert f"{lora['identical']} of {lora['of']} answers identical" in text
    assert (
        f"of the {lora['changed_by_the_adapter']} answers the adapter changes, "
        f"{lora['of_those_following_the_adapter']} of vLLM's"
    ) in text
    speeds = [round(figures[f"evaluation_{b}"]["tokens_per_second"]) for b in ("vllm", "transformers")]
    walls = [round(figures[f"evaluation_{b}"]["wall_seconds"]) for b in ("vllm", "transformers")]
    assert f"{speeds[0]} tokens/s against {speeds[1]}" in text and f"({walls[0]} s against {walls[1]} s)" in text
    rewards = [figures[f"evaluation_{b}"]["mean_reward"] for b in ("vllm", "transformers")]
    assert f"mean reward of {rewards[0]:.3f} against {rewards[1]:.3f}" in text
    grpo = figures["grpo_colocated_3_steps"]
    gaps = {round(step["sampling/sampling_logp_difference/mean"], 3) for step in grpo["weight_sync_on"]}
    control = [step["sampling/sampling_logp_difference/mean"] for step in grpo["weight_sync_off_control"]][1:]
    (gap,) = gaps  # one figure for every step, as the README says
    assert f"stayed at {gap:.3f} in every step" in text
    assert f"rose to {control[0]:.3f} and {control[1]:.3f}" in text


def test_the_frame_limit_the_docs_give_is_the_codes():
    from dataset_builder.benchmark import TRACE_LIMITS
    from dataset_builder.protocol import max_result_bytes
    from dataset_builder.tracer import TraceLimits

    readme, design = " ".join(README.split()), " ".join((ROOT / "docs" / "design.md").read_text().split())
    defaults, cruxeval = (f"{max_result_bytes(limits) / 2**20:.1f} MiB" for limits in (TraceLimits(), TRACE_LIMITS))
    assert f"({defaults} at the defaults)" in readme
    assert f"{defaults} at the defaults, {cruxeval} for CRUXEval's" in design


def test_every_relative_link_in_the_readme_and_docs_resolves():
    """The manual moved into docs/: a link that still points where a page used to be is caught here."""
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if not re.match(r"[a-z]+://", target):
                assert (page.parent / target).exists(), f"{page.name} links to {target}, which does not exist"
