"""Runner mechanics against the real engine: output copy-out, silence, stray processes."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import docker
import pytest

from sandbox import launcher
from sandbox.eval_env import HOSTNAME
from sandbox.limits import MIB, ResourceLimits, TrainParams
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
        assert not host.get("Tmpfs")  # [JOB-OUT.6] tmpfs volumes instead
        assert sorted((m["Target"], m["Type"], m.get("ReadOnly", False))
                      for m in host["Mounts"]) == [("/input", "bind", True),
                                                   ("/output", "volume", False),
                                                   ("/tmp", "volume", False)]
        assert not host.get("Binds") and not host.get("Devices")
        assert container.attrs["Config"]["User"] == "65533:65533"  # PID 1 [JOB-SANDBOX.5]
    finally:
        container.remove(force=True, v=True)


def _probe(result_logs: bytes) -> dict[str, Any]:
    seen: dict[str, Any] = json.loads(result_logs.decode().strip().splitlines()[-1])
    return seen


def test_job_entry_1_the_argv_is_the_jobs_command_with_nothing_added(
        runner: SandboxRunner, hostile_image: str, tmp_path: Path) -> None:
    """[JOB-ENTRY.1] Train and evaluate run exactly the job's argv: no argument of the node's."""
    argv = ["python3", "/job/hostile/entry_probe.py", "a b", "--flag", ""]
    trained = runner.train(hostile_image, TrainParams(seed=5), LIMITS, None, tmp_path / "t",
                           argv=[*argv[:2], "printf", *argv[2:]])
    assert trained.reason == FailureReason.MODEL_MISSING  # ran, wrote no model
    assert _probe(trained.logs)["argv"] == ["/job/hostile/entry_probe.py", "printf", "a b",
                                            "--flag", ""]
    model = tmp_path / "model.pt"
    model.write_bytes(b"m")
    evaluated = runner.evaluate(hostile_image, model, LIMITS, argv=argv)
    assert evaluated.ok, evaluated
    assert _probe(evaluated.logs)["argv"] == argv[1:]


def test_job_entry_2_every_entry_point_sees_the_contract_and_a_fresh_container(
        runner: SandboxRunner, hostile_image: str, tmp_path: Path) -> None:
    """[JOB-ENTRY.2] nobody, cwd and HOME /tmp, LC_* over the image's ENV, the mapping and
    stat caches preloaded [JOB-MAPCACHE.1] [JOB-STATCACHE.1], the heap kept
    [JOB-MALLOC.1], read-only root,
    loopback only, ``/input`` and ``/model`` read-only; nothing persists between runs."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "eval.csv").write_text("1\n")
    model = tmp_path / "model.pt"
    model.write_bytes(b"m")
    argv = ["python3", "/job/hostile/entry_probe.py"]
    train = runner.train(hostile_image, TrainParams(seed=5), LIMITS, tmp_path / "in",
                         tmp_path / "out", argv=argv)
    first = runner.evaluate(hostile_image, model, LIMITS, argv=argv, input_dir=tmp_path / "in")
    again = runner.evaluate(hostile_image, model, LIMITS, argv=argv)
    assert train.reason == FailureReason.MODEL_MISSING and first.ok and again.ok
    seen = [_probe(r.logs) for r in (train, first, again)]
    for entry, probe in zip(("train", "evaluate", "evaluate"), seen, strict=True):
        env = probe["env"]
        assert (probe["uid"], probe["gid"], probe["cwd"]) == (65534, 65534, "/tmp")
        assert (env["HOME"], env["LC_ENTRY"], env["LC_OUTPUT"]) == ("/tmp", entry, "/output")
        assert env["IMAGE_ONLY"] == "kept"  # the image's own ENV, overridden only by LC_*
        assert env["LC_CPUS"] == str(-(-LIMITS.nano_cpus // 10**9))
        assert env["LD_PRELOAD"] == launcher.PRELOAD and probe["preloaded"]  # [JOB-MAPCACHE.1]
        assert probe["statcache_hits"] >= 1, probe  # [JOB-STATCACHE.1] the read-only root
        assert env["GLIBC_TUNABLES"] == launcher.MALLOC_TUNABLES  # [JOB-MALLOC.1]
        assert probe["heap_kept_mib"] >= 8, probe  # the C library honours it
        assert probe["blocks_mapped"] == 0, probe  # 1 MiB blocks come from the heap
        assert probe["hostname"] == env["HOSTNAME"] == HOSTNAME
        assert not probe["root_writable"] and probe["ifaces"] == ["lo"]
        assert probe["tmp_bytes"] == LIMITS.tmp_bytes
        assert probe["output_bytes"] == LIMITS.output_bytes
        assert not probe["leftover"], f"{entry} saw a file an earlier run left in /tmp"
        assert not {k for k in env if k.startswith("PYTEST") or k == "VIRTUAL_ENV"}
    assert seen[0]["env"]["LC_INPUT"] == "/input" and seen[0]["input"] == ["eval.csv"]
    assert seen[0]["model"] is None and "LC_MODEL" not in seen[0]["env"]
    assert seen[1]["env"]["LC_MODEL"] == "/model/model.pt" and seen[1]["model"] == ["model.pt"]
    assert "LC_INPUT" not in seen[2]["env"] and seen[2]["input"] is None


def test_job_exit_3_stdout_and_stderr_are_one_stream_cut_one_byte_past_the_cap(
        runner: SandboxRunner, hostile_image: str, tmp_path: Path) -> None:
    """[JOB-EXIT.3] Exactly ``log_bytes`` over both streams is fine; one more byte kills."""
    cap = 4096
    limits = replace(LIMITS, log_bytes=cap)
    half = "import os, sys, time; n = int(sys.argv[1]); os.write(1, b'o' * 2048); "
    half += "time.sleep(0.3); os.write(2, b'e' * (n - 2048))"
    fits = runner.run_entry(hostile_image, "train", ["python3", "-c", half, str(cap)], {},
                            limits, tmp_path / "a")
    assert fits.ok, fits
    assert fits.logs == b"o" * 2048 + b"e" * 2048
    over = runner.run_entry(hostile_image, "train",
                            ["python3", "-c", half + "; time.sleep(30)", str(cap + 1)], {},
                            limits, tmp_path / "b")
    assert over.reason == FailureReason.LOG_TOO_LARGE, over
    assert over.logs == fits.logs and over.seconds < 15


def test_job_train_3_the_model_and_other_output_files_are_copied_out(
        runner: SandboxRunner, hostile_image: str, tmp_path: Path) -> None:
    """[JOB-TRAIN.3] /output/model.pt (a regular file) and the logs beside it come out;
    a folder named model.pt is no model."""
    result = runner.train(hostile_image, TrainParams(seed=1), LIMITS, None, tmp_path / "a",
                          argv=["sh", "-c", "mkdir /output/curves && echo 0.5 > "
                                "/output/curves/loss.txt && printf w > /output/model.pt"])
    assert result.ok and result.model_path == tmp_path / "a" / "model.pt", result
    assert result.model_path.read_bytes() == b"w"
    assert (tmp_path / "a" / "curves" / "loss.txt").read_text() == "0.5\n"
    folder = runner.train(hostile_image, TrainParams(seed=1), LIMITS, None, tmp_path / "b",
                          argv=["sh", "-c", "mkdir /output/model.pt"])
    assert folder.reason == FailureReason.MODEL_MISSING and folder.model_path is None
