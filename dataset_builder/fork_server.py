"""Inside a worker's sandbox: the fork server (the "template" process) and the processes it forks, one per program.

The worker interpreter's first process becomes the **template** that every program's process is forked from: it
imports the tracer and the generator once, makes itself non-dumpable (no /proc/<pid>/mem, environ or ptrace by
its children) and a child subreaper (orphaned grandchildren come back to it, to be killed), ignores the catchable
signals, then serves batches from the parent.
For each program it runs `ProgramJob.prepare` (generate, normalize, check length: never the program itself), then
forks a child that sets the program's rlimits (hard = soft), seeds `random`, traces it and writes its result as
length-prefixed JSON to a pipe. The template kills the child at the timeout, kills whatever it left running,
checks that no thread ran beside it, and forwards the bytes to the parent without reading them, under a header
that names the program by the id and normal form computed here (the parent compares them with the bytes); when a
program left files, message queues or IPC objects in the sandbox, it retires the whole worker. Under bwrap this
process is the sandbox's pid 1. See `workers.py` for the parent's side and
docs/design.md §5 for the trust boundaries.
"""

from __future__ import annotations

import os
import signal
import time

from . import landlock
from .protocol import max_result_bytes
from .workers import WorkerLimits

_IGNORED_SIGNALS = [
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGALRM,
    signal.SIGTSTP,
    signal.SIGTTIN,
    signal.SIGTTOU,
    signal.SIGPIPE,
]
_INTERNAL_ERROR = 70  # a child that failed outside the program (cannot write its result)


def serve() -> None:
    """Entry point of a worker interpreter: `python -c "...serve()" FD`."""
    import socket
    import sys

    from .protocol import receive_frame, send_frame
    from .rows import ProgramJob

    channel = socket.socket(fileno=int(sys.argv[1]))
    config, _ = receive_frame(channel)
    job = ProgramJob.from_config(config["job"])
    limits = WorkerLimits(**config["limits"])
    scratch = config["scratch_dirs"] or [os.getcwd()]
    _become_template(limits)
    send_frame(channel, {"kind": "ready"})
    while (message := receive_frame(channel)) is not None and message[0]["kind"] == "batch":
        items = message[0]["items"]
        for start in range(0, len(items), limits.programs_per_process):
            chunk = items[start : start + limits.programs_per_process]
            outcomes = _run_chunk(job, [payload for _, payload in chunk], limits, channel.fileno())
            for (index, _), (failure, body, name) in zip(chunk, outcomes):
                # id and normal form as this process computed them: the program's own bytes cannot name them
                send_frame(channel, {"kind": "result", "index": index, "failure": failure, **name}, body)
            if any(f == "left a process running" for f, _, _ in outcomes) or _left_behind(scratch):
                send_frame(channel, {"kind": "retire"})
                os._exit(0)
    os._exit(0)


def _prctl(option: int, value: int) -> None:
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the sandbox is what protects the template there
        pass


_SAVED_HANDLERS: dict = {}  # what the template replaced, put back in each program's process
_UNAME_AT_START = os.uname()  # host and domain name belong to the worker's UTS namespace: no program may change them


def _become_template(limits: WorkerLimits) -> None:
    import gc
    import importlib
    import resource

    memory = limits.memory_mb << 20  # `prepare` parses a user's code here: a huge one fails, not the machine
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    _PR_SET_DUMPABLE, _PR_SET_CHILD_SUBREAPER = 4, 36
    _prctl(_PR_SET_DUMPABLE, 0)  # no /proc/<pid>/mem, environ or ptrace of the template by its children
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)  # orphaned grandchildren come back to us, to be killed
    for sig in _IGNORED_SIGNALS:
        _SAVED_HANDLERS[sig] = signal.signal(sig, signal.SIG_IGN)
    # Modules programs commonly import, loaded once here rather than in every child.
    for name in ("collections", "functools", "io", "itertools", "json", "math", "random", "re", "resource", "string"):
        importlib.import_module(name)
    gc.freeze()  # children never touch the template's objects in a collection: fewer pages copied


CHUNK_DEADLINE_S = 1.0  # a shared process's whole batch; past it, each program is traced again on its own


