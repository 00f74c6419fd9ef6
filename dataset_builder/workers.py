"""Trace many programs in isolated worker processes (DESIGN §3, "Isolation").

Each worker is a fresh interpreter (nothing of the parent's memory, no re-import of the caller's main module,
a fixed PYTHONHASHSEED so set order is the same on every run) in its own session and process group, talking
to the parent over a `multiprocess` Connection on a private socket (so a program that writes to or closes its
stdout cannot corrupt the channel), with an address-space limit, a CPU-time limit per
program, stdin on /dev/null and a private temporary working directory. Programs go out in batches and each
result comes back as soon as it is ready. The parent knows which program a worker is on and since when; one
that runs past the wall-clock timeout gets its whole process group killed with SIGKILL, its program is
reported, and the rest of its batch goes to a new worker. A worker that dies (os._exit, a signal, a
resource limit) is handled the same way. A worker whose program left it altered (a thread still running,
closed standard streams, changed builtins or modules) finishes that result and is replaced.
"""

from __future__ import annotations

import collections
import os
import pickle
import signal
import subprocess
import time
from dataclasses import dataclass
from typing import Iterable, Iterator

from .tracer import TraceLimits, TraceResult

HASH_SEED = "0"


@dataclass
class WorkerLimits:
    timeout: float = 5.0  # wall-clock seconds per program
    memory_mb: int = 1024  # address space of a worker
    batch_size: int = 16


# ---------------------------------------------------------------------------------------------------------
# Worker side


def _confine(memory_mb: int) -> str:
    import resource
    import sys
    import tempfile

    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    import io

    sys.stdin = io.StringIO("")  # input() raises EOFError, as with a closed stdin
    workdir = tempfile.mkdtemp(prefix="trace-worker-")
    os.chdir(workdir)
    return workdir


def _child_processes() -> int:
    try:
        with open(f"/proc/self/task/{os.getpid()}/children") as f:
            return len(f.read().split())
    except OSError:  # not Linux: the process group kill still ends them
        return 0


def _fingerprint() -> dict:
    """What a program could change in its worker that would leak into the next program."""
    import builtins
    import sys
    import threading

    def stream_open(fd: int) -> bool:
        try:
            os.fstat(fd)
            return True
        except OSError:
            return False

    return {
        "left a thread running": threading.active_count(),
        "left a process running": _child_processes(),
        "closed its standard streams": all(stream_open(fd) for fd in (0, 1, 2)),
        "changed builtins": sorted((k, id(v)) for k, v in vars(builtins).items()),
        "imported modules": len(sys.modules),
        "changed the recursion limit": sys.getrecursionlimit(),
        "changed directory": os.getcwd() if os.path.isdir(".") else None,
    }


def _set_cpu_limit(seconds: float) -> None:
    import resource

    used = resource.getrusage(resource.RUSAGE_SELF)
    budget = int(used.ru_utime + used.ru_stime + seconds) + 1
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    resource.setrlimit(resource.RLIMIT_CPU, (budget, hard))


def serve() -> None:
    """Entry point of a worker interpreter: `python -c "...serve()" FD`."""
    import sys

    from multiprocess.connection import Connection

    conn = Connection(int(sys.argv[1]))
    job, limits = _receive(conn)
    worker_main(conn, job, limits)


# Plain pickle both ways: faster than the dill-based default of multiprocess, and all we send is plain data.
def _send(conn, message) -> None:
    conn.send_bytes(pickle.dumps(message, pickle.HIGHEST_PROTOCOL))


def _receive(conn):
    return pickle.loads(conn.recv_bytes())


def worker_main(conn, job, limits: WorkerLimits) -> None:
    import shutil

    workdir = _confine(limits.memory_mb)
    # Unpickling the job imported its module (and what that imports) already, so the clean state includes them.
    clean = _fingerprint()
    me = os.getpid()
    _send(conn, ("ready", workdir))
    try:
        while True:
            batch = _receive(conn)
            if batch is None:
                break
            for index, payload in batch:
                _set_cpu_limit(limits.timeout)
                result = job.run(payload)
                if os.getpid() != me:
                    os._exit(0)  # a child the program forked: it must never speak for the worker
                now = _fingerprint()
                altered = [what for what in clean if now[what] != clean[what]]
                # A program may import modules and be fine (its row is kept); the worker is replaced anyway.
                harmful = [what for what in altered if what != "imported modules"]
                if harmful:
                    result = job.failed(result, harmful[0])
                _send(conn, ("result", (index, result)))
                if altered:
                    _send(conn, ("retire", None))
                    return
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        # os._exit: don't wait for threads a program may have left behind.
        os._exit(0)


