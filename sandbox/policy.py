"""The hardening every job container gets [JOB-SANDBOX.1].

One function builds the ``containers.create`` arguments, so the policy is
in one place, has its own test, and no caller can forget a piece of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from docker.types import DeviceRequest, DriverConfig, LogConfig, Mount, Ulimit

from sandbox.eval_env import HOSTNAME
from sandbox.limits import ResourceLimits
from sandbox.runtime import RUNSC, RUNSC_EXTRA_MEMORY, RUNSC_EXTRA_PIDS
from sandbox.seccomp import profile_text_for

JOB_USER = "65534:65534"
"""nobody:nogroup. Never root, even inside the container's namespace."""
HOLD_COMMAND = ("sleep", "infinity")
"""PID 1 of a job container: it only holds the container (and its tmpfs) open
while the runner execs the entry point and then copies /output out."""
HOLD_USER = "65533:65533"
"""[JOB-SANDBOX.5] PID 1's user: not the job's, so the job cannot signal it. Under runc the
kernel ignores a signal to a namespace's init that has no handler; gVisor delivered it,
so a job that killed PID 1 under runsc stopped its own container and lost its output
(``killed``, where runc said ``ok``). A different uid makes kill(1) EPERM under both."""
INPUT_MOUNT = "/input"
DATA_MOUNT = "/data"
"""[JOB-DATA.3] Each data role ``r`` of a job is mounted read-only at ``/data/r``."""
MODEL_MOUNT = "/model"
OUTPUT_DIR = "/output"
SCRATCH_DIR = "/tmp"
TMPFS_FLAGS = "rw,noexec,nosuid,nodev"
OWNED_BY_JOB = "mode=0700,uid=65534,gid=65534"
"""/output and /checkpoint belong to the job's user alone."""
DOCKER_LOG_LIMIT = {"max-size": "64k", "max-file": "1"}
"""PID 1 prints nothing; this only bounds what the engine could ever keep on disk."""

GPU_CAPABILITIES = [["gpu"]]
"""[JOB-GPU.2] What ``docker run --gpus N`` asks the engine for: N devices able to do 'gpu'."""

LABEL_MANAGED = "learningchain.managed"
LABEL_JOB = "learningchain.job"
LABEL_NODE = "learningchain.node"
LABEL_ENTRY = "learningchain.entry"


def labels_for(job: str, node: str, entry: str) -> dict[str, str]:
    """Labels that let a node find its own leftover containers after a crash."""
    return {LABEL_MANAGED: "1", LABEL_JOB: job, LABEL_NODE: node, LABEL_ENTRY: entry}


def data_binds(data: Mapping[str, Path]) -> dict[str, Path]:
    """[JOB-DATA.3] ``/data/<role>`` -> the role's unpacked folder; a role is a plain name."""
    from chain.jobspec import data_role

    binds = {}
    for role, folder in data.items():
        data_role(role)  # never a path: no '/', no '..'
        if folder.is_symlink() or not folder.is_dir():
            raise ValueError(f"data {role!r}: {folder} is not a folder")
        binds[f"{DATA_MOUNT}/{role}"] = folder
    return binds


def tmpfs_volume(target: str, size: int, options: str) -> Mount:
    """[JOB-OUT.6] A size-limited tmpfs at ``target``, made as an anonymous volume of the
    engine's ``local`` driver rather than a ``--tmpfs``: the engine's archive API reads
    a volume (it cannot see into a ``--tmpfs``), so the host copies what the job wrote
    without running any program of the job's image. ``no_copy``: nothing of the image
    at ``target`` is copied in. The volume goes with its container (``remove(v=True)``).
    The job sees ``tmpfs tmpfs`` in its mountinfo, as with ``--tmpfs``: no host path.
    """
    return Mount(target=target, source=None, type="volume", no_copy=True,
                 driver_config=DriverConfig("local", {
                     "type": "tmpfs", "device": "tmpfs",
                     "o": f"{TMPFS_FLAGS},size={size},{options}"}))


