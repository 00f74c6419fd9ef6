"""The parent's side of tracing: a pool of sandboxed workers, each fed batches of programs.

Process model (docs/design.md §5):

    build (parent) ──socket──> worker = bwrap sandbox ─> template interpreter ─fork─> a process per program

- The **worker** is a plain interpreter started inside the sandbox (`sandbox.py`) with a fixed PYTHONHASHSEED;
  what runs in it is `fork_server.py`: one fresh process per program (the generator's own programs, which cannot
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
from dataclasses import asdict, dataclass, replace
from typing import Iterable, Iterator

from .cgroups import TEMPLATE_HEADROOM_BYTES, TreeLimits
from .cgroups import probe as probe_cgroups
from .protocol import FrameReader, ProtocolError, check_name, decode_result, encode_frame, max_result_bytes
from .sandbox import Sandbox
from .tracer import TraceLimits, TraceResult

PARENT_GRACE_S = 2.0  # the template kills at the timeout; the parent waits this much longer for its report
KILL_WAIT_S = 5.0  # how long the parent waits for a SIGKILLed worker to be gone before it moves on
START_TIMEOUT_S = 60.0  # a worker that is not ready by then (a broken interpreter, a wedged sandbox) failed to start


@dataclass
class WorkerLimits:
    timeout: float = 5.0  # wall-clock seconds per program
    memory_mb: int = 1024  # address space of one program's process
    # Programs handed to a worker at once: 2 keeps it busy while the parent answers, and a slow program holds
    # back at most one other (a worker given 16 timeouts at once kept them from an idle neighbour).
    batch_size: int = 2
    max_processes: int = 64  # the cgroup cap of a worker's whole tree, else RLIMIT_NPROC of a program
    # RLIMIT_NPROC counts every process of a uid on the host: where a cgroup caps each worker's tree it is not
    # set, or a fork bomb in one worker would stop the forks of programs in the others (they share `nobody`).
    process_rlimit: bool = True
    max_file_mb: int = 16  # RLIMIT_FSIZE: the largest file a program may write
    max_open_files: int = 64  # RLIMIT_NOFILE
    # 1: every program in a fresh process (anything from a user). The builder's own generated programs cannot be
    # hostile, so they share one process per batch (a fork costs more than tracing a small program); if one of
    # them fails, each is traced again in its own process, so results never depend on the sharing.
    programs_per_process: int = 1


DIED = "died"  # `replace`'s failure for a worker that ended by itself: the reason is read from its exit


class WorkerStartError(RuntimeError):
    """Workers die before they are ready, again and again."""


# ---------------------------------------------------------------------------------------------------------
# The parent


class _Worker:
    def __init__(self, job, limits: WorkerLimits, sandbox: Sandbox, tree: TreeLimits):
        import socket
        import tempfile

        ours, theirs = socket.socketpair()
        # Without bwrap, a private folder is the worker's HOME, TMPDIR and working directory.
        self.home = tempfile.mkdtemp(prefix="trace-worker-") if sandbox.kind == "none" else ""
        # Its whole process tree in a cgroup of its own where the host allows it (cgroups.py).
        self.leaf = tree.leaf((limits.memory_mb << 20) + TEMPLATE_HEADROOM_BYTES, limits.max_processes)
        self.process = sandbox.start(
            "from dataset_builder.fork_server import serve; serve()",
            str(theirs.fileno()),
            home=self.home,
            pass_fds=(theirs.fileno(),),
            prefix=self.leaf.launcher() if self.leaf else (),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=self.home or None,
            start_new_session=True,  # its own process group: one killpg ends it and whatever it started
        )
        theirs.close()
        self.sock = ours
        self.sock.setblocking(False)  # the parent never waits on one worker: a full socket must not stall it
        self.outbox = bytearray()  # frames not yet taken by the worker
        self.reader = FrameReader(max_result_bytes(job.trace_limits))  # the caps bound what a worker may send
        self.ready = False
        self.started_at = time.monotonic()
        self.assigned: collections.deque[tuple[int, object]] = collections.deque()
        self.head_since = 0.0  # when the worker started on assigned[0]
        self.oom_kills = 0  # the leaf's OOM kills when the current program started
        limits = replace(limits, process_rlimit=self.leaf is None)
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
            self.next_program()
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
        self.kill(grace=2.0)

    def kill(self, grace: float = 0.0) -> int | None:
        """End the worker and everything it started, after `grace` seconds to exit by itself; its exit code
        (None if it never exited). Every wait here has a deadline: nothing a program does can stall it."""
        try:
            code = self.process.wait(grace) if grace else self.process.poll()
        except subprocess.TimeoutExpired:
            code = None
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.process.kill()  # bwrap's monitor: the sandbox's pid 1 gets SIGKILL when it dies (--die-with-parent)
        if self.leaf:
            self.leaf.kill()  # and every process of the tree, wherever it went
        try:
            self.process.wait(KILL_WAIT_S)
        except subprocess.TimeoutExpired:
            pass
        self.sock.close()
        if self.leaf:
            self.leaf.remove()
        if self.home:
            import shutil

            shutil.rmtree(self.home, ignore_errors=True)
        return code

    def out_of_memory(self) -> bool:
        """Whether the OOM killer ended a process of this worker's tree since its current program started."""
        return self.leaf is not None and self.leaf.oom_kills() > self.oom_kills

    def next_program(self) -> None:
        self.head_since = time.monotonic()
        if self.leaf:
            self.oom_kills = self.leaf.oom_kills()


