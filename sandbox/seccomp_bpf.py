"""The job profile [JOB-SECCOMP.*] compiled to a classic BPF program [JOB-SECCOMP.5].

The engine hands the profile to the runtime, which installs it on the container's first
process. Under runc every ``docker exec`` inherits it; under gVisor (runsc 20240729) an
exec'd process gets no filter at all (issue 47 §3: ``ptrace``, ``keyctl``,
``unshare -Ur`` succeeded in the entry point). So the entry point is started by the
launcher (``sandbox/launch.c``), which installs this program with ``seccomp(2)`` and then
``execve``s the job: every process of the job runs under the profile under every runtime.

The program is built the way runc builds it, by libseccomp (the same library, through
ctypes; Debian's ``apt`` depends on ``libseccomp2``, so every worker has it), for the
machine's native architecture only: a call made through another ABI (32-bit ``int 0x80``,
x32) kills the process instead of being looked up in another table. Rules are Docker's
JSON format as ``seccomp.build_profile`` makes them; ``includes``/``excludes`` by
architecture are honoured, a name the architecture lacks is skipped (as runc does).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import os
import platform
import tempfile
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

from sandbox.errors import SandboxError

SCMP_ACT_KILL_PROCESS = 0x80000000
SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_ACT_ERRNO_BASE = 0x00050000
SCMP_FLTATR_ACT_BADARCH = 2
SCMP_FLTATR_CTL_NNP = 3
OPS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4,
       "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}
"""libseccomp's ``enum scmp_compare``, by the names Docker's profile uses."""
DOCKER_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "s390x": "s390x", "riscv64": "riscv64"}
"""``platform.machine()`` to the architecture names of a profile's ``includes``."""
MAX_INSTRUCTIONS = 4096
"""BPF_MAXINSNS: the kernel's (and gVisor's) bound on one filter program."""


class SeccompCompileError(SandboxError):
    """The profile could not be compiled on this machine (libseccomp missing or refusing)."""


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


@cache
def _library() -> ctypes.CDLL:
    name = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
    try:
        lib = ctypes.CDLL(name, use_errno=True)
    except OSError as e:
        raise SeccompCompileError(f"libseccomp is not installed ({name}: {e}); "
                                  "`apt-get install libseccomp2` [JOB-SECCOMP.5]") from e
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                           ctypes.c_uint, ctypes.POINTER(_ArgCmp)]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    return lib


def action_code(rule: Mapping[str, Any], default_errno: int) -> int:
    """A rule's (or the default's) action as libseccomp's 32-bit code."""
    action = rule.get("action") or rule.get("defaultAction")
    if action == "SCMP_ACT_ALLOW":
        return SCMP_ACT_ALLOW
    if action == "SCMP_ACT_ERRNO":
        errno = rule.get("errnoRet", rule.get("defaultErrnoRet", default_errno))
        return SCMP_ACT_ERRNO_BASE | (int(errno) & 0xFFFF)
    raise SeccompCompileError(f"action {action!r} is not one the job profile uses")


def applies_here(rule: Mapping[str, Any], arch: str) -> bool:
    """Docker's ``includes``/``excludes`` by architecture, for ``arch`` (Docker's name)."""
    includes = (rule.get("includes") or {}).get("arches")
    excludes = (rule.get("excludes") or {}).get("arches")
    if includes and arch not in includes:
        return False
    return not (excludes and arch in excludes)


def compile_profile(profile: Mapping[str, Any], machine: str | None = None) -> bytes:
    """[JOB-SECCOMP.5] ``profile`` (Docker's JSON format) as a BPF program for this machine's
    native architecture: ``struct sock_filter`` records, 8 bytes each."""
    lib = _library()
    arch = DOCKER_ARCH.get(machine or platform.machine(), machine or platform.machine())
    default = action_code(profile, 1)
    ctx = lib.seccomp_init(default)
    if not ctx:
        raise SeccompCompileError("seccomp_init failed")
    try:
        _set(lib, ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS)
        _set(lib, ctx, SCMP_FLTATR_CTL_NNP, 0)  # the launcher sets no_new_privs itself
        for rule in profile["syscalls"]:
            if applies_here(rule, arch):
                _add_rule(lib, ctx, rule, default)
        return _export(lib, ctx)
    finally:
        lib.seccomp_release(ctx)


def _set(lib: ctypes.CDLL, ctx: int, attr: int, value: int) -> None:
    rc = lib.seccomp_attr_set(ctx, attr, value)
    if rc < 0:
        raise SeccompCompileError(f"seccomp_attr_set({attr}, {value:#x}) failed: {rc}")


def _add_rule(lib: ctypes.CDLL, ctx: int, rule: Mapping[str, Any], default: int) -> None:
    action = action_code(rule, 1)
    if action == default and not rule.get("args"):
        return  # the default already says so
    conditions: Sequence[Mapping[str, Any]] = rule.get("args") or []
    array = (_ArgCmp * max(1, len(conditions)))()
    for i, cond in enumerate(conditions):
        op = OPS.get(cond["op"])
        if op is None:
            raise SeccompCompileError(f"comparison {cond['op']!r} is not known")
        array[i] = _ArgCmp(int(cond["index"]), op, int(cond["value"]) & (2**64 - 1),
                           int(cond.get("valueTwo", 0)) & (2**64 - 1))
    for name in rule["names"]:
        number = lib.seccomp_syscall_resolve_name(name.encode())
        if number < 0:
            continue  # not a call of this architecture (as runc skips it)
        rc = lib.seccomp_rule_add_array(ctx, action, number, len(conditions), array)
        if rc < 0:
            raise SeccompCompileError(f"rule for {name} ({rule.get('comment', '')}) refused "
                                      f"by libseccomp: {os.strerror(-rc)}")


def _export(lib: ctypes.CDLL, ctx: int) -> bytes:
    with tempfile.TemporaryFile() as out:
        rc = lib.seccomp_export_bpf(ctx, out.fileno())
        if rc < 0:
            raise SeccompCompileError(f"seccomp_export_bpf failed: {os.strerror(-rc)}")
        out.seek(0)
        program = out.read()
    if not program or len(program) % 8 or len(program) // 8 > MAX_INSTRUCTIONS:
        raise SeccompCompileError(f"libseccomp made a program of {len(program)} bytes")
    return program


def digest(program: bytes) -> str:
    """A short name for a program, for cache folders and logs."""
    return hashlib.sha256(program).hexdigest()[:16]
