"""Where tracing workers run: inside bubblewrap (`bwrap`), or, when asked, as plain processes.

A program given to the builder may be hostile. Under bwrap each worker gets its own namespaces: no network at
all (its own empty loopback), its own PID namespace (it can signal nothing outside, and every process inside
dies with it), its own IPC and UTS namespaces, no capabilities, a new session (no terminal to push keystrokes
into). The worker's interpreter is the sandbox's pid 1 (`--as-pid-1`: there is no bwrap init inside for a
program to reach) and a seccomp filter (`seccomp.py`) denies ptrace, cross-process memory access, namespaces,
mounts, keyrings, BPF, io_uring and socket families beyond Unix, IPv4 and IPv6.

It never runs as the host's root. Run by a normal user, bwrap maps the sandbox into a user namespace of that
user. Run by root (most containers and CI), a user namespace would map the sandbox's uid 0 to the host's uid 0,
and the kernel checks /proc/sys by uid: a program could write the host's global sysctls (`kernel.core_pattern`
is an escape to host root). So as root there is no user namespace: bwrap keeps only CAP_SETUID and CAP_SETGID,
and the worker's first statement drops to `SANDBOX_UID`/`SANDBOX_GID` (nobody) with no groups, before any other
code runs; from there it holds no capability, cannot set the hostname or any other namespace setting, and
cannot write /proc/sys (which is also bound read-only). `probe_bwrap` checks all of this from inside.

The file system it sees is read-only except for a few small scratch mounts: read-only binds of the system
libraries, the interpreter's installation (at `SANDBOX_PYTHON` when it lives outside the system folders, so no
host path such as a home folder shows in `sys.prefix` or a module's `__file__`) and this package's
`dataset_builder` folder (never the repository, the user's home, the working directory, the output or the Hub
cache), a fresh /proc (closed to each program by Landlock, `landlock.py`: its mountinfo names the host paths of
the binds), a /dev of device nodes, and size-capped tmpfs for /tmp, HOME and /dev/shm plus a POSIX
message-queue mount (`SCRATCH_BYTES`). The root, /dev and every folder bwrap creates are remounted read-only,
so nothing on `sys.path` can be written; the scratch mounts are checked after every program and a worker whose
program left anything there is replaced. Its environment is cleared to what the interpreter needs; bwrap
itself is started with that same environment, so no secret is readable even from inside.

`--sandbox none` runs the same worker code as plain processes: a cleared environment, rlimits and one process
per program still apply, but a program can read and write what the user can, reach the network and signal
the build. It is for generated programs on machines without bwrap, or code you trust.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from . import landlock
from .seccomp import filter_program

MODES = ("auto", "bwrap", "none")
PACKAGE_DIR = Path(__file__).resolve().parent  # the dataset_builder folder: the only part of us a worker sees
SANDBOX_PACKAGE_ROOT = "/opt/execution-traces"  # where it appears inside the sandbox
SANDBOX_HOME = "/home/tracer"
# The only writable places inside the sandbox, each capped (a program's files are limited by RLIMIT_FSIZE too).
SCRATCH_BYTES = {"/tmp": 16 << 20, SANDBOX_HOME: 4 << 20, "/dev/shm": 8 << 20}
MQUEUE_DIR = "/dev/mqueue"  # POSIX message queues of the sandbox's IPC namespace, mounted so they can be seen
HASH_SEED = "0"  # set order must be the same on every run and in every worker
SANDBOX_UID = SANDBOX_GID = 65534  # nobody / nogroup: who a worker runs as when the build runs as root
# Opened for writing by the probe: any that opens means a program could change the host's kernel settings.
HOST_SYSCTLS = ("/proc/sys/kernel/core_pattern", "/proc/sys/kernel/hostname", "/proc/sys/vm/drop_caches")


class SandboxUnavailable(Exception):
    """bwrap was asked for (or is required) and cannot run here; the message is one sentence."""


@dataclass(frozen=True)
class Sandbox:
    kind: str  # "bwrap" or "none"
    version: str = ""  # bwrap's version, for the report and the dataset card

    @property
    def scratch_dirs(self) -> list[str]:
        """Writable places a program may leave files in: a worker whose program left any is replaced."""
        return [*SCRATCH_BYTES, MQUEUE_DIR] if self.kind == "bwrap" else []

    def describe(self) -> str:
        if self.kind != "bwrap":
            return "none"
        # Landlock is the kernel's: the parent sees what every program's process will get (fork_server.py).
        return (
            " ".join(filter(None, ("bubblewrap", self.version)))
            + " + seccomp"
            + (" + landlock" if landlock.available() else "")
        )

    def start(
        self, python_code: str, *args: str, home: str = "", pass_fds: tuple = (), prefix: tuple = (), **popen_options
    ) -> subprocess.Popen:
        """Start `python -c python_code *args` in this sandbox (with a private `home` without one), behind the
        command words `prefix` (a launcher that must exec the rest). The seccomp filter travels on a pipe."""
        python = os.path.realpath(sys.executable)
        layout = _layout(python) if self.kind == "bwrap" else None
        package_root = SANDBOX_PACKAGE_ROOT if self.kind == "bwrap" else str(PACKAGE_DIR.parent)
        # -S: no site-packages (programs see the standard library only, the same with and without bwrap);
        # -s: no user site; -P: not the working directory either. Not -I/-E: they would drop PYTHONHASHSEED.
        bootstrap = f"import sys; sys.path.insert(0, {package_root!r}); {python_code}"
        as_root = self.kind == "bwrap" and os.geteuid() == 0
        if as_root:  # before anything else runs: never the host's root (see the module's docstring)
            bootstrap = _DROP_ROOT + bootstrap
        command = [*prefix, layout.python if layout else python, "-S", "-s", "-P", "-c", bootstrap, *args]
        if self.kind == "none":
            return subprocess.Popen(command, env=self.environment(home), pass_fds=pass_fds, **popen_options)
        program = filter_program()
        read_end, write_end = os.pipe()
        try:
            os.write(write_end, program)  # a few hundred bytes: the pipe holds them until bwrap reads them
            os.close(write_end)
            command[len(prefix) : len(prefix)] = _bwrap_arguments(layout, read_end, as_root)
            return subprocess.Popen(
                command, env=self.environment(home), pass_fds=(*pass_fds, read_end), **popen_options
            )
        finally:
            os.close(read_end)

    def environment(self, home: str) -> dict[str, str]:
        """The whole environment of a worker (and of bwrap): nothing of the user's."""
        return {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": SANDBOX_HOME if self.kind == "bwrap" else home,
            "TMPDIR": "/tmp" if self.kind == "bwrap" else home,
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "PYTHONHASHSEED": HASH_SEED,
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONIOENCODING": "utf-8",
        }


