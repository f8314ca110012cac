"""The template job trains and evaluates in the sandbox [JOB-TRAIN.*, JOB-EVAL.*, JOB-DET.1]."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import pytest

from sandbox.job_file import load_job_file
from sandbox.job_template import BuiltJob
from sandbox.limits import TrainParams
from sandbox.results import FailureReason, RunResult
from sandbox.runner import SandboxRunner

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def trained(runner: SandboxRunner, template_job: BuiltJob, template_dir: Path,
            tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    job = load_job_file(template_dir)
    params = TrainParams(seed=7, hyperparameters={"learning_rate": 0.01, "hidden_size": 64,
                                                  "epochs": 15})
    out = tmp_path_factory.mktemp("trained") / "out"
    return runner.train(template_job.image_id, params, job.limits, None, out, job_id="template")


def test_job_train_1_template_trains_and_writes_a_model(trained: RunResult) -> None:
    assert trained.ok, (trained.reason, trained.detail, trained.log_tail)
    assert trained.model_path is not None and trained.model_path.is_file()
    assert 0 < trained.model_path.stat().st_size < 1024 * 1024
    assert b"trained 15 epochs" in trained.logs


def test_job_det_1_same_model_evaluated_twice_gives_the_same_loss_bit_for_bit(
        runner: SandboxRunner, template_job: BuiltJob, template_dir: Path,
        trained: RunResult) -> None:
    assert trained.model_path is not None
    limits = load_job_file(template_dir).limits
    first = runner.evaluate(template_job.image_id, trained.model_path, limits, job_id="eval1")
    second = runner.evaluate(template_job.image_id, trained.model_path, limits, job_id="eval2")
    assert first.ok and second.ok, (first, second)
    assert first.loss is not None and second.loss is not None
    assert first.loss.hex() == second.loss.hex()
    assert 0 < first.loss < 0.5  # a trained model, not chance (ln 10 = 2.3)
    assert first.metrics["accuracy"] > 0.85
    assert first.metrics["examples"] == 360


def test_job_eval_3_held_out_split_is_scored_from_the_input_folder(
        runner: SandboxRunner, template_job: BuiltJob, template_dir: Path,
        trained: RunResult) -> None:
    assert trained.model_path is not None
    limits = load_job_file(template_dir).limits
    valid = runner.evaluate(template_job.image_id, trained.model_path, limits)
    held_out = runner.evaluate(template_job.image_id, trained.model_path, limits,
                               input_dir=template_dir / "holdout")
    assert valid.ok and held_out.ok
    assert held_out.loss != valid.loss
    assert held_out.metrics["accuracy"] > 0.85


def test_job_image_1_held_out_split_is_not_in_the_image(
        runner: SandboxRunner, template_job: BuiltJob, tmp_path: Path, template_dir: Path) -> None:
    limits = load_job_file(template_dir).limits
    result = runner.run_entry(template_job.image_id, "list", ["ls", "-R", "/job"], {}, limits,
                              tmp_path / "out")
    assert result.ok
    assert b"train.csv" in result.logs and b"valid.csv" in result.logs
    assert b"test.csv" not in result.logs and b"holdout" not in result.logs


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os
        return (os.system, ("echo ESCAPED",))


@pytest.mark.parametrize("payload", [b"not a model", pickle.dumps(_Evil())],
                         ids=["garbage", "pickle_with_code"])
def test_job_eval_4_unusable_model_is_reported_invalid(
        runner: SandboxRunner, template_job: BuiltJob, template_dir: Path, tmp_path: Path,
        payload: bytes) -> None:
    model = tmp_path / "model.pt"
    model.write_bytes(payload)
    result = runner.evaluate(template_job.image_id, model, load_job_file(template_dir).limits)
    assert not result.ok
    assert result.reason == FailureReason.INVALID_MODEL
    assert b"ESCAPED" not in result.logs


def test_job_train_2_out_of_range_hyperparameters_are_bad_params(
        runner: SandboxRunner, template_job: BuiltJob, template_dir: Path, tmp_path: Path) -> None:
    params = TrainParams(seed=1, hyperparameters={"learning_rate": 5.0})
    result = runner.train(template_job.image_id, params, load_job_file(template_dir).limits,
                          None, tmp_path / "out")
    assert result.reason == FailureReason.BAD_PARAMS


def test_job_eval_1_missing_image_is_reported_not_raised(
        runner: SandboxRunner, template_dir: Path, tmp_path: Path) -> None:
    model = tmp_path / "model.pt"
    model.write_bytes(io.BytesIO(b"x").getvalue())
    result = runner.evaluate("sha256:" + "0" * 64, model, load_job_file(template_dir).limits)
    assert result.reason == FailureReason.IMAGE_MISSING


def test_job_det_3_train_is_reproducible_per_seed_on_one_machine(
        runner: SandboxRunner, template_job: BuiltJob, template_dir: Path, trained: RunResult,
        tmp_path: Path) -> None:
    """[JOB-DET.3] The template seeds from LC_SEED: seed 7 again gives a model with the same
    loss bit for bit; seed 8 with the same hyperparameters gives another model."""
    assert trained.model_path is not None
    limits = load_job_file(template_dir).limits
    hyper = {"learning_rate": 0.01, "hidden_size": 64, "epochs": 15}
    models = {}
    for seed in (7, 8):
        run = runner.train(template_job.image_id, TrainParams(seed=seed, hyperparameters=hyper),
                           limits, None, tmp_path / f"seed{seed}", job_id="template")
        assert run.ok and run.model_path is not None, (run.reason, run.log_tail)
        models[seed] = run.model_path
    losses = {}
    for name, model in (("first", trained.model_path), ("again", models[7]),
                        ("other", models[8])):
        result = runner.evaluate(template_job.image_id, model, limits, job_id="det3")
        assert result.ok and result.loss is not None, result
        losses[name] = result.loss.hex()
    assert losses["again"] == losses["first"]
    assert losses["other"] != losses["first"]
