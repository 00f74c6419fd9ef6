"""The build pipeline and the `build-dataset` command, from a user's side: what lands on disk."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from dataset_builder.cli import main
from dataset_builder.trace import Step, format_trace, parse_trace

BIN = Path(sys.executable).parent


def write_programs(path: Path, programs) -> Path:
    path.write_text("".join(json.dumps(p) + "\n" for p in programs))
    return path


USER_PROGRAMS = [
    {"id": "seed", "code": "x = 10\ny = 20\nz = 30"},
    {"id": "renamed-seed", "code": "a = 10\nb = 20\n\nc   =   30"},  # a duplicate up to names and layout
    {"id": "loop", "code": "total = 0\nfor i in range(4):\n    total += i\nprint(total)"},
    {"id": "raises", "code": "d = {'a': 1}\nv = d['b']"},
    {"id": "hangs", "code": "import time\ntime.sleep(30)"},
    {"id": "broken", "code": "def (:"},
    {"code": "def sq(n):\n    return n * n\nr = sq(7)"},
    {"id": "long", "code": "\n".join(f"v{i} = {i}" for i in range(30))},  # no line limit for user programs
]


def build(args, runner=None):
    result = (runner or CliRunner()).invoke(main, [*args, "--quiet"], catch_exceptions=False)
    return result


@pytest.fixture(scope="module")
def user_dataset(tmp_path_factory):
    from datasets import load_from_disk

    tmp = tmp_path_factory.mktemp("user")
    programs = write_programs(tmp / "programs.jsonl", USER_PROGRAMS)
    result = build(["--programs", str(programs), "--output", str(tmp / "out"), "--timeout", "2", "--test-size", "0"])
    assert result.exit_code == 0, result.output
    return load_from_disk(str(tmp / "out")), json.loads((tmp / "out" / "report.json").read_text())


def test_user_programs_keep_their_ids_and_rejections_have_reasons(user_dataset):
    data, report = user_dataset
    rows = {r["id"]: r for r in data["train"]}
    unnamed = [i for i in rows if i not in {p.get("id") for p in USER_PROGRAMS}]
    assert set(rows) == {"seed", "loop", "raises", "long", *unnamed} and len(unnamed) == 1
    reasons = {r["id"]: r["reason"] for r in report["rejected"]}
    assert reasons["renamed-seed"] == "duplicate of seed"
    assert reasons["hangs"] == "timeout"
    assert reasons["broken"].startswith("syntax error")
    assert report["counts"] == {"kept": 5, "train": 5, "test": 0, "rejected": 3}
    assert report["source"] == "file" and report["python_version"].startswith("3.")


def test_rows_have_the_contract_columns_and_round_trip(user_dataset):
    data, _ = user_dataset
    assert set(data["train"].column_names) >= {"id", "code", "steps", "stdout", "error", "prompt", "expected_trace"}
    assert len(data["test"]) == 0  # an empty split is fine
    for row in data["train"]:
        steps = [Step.from_row(s) for s in row["steps"]]
        assert format_trace(steps) == row["expected_trace"]
        assert parse_trace(row["expected_trace"]).steps == steps
        assert row["num_steps"] == len(steps) and row["num_lines"] == len(row["code"].splitlines())
        assert row["prompt"][-1]["role"] == "user"
        for number, line in enumerate(row["code"].splitlines(), 1):
            assert f"{number:>{len(str(row['num_lines']))}} | {line}" in row["prompt"][-1]["content"]
    rows = {r["id"]: r for r in data["train"]}
    assert rows["seed"]["expected_trace"].splitlines()[1] == "Line 1: State: {x=10}"
    assert rows["loop"]["stdout"] == "6\n"
    assert rows["raises"]["error"] == "KeyError: 'b'"
    assert rows["raises"]["steps"][-1]["event"] == "exception"


def test_max_lines_applies_to_user_programs_when_asked(tmp_path):
    programs = write_programs(tmp_path / "p.jsonl", USER_PROGRAMS[6:])
    result = build(["--programs", str(programs), "--output", str(tmp_path / "out"), "--max-lines", "20"])
    assert result.exit_code == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["rejected"] == [{"id": "long", "reason": "too many lines (30 > 20)"}]


@pytest.mark.parametrize(
    "content, message",
    [
        ("not json\n", "line 1: not valid JSON"),
        ('{"id": "a"}\n', 'line 1: expected an object with a string "code"'),
        ('{"id": "a", "code": "x = 1"}\n{"id": "a", "code": "y = 2"}\n', "id 'a' appears twice"),
        ("\n\n", "holds no programs"),
        (  # every program rejected: no empty dataset is saved over the old one
            '{"id": "a", "code": "def (:"}\n{"id": "b", "code": "x = (("}\n',
            "None of the 2 programs could be kept (syntax error: 2); nothing was written.",
        ),
    ],
)
def test_bad_programs_files_get_one_sentence_and_leave_the_old_dataset(tmp_path, content, message):
    good = write_programs(tmp_path / "good.jsonl", USER_PROGRAMS[:1])
    out = tmp_path / "out"
    assert build(["--programs", str(good), "--output", str(out)]).exit_code == 0
    before = sorted(p.name for p in out.rglob("*"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text(content)
    result = CliRunner().invoke(main, ["--programs", str(bad), "--output", str(out), "--overwrite"])
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert sorted(p.name for p in out.rglob("*")) == before
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]


def test_a_big_build_says_up_front_about_how_long_it_takes():
    """From 50,000 generated programs the build prints an estimate before tracing (at the measured per-worker rate,
    labelled as measured elsewhere); a small one leaves it to the bar."""
    from dataset_builder.cli import KEPT_PER_SECOND_PER_WORKER, estimate

    assert estimate(600, 2) is None and estimate(49_999, 2) is None
    said = estimate(1_000_000, 2)
    minutes = round(1_000_000 / (2 * KEPT_PER_SECOND_PER_WORKER) / 60)
    assert said.startswith(f"Estimate: about {minutes} minutes for 1,000,000 programs on 2 workers")
    assert "measured on a 2-core machine" in said
    assert estimate(1_000_000, 8).startswith(f"Estimate: about {round(minutes / 4)} minutes")
    assert "a minute or two" in estimate(50_000, 2)


def test_the_measured_rate_the_estimate_uses_is_the_benchmark_s():
    from dataset_builder.cli import KEPT_PER_SECOND_PER_WORKER

    record = json.loads(
        (Path(__file__).resolve().parent.parent / "benchmarks" / "build_speed_results.json").read_text()
    )
    biggest = max(record["sizes"], key=lambda size: size["n"])
    assert round(biggest["runs"]["bwrap"]["per_s"] / record["workers"], -1) == KEPT_PER_SECOND_PER_WORKER


def test_usage_errors_are_one_sentence(tmp_path):
    runner = CliRunner()
    missing = runner.invoke(main, ["--programs", str(tmp_path / "nope.jsonl"), "--output", str(tmp_path / "o")])
    assert missing.exit_code == 1 and "Cannot read --programs file" in missing.output
    both = runner.invoke(main, ["--n", "5", "--programs", str(tmp_path / "x.jsonl")])
    assert both.exit_code == 2 and "either --n" in both.output
    size = runner.invoke(main, ["--test-size", "lots"])
    assert size.exit_code == 2 and "--test-size" in size.output
    for result in (missing, both, size):
        assert "Traceback" not in result.output


def test_a_test_split_that_would_take_every_program_is_refused_before_anything_is_written(tmp_path):
    """An empty train split is no dataset (push-dataset and train-and-push refuse one): said in one sentence,
    before tracing where the numbers tell (--n), after it where only the kept programs do (--programs)."""
    result = CliRunner().invoke(main, ["--n", "10", "--test-size", "50", "--output", str(tmp_path / "gen")])
    assert result.exit_code == 1
    assert result.output.strip() == "Error: --test-size 50 is not below --n 10: the train split would be empty."
    programs = write_programs(tmp_path / "p.jsonl", [USER_PROGRAMS[i] for i in (0, 2, 3)])
    result = CliRunner().invoke(
        main, ["--programs", str(programs), "--output", str(tmp_path / "mine"), "--test-size", "3", "--sandbox", "none"]
    )
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
    assert "takes all 3 kept programs, so the train split would be empty" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.jsonl"]  # no output, no partial folder


def test_the_summary_says_where_the_rejections_are_explained(tmp_path):
    programs = write_programs(tmp_path / "p.jsonl", [USER_PROGRAMS[0], USER_PROGRAMS[5]])  # the second does not parse
    result = CliRunner().invoke(
        main,
        ["--programs", str(programs), "--output", str(tmp_path / "out"), "--test-size", "0", "--sandbox", "none"],
        env={"COLUMNS": "300"},
    )
    assert result.exit_code == 0, result.output
    assert f"1 (each with its reason in {tmp_path / 'out' / 'report.json'})" in result.output


def test_every_command_tells_its_version():
    from importlib.metadata import version

    for command in ("build-dataset", "merge-datasets", "push-dataset", "train-and-push", "evaluate-traces"):
        done = subprocess.run([str(BIN / command), "--version"], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and done.stdout == f"{command}, version {version('execution-world-model')}\n"


def test_existing_output_is_not_replaced_without_overwrite(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    programs = write_programs(tmp_path / "p.jsonl", USER_PROGRAMS[:1])
    result = CliRunner().invoke(main, ["--programs", str(programs), "--output", str(out)])
    assert result.exit_code == 1 and "--overwrite" in result.output
    assert (out / "precious.txt").read_text() == "keep me"


def test_help_is_fast_because_it_imports_nothing_heavy():
    code = (
        "import sys\nfrom dataset_builder.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('datasets', 'pyarrow', 'torch', 'transformers', 'multiprocess') if m in sys.modules]\n"
        "print('HEAVY', heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "--programs" in out and "HEAVY []" in out


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """`build-dataset --n 80` as a user runs it: the installed console script, in a subprocess."""
    out = tmp_path_factory.mktemp("gen") / "ds"
    proc = subprocess.run(
        [str(BIN / "build-dataset"), "--n", "80", "--seed", "3", "--output", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Dataset saved to" in proc.stdout
    return out


def test_generated_build_keeps_exactly_n_and_splits_by_structure(generated):
    from datasets import load_from_disk

    from dataset_builder.normalize import normalized_form, skeleton

    data = load_from_disk(str(generated))
    train, test = list(data["train"]), list(data["test"])
    assert len(train) + len(test) == 80 and 8 <= len(test) <= 16  # about 1/6
    # no program structure on both sides, recomputed from the code itself
    train_skeletons = {skeleton(r["code"]) for r in train}
    assert not train_skeletons & {skeleton(r["code"]) for r in test}
    # no duplicates up to names and layout
    assert len({normalized_form(r["code"]) for r in train + test}) == 80
    for row in train + test:
        assert 3 <= row["num_lines"] <= 20
        assert "import" not in row["code"] and "input(" not in row["code"]
    report = json.loads((generated / "report.json").read_text())
    assert report["seed"] == 3 and report["counts"]["kept"] == 80
    assert report["distinct_skeletons"] == len(train_skeletons | {skeleton(r["code"]) for r in test})


def test_same_seed_same_dataset(generated, tmp_path):
    from datasets import load_from_disk

    result = build(["--n", "80", "--seed", "3", "--output", str(tmp_path / "again"), "--workers", "1"])
    assert result.exit_code == 0
    first, second = load_from_disk(str(generated)), load_from_disk(str(tmp_path / "again"))
    for split in ("train", "test"):
        assert first[split].to_list() == second[split].to_list()


def test_drills_join_the_train_split_only_and_change_nothing_else(generated, tmp_path):
    """--drill-share adds short drills spread through the train split; the programs and the test split are those
    of the same build without drills, and no drill repeats a program or shares a test program's structure."""
    from datasets import load_from_disk

    from dataset_builder.normalize import normalized_form, skeleton

    result = build(["--n", "80", "--seed", "3", "--drill-share", "0.25", "--output", str(tmp_path / "drilled")])
    assert result.exit_code == 0, result.output
    plain, drilled = load_from_disk(str(generated)), load_from_disk(str(tmp_path / "drilled"))
    report = json.loads((tmp_path / "drilled" / "report.json").read_text())
    drill_ids = set(report["drill_ids"])
    assert drilled["test"].to_list() == plain["test"].to_list()
    train = drilled["train"].to_list()
    assert [r for r in train if r["id"] not in drill_ids] == plain["train"].to_list()
    drills = [r for r in train if r["id"] in drill_ids]
    assert len(drills) == report["counts"]["drills"] == round(0.25 * len(plain["train"]) / 0.75)
    assert report["counts"]["train"] == len(train) and report["counts"]["kept"] == 80
    for row in drills:
        assert 3 <= row["num_lines"] <= 8
    assert not {skeleton(r["code"]) for r in drills} & {skeleton(r["code"]) for r in drilled["test"]}
    assert len({normalized_form(r["code"]) for r in train + drilled["test"].to_list()}) == 80 + len(drills)
    # spread through the split: the first quarter of it holds about a quarter of the drills
    first_quarter = sum(r["id"] in drill_ids for r in train[: len(train) // 4])
    assert abs(first_quarter - len(drills) / 4) <= 1.5
    # and a second build is the same
    again = build(["--n", "80", "--seed", "3", "--drill-share", "0.25", "--output", str(tmp_path / "again")])
    assert again.exit_code == 0 and load_from_disk(str(tmp_path / "again"))["train"].to_list() == train


def test_call_drills_are_cruxeval_shaped_with_their_own_step_cap(tmp_path):
    """--drill-kind calls: the drills are one function called with literal arguments; --drill-max-steps lets them
    run longer than --max-steps allows the main programs, whose test split stays that of a build without drills."""
    from datasets import load_from_disk

    common = ["--n", "40", "--seed", "5", "--max-steps", "10", "--quiet"]
    plain = build([*common, "--output", str(tmp_path / "plain")])
    calls = build(
        [
            *common,
            "--drill-share",
            "0.5",
            "--drill-kind",
            "calls",
            "--drill-max-steps",
            "25",
            "--output",
            str(tmp_path / "calls"),
        ]
    )
    assert plain.exit_code == 0 and calls.exit_code == 0, calls.output
    dataset = load_from_disk(str(tmp_path / "calls"))
    report = json.loads((tmp_path / "calls" / "report.json").read_text())
    assert report["options"]["drill_kind"] == "calls" and report["options"]["drill_max_steps"] == 25
    drill_ids = set(report["drill_ids"])
    drills = [r for r in dataset["train"] if r["id"] in drill_ids]
    programs = [r for r in dataset["train"] if r["id"] not in drill_ids] + dataset["test"].to_list()
    assert len(drills) == report["counts"]["drills"] > 0
    for row in drills:
        assert row["code"].startswith("def f(") and row["code"].splitlines()[-1].startswith("result = f(")
        assert row["num_steps"] <= 25
    assert any(row["num_steps"] > 10 for row in drills)
    assert all(row["num_steps"] <= 10 for row in programs)
    assert dataset["test"].to_list() == load_from_disk(str(tmp_path / "plain"))["test"].to_list()


@pytest.mark.parametrize("args", [["--drill-share", "1"], ["--drill-share", "0.2", "--shard", "0/2"]])
def test_drill_share_misuse_is_one_sentence(tmp_path, args):
    result = CliRunner().invoke(main, ["--n", "5", "--output", str(tmp_path / "out"), *args, "--quiet"])
    assert result.exit_code != 0 and not (tmp_path / "out").exists()
    assert "--drill-share" in result.output and "Traceback" not in result.output


def test_some_generated_programs_end_in_an_exception_recorded_in_the_trace(generated):
    from datasets import load_from_disk

    rows = [r for split in load_from_disk(str(generated)).values() for r in split]
    raising = [r for r in rows if r["error"]]
    assert 0 < len(raising) < len(rows) // 2
    for row in raising:
        last = row["steps"][-1]
        assert last["event"] == "exception" and last["depth"] == 0 and last["value"] == row["error"]


def test_split_by_skeleton_keeps_groups_whole():
    from dataset_builder.build import split_by_skeleton

    skeletons = [f"s{i % 7}" for i in range(70)]
    train, test = split_by_skeleton(skeletons, 0.3, seed=1)
    assert sorted(train + test) == list(range(70))
    assert len(test) == 20  # whole groups of 10: the closest to 21 without going over
    assert not {skeletons[i] for i in train} & {skeletons[i] for i in test}
    assert split_by_skeleton(skeletons, 0, seed=1)[1] == []
    assert len(split_by_skeleton(skeletons, 35, seed=1)[1]) == 30


def test_shards_do_not_overlap_and_merge_into_one_structurally_split_dataset(tmp_path):
    from datasets import load_from_disk

    from dataset_builder.cli import merge_main
    from dataset_builder.normalize import skeleton

    for i in (0, 1):
        result = build(["--n", "30", "--seed", "5", "--shard", f"{i}/2", "--output", str(tmp_path / f"s{i}")])
        assert result.exit_code == 0, result.output
    ids = [{r["id"] for split in load_from_disk(str(tmp_path / f"s{i}")).values() for r in split} for i in (0, 1)]
    assert len(ids[0]) == len(ids[1]) == 30 and not ids[0] & ids[1]
    report = json.loads((tmp_path / "s1" / "report.json").read_text())
    assert report["options"]["shard"] == "1/2"

    result = CliRunner().invoke(
        merge_main, [str(tmp_path / "s0"), str(tmp_path / "s1"), "--output", str(tmp_path / "merged")]
    )
    assert result.exit_code == 0, result.output
    merged = load_from_disk(str(tmp_path / "merged"))
    rows = list(merged["train"]) + list(merged["test"])
    assert {r["id"] for r in rows} == ids[0] | ids[1] and len(rows) == 60
    assert not {skeleton(r["code"]) for r in merged["train"]} & {skeleton(r["code"]) for r in merged["test"]}

    bad = CliRunner().invoke(merge_main, [str(tmp_path / "nothing-here"), "--output", str(tmp_path / "m2")])
    assert bad.exit_code == 1 and "is not a dataset saved by build-dataset" in bad.output
    assert build(["--shard", "2/2"]).exit_code == 2
