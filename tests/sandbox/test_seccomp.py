"""The project's own seccomp profile [JOB-SECCOMP.*] (issue 13 §6).

The shipped file is what the generator makes; inside a real job container
each denied system call and socket family is refused while what jobs need
works (the template job still trains and evaluates: ``test_template.py``).
"""

from __future__ import annotations

import errno
import json
from pathlib import Path

import docker
import pytest

from sandbox import policy
from sandbox.limits import MIB, ResourceLimits
from sandbox.results import RunResult
from sandbox.runner import SandboxRunner
from sandbox.runtime import RUNSC, resolve
from sandbox.seccomp import (
    ALLOWED,
    DENIED,
    PROFILE_FILE,
    build_profile,
    profile_text,
    profile_text_for,
    render,
    runsc_profile,
)
from tests.sandbox.runtimes import RUNTIMES

TINY = ResourceLimits(memory_bytes=256 * MIB, nano_cpus=1_000_000_000, pids=32,
                      wall_time_s=30.0, tmp_bytes=4 * MIB, output_bytes=4 * MIB,
                      model_bytes=1 * MIB, log_bytes=64 * 1024)
DENIED_CALLS = ("io_uring_setup", "io_uring_enter", "io_uring_register", "userfaultfd", "bpf",
                "perf_event_open", "keyctl", "add_key", "request_key", "ptrace",
                "process_vm_readv", "kcmp", "pidfd_getfd", "memfd_secret", "name_to_handle_at",
                "unshare_user", "unshare_cgroup", "syslog_read_all")
# socketcall exists on 32-bit x86 only: denied, not probed
DENIED_FAMILIES = ("AF_VSOCK", "AF_PACKET", "AF_ALG", "AF_KEY", "AF_NETLINK_AUDIT",
                   "AF_NETLINK_UEVENT", "AF_BLUETOOTH", "AF_XDP")
ALLOWED_PROBES = ("getpid", "memfd_create", "AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK_ROUTE",
                  "socketpair_unix")
SENTRY_SERVED_BEFORE = ("ptrace", "process_vm_readv", "unshare_user", "unshare_cgroup",
                        "syslog_read_all", "AF_PACKET", "AF_NETLINK_UEVENT")
"""Issue 47 §3: what the entry point got *served* under runsc while a ``docker exec`` ran
with no filter (the Sentry answered 0); the launcher's filter refuses each of them now."""


def test_job_seccomp_shipped_file_is_the_generated_profile() -> None:
    """[JOB-SECCOMP.1] the file is the generator's, default EPERM; [JOB-SECCOMP.2] socket only
    for AF_UNIX/INET/INET6/NETLINK; [JOB-SECCOMP.3] no denied call allowed; [JOB-SECCOMP.4]."""
    assert PROFILE_FILE.read_text(encoding="utf-8") == render()
    profile = build_profile()
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO" and profile["defaultErrnoRet"] == 1
    assert not set(ALLOWED) & set(DENIED)
    allowed = {name for rule in profile["syscalls"] if rule["action"] == "SCMP_ACT_ALLOW"
               for name in rule["names"]}
    assert not allowed & set(DENIED)
    assert not any("caps" in rule.get(key, {}) for rule in profile["syscalls"]
                   for key in ("includes", "excludes"))  # [JOB-SECCOMP.4]
    sockets = [rule for rule in profile["syscalls"] if rule["names"] == ["socket"]]
    assert all(rule["args"][0]["op"] == "SCMP_CMP_EQ" for rule in sockets)
    assert sorted(rule["args"][0]["value"] for rule in sockets) == [1, 2, 10, 16]


@pytest.fixture
def runner(runtime_runner: SandboxRunner) -> SandboxRunner:
    """[JOB-RUNTIME.6] The probes under runc and under runsc."""
    return runtime_runner


@pytest.mark.docker
def test_job_seccomp_denied_calls_and_families_are_refused_inside_a_job(
        runner: SandboxRunner, hostile_image: str, tmp_path: Path) -> None:
    """Before: the engine's default (Docker 20.10 here) allowed AF_VSOCK and io_uring; before
    issue 47 §3 the entry point under runsc ran with no filter (``SENTRY_SERVED_BEFORE`` got 0).

    [JOB-SECCOMP.1-4] from inside a real job container: denied calls [.3] and socket
    families [.2] fail with EPERM, clone3 with ENOSYS [.4], what jobs need works; under
    both runtimes, since the launcher installs the profile in the entry point itself
    [JOB-SECCOMP.5] (gVisor honours the filter's errno, so clone3 gets ENOSYS there too)."""
    result: RunResult = runner.run_entry(hostile_image, "train",
                                         ["python3", "/job/hostile/seccomp_probe.py"], {}, TINY,
                                         tmp_path / "out", job_id="seccomp")
    assert result.ok, result
    seen = json.loads(result.logs.decode().strip().splitlines()[-1])
    assert {name: seen[name] for name in ALLOWED_PROBES} == dict.fromkeys(ALLOWED_PROBES, 0)
    assert seen["clone3"] == errno.ENOSYS  # libc falls back to clone [JOB-SECCOMP.4]
    assert {name: seen[name] for name in SENTRY_SERVED_BEFORE} == \
        dict.fromkeys(SENTRY_SERVED_BEFORE, errno.EPERM)
    refused = {name: errno.errorcode.get(seen[name], seen[name])
               for name in (*DENIED_CALLS, *DENIED_FAMILIES) if seen[name] != errno.EPERM}
    assert not refused, f"not refused by the profile (errno shown): {refused}"


