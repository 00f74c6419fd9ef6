"""Trace many programs in sandboxed worker processes, one fresh process per program.

Process model (docs/design.md §5):

    build (parent) ──socket──> worker = bwrap sandbox ─> template interpreter ─fork─> one process per program

- The **worker** is a plain interpreter started inside the sandbox (`sandbox.py`) with a fixed PYTHONHASHSEED.
  Its first process is a **template**: it imports the tracer and the generator once, then, for each program,
  forks a child that applies the per-program limits, seeds `random`, runs the program under the tracer,
  writes its result (JSON) to a pipe and exits. Whatever a program patches, hooks, starts or leaves open dies
  with its own process, so no program can touch another's row; a program that leaves files or IPC objects
  behind gets its worker replaced (row kept), one that leaves processes gets them killed and its row rejected.
- The template is a subreaper and non-dumpable (a program cannot read its memory), ignores the catchable
  signals, kills a program at the wall-clock timeout, and forwards the child's bytes without reading them.
- The **parent** trusts nothing from a worker: frames of bounded size, JSON only, every result checked
  (`protocol.py`) and matched to the program that worker is on. A malformed message, a worker that dies or one
  that stops answering (killed or SIGSTOPped by its program) rejects that one program and the worker is
  replaced; the rest of its batch goes to a new one. No process outlives `run_in_workers`.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from typing import Iterable, Iterator

from .protocol import MAX_BODY_BYTES, FrameReader, ProtocolError, decode_result, encode_frame
from .sandbox import Sandbox
from .tracer import TraceLimits, TraceResult

PARENT_GRACE_S = 2.0  # the template kills at the timeout; the parent waits this much longer for its report
START_TIMEOUT_S = 60.0  # a worker that is not ready by then (a broken interpreter, a wedged sandbox) failed to start


@dataclass
class WorkerLimits:
    timeout: float = 5.0  # wall-clock seconds per program
    memory_mb: int = 1024  # address space of one program's process
    batch_size: int = 16
    max_processes: int = 64  # RLIMIT_NPROC of a program (not enforced by the kernel for root)
    max_file_mb: int = 16  # RLIMIT_FSIZE: the largest file a program may write
    max_open_files: int = 64  # RLIMIT_NOFILE
    # 1: every program in a fresh process (anything from a user). The builder's own generated programs cannot be
    # hostile, so they share one process per batch (a fork costs more than tracing a small program); if one of
    # them fails, each is traced again in its own process, so results never depend on the sharing.
    programs_per_process: int = 1


class WorkerStartError(RuntimeError):
    """Workers die before they are ready, again and again."""


# ---------------------------------------------------------------------------------------------------------
# Inside the sandbox: the template and its per-program children

_IGNORED_SIGNALS = [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2,
                    signal.SIGALRM, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGPIPE]
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
            for (index, _), (failure, body) in zip(chunk, outcomes):
                send_frame(channel, {"kind": "result", "index": index, "failure": failure}, body)
            if any(f == "left a process running" for f, _ in outcomes) or _left_behind(scratch):
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


def _become_template(limits: WorkerLimits) -> None:
    import gc
    import resource

    memory = limits.memory_mb << 20  # `prepare` parses a user's code here: a huge one fails, not the machine
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    _PR_SET_DUMPABLE, _PR_SET_CHILD_SUBREAPER = 4, 36
    _prctl(_PR_SET_DUMPABLE, 0)  # no /proc/<pid>/mem, environ or ptrace of the template by its children
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)  # orphaned grandchildren come back to us, to be killed
    for sig in _IGNORED_SIGNALS:
        _SAVED_HANDLERS[sig] = signal.signal(sig, signal.SIG_IGN)
    # Modules programs commonly import, loaded once here rather than in every child.
    import collections, functools, io, itertools, json, math, random, re, resource, string  # noqa: F401,E401
    gc.freeze()  # children never touch the template's objects in a collection: fewer pages copied


CHUNK_DEADLINE_S = 1.0  # a shared process's whole batch; past it, each program is traced again on its own


def _run_chunk(job, payloads: list, limits: WorkerLimits, channel_fd: int) -> list[tuple[str, bytes]]:
    """Prepare programs here, trace them in a forked child; return (failure or "", result bytes) for each."""
    import json

    prepared = [job.prepare(payload) for payload in payloads]
    outcomes = [("", json.dumps(result, ensure_ascii=False).encode("utf-8")) for result, _ in prepared]
    runnable = [i for i, (_, program) in enumerate(prepared) if program is not None]
    if len(runnable) > 1:
        failure, bodies = _trace_in_child(job, [prepared[i] for i in runnable], limits, channel_fd,
                                          min(limits.timeout, CHUNK_DEADLINE_S))
        if not failure:
            for i, body in zip(runnable, bodies):
                outcomes[i] = ("", body)
            return outcomes
    for i in runnable:  # one program alone, or a shared process that went wrong: find out which
        failure, bodies = _trace_in_child(job, [prepared[i]], limits, channel_fd, limits.timeout)
        outcomes[i] = (failure, b"" if failure else bodies[0])
    return outcomes


def _split_records(data: bytes, count: int) -> list[bytes] | None:
    """The child's `count` length-prefixed records, or None if it wrote anything else."""
    records, pos = [], 0
    while pos + 4 <= len(data) and len(records) < count:
        size = int.from_bytes(data[pos : pos + 4], "big")
        records.append(data[pos + 4 : pos + 4 + size])
        pos += 4 + size
    return records if pos == len(data) and len(records) == count else None


