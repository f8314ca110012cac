"""Runner mechanics against the real engine: output copy-out, silence, stray processes."""

from __future__ import annotations

import json
from pathlib import Path

import docker
import pytest

from sandbox.eval_env import HOSTNAME
from sandbox.limits import MIB, ResourceLimits
from sandbox.results import FailureReason
from sandbox.runner import SandboxRunner
from sandbox.seccomp import build_profile

pytestmark = pytest.mark.docker

LIMITS = ResourceLimits(memory_bytes=128 * MIB, pids=32, wall_time_s=20.0, tmp_bytes=MIB,
                        output_bytes=2 * MIB, model_bytes=MIB, log_bytes=64 * 1024)


def test_job_sandbox_2_output_tree_is_copied_out(runner: SandboxRunner, hostile_image: str,
                                                 tmp_path: Path) -> None:
    result = runner.run_entry(hostile_image, "train", ["sh", "-c",
                              "mkdir -p /output/a/b && echo one > /output/a/b/x "
                              "&& printf two > /output/y && echo $LC_ENTRY $HOME"],
                              {}, LIMITS, tmp_path / "out")
    assert result.ok, result
    assert result.logs == b"train /tmp\n"
    assert (tmp_path / "out" / "a" / "b" / "x").read_text() == "one\n"
    assert (tmp_path / "out" / "y").read_text() == "two"
    assert result.output_bytes == 7


def test_job_out_2_symlink_in_output_is_bad_output(runner: SandboxRunner, hostile_image: str,
                                                   tmp_path: Path) -> None:
    result = runner.run_entry(hostile_image, "train",
                              ["sh", "-c", "ln -s /etc/shadow /output/model.pt"], {}, LIMITS,
                              tmp_path / "out")
    assert result.reason == FailureReason.BAD_OUTPUT
    assert not any((tmp_path / "out").iterdir())


def test_job_exit_4_background_process_holding_output_is_stray(
        runner: SandboxRunner, hostile_image: str, tmp_path: Path) -> None:
    result = runner.run_entry(hostile_image, "train", ["sh", "-c", "sleep 600 & echo bye"], {},
                              LIMITS, tmp_path / "out")
    assert result.reason == FailureReason.STRAY_PROCESSES
    assert result.seconds < 5


def test_silence_longer_than_the_client_timeout_is_fine(
        runner: SandboxRunner, hostile_image: str, tmp_path: Path) -> None:
    quick = SandboxRunner(docker.from_env(timeout=2), node_id=runner.node_id)
    result = quick.run_entry(hostile_image, "train",
                             ["sh", "-c", "sleep 4; echo done; echo ok > /output/f"], {},
                             LIMITS, tmp_path / "out")
    assert result.ok, result
    assert result.logs == b"done\n"


def test_job_exit_1_exit_codes_map_to_reasons(runner: SandboxRunner, hostile_image: str,
                                              tmp_path: Path) -> None:
    result = runner.run_entry(hostile_image, "train", ["sh", "-c", "exit 7"], {}, LIMITS,
                              tmp_path / "a")
    assert (result.reason, result.exit_code) == (FailureReason.NONZERO_EXIT, 7)
    result = runner.run_entry(hostile_image, "train", ["sh", "-c", "kill -TERM $$"], {}, LIMITS,
                              tmp_path / "b")
    assert (result.reason, result.exit_code) == (FailureReason.KILLED, 143)
    result = runner.run_entry(hostile_image, "train", ["/no/such/program"], {}, LIMITS,
                              tmp_path / "c")
    assert not result.ok and result.reason in (FailureReason.NONZERO_EXIT, FailureReason.KILLED)


def test_output_folder_must_be_empty(runner: SandboxRunner, hostile_image: str,
                                     tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old").write_text("x")
    with pytest.raises(ValueError, match="not empty"):
        runner.run_entry(hostile_image, "train", ["true"], {}, LIMITS, tmp_path / "out")


def test_job_sandbox_1_engine_applies_every_limit(docker_client: docker.DockerClient,
                                                  base_image: str, tmp_path: Path) -> None:
    """The engine's own view of a job container, not just the arguments we passed."""
    from sandbox import policy

    (tmp_path / "in").mkdir()
    kwargs = policy.container_kwargs(base_image, LIMITS, policy.labels_for("j", "test", "train"),
                                     {policy.INPUT_MOUNT: tmp_path / "in"})
    container = docker_client.containers.create(**kwargs)
    try:
        host = container.attrs["HostConfig"]
        assert host["NetworkMode"] == "none"
        assert host["ReadonlyRootfs"] is True
        assert host["CapDrop"] == ["ALL"] and not host["CapAdd"]
        assert host["SecurityOpt"][0] == "no-new-privileges:true"
        assert len(host["SecurityOpt"]) == 2 and host["SecurityOpt"][1].startswith("seccomp=")
        assert json.loads(host["SecurityOpt"][1].removeprefix("seccomp=")) == build_profile()
        assert container.attrs["Config"]["Hostname"] == HOSTNAME
        assert host["Privileged"] is False
        assert host["Memory"] == host["MemorySwap"] == LIMITS.memory_bytes
        assert host["PidsLimit"] == LIMITS.pids
        assert host["NanoCpus"] == LIMITS.nano_cpus
        assert host["LogConfig"]["Config"]["max-size"] == "64k"
        assert set(host["Tmpfs"]) == {"/tmp", "/output"}
        assert [(m["Target"], m["ReadOnly"]) for m in host["Mounts"]] == [("/input", True)]
        assert not host.get("Binds") and not host.get("Devices")
        assert container.attrs["Config"]["User"] == "65534:65534"
    finally:
        container.remove(force=True)
