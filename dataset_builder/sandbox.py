"""Where tracing workers run: inside bubblewrap (`bwrap`), or, when asked, as plain processes.

A program given to the builder may be hostile. Under bwrap each worker gets every namespace unshared: no
network at all (its own empty loopback), its own PID namespace (it can signal nothing outside, and every
process inside dies with it), its own IPC and UTS namespaces, no capabilities, a new session (no terminal to
push keystrokes into). The file system it sees is built from nothing: read-only binds of the interpreter's
installation, the system libraries and this package's `dataset_builder` folder (never the repository, the
user's home, the working directory, the output or the Hub cache), a fresh /proc and /dev, and size-capped
tmpfs for /tmp, HOME and /dev/shm. Its environment is cleared to what the interpreter needs; bwrap itself is
started with that same environment, so no secret is readable even from the sandbox's pid 1.

`--sandbox none` runs the same worker code as plain processes: a cleared environment, rlimits and one process
per program still apply, but a program can read and write what the user can, reach the network and signal
the build. It is for generated programs on machines without bwrap, or code you trust.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

MODES = ("auto", "bwrap", "none")
PACKAGE_DIR = Path(__file__).resolve().parent  # the dataset_builder folder: the only part of us a worker sees
SANDBOX_PACKAGE_ROOT = "/opt/execution-traces"  # where it appears inside the sandbox
SANDBOX_HOME = "/home/tracer"
TMPFS_BYTES = {"/tmp": 64 << 20, SANDBOX_HOME: 16 << 20, "/dev/shm": 16 << 20}
HASH_SEED = "0"  # set order must be the same on every run and in every worker


class SandboxUnavailable(Exception):
    """bwrap was asked for (or is required) and cannot run here; the message is one sentence."""


@dataclass(frozen=True)
class Sandbox:
    kind: str  # "bwrap" or "none"
    version: str = ""  # bwrap's version, for the report and the dataset card

    @property
    def scratch_dirs(self) -> list[str]:
        """Writable places a program may leave files in: a worker whose program left any is replaced."""
        return list(TMPFS_BYTES) if self.kind == "bwrap" else []

    def describe(self) -> str:
        return f"bubblewrap {self.version}".strip() if self.kind == "bwrap" else "none"

    def command(self, python_code: str, *args: str) -> list[str]:
        """The command line that runs `python -c python_code *args` as a worker."""
        python = os.path.realpath(sys.executable)
        package_root = SANDBOX_PACKAGE_ROOT if self.kind == "bwrap" else str(PACKAGE_DIR.parent)
        # -S: no site-packages (programs see the standard library only, the same with and without bwrap);
        # -s: no user site. Not -I/-E: they would drop PYTHONHASHSEED.
        bootstrap = f"import sys; sys.path.insert(0, {package_root!r}); {python_code}"
        inner = [python, "-S", "-s", "-c", bootstrap, *args]
        if self.kind == "none":
            return inner
        return _bwrap_arguments(python) + inner

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


def _read_only_roots(python: str) -> list[str]:
    """What the interpreter needs: its installation prefix and the system's library folders."""
    prefix = os.path.realpath(sys.base_prefix)
    roots = {prefix, os.path.dirname(os.path.dirname(python))}
    roots.update(p for p in ("/usr", "/lib", "/lib64", "/lib32", "/etc/ld.so.cache") if os.path.exists(p))
    # Drop folders already inside another one (a bind of /usr covers /usr/lib/python3).
    ordered = sorted(roots, key=len)
    return [r for i, r in enumerate(ordered) if not any(r.startswith(o.rstrip("/") + "/") for o in ordered[:i])]


def _bwrap_arguments(python: str) -> list[str]:
    args = [
        shutil.which("bwrap") or "bwrap",
        "--unshare-all",  # user, ipc, pid, net, uts, cgroup: no network, nothing outside to signal
        "--die-with-parent",
        "--new-session",
        "--cap-drop", "ALL",
        "--clearenv",
    ]
    for root in _read_only_roots(python):
        args += ["--ro-bind", root, root]
    args += ["--ro-bind", str(PACKAGE_DIR), f"{SANDBOX_PACKAGE_ROOT}/{PACKAGE_DIR.name}"]
    args += ["--proc", "/proc", "--dev", "/dev"]
    for path, size in TMPFS_BYTES.items():
        args += ["--size", str(size), "--tmpfs", path]
    for name, value in Sandbox("bwrap").environment("").items():
        args += ["--setenv", name, value]
    return args + ["--chdir", "/tmp"]


def probe_bwrap() -> tuple[bool, str]:
    """(works, version or why not): start a real sandboxed interpreter once and check what it sees."""
    if shutil.which("bwrap") is None:
        return False, "bwrap is not installed"
    sandbox = Sandbox("bwrap")
    check = "import os, socket; s = socket.socket(); print(s.connect_ex(('127.0.0.1', 9)) != 0, os.getpid())"
    try:
        done = subprocess.run(sandbox.command(check), capture_output=True, text=True, timeout=30,
                              env=sandbox.environment(""), stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"bwrap did not start ({type(exc).__name__})"
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        return False, f"bwrap failed: {last}"
    if done.stdout.split() != ["True", "2"]:  # no network, and pid 2 in a fresh PID namespace
        return False, "bwrap started but did not isolate the network and processes"
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
