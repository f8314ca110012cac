"""Progress and checkpoints of a train run on the real engine [JOB-PROGRESS.*],
[JOB-CHECKPOINT.*].

The template job writes its progress file and a checkpoint every epoch; the runner's
``RunWatch`` reads the progress while the run goes, keeps the newest checkpoint on the
host's disk (copied, never loaded), and a second run of the same attempt gets it at
/resume read-only and continues from its step. A hostile train command writes a link
as its progress file and a link in its checkpoint folder: both are ignored with a log
line, and the run itself still succeeds.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from sandbox.checkpoints import RunWatch, kept_checkpoint, train_split
from sandbox.job_file import load_job_file
from sandbox.job_template import BuiltJob
from sandbox.limits import TrainParams
from sandbox.progress import Progress
from sandbox.runner import SandboxRunner

pytestmark = pytest.mark.docker

DISK_MB = 64
PARAMS = TrainParams(seed=11, hyperparameters={"learning_rate": 0.01, "hidden_size": 32,
                                               "epochs": 6, "epoch_seconds": 0.5})


def test_progress_is_read_live_and_a_kept_checkpoint_is_resumed_from(
        runner: SandboxRunner, template_job: BuiltJob, template_dir: Path,
        template_data_dirs: dict[str, Path], tmp_path: Path) -> None:
    """[JOB-PROGRESS.1] [JOB-PROGRESS.4] [JOB-CHECKPOINT.1] [JOB-CHECKPOINT.2]
    [JOB-CHECKPOINT.3] The first run's progress rises while it trains and its newest
    checkpoint is kept with meta.json; the container is killed mid-training; a second run
    of the attempt is offered the kept copy at /resume (read-only) and resumes from its
    step, not from 0."""
    limits, checkpoint_bytes = train_split(load_job_file(template_dir).limits, DISK_MB)
    assert checkpoint_bytes == 16 * 1024 * 1024
    seen: list[Progress] = []
    keep = tmp_path / "keep"

    def crash_at_step_3(progress: Progress) -> None:
        """The container dies mid-training (as under a crashed engine), after step 3."""
        seen.append(progress)
        if progress.step >= 3:
            for container in runner.client.containers.list(
                    ignore_removed=True, filters={"label": "learningchain.job=pytest-ckpt"}):
                container.kill()

    watch = RunWatch(keep, checkpoint_bytes, crash_at_step_3, poll_s=0.2, label="first")
    first = runner.train(template_job.image_id, PARAMS, limits, None, tmp_path / "out1",
                         job_id="pytest-ckpt", data=template_data_dirs, watch=watch)
    assert not first.ok, first.detail
    fractions = [p.fraction for p in seen]
    assert len(set(fractions)) >= 2 and fractions == sorted(fractions), fractions
    assert all(p.metric_name == "train_loss" and p.metric is not None for p in seen)
    kept = kept_checkpoint(keep)
    assert kept is not None and 1 <= kept.step < 6 and kept.seconds > 0, kept
    assert sorted(p.name for p in kept.folder.iterdir()) == ["latest.pt", "progress.json"]
    assert not any(p.name.startswith(".new-") for p in keep.iterdir())  # no half copy left

    again: list[Progress] = []
    second = RunWatch(keep, checkpoint_bytes, again.append, resume=kept, poll_s=0.2,
                      label="second")
    assert second.env() == {"LC_CHECKPOINT": "/checkpoint", "LC_RESUME": "/resume"}
    resumed = runner.train(template_job.image_id, PARAMS, limits, None, tmp_path / "out2",
                           job_id="pytest-ckpt", data=template_data_dirs, watch=second)
    assert resumed.ok, (resumed.reason, resumed.detail, resumed.log_tail)
    text = resumed.logs.decode()
    assert f"resumed from step {kept.step} of 6" in text, text
    assert f"epoch {kept.step}/6 " not in text  # the epochs before the checkpoint not rerun
    assert "epoch 6/6" in text


HOSTILE = """
import json, os, time
ck = os.environ["LC_CHECKPOINT"]
os.symlink("/etc/passwd", ck + "/progress.json")
time.sleep(1.5)
os.unlink(ck + "/progress.json")
os.symlink("/etc/shadow", ck + "/escape")
open(ck + "/progress.json", "w").write(json.dumps({"fraction": 0.5, "step": 1,
                                                    "checkpoint_step": 1}))
time.sleep(1.5)
open(ck + "/progress.json", "w").write("[" * 900)
time.sleep(1.5)
open(os.environ["LC_OUTPUT"] + "/model.pt", "wb").write(b"m")
"""


def test_hostile_progress_and_checkpoint_are_ignored_and_the_run_goes_on(
        runner: SandboxRunner, template_job: BuiltJob, template_dir: Path,
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """[JOB-PROGRESS.4] [JOB-CHECKPOINT.2] A link as progress file, a link in the checkpoint
    folder and a 900-deep bracket file: each ignored with a log line naming the rule; the
    valid progress in between is taken; no checkpoint is kept; the run succeeds."""
    caplog.set_level(logging.WARNING, logger="learningchain.sandbox")
    limits, checkpoint_bytes = train_split(load_job_file(template_dir).limits, DISK_MB)
    seen: list[Progress] = []
    keep = tmp_path / "keep"
    watch = RunWatch(keep, checkpoint_bytes, seen.append, poll_s=0.3, label="hostile")
    result = runner.train(template_job.image_id, PARAMS, limits, None, tmp_path / "out",
                          job_id="pytest-ckpt-hostile", argv=("python3", "-c", HOSTILE),
                          watch=watch)
    assert result.ok, (result.reason, result.detail, result.log_tail)
    assert [p.step for p in seen][:1] == [1] and {p.fraction for p in seen} == {0.5}
    assert kept_checkpoint(keep) is None
    text = caplog.text
    assert "ignored: [JOB-PROGRESS.4]" in text and "not a regular file" in text, text
    assert "checkpoint not kept: [JOB-CHECKPOINT.2]" in text, text
    assert "[JOB-JSON.2]" in text, text
    assert not (tmp_path / "out" / "escape").exists()