def container_kwargs(
    image: str,
    limits: ResourceLimits,
    labels: Mapping[str, str],
    read_only_binds: Mapping[str, Path],
    *,
    name: str | None = None,
    runtime: str | None = None,
) -> dict[str, Any]:
    """Arguments for ``client.containers.create`` of one hardened job container.

    ``read_only_binds`` maps container paths to host folders; they are the
    only host paths the container sees, and it cannot write to any of them.
    Output goes to a size-limited tmpfs volume that the runner copies out through the
    engine's archive API [JOB-OUT.6], so no host disk is writable from inside. The
    hostname is fixed [EVAL-ENV.1]; the
    container ``name`` is incidental [EVAL-ENV.8]. The seccomp profile is the
    project's own [JOB-SECCOMP.*], never the engine's default. A run with GPUs
    gets one device request more and nothing else changes [JOB-GPU.2].
    ``runtime`` (``runsc`` or ``runc``; None: the engine's default) is the one place the
    node's runtime reaches a container [JOB-RUNTIME.1]; every other argument is the same
    under both [JOB-RUNTIME.3].
    """
    mounts = [
        Mount(target=target, source=str(source), type="bind", read_only=True)
        for target, source in sorted(read_only_binds.items())
    ] + [
        tmpfs_volume(SCRATCH_DIR, limits.tmp_bytes, "mode=1777"),
        tmpfs_volume(OUTPUT_DIR, limits.output_bytes, OWNED_BY_JOB),
    ]
    return {
        "image": image,
        "command": list(HOLD_COMMAND),
        "user": HOLD_USER,  # the entry point is exec'd as JOB_USER [JOB-SANDBOX.5]
        "working_dir": SCRATCH_DIR,
        "hostname": HOSTNAME,
        **({"name": name} if name else {}),
        "detach": True,
        "labels": dict(labels),
        # Isolation
        "network_mode": "none",
        "read_only": True,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges:true",
                         f"seccomp={profile_text_for(effective_runtime(limits, runtime))}"],
        "ipc_mode": "private",
        "mounts": mounts,
        "shm_size": 16 * 1024 * 1024,
        # Resources
        "mem_limit": limits.memory_bytes,
        "memswap_limit": limits.memory_bytes,
        "nano_cpus": limits.nano_cpus,
        "pids_limit": limits.pids,
        "ulimits": [Ulimit(name="core", soft=0, hard=0),
                    Ulimit(name="nofile", soft=1024, hard=1024)],
        "log_config": LogConfig(type=LogConfig.types.JSON, config=DOCKER_LOG_LIMIT),
        **gpu_kwargs(limits),
        **runtime_kwargs(limits, runtime),
    }


def effective_runtime(limits: ResourceLimits, runtime: str | None) -> str | None:
    """The runtime the container really gets: the engine's default (None) for a run with
    GPUs [JOB-RUNTIME.5]."""
    return None if limits.gpu_count else runtime


def runtime_kwargs(limits: ResourceLimits, runtime: str | None) -> dict[str, Any]:
    """[JOB-RUNTIME.1] The container's OCI runtime; a run with GPUs keeps the engine's
    default [JOB-RUNTIME.5] (this gVisor cannot pass a GPU through). Under runsc the
    cgroup also holds gVisor's own kernel, so its host threads and memory are added to the
    job's [JOB-RUNTIME.3]."""
    runtime = effective_runtime(limits, runtime)
    if runtime is None:
        return {}
    if runtime != RUNSC:
        return {"runtime": runtime}
    memory = limits.memory_bytes + RUNSC_EXTRA_MEMORY
    return {"runtime": runtime, "pids_limit": limits.pids + RUNSC_EXTRA_PIDS,
            "mem_limit": memory, "memswap_limit": memory}


def gpu_kwargs(limits: ResourceLimits) -> dict[str, Any]:
    """[JOB-GPU.2] The device request of a run with GPUs; nothing for a run without."""
    if not limits.gpu_count:
        return {}
    return {"device_requests": [DeviceRequest(count=limits.gpu_count,
                                              capabilities=GPU_CAPABILITIES)]}
