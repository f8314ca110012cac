"""[JOB-OUT.6] The host never runs the job image's programs for its own work.

Images whose ``tar`` and ``df`` stall (silent, or dripping a byte now and then) or are
absent: /output, evaluate's metrics.json, the progress file and checkpoints are still
read correctly, through the engine's archive API, and a failed run's fill of /output
and /tmp is still told. Before (issue 30 §2): a 20 s-limit train whose tar was silent
for 70 s came back ``ok`` after 70.6 s; one whose tar dripped a byte every 20 s, or
whose df hung after exit 1, held the node's thread for good (still stuck after 150 s;
``python -m tests.sandbox.stall_bench``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import pytest

from sandbox.base_image import ROOTFS_TAG, build_image
from sandbox.checkpoints import KeptCheckpoint, RunWatch, kept_checkpoint
from sandbox.limits import MIB, ResourceLimits, TrainParams
from sandbox.progress import Progress
from sandbox.results import FailureReason, RunResult
from sandbox.runner import SandboxRunner
from tests.sandbox.stall_bench import build_stall_image

pytestmark = pytest.mark.docker

LIMITS = ResourceLimits(memory_bytes=256 * MIB, nano_cpus=1_000_000_000, pids=32,
                        wall_time_s=20.0, tmp_bytes=4 * MIB, output_bytes=8 * MIB,
                        model_bytes=1 * MIB, log_bytes=64 * 1024)
BOUND_S = LIMITS.wall_time_s + 60
"""Far past any honest end: a run still going then is stuck on the job's programs."""
MODEL = "0123456789abcdef" * 1000


@pytest.fixture(scope="module")
def stall_image(docker_client: docker.DockerClient, base_image: str,
                tmp_path_factory: pytest.TempPathFactory) -> str:
    return build_stall_image(docker_client, tmp_path_factory.mktemp("stall"))


@pytest.fixture(scope="module")
def notar_image(docker_client: docker.DockerClient, base_image: str,
                tmp_path_factory: pytest.TempPathFactory) -> str:
    context = tmp_path_factory.mktemp("notar")
    (context / "Dockerfile").write_text(
        f"FROM {ROOTFS_TAG}\nUSER 0:0\nRUN rm -f /usr/bin/tar /bin/tar /usr/bin/df /bin/df\n"
        "USER 65534:65534\n")
    return build_image(docker_client, context, "learningchain/test-notar:latest",
                       lambda _m: None)


def _bounded(call: Callable[[], Any]) -> Any:
    """Run ``call`` in a thread; fail (not hang) when it is still going after ``BOUND_S``."""
    box: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: box.update(result=call()), daemon=True)
    started = time.monotonic()
    thread.start()
    thread.join(BOUND_S)
    assert "result" in box, f"still waiting after {time.monotonic() - started:.0f} s"
    return box["result"]


def _train(runner: SandboxRunner, image: str, tmp_path: Path, script: str,
           watch: RunWatch | None = None) -> RunResult:
    return _bounded(lambda: runner.train(image, TrainParams(seed=1), LIMITS, None,
                                         tmp_path / "out", job_id="stall-tar",
                                         argv=["sh", "-c", script], watch=watch))


@pytest.mark.parametrize("mode", ["silent70", "drip2", "hang"])
def test_job_out_6_a_stalling_tar_is_never_run_and_the_output_is_read(
        runner: SandboxRunner, stall_image: str, tmp_path: Path, mode: str) -> None:
    result = _train(runner, stall_image, tmp_path,
                    f"echo {mode} > /tmp/stall-mode; printf {MODEL} > /output/model.pt; "
                    "mkdir /output/extra; echo x > /output/extra/y")
    assert result.ok, (result.reason, result.detail, result.log_tail)
    assert result.model_path is not None and result.model_path.read_text() == MODEL
    assert (tmp_path / "out" / "extra" / "y").read_text() == "x\n"


def test_job_out_6_an_image_without_tar_or_df_is_read(
        runner: SandboxRunner, notar_image: str, tmp_path: Path) -> None:
    result = _train(runner, notar_image, tmp_path, f"printf {MODEL} > /output/model.pt")
    assert result.ok, (result.reason, result.detail, result.log_tail)
    assert result.model_path is not None and result.model_path.read_text() == MODEL


