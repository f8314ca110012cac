"""The project's own seccomp profile for every job container [JOB-SECCOMP.*].

Docker's default profile (moby/profiles ``seccomp/default.json``, Apache-2.0)
minus what a training job never needs. The engine's default is not relied
upon: it changes between engine versions (Docker 20.10 allows ``AF_VSOCK``
sockets and ``io_uring``, which are not network-namespaced or widen the
kernel surface), so the profile is generated here, written to
``seccomp_profile.json`` next to this file (``python -m sandbox.seccomp``
rewrites it; a test checks the file equals ``build_profile()``), and passed
inline in ``security_opt`` by ``policy.container_kwargs``.

Rules:

- [JOB-SECCOMP.1] Default action: fail with ``EPERM``. Only ``ALLOWED`` and
  the conditional rules below are permitted.
- [JOB-SECCOMP.2] ``socket`` only for ``AF_UNIX``, ``AF_INET``, ``AF_INET6``
  and ``AF_NETLINK`` with protocol ``NETLINK_ROUTE``; ``socketpair`` only for
  ``AF_UNIX``; ``socketcall`` (the 32-bit x86 multiplexer, whose arguments
  seccomp cannot see) never. Refused: ``AF_VSOCK`` (reaches the hypervisor,
  not namespaced), ``AF_PACKET``, ``AF_ALG``, ``AF_KEY``, ``AF_NETLINK``
  other than route, ``AF_BLUETOOTH``, ``AF_XDP``... everything else.
- [JOB-SECCOMP.3] Never: ``DENIED`` (io_uring, userfaultfd, bpf,
  perf_event_open, the kernel keyring, ptrace and cross-process memory
  access, handles and mounts, namespaces...), each with an explicit rule
  so the intent is visible in the file.
- [JOB-SECCOMP.4] No rule depends on a capability: job containers hold
  none (``cap_drop=ALL``), so Docker's capability-gated rules are left out;
  ``clone`` is allowed without namespace flags, ``clone3`` fails with
  ``ENOSYS`` (so libc falls back to ``clone``), ``personality`` only for
  Docker's listed personas.
"""

from __future__ import annotations

import json
import sys
from functools import cache
from pathlib import Path
from typing import Any

from sandbox.runtime import RUNSC

PROFILE_FILE = Path(__file__).with_name("seccomp_profile.json")
EPERM = 1
ENOSYS = 38
AF_UNIX, AF_INET, AF_INET6, AF_NETLINK = 1, 2, 10, 16
NETLINK_ROUTE = 0
ALLOWED_FAMILIES = (AF_UNIX, AF_INET, AF_INET6)
"""[JOB-SECCOMP.2] Socket families a job may open (plus route netlink)."""
CLONE_NAMESPACE_FLAGS = 0x7E020000
"""CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET: refused in ``clone``."""

