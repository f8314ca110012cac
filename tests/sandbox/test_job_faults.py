"""Whose fault is a failed run? Issue 13 §2, §3, §5 through the production runner.

Every failure caused by what a job wrote, printed or shipped in its image is
the job's (``results.JOB_FAULTS``) and never ``engine_error`` [JOB-EXIT.5];
nothing a job writes makes the runner raise [JOB-EXIT.2]; the host writes no
more than the job's declared sizes [JOB-OUT.4].
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from sandbox.limits import MIB, ResourceLimits, TrainParams
from sandbox.results import JOB_FAULTS, WORKER_FAULTS, FailureReason, RunResult, is_job_fault
from sandbox.runner import SandboxRunner

pytestmark = pytest.mark.docker

LIMITS = ResourceLimits(memory_bytes=256 * MIB, nano_cpus=1_000_000_000, pids=32,
                        wall_time_s=60.0, tmp_bytes=4 * MIB, output_bytes=8 * MIB,
                        model_bytes=1 * MIB, log_bytes=64 * 1024)


def _hostile(runner: SandboxRunner, image: str, tmp_path: Path, script: str, *args: str,
             limits: ResourceLimits = LIMITS) -> RunResult:
    return runner.run_entry(image, "train", ["python3", f"/job/hostile/{script}.py", *args], {},
                            limits, tmp_path / "out", job_id=script)


def _job_fault(result: RunResult, reason: FailureReason) -> None:
    assert not result.ok, result
    assert result.reason == reason, (result.reason, result.detail, result.log_tail)
    assert is_job_fault(result.reason) and result.reason not in WORKER_FAULTS
    assert not any((result.output_dir or Path("/nonexistent")).iterdir())


def _written_bytes() -> int:
    """Bytes this process has passed to write() so far (``wchar`` of /proc/self/io)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    raise AssertionError("no wchar in /proc/self/io")


def test_job_exit_5_fault_sets_partition_every_reason() -> None:
    assert set(FailureReason) == JOB_FAULTS | WORKER_FAULTS
    assert not JOB_FAULTS & WORKER_FAULTS
    assert {FailureReason.ENGINE_ERROR, FailureReason.IMAGE_MISSING,
                             FailureReason.HOST_ERROR} == WORKER_FAULTS


def test_job_out_3_path_deeper_than_path_max_is_the_jobs_fault(
        runner: SandboxRunner, hostile_image: str, tmp_path: Path) -> None:
    """40 folders of 200 bytes: 8,040 bytes of path, twice the host's PATH_MAX (4096).

    Before: the host's extraction failed with "File name too long", reported as
    ``engine_error``, and the worker ran the job again and again.
    """
    result = _hostile(runner, hostile_image, tmp_path, "deep_output", "40", "200")
    assert b"path bytes 8040" in result.logs
    _job_fault(result, FailureReason.BAD_OUTPUT)
    assert "output path" in result.detail  # refused by [JOB-OUT.3], not by the host


def test_job_out_3_path_longer_than_the_bound_is_the_jobs_fault(
        runner: SandboxRunner, hostile_image: str, tmp_path: Path) -> None:
    result = _hostile(runner, hostile_image, tmp_path, "deep_output", "20", "250")
    _job_fault(result, FailureReason.BAD_OUTPUT)
    assert "longer than 1024 bytes" in result.detail


def test_job_out_3_too_many_files_is_the_jobs_fault(
        runner: SandboxRunner, hostile_image: str, tmp_path: Path) -> None:
    result = _hostile(runner, hostile_image, tmp_path, "many_files", "5000")
    _job_fault(result, FailureReason.BAD_OUTPUT)
    assert "more than 4096 entries" in result.detail


def test_job_out_2_fifo_is_the_jobs_fault(runner: SandboxRunner, hostile_image: str,
                                          tmp_path: Path) -> None:
    result = _hostile(runner, hostile_image, tmp_path, "fifo_output")
    _job_fault(result, FailureReason.BAD_OUTPUT)


@pytest.mark.parametrize("mode", ["garbage", "empty", "duplicate", "huge"])
def test_job_out_6_an_images_lying_tar_is_never_run(
        runner: SandboxRunner, fake_tar_image: str, tmp_path: Path, mode: str) -> None:
    """The image's ``tar`` lies when armed; the host never runs it [JOB-OUT.6]: the
    output is read through the engine's archive API, exactly as the job wrote it.

    Before issue 13: garbage raised ``tarfile.ReadError`` out of the runner; a huge entry
    was spooled to the host's disk. Before issue 30: the lie was refused (the job's
    fault), but the image's program ran on the host's behalf, at the job's pace.
    """
    result = runner.train(fake_tar_image, TrainParams(seed=1), LIMITS, None, tmp_path / "out",
                          job_id=f"tar-{mode}",
                          argv=["sh", "-c", f"echo {mode} > /tmp/tar-mode; "
                                            "echo honest > /output/model.pt"])
    assert result.ok, (result.reason, result.detail, result.log_tail)
    assert result.model_path is not None
    assert result.model_path.read_text() == "honest\n"