_SYSTEM_ROOTS = ("/usr", "/lib", "/lib64", "/lib32", "/etc/ld.so.cache")
SANDBOX_PYTHON = "/opt/python"  # where a Python installed outside the system folders appears inside


@dataclass(frozen=True)
class _Layout:
    """What a worker's interpreter needs, bound read-only: (host path, path inside) pairs, the interpreter's
    path inside, and the library path that finds its libpython there ("" when nothing moved)."""

    binds: list
    python: str
    library_path: str = ""


def _layout(python: str) -> _Layout:
    """The system's library folders where they are, and the Python installation where it is if they hold it (a
    distribution's Python), else at SANDBOX_PYTHON: no host path (a home folder, pyenv's) shows inside, not in
    `sys.prefix`, a module's `__file__` or a traceback."""
    system = [root for root in _SYSTEM_ROOTS if os.path.exists(root)]
    prefix = os.path.realpath(sys.base_prefix)

    def under(path: str, roots) -> bool:
        return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)

    binds = [(root, root) for root in system]
    if under(prefix, system) and under(python, system):
        return _Layout(binds, python)
    if under(python, [prefix]):
        binds.append((prefix, SANDBOX_PYTHON))
        return _Layout(binds, SANDBOX_PYTHON + python[len(prefix) :], f"{SANDBOX_PYTHON}/lib")
    # An interpreter outside its own prefix: both where they are on the host.
    extra = sorted({prefix, os.path.dirname(os.path.dirname(python))}, key=len)
    extra = [r for i, r in enumerate(extra) if not under(r, system + extra[:i])]
    return _Layout(binds + [(root, root) for root in extra], python)


# The worker's first statement when the build runs as root: groups, then gid, then uid (after which the process
# holds no capability, so nothing can take them back). A failure ends the worker, and the probe says why.
_DROP_ROOT = (
    f"import os; os.setgroups([]); os.setresgid({SANDBOX_GID}, {SANDBOX_GID}, {SANDBOX_GID}); "
    f"os.setresuid({SANDBOX_UID}, {SANDBOX_UID}, {SANDBOX_UID}); "
)


