"""`push-dataset` end to end: the real CLI (in a subprocess) pushes a built dataset to the local Hub server,
the real `datasets` client loads it back, and what was pushed is checked the way a user (or the Hub's viewer)
would: rows, parquet files, README metadata, the rendered card, commits, and every error case."""

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


# ---------------------------------------------------------------------------------------------------------
# A built dataset: the real `build-dataset` when it can generate programs, else the same shape built by hand


def _hand_rows(programs):
    """Rows in build-dataset's exact shape for straight-line programs, traced by running them line by line."""
    from dataset_builder.trace import Step, format_trace, make_prompt, one_line_message

    rows = []
    for code in programs:
        namespace, steps, printed, error = {}, [], [], ""
        for number, line in enumerate(code.splitlines(), 1):
            out = io.StringIO()
            try:
                with contextlib.redirect_stdout(out):
                    exec(line, namespace)
            except Exception as exc:  # the program ends in an exception
                error = one_line_message(exc)
                steps.append(Step(number, "exception", value=error))
                break
            state = tuple((k, repr(v)) for k, v in namespace.items() if not k.startswith("__"))
            steps.append(Step(number, "line", state=state, output=out.getvalue()))
            printed.append(out.getvalue())
        rows.append(
            {
                "id": hashlib.sha256(code.encode()).hexdigest()[:16],
                "code": code,
                "steps": [s.to_row() for s in steps],
                "stdout": "".join(printed),
                "error": error,
                "prompt": make_prompt(code),
                "expected_trace": format_trace(steps),
                "num_lines": len(code.splitlines()),
                "num_steps": len(steps),
                "constructs": ["assign"] + (["print"] if "print" in code else []) + (["list"] if "[" in code else []),
                "skeleton": hashlib.sha256(re.sub(r"\d+", "N", code).encode()).hexdigest()[:16],
            }
        )
    return rows


def _as_dataset(rows):
    from datasets import Dataset, Features, List, Value

    from dataset_builder.trace import steps_features

    features = Features(
        {
            "id": Value("string"),
            "code": Value("string"),
            "steps": steps_features(),
            "stdout": Value("string"),
            "error": Value("string"),
            "prompt": List({"role": Value("string"), "content": Value("string")}),
            "expected_trace": Value("string"),
            "num_lines": Value("int32"),
            "num_steps": Value("int32"),
            "constructs": List(Value("string")),
            "skeleton": Value("string"),
        }
    )
    return Dataset.from_list(rows, features=features)


def _hand_built(out: Path, n: int = 40) -> None:
    from datasets import DatasetDict

    shapes = [
        "x = {a}\ny = {b}\nz = x + y\nprint(z)",
        "items = [{a}, {b}]\nitems.append({a} * 2)\ntotal = sum(items)",
        "a = {a}\nb = a - {a}\nc = {b} / b",
        "s = 'v{a}'\nt = s * {b}\nprint(len(t))\nu = t.upper()",
    ]
    programs = [shapes[i % len(shapes)].format(a=i + 1, b=i % 7 + 2) for i in range(n)]
    rows = _hand_rows(programs)
    train = [r for r in rows if not r["code"].startswith("s = ")]  # one whole structure goes to test
    test = [r for r in rows if r["code"].startswith("s = ")]
    DatasetDict({"train": _as_dataset(train), "test": _as_dataset(test)}).save_to_disk(str(out))
    kinds = {}
    for r in rows:
        for k in r["constructs"]:
            kinds[k] = kinds.get(k, 0) + 1
    report = {
        "seed": 0,
        "source": "generated",
        "python_version": "3.11.7",
        "sandbox": "none",
        "options": {"n": n, "seed": 0, "workers": 2, "timeout": 5.0, "max_steps": 1000, "max_value_chars": 160},
        "counts": {"kept": len(rows), "train": len(train), "test": len(test), "rejected": 1},
        "rejected": [{"id": "x", "reason": "duplicate"}],
        "rejected_by_reason": {"duplicate": 1},
        "distinct_skeletons": len({r["skeleton"] for r in rows}),
        "construct_kinds": kinds,
        "elapsed_s": 0.1,
    }
    (out / "report.json").write_text(json.dumps(report, indent=2))


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> Path:
    """A dataset folder as `build-dataset --n 40 --seed 0` writes it (read-only for the tests)."""
    out = tmp_path_factory.mktemp("built") / "traces"
    cli = BIN / "build-dataset"
    ran = (
        subprocess.run(
            [str(cli), "--n", "40", "--seed", "0", "--output", str(out)],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=ROOT,
        )
        if cli.exists()
        else None
    )
    if ran is None or ran.returncode != 0:
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        _hand_built(out)
    return out


