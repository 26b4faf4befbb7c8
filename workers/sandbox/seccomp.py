"""A seccomp filter for bubblewrap jobs: refuse the system calls a CNN never needs.

Docker applies its default seccomp profile to every container. bubblewrap applies none unless
given a compiled classic-BPF program (`bwrap --seccomp FD`), so this module assembles one, in the
spirit of Docker's profile but as a short deny list:

- namespaces: `unshare`, `setns`, and `clone` with any namespace flag. A uid-65534 process
  without capabilities may otherwise create a user namespace, become root inside it and reach
  kernel code (mounts, netfilter) that is a frequent source of privilege escalations;
- `clone3` answers ENOSYS, so the C library falls back to `clone`, whose flags can be checked;
- mounting, kernel keyrings, BPF, perf events, userfaultfd, io_uring, ptrace and
  cross-process memory access, module loading, reboot and other administration calls;
- any other architecture's calling convention (32-bit `int 0x80`, x32), which would bypass the
  syscall numbers checked here: the process is killed.

Only x86-64 is assembled; `build_filter()` returns None elsewhere and the backend runs without it.
"""

from __future__ import annotations

import errno
import platform
import struct

# classic BPF opcodes
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_JSET_K = 0x45
_RET_K = 0x06

_RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000
_RET_KILL_PROCESS = 0x80000000

_AUDIT_ARCH_X86_64 = 0xC000003E
_X32_SYSCALL_BIT = 0x40000000

# struct seccomp_data: int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6];
_OFFSET_NR = 0
_OFFSET_ARCH = 4
_OFFSET_ARG0_LOW = 16  # little-endian: the low 32 bits of args[0]

NAMESPACE_FLAGS = (
    0x00020000  # CLONE_NEWNS
    | 0x02000000  # CLONE_NEWCGROUP
    | 0x04000000  # CLONE_NEWUTS
    | 0x08000000  # CLONE_NEWIPC
    | 0x10000000  # CLONE_NEWUSER
    | 0x20000000  # CLONE_NEWPID
    | 0x40000000  # CLONE_NEWNET
    | 0x00000080  # CLONE_NEWTIME
)

X86_64_CLONE = 56
X86_64_CLONE3 = 435
# Refused with EPERM (x86-64 numbers, from arch/x86/entry/syscalls/syscall_64.tbl).
X86_64_DENIED = {
    "ptrace": 101,
    "syslog": 103,
    "personality": 135,
    "vhangup": 153,
    "pivot_root": 155,
    "chroot": 161,
    "acct": 163,
    "mount": 165,
    "umount2": 166,
    "swapon": 167,
    "swapoff": 168,
    "reboot": 169,
    "sethostname": 170,
    "setdomainname": 171,
    "iopl": 172,
    "ioperm": 173,
    "init_module": 175,
    "delete_module": 176,
    "quotactl": 179,
    "lookup_dcookie": 212,
    "kexec_load": 246,
    "add_key": 248,
    "request_key": 249,
    "keyctl": 250,
    "unshare": 272,
    "perf_event_open": 298,
    "name_to_handle_at": 303,
    "open_by_handle_at": 304,
    "setns": 308,
    "process_vm_readv": 310,
    "process_vm_writev": 311,
    "finit_module": 313,
    "kexec_file_load": 320,
    "bpf": 321,
    "userfaultfd": 323,
    "io_uring_setup": 425,
    "io_uring_enter": 426,
    "io_uring_register": 427,
    "open_tree": 428,
    "move_mount": 429,
    "fsopen": 430,
    "fsconfig": 431,
    "fsmount": 432,
    "fspick": 433,
    "mount_setattr": 442,
}


def _instruction(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def filter_fd() -> int | None:
    """A memfd holding the filter, positioned at its start, for `bwrap --seccomp FD`."""
    program = build_filter()
    if program is None:
        return None
    import os

    fd = os.memfd_create("grader-seccomp", 0)  # not CLOEXEC: bwrap inherits it via pass_fds
    os.write(fd, program)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def build_filter() -> bytes | None:
    """The compiled filter for this machine, or None where no filter is assembled (non-x86-64)."""
    if platform.machine() not in {"x86_64", "AMD64"}:
        return None
    # Layout: a header, one JEQ per denied call (jumping to the shared EPERM return), the clone
    # flag check, and the returns. Jumps are relative to the next instruction.
    denied = sorted(X86_64_DENIED.values())
    program: list[bytes] = []
    program.append(_instruction(_LD_W_ABS, _OFFSET_ARCH))
    program.append(_instruction(_JEQ_K, _AUDIT_ARCH_X86_64, jt=1, jf=0))
    program.append(_instruction(_RET_K, _RET_KILL_PROCESS))
    program.append(_instruction(_LD_W_ABS, _OFFSET_NR))
    # BPF jumps only forward, so the x32 check (bit 30 set) jumps to a kill at the very end.
    checks = len(denied) + 3  # denied JEQs, clone3 JEQ, clone JEQ, and this JGE itself
    # After the checks come: [allow] [eperm] [enosys] [clone check: ld, jset, allow, eperm]
    # [kill]. Offsets are computed from each instruction's position.
    start = len(program)
    allow_at = start + checks
    eperm_at = allow_at + 1
    enosys_at = eperm_at + 1
    clone_at = enosys_at + 1
    kill_at = clone_at + 4

    def jump(position: int, target: int) -> int:
        offset = target - position - 1
        if not 0 <= offset <= 255:
            raise ValueError(f"seccomp jump of {offset} does not fit in a BPF instruction")
        return offset

    position = start
    program.append(_instruction(_JGE_K, _X32_SYSCALL_BIT, jt=jump(position, kill_at)))
    position += 1
    for number in denied:
        program.append(_instruction(_JEQ_K, number, jt=jump(position, eperm_at)))
        position += 1
    program.append(_instruction(_JEQ_K, X86_64_CLONE3, jt=jump(position, enosys_at)))
    position += 1
    program.append(_instruction(_JEQ_K, X86_64_CLONE, jt=jump(position, clone_at)))
    position += 1
    assert position == allow_at
    program.append(_instruction(_RET_K, _RET_ALLOW))
    program.append(_instruction(_RET_K, _RET_ERRNO | errno.EPERM))
    program.append(_instruction(_RET_K, _RET_ERRNO | errno.ENOSYS))
    # clone: refuse any namespace flag in args[0].
    program.append(_instruction(_LD_W_ABS, _OFFSET_ARG0_LOW))
    program.append(_instruction(_JSET_K, NAMESPACE_FLAGS, jt=1, jf=0))
    program.append(_instruction(_RET_K, _RET_ALLOW))
    program.append(_instruction(_RET_K, _RET_ERRNO | errno.EPERM))
    assert len(program) == kill_at
    program.append(_instruction(_RET_K, _RET_KILL_PROCESS))
    return b"".join(program)