def _bwrap_arguments(layout: _Layout, seccomp_fd: int, as_root: bool) -> list[str]:
    args = [shutil.which("bwrap") or "bwrap"]
    if as_root:  # no user namespace (its uid 0 is the host's); only what the drop to nobody needs, until it
        args += [
            "--unshare-ipc",
            "--unshare-pid",
            "--unshare-net",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--cap-drop",
            "ALL",
            "--cap-add",
            "CAP_SETUID",
            "--cap-add",
            "CAP_SETGID",
        ]
    else:  # user, ipc, pid, net, uts, cgroup
        args += ["--unshare-all", "--cap-drop", "ALL"]
    args += [
        "--die-with-parent",
        "--new-session",
        "--as-pid-1",  # the worker is pid 1: no bwrap init inside that a program could take over
        "--clearenv",
    ]
    binds = [*layout.binds, (str(PACKAGE_DIR), f"{SANDBOX_PACKAGE_ROOT}/{PACKAGE_DIR.name}")]
    # The folders above each mount, made first and world-readable: bwrap would copy the host's modes, and a
    # worker running as nobody could not pass /root (0700) to reach an interpreter installed under it.
    for folder in sorted({str(parent) for _, target in binds for parent in Path(target).parents} - {"/"}):
        args += ["--perms", "0755", "--dir", folder]
    for source, target in binds:
        args += ["--ro-bind", source, target]
    # /proc/sys read-only (bwrap's --proc covers /proc/irq and /proc/bus, not /proc/sys): kernel settings are
    # nobody's business inside. The bind's source is the host's /proc/sys, whose files show the opener's own
    # namespaces, so what a worker reads there is its own.
    args += ["--proc", "/proc", "--ro-bind", "/proc/sys", "/proc/sys", "--dev", "/dev", "--mqueue", MQUEUE_DIR]
    for path, size in SCRATCH_BYTES.items():  # 1777 like /tmp: the worker may run as nobody (see above)
        args += ["--perms", "1777", "--size", str(size), "--tmpfs", path]
    # Everything else read-only: the root bwrap built (and the folders it made for the mounts) and /dev (device
    # nodes stay usable: a read-only mount forbids creating files, not writing to /dev/null).
    args += ["--remount-ro", "/dev", "--remount-ro", "/"]
    for name, value in Sandbox("bwrap").environment("").items():
        args += ["--setenv", name, value]
    if layout.library_path:
        args += ["--setenv", "LD_LIBRARY_PATH", layout.library_path]
    return args + ["--seccomp", str(seccomp_fd), "--chdir", "/tmp"]


_PROBE = f"""
import ctypes, errno, os, socket
unreachable = socket.socket().connect_ex(("127.0.0.1", 9)) != 0
ctypes.CDLL(None, use_errno=True).ptrace(0x4206, 2 ** 22, 0, 0)  # PTRACE_SEIZE of no process: ESRCH unfiltered
filtered = ctypes.get_errno() == errno.EPERM
def opens(path, flags):
    try:
        os.close(os.open(path, flags))
        return True
    except OSError:
        return False
read_only = not opens("/probe", os.O_WRONLY | os.O_CREAT)
unprivileged = os.geteuid() != 0 and not any(opens(path, os.O_WRONLY) for path in {HOST_SYSCTLS!r})
try:
    os.setuid(0)
except OSError:
    pass
unprivileged = unprivileged and os.geteuid() != 0
print(unreachable, os.getpid(), filtered, read_only, unprivileged)
"""


def probe_bwrap() -> tuple[bool, str]:
    """(works, version or why not): start a real sandboxed interpreter once and check what it sees."""
    if shutil.which("bwrap") is None:
        return False, "bwrap is not installed"
    if filter_program() is None:
        return False, f"no seccomp filter for this processor ({platform.machine()})"
    try:
        process = Sandbox("bwrap").start(
            _PROBE, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        out, err = process.communicate(timeout=30)
    except OSError as exc:
        return False, f"bwrap did not start ({type(exc).__name__})"
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return False, "bwrap did not answer within 30 s"
    if process.returncode != 0:
        last = (err.strip().splitlines() or ["no message"])[-1]
        return False, f"bwrap failed: {last}"
    seen = out.split()
    if seen[:4] != ["True", "1", "True", "True"]:  # no network, pid 1 of its own namespace, filtered, read-only
        return False, "bwrap started but did not isolate the network, processes, system calls and files"
    if seen[4:] != ["True"]:  # not root, no sysctl opens for writing, no way back to uid 0
        return False, "bwrap started but a program inside could write the host's kernel settings (/proc/sys)"
    version = subprocess.run(["bwrap", "--version"], capture_output=True, text=True).stdout.split()
    return True, version[-1] if version else ""


def resolve(mode: str, *, untrusted: bool) -> tuple[Sandbox, str]:
    """The sandbox for a build, and a one-line note for the user ("" when there is nothing to say).

    `auto` uses bwrap when it works here and otherwise falls back to `none` for generated programs only:
    programs from a file (`untrusted`) are refused rather than run unsandboxed by surprise."""
    if mode not in MODES:
        raise SandboxUnavailable(f"--sandbox must be one of {', '.join(MODES)}, not {mode!r}.")
    if mode == "none":
        return Sandbox("none"), ""
    works, detail = probe_bwrap()
    if works:
        return Sandbox("bwrap", detail), ""
    if mode == "bwrap" or untrusted:
        raise SandboxUnavailable(
            f"The bubblewrap sandbox is not usable here ({detail}): install it (Debian/Ubuntu: apt-get install "
            "bubblewrap; it needs user namespaces) or pass --sandbox none to trace these programs without it."
        )
    return Sandbox("none"), f"Note: tracing without a sandbox ({detail}); fine for generated programs."
