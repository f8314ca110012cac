"""GPUs without a GPU: job.toml, the container request, engine and host probes.

Pure checks (no engine): what ``job.toml`` may say about GPUs [JOB-FILE.5], the
create arguments the runner builds for a GPU job compared with the same job
without GPUs [JOB-GPU.2], that evaluation drops the GPUs [JOB-GPU.3], and how
``docker info`` and ``nvidia-smi`` answers are read [WORK-GPU.1]. What the real
engine receives is ``test_gpu_engine.py``'s.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest
from docker.types import DeviceRequest

from chain.jobspec import ResourceLimits as SpecLimits
from sandbox import gpu
from sandbox.errors import JobDirError
from sandbox.image_check import ImageSizes
from sandbox.job_file import JOB_FILE, load_job_file, parse_job
from sandbox.job_template import init_job
from sandbox.limits import MIB, from_spec
from sandbox.policy import container_kwargs, labels_for

JOB: dict[str, Any] = {
    "kind": "train/v1", "name": "gpu", "bounty": 10, "expiry_s": 600, "loss_tolerance": 0.0,
    "entry_points": {"train": ["/job/train"], "evaluate": ["/job/evaluate"]},
    "limits": {"memory_mb": 2048, "cpu_millis": 2000, "time_s": 600, "disk_mb": 256},
    "search_space": []}


def job_with(**gpus: object) -> dict[str, Any]:
    return {**JOB, "limits": {**JOB["limits"], **gpus}}


# -- job.toml [JOB-FILE.5] ------------------------------------------------------------------


def test_job_file_5_gpu_fields_reach_the_chain_and_the_container_limits() -> None:
    """[JOB-FILE.5] [JOB-GPU.1] ``gpu_count`` / ``gpu_memory_mb`` in ``[limits]`` become the
    9-element chain limits and the container's GPU request; left out, 7 elements."""
    job = parse_job(job_with(gpu_count=2, gpu_memory_mb=8192))
    assert (job.declared.gpu_count, job.declared.gpu_memory_mb) == (2, 8192)
    assert (job.limits.gpu_count, job.limits.gpu_memory_mb) == (2, 8192)
    spec = job.spec_limits(ImageSizes(MIB, 10 * MIB))
    assert spec.to_wire() == [2048, 2000, 600, 256, 256, 1, 10, 2, 8192]
    assert from_spec(spec).gpu_count == 2 and from_spec(spec).gpu_memory_mb == 8192
    plain = parse_job(JOB).spec_limits(ImageSizes(MIB, 10 * MIB))
    assert plain.to_wire() == [2048, 2000, 600, 256, 256, 1, 10]
    assert parse_job(job_with(gpu_count=0)).spec_limits(ImageSizes(MIB, MIB)).gpu_count == 0
    assert parse_job(job_with(gpu_count=1)).limits.gpu_memory_mb == 0  # any memory


@pytest.mark.parametrize("gpus, message", [
    ({"gpu_count": 17}, "limits.gpu_count must be a whole number in 0..16, got 17"),
    ({"gpu_count": -1}, "limits.gpu_count must be a whole number in 0..16, got -1"),
    ({"gpu_count": 1.5}, "limits.gpu_count must be a whole number in 0..16, got 1.5"),
    ({"gpu_count": True}, "limits.gpu_count must be a whole number in 0..16, got True"),
    ({"gpu_count": "1"}, "limits.gpu_count must be a whole number in 0..16, got '1'"),
    ({"gpu_count": 1, "gpu_memory_mb": (1 << 20) + 1},
     "limits.gpu_memory_mb must be a whole number in 0..1048576, got 1048577"),
    ({"gpu_memory_mb": 8192}, "limits.gpu_memory_mb 8192 needs gpu_count >= 1"),
    ({"gpu_count": 0, "gpu_memory_mb": 8192}, "limits.gpu_memory_mb 8192 needs gpu_count >= 1"),
])
def test_job_file_5_bad_gpu_fields_are_errors_naming_key_and_value(
        gpus: dict[str, object], message: str) -> None:
    """[JOB-FILE.5] Out of range, not a whole number, or a memory with no GPU: an error that
    names the key and the value it was given."""
    with pytest.raises(ValueError) as caught:
        parse_job(job_with(**gpus))
    assert str(caught.value).startswith(message), str(caught.value)


def test_job_file_5_misspelt_gpu_key_is_named_in_the_template(tmp_path: Path) -> None:
    """[JOB-FILE.5] [JOB-FILE.2] The keys are ``[limits]`` keys: a typo names the real one,
    and the real ones load from the template's job.toml."""
    init_job(tmp_path / "job")
    path = tmp_path / "job" / JOB_FILE
    text = path.read_text()
    assert text.count("memory_mb = 1024") == 1
    path.write_text(text.replace("memory_mb = 1024", "memory_mb = 1024\ngpu_count = 1\n"
                                 "gpu_memory_mb = 4096"))
    job = load_job_file(tmp_path / "job")
    assert (job.declared.gpu_count, job.declared.gpu_memory_mb) == (1, 4096)
    path.write_text(text.replace("memory_mb = 1024", "memory_mb = 1024\ngpus_count = 1"))
    with pytest.raises(JobDirError, match=r"unknown key \[limits\] gpus_count; did you mean "
                                         r"gpu_count\?"):
        load_job_file(tmp_path / "job")


# -- the container's creation arguments [JOB-GPU.2] -------------------------------------------


