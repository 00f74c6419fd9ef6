"""Isolation: hostile programs never hang the build, never lose another program's row, leave no process
behind, and are reported with a reason. Real worker processes, really killed, with and without bwrap (attacks
on the user's files, secrets, network and the build itself are in test_sandbox.py)."""

import os
import time

import pytest

from dataset_builder.tracer import TraceLimits
from dataset_builder.workers import WorkerLimits, trace_in_workers
from sandboxes import SANDBOXES


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purposes
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def hostile_programs(pid_dir):
    """name -> (code, expected failure or None for a kept row, expected error). Programs record their pids in
    `pid_dir` where they can write there (not inside bwrap)."""
    record = (
        f"try:\n    open({str(pid_dir)!r} + '/' + str(__import__('os').getpid()), 'w').close()\n"
        "except OSError:\n    pass\n"
    )
    return {
        "infinite loop": ("while True:\n    pass", "too many steps", ""),
        "hang inside C code": ("x = 10 ** 10 ** 8", "timeout", ""),
        "sleep": ("import time\ntime.sleep(60)", "timeout", ""),
        "exhaust memory": ("x = [0] * (10 ** 10)", "memory limit", ""),
        "endless recursion": ("def f(n):\n    return f(n + 1)\nf(0)", None, ""),  # step cap or recursion limit
        "os._exit": ("import os\nos._exit(3)", "exited with code 3", ""),
        "sys.exit": ("import sys\nsys.exit(0)", "called sys.exit(0)", ""),
        "kill itself": ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", "killed by SIGKILL", ""),
        "read stdin": ("s = input()", "", "EOFError: EOF when reading a line"),
        "print without end": ("while True:\n    print('spam' * 100)", "too much output", ""),
        # its own process's streams: nothing of anyone else's, and print() still goes to the trace
        "close stdout and stderr": ("import os\nos.close(1)\nos.close(2)\nprint('hi')", "", ""),
        "__repr__ that raises": (
            "class A:\n    def __repr__(self):\n        raise ValueError('no')\na = A()\nb = 2",
            "",
            "",
        ),
        "thread that never ends": (
            record + "import threading, time\nthreading.Thread(target=time.sleep, args=(600,)).start()\nx = 1",
            "left a thread running",
            "",
        ),
        "forked child that never ends": (
            "import os, time\nchild = os.fork()\nif child == 0:\n    time.sleep(600)\n"
            f"try:\n    open({str(pid_dir)!r} + '/' + str(child), 'w').close()\nexcept OSError:\n    pass",
            "left a process running",
            "",
        ),
        "double-forked daemon": (
            "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        time.sleep(600)\n"
            "    os._exit(0)\ntime.sleep(0.2)",
            "left a process running",
            "",
        ),
        "stops itself": ("import os, signal\nos.kill(os.getpid(), signal.SIGSTOP)", "timeout", ""),
    }


GOOD = "a = [1, 2]\nb = a\na.append(3)"


@pytest.mark.parametrize("sandbox", SANDBOXES)
def test_hostile_programs_are_contained_and_good_rows_survive(tmp_path, sandbox):
    cases = hostile_programs(tmp_path)
    programs = []
    for name, (code, _, _) in cases.items():
        programs += [(len(programs), GOOD), (len(programs) + 1, code)]
    names = {i + 1: name for i, name in zip(range(0, len(programs), 2), cases)}
    started = time.monotonic()
    results = dict(
        trace_in_workers(
            programs,
            workers=2,
            trace_limits=TraceLimits(max_steps=300, max_output_chars=5000),
            limits=WorkerLimits(timeout=2.0, memory_mb=512, batch_size=4),
            sandbox=sandbox,
        )
    )
    assert time.monotonic() - started < 60  # nothing hung (a hang would have hit pytest's limits much later)
    assert sorted(results) == [i for i, _ in programs]  # one result per program, none lost
    for index, code in programs:
        result = results[index]
        if code == GOOD:
            assert result.failure == "" and len(result.steps) == 3, f"good row after {names.get(index + 1)}"
            continue
        _, failure, error = cases[names[index]]
        if failure is None:
            assert result.failure in ("too many steps", "recursion limit"), names[index]
        else:
            assert (result.failure, result.error) == (failure, error), names[index]
    # Without bwrap the thread's process and the forked child recorded their pids: all of them are gone now.
    # (Inside bwrap they could not write here; its PID namespace ends with the worker.)
    recorded = [int(p) for p in os.listdir(tmp_path)]
    assert len(recorded) == (2 if sandbox.kind == "none" else 0)
    deadline = time.monotonic() + 5
    while any(pid_alive(p) for p in recorded) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(pid_alive(p) for p in recorded)


@pytest.mark.parametrize("sandbox", SANDBOXES)
def test_a_timeout_kills_only_that_program(tmp_path, sandbox):
    programs = [(0, "import time\ntime.sleep(60)")] + [(i, f"v = {i}\nw = v * 2") for i in range(1, 40)]
    results = dict(
        trace_in_workers(
            programs,
            workers=2,
            trace_limits=TraceLimits(),
            limits=WorkerLimits(timeout=1.0, batch_size=8),
            sandbox=sandbox,
        )
    )
    assert results[0].failure == "timeout"
    for i in range(1, 40):
        assert results[i].failure == "" and dict(results[i].steps[-1].state)["w"] == str(2 * i)