_ALLOWED_TEXT = """
    _llseek _newselect accept accept4 access adjtimex alarm bind brk cachestat capget capset
    chdir chmod chown chown32 clock_adjtime clock_adjtime64 clock_getres clock_getres_time64
    clock_gettime clock_gettime64 clock_nanosleep clock_nanosleep_time64 close close_range
    connect copy_file_range creat dup dup2 dup3 epoll_create epoll_create1 epoll_ctl
    epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd eventfd2 execve
    execveat exit exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate
    fanotify_mark fchdir fchmod fchmodat fchmodat2 fchown fchown32 fchownat fcntl fcntl64
    fdatasync fgetxattr flistxattr flock fork fremovexattr fsetxattr fstat fstat64 fstatat64
    fstatfs fstatfs64 fsync ftruncate ftruncate64 futex futex_requeue futex_time64
    futex_wait futex_waitv futex_wake futimesat get_robust_list get_thread_area getcpu
    getcwd getdents getdents64 getegid getegid32 geteuid geteuid32 getgid getgid32 getgroups
    getgroups32 getitimer getpeername getpgid getpgrp getpid getppid getpriority getrandom
    getresgid getresgid32 getresuid getresuid32 getrlimit getrusage getsid getsockname
    getsockopt gettid gettimeofday getuid getuid32 getxattr getxattrat inotify_add_watch
    inotify_init inotify_init1 inotify_rm_watch io_cancel io_destroy io_getevents
    io_pgetevents io_pgetevents_time64 io_setup io_submit ioctl ioprio_get ioprio_set ipc
    kill landlock_add_rule landlock_create_ruleset landlock_restrict_self lchown lchown32
    lgetxattr link linkat listen listmount listxattr listxattrat llistxattr lremovexattr
    lseek lsetxattr lstat lstat64 madvise map_shadow_stack membarrier memfd_create mincore
    mkdir mkdirat mknod mknodat mlock mlock2 mlockall mmap mmap2 mprotect mq_getsetattr
    mq_notify mq_open mq_timedreceive mq_timedreceive_time64 mq_timedsend
    mq_timedsend_time64 mq_unlink mremap mseal msgctl msgget msgrcv msgsnd msync munlock
    munlockall munmap nanosleep newfstatat open openat openat2 pause pidfd_open
    pidfd_send_signal pipe pipe2 pkey_alloc pkey_free pkey_mprotect poll ppoll ppoll_time64
    prctl pread64 preadv preadv2 prlimit64 process_mrelease pselect6 pselect6_time64
    pwrite64 pwritev pwritev2 read readahead readlink readlinkat readv recv recvfrom
    recvmmsg recvmmsg_time64 recvmsg remap_file_pages removexattr removexattrat rename
    renameat renameat2 restart_syscall riscv_hwprobe rmdir rseq rt_sigaction rt_sigpending
    rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait
    rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_get_priority_max sched_get_priority_min
    sched_getaffinity sched_getattr sched_getparam sched_getscheduler sched_rr_get_interval
    sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam
    sched_setscheduler sched_yield seccomp select semctl semget semop semtimedop
    semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg sendto set_robust_list
    set_thread_area set_tid_address setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32
    setgroups setgroups32 setitimer setpgid setpriority setregid setregid32 setresgid
    setresgid32 setresuid setresuid32 setreuid setreuid32 setrlimit setsid setsockopt setuid
    setuid32 setxattr setxattrat shmat shmctl shmdt shmget shutdown sigaltstack signalfd
    signalfd4 sigprocmask sigreturn splice stat stat64 statfs statfs64 statmount statx
    symlink symlinkat sync sync_file_range syncfs sysinfo tee tgkill time timer_create
    timer_delete timer_getoverrun timer_gettime timer_gettime64 timer_settime
    timer_settime64 timerfd_create timerfd_gettime timerfd_gettime64 timerfd_settime
    timerfd_settime64 times tkill truncate truncate64 ugetrlimit umask uname unlink unlinkat
    uretprobe utime utimensat utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid
    write writev
"""
ALLOWED: tuple[str, ...] = tuple(_ALLOWED_TEXT.split())
"""[JOB-SECCOMP.1] Docker's unconditional allow list minus ``DENIED`` and the socket calls."""

DENIED: tuple[str, ...] = (
    "io_uring_setup", "io_uring_enter", "io_uring_register", "userfaultfd", "bpf",
    "perf_event_open", "keyctl", "add_key", "request_key", "ptrace", "process_vm_readv",
    "process_vm_writev", "process_madvise", "kcmp", "pidfd_getfd", "name_to_handle_at",
    "open_by_handle_at", "memfd_secret", "fanotify_init", "lookup_dcookie", "quotactl",
    "quotactl_fd", "mount", "umount", "umount2", "move_mount", "open_tree", "fsopen",
    "fsmount", "fsconfig", "fspick", "mount_setattr", "pivot_root", "chroot", "unshare",
    "setns", "sethostname", "setdomainname", "syslog", "acct", "reboot", "kexec_load",
    "kexec_file_load", "init_module", "finit_module", "delete_module", "iopl", "ioperm",
    "swapon", "swapoff", "vhangup", "settimeofday", "stime", "clock_settime",
    "clock_settime64", "nfsservctl", "vm86", "vm86old", "socketcall",
)
"""[JOB-SECCOMP.3] Never allowed, whatever the engine's default says."""