def _run_chunk(job, payloads: list, limits: WorkerLimits, channel_fd: int) -> list[tuple[str, bytes, dict]]:
    """Prepare programs here, trace them in a forked child; return (failure or "", result bytes, {id, norm})
    for each."""
    import json

    prepared = [job.prepare(payload) for payload in payloads]
    outcomes = [("", json.dumps(result, ensure_ascii=False).encode("utf-8"), _name(result)) for result, _ in prepared]
    runnable = [i for i, (_, program) in enumerate(prepared) if program is not None]
    if len(runnable) > 1:
        failure, bodies = _trace_in_child(
            job, [prepared[i] for i in runnable], limits, channel_fd, min(limits.timeout, CHUNK_DEADLINE_S)
        )
        if not failure:
            for i, body in zip(runnable, bodies):
                outcomes[i] = ("", body, outcomes[i][2])
            return outcomes
    for i in runnable:  # one program alone, or a shared process that went wrong: find out which
        failure, bodies = _trace_in_child(job, [prepared[i]], limits, channel_fd, limits.timeout)
        outcomes[i] = (failure, b"" if failure else bodies[0], outcomes[i][2])
    return outcomes


def _name(result: dict) -> dict:
    return {"id": result["id"], "norm": result["norm"]}


def _split_records(data: bytes, count: int) -> list[bytes] | None:
    """The child's `count` length-prefixed records, or None if it wrote anything else."""
    records, pos = [], 0
    while pos + 4 <= len(data) and len(records) < count:
        size = int.from_bytes(data[pos : pos + 4], "big")
        records.append(data[pos + 4 : pos + 4 + size])
        pos += 4 + size
    return records if pos == len(data) and len(records) == count else None


def _trace_in_child(
    job, programs: list, limits: WorkerLimits, channel_fd: int, timeout: float
) -> tuple[str, list[bytes]]:
    """Fork a child that traces `programs` ((result, Prepared) pairs) in order; return (failure or "", one
    result's bytes per program)."""
    import select

    read_end, write_end = os.pipe()
    most = len(programs) * (4 + max_result_bytes(job.trace_limits))  # what the parent would accept, at most
    started = time.monotonic()
    pid = _fork(job.pid_parity)
    if pid == 0:
        os.close(read_end)
        os.close(channel_fd)
        _child(job, programs, limits, write_end)  # never returns
    os.close(write_end)
    # Linux tells the exit through a pidfd; elsewhere, poll for it.
    pidfd = os.pidfd_open(pid) if hasattr(os, "pidfd_open") else None
    watch = [read_end] if pidfd is None else [read_end, pidfd]
    deadline = started + timeout
    chunks, size, failure = [], 0, ""
    while True:  # read what it writes as it comes (a pipe holds only 64 KiB) until it exits
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            failure = "timeout"
            break
        ready, _, _ = select.select(watch, [], [], remaining if pidfd is not None else min(remaining, 0.01))
        if read_end in ready:
            chunk = os.read(read_end, 1 << 20)
            size += len(chunk)
            chunks.append(chunk)
            if size > most:
                failure = "result too large"
                break
            if not chunk:  # closed its end: now only its exit matters
                watch.remove(read_end)
        if (pidfd in ready) if pidfd is not None else _exited(pid):
            break
    if failure:
        os.kill(pid, signal.SIGKILL)
    _, status, usage = os.wait4(pid, 0)
    if pidfd is not None:
        os.close(pidfd)
    if _kill_descendants():  # also closes any copy of the pipe they held
        failure = failure or "left a process running"
    if not failure:
        os.set_blocking(read_end, False)
        try:
            while chunk := os.read(read_end, 1 << 20):  # what it wrote just before exiting
                chunks.append(chunk)
        except BlockingIOError:
            pass
    os.close(read_end)
    failure = failure or _exit_reason(status, usage, limits)
    records = None if failure else _split_records(b"".join(chunks), len(programs))
    if records is None:
        return failure or "malformed result", []
    return "", records


def _fork(parity: int | None) -> int:
    """`os.fork()`, retried while the child's pid is not of `parity` (when one is asked for): a user's programs
    run once with even and once with odd pids, so a trace that shows the pid always differs between the two."""
    # In the worker's own pid namespace the next pid alternates; without one (--sandbox none) others fork too.
    for attempt in range(100):
        wanted = parity is None or attempt == 99
        pid = os.fork()
        if pid == 0:
            if wanted or os.getpid() % 2 == parity:
                return 0
            os._exit(0)  # the wrong pid: gone before anything runs
        if wanted or pid % 2 == parity:
            return pid
        os.waitpid(pid, 0)
    raise AssertionError("unreachable")


