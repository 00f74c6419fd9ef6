"""No program may change, hide or stall another: the second round of attacks, in real bwrap workers.

Each attack shares a worker with honest programs (`workers=1` where the order matters), and the honest programs'
rows are compared with those of a build without the attack. The first round (secrets, files, network, signals,
tracer tampering, malformed frames) is in test_sandbox.py.
"""

import errno
import json
import os
import textwrap

import pytest

from dataset_builder.build import BuildError, BuildOptions, build_dataset, read_programs_file
from dataset_builder.cgroups import probe as probe_cgroups
from dataset_builder.tracer import TraceLimits
from dataset_builder.workers import WorkerLimits, trace_in_workers
from sandboxes import BWRAP, needs_bwrap

HONEST = [
    "total = 0\nfor i in range(3):\n    total += i",
    "import heapq\nh = [3, 1]\nheapq.heapify(h)",
    "s = 'abc'\nt = s[::-1].upper()",
]


def _build(programs: list[dict], output, workers: int = 1, **options):
    from datasets import load_from_disk

    path = output.parent / f"{output.name}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(p) + "\n" for p in programs))
    report = build_dataset(
        BuildOptions(
            programs_file=path, output=output, sandbox="bwrap", workers=workers, timeout=3.0, test_size=0, **options
        )
    )
    return {row["id"]: row for row in load_from_disk(str(output))["train"]}, report


def _forger(victim_code: str, victim_id: str | None) -> str:
    """A program that writes a well-framed, well-formed result for the victim (its code, its normal form, its
    id, a false trace) on every descriptor it has, then exits before its own result is written."""
    return textwrap.dedent(f"""
        import json, os
        from dataset_builder.normalize import forms, id_of_normalized
        victim = {victim_code!r}
        norm = id_of_normalized(forms(victim)[0])
        name = {victim_id!r} or norm
        row = {{'id': name, 'code': victim, 'steps': [], 'stdout': 'forged', 'error': '', 'prompt': [],
               'expected_trace': 'forged', 'num_lines': 1, 'num_steps': 0, 'constructs': [],
               'skeleton': '0123456789abcdef'}}
        body = json.dumps({{'id': name, 'norm': norm, 'failure': '', 'row': row, 'seconds': {{}}}}).encode()
        for fd in range(3, 64):
            try:
                os.write(fd, len(body).to_bytes(4, 'big') + body)
            except OSError:
                pass
        os._exit(0)""").strip()


@needs_bwrap
@pytest.mark.parametrize("with_ids", [True, False], ids=["ids", "no ids"])
def test_a_program_cannot_pass_off_a_result_as_another_programs(tmp_path, with_ids):
    victim = HONEST[0]
    honest = [{"id": f"h{i}", "code": code} for i, code in enumerate(HONEST)]
    forger = {"id": "forger", "code": _forger(victim, "h0" if with_ids else None)}
    if not with_ids:
        honest = [{"code": p["code"]} for p in honest]
        forger = {"code": forger["code"]}
    rows, report = _build([forger, *honest], tmp_path / "attacked")  # the forger runs first, in the same worker
    clean, _ = _build(honest, tmp_path / "clean")
    assert rows == clean  # every honest row, byte for byte; the victim is not called a duplicate
    assert report.process_limits == probe_cgroups().describe()  # report.json says what bounded the workers
    assert len(report.rejected) == 1
    rejected = report.rejected[0]
    assert rejected["reason"] == "its process reported a result that is not its own"
    assert rejected["id"] == "forger" if with_ids else rejected["id"] not in clean  # named by its own id


