"""GPU jobs against the real Docker engine of this GPU-less machine [JOB-GPU.2], [JOB-GPU.3].

- The engine has no NVIDIA runtime: a GPU run is refused with ``GpuUnavailable``
  before anything exists (no container, no output folder, no staging copy).
- What the engine really receives for a GPU run: the same client, except that its
  ``docker info`` claims the runtime, so the runner goes on to create the container;
  the engine stores the device request, and every other host setting equals the same
  run's without GPUs. (Starting it then fails here: no GPU driver. The passthrough
  itself is ``test_gpu_passthrough.py``'s, on a machine with a GPU.)
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import docker
import pytest

from chain.jobspec import ResourceLimits as SpecLimits
from sandbox import gpu
from sandbox.limits import TrainParams, from_spec
from sandbox.policy import LABEL_JOB, LABEL_NODE
from sandbox.runner import SandboxRunner
from tests.sandbox.conftest import NODE_ID

GPU_JOB = "gpu-job"
"""The job label of this file's runs: how its checks tell its containers from others'."""

pytestmark = pytest.mark.docker

CPU = SpecLimits(memory_mb=256, cpu_millis=500, time_s=30, disk_mb=16)
GPU = SpecLimits(memory_mb=256, cpu_millis=500, time_s=30, disk_mb=16, gpu_count=2,
                 gpu_memory_mb=1024)


class _RecordingContainers:
    """``client.containers`` of the real engine; keeps what the engine stored per create."""

    def __init__(self, real: Any, created: list[dict[str, Any]]) -> None:
        self._real = real
        self._created = created

    def create(self, **kwargs: Any) -> Any:
        container = self._real.create(**kwargs)
        self._created.append({"labels": dict(kwargs.get("labels", {})),
                              "host_config": dict(container.attrs["HostConfig"])})
        return container

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class ClaimsNvidia:
    """The real engine's client whose ``info()`` also names the ``nvidia`` runtime."""

    def __init__(self, real: docker.DockerClient) -> None:
        self._real = real
        self.created: list[dict[str, Any]] = []
        self.containers = _RecordingContainers(real.containers, self.created)

    def info(self) -> dict[str, Any]:
        info = dict(self._real.info())
        info["Runtimes"] = {**(info.get("Runtimes") or {}), "nvidia": {"path": "nvidia"}}
        return info

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def _our_creates(client: docker.DockerClient, since: float) -> list[dict[str, Any]]:
    """Container create events of this test's job since ``since`` (epoch s): the session's
    runner label alone also matches a container the previous test made in that second."""
    events = client.events(since=since, until=time.time() + 0.5, decode=True,
                           filters={"type": "container", "event": "create",
                                    "label": f"{LABEL_NODE}={NODE_ID}"})
    return [e for e in events
            if e.get("Actor", {}).get("Attributes", {}).get(LABEL_JOB) == GPU_JOB]


def test_job_gpu_2_a_gpu_job_on_an_engine_without_nvidia_is_refused_leaving_nothing(
        runner: SandboxRunner, docker_client: docker.DockerClient, base_image: str,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """[JOB-GPU.2] This engine has no NVIDIA runtime: train with 2 GPUs raises
    ``GpuUnavailable`` (a ``SandboxError``) naming the request and the engine's runtimes,
    and nothing was made: no container created (engine events), no output folder, no
    staging folder. The same job without GPUs runs on the same engine."""
    info = docker_client.info()
    assert not gpu.has_nvidia_runtime(info), "this test needs an engine without the NVIDIA " \
                                             "runtime (the machine's, in CI)"
    staging = tmp_path / "tmp"
    staging.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(staging))
    out = tmp_path / "out"
    started = time.time() - 1
    with pytest.raises(gpu.GpuUnavailable) as caught:
        runner.train(base_image, TrainParams(7), from_spec(GPU), None, out, job_id=GPU_JOB,
                     argv=["true"])
    error = caught.value
    assert error.requested == 2 and "runc" in error.runtimes
    assert str(error).startswith("the job requests 2 GPU(s) but this Docker engine has no "
                                 "NVIDIA runtime (runtimes: ")
    assert "refused before creating a container" in str(error)
    assert not out.exists() and list(staging.iterdir()) == []
    assert _our_creates(docker_client, started) == []
    assert docker_client.containers.list(ignore_removed=True, all=True, filters={"label": [
        f"{LABEL_NODE}={NODE_ID}", f"{LABEL_JOB}={GPU_JOB}"]}) == []
    # the same job without GPUs: a container is created and the entry point runs
    ran = runner.run_entry(base_image, "train", ["true"], {}, from_spec(CPU), tmp_path / "cpu",
                           job_id=GPU_JOB)
    assert ran.ok, ran
    assert len(_our_creates(docker_client, started)) == 1