def _trace_in_child(job, programs: list, limits: WorkerLimits, channel_fd: int, timeout: float
                    ) -> tuple[str, list[bytes]]:
    """Fork a child that traces `programs` ((result, Prepared) pairs) in order; return (failure or "", one
    result's bytes per program)."""
    import select

    read_end, write_end = os.pipe()
    started = time.monotonic()
    pid = os.fork()
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
            if size > MAX_BODY_BYTES:
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


def _thread_count() -> int:
    """This process's threads, native ones too (Linux); elsewhere, Python's."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        import threading

        return threading.active_count()


def _left_behind(scratch_dirs: list[str]) -> bool:
    """Files in the sandbox's writable places or System V IPC objects: the next program would see them."""
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
        for limit, value in ((resource.RLIMIT_AS, memory), (resource.RLIMIT_CPU, _cpu_budget(limits)),
                             (resource.RLIMIT_CORE, 0), (resource.RLIMIT_FSIZE, limits.max_file_mb << 20),
                             (resource.RLIMIT_NOFILE, limits.max_open_files),
                             (resource.RLIMIT_NPROC, limits.max_processes)):
            resource.setrlimit(limit, (value, value))  # hard = soft: a program cannot raise its own limits
        for result, program in programs:
            sys.stdin = io.StringIO("")  # input() raises EOFError, as with a closed stdin
            random.seed(0)  # a program that uses `random` gets the same trace on every run
            result = job.trace(result, program)
            if _thread_count() > 1:  # its threads ran untraced beside it
                if len(programs) > 1:
                    break  # the template traces each again alone and blames the right one
                result = job.failed(result, "left a thread running")
            data = json.dumps(result, ensure_ascii=False).encode("utf-8")
            view = memoryview(len(data).to_bytes(4, "big") + data)
            while view:
                view = view[os.write(result_fd, view):]
        code = 0
    finally:
        os._exit(code)  # never back into the template's loop, whatever the program did


# ---------------------------------------------------------------------------------------------------------
# The parent