def _kwargs(spec: SpecLimits) -> dict[str, Any]:
    return container_kwargs("sha256:" + "ab" * 32, from_spec(spec), labels_for("j", "n", "train"),
                            {"/input": Path("/srv/input")}, name="lc-train-j")


def test_job_gpu_2_device_request_is_the_only_difference_from_the_same_job_without_gpus(
        ) -> None:
    """[JOB-GPU.2] [JOB-SANDBOX.1] A job requesting 2 GPUs gets one device request for 2 GPUs
    (``--gpus 2``) and every other argument -- network off, seccomp, caps, read-only root,
    user, tmpfs, memory, swap, CPU, pids, ulimits, logs, mounts -- equals the same job's
    without GPUs."""
    cpu = SpecLimits(memory_mb=2048, cpu_millis=2000, time_s=600, disk_mb=256)
    with_gpus = _kwargs(SpecLimits(2048, 2000, 600, 256, gpu_count=2, gpu_memory_mb=8192))
    without = _kwargs(cpu)
    assert "device_requests" not in without
    assert set(with_gpus) - set(without) == {"device_requests"}
    assert {k: v for k, v in with_gpus.items() if k != "device_requests"} == without
    (request,) = with_gpus["device_requests"]
    assert isinstance(request, DeviceRequest)
    assert dict(request) == {"Driver": "", "Count": 2, "DeviceIDs": [],
                             "Capabilities": [["gpu"]], "Options": {}}
    # the hardening is really there in both (not two equally empty dicts)
    assert without["network_mode"] == "none" and without["read_only"] is True
    assert without["cap_drop"] == ["ALL"] and without["user"] == "65533:65533"
    assert any(o.startswith("seccomp=") for o in without["security_opt"])
    assert without["mem_limit"] == without["memswap_limit"] == 2048 * MIB
    assert without["nano_cpus"] == 2_000_000_000 and without["pids_limit"] == 128


def test_job_gpu_3_evaluation_limits_have_no_gpu_and_nothing_else_changes() -> None:
    """[JOB-GPU.3] ``cpu_only`` (what ``SandboxRunner.evaluate`` runs with) drops the GPUs
    and keeps every other limit, so an evaluation container has no device request."""
    limits = from_spec(SpecLimits(2048, 2000, 600, 256, gpu_count=4, gpu_memory_mb=1))
    cpu = limits.cpu_only()
    assert (cpu.gpu_count, cpu.gpu_memory_mb) == (0, 0)
    assert cpu == from_spec(SpecLimits(2048, 2000, 600, 256))
    kwargs = container_kwargs("img", cpu, {}, {})
    assert "device_requests" not in kwargs


# -- what the engine and the host have [WORK-GPU.1] -------------------------------------------


@pytest.mark.parametrize("info, expected", [
    ({"Runtimes": {"runc": {}, "io.containerd.runc.v2": {}}, "DefaultRuntime": "runc"}, False),
    ({"Runtimes": {"runc": {}, "nvidia": {"path": "nvidia-container-runtime"}}}, True),
    ({"Runtimes": {"runc": {}}, "DefaultRuntime": "nvidia"}, True),
    ({}, False),
    ({"Runtimes": None}, False),
])
def test_job_gpu_2_the_nvidia_runtime_is_read_from_docker_info(info: dict[str, Any],
                                                              expected: bool) -> None:
    """[JOB-GPU.2] Only an engine naming the ``nvidia`` runtime can pass GPUs through."""
    assert gpu.has_nvidia_runtime(info) is expected


def test_work_gpu_1_nvidia_smi_output_is_read_strictly() -> None:
    """[WORK-GPU.1] One MiB figure per line; anything else is an error naming the line."""
    assert gpu.parse_smi("24576\n 81920 \n\n") == (24576, 81920)
    assert gpu.parse_smi("") == ()
    with pytest.raises(ValueError, match="not a memory size in MiB: '\\[N/A\\]'"):
        gpu.parse_smi("24576\n[N/A]\n")


def _fake_smi(folder: Path, script: str) -> str:
    path = folder / "nvidia-smi"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_work_gpu_1_detection_without_nvidia_smi_offers_none() -> None:
    """[WORK-GPU.1] This machine has no nvidia-smi: detection reports no GPU, no error."""
    found = gpu.detect_host_gpus()
    assert found.count == 0 and found.memory_mb == ()
    assert "no nvidia-smi on this host" in found.detail


def test_work_gpu_1_detection_reads_a_real_process_output(tmp_path: Path) -> None:
    """[WORK-GPU.1] A stand-in ``nvidia-smi`` (a real executable): its lines are the GPUs,
    the query arguments are the documented ones, a failure offers none."""
    smi = _fake_smi(tmp_path, 'echo "$@" > "$(dirname "$0")/args"; printf "16384\\n24576\\n"\n')
    found = gpu.detect_host_gpus(smi)
    assert found.memory_mb == (16384, 24576) and found.count == 2
    assert (tmp_path / "args").read_text().split() == [
        "--query-gpu=memory.total", "--format=csv,noheader,nounits"]
    broken = _fake_smi(tmp_path, 'echo "NVIDIA-SMI has failed" >&2; exit 9\n')
    failed = gpu.detect_host_gpus(broken)
    assert failed.count == 0 and "exited 9: NVIDIA-SMI has failed" in failed.detail
    assert os.access(broken, os.X_OK)