def test_job_gpu_2_the_engine_stores_the_device_request_and_every_other_setting_unchanged(
        docker_client: docker.DockerClient, base_image: str, tmp_path: Path) -> None:
    """[JOB-GPU.2] [JOB-SANDBOX.1] With the runtime claimed, a GPU train run's container as
    the engine stored it: one device request (count 2, capability gpu), and every other
    HostConfig setting -- network none, read-only root, cap drop, seccomp, memory, swap,
    CPU, pids, tmpfs, ulimits, log, runtime -- equal to the same run's without GPUs. The
    start then fails on this GPU-less engine and nothing is left behind."""
    client = ClaimsNvidia(docker_client)
    runner = SandboxRunner(client, node_id=NODE_ID)  # type: ignore[arg-type]
    with_gpus = runner.run_entry(base_image, "train", ["true"], {}, from_spec(GPU),
                                 tmp_path / "gpu", job_id=GPU_JOB)
    assert not with_gpus.ok and "could not select device driver" in with_gpus.detail, with_gpus
    gpu_create = client.created[0]
    assert gpu_create["labels"][LABEL_NODE] == NODE_ID
    assert gpu_create["host_config"]["DeviceRequests"] == [
        {"Driver": "", "Count": 2, "DeviceIDs": [], "Capabilities": [["gpu"]], "Options": {}}]
    client.created.clear()
    without = runner.run_entry(base_image, "train", ["true"], {}, from_spec(CPU),
                               tmp_path / "cpu", job_id=GPU_JOB)
    assert without.ok, without
    (cpu_create,) = client.created
    assert not cpu_create["host_config"].get("DeviceRequests")
    gpu_host = {k: v for k, v in gpu_create["host_config"].items() if k != "DeviceRequests"}
    cpu_host = {k: v for k, v in cpu_create["host_config"].items() if k != "DeviceRequests"}
    assert gpu_host == cpu_host
    assert cpu_host["NetworkMode"] == "none" and cpu_host["ReadonlyRootfs"] is True
    assert cpu_host["CapDrop"] == ["ALL"] and cpu_host["Memory"] == 256 * 1024 * 1024
    assert cpu_host["MemorySwap"] == cpu_host["Memory"] and cpu_host["PidsLimit"] == 128
    assert any(o.startswith("seccomp=") for o in cpu_host["SecurityOpt"])


def test_job_gpu_3_evaluation_of_a_gpu_job_gets_no_device_request(
        docker_client: docker.DockerClient, base_image: str, tmp_path: Path) -> None:
    """[JOB-GPU.3] ``evaluate`` with a GPU job's limits, runtime claimed: the container the
    engine stores has no device request, so evaluation (and every vote) runs on CPU and
    starts on this GPU-less engine."""
    client = ClaimsNvidia(docker_client)
    runner = SandboxRunner(client, node_id=NODE_ID)  # type: ignore[arg-type]
    model = tmp_path / "model.pt"
    model.write_bytes(b"not a model")
    script = ("import json, os; json.dump({'loss': 0.25}, "
              "open(os.environ['LC_OUTPUT'] + '/metrics.json', 'w'))")
    result = runner.evaluate(base_image, model, from_spec(GPU), job_id=GPU_JOB,
                             argv=["python3", "-c", script])
    assert result.ok and result.loss == 0.25, result
    (create,) = client.created
    assert not create["host_config"].get("DeviceRequests")
