"""The system calls a traced program may not make: a classic BPF filter that bwrap installs (`--seccomp FD`).

No traced program needs to debug, read or write another process (`ptrace`, `process_vm_*`, `pidfd_getfd`,
`kcmp`), to make namespaces or mounts (`unshare`, `setns`, `clone` with a namespace flag, the mount calls), or to
reach the kernel's keyrings, BPF, perf, io_uring (which bypasses seccomp) or module loading. Without this filter a
program could ptrace another process of its sandbox and forge what it reports, or hang the sandbox's teardown.
Each denied call fails with EPERM, as if a capability were missing. `clone3` fails with ENOSYS: its flags sit in
memory a filter cannot read, and the C library then falls back to `clone`, whose flags it can. Sockets are
limited to the families a program's own loopback needs (Unix, IPv4, IPv6): the others fail with EAFNOSUPPORT,
as on a kernel without them. The network namespace does not cover every family: AF_VSOCK reaches the virtual
machine's host, netlink and packet sockets reach kernel interfaces.

The program is built here, byte by byte, for the two architectures whose system call numbers are listed
(x86_64 and aarch64, from the kernel's unistd headers); `filter_program()` returns None anywhere else, and the
sandbox probe then says the filter is missing.
"""

from __future__ import annotations

import errno
import platform
import struct

# System call numbers (asm/unistd_64.h on x86_64, asm-generic/unistd.h on aarch64).
_DENIED = {
    "x86_64": {
        "ptrace": 101,
        "process_vm_readv": 310,
        "process_vm_writev": 311,
        "pidfd_getfd": 438,
        "kcmp": 312,
        "unshare": 272,
        "setns": 308,
        "mount": 165,
        "umount2": 166,
        "pivot_root": 155,
        "chroot": 161,
        "open_tree": 428,
        "move_mount": 429,
        "fsopen": 430,
        "fsconfig": 431,
        "fsmount": 432,
        "fspick": 433,
        "mount_setattr": 442,
        "keyctl": 250,
        "add_key": 248,
        "request_key": 249,
        "bpf": 321,
        "perf_event_open": 298,
        "userfaultfd": 323,
        "io_uring_setup": 425,
        "io_uring_enter": 426,
        "io_uring_register": 427,
        "kexec_load": 246,
        "kexec_file_load": 320,
        "init_module": 175,
        "finit_module": 313,
        "delete_module": 176,
        "open_by_handle_at": 304,
        "name_to_handle_at": 303,
    },
    "aarch64": {
        "ptrace": 117,
        "process_vm_readv": 270,
        "process_vm_writev": 271,
        "pidfd_getfd": 438,
        "kcmp": 272,
        "unshare": 97,
        "setns": 268,
        "mount": 40,
        "umount2": 39,
        "pivot_root": 41,
        "chroot": 51,
        "open_tree": 428,
        "move_mount": 429,
        "fsopen": 430,
        "fsconfig": 431,
        "fsmount": 432,
        "fspick": 433,
        "mount_setattr": 442,
        "keyctl": 219,
        "add_key": 217,
        "request_key": 218,
        "bpf": 280,
        "perf_event_open": 241,
        "userfaultfd": 282,
        "io_uring_setup": 425,
        "io_uring_enter": 426,
        "io_uring_register": 427,
        "kexec_load": 104,
        "kexec_file_load": 294,
        "init_module": 105,
        "finit_module": 273,
        "delete_module": 106,
        "open_by_handle_at": 265,
        "name_to_handle_at": 264,
    },
}
_CLONE = {"x86_64": 56, "aarch64": 220}
_SOCKET = {"x86_64": (41, 53), "aarch64": (198, 199)}  # socket, socketpair: the family is their first argument
SOCKET_FAMILIES = {"AF_UNIX": 1, "AF_INET": 2, "AF_INET6": 10}  # the families a traced program may open
_CLONE3 = 435
_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
_X32_BIT = 0x40000000  # x86_64's x32 system calls: another numbering, denied as a whole
# CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET, NEWTIME
_NAMESPACE_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000 | 0x80

# struct seccomp_data: nr (u32), arch (u32), instruction_pointer (u64), args[6] (u64): the low half of args[0]
# (clone's flags) is at 16 on these little-endian machines.
_NR, _ARCH, _ARG0_LOW = 0, 4, 16
_LD_ABS, _JEQ, _JGE, _JSET, _RET = 0x20, 0x15, 0x35, 0x45, 0x06  # BPF_LD|W|ABS, BPF_JMP|JEQ|K, ..., BPF_RET|K
_ALLOW = 0x7FFF0000
_ERRNO = 0x00050000


def denied_calls() -> list[str]:
    """The names of the denied system calls (plus clone with a namespace flag, and clone3), for the docs."""
    return sorted(_DENIED["x86_64"])


def filter_program(machine: str | None = None) -> bytes | None:
    """The compiled filter for this machine (struct sock_filter[]), or None where it has no syscall table."""
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine or platform.machine(), machine or platform.machine())
    if machine not in _DENIED:
        return None
    program: list[tuple[int, int, int, int]] = []  # (code, jump if true, jump if false, k)
    fixups: list[tuple[int, int, str]] = []  # (instruction, 1 = true / 2 = false branch, label it jumps to)

    def emit(code, k, true=None, false=None):
        program.append((code, 0, 0, k))
        for which, label in ((1, true), (2, false)):
            if label is not None:
                fixups.append((len(program) - 1, which, label))

    emit(_LD_ABS, _ARCH)
    emit(_JEQ, _AUDIT_ARCH[machine], false="enosys")  # a call through another ABI (i386 on x86_64)
    emit(_LD_ABS, _NR)
    if machine == "x86_64":
        emit(_JGE, _X32_BIT, true="eperm")
    for number in sorted(_DENIED[machine].values()):
        emit(_JEQ, number, true="eperm")
    emit(_JEQ, _CLONE3, true="enosys")
    emit(_JEQ, _CLONE[machine], true="clone")
    for number in _SOCKET[machine]:
        emit(_JEQ, number, true="socket")
    emit(_RET, _ALLOW)
    labels = {"clone": len(program)}
    emit(_LD_ABS, _ARG0_LOW)
    emit(_JSET, _NAMESPACE_FLAGS, true="eperm")
    emit(_RET, _ALLOW)
    labels["socket"] = len(program)
    emit(_LD_ABS, _ARG0_LOW)
    for family in SOCKET_FAMILIES.values():
        emit(_JEQ, family, true="family allowed")
    emit(_RET, _ERRNO | errno.EAFNOSUPPORT)
    labels["family allowed"] = len(program)
    emit(_RET, _ALLOW)
    labels["eperm"] = len(program)
    emit(_RET, _ERRNO | errno.EPERM)
    labels["enosys"] = len(program)
    emit(_RET, _ERRNO | errno.ENOSYS)
    for index, which, label in fixups:  # BPF jumps are relative to the next instruction
        code, jt, jf, k = program[index]
        offset = labels[label] - index - 1
        assert 0 <= offset < 256, "BPF jumps only forward, at most 255 instructions"
        program[index] = (code, offset, jf, k) if which == 1 else (code, jt, offset, k)
    return b"".join(struct.pack("<HBBI", *instruction) for instruction in program)
