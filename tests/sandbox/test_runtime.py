"""Choosing the jobs' runtime and registering gVisor with the engine [JOB-RUNTIME.1-5].

Pure: ``docker info`` answers and ``daemon.json`` files are made up here; the real engine's
side is ``test_runtime_docker.py`` and the hostile battery, run under both runtimes.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from sandbox.backend import JobSandbox
from sandbox.limits import MIB, ResourceLimits
from sandbox.policy import container_kwargs
from sandbox.runner import SandboxRunner
from sandbox.runtime import (
    AUTO,
    RUNC,
    RUNSC,
    RUNSC_ARGS,
    RUNSC_EXTRA_MEMORY,
    RUNSC_EXTRA_PIDS,
    RUNSC_PACKAGE_VERSION,
    RUNSC_PATH,
    BadRuntime,
    RuntimeUnavailable,
    choose,
    main,
    register,
    with_runsc,
)
from sandbox.seccomp import profile_text_for
from tests.sandbox.runtimes import RUNTIMES

WITH_RUNSC = {"Runtimes": {"runc": {"path": "runc"}, "runsc": {"path": "/usr/bin/runsc"}}}
WITHOUT = {"Runtimes": {"runc": {"path": "runc"}, "io.containerd.runc.v2": {"path": "runc"}}}
LIMITS = ResourceLimits(memory_bytes=64 * MIB)


def test_job_runtime_1_auto_is_runsc_wherever_the_engine_has_it() -> None:
    assert choose(AUTO, WITH_RUNSC).name == RUNSC
    assert choose(AUTO, WITH_RUNSC).isolated
    plain = choose(AUTO, WITHOUT)
    assert (plain.name, plain.isolated) == (RUNC, False)
    assert "share this host's kernel" in plain.describe()  # the node's start-up warning
    assert "gVisor" in choose(AUTO, WITH_RUNSC).describe()
    assert choose(RUNC, WITH_RUNSC).name == RUNC  # a worker may still ask for runc


def test_job_runtime_2_runsc_configured_on_an_engine_without_it_is_refused() -> None:
    with pytest.raises(RuntimeUnavailable) as caught:
        choose(RUNSC, WITHOUT)
    message = str(caught.value)
    assert "[worker] runtime = 'runsc'" in message and "make setup" in message
    assert "io.containerd.runc.v2, runc" in message  # what the engine does have
    assert caught.value.registered == ("io.containerd.runc.v2", "runc")
    with pytest.raises(BadRuntime, match="'gvisor' is not one of auto, runsc, runc"):
        choose("gvisor", WITH_RUNSC)


def test_job_runtime_1_the_policy_is_the_one_place_the_runtime_reaches_a_container() -> None:
    """[JOB-RUNTIME.3] every other argument is the same under both runtimes, but for the
    seccomp profile's clone3 rule [JOB-RUNTIME.10]."""
    runc = container_kwargs("img", LIMITS, {}, {}, runtime=RUNC)
    runsc = container_kwargs("img", LIMITS, {}, {}, runtime=RUNSC)
    assert (runc.pop("runtime"), runsc.pop("runtime")) == (RUNC, RUNSC)
    # gVisor's own kernel shares the cgroup: its threads and memory come on top
    assert runsc.pop("pids_limit") == runc.pop("pids_limit") + RUNSC_EXTRA_PIDS
    for key in ("mem_limit", "memswap_limit"):
        assert runsc.pop(key) == runc.pop(key) + RUNSC_EXTRA_MEMORY == LIMITS.memory_bytes \
            + RUNSC_EXTRA_MEMORY
    # [JOB-RUNTIME.10] the profile differs in its clone3 rule only (test_seccomp.py)
    assert runc.pop("security_opt") == ["no-new-privileges:true",
                                        f"seccomp={profile_text_for(RUNC)}"]
    assert runsc.pop("security_opt") == ["no-new-privileges:true",
                                         f"seccomp={profile_text_for(RUNSC)}"]
    assert repr(runc) == repr(runsc)
    assert "runtime" not in container_kwargs("img", LIMITS, {}, {})  # the engine's default