@needs_bwrap
def test_system_calls_no_program_needs_are_denied():
    """ptrace (the way to take over another process of the sandbox and forge or hang it), cross-process memory,
    stealing descriptors, namespaces, mounts, keyrings, BPF and io_uring all fail; ordinary work still runs."""
    code = textwrap.dedent("""
        import ctypes, os, subprocess, threading
        libc = ctypes.CDLL(None, use_errno=True)
        def errno_of(number, *args):
            libc.syscall(number, *args)
            return ctypes.get_errno()
        calls = {'ptrace attach pid 1': (101, 16, 1, 0, 0), 'process_vm_writev': (311, 1, 0, 0, 0, 0, 0),
                 'pidfd_getfd': (438, 0, 0, 0), 'unshare user': (272, 0x10000000), 'mount': (165, 0, 0, 0, 0, 0),
                 'keyctl': (250, 0, 0, 0, 0, 0), 'bpf': (321, 0, 0, 0), 'io_uring_setup': (425, 1, 0),
                 'clone new user': (56, 0x10000000 | 17, 0, 0, 0, 0), 'clone3': (435, 0, 0)}
        denied = {name: errno_of(*args) for name, args in calls.items()}
        threading.Thread(target=print).start()
        spawned = subprocess.run(['/usr/bin/true']).returncode
        pid = os.fork()
        if pid == 0:
            os._exit(7)
        forked = os.waitpid(pid, 0)[1] >> 8""")
    if os.uname().machine != "x86_64":
        pytest.skip("the system call numbers in this test are x86_64's")
    ((_, result),) = trace_in_workers(
        [(0, code)], workers=1, trace_limits=TraceLimits(max_value_chars=1000), limits=WorkerLimits(), sandbox=BWRAP
    )
    state = dict(result.steps[-1].state)
    denied = eval(state["denied"])
    assert denied == {name: errno.ENOSYS if name == "clone3" else errno.EPERM for name in denied}
    assert state["spawned"] == "0" and state["forked"] == "7"  # threads, subprocesses and fork still work


TREE = probe_cgroups()
needs_cgroups = pytest.mark.skipif(not TREE.kind, reason=f"no writable cgroups here: {TREE.why_not}")


@needs_bwrap
@needs_cgroups
def test_a_fork_bomb_stops_at_the_process_cap_of_its_worker():
    bomb = textwrap.dedent("""
        import os, signal, time
        children = []
        while len(children) < 500:
            try:
                pid = os.fork()
            except OSError:
                break
            if pid == 0:
                time.sleep(30)
                os._exit(0)
            children.append(pid)
        for pid in children:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        made = len(children)""")
    limits = WorkerLimits(max_processes=20)
    results = dict(
        trace_in_workers(
            [(0, bomb), (1, HONEST[0])], workers=1, trace_limits=TraceLimits(), limits=limits, sandbox=BWRAP
        )
    )
    made = int(dict(results[0].steps[-1].state)["made"])
    assert 10 <= made <= limits.max_processes  # the cap holds although root is exempt from RLIMIT_NPROC
    assert not results[1].failure


@needs_bwrap
@needs_cgroups
def test_forked_children_share_one_memory_budget():
    """Four children of 300 MiB each pass a 512 MiB per-process limit, not the worker's cgroup."""
    hog = textwrap.dedent("""
        import os, time
        pids = []
        for _ in range(4):
            pid = os.fork()
            if pid == 0:
                block = b'x' * (300 << 20)
                time.sleep(2)
                os._exit(0)
            pids.append(pid)
        statuses = [os.waitpid(pid, 0)[1] for pid in pids]
        killed = sum(status == 9 for status in statuses)""")
    results = dict(
        trace_in_workers(
            [(0, hog), (1, HONEST[0])],
            workers=1,
            trace_limits=TraceLimits(),
            limits=WorkerLimits(memory_mb=512, timeout=20),
            sandbox=BWRAP,
        )
    )
    hogged = results[0]
    assert hogged.failure == "memory limit" or int(dict(hogged.steps[-1].state)["killed"]) >= 1
    assert not results[1].failure


@needs_bwrap
def test_a_slow_program_holds_back_at_most_one_other(tmp_path):
    """Two workers, one program that runs to its timeout first in line: the quick ones go to the other worker
    instead of queueing behind it."""
    programs = [(0, "import time\ntime.sleep(60)")] + [(i, f"x = {i}") for i in range(1, 9)]
    order = [
        index
        for index, _ in trace_in_workers(
            programs, workers=2, trace_limits=TraceLimits(), limits=WorkerLimits(timeout=4.0), sandbox=BWRAP
        )
    ]
    assert len(order) == 9
    assert len(order[order.index(0) :]) <= 2  # the slow one, and at most one quick one that waited behind it


HOG = """
import os, time
for _ in range(60):
    if os.fork() == 0:
        os.setsid()
        sum(range(10 ** 12))  # busy in C: the tracer's step cap does not stop it
time.sleep(30)
"""
BUSY = "import time\ntime.sleep(0.5)\ntotal = sum(range(30_000_000))"  # about 0.3 s of one core, in one line


