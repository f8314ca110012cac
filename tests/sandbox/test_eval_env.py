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
import time
from pathlib import Path

import pytest

from chain.jobspec import ResourceLimits as SpecLimits
from client.worker.selfcheck import VARIANTS, CheckOutcome, judge
from sandbox.eval_env import FIXED_TIME, HOSTNAME, THREAD_VARIABLES, eval_seed
from sandbox.limits import MIB, ResourceLimits, from_spec
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

    [EVAL-ENV.1] hostname ``lc-job``; [EVAL-ENV.3] every thread variable 1;
    [EVAL-ENV.4] private copies with fixed modes and times, the caller's untouched.

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
@pytest.mark.parametrize("script", ["random_eval", "clock_eval", "container_id_eval"])
def test_eval_env_8_variant_runs_expose_an_evaluate_that_is_not_a_function_of_the_model(
        runner: SandboxRunner, hostile_image: str, tmp_path: Path, script: str) -> None:
    """What the contract cannot fix (randomness from the OS, the clock, the container's id
    [EVAL-ENV.7]) differs between a run and its variant: the worker's self-check sees two
    losses and does not claim."""
    model = tmp_path / "model.pt"
    model.write_bytes(b"m")
    runs = tuple(runner.evaluate(hostile_image, model, LIMITS, job_id=JOB, variant=variant,
                                 argv=["python3", f"/job/hostile/{script}.py"])
                 for variant in VARIANTS)
    assert all(r.ok for r in runs), runs
    assert runs[0].loss != runs[1].loss
    check = judge(runs, tolerance=1e-9)  # the worker's decision [WORK-SELFCHECK.1]
    assert check.outcome == CheckOutcome.INCONSISTENT and not check.claimable


def test_eval_env_4_an_input_holding_a_link_is_refused(runner: SandboxRunner,
                                                      tmp_path: Path) -> None:
    """[EVAL-ENV.4] Inputs are plain files and folders: a link (to a host secret) is refused
    before any container starts, and the caller's files are not touched."""
    secret = tmp_path / "secret"
    secret.write_text("host secret")
    secret.chmod(0o600)
    for name, make in (("file", secret), ("folder", tmp_path)):
        inputs = tmp_path / f"in-{name}"
        inputs.mkdir()
        (inputs / "eval.csv").symlink_to(make)
        with pytest.raises(ValueError, match=r"link|plain"):
            runner.run_entry("sha256:" + "0" * 64, "evaluate", ["true"], {}, LIMITS,
                             tmp_path / f"out-{name}", input_dir=inputs)
        assert (inputs / "eval.csv").is_symlink()
    assert secret.stat().st_mode & 0o777 == 0o600


def _written_bytes() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    raise AssertionError("no wchar in /proc/self/io")


@pytest.mark.docker
def test_eval_env_5_only_metrics_json_leaves_an_evaluation(
        runner: SandboxRunner, hostile_image: str, tmp_path: Path) -> None:
    """[EVAL-ENV.5] An evaluate leaving 3 MiB beside metrics.json: the host takes 64 KiB at
    most (all of /output would be ``output_too_large`` under evaluate's cap)."""
    model = tmp_path / "model.pt"
    model.write_bytes(b"m")
    script = ("import json; open('/output/junk', 'wb').write(b'x' * (3 << 20)); "
              "json.dump({'loss': 0.5}, open('/output/metrics.json', 'w'))")
    before = _written_bytes()
    result = runner.evaluate(hostile_image, model, LIMITS, job_id=JOB,
                             argv=["python3", "-c", script])
    written = _written_bytes() - before
    assert result.ok and result.loss == 0.5, result
    assert written < 64 * 1024, f"host wrote {written} bytes for one metrics.json"


@pytest.mark.docker
def test_eval_env_6_the_job_sees_its_declared_quota_whatever_the_nodes(
        runner: SandboxRunner, hostile_image: str, tmp_path: Path) -> None:
    """[EVAL-ENV.6] ``from_spec`` of the declared limits is what the container enforces, seen
    from inside: memory, CPU quota (``LC_CPUS`` rounded up), pids, /tmp."""
    declared = SpecLimits(memory_mb=200, cpu_millis=1500, time_s=30, disk_mb=8, model_mb=1)
    limits = from_spec(declared)
    model = tmp_path / "model.pt"
    model.write_bytes(b"m")
    result = runner.evaluate(hostile_image, model, limits, job_id=JOB,
                             argv=["python3", "/job/hostile/quota_probe.py"])
    assert result.ok, result
    seen = json.loads(result.logs.decode().strip().splitlines()[-1])
    assert int(seen["memory"][0]) == 200 * MIB == limits.memory_bytes
    quota = int(seen["cpu"][0])
    period = int(seen["cpu"][1]) if len(seen["cpu"]) > 1 else int(seen["cpu_period"][0])
    assert quota / period == 1.5
    assert seen["lc_cpus"] == "2"
    assert int(seen["pids"][0]) == limits.pids
    assert seen["tmp_bytes"] == limits.tmp_bytes == 2 * MIB  # a quarter of disk_mb


@pytest.mark.docker
def test_eval_env_9_a_time_bomb_passes_the_self_check_and_only_a_later_run_disagrees(
        runner: SandboxRunner, hostile_image: str, tmp_path: Path) -> None:
    """[EVAL-ENV.9] An evaluate that changes its answer at a date: the runner's two runs
    agree before it, so the self-check cannot catch it; a voter running after it measures
    another loss (the disagreement ledger.md blames on the job)."""
    model = tmp_path / "model.pt"
    model.write_bytes(b"m")
    fires_at = time.time() + 12
    argv = ["python3", "/job/hostile/time_bomb_eval.py", repr(fires_at)]
    runs = tuple(runner.evaluate(hostile_image, model, LIMITS, job_id=JOB, variant=variant,
                                 argv=argv) for variant in VARIANTS)
    assert time.time() < fires_at, "the self-check took too long to test anything"
    assert [r.loss for r in runs] == [0.25, 0.25], runs
    assert judge(runs, tolerance=0.0).claimable  # the worker's self-check passes it
    time.sleep(max(0.0, fires_at - time.time()) + 0.1)
    voter = runner.evaluate(hostile_image, model, LIMITS, job_id=JOB, argv=argv)
    assert voter.ok and voter.loss == 0.75, voter