def test_job_runtime_5_a_run_with_gpus_keeps_the_engines_default_runtime() -> None:
    gpu = ResourceLimits(memory_bytes=64 * MIB, gpu_count=1)
    kwargs = container_kwargs("img", gpu, {}, {}, runtime=RUNSC)
    assert "runtime" not in kwargs and kwargs["device_requests"]


def test_job_runtime_4_register_merges_into_daemon_json_and_keeps_other_keys(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "daemon.json"
    assert register(config)  # created
    assert json.loads(config.read_text()) == {
        "runtimes": {"runsc": {"path": "/usr/bin/runsc", "runtimeArgs": list(RUNSC_ARGS)}}}
    assert not register(config)  # unchanged: the set-up does not reload the engine
    other = {"log-level": "warn", "runtimes": {"nvidia": {"path": "nvidia-container-runtime"}},
             "default-runtime": "runc"}
    config.write_text(json.dumps(other))
    assert main(["register", str(config)]) == 0
    assert capsys.readouterr().out == "changed\n"
    merged = json.loads(config.read_text())
    assert merged == with_runsc(other)
    assert merged["log-level"] == "warn" and set(merged["runtimes"]) == {"nvidia", "runsc"}
    assert merged["default-runtime"] == "runc"  # never made the engine-wide default
    assert main(["register", str(config)]) == 0
    assert capsys.readouterr().out == "unchanged\n"


def test_job_runtime_4_the_platform_is_systrap_and_the_profile_applies_inside() -> None:
    assert RUNSC_ARGS == ("--platform=systrap", "--oci-seccomp", "--network=none")


def test_job_runtime_4_setup_names_the_pinned_package(capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    """``scripts/setup_system.sh`` asks this module which runsc to install."""
    assert main(["package-version"]) == 0
    assert capsys.readouterr().out == f"{RUNSC_PACKAGE_VERSION}\n"
    script = (Path(__file__).parents[2] / "scripts" / "setup_system.sh").read_text()
    assert "python3 -m sandbox.runtime package-version" in script
    assert '"runsc=$runsc_version"' in script


def test_job_runtime_4_the_installed_runsc_is_the_pinned_release() -> None:
    """Where gVisor is installed (the doubled tests then run under it), it is exactly the
    release whose answers [JOB-RUNTIME.7] records: a stale Debian 12 runsc has no systrap
    and would fail every runsc test with an unclear error."""
    if RUNSC not in RUNTIMES:
        return  # runc only, by LC_TEST_RUNTIMES or with no runsc at all: nothing runs on it
    assert Path(RUNSC_PATH).exists()
    installed = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "runsc"],
                               capture_output=True, text=True, check=False).stdout
    assert installed == RUNSC_PACKAGE_VERSION, (
        f"runsc {installed!r} is installed, {RUNSC_PACKAGE_VERSION!r} is pinned: run make setup")


def test_job_runtime_8_the_runner_carries_its_runtime_without_asking_the_engine() -> None:
    """The runner's interface stays narrow [JOB-RUNTIME.8]: a client and a runtime name."""
    runner = SandboxRunner(client=object(), node_id="n", runtime=RUNSC)
    assert runner.runtime == RUNSC


def test_job_runtime_8_the_docker_runner_is_one_backend_of_a_narrow_interface() -> None:
    """[JOB-RUNTIME.8] What callers need is ``JobSandbox`` (checked by mypy on this line);
    a Kubernetes backend is one class beside ``SandboxRunner``."""
    backend: JobSandbox = SandboxRunner(client=object(), node_id="n", runtime=RUNSC)
    assert {"train", "evaluate", "run_entry"} <= set(dir(backend))


def test_job_runtime_9_the_sandbox_bench_reports_each_runtime() -> None:
    """[JOB-RUNTIME.9] One run of ``bench/sandbox.py`` measures both runtimes."""
    from tests.test_bench_quick import declarations

    keys = declarations(Path(__file__).parents[2] / "bench" / "sandbox.py")["JSON_KEYS"]
    for runtime in (RUNC, RUNSC):
        assert {f"{runtime}_{key}" for key in ("sandbox_s", "start_teardown_s", "evaluate_s",
                                               "predict_warm_s")} <= set(keys)
    assert {"eval_losses_equal", "platform", "runtimes"} <= set(keys)
