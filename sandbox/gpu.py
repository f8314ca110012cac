"""GPUs: what the host and its engine can give a job [JOB-GPU.2], [WORK-GPU.1].

Two questions, kept apart from the runner so each is answered without Docker
in a unit test: does the engine have the NVIDIA runtime (from ``docker info``),
and which GPUs does the host hold (``nvidia-smi``, when installed). The answer
on a machine without a GPU is "none", never an error: a worker there simply
offers no GPU.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sandbox.errors import SandboxError

NVIDIA_RUNTIME = "nvidia"
"""The runtime name the NVIDIA container toolkit registers with the engine."""
NVIDIA_SMI = "nvidia-smi"
SMI_QUERY = ("--query-gpu=memory.total", "--format=csv,noheader,nounits")
"""One line per GPU: its total memory in MiB."""
SMI_TIMEOUT_S = 20.0


class GpuUnavailable(SandboxError):
    """[JOB-GPU.2] A run asks for GPUs the engine cannot pass through; nothing was created.

    Carries what was asked and what the engine offers, so the message alone says
    which machine or job to change.
    """

    def __init__(self, requested: int, runtimes: tuple[str, ...]) -> None:
        shown = ", ".join(runtimes) or "none"
        super().__init__(f"the job requests {requested} GPU(s) but this Docker engine has no "
                         f"NVIDIA runtime (runtimes: {shown}) [JOB-GPU.2]; refused before "
                         f"creating a container")
        self.requested = requested
        self.runtimes = runtimes


@dataclass(frozen=True, slots=True)
class HostGpus:
    """GPUs found on the host: each one's total memory in MiB."""

    memory_mb: tuple[int, ...] = ()
    detail: str = ""
    """How they were found, or why none were (no ``nvidia-smi``, it failed...)."""

    @property
    def count(self) -> int:
        return len(self.memory_mb)


def engine_runtimes(info: Mapping[str, Any]) -> tuple[str, ...]:
    """The runtimes a ``docker info`` answer names, sorted."""
    runtimes = info.get("Runtimes") or {}
    return tuple(sorted(str(name) for name in runtimes)) if isinstance(runtimes, dict) else ()


def has_nvidia_runtime(info: Mapping[str, Any]) -> bool:
    """[JOB-GPU.2] The engine can pass GPUs through: it names the ``nvidia`` runtime (the
    NVIDIA container toolkit registered it, as a runtime or as the default one)."""
    return NVIDIA_RUNTIME in engine_runtimes(info) or info.get("DefaultRuntime") == NVIDIA_RUNTIME


def parse_smi(text: str) -> tuple[int, ...]:
    """Each GPU's memory (MiB) from ``nvidia-smi --query-gpu=memory.total`` output.

    A line that is not a whole number is an error naming it: a half-read answer must
    not be offered as fewer or smaller GPUs than the host has, nor as more.
    """
    sizes = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if not line.isdigit():
            raise ValueError(f"nvidia-smi: not a memory size in MiB: {line[:80]!r}")
        sizes.append(int(line))
    return tuple(sizes)


def detect_host_gpus(smi: str = NVIDIA_SMI) -> HostGpus:
    """[WORK-GPU.1] The host's GPUs by ``nvidia-smi``; none when it is absent or fails."""
    path = shutil.which(smi)
    if path is None:
        return HostGpus((), f"no {smi} on this host: no GPU offered")
    try:
        done = subprocess.run([path, *SMI_QUERY], capture_output=True, text=True,
                              timeout=SMI_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return HostGpus((), f"{smi} failed: {e}")
    if done.returncode != 0:
        return HostGpus((), f"{smi} exited {done.returncode}: {done.stderr.strip()[:200]}")
    try:
        sizes = parse_smi(done.stdout)
    except ValueError as e:
        return HostGpus((), str(e))
    return HostGpus(sizes, f"{smi}: {len(sizes)} GPU(s), MiB each: {list(sizes)}")