def _seccomp_opt(kwargs: dict[str, object]) -> dict[str, object]:
    opts = kwargs["security_opt"]
    assert isinstance(opts, list)
    return json.loads(next(o for o in opts if o.startswith("seccomp="))[len("seccomp="):])


def test_job_runtime_10_runsc_gets_the_profile_with_clone3_passed_to_the_sentry() -> None:
    """[JOB-RUNTIME.10] Under runsc the profile differs in one rule: clone3 is allowed (the
    Sentry answers it itself) instead of refused with an errno runsc would turn into
    EPERM. runc, the engine's default and a run with GPUs get the shipped profile."""
    shipped = build_profile()
    under_runsc = json.loads(profile_text_for(RUNSC))
    assert under_runsc == runsc_profile(shipped)
    changed = [(a, b) for a, b in zip(shipped["syscalls"], under_runsc["syscalls"], strict=True)
               if a != b]
    assert changed == [({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38,
                         "comment": "[JOB-SECCOMP.4] libc falls back to clone"},
                        {"names": ["clone3"], "action": "SCMP_ACT_ALLOW",
                         "comment": "[JOB-RUNTIME.10] the Sentry answers it itself"})]
    assert {k: v for k, v in under_runsc.items() if k != "syscalls"} == \
        {k: v for k, v in shipped.items() if k != "syscalls"}
    assert profile_text_for("runc") == profile_text_for(None) == profile_text()
    cpu = ResourceLimits()
    assert _seccomp_opt(policy.container_kwargs("img", cpu, {}, {}, runtime=RUNSC)) \
        == under_runsc
    assert _seccomp_opt(policy.container_kwargs("img", cpu, {}, {}, runtime="runc")) == shipped
    gpu = ResourceLimits(gpu_count=1)
    assert _seccomp_opt(policy.container_kwargs("img", gpu, {}, {}, runtime=RUNSC)) == shipped


THREAD_PROBE = (
    "import ctypes, json, threading\n"
    "t = threading.Thread(target=lambda: None)\n"
    "try:\n    t.start(); t.join(); started = True\n"
    "except RuntimeError:\n    started = False\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "libc.syscall(435, 0, 0)\n"
    "print(json.dumps({'thread': started, 'clone3': ctypes.get_errno()}))\n")


@pytest.mark.docker
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_job_runtime_10_a_first_process_under_the_profile_starts_threads(
        runtime: str, docker_client: docker.DockerClient, base_image: str) -> None:
    """[JOB-RUNTIME.10] [JOB-SECCOMP.4] The container's first process (the warm prediction
    executor is one: it is not a ``docker exec``, so runsc filters it too) starts a thread
    under each runtime; clone3 with no arguments gets ENOSYS from the profile under runc and
    EINVAL from the Sentry under runsc (which implements clone3, allowed through to it).
    Before: under runsc clone3 got EPERM and no thread started, so TenSEAL could not load a
    context (every CKKS request was answered ``not_rows``)."""
    kwargs = policy.container_kwargs(base_image, TINY, {"lc.test": "thread-probe"}, {},
                                     runtime=resolve(docker_client, runtime).name)
    kwargs["command"] = ["python3", "-c", THREAD_PROBE]
    container = docker_client.containers.create(**kwargs)
    try:
        container.start()
        status = container.wait(timeout=120)
        logs = container.logs().decode()
    finally:
        container.remove(force=True)
    assert status["StatusCode"] == 0, logs
    clone3 = errno.EINVAL if runtime == RUNSC else errno.ENOSYS
    assert json.loads(logs.strip().splitlines()[-1]) == {"thread": True, "clone3": clone3}


def test_job_seccomp_5_the_launchers_program_is_the_profile_for_this_architecture() -> None:
    """[JOB-SECCOMP.5] The profile compiles to one BPF program within the kernel's bound;
    rules for other architectures are left out and change nothing; the launcher folder holds
    the static launcher and exactly that program."""
    from sandbox import launcher
    from sandbox.seccomp_bpf import MAX_INSTRUCTIONS, applies_here, compile_profile

    program = compile_profile(build_profile())
    assert 0 < len(program) // 8 <= MAX_INSTRUCTIONS and len(program) % 8 == 0
    assert compile_profile(build_profile()) == program  # deterministic
    assert applies_here({"includes": {"arches": ["amd64", "x32"]}}, "amd64")
    assert not applies_here({"includes": {"arches": ["s390x"]}}, "amd64")
    assert not applies_here({"excludes": {"arches": ["amd64"]}}, "amd64")
    folder = launcher.folder()
    assert (folder / launcher.PROGRAM).read_bytes() == program
    assert (folder / launcher.BINARY).stat().st_mode & 0o111
    assert launcher.argv(["python3", "x.py"])[2:] == ["python3", "x.py"]
