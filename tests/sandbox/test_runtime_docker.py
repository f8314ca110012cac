"""The same results under runc and runsc [JOB-RUNTIME.6].

A claimer whose worker runs gVisor and a voter whose worker runs plain runc must measure
the same loss for the same model, bit for bit, or an honest claim would be voted down
because of a runtime. The template is trained once under each runtime of ``RUNTIMES``
(the claimer), then its model is evaluated by the claimer (both self-check runs
[EVAL-ENV.8]) and by a voter under every runtime. The engine's own view of a container
under each runtime, and the output rules through each, complete the doubled battery.
"""

from __future__ import annotations

from pathlib import Path

import docker
import pytest

from sandbox import policy
from sandbox.job_file import load_job_file
from sandbox.job_template import BuiltJob
from sandbox.limits import MIB, ResourceLimits, TrainParams
from sandbox.results import FailureReason
from sandbox.runner import SandboxRunner
from sandbox.runtime import RUNC, RUNSC, RUNSC_EXTRA_MEMORY, RUNSC_EXTRA_PIDS, resolve
from sandbox.seccomp import profile_text_for
from tests.sandbox.conftest import NODE_ID
from tests.sandbox.runtimes import RUNTIMES

pytestmark = pytest.mark.docker

LIMITS = ResourceLimits(memory_bytes=128 * MIB, pids=32, wall_time_s=20.0, tmp_bytes=MIB,
                        output_bytes=2 * MIB, model_bytes=MIB, log_bytes=64 * 1024)
PARAMS = TrainParams(seed=11, hyperparameters={"learning_rate": 0.01, "hidden_size": 64,
                                               "epochs": 8})


def runner_for(client: docker.DockerClient, runtime: str) -> SandboxRunner:
    return SandboxRunner(client, node_id=NODE_ID, runtime=resolve(client, runtime).name)


@pytest.mark.parametrize("claimer", RUNTIMES)
def test_job_runtime_6_a_claimer_and_voters_on_either_runtime_measure_the_same_loss(
        claimer: str, docker_client: docker.DockerClient, template_job: BuiltJob,
        template_dir: Path, template_data_dirs: dict[str, Path], tmp_path: Path) -> None:
    limits = load_job_file(template_dir).limits
    trained = runner_for(docker_client, claimer).train(
        template_job.image_id, PARAMS, limits, None, tmp_path / "out", job_id="runtime",
        data=template_data_dirs)
    assert trained.ok and trained.model_path is not None, (trained.reason, trained.log_tail)
    losses = {}
    for voter in RUNTIMES:
        for variant in (0, 1) if voter == claimer else (0,):
            result = runner_for(docker_client, voter).evaluate(
                template_job.image_id, trained.model_path, limits, job_id="runtime",
                variant=variant, data=template_data_dirs)
            assert result.ok and result.loss is not None, (voter, result)
            losses[(voter, variant)] = result.loss.hex()
    assert len(set(losses.values())) == 1, losses
    assert 0 < float.fromhex(next(iter(losses.values()))) < 0.5  # trained, not chance


