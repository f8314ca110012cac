"""The GPUs a worker offers [WORK-GPU.1]: its config, checked against the host and engine.

The operator says what the worker offers (``[worker] gpus``, ``gpu_memory_mb``) or
asks for detection (``detect_gpus``: ``nvidia-smi``). Either way nothing is offered
unless the Docker engine has the NVIDIA runtime, because the runner could not pass
a GPU through [JOB-GPU.2]. The result is the policy the worker goes by: a
``WorkerPolicy`` whose ``gpus`` / ``gpu_memory_mb`` are what it can really give, so the
pure selection in ``client.worker.policy`` needs no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from client.node.config import WorkerPolicy
from sandbox import gpu


@dataclass(frozen=True, slots=True)
class GpuOffer:
    """What the worker offers, and a sentence saying how that was decided (logged once)."""

    count: int
    memory_mb: int
    detail: str


def resolve_offer(policy: WorkerPolicy, runtime: bool,
                  host: gpu.HostGpus | None) -> GpuOffer:
    """[WORK-GPU.1] The offer from the config, the detected GPUs (when asked) and whether
    the engine has the NVIDIA runtime. Pure: the probes are ``probe_offer``'s."""
    count, memory, source = policy.gpus, policy.gpu_memory_mb, "config"
    if host is not None:  # detection asked for: what the host holds is what is offered
        count = host.count
        memory = min(host.memory_mb) if host.memory_mb else 0
        source = f"detected ({host.detail})"
    if count == 0:
        return GpuOffer(0, 0, f"no GPU offered ({source})")
    if not runtime:
        return GpuOffer(0, 0, f"no GPU offered: {count} GPU(s) of {memory} MiB from {source}, "
                              f"but the Docker engine has no NVIDIA runtime [JOB-GPU.2]")
    return GpuOffer(count, memory, f"{count} GPU(s) of {memory} MiB each offered ({source})")


def probe_offer(policy: WorkerPolicy, client: Any) -> GpuOffer:
    """Ask the engine (``docker info``) and, if the config says so, the host (nvidia-smi)."""
    if not policy.gpus and not policy.detect_gpus:
        return GpuOffer(0, 0, "no GPU offered (config gpus = 0)")
    host = gpu.detect_host_gpus() if policy.detect_gpus else None
    return resolve_offer(policy, gpu.has_nvidia_runtime(client.info()), host)


def effective_policy(policy: WorkerPolicy, offer: GpuOffer) -> WorkerPolicy:
    """The policy with the GPUs really offered: what every job is checked against."""
    return replace(policy, gpus=offer.count, gpu_memory_mb=offer.memory_mb, detect_gpus=False)
