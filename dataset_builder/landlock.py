"""Keep a traced program out of /proc and /sys with Landlock (Linux 5.13+, unprivileged, per process).

Inside the sandbox, `/proc/self/mountinfo` names the host paths of every bind mount (the checkout that holds
`dataset_builder`, the Python installation, a home folder above them), and other files there describe the host.
No traced program needs them, so each program's process, just before it runs, allows itself to read files and
list folders only beneath the other top-level folders of the sandbox's root: a program that opens anything under
/proc or /sys gets PermissionError. Landlock checks a path when it is opened: a descriptor opened before (the
fork server's own view of its threads) keeps working. Writing is left to the read-only mounts.

Where the kernel has no Landlock, `restrict_reading` returns False and the program runs without it (the sandbox
probe says so, and the report's sandbox description has no "+ landlock").
"""

from __future__ import annotations

import ctypes
import os
import stat
import struct

_CREATE_RULESET, _ADD_RULE, _RESTRICT_SELF = 444, 445, 446  # the same numbers on x86_64 and aarch64
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1
_READ_FILE, _READ_DIR = 1 << 2, 1 << 3
_PR_SET_NO_NEW_PRIVS = 38
HIDDEN = ("proc", "sys")  # top-level folders a program may not read


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def available() -> bool:
    """Whether this kernel has Landlock (its ABI version is at least 1)."""
    try:
        return _libc().syscall(_CREATE_RULESET, None, 0, _CREATE_RULESET_VERSION) >= 1
    except (OSError, AttributeError):
        return False


def restrict_reading(root: str = "/") -> bool:
    """From now on this process (and what it starts) reads only beneath the top-level folders of `root` other
    than HIDDEN. Returns False, changing nothing, where Landlock is missing."""
    if not available():
        return False
    libc = _libc()
    handled = _READ_FILE | _READ_DIR
    ruleset = libc.syscall(_CREATE_RULESET, ctypes.c_char_p(struct.pack("=Q", handled)), 8, 0)
    if ruleset < 0:
        return False
    try:
        for name in sorted(os.listdir(root)):
            if name in HIDDEN:
                continue
            try:
                folder = os.open(os.path.join(root, name), os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue
            try:  # struct landlock_path_beneath_attr: allowed_access (u64), parent_fd (s32), packed
                allowed = handled if stat.S_ISDIR(os.fstat(folder).st_mode) else _READ_FILE  # a file at the top
                rule = struct.pack("=Qi", allowed, folder)
                libc.syscall(_ADD_RULE, ruleset, _RULE_PATH_BENEATH, ctypes.c_char_p(rule), 0)  # refused: unreadable
            finally:
                os.close(folder)
        libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)  # Landlock requires it (bwrap has set it already)
        if libc.syscall(_RESTRICT_SELF, ruleset, 0) != 0:
            raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
    finally:
        os.close(ruleset)
    return True