def test_job_out_4_an_oversized_model_is_refused_before_the_host_writes_it(
        runner: SandboxRunner, hostile_image: str, tmp_path: Path) -> None:
    """Declared model 1 MiB, /output 8 MiB, model 6 MiB: the host writes none of it.

    Before: the output was spooled and then extracted in full (12 MiB of host
    writes) before the model was found too large and deleted.
    """
    before = _written_bytes()
    result = runner.train(hostile_image, TrainParams(seed=1), LIMITS, None, tmp_path / "out",
                          job_id="big_model",
                          argv=["python3", "/job/hostile/big_model.py", str(6 * MIB)])
    written = _written_bytes() - before
    _job_fault(result, FailureReason.MODEL_TOO_LARGE)
    assert written < LIMITS.model_bytes, f"host wrote {written} bytes for a refused model"


def test_job_image_1_an_image_without_sleep_is_the_jobs_fault(
        runner: SandboxRunner, nosleep_image: str, tmp_path: Path) -> None:
    """The container cannot start while a known-good one can: ``container_failed``.

    Before: ``engine_error``, the worker's side, so the job was retried forever.
    """
    result = runner.run_entry(nosleep_image, "train", ["true"], {}, LIMITS, tmp_path / "out",
                              job_id="nosleep")
    _job_fault(result, FailureReason.CONTAINER_FAILED)
    assert "while the engine works" in result.detail


@pytest.fixture
def dead_engine(tmp_path: Path) -> Iterator[docker.DockerClient]:
    client = docker.DockerClient(base_url=f"unix://{tmp_path}/no-engine.sock", version="1.41",
                                 timeout=2)
    yield client
    client.close()


def test_job_exit_5_engine_error_only_when_the_engine_fails(
        dead_engine: docker.DockerClient, hostile_image: str, tmp_path: Path) -> None:
    """[JOB-EXIT.2] Even with no engine at all the runner reports a reason, never raises."""
    started = time.monotonic()
    result = SandboxRunner(dead_engine, node_id="dead").run_entry(
        hostile_image, "train", ["true"], {}, LIMITS, tmp_path / "out")
    assert result.reason == FailureReason.ENGINE_ERROR
    assert not is_job_fault(result.reason)
    assert time.monotonic() - started < 30


BOMBS = [("big_int", "JOB-JSON.3"), ("huge_float", "JOB-JSON.3"), ("nan", "JOB-JSON.3"),
         ("neg_inf", "JOB-JSON.3"), ("deep", "JOB-JSON.2"), ("large", "JOB-JSON.1"),
         ("duplicate", "JOB-JSON.4"), ("bool", "JOB-EVAL.2d")]


def test_job_eval_2_metrics_bombs_are_bad_metrics_through_the_runner(
        runner: SandboxRunner, hostile_image: str, tmp_path: Path) -> None:
    """Before: OverflowError and RecursionError out of the runner; a duplicate took the last.

    Written by a real evaluate: [JOB-JSON.1-4] and [JOB-EVAL.2d] through the runner."""
    model = tmp_path / "model.pt"
    model.write_bytes(b"m")
    for kind, rule in BOMBS:
        result = runner.evaluate(hostile_image, model, LIMITS, job_id=f"bomb-{kind}",
                                 argv=["python3", "/job/hostile/metrics_bomb.py", kind])
        assert (result.ok, result.reason) == (False, FailureReason.BAD_METRICS), (kind, result)
        assert f"[{rule}]" in result.detail, (kind, result.detail)
        assert is_job_fault(result.reason)
    good = runner.evaluate(hostile_image, model, LIMITS, job_id="bomb-good",
                           argv=["python3", "/job/hostile/metrics_bomb.py", "good"])
    assert good.ok and good.loss == 0.25 and dict(good.metrics) == {"loss": 0.25,
                                                                    "accuracy": 0.5}


def test_job_exit_2_every_failure_reason_is_in_the_contracts_table() -> None:
    """[JOB-EXIT.2] The stable strings of ``FailureReason`` are exactly the contract's table."""
    import re

    spec = (Path(__file__).resolve().parents[2] / "protocol_spec" / "job_contract.md").read_text()
    table = spec.split("**[JOB-EXIT.2]", 1)[1].split("**[JOB-EXIT.3]", 1)[0]
    named = {name for row in table.splitlines() if row.startswith("| `")
             for name in re.findall(r"`([a-z_]+)`", row.split("|")[1])}
    assert named == {reason.value for reason in FailureReason}