@needs_bwrap
@pytest.mark.skipif(not probe_cgroups().cpu, reason="the host lets the build put no worker in a cpu cgroup")
def test_a_program_with_60_busy_children_does_not_starve_the_next_worker():
    """The CPU is shared between workers, not between processes: 60 busy children of one program take their
    worker's share, and an honest program in the other worker finishes well within its timeout."""
    programs = [(0, HOG), (1, BUSY)]
    results = dict(
        trace_in_workers(
            programs,
            workers=2,
            trace_limits=TraceLimits(),
            limits=WorkerLimits(timeout=8.0, batch_size=1),
            sandbox=BWRAP,
        )
    )
    clean = dict(
        trace_in_workers([(1, BUSY)], workers=1, trace_limits=TraceLimits(), limits=WorkerLimits(), sandbox=BWRAP)
    )
    assert results[0].failure in ("timeout", "left a process running")
    assert results[1].failure == "" and results[1].steps == clean[1].steps


def _rewriter(change: str) -> str:
    """A program that rewrites its own result after its trace: it replaces `json.dumps` in the process that will
    serialize the result, and `change` edits the result (`result`, and `row` when there is one) on its way out."""
    return textwrap.dedent(f"""
        import json
        dumps = json.dumps
        def rewrite(result, **options):
            row = result.get('row') or {{}}
            {change}
            return dumps(result, **options)
        json.dumps = rewrite
        x = 1""").strip()


REWRITES = {
    "100,000 steps": "row['steps'] = row['steps'][:1] * 100_000; row['num_steps'] = len(row['steps'])",
    "5,000 steps": "row['steps'] = row['steps'][:1] * 5_000; row['num_steps'] = len(row['steps'])",
    "a 100,000-character value": "row['steps'][0]['state'] = [{'name': 'x', 'value': 'v' * 100_000}]",
    "a trace past its cap in small values": (
        "row['steps'] = [dict(row['steps'][0], state=[{'name': 'x', 'value': 'v' * 100}] * 2)] * 900; "
        "row['num_steps'] = 900"
    ),
    "a megabyte of output": "row['stdout'] = 'o' * 1_000_000",
    "forged construct names": "row['constructs'] = ['<img src=x onerror=alert(1)>']",
    "NaN seconds": "result['seconds']['trace'] = float('nan')",
    "a false line count": "row['num_lines'] = 10 ** 6",
}


@needs_bwrap
def test_a_program_that_rewrites_its_own_result_stays_within_the_builds_caps(tmp_path):
    """A program may lie about its own trace, but not past the build's caps: the parent checks every field of
    every result against them, refuses a message larger than the caps allow before reading it, and derives what
    it can (the line count) from the code."""
    honest = [{"id": f"h{i}", "code": f"{HONEST[i % len(HONEST)]}\ntag = {i}"} for i in range(len(REWRITES))]
    rewriters = [{"id": name, "code": _rewriter(change)} for name, change in REWRITES.items()]
    programs = [p for pair in zip(rewriters, honest) for p in pair]  # each rewriter before an honest one
    rows, report = _build(programs, tmp_path / "attacked", workers=2)
    clean, _ = _build(honest, tmp_path / "clean")
    assert {i: r for i, r in rows.items() if i.startswith("h")} == clean
    reasons = {r["id"]: r["reason"] for r in report.rejected}
    assert reasons.pop("100,000 steps") == "result too large"  # refused by its worker, never sent
    assert reasons.pop("5,000 steps") == "protocol error: more steps than the cap (5000 > 1000)"
    assert reasons.pop("a 100,000-character value") == "protocol error: a value is too long"
    assert reasons.pop("a trace past its cap in small values") == (
        "protocol error: a trace longer than the cap (100000 characters)"
    )
    assert reasons.pop("a megabyte of output") == "protocol error: stdout is too long"
    assert reasons.pop("forged construct names") == (
        "protocol error: constructs are not distinct names from the builder's list"
    )
    assert reasons.pop("NaN seconds") == "protocol error: not JSON (ValueError)"
    assert reasons == {}
    assert rows["a false line count"]["num_lines"] == len(_rewriter(REWRITES["a false line count"]).splitlines())


# ---------------------------------------------------------------------------------------------------------
# Sizes and parsing: bounded, in the sandbox or not at all