def test_job_runtime_3_the_engine_applies_the_same_limits_under_runsc(
        docker_client: docker.DockerClient, base_image: str, tmp_path: Path) -> None:
    """The engine's own view of a runsc container: [JOB-SANDBOX.1]'s settings, the runtime,
    and the job's memory and pids plus what gVisor's own kernel needs."""
    (tmp_path / "in").mkdir()
    hosts = {}
    for runtime in RUNTIMES:
        kwargs = policy.container_kwargs(base_image, LIMITS, policy.labels_for("j", NODE_ID, "t"),
                                         {policy.INPUT_MOUNT: tmp_path / "in"},
                                         runtime=resolve(docker_client, runtime).name)
        container = docker_client.containers.create(**kwargs)
        try:
            hosts[runtime] = container.attrs["HostConfig"]
        finally:
            container.remove(force=True, v=True)
    for runtime, host in hosts.items():
        extra_pids, extra_memory = (RUNSC_EXTRA_PIDS, RUNSC_EXTRA_MEMORY) if runtime == RUNSC \
            else (0, 0)
        assert host["Runtime"] == runtime
        assert host["PidsLimit"] == LIMITS.pids + extra_pids
        assert host["Memory"] == host["MemorySwap"] == LIMITS.memory_bytes + extra_memory
        same = {key: host[key] for key in ("NetworkMode", "ReadonlyRootfs", "CapDrop",
                                           "Privileged", "NanoCpus", "Ulimits",
                                           "ShmSize", "IpcMode", "LogConfig")}
        assert same == {key: hosts[RUNC][key] for key in same}
        # [JOB-RUNTIME.10] the profile differs in its clone3 rule only (test_seccomp.py)
        assert host["SecurityOpt"] == ["no-new-privileges:true",
                                       f"seccomp={profile_text_for(runtime)}"]
        assert [(m["Target"], m["Type"]) for m in host["Mounts"]] == \
            [(m["Target"], m["Type"]) for m in hosts[RUNC]["Mounts"]]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_job_runtime_6_output_rules_are_the_same_under_each_runtime(
        runtime: str, docker_client: docker.DockerClient, hostile_image: str,
        tmp_path: Path) -> None:
    """[JOB-OUT.1-2] through the engine's archive of the gofer-served volume under runsc: a
    tree is copied out as written, a link fails the run as ``bad_output``."""
    runner = runner_for(docker_client, runtime)
    result = runner.run_entry(hostile_image, "train", ["sh", "-c",
                              "mkdir -p /output/a/b && echo one > /output/a/b/x "
                              "&& printf two > /output/y"], {}, LIMITS, tmp_path / "tree")
    assert result.ok, result
    assert (tmp_path / "tree" / "a" / "b" / "x").read_text() == "one\n"
    assert (tmp_path / "tree" / "y").read_text() == "two"
    linked = runner.run_entry(hostile_image, "train",
                              ["sh", "-c", "ln -s /etc/shadow /output/model.pt"], {}, LIMITS,
                              tmp_path / "link")
    assert linked.reason == FailureReason.BAD_OUTPUT
    assert not any((tmp_path / "link").iterdir())


def test_job_runtime_13_an_evaluate_keyed_on_the_kernel_gives_one_loss_on_a_graph(
        docker_client: docker.DockerClient, hostile_image: str, tmp_path: Path) -> None:
    """[JOB-RUNTIME.13] [GENESIS-RUNTIME.1] issue 47 §4: an evaluate that reads the kernel
    release scored 0.25 for a gVisor claimer and its gVisor voters, 4.0 for a runc voter,
    so all-runc voters made an honest claimer a cheat. Members whose workers train under
    different runtimes (``runtime``) now evaluate under the one the genesis names
    (``eval_runtime``): one loss for the claimer's self-check and every voter."""
    assert RUNSC in RUNTIMES, "gVisor must be installed (make setup) for this test"
    model = tmp_path / "model.pt"
    model.write_bytes(b"weights")

    def loss(runtime: str, eval_runtime: str | None, variant: int = 0) -> float | None:
        runner = SandboxRunner(docker_client, node_id=NODE_ID, runtime=runtime,
                               eval_runtime=eval_runtime)
        result = runner.evaluate(hostile_image, model, LIMITS, job_id="kernel-eval",
                                 argv=["python3", "/job/hostile/kernel_eval.py"],
                                 variant=variant)
        assert result.ok, result
        return result.loss

    before = {runtime: loss(runtime, None) for runtime in (RUNSC, RUNC)}
    assert before == {RUNSC: 0.25, RUNC: 4.0}  # each member its own runtime: framed
    for graph in (RUNSC, RUNC):
        claimer = [loss(RUNSC, graph), loss(RUNSC, graph, variant=1)]  # the self-check
        voters = [loss(RUNC, graph), loss(RUNSC, graph)]
        assert set(claimer + voters) == {before[graph]}, (graph, claimer, voters)
