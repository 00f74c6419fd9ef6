"""Memory and process limits on a worker's whole process tree, with a cgroup per worker where the host allows it.

rlimits are per process: four forked children of 700 MiB each pass a 1 GiB RLIMIT_AS, and the kernel does not
enforce RLIMIT_NPROC for root. A cgroup bounds the tree: the worker (bwrap, the template and every process a
program starts) is placed in a leaf of its own with `memory` (no swap) and `pids` limits, so a fork bomb fails
with EAGAIN at the cap and memory past the cap is reclaimed by the OOM killer inside that leaf only.

Where the host lets it, the leaf is in the `cpu` controller too: the kernel then shares the CPU between workers'
groups, not between processes, so a program that starts 60 busy children takes its own worker's share, not the
time of an honest program in the next worker (which would otherwise run past its timeout).

Both hierarchies are supported: cgroup v2 (a leaf under the deepest ancestor of ours that already delegates the
memory and pids controllers and that we may write) and the v1 `memory` and `pids` controllers (a leaf under our
own group in each). Where neither can be written (an unprivileged user on a systemd host, say), `probe()`
returns limits of kind "" and the build says so in report.json: only the per-process rlimits apply then.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

TEMPLATE_HEADROOM_BYTES = 256 << 20  # the worker's own interpreter and its scratch tmpfs, on top of a program's
EXTRA_PROCESSES = 2  # bwrap's monitor and the template: a program and its children get `max_processes`


@dataclass
class TreeLimits:
    """Where this build may make cgroup leaves: kind "cgroup v2", "cgroup v1" or "" (none)."""

    kind: str = ""
    parents: dict = field(default_factory=dict)  # controller ("memory", "pids", or "" for v2) -> Path
    why_not: str = ""
    _made: int = 0

    cpu: bool = False  # the leaves are also scheduled as groups (a fair share of the CPU per worker)

    def describe(self) -> str:
        if self.kind:
            return f"{self.kind}: memory, process count{' and a fair CPU share' if self.cpu else ''} per worker"
        return f"rlimits per process only ({self.why_not})"

    def leaf(self, memory_bytes: int, max_processes: int) -> "Leaf | None":
        """A new leaf with these limits, or None when this build has no cgroups (or the host refused)."""
        if not self.kind:
            return None
        self._made += 1
        name = f"execution-traces-{os.getpid()}-{self._made}"
        dirs = []
        try:
            for controller, parent in self.parents.items():
                folder = parent / name
                folder.mkdir()
                dirs.append(folder)
                if controller in ("", "memory"):
                    _write_limits(folder, memory_bytes, v2=controller == "")
                if controller in ("", "pids"):
                    (folder / "pids.max").write_text(str(max_processes + EXTRA_PROCESSES))
        except OSError:
            Leaf(dirs).remove()
            return None
        return Leaf(dirs)


def _write_limits(folder: Path, memory_bytes: int, v2: bool) -> None:
    if v2:
        (folder / "memory.max").write_text(str(memory_bytes))
        if (folder / "memory.swap.max").exists():
            (folder / "memory.swap.max").write_text("0")
        return
    (folder / "memory.limit_in_bytes").write_text(str(memory_bytes))
    if (folder / "memory.memsw.limit_in_bytes").exists():  # memory + swap: no escape into swap
        (folder / "memory.memsw.limit_in_bytes").write_text(str(memory_bytes))


@dataclass
class Leaf:
    """One worker's cgroup (one folder in v2, one per controller in v1)."""

    dirs: list

    def launcher(self) -> tuple[str, ...]:
        """Command words that put the process in this leaf, then exec the rest of the command line."""
        script = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 126; shift; done; shift; exec "$@"'
        return ("/bin/sh", "-c", script, "sh", *(str(d / "cgroup.procs") for d in self.dirs), "--")

    def oom_kills(self) -> int:
        """How many processes the OOM killer has ended in this leaf so far."""
        for folder in self.dirs:
            for name in ("memory.events", "memory.oom_control"):
                try:
                    for line in (folder / name).read_text().splitlines():
                        key, _, value = line.partition(" ")
                        if key == "oom_kill":
                            return int(value)
                except (OSError, ValueError):
                    pass
        return 0

    def kill(self) -> None:
        """SIGKILL every process in the leaf."""
        for folder in self.dirs:
            try:
                (folder / "cgroup.kill").write_text("1")  # v2, Linux 5.14+: the whole leaf at once
                continue
            except OSError:
                pass
            for _ in range(100):  # v1: whatever is listed, until nothing is (a fork may race the listing)
                try:
                    pids = [int(p) for p in (folder / "cgroup.procs").read_text().split()]
                except (OSError, ValueError):
                    break
                if not pids:
                    break
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass

    def remove(self) -> None:
        """Remove the leaf once its processes are gone (they exit asynchronously after a kill)."""
        for folder in self.dirs:
            for _ in range(50):
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)