@needs_bwrap
def test_huge_messages_names_and_programs_are_bounded_and_never_parsed_by_the_build(tmp_path, monkeypatch):
    import dataset_builder.normalize as normalize

    def refuse(*args, **kwargs):
        raise AssertionError("the build parsed a program outside the sandbox")

    for name in ("forms", "program_id", "normalized_source"):  # the parent process must never call them
        if hasattr(normalize, name):
            monkeypatch.setattr(normalize, name, refuse)
    long_name = "v" * 999
    programs = [
        {"id": "message", "code": "x = 1\nraise ValueError('m' * 30_000_000)"},
        {"id": "names", "code": f"for i in range(150):\n    {long_name} = i"},
        {"id": "huge", "code": "x = 1\n" * 200_000},
        {"code": "def broken(:\n    pass"},  # no id and no parse: named by its place
        {"id": "fine", "code": HONEST[0]},
    ]
    rows, report = _build(programs, tmp_path / "out", workers=2)
    reasons = {r["id"]: r["reason"] for r in report.rejected}
    assert len(rows["message"]["error"]) < 1100 and rows["message"]["error"].endswith("<truncated 30000000 chars>")
    assert reasons["names"].startswith("trace too long")
    assert reasons["huge"] == "too long (1200000 characters > 100000)"
    assert reasons["#3"].startswith("syntax error")
    assert set(rows) == {"message", "fine"}


def test_programs_files_read_as_common_jsonl_readers_do(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_bytes(
        b"\xef\xbb\xbf"
        + json.dumps({"id": "a", "code": "s = 'x\u2028y'"}, ensure_ascii=False).encode()
        + b"\n"
        + json.dumps({"id": "b", "code": "y = 2"}).encode()
        + b"\n"
    )
    assert read_programs_file(path) == [("a", "s = 'x\u2028y'"), ("b", "y = 2")]
    path.write_text("[" * 100_000 + "\n")
    with pytest.raises(BuildError, match=r"line 1: JSON nested too deeply\.$"):
        read_programs_file(path)


def test_text_from_programs_is_escaped_in_the_terminal():
    from io import StringIO

    from rich.console import Console

    from dataset_builder.cli import terminal_text

    hostile = "[/bold] \x1b]0;owned\x07 \x1b[31mred"
    out = StringIO()
    Console(file=out, force_terminal=True, highlight=False).print(terminal_text(hostile))
    printed = out.getvalue()
    assert "\x1b]0;" not in printed and "\x07" not in printed and "\x1b[31m" not in printed
    assert "[/bold]" in printed and "\\x1b]0;owned\\x07" in printed


NONDETERMINISTIC = {
    "id": "o = object()\nx = id(o)",
    "hash": "o = object()\nh = hash(o)",
    # 100 objects, not a few: the order of a few stays the same between two runs more often (a pass by chance)
    "set order": "class A:\n    pass\nitems = [A() for _ in range(100)]\n"
    "order = hash(tuple(items.index(a) for a in set(items)))",
    "time": "import time\nt = time.time()",
    "urandom": "import os\nb = os.urandom(8)",
    "pid": "import os\np = os.getpid()",
    "pid plus one": "import os\np = os.getpid()\nq = p + 1",
    "pid as text": "import os\ns = str(os.getpid())\nn = len(s)",
    "pid in a function": "import os\ndef f():\n    return os.getpid() * 2\nr = f()",
}
DETERMINISTIC = {
    "sorted set of strings": "y = {'b', 'a', 'c'}\nz = sorted(y)\nw = list(y)",  # the hash seed is fixed
    "seeded random": "import random\nr = random.random()",  # seeded in every program's process
    "plain": HONEST[0],
}


@needs_bwrap
def test_the_same_programs_give_the_same_rows_and_nondeterministic_ones_are_rejected(tmp_path):
    """Two builds of the same file give the same rows: what can be fixed is (hash seed, `random`), and a program
    whose trace depends on memory addresses, the clock, the pid or os.urandom is rejected with its own reason."""
    from dataset_builder.build import NONDETERMINISTIC as REASON

    programs = [{"id": name, "code": code} for name, code in {**NONDETERMINISTIC, **DETERMINISTIC}.items()]
    first, report = _build(programs, tmp_path / "first", workers=2)
    second, _ = _build(programs, tmp_path / "second", workers=2)
    assert first == second and set(first) == set(DETERMINISTIC)
    assert {r["id"]: r["reason"] for r in report.rejected} == {name: REASON for name in NONDETERMINISTIC}
    assert report.rejected_by_reason == {"nondeterministic": len(NONDETERMINISTIC)}