def _exited(pid: int) -> bool:
    """Whether child `pid` has exited, without reaping it."""
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def _exit_reason(status: int, usage, limits: WorkerLimits) -> str:
    code = os.waitstatus_to_exitcode(status)
    if code == 0:
        return ""
    if code == -signal.SIGXCPU or (code == -signal.SIGKILL and usage.ru_utime + usage.ru_stime >= _cpu_budget(limits)):
        return "cpu limit"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    if code == _INTERNAL_ERROR:
        return "could not record its result"
    return f"exited with code {code}"


def _cpu_budget(limits: WorkerLimits) -> int:
    return int(limits.timeout) + 1


def _kill_descendants() -> bool:
    """SIGKILL every process below the template, level by level (orphans are reparented to it, a subreaper),
    until none is left. True if there were any."""
    found = False
    for _ in range(1000):
        children = _children()
        if not children:
            return found
        found = True
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for _ in children:
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                break
    return True


def _children() -> list[int]:
    """This process's children (Linux; elsewhere none are seen, and the worker's process group is killed at the
    end of the build instead)."""
    pids = []
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return []
    for task in tasks:
        try:
            with open(f"/proc/self/task/{task}/children") as f:
                pids += [int(p) for p in f.read().split()]
        except OSError:
            pass
    return pids


def _thread_counter():
    """A function that counts this process's threads, native ones too, through a descriptor of /proc/self/task
    opened now (it keeps working once Landlock closes /proc); elsewhere, Python's own count."""
    try:
        tasks = os.open("/proc/self/task", os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        import threading

        return threading.active_count
    return lambda: len(os.listdir(tasks))


def _left_behind(scratch_dirs: list[str]) -> bool:
    """Files in the sandbox's writable places, System V IPC objects or another host or domain name (which the
    sandbox's uid should make impossible): the next program would see them."""
    if os.uname() != _UNAME_AT_START:
        return True
    for folder in scratch_dirs:
        try:
            if os.listdir(folder):
                return True
        except OSError:
            return True
    for kind in ("shm", "msg", "sem"):
        try:
            with open(f"/proc/sysvipc/{kind}") as f:
                if len(f.read().splitlines()) > 1:
                    return True
        except OSError:
            pass
    return False


def _child(job, programs: list, limits: WorkerLimits, result_fd: int) -> None:
    """A program's process: limits, a clean start, the program, its result on `result_fd` (length-prefixed
    JSON), exit. Several programs only for the builder's own generated ones (`programs_per_process`)."""
    import io
    import json
    import random
    import resource
    import sys

    code = _INTERNAL_ERROR
    try:
        for sig, handler in _SAVED_HANDLERS.items():
            signal.signal(sig, handler)
        memory = limits.memory_mb << 20
        rlimits = [
            (resource.RLIMIT_AS, memory),
            (resource.RLIMIT_CPU, _cpu_budget(limits)),
            (resource.RLIMIT_CORE, 0),
            (resource.RLIMIT_FSIZE, limits.max_file_mb << 20),
            (resource.RLIMIT_NOFILE, limits.max_open_files),
        ]
        if limits.process_rlimit:  # else the worker's cgroup caps its processes (workers.WorkerLimits)
            rlimits.append((resource.RLIMIT_NPROC, limits.max_processes))
        for limit, value in rlimits:
            resource.setrlimit(limit, (value, value))  # hard = soft: a program cannot raise its own limits
        thread_count = _thread_counter()  # before /proc is closed to this process
        landlock.restrict_reading()  # no /proc or /sys for the program (the host's paths are in mountinfo)
        for result, program in programs:
            sys.stdin = io.StringIO("")  # input() raises EOFError, as with a closed stdin
            random.seed(0)  # a program that uses `random` gets the same trace on every run
            result = job.trace(result, program)
            if thread_count() > 1:  # its threads ran untraced beside it
                if len(programs) > 1:
                    break  # the template traces each again alone and blames the right one
                result = job.failed(result, "left a thread running")
            data = json.dumps(result, ensure_ascii=False).encode("utf-8")
            view = memoryview(len(data).to_bytes(4, "big") + data)
            while view:
                view = view[os.write(result_fd, view) :]
        code = 0
    finally:
        os._exit(code)  # never back into the template's loop, whatever the program did