class _Worker:
    def __init__(self, job, limits: WorkerLimits, sandbox: Sandbox):
        import socket
        import tempfile

        ours, theirs = socket.socketpair()
        # Without bwrap, a private folder is the worker's HOME, TMPDIR and working directory.
        self.home = tempfile.mkdtemp(prefix="trace-worker-") if sandbox.kind == "none" else ""
        self.process = subprocess.Popen(
            sandbox.command("from dataset_builder.workers import serve; serve()", str(theirs.fileno())),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(theirs.fileno(),),
            env=sandbox.environment(self.home),
            cwd=self.home or None,
            start_new_session=True,  # its own process group: one killpg ends it and whatever it started
        )
        theirs.close()
        self.sock = ours
        self.sock.setblocking(False)  # the parent never waits on one worker: a full socket must not stall it
        self.outbox = bytearray()  # frames not yet taken by the worker
        self.reader = FrameReader()
        self.ready = False
        self.started_at = time.monotonic()
        self.assigned: collections.deque[tuple[int, object]] = collections.deque()
        self.head_since = 0.0  # when the worker started on assigned[0]
        self._send({"job": asdict(job), "limits": asdict(limits), "scratch_dirs": sandbox.scratch_dirs})

    def _send(self, header: dict) -> None:
        self.outbox += encode_frame(header)
        self.flush()

    def flush(self) -> None:
        try:
            sent = self.sock.send(self.outbox)
        except BlockingIOError:
            return
        except OSError:  # the worker just died: the parent sees EOF next and requeues what it had
            sent = len(self.outbox)
        del self.outbox[:sent]

    def send(self, batch: list[tuple[int, object]]) -> None:
        if not self.assigned:
            self.head_since = time.monotonic()
        self.assigned.extend(batch)
        self._send({"kind": "batch", "items": batch})

    def receive(self) -> list[tuple[dict, bytes]] | None:
        """Complete frames that arrived; None at end of stream. Raises ProtocolError on garbage."""
        try:
            data = self.sock.recv(4 << 20)
        except BlockingIOError:
            return []
        except OSError:
            data = b""
        return self.reader.feed(data) if data else None

    def stop(self) -> None:
        """Let an idle worker exit, then make sure it and anything it started are gone."""
        self.sock.close()  # end of stream: the worker leaves its loop
        try:
            self.process.wait(2)
        except subprocess.TimeoutExpired:
            pass
        self.kill()

    def kill(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.process.kill()
        self.process.wait()
        self.sock.close()
        if self.home:
            import shutil

            shutil.rmtree(self.home, ignore_errors=True)


def _death_reason(exitcode: int | None) -> str:
    if exitcode is None:
        return "worker vanished"
    if exitcode < 0:
        try:
            return f"worker killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"worker killed by signal {-exitcode}"
    return f"worker exited with code {exitcode}"


def run_in_workers(items: Iterable[tuple[int, object]], job, *, workers: int, limits: WorkerLimits,
                   sandbox: Sandbox = Sandbox("none")) -> Iterator[tuple[int, dict]]:
    """Run `job.run(payload)` (a `rows.ProgramJob`) for every `(index, payload)` in sandboxed workers; yield
    `(index, result)` in completion order, exactly one per item, even for items that killed their worker
    (`job.failed(None, reason)`). Payloads must be JSON data. No process is left behind."""
    import select

    pending = collections.deque(items)
    total = len(pending)
    pool: list[_Worker] = []
    done = 0
    failed_starts = 0

    def start_worker() -> None:
        pool.append(_Worker(job, limits, sandbox))

    def replace(worker: _Worker, failure: str | None) -> Iterator:
        """Retire `worker`; report its current item as failed (if any); requeue the rest of its batch."""
        nonlocal done
        worker.kill()
        pool.remove(worker)
        if failure is not None and worker.assigned:
            index, _ = worker.assigned.popleft()
            done += 1
            yield index, job.failed(None, failure)
        pending.extendleft(reversed(worker.assigned))
        if pending or any(w.assigned for w in pool):
            start_worker()

    def handle(worker: _Worker, header: dict, body: bytes) -> Iterator:
        nonlocal done
        kind = header["kind"]
        if kind == "ready" and not worker.ready:
            worker.ready = True
        elif kind == "result" and worker.assigned and header.get("index") == worker.assigned[0][0]:
            failure = header.get("failure")
            if not isinstance(failure, str) or len(failure) > 1000:
                raise ProtocolError("a result with a malformed failure")
            result = job.failed(None, failure) if failure else decode_result(body)  # raises: the head is blamed
            index, _ = worker.assigned.popleft()
            worker.head_since = time.monotonic()
            done += 1
            yield index, result
        elif kind == "retire":
            yield from replace(worker, None)
        else:
            raise ProtocolError(f"an unexpected {kind!r} message")

    try:
        for _ in range(max(1, min(workers, total))):
            start_worker()
        while done < total:
            for worker in pool:
                if worker.ready and len(worker.assigned) < limits.batch_size and pending:
                    worker.send([pending.popleft() for _ in range(min(limits.batch_size, len(pending)))])
            writable = [w.sock for w in pool if w.outbox]
            ready, can_write, _ = select.select([w.sock for w in pool], writable, [], 0.05)
            for worker in [w for w in pool if w.sock in can_write]:
                worker.flush()
            for worker in [w for w in pool if w.sock in ready]:
                try:
                    frames = worker.receive()
                    if frames is None:  # end of stream: the worker died
                        reason = _death_reason(worker.process.wait())
                        if not worker.ready:
                            failed_starts += 1
                            if failed_starts > 3:
                                raise WorkerStartError(f"tracing workers fail to start ({reason})")
                        yield from replace(worker, reason)
                        continue
                    for header, body in frames:
                        if worker not in pool:
                            break
                        yield from handle(worker, header, body)
                        failed_starts = 0 if worker.ready else failed_starts
                except ProtocolError as exc:
                    yield from replace(worker, f"protocol error: {exc}")
            now = time.monotonic()
            for worker in [w for w in pool if not w.ready and now - w.started_at > START_TIMEOUT_S]:
                failed_starts += 1
                if failed_starts > 3:
                    raise WorkerStartError("tracing workers do not answer")
                yield from replace(worker, None)
            for worker in list(pool):
                # The template kills a program at the timeout and says so; a worker that does not (stopped,
                # or busy with something else) is killed here, and its program counts as a timeout.
                if worker.assigned and now - worker.head_since > limits.timeout + PARENT_GRACE_S:
                    yield from replace(worker, "timeout")
    except BaseException:  # Ctrl-C, SIGTERM, an error: end every worker now, whatever it is running
        for worker in pool:
            worker.kill()
        raise
    for worker in pool:  # all idle: let them exit
        worker.stop()


def trace_in_workers(programs: Iterable[tuple[int, str]], *, workers: int, trace_limits: TraceLimits,
                     limits: WorkerLimits, sandbox: Sandbox = Sandbox("none")) -> Iterator[tuple[int, TraceResult]]:
    """Trace `(index, code)` pairs in workers; yield `(index, TraceResult)` in completion order."""
    from .rows import ProgramJob
    from .trace import Step

    job = ProgramJob(trace_limits)
    for index, result in run_in_workers(((i, [None, code]) for i, code in programs), job, workers=workers,
                                        limits=limits, sandbox=sandbox):
        row = result["row"]
        if row is None:
            yield index, TraceResult(failure=result["failure"])
        else:
            steps = [Step.from_row(step) for step in row["steps"]]
            yield index, TraceResult(steps=steps, stdout=row["stdout"], error=row["error"])