def _death_reason(exitcode: int | None) -> str:
    if exitcode is None:
        return "worker vanished"
    if exitcode < 0:
        try:
            return f"worker killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"worker killed by signal {-exitcode}"
    return f"worker exited with code {exitcode}"


def run_in_workers(
    items: Iterable[tuple[int, object]],
    job,
    *,
    workers: int,
    limits: WorkerLimits,
    sandbox: Sandbox = Sandbox("none"),
    tree: TreeLimits | None = None,
) -> Iterator[tuple[int, dict]]:
    """Run `job.run(payload)` (a `rows.ProgramJob`) for every `(index, payload)` in sandboxed workers; yield
    `(index, result)` in completion order, exactly one per item, even for items that killed their worker
    (`job.failed(..., reason)`). Payloads must be JSON data. Each worker's process tree is bounded by a cgroup
    where `tree` (by default what `cgroups.probe()` finds) allows. No process is left behind."""
    import select

    tree = probe_cgroups() if tree is None else tree
    pending = collections.deque(items)
    total = len(pending)
    pool: list[_Worker] = []
    done = 0
    failed_starts = 0

    def start_worker() -> None:
        pool.append(_Worker(job, limits, sandbox, tree))

    def replace(worker: _Worker, failure: str | None, grace: float = 0.0) -> Iterator:
        """Retire `worker`; report its current item as failed (if any; `failure` DIED: say how the worker
        ended); requeue the rest of its batch."""
        nonlocal done
        out_of_memory = worker.out_of_memory()
        code = worker.kill(grace)
        pool.remove(worker)
        if failure is not None and worker.assigned:
            index, payload = worker.assigned.popleft()
            done += 1
            reason = "memory limit" if out_of_memory else _death_reason(code) if failure is DIED else failure
            yield index, job.failed({"id": job.given_id(payload), "norm": ""}, reason)
        pending.extendleft(reversed(worker.assigned))
        if pending or any(w.assigned for w in pool):
            start_worker()

    def handle(worker: _Worker, header: dict, body: bytes) -> Iterator:
        nonlocal done
        kind = header["kind"]
        if kind == "ready" and not worker.ready:
            worker.ready = True
        elif kind == "result" and worker.assigned and header.get("index") == worker.assigned[0][0]:
            index, payload = worker.assigned[0]
            name = check_name(header)  # id and normal form from the template, which no program can reach
            if job.given_id(payload) not in (None, name["id"]):
                raise ProtocolError("a result under another id")
            failure = header.get("failure")
            if not isinstance(failure, str) or len(failure) > 1000:
                raise ProtocolError("a result with a malformed failure")
            if failure:
                if failure == "killed by SIGKILL" and worker.out_of_memory():
                    failure = "memory limit"
                result = job.failed(name, failure)
            else:
                result = decode_result(body, job.trace_limits)  # raises: the head is blamed
                forged = job.forgery(result, name, payload)
                result = job.failed(name, forged) if forged else result
            worker.assigned.popleft()
            worker.next_program()
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
                    # top up to batch_size, but never below a shared process's worth (a batch of 1 would be
                    # traced in a process of its own)
                    room = max(limits.batch_size - len(worker.assigned), limits.programs_per_process)
                    worker.send([pending.popleft() for _ in range(min(room, len(pending)))])
            writable = [w.sock for w in pool if w.outbox]
            ready, can_write, _ = select.select([w.sock for w in pool], writable, [], 0.05)
            for worker in [w for w in pool if w.sock in can_write]:
                worker.flush()
            for worker in [w for w in pool if w.sock in ready]:
                try:
                    frames = worker.receive()
                    if frames is None:  # end of stream: the worker died
                        if not worker.ready:
                            failed_starts += 1
                            if failed_starts > 3:
                                raise WorkerStartError(
                                    f"tracing workers fail to start ({_death_reason(worker.kill(grace=1.0))})"
                                )
                        yield from replace(worker, DIED, grace=1.0)
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


def trace_in_workers(
    programs: Iterable[tuple[int, str]],
    *,
    workers: int,
    trace_limits: TraceLimits,
    limits: WorkerLimits,
    sandbox: Sandbox = Sandbox("none"),
) -> Iterator[tuple[int, TraceResult]]:
    """Trace `(index, code)` pairs in workers; yield `(index, TraceResult)` in completion order."""
    from .rows import ProgramJob
    from .trace import Step

    job = ProgramJob(trace_limits)
    for index, result in run_in_workers(
        ((i, [None, code]) for i, code in programs), job, workers=workers, limits=limits, sandbox=sandbox
    ):
        row = result["row"]
        if row is None:
            yield index, TraceResult(failure=result["failure"])
        else:
            steps = [Step.from_row(step) for step in row["steps"]]
            yield index, TraceResult(steps=steps, stdout=row["stdout"], error=row["error"])
