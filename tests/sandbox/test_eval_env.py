"""Reproducible evaluation by construction [EVAL-ENV.*] (issue 13 §1, runner side).

A job whose evaluate reads what a container run could vary (the model
file's times, the hostname, the environment, an input's times) gets the
same loss in two runs, even with the incidental conditions varied on
purpose (``variant=1``); a job whose loss depends on randomness or the
clock gets two different losses, so a worker sees it before it claims.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from client.worker.selfcheck import VARIANTS, CheckOutcome, judge
from sandbox.eval_env import FIXED_TIME, HOSTNAME, THREAD_VARIABLES, eval_seed
from sandbox.limits import MIB, ResourceLimits
from sandbox.results import EvalResult
from sandbox.runner import SandboxRunner

LIMITS = ResourceLimits(memory_bytes=256 * MIB, nano_cpus=1_000_000_000, pids=32,
                        wall_time_s=60.0, tmp_bytes=4 * MIB, output_bytes=4 * MIB,
                        model_bytes=1 * MIB, log_bytes=64 * 1024)
JOB = "ab" * 32


def test_eval_env_2_seed_is_fixed_by_the_job_id() -> None:
    assert eval_seed(JOB) == eval_seed(JOB)
    assert eval_seed(JOB) != eval_seed("cd" * 32)
    assert 0 <= eval_seed(bytes.fromhex(JOB)) < 2**63
    assert eval_seed(bytes.fromhex(JOB)) == eval_seed(JOB) == eval_seed(JOB.upper())


def _eval(runner: SandboxRunner, image: str, tmp: Path, script: str, variant: int,
          model: Path, input_dir: Path | None = None) -> EvalResult:
    return runner.evaluate(image, model, LIMITS, input_dir=input_dir, job_id=JOB,
                           argv=["python3", f"/job/hostile/{script}.py"], variant=variant)


@pytest.mark.docker
def test_eval_env_evaluate_reading_file_times_hostname_and_env_is_reproducible(
        runner: SandboxRunner, hostile_image: str, tmp_path: Path) -> None:
    """The original attack read the model's age; now every input's time is 2000-01-01.

    Two runs differ in everything incidental: the model and input files were
    written at different times with different modes on the host, the
    container names and start times differ (``variant``).
    """
    results = []
    for variant in (0, 1):
        model = tmp_path / f"model{variant}.pt"
        model.write_bytes(b"the same model bytes")
        model.chmod(0o600 + variant)
        os.utime(model, (1_700_000_000 + 1000 * variant,) * 2)
        inputs = tmp_path / f"in{variant}"
        (inputs / "sub").mkdir(parents=True)
        (inputs / "sub" / "eval.csv").write_text("1,2,3\n")
        (inputs / "sub" / "eval.csv").chmod(0o640 + variant)
        os.utime(inputs / "sub" / "eval.csv", (1_600_000_000 + 77 * variant,) * 2)
        results.append(_eval(runner, hostile_image, tmp_path, "eval_probe", variant, model,
                             inputs))
    first, second = results
    assert first.ok and second.ok, (first, second)
    assert judge((first, second), tolerance=0.0).claimable  # bit for bit [WORK-SELFCHECK.1]
    seen = json.loads(first.logs.decode().strip().splitlines()[-1])
    assert first.loss == second.loss, (first.logs, second.logs)
    assert seen["model_mtime"] == seen["model_atime"] == seen["model_dir_mtime"] == FIXED_TIME
    assert seen["model_mode"] == "0o100644"
    assert seen["inputs"] == [["eval.csv", FIXED_TIME, "0o100644"]]
    assert seen["input_dir_mtime"] == FIXED_TIME
    assert seen["hostname"] == seen["uname"] == HOSTNAME
    env = dict(seen["env"])
    assert env["PYTHONHASHSEED"] == "0" and env["LC_SEED"] == str(eval_seed(JOB))
    assert all(env[name] == "1" for name in THREAD_VARIABLES)
    assert env["LC_CPUS"] == "1" and env["HOSTNAME"] == HOSTNAME
    assert (tmp_path / "model0.pt").stat().st_mtime == 1_700_000_000  # the caller's file untouched


@pytest.mark.docker
@pytest.mark.parametrize("script", ["random_eval", "clock_eval"])
def test_eval_env_8_variant_runs_expose_an_evaluate_that_is_not_a_function_of_the_model(
        runner: SandboxRunner, hostile_image: str, tmp_path: Path, script: str) -> None:
    """What the contract cannot fix (randomness from the OS, the clock) differs between a run
    and its variant: the worker's self-check sees two losses and does not claim."""
    model = tmp_path / "model.pt"
    model.write_bytes(b"m")
    runs = tuple(runner.evaluate(hostile_image, model, LIMITS, job_id=JOB, variant=variant,
                                 argv=["python3", f"/job/hostile/{script}.py"])
                 for variant in VARIANTS)
    assert all(r.ok for r in runs), runs
    assert runs[0].loss != runs[1].loss
    check = judge(runs, tolerance=1e-9)  # the worker's decision [WORK-SELFCHECK.1]
    assert check.outcome == CheckOutcome.INCONSISTENT and not check.claimable
