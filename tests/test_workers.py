"""Isolation: hostile programs never hang the build, never lose another program's row, leave no process
behind, and are reported with a reason. Real worker processes, really killed."""

import os
import time

import pytest

from dataset_builder.tracer import TraceLimits
from dataset_builder.workers import WorkerLimits, trace_in_workers


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
    """name -> (code, expected failure or None for a kept row, expected error)."""
    record = f"open({str(pid_dir)!r} + '/' + str(__import__('os').getpid()), 'w').close()\n"
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
        "close stdout and stderr": ("import os\nos.close(1)\nos.close(2)\nx = 1", "closed its standard streams", ""),
        "__repr__ that raises": (
            "class A:\n    def __repr__(self):\n        raise ValueError('no')\na = A()\nb = 2", "", ""),
        "thread that never ends": (
            record + "import threading, time\nthreading.Thread(target=time.sleep, args=(600,)).start()\nx = 1",
            "left a thread running", ""),
        "forked child that never ends": (
            "import os, time\nchild = os.fork()\nif child == 0:\n    time.sleep(600)\n"
            f"open({str(pid_dir)!r} + '/' + str(child), 'w').close()",
            "left a process running", ""),
    }


GOOD = "a = [1, 2]\nb = a\na.append(3)"


def test_hostile_programs_are_contained_and_good_rows_survive(tmp_path):
    cases = hostile_programs(tmp_path)
    programs = []
    for name, (code, _, _) in cases.items():
        programs += [(len(programs), GOOD), (len(programs) + 1, code)]
    names = {i + 1: name for i, name in zip(range(0, len(programs), 2), cases)}
    started = time.monotonic()
    results = dict(trace_in_workers(
        programs, workers=2, trace_limits=TraceLimits(max_steps=300, max_output_chars=5000),
        limits=WorkerLimits(timeout=2.0, memory_mb=512, batch_size=4)))
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
    # The thread's worker and the forked child recorded their pids: all of them are gone now.
    recorded = [int(p) for p in os.listdir(tmp_path)]
    assert len(recorded) == 2
    deadline = time.monotonic() + 5
    while any(pid_alive(p) for p in recorded) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(pid_alive(p) for p in recorded)


def test_a_timeout_kills_only_the_worker_of_that_program(tmp_path):
    programs = [(0, "import time\ntime.sleep(60)")] + [(i, f"v = {i}\nw = v * 2") for i in range(1, 40)]
    results = dict(trace_in_workers(programs, workers=2, trace_limits=TraceLimits(),
                                    limits=WorkerLimits(timeout=1.0, batch_size=8)))
    assert results[0].failure == "timeout"
    for i in range(1, 40):
        assert results[i].failure == "" and dict(results[i].steps[-1].state)["w"] == str(2 * i)


def test_set_order_is_the_same_in_every_run():
    code = "s = {'apple', 'banana', 'cherry', 'date', 'elder', 'fig', 'grape'}\nt = list(s)"
    first = dict(trace_in_workers([(0, code)], workers=1, trace_limits=TraceLimits(), limits=WorkerLimits()))
    second = dict(trace_in_workers([(0, code)], workers=1, trace_limits=TraceLimits(), limits=WorkerLimits()))
    assert first[0].steps == second[0].steps
    # and it is the order of a fresh interpreter with the fixed hash seed, computed without our tracer
    import subprocess
    import sys

    expected = subprocess.run([sys.executable, "-c", code + "\nprint(repr(t))"], capture_output=True, text=True,
                              env={**os.environ, "PYTHONHASHSEED": "0"}).stdout.strip()
    assert dict(first[0].steps[-1].state)["t"] == expected


def test_programs_run_in_a_private_temporary_directory(tmp_path):
    code = "import os\nhere = os.getcwd()\nopen('scratch.txt', 'w').write('x')"
    (_, result), = trace_in_workers([(0, code)], workers=1, trace_limits=TraceLimits(), limits=WorkerLimits())
    here = dict(result.steps[-1].state)["here"].strip("'")
    assert here != os.getcwd() and "trace-worker-" in here
    assert not os.path.exists(here)  # removed when the worker stopped
    assert not os.path.exists("scratch.txt")


@pytest.mark.parametrize("workers", [1, 3])
def test_results_do_not_depend_on_the_number_of_workers(workers):
    programs = [(i, f"x = {i}\nfor j in range(3):\n    x += j\nprint(x)") for i in range(20)]
    results = dict(trace_in_workers(programs, workers=workers, trace_limits=TraceLimits(),
                                    limits=WorkerLimits(batch_size=3)))
    assert [results[i].stdout for i in range(20)] == [f"{i + 3}\n" for i in range(20)]


def test_workers_are_reused_across_programs():
    from dataset_builder.rows import ProgramJob
    from dataset_builder.workers import run_in_workers

    code = "import os\npid = os.getpid()"
    results = dict(trace_in_workers([(i, code) for i in range(30)], workers=2, trace_limits=TraceLimits(),
                                    limits=WorkerLimits(batch_size=4)))
    assert len({dict(r.steps[-1].state)["pid"] for r in results.values()}) <= 2
    # the builder's job too (it generates and normalizes inside the worker)
    job = ProgramJob(seed=0, min_lines=3, max_lines=20)
    out = dict(run_in_workers([(i, i) for i in range(30)], job, workers=2, limits=WorkerLimits(batch_size=4)))
    # ~0.3 ms each; an interpreter start-up per program (a worker replaced each time) costs ~30 ms each
    assert sum(r["seconds"]["generate"] for r in out.values()) < 0.3
    assert all(r["row"] is not None for r in out.values())
