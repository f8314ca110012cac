"""GPU passthrough on a machine that has one [JOB-GPU.2]: ``make gpu-test``.

Marked ``gpu``: the default run (``pyproject.toml`` addopts ``-m "not gpu"``, so
``make test`` and CI) deselects it, since this machine has no GPU; ``make gpu-test``
selects it on a host with an NVIDIA GPU, its driver and the NVIDIA container toolkit
registered with Docker (``nvidia-ctk runtime configure --runtime=docker``). There it
must pass: it fails, never skips, when the GPU or the runtime is missing.
"""

from __future__ import annotations

from pathlib import Path

import docker
import pytest

from chain.jobspec import ResourceLimits as SpecLimits
from sandbox import gpu
from sandbox.limits import from_spec
from sandbox.runner import SandboxRunner

pytestmark = [pytest.mark.gpu, pytest.mark.docker]


def test_job_gpu_2_the_sandbox_sees_the_gpu_with_its_limits_unchanged(
        runner: SandboxRunner, docker_client: docker.DockerClient, base_image: str,
        tmp_path: Path) -> None:
    """[JOB-GPU.2] A 1-GPU run of the hardened sandbox lists a GPU with ``nvidia-smi -L``
    (injected by the NVIDIA runtime) and still has no network and a read-only root."""
    assert gpu.has_nvidia_runtime(docker_client.info()), "the engine has no NVIDIA runtime"
    host = gpu.detect_host_gpus()
    assert host.count >= 1, host.detail
    limits = from_spec(SpecLimits(memory_mb=512, cpu_millis=1000, time_s=60, disk_mb=16,
                                  gpu_count=1, gpu_memory_mb=min(host.memory_mb)))
    listed = runner.run_entry(base_image, "train", ["nvidia-smi", "-L"], {}, limits,
                              tmp_path / "smi", job_id="gpu-passthrough")
    assert listed.ok, listed
    assert listed.logs.count(b"GPU 0:") == 1, listed.logs
    probe = ("import socket, os\n"
             "try:\n    socket.create_connection(('1.1.1.1', 53), timeout=2); print('net')\n"
             "except OSError:\n    print('no-net')\n"
             "try:\n    open('/etc/x', 'w'); print('rw')\n"
             "except OSError:\n    print('ro')\n")
    isolated = runner.run_entry(base_image, "train", ["python3", "-c", probe], {}, limits,
                                tmp_path / "probe", job_id="gpu-passthrough")
    assert isolated.ok and isolated.logs.split() == [b"no-net", b"ro"], isolated