ARCH_MAP: list[dict[str, Any]] = [
    {"architecture": "SCMP_ARCH_X86_64",
     "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
    {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
    {"architecture": "SCMP_ARCH_S390X", "subArchitectures": ["SCMP_ARCH_S390"]},
    {"architecture": "SCMP_ARCH_RISCV64", "subArchitectures": None},
]
PERSONAS = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)
"""``personality``: Docker's list (PER_LINUX, UNAME26, ..., query)."""
ARCH_RULES: list[tuple[tuple[str, ...], tuple[str, ...]]] = [
    (("sync_file_range2", "swapcontext"), ("ppc64le",)),
    (("arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint",
      "cacheflush", "set_tls"), ("arm", "arm64")),
    (("arch_prctl",), ("amd64", "x32")),
    (("modify_ldt",), ("amd64", "x32", "x86")),
    (("s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr"), ("s390", "s390x")),
    (("riscv_flush_icache",), ("riscv64",)),
]


def _eq(index: int, value: int) -> dict[str, Any]:
    return {"index": index, "value": value, "op": "SCMP_CMP_EQ"}


def build_profile() -> dict[str, Any]:
    """The profile as the engine takes it (Docker's JSON seccomp format)."""
    overlap = set(ALLOWED) & set(DENIED)
    if overlap:
        raise ValueError(f"syscalls both allowed and denied: {sorted(overlap)}")
    rules: list[dict[str, Any]] = [{"names": sorted(ALLOWED), "action": "SCMP_ACT_ALLOW"}]
    for family in ALLOWED_FAMILIES:
        rules.append({"names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": [_eq(0, family)],
                      "comment": f"[JOB-SECCOMP.2] family {family}"})
    rules.append({"names": ["socket"], "action": "SCMP_ACT_ALLOW",
                  "args": [_eq(0, AF_NETLINK), _eq(2, NETLINK_ROUTE)],
                  "comment": "[JOB-SECCOMP.2] route netlink only (getaddrinfo, if lists)"})
    rules.append({"names": ["socketpair"], "action": "SCMP_ACT_ALLOW",
                  "args": [_eq(0, AF_UNIX)], "comment": "[JOB-SECCOMP.2] AF_UNIX only"})
    for persona in PERSONAS:
        rules.append({"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                      "args": [_eq(0, persona)]})
    for names, arches in ARCH_RULES:
        rules.append({"names": list(names), "action": "SCMP_ACT_ALLOW",
                      "includes": {"arches": list(arches)}})
    rules.append({"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                  "args": [{"index": 0, "value": CLONE_NAMESPACE_FLAGS,
                            "op": "SCMP_CMP_MASKED_EQ"}],
                  "excludes": {"arches": ["s390", "s390x"]},
                  "comment": "[JOB-SECCOMP.4] no namespace flags"})
    rules.append({"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                  "args": [{"index": 1, "value": CLONE_NAMESPACE_FLAGS,
                            "op": "SCMP_CMP_MASKED_EQ"}],
                  "includes": {"arches": ["s390", "s390x"]},
                  "comment": "[JOB-SECCOMP.4] s390 orders clone's arguments differently"})
    rules.append({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS,
                  "comment": "[JOB-SECCOMP.4] libc falls back to clone"})
    rules.append({"names": list(DENIED), "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM,
                  "comment": "[JOB-SECCOMP.3] never needed by a training job"})
    return {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": EPERM,
            "archMap": ARCH_MAP, "syscalls": rules}


def render() -> str:
    """The profile file's exact text."""
    return json.dumps(build_profile(), indent=1, sort_keys=True) + "\n"


@cache
def profile_text() -> str:
    """The shipped profile, compact, as ``security_opt=["seccomp=<json>"]`` wants it."""
    return json.dumps(json.loads(PROFILE_FILE.read_text(encoding="utf-8")),
                      separators=(",", ":"), sort_keys=True)


def runsc_profile(profile: dict[str, Any]) -> dict[str, Any]:
    """[JOB-RUNTIME.10] The profile as runsc gets it: ``clone3`` allowed through to the
    Sentry instead of refused with ``ENOSYS``.

    gVisor (20221219 and 20240729 alike) enforces an OCI profile with ``--oci-seccomp`` but
    ignores its ``errnoRet``: every refused call gets ``EPERM``. glibc falls back from
    ``clone3`` to ``clone`` only on ``ENOSYS``, so under runsc no thread could start in the
    first process (measured: ``threading.Thread.start`` raised "can't start new thread",
    TenSEAL's context loader failed with "Operation not permitted"). Allowed, the call
    reaches the Sentry, which answers it itself, in user space: 20240729 implements
    ``clone3`` (threads start with it), 20221219 answered ``ENOSYS`` and libc fell back.
    Nothing reaches the host kernel. Every other rule is unchanged."""
    rules = []
    for rule in profile["syscalls"]:
        if rule["names"] == ["clone3"]:
            rule = {"names": ["clone3"], "action": "SCMP_ACT_ALLOW",
                    "comment": "[JOB-RUNTIME.10] the Sentry answers it itself"}
        rules.append(rule)
    return {**profile, "syscalls": rules}


@cache
def profile_text_for(runtime: str | None) -> str:
    """[JOB-SECCOMP.1] [JOB-RUNTIME.10] The profile text for a container under ``runtime``
    (None: the engine's default, i.e. runc)."""
    if runtime != RUNSC:
        return profile_text()
    return json.dumps(runsc_profile(json.loads(profile_text())), separators=(",", ":"),
                      sort_keys=True)


def main() -> int:
    PROFILE_FILE.write_text(render(), encoding="utf-8")
    print(f"wrote {PROFILE_FILE} ({len(ALLOWED)} syscalls allowed, {len(DENIED)} denied)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