@pytest.mark.parametrize("sandbox", SANDBOXES)
def test_set_order_and_random_are_the_same_in_every_run(sandbox):
    code = (
        "import random\ns = {'apple', 'banana', 'cherry', 'date', 'elder', 'fig', 'grape'}\n"
        "r = [random.randint(0, 99) for _ in range(3)]\nt = list(s)"
    )
    programs = [(0, code), (1, "x = 1"), (2, code)]
    first = dict(
        trace_in_workers(programs, workers=1, trace_limits=TraceLimits(), limits=WorkerLimits(), sandbox=sandbox)
    )
    second = dict(
        trace_in_workers(programs[::-1], workers=2, trace_limits=TraceLimits(), limits=WorkerLimits(), sandbox=sandbox)
    )
    assert first[0].steps == first[2].steps == second[0].steps == second[2].steps
    # and it is the order of a fresh interpreter with the fixed hash seed, computed without our tracer
    import subprocess
    import sys

    expected = subprocess.run(
        [sys.executable, "-c", "import random\nrandom.seed(0)\n" + code + "\nprint(repr(t), r)"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    ).stdout.strip()
    state = dict(first[0].steps[-1].state)
    assert f"{state['t']} {state['r']}" == expected


@pytest.mark.parametrize("sandbox", SANDBOXES)
def test_programs_run_in_a_private_temporary_directory(tmp_path, sandbox, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = "import os\nhere = os.getcwd()\nopen('scratch.txt', 'w').write('x')"
    reader = "import os\nfound = os.listdir('.')"
    results = dict(
        trace_in_workers(
            [(0, code), (1, reader)], workers=1, trace_limits=TraceLimits(), limits=WorkerLimits(), sandbox=sandbox
        )
    )
    here = dict(results[0].steps[-1].state)["here"].strip("'")
    assert here == "/tmp" if sandbox.kind == "bwrap" else "trace-worker-" in here
    assert dict(results[1].steps[-1].state)["found"] == "[]"  # the next program starts clean
    assert not os.path.exists(here) or sandbox.kind == "bwrap"  # removed when the worker stopped
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("workers", [1, 3])
def test_results_do_not_depend_on_the_number_of_workers(workers):
    programs = [(i, f"x = {i}\nfor j in range(3):\n    x += j\nprint(x)") for i in range(20)]
    results = dict(
        trace_in_workers(programs, workers=workers, trace_limits=TraceLimits(), limits=WorkerLimits(batch_size=3))
    )
    assert [results[i].stdout for i in range(20)] == [f"{i + 3}\n" for i in range(20)]


def test_each_program_gets_a_fresh_process_from_a_reused_worker():
    from dataset_builder.rows import ProgramJob
    from dataset_builder.workers import run_in_workers

    code = "import os\npid, template = os.getpid(), os.getppid()"
    results = dict(
        trace_in_workers(
            [(i, code) for i in range(30)], workers=2, trace_limits=TraceLimits(), limits=WorkerLimits(batch_size=4)
        )
    )
    states = [dict(r.steps[-1].state) for r in results.values()]
    assert len({s["pid"] for s in states}) == 30  # one process per program
    assert len({s["template"] for s in states}) <= 2  # forked from the two workers' templates
    # the builder's job too (it generates and normalizes inside the worker)
    job = ProgramJob(seed=0, min_lines=3, max_lines=20)
    out = dict(run_in_workers([(i, i) for i in range(30)], job, workers=2, limits=WorkerLimits(batch_size=4)))
    # ~0.3 ms each; an interpreter start-up per program (a worker replaced each time) costs ~30 ms each
    assert sum(r["seconds"]["generate"] for r in out.values()) < 0.3
    assert all(r["row"] is not None for r in out.values())


@pytest.mark.parametrize("sandbox", SANDBOXES)
def test_sharing_a_process_gives_the_same_results_as_one_process_each(sandbox):
    """Generated programs share a process per batch; when one of them misbehaves, each is traced again alone,
    so no result depends on the sharing."""
    from dataset_builder.rows import ProgramJob
    from dataset_builder.workers import run_in_workers

    codes = [f"import random\nx = random.random()\ny = [x] * {i}\nprint(len(y))" for i in range(10)]
    codes[4] = "import threading, time\nthreading.Thread(target=time.sleep, args=(5,), daemon=True).start()\nz = 1"
    codes[7] = "import os\nos._exit(3)"
    items = [(i, [f"p{i}", code]) for i, code in enumerate(codes)]

    def run(per_process):
        limits = WorkerLimits(batch_size=10, programs_per_process=per_process)
        results = dict(run_in_workers(items, ProgramJob(), workers=1, limits=limits, sandbox=sandbox))
        return {i: (r["failure"], r["row"] and {k: v for k, v in r["row"].items()}) for i, r in results.items()}

    alone, shared = run(1), run(10)
    assert shared == alone
    assert alone[4][0] == "left a thread running" and alone[7][0] == "exited with code 3"
    assert alone[0][1]["steps"][1]["state"] == alone[1][1]["steps"][1]["state"]  # random seeded per program