# ---------------------------------------------------------------------------------------------------------
# Parent side


def _death_reason(exitcode: int | None) -> str:
    if exitcode is None:
        return "worker vanished"
    if exitcode < 0:
        sig = -exitcode
        if sig == signal.SIGXCPU:
            return "cpu limit"
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = str(sig)
        return f"killed by {name}"
    return f"exited with code {exitcode}"


_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class _Worker:
    def __init__(self, job, limits: WorkerLimits):
        import socket
        import subprocess
        import sys

        from multiprocess.connection import Connection

        ours, theirs = socket.socketpair()
        env = dict(os.environ, PYTHONHASHSEED=HASH_SEED)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from dataset_builder.workers import serve; serve()", str(theirs.fileno())],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(theirs.fileno(),),
            env=env,
            start_new_session=True,  # its own process group: one killpg ends it and whatever it started
        )
        theirs.close()
        self.conn = Connection(ours.detach())
        _send(self.conn, (job, limits))
        self.ready = False
        self.workdir = ""
        self.assigned: collections.deque[tuple[int, str]] = collections.deque()
        self.head_since = 0.0  # when the worker started on assigned[0]

    def send(self, batch: list[tuple[int, str]]) -> None:
        if not self.assigned:
            self.head_since = time.monotonic()
        self.assigned.extend(batch)
        try:
            _send(self.conn, batch)
        except OSError:
            pass  # the worker just died: the parent sees EOF next and requeues this batch

    def stop(self) -> None:
        """Ask an idle worker to exit (it removes its working directory), then make sure it and anything it
        started are gone."""
        try:
            _send(self.conn, None)
            self.process.wait(2)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.kill()

    def kill(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.process.kill()
        self.process.wait()
        self.conn.close()
        if self.workdir:
            import shutil

            shutil.rmtree(self.workdir, ignore_errors=True)


@dataclass
class TraceJob:
    """The plainest job: trace code, return its TraceResult."""

    limits: TraceLimits

    def run(self, code: str) -> TraceResult:
        from .tracer import trace_program

        return trace_program(code, self.limits)

    def failed(self, result: TraceResult | None, reason: str) -> TraceResult:
        return result if result is not None and result.failure else TraceResult(failure=reason)


def trace_in_workers(
    programs: Iterable[tuple[int, str]], *, workers: int, trace_limits: TraceLimits, limits: WorkerLimits
) -> Iterator[tuple[int, TraceResult]]:
    """Trace `(index, code)` pairs; yield `(index, TraceResult)` in completion order."""
    return run_in_workers(programs, TraceJob(trace_limits), workers=workers, limits=limits)


def run_in_workers(items: Iterable[tuple[int, object]], job, *, workers: int, limits: WorkerLimits) -> Iterator:
    """Run `job.run(payload)` for every `(index, payload)` in isolated workers; yield `(index, result)` in
    completion order, exactly one per item, even for items that killed their worker (`job.failed(None,
    reason)`). `job` is pickled to each worker. No process is left behind."""
    from multiprocess.connection import wait

    pending = collections.deque(items)
    total = len(pending)
    pool: list[_Worker] = []
    done = 0
    failed_starts = 0

    def start_worker() -> None:
        pool.append(_Worker(job, limits))

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

    try:
        for _ in range(max(1, min(workers, total))):
            start_worker()
        while done < total:
            for worker in pool:
                if worker.ready and len(worker.assigned) < limits.batch_size and pending:
                    batch = [pending.popleft() for _ in range(min(limits.batch_size, len(pending)))]
                    worker.send(batch)
            ready = wait([w.conn for w in pool], timeout=0.05)
            for worker in list(pool):
                if worker.conn not in ready:
                    continue
                try:
                    kind, payload = _receive(worker.conn)
                except (EOFError, OSError, pickle.UnpicklingError):
                    reason = _death_reason(worker.process.wait())
                    if not worker.ready:
                        failed_starts += 1
                        if failed_starts > 3:
                            raise RuntimeError(f"tracing workers fail to start ({reason}); is the memory limit too low?")
                    yield from replace(worker, reason)
                    continue
                if kind == "ready":
                    worker.ready, worker.workdir = True, payload
                    failed_starts = 0
                elif kind == "result":
                    index, result = payload
                    worker.assigned.popleft()
                    worker.head_since = time.monotonic()
                    done += 1
                    yield index, result
                elif kind == "retire":
                    yield from replace(worker, None)
            now = time.monotonic()
            for worker in list(pool):
                if worker.assigned and now - worker.head_since > limits.timeout:
                    yield from replace(worker, "timeout")
    finally:
        for worker in pool:
            worker.stop()