@pytest.mark.parametrize(("script", "reason"), [
    ("cat /dev/zero > /output/fill; exit 1", FailureReason.OUTPUT_TOO_LARGE),
    ("cat /dev/zero > /tmp/fill; exit 1", FailureReason.SCRATCH_FULL),
    ("exit 1", FailureReason.NONZERO_EXIT),
])
def test_job_out_6_a_failed_runs_fill_is_counted_without_the_images_df(
        runner: SandboxRunner, stall_image: str, tmp_path: Path, script: str,
        reason: FailureReason) -> None:
    result = _train(runner, stall_image, tmp_path, f"echo hang > /tmp/stall-mode; {script}")
    assert result.reason == reason, (result.reason, result.detail, result.log_tail)


def test_job_out_6_a_sparse_model_is_refused_from_its_header(
        runner: SandboxRunner, stall_image: str, tmp_path: Path) -> None:
    """A 100 GiB sparse file in an 8 MiB tmpfs: refused before a byte of it is read."""
    result = _train(runner, stall_image, tmp_path, "truncate -s 100G /output/model.pt")
    assert result.reason == FailureReason.MODEL_TOO_LARGE, (result.reason, result.detail)
    assert not any((tmp_path / "out").iterdir())


def test_job_out_6_evaluate_metrics_are_read_past_a_hanging_tar(
        runner: SandboxRunner, stall_image: str, tmp_path: Path) -> None:
    model = tmp_path / "model.pt"
    model.write_bytes(b"m")
    good = _bounded(lambda: runner.evaluate(
        stall_image, model, LIMITS, job_id="stall-eval",
        argv=["sh", "-c", "echo hang > /tmp/stall-mode; echo '{\"loss\": 0.25}' "
                          "> /output/metrics.json; echo junk > /output/other"]))
    assert good.ok and good.loss == 0.25, (good.reason, good.detail)
    missing = _bounded(lambda: runner.evaluate(
        stall_image, model, LIMITS, job_id="stall-eval",
        argv=["sh", "-c", "echo hang > /tmp/stall-mode"]))
    assert missing.reason == FailureReason.BAD_METRICS, (missing.reason, missing.detail)


PROGRESS = '{"fraction": 0.5, "step": 1, "checkpoint_step": 1}'


def test_job_out_6_progress_and_checkpoints_are_read_past_a_hanging_tar(
        runner: SandboxRunner, stall_image: str, tmp_path: Path) -> None:
    """[JOB-PROGRESS.4] [JOB-CHECKPOINT.2] through the engine's archive, not the image's tar."""
    seen: list[Progress] = []
    keep = tmp_path / "keep"
    watch = RunWatch(keep, 2 * MIB, seen.append, poll_s=0.2, label="stall")
    result = _train(runner, stall_image, tmp_path,
                    "echo hang > /tmp/stall-mode; echo state > /checkpoint/latest.pt; "
                    f"echo '{PROGRESS}' > /checkpoint/progress.json; sleep 3; "
                    "echo m > /output/model.pt", watch=watch)
    assert result.ok, (result.reason, result.detail, result.log_tail)
    assert seen and seen[-1].checkpoint_step == 1
    kept = kept_checkpoint(keep)
    assert kept is not None and kept.step == 1
    assert (kept.folder / "latest.pt").read_text() == "state\n"


def test_job_checkpoint_5_the_kept_copys_host_path_is_not_in_mountinfo(
        runner: SandboxRunner, stall_image: str, tmp_path: Path) -> None:
    """[JOB-CHECKPOINT.5] /resume is mounted from a fresh neutral folder: the job's
    mountinfo names neither the worker's data folder nor the job nor the attempt."""
    secret = tmp_path / "worker-data-SECRET" / "job-SECRET" / "attempt-SECRET" / "v1"
    (secret / "files").mkdir(parents=True)
    (secret / "files" / "latest.pt").write_text("kept")
    watch = RunWatch(secret.parent, 2 * MIB, lambda _p: None,
                     resume=KeptCheckpoint(secret / "files", 1, 1.0), label="resume")
    result = _train(runner, stall_image, tmp_path,
                    "cat /proc/self/mountinfo; cat /resume/latest.pt; echo m > /output/model.pt",
                    watch=watch)
    assert result.ok, (result.reason, result.detail, result.log_tail)
    text = result.logs.decode()
    assert " /resume " in text and "kept" in text, text
    assert "SECRET" not in text and str(tmp_path) not in text, text