def _digest(folder: Path) -> dict:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _push(hub_server, tmp_path, *args, token=None, env=None):
    """Run the real CLI in a fresh process pointed at the server (guarded to loopback like every process a test
    starts: tests/loopback_guard); returns (exit code, stdout, stderr)."""
    full_env = {k: v for k, v in os.environ.items() if k != "HF_TOKEN"}
    full_env.update(hub_server.env(token, hf_home=tmp_path / "cli_home"))
    full_env.update(env or {})
    ran = subprocess.run(
        [str(BIN / "push-dataset"), *map(str, args)],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=180,
        cwd=ROOT,
    )
    return ran.returncode, ran.stdout, ran.stderr


def _load(repo_id, token, cache):
    import datasets

    return datasets.load_dataset(repo_id, token=token, cache_dir=str(cache))


def _readme_meta(hub_server, repo_id):
    text = hub_server.read(repo_id, "README.md").decode()
    front, body = re.match(r"---\n(.*?)\n---\n(.*)", text, re.S).groups()
    return yaml.safe_load(front), body


# ---------------------------------------------------------------------------------------------------------
# The command line without heavy imports


def test_help_imports_no_heavy_library():
    code = (
        "import sys\nfrom hub.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('HEAVY', sorted(m for m in ('torch', 'datasets', 'pyarrow', 'huggingface_hub') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout and "--repo-id" in out.stdout


# ---------------------------------------------------------------------------------------------------------
# The card, rendered without any server


def test_card_renders_figures_from_the_data(built):
    from datasets import load_from_disk

    from hub.card import histogram_svg, render_card

    dsd = load_from_disk(str(built))
    report = json.loads((built / "report.json").read_text())
    card, figures = render_card(dsd, report, "alice/traces")
    text = str(card)
    assert "{{" not in text and "{%" not in text
    meta = card.data.to_dict()
    assert meta["license"] == "apache-2.0" and meta["task_categories"] == ["text-generation"]
    assert meta["size_categories"] == ["n<1K"] and meta["pretty_name"] and meta["language"] == ["en"] and meta["tags"]
    assert meta["configs"][0]["data_files"] == [{"split": s, "path": f"data/{s}-*"} for s in dsd]
    assert [f["name"] for f in meta["dataset_info"]["features"]] == dsd["train"].column_names
    body = card.text
    for name in dsd:
        assert f"`{name}`: {len(dsd[name])} program" in body
    errors = sum(bool(e) for n in dsd for e in dsd[n]["error"])
    assert f"{100 * errors / (len(dsd['train']) + len(dsd['test'])):.1f}%" in body
    assert f"CPython {report['python_version']}" in body
    assert f"| Sandbox | {report['sandbox']} |" in body  # which sandbox traced the data, as the build recorded it
    assert "](images/distributions.svg)" in body
    assert 'load_dataset("alice/traces")' in body and "train-and-push --dataset alice/traces" in body
    # install lines that work: the toolkit is on no registry, so from a clone; loading needs only `datasets`
    assert (
        "pip install datasets" in body
        and "pip install -e ." in body
        and "pip install execution-world-model" not in body
    )
    assert figures["example"]["trace"] in body and "## Limitations" in body
    assert f"| lines of code | {figures['lines']['min']} |" in body
    if report.get("seed") is not None:
        assert f"seed `{report['seed']}`" in body
    svg = ET.fromstring(histogram_svg(figures))
    assert svg.tag.endswith("svg") and len(svg.findall(".//{http://www.w3.org/2000/svg}rect")) > 4
    # a build with --drill-share says how much of its train split is drills; one without says nothing of them
    assert "| Drills |" not in body
    drilled = {**report, "counts": {**report["counts"], "drills": 3}}
    assert "| Drills | 3 of the `train` programs are drills" in render_card(dsd, drilled, "alice/traces")[0].text


def test_card_says_it_lists_only_the_most_common_exception_types():
    from datasets import DatasetDict

    from hub.card import TOP_EXCEPTION_TYPES, render_card

    failing = [
        "y = 1 / 0",
        "y = int('a')",
        "y = [][1]",
        "y = {}['k']",
        "y = None + 1",
        "y = nope",
        "y = (1).nope",
        "assert False",
        "raise RuntimeError('x')",
        "raise StopIteration",
    ]
    programs = [f"x = {i}\n{line}" for i, line in enumerate(failing)] + ["x = 1\ny = 1 / 0", "x = 2\ny = int('b')"]
    rows = _hand_rows(programs)
    assert len({r["error"].split(":")[0] for r in rows}) == len(failing) > TOP_EXCEPTION_TYPES
    dsd = DatasetDict({"train": _as_dataset(rows[:-1]), "test": _as_dataset(rows[-1:])})
    body = render_card(dsd, {"python_version": "3.11.7"}, "alice/traces")[0].text
    line = next(text for text in body.splitlines() if text.startswith("Uncaught exceptions"))
    assert line.startswith(f"Uncaught exceptions, the {TOP_EXCEPTION_TYPES} most common types of {len(failing)}: ")
    assert line.count("`") == 2 * TOP_EXCEPTION_TYPES and "2 `ZeroDivisionError`, 2 `ValueError`" in line
    few = render_card(DatasetDict({"train": _as_dataset(rows[:3]), "test": _as_dataset(rows[3:4])}), {}, "a/b")[0].text
    assert (
        "Uncaught exceptions, all 4 types: 1 `ZeroDivisionError`, 1 `ValueError`, 1 `IndexError`, 1 `KeyError`." in few
    )


def test_text_that_programs_control_is_escaped_in_the_card():
    """Ids, exception type names and rejection reasons come from programs: they show as text, never as HTML,
    links or code that closes its span early."""
    from datasets import DatasetDict

    from hub.card import render_card

    rows = _hand_rows(
        ["E = type('<img src=x onerror=alert(1)>', (Exception,), {})\nraise E('x')", "s = '```'\nprint(s)\nt = s * 2"]
    )
    rows[1]["id"] = "a`b<script>"
    report = {
        "python_version": "3.11.7",
        "counts": {"rejected": 1},
        "rejected_by_reason": {"protocol error: an unexpected '[link](http://x) <script>' message": 1},
    }
    body = render_card(
        DatasetDict({"train": _as_dataset(rows[:1] + rows[1:]), "test": _as_dataset(rows[:1])}), report, "a/b"
    )[0].text
    prose = re.sub(r"(`+)(.+?)\1", "", re.sub(r"(?ms)^(`{3,})\w*\n.*?^\1$", "", body))  # outside code
    assert "<img" not in prose and "<script" not in prose and "](http" not in prose
    assert "2 `<img src=x onerror=alert(1)>`" in body  # a code span shows its text literally
    assert "(``a`b<script>``)" in body
    fence = re.search(r"^(`+)\n<execution_trace>", body, re.M).group(1)
    assert len(fence) == 7  # longer than the ``````  (t = s * 2) inside the trace


def test_program_text_and_user_paths_in_the_card(tmp_path):
    """A program's code, values or output may hold `{{ ... }}` or `{% ... %}`: the card shows them as written (a
    value is never read as a template, so one program cannot stop the push). A template that names something
    the card does not provide is the template's mistake, said in one sentence. The programs file's path is
    not published, only its name."""
    from datasets import DatasetDict

    from hub.card import render_card
    from hub.errors import HubError

    rows = _hand_rows(["s = '{{ figures.total }} {% if true %}'\nprint(s)", "t = '{{ 7 * 7 }}'\nu = t"])
    dsd = DatasetDict({"train": _as_dataset(rows), "test": _as_dataset(rows[:1])})
    body = render_card(dsd, {"python_version": "3.11.7"}, "a/b")[0].text
    example = re.search(r"^(`+)python\n(.*?)^\1$", body, re.M | re.S).group(2)
    assert example in ("s = '{{ figures.total }} {% if true %}'\nprint(s)\n", "t = '{{ 7 * 7 }}'\nu = t\n")
    assert "49" not in body
    # the programs file a build was given shows as its name: no path of the user's reaches the Hub
    report = {"python_version": "3.11.7", "source": "file", "options": {"programs_file": "/home/alice/work/mine.jsonl"}}
    body = render_card(dsd, report, "a/b")[0].text
    assert "| `programs_file` | `mine.jsonl` |" in body and "/home/alice" not in body
    template = tmp_path / "card.md"
    template.write_text("# {{ pretty_name }}\n{{ figures.no_such_figure }}\n")
    with pytest.raises(HubError) as error:
        render_card(dsd, {"python_version": "3.11.7"}, "a/b", template=template)
    assert str(error.value).startswith("The dataset card template uses a name the card does not provide (")
    assert "no_such_figure" in str(error.value) and "\n" not in str(error.value)


# ---------------------------------------------------------------------------------------------------------
# Push, load back, viewer constraints, idempotence, stale files


def test_push_loads_back_equal_and_viewer_safe(hub_server, built, tmp_path):
    from datasets import load_from_disk

    token = hub_server.add_user("alice")
    before = _digest(built)
    code, out, err = _push(hub_server, tmp_path, built, "--repo-id", "alice/traces", token=token)
    assert code == 0, err
    assert f"{hub_server.url}/datasets/alice/traces" in out and token not in out + err

    local = load_from_disk(str(built))
    remote = _load("alice/traces", token, tmp_path / "cache")
    assert set(remote) == set(local)
    for split in local:
        assert remote[split].features == local[split].features
        assert remote[split].to_list() == local[split].to_list()

    # Viewer-safe: parquet data only, configs + dataset_info in the README, one type per column, small first rows.
    files = hub_server.files("alice/traces")
    data_files = sorted(p for p in files if p.startswith("data/"))
    assert data_files and all(p.endswith(".parquet") for p in data_files)
    assert {p.split("/")[1].split("-")[0] for p in data_files} == {"train", "test"}
    meta, body = _readme_meta(hub_server, "alice/traces")
    assert meta["configs"] == [
        {
            "config_name": "default",
            "data_files": [{"split": "train", "path": "data/train-*"}, {"split": "test", "path": "data/test-*"}],
        }
    ]
    assert [f["name"] for f in meta["dataset_info"]["features"]] == local["train"].column_names
    assert {s["name"]: s["num_examples"] for s in meta["dataset_info"]["splits"]} == {s: len(local[s]) for s in local}
    import pyarrow as pa
    import pyarrow.parquet as pq

    schemas = {p: pq.read_schema(pa.BufferReader(hub_server.read("alice/traces", p))) for p in data_files}
    first = next(iter(schemas.values()))
    assert all(s.equals(first) for s in schemas.values())
    assert not any(pa.types.is_null(t) for t in first.types)
    for split in remote:  # the viewer's first page (10 rows) and every row stay under ~200 KB of JSON
        rows = remote[split].to_list()
        assert len(json.dumps(rows[:10]).encode()) < 200_000
        assert max(len(json.dumps(row).encode()) for row in rows) < 200_000

    # The card carries the figures and its histogram sits beside it.
    assert "{{" not in body and "{%" not in body
    assert f"`train`: {len(local['train'])} programs" in body and "CPython" in body
    ET.fromstring(hub_server.read("alice/traces", "images/distributions.svg"))
    titles = [c["title"] for c in hub_server.commits("alice/traces")]
    assert titles == [
        f"Publish dataset ({len(local['train'])} train / {len(local['test'])} test programs) with its card",
        "initial commit",
    ]
    assert _digest(built) == before


def test_our_shards_and_metadata_are_what_datasets_push_to_hub_writes(hub_server, built, tmp_path):
    """The layout the viewer and `load_dataset` read, checked against `datasets` itself (a new `datasets` that
    writes differently fails here): same shard paths and bytes, same `configs` and `dataset_info`."""
    from datasets import load_from_disk

    from hub.layout import hub_metadata, write_parquet_shards

    token = hub_server.add_user("alice")
    local = load_from_disk(str(built))
    local.push_to_hub("alice/reference", token=token)
    theirs = {p: f["sha256"] for p, f in hub_server.files("alice/reference").items() if p.startswith("data/")}
    ours = write_parquet_shards(local, tmp_path / "ours")
    assert {p: hashlib.sha256(f.read_bytes()).hexdigest() for p, f in ours.items()} == theirs
    meta, _ = _readme_meta(hub_server, "alice/reference")
    assert hub_metadata(local, ours) == {"configs": meta["configs"], "dataset_info": meta["dataset_info"]}


def test_repush_is_a_no_op_and_changed_data_lands_in_one_commit(hub_server, built, tmp_path):
    from datasets import load_from_disk
    from huggingface_hub import HfApi

    token = hub_server.add_user("alice")
    api = HfApi(token=token)

    def commits():  # as a user sees them: the real client's commit listing
        return api.list_repo_commits("alice/traces", repo_type="dataset")

    assert _push(hub_server, tmp_path, built, "--repo-id", "alice/traces", token=token)[0] == 0
    assert [c.title for c in commits()][1:] == ["initial commit"]  # creating the repo, then one commit: the push
    head = commits()[0].commit_id
    code, out, err = _push(hub_server, tmp_path, built, "--repo-id", "alice/traces", token=token)
    assert code == 0 and "nothing to push" in out, err
    assert commits()[0].commit_id == head

    # Leftovers a previous layout could have left: an extra split's shard and an old image.
    api.upload_file(
        path_or_fileobj=b"PAR1junk",
        path_in_repo="data/validation-00000-of-00001.parquet",
        repo_id="alice/traces",
        repo_type="dataset",
    )
    api.upload_file(
        path_or_fileobj=b"<svg/>", path_in_repo="images/old.svg", repo_id="alice/traces", repo_type="dataset"
    )
    before = hub_server.files("alice/traces")
    count = len(commits())

    # A changed dataset: fewer rows (saved in two shards; the Hub copy gets one per split).
    changed = tmp_path / "changed"
    local = load_from_disk(str(built))
    local["train"] = local["train"].select(range(len(local["train"]) - 3))
    local.save_to_disk(str(changed), num_shards={"train": 2, "test": 1})
    shutil.copy(built / "report.json", changed / "report.json")
    code, out, err = _push(hub_server, tmp_path, changed, "--repo-id", "alice/traces", token=token)
    assert code == 0, err

    # One commit holds all of it: the new train shard, the card, the histogram and the deletions of stale files.
    assert len(commits()) == count + 1
    after = hub_server.files("alice/traces")
    assert sorted(after) == [
        ".gitattributes",
        "README.md",
        "data/test-00000-of-00001.parquet",
        "data/train-00000-of-00001.parquet",
        "images/distributions.svg",
    ]
    touched = {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}
    assert touched == {
        "README.md",
        "data/train-00000-of-00001.parquet",
        "images/distributions.svg",
        "data/validation-00000-of-00001.parquet",
        "images/old.svg",
    }
    remote = _load("alice/traces", token, tmp_path / "cache2")
    assert remote["train"].to_list() == local["train"].to_list() and remote["test"].to_list() == local["test"].to_list()
    meta, body = _readme_meta(hub_server, "alice/traces")
    assert {s["name"]: s["num_examples"] for s in meta["dataset_info"]["splits"]}["train"] == len(local["train"])
    assert f"`train`: {len(local['train'])} programs" in body


def test_private_push_is_invisible_to_others(hub_server, built, tmp_path):
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError

    token, other = hub_server.add_user("alice"), hub_server.add_user("bob")
    # --token wins over HF_TOKEN (bob's, who cannot write to alice/)
    code, out, err = _push(
        hub_server, tmp_path, built, "--repo-id", "alice/secret", "--private", "--token", token, token=other
    )
    assert code == 0, err
    assert hub_server.repo_private("alice/secret")
    with pytest.raises(RepositoryNotFoundError):
        HfApi(token=other).dataset_info("alice/secret")
    assert len(_load("alice/secret", token, tmp_path / "cache")["train"]) > 0

    # A cached `hf auth login` (HF_HOME/token) is used when there is no HF_TOKEN and no --token.
    (tmp_path / "cli_home").mkdir(exist_ok=True)
    (tmp_path / "cli_home" / "token").write_text(token)
    code, out, err = _push(hub_server, tmp_path, built, "--repo-id", "alice/public")
    assert code == 0 and not hub_server.repo_private("alice/public"), err
    code, out, err = _push(hub_server, tmp_path, built, "--repo-id", "alice/public", "--private")
    assert code == 0 and "nothing to push" in out and hub_server.repo_private("alice/public"), err


def test_license_and_commit_message_are_what_was_passed(hub_server, built, tmp_path):
    """--license reaches the card's metadata and its License section; --commit-message titles the commit; a license
    id the Hub would not take, or an empty message, is one sentence and nothing is pushed."""
    token = hub_server.add_user("alice")
    code, out, err = _push(
        hub_server,
        tmp_path,
        built,
        "--repo-id",
        "alice/mine",
        "--license",
        "cc-by-4.0",
        "--commit-message",
        "First traces of my programs",
        token=token,
    )
    assert code == 0, err
    meta, body = _readme_meta(hub_server, "alice/mine")
    assert meta["license"] == "cc-by-4.0"
    assert "`cc-by-4.0`, as the person who pushed the dataset declared it" in body and "Apache-2.0" not in body
    assert hub_server.commits("alice/mine")[0]["title"] == "First traces of my programs"
    code, out, err = _push(hub_server, tmp_path, built, "--repo-id", "alice/default", token=token)
    meta, body = _readme_meta(hub_server, "alice/default")
    assert code == 0 and meta["license"] == "apache-2.0" and "Apache-2.0 (the programs come from" in body
    assert hub_server.commits("alice/default")[0]["title"].startswith("Publish dataset (")
    for args, message in (
        (["--license", "My License"], "is not a license id as the Hub writes them"),
        (["--commit-message", " "], "--commit-message is empty"),
    ):
        code, out, err = _push(hub_server, tmp_path, built, "--repo-id", "alice/bad", *args, token=token)
        assert code == 1 and message in err and len(err.strip().splitlines()) == 1
        assert hub_server.state.key("dataset", "alice/bad") not in hub_server.state.repos  # not even created


def test_a_branch_and_a_pull_request_leave_main_alone(hub_server, built, tmp_path):
    """--revision pushes to a branch made from main; --create-pr opens a pull request against main; main keeps its
    commit either way, and `datasets` loads each revision back with the rows that were pushed."""
    import datasets

    token = hub_server.add_user("alice")
    repo = ["--repo-id", "alice/traces"]
    code, out, err = _push(hub_server, tmp_path, built, *repo, token=token)
    assert code == 0, err
    main_head = hub_server.commits("alice/traces")[0]["id"]
    code, out, err = _push(hub_server, tmp_path, built, *repo, "--revision", "dev", token=token)
    assert code == 0 and "(branch dev)" in out, err
    assert "nothing to push" in out  # the new branch starts at main, which already holds this dataset
    changed = tmp_path / "changed"
    dsd = datasets.load_from_disk(str(built))
    datasets.DatasetDict({"train": dsd["train"].select(range(5)), "test": dsd["test"]}).save_to_disk(str(changed))
    shutil.copy(built / "report.json", changed / "report.json")
    code, out, err = _push(hub_server, tmp_path, changed, *repo, "--revision", "dev", token=token)
    assert code == 0 and out.startswith("Pushed 5 train") and "(branch dev)" in out, err
    code, out, err = _push(hub_server, tmp_path, changed, *repo, "--create-pr", token=token)
    assert code == 0 and out.startswith("Opened ") and "/datasets/alice/traces/discussions/1 " in out, err
    assert hub_server.commits("alice/traces")[0]["id"] == main_head  # main never moved
    card = {rev: hub_server.read("alice/traces", "README.md", revision=rev) for rev in ("main", "dev", "refs/pr/1")}
    assert card["dev"] == card["refs/pr/1"] != card["main"]  # the card describes the data beside it
    for revision, rows in (("main", len(dsd["train"])), ("dev", 5), ("refs/pr/1", 5)):
        loaded = datasets.load_dataset(
            "alice/traces", revision=revision, token=token, cache_dir=str(tmp_path / "cache" / revision)
        )
        assert len(loaded["train"]) == rows, revision
    code, out, err = _push(hub_server, tmp_path, changed, *repo, "--create-pr", "--revision", "dev", token=token)
    assert "--create-pr opens a pull request against main" in _one_sentence(code, out, err, token)


def test_nothing_but_loopback_is_ever_reached(hub_server, built, tmp_path):
    """With HF_ENDPOINT elsewhere, the CLI's connection is refused by the guard and reported in one sentence."""
    token = hub_server.add_user("alice")
    code, out, err = _push(
        hub_server, tmp_path, built, "--repo-id", "alice/x", token=token, env={"HF_ENDPOINT": "http://10.1.2.3"}
    )
    assert "Cannot reach the Hub at http://10.1.2.3" in _one_sentence(code, out, err, token)
    assert hub_server.requests == []


# ---------------------------------------------------------------------------------------------------------
# Errors: one sentence, exit 1, no traceback, token never shown, local data untouched, a rerun finishes


def _one_sentence(code, out, err, *secrets):
    assert code == 1, (out, err)
    assert "Traceback" not in err and err.startswith("Error: ")
    assert len([line for line in err.splitlines() if line.strip()]) == 1, err
    for secret in secrets:
        assert secret not in out + err
    return err


def test_errors_are_one_sentence_and_a_rerun_finishes(hub_server, built, tmp_path):
    token = hub_server.add_user("alice")
    hub_server.add_user("bob")
    before = _digest(built)
    repo = ("--repo-id", "alice/traces")

    assert "No Hugging Face token" in _one_sentence(*_push(hub_server, tmp_path, built, *repo))
    assert "Malformed repo id" in _one_sentence(
        *_push(hub_server, tmp_path, built, "--repo-id", "alice/bad name", token=token), token
    )
    assert "cannot write to the namespace 'bob'" in _one_sentence(
        *_push(hub_server, tmp_path, built, "--repo-id", "bob/traces", token=token), token
    )
    assert "rejected the token" in _one_sentence(
        *_push(hub_server, tmp_path, built, *repo, "--token", "hf_not_a_token"), "hf_not_a_token"
    )
    # with the libraries' progress bars on, as a user has them: the token is checked before any parquet is written
    bars = {"HF_DATASETS_DISABLE_PROGRESS_BARS": "0", "HF_HUB_DISABLE_PROGRESS_BARS": "0"}
    assert "rejected the token" in _one_sentence(
        *_push(hub_server, tmp_path, built, *repo, "--token", "hf_nope", env=bars), "hf_nope"
    )
    assert "no dataset folder" in _one_sentence(
        *_push(hub_server, tmp_path, tmp_path / "missing", *repo, token=token), token
    )
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "dataset_dict.json").write_text("{not json")
    (junk / "report.json").write_text("{}")
    assert "cannot be read" in _one_sentence(*_push(hub_server, tmp_path, junk, *repo, token=token), token)

    # a local Hub pushed to through Xet (the clients' default): the broken connection says what to set
    xet = _one_sentence(
        *_push(hub_server, tmp_path, built, "--repo-id", "alice/xet", token=token, env={"HF_HUB_DISABLE_XET": "0"}),
        token,
    )
    assert "broke" in xet and "set HF_HUB_DISABLE_XET=1" in xet

    hub_server.stop()
    assert "Cannot reach the Hub" in _one_sentence(*_push(hub_server, tmp_path, built, *repo, token=token), token)
    hub_server.start()

    hub_server.fail("commit", status=500)  # the commit fails after the shards were uploaded
    failed = _one_sentence(*_push(hub_server, tmp_path, built, *repo, token=token), token)
    assert "HTTP 500" in failed and "run the same command again" in failed
    assert list(hub_server.files("alice/traces")) == [".gitattributes"]  # nothing of the push landed: no half-publish
    code, out, err = _push(hub_server, tmp_path, built, *repo, token=token)
    assert code == 0, err
    assert "images/distributions.svg" in hub_server.files("alice/traces")
    assert "Python execution traces" in hub_server.read("alice/traces", "README.md").decode()
    assert _digest(built) == before
    assert not list(tmp_path.joinpath("cli_home").rglob("token"))  # --token / HF_TOKEN were never saved