def probe() -> TreeLimits:
    """The cgroup limits this build can use: v2 if it can make a leaf with both controllers, else v1."""
    try:
        groups = Path("/proc/self/cgroup").read_text().splitlines()
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return TreeLimits(why_not="no cgroups on this system")
    own = {}  # controller -> our group's path in that hierarchy ("" for v2)
    for line in groups:
        number, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            own[controller] = path
    points = _mount_points(mounts)
    if "" in points and "" in own:
        parent = _v2_parent(points[""], own[""])
        if parent is not None and _writable(parent):
            _remove_stale_leaves(parent)
            return TreeLimits("cgroup v2", {"": parent}, cpu="cpu" in _delegated(parent))
    if "memory" in points and "pids" in points and "memory" in own and "pids" in own:
        parents = {c: _below(points[c], own[c]) for c in ("memory", "pids")}
        if all(p is not None and _writable(p) for p in parents.values()):
            cpu = _below(points["cpu"], own["cpu"]) if "cpu" in points and "cpu" in own else None
            if cpu is not None and _writable(cpu):  # optional: memory and pids are what bound the tree
                parents["cpu"] = cpu
            for parent in parents.values():
                _remove_stale_leaves(parent)
            return TreeLimits("cgroup v1", parents, cpu="cpu" in parents)
    return TreeLimits(why_not="the cgroup hierarchy is not writable here")


def _mount_points(mountinfo: list[str]) -> dict[str, tuple[str, str]]:
    """controller ("" for v2) -> (root of the hierarchy that is mounted, mount point)."""
    points = {}
    for line in mountinfo:
        fields = line.split()
        if "-" not in fields:
            continue
        dash = fields.index("-")
        fstype, options = fields[dash + 1], fields[dash + 3].split(",") if len(fields) > dash + 3 else []
        if fstype == "cgroup2":
            points.setdefault("", (fields[3], fields[4]))
        elif fstype == "cgroup":
            for controller in ("memory", "pids", "cpu"):
                if controller in options:
                    points.setdefault(controller, (fields[3], fields[4]))
    return points


def _below(point: tuple[str, str], path: str) -> Path | None:
    """Our group's folder under a mount of its hierarchy."""
    root, mounted_at = point
    if root != "/" and not (path + "/").startswith(root.rstrip("/") + "/"):
        return None
    folder = Path(mounted_at) / path[len(root.rstrip("/")) :].lstrip("/")
    return folder if folder.is_dir() else None


def _v2_parent(point: tuple[str, str], path: str) -> Path | None:
    """The deepest folder from our group up that delegates both memory and pids to its children."""
    folder = _below(point, path)
    top = Path(point[1])
    while folder is not None:
        delegated = _delegated(folder)
        if "memory" in delegated and "pids" in delegated:
            return folder
        if folder == top:
            return None
        folder = folder.parent
    return None


def _delegated(folder: Path) -> list[str]:
    """The v2 controllers `folder` hands down to its children."""
    try:
        return (folder / "cgroup.subtree_control").read_text().split()
    except OSError:
        return []


def _remove_stale_leaves(parent: Path) -> None:
    """Empty leaves of builds that were killed (SIGKILL) before they could remove them."""
    for leaf in parent.glob("execution-traces-*-*"):
        pid = leaf.name.split("-")[2]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            try:
                leaf.rmdir()
            except OSError:
                pass


def _writable(folder: Path) -> bool:
    probe_dir = folder / f"execution-traces-probe-{os.getpid()}"
    try:
        probe_dir.mkdir()
        probe_dir.rmdir()
        return True
    except OSError:
        return False
