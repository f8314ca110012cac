"""The template job trains and evaluates in the sandbox [JOB-TRAIN.*, JOB-EVAL.*, JOB-DET.1].

It is a train/v3 job: its data come as blobs mounted at /data/<role> [JOB-DATA.3]
(``template_data_dirs``: packed and unpacked exactly as a worker does), never from
its image. Its validation data at /data/valid is the public half of its pool of 30
CSV shards (split locally by ``template_data``; on a chain by a block hash), packed
and opened as a worker does [HOLDOUT-BLOB.6].
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import pytest

from sandbox.job_file import load_job_file
from sandbox.job_template import BuiltJob, template_data
from sandbox.limits import TrainParams
from sandbox.results import FailureReason, RunResult
from sandbox.runner import SandboxRunner

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def trained(runner: SandboxRunner, template_job: BuiltJob, template_dir: Path,
            template_data_dirs: dict[str, Path],
            tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    job = load_job_file(template_dir)
    params = TrainParams(seed=7, hyperparameters={"learning_rate": 0.01, "hidden_size": 64,
                                                  "epochs": 15})
    out = tmp_path_factory.mktemp("trained") / "out"
    return runner.train(template_job.image_id, params, job.limits, None, out, job_id="template",
                        data=template_data_dirs)


def test_job_train_1_template_trains_and_writes_a_model(trained: RunResult) -> None:
    assert trained.ok, (trained.reason, trained.detail, trained.log_tail)
    assert trained.model_path is not None and trained.model_path.is_file()
    assert 0 < trained.model_path.stat().st_size < 1024 * 1024
    assert b"epoch 15/15 train loss" in trained.logs


def test_job_det_1_same_model_evaluated_twice_gives_the_same_loss_bit_for_bit(
        runner: SandboxRunner, template_job: BuiltJob, template_dir: Path,
        trained: RunResult, template_data_dirs: dict[str, Path]) -> None:
    assert trained.model_path is not None
    limits = load_job_file(template_dir).limits
    first = runner.evaluate(template_job.image_id, trained.model_path, limits, job_id="eval1",
                            data=template_data_dirs)
    second = runner.evaluate(template_job.image_id, trained.model_path, limits, job_id="eval2",
                             data=template_data_dirs)
    assert first.ok and second.ok, (first, second)
    assert first.loss is not None and second.loss is not None
    assert first.loss.hex() == second.loss.hex()
    assert 0 < first.loss < 0.5  # a trained model, not chance (ln 10 = 2.3)
    assert first.metrics["accuracy"] > 0.85
    assert first.metrics["examples"] == 180  # the public half: 15 shards of 12 rows


def test_holdout_blob_6_template_scores_its_hidden_half_as_its_public_one(
        runner: SandboxRunner, template_job: BuiltJob, template_dir: Path, trained: RunResult,
        tmp_path: Path) -> None:
    """[HOLDOUT-BLOB.6] [HOLDOUT-SIZE.1] The hidden half of the template's pool, mounted at
    /data/valid as a voter mounts it, is scored like the public half: its 180 rows (the
    template's figure of the size guidance), a trained model's loss near the public one."""
    assert trained.model_path is not None
    limits = load_job_file(template_dir).limits
    public = runner.evaluate(template_job.image_id, trained.model_path, limits,
                             data=template_data(template_dir, tmp_path / "public"))
    hidden = runner.evaluate(template_job.image_id, trained.model_path, limits,
                             data=template_data(template_dir, tmp_path / "hidden", "hidden"))
    assert public.ok and hidden.ok, (public, hidden)
    assert public.metrics["examples"] == hidden.metrics["examples"] == 180
    assert public.loss is not None and hidden.loss is not None and public.loss != hidden.loss
    assert hidden.loss < 0.5 and hidden.metrics["accuracy"] > 0.85


def test_job_eval_3_held_out_split_is_scored_from_the_input_folder(
        runner: SandboxRunner, template_job: BuiltJob, template_dir: Path,
        trained: RunResult, template_data_dirs: dict[str, Path]) -> None:
    assert trained.model_path is not None
    limits = load_job_file(template_dir).limits
    valid = runner.evaluate(template_job.image_id, trained.model_path, limits,
                            data=template_data_dirs)
    held_out = runner.evaluate(template_job.image_id, trained.model_path, limits,
                               input_dir=template_dir / "holdout")
    assert valid.ok and held_out.ok
    assert held_out.loss != valid.loss
    assert held_out.metrics["accuracy"] > 0.85


def test_job_data_4_the_image_holds_code_and_no_data(
        runner: SandboxRunner, template_job: BuiltJob, tmp_path: Path, template_dir: Path) -> None:
    """[JOB-DATA.4] [JOB-KIND.2] [JOB-IMAGE.1] ``ls -R /job`` in the template image (train/v2):
    code only, no data
    (neither the training or validation data, which come as blobs, nor the held-out split)."""
    limits = load_job_file(template_dir).limits
    result = runner.run_entry(template_job.image_id, "list", ["ls", "-R", "/job"], {}, limits,
                              tmp_path / "out")
    assert result.ok
    assert result.logs.decode().split() == [
        "/job:", "evaluate", "federate", "lcdata.py", "lcjob.py", "train"], result.logs


def test_job_data_3_data_is_mounted_read_only_per_role(
        runner: SandboxRunner, template_job: BuiltJob, tmp_path: Path, template_dir: Path,
        template_data_dirs: dict[str, Path]) -> None:
    """[JOB-DATA.3] [EVAL-ENV.4] /data/train and /data/valid hold the blob's files with
    fixed modes, owner and times (the public part's shards under samples/); LC_DATA names
    /data; a write is refused."""
    limits = load_job_file(template_dir).limits
    script = ("echo LC_DATA=$LC_DATA; ls -ln --time-style=+%s /data/train /data/valid/samples; "
              "grep -E ' /data/(train|valid) ' /proc/self/mountinfo; "
              "touch /data/train/x && echo WROTE; echo done")
    result = runner.run_entry(template_job.image_id, "list", ["sh", "-c", script], {}, limits,
                              tmp_path / "out", data=template_data_dirs)
    assert result.ok, result
    text = result.logs.decode()
    assert "LC_DATA=/data" in text and "WROTE" not in text and "done" in text
    lines = [line.split() for line in text.splitlines() if line.endswith(".csv")]
    shards = sorted((template_data_dirs["valid"] / "samples").iterdir())
    assert len(shards) == 15
    assert sorted(line[-1] for line in lines) == sorted(["train.csv", *(p.name for p in shards)])
    for line in lines:
        assert line[0] == "-rw-r--r--" and line[2:4] == ["0", "0"] and line[5] == "946684800"
    mounts = {f[4]: f[5].split(",") for f in (line.split() for line in text.splitlines())
              if len(f) > 5 and f[4] in ("/data/train", "/data/valid")}
    assert set(mounts) == {"/data/train", "/data/valid"}, text
    assert all("ro" in options for options in mounts.values()), mounts


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os
        return (os.system, ("echo ESCAPED",))


@pytest.mark.parametrize("payload", [b"not a model", pickle.dumps(_Evil())],
                         ids=["garbage", "pickle_with_code"])
def test_job_eval_4_unusable_model_is_reported_invalid(
        runner: SandboxRunner, template_job: BuiltJob, template_dir: Path, tmp_path: Path,
        payload: bytes, template_data_dirs: dict[str, Path]) -> None:
    model = tmp_path / "model.pt"
    model.write_bytes(payload)
    result = runner.evaluate(template_job.image_id, model, load_job_file(template_dir).limits,
                             data=template_data_dirs)
    assert not result.ok
    assert result.reason == FailureReason.INVALID_MODEL
    assert b"ESCAPED" not in result.logs


def test_job_train_2_out_of_range_hyperparameters_are_bad_params(
        runner: SandboxRunner, template_job: BuiltJob, template_dir: Path, tmp_path: Path,
        template_data_dirs: dict[str, Path]) -> None:
    params = TrainParams(seed=1, hyperparameters={"learning_rate": 5.0})
    result = runner.train(template_job.image_id, params, load_job_file(template_dir).limits,
                          None, tmp_path / "out", data=template_data_dirs)
    assert result.reason == FailureReason.BAD_PARAMS


def test_job_eval_1_missing_image_is_reported_not_raised(
        runner: SandboxRunner, template_dir: Path, tmp_path: Path) -> None:
    model = tmp_path / "model.pt"
    model.write_bytes(io.BytesIO(b"x").getvalue())
    result = runner.evaluate("sha256:" + "0" * 64, model, load_job_file(template_dir).limits)
    assert result.reason == FailureReason.IMAGE_MISSING


def test_job_det_3_train_is_reproducible_per_seed_on_one_machine(
        runner: SandboxRunner, template_job: BuiltJob, template_dir: Path, trained: RunResult,
        tmp_path: Path, template_data_dirs: dict[str, Path]) -> None:
    """[JOB-DET.3] The template seeds from LC_SEED: seed 7 again gives a model with the same
    loss bit for bit; seed 8 with the same hyperparameters gives another model."""
    assert trained.model_path is not None
    limits = load_job_file(template_dir).limits
    hyper = {"learning_rate": 0.01, "hidden_size": 64, "epochs": 15}
    models = {}
    for seed in (7, 8):
        run = runner.train(template_job.image_id, TrainParams(seed=seed, hyperparameters=hyper),
                           limits, None, tmp_path / f"seed{seed}", job_id="template",
                           data=template_data_dirs)
        assert run.ok and run.model_path is not None, (run.reason, run.log_tail)
        models[seed] = run.model_path
    losses = {}
    for name, model in (("first", trained.model_path), ("again", models[7]),
                        ("other", models[8])):
        result = runner.evaluate(template_job.image_id, model, limits, job_id="det3",
                                 data=template_data_dirs)
        assert result.ok and result.loss is not None, result
        losses[name] = result.loss.hex()
    assert losses["again"] == losses["first"]
    assert losses["other"] != losses["first"]