def test_hub_gone_right_after_the_existence_check_is_a_network_error(hub_server, built, tmp_path):
    """A new repo: the Hub answers the existence check (404), then goes away before the repo is created. The 404
    travels with the connection error; what the user must hear about is the network."""
    token = hub_server.add_user("alice")
    hub_server.stop_after("info")
    err = _one_sentence(*_push(hub_server, tmp_path, built, "--repo-id", "alice/new", token=token), token)
    assert "Cannot reach the Hub" in err and "not found" not in err
    assert ("GET", "/api/datasets/alice/new", 404) in hub_server.requests  # the check was answered


def test_viewer_breaking_data_is_refused_before_any_upload(built, tmp_path):
    from datasets import Dataset, DatasetDict, Value, load_from_disk

    from hub.errors import HubError
    from hub.publish import load_built_dataset, push_dataset, viewer_problems

    local = load_from_disk(str(built))
    assert viewer_problems(local)[0] == []
    broken = DatasetDict({s: local[s].add_column("note", [None] * len(local[s])) for s in local})
    assert broken["train"].features["note"] == Value("null")
    assert viewer_problems(broken)[0] == ["column 'note' has no type (all its values are null)"]
    folder = tmp_path / "broken"
    broken.save_to_disk(str(folder))
    shutil.copy(built / "report.json", folder / "report.json")
    with pytest.raises(HubError, match="would break the Hub viewer: column 'note' has no type"):
        push_dataset(folder, "alice/x", token="hf_unused")  # refused before any token or network use

    only_train = tmp_path / "only_train"
    DatasetDict({"train": local["train"]}).save_to_disk(str(only_train))
    shutil.copy(built / "report.json", only_train / "report.json")
    with pytest.raises(HubError, match="lacks the split"):
        load_built_dataset(only_train)
    no_report = tmp_path / "no_report"
    shutil.copytree(built, no_report)
    (no_report / "report.json").unlink()
    with pytest.raises(HubError, match="no readable report.json"):
        load_built_dataset(no_report)
    mixed = DatasetDict({"train": local["train"], "test": Dataset.from_dict({"id": ["x"]})})
    assert "the splits do not share one set of column types" in viewer_problems(mixed)[0]
