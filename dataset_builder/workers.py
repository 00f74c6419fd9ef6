"""The parent's side of tracing: a pool of sandboxed workers, each fed batches of programs.

Process model (docs/design.md §5):

    build (parent) ──socket──> worker = bwrap sandbox ─> template interpreter ─fork─> a process per program

- The **worker** is a plain interpreter started inside the sandbox (`sandbox.py`) with a fixed PYTHONHASHSEED;
  what runs in it is `template.py`: one fresh process per program (the generator's own programs, which cannot
  be hostile, share one per batch), so no program can touch another's row.
- The **parent** (this module) trusts nothing from a worker: frames of bounded size, JSON only, every result
  checked (`protocol.py`) and matched to the program that worker is on. A malformed message, a worker that dies
  or one that stops answering (killed or SIGSTOPped by its program) rejects that one program and the worker is
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

from .protocol import FrameReader, ProtocolError, decode_result, encode_frame
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
# The parent


class _Worker:
    def __init__(self, job, limits: WorkerLimits, sandbox: Sandbox):
        import socket
        import tempfile

        ours, theirs = socket.socketpair()
        # Without bwrap, a private folder is the worker's HOME, TMPDIR and working directory.
        self.home = tempfile.mkdtemp(prefix="trace-worker-") if sandbox.kind == "none" else ""
        self.process = subprocess.Popen(
            sandbox.command("from dataset_builder.template import serve; serve()", str(theirs.fileno())),
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
