"""A worker and GPU jobs [WORK-GPU.1]: what it offers, what it takes.

Pure checks of the offer (config, detection, the engine's runtime) and of the skip
decision; then a real worker on a SoloNode with the machine's GPU-less engine: a GPU
job posted on chain is never taken while a CPU job posted beside it is trained and
claimed.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import docker
import pytest

from chain.jobspec import ResourceLimits
from chain.records import Claim, Job
from chain.types import Address
from client.node.config import ConfigError, NodeConfig, WorkerPolicy
from client.worker.gpus import GpuOffer, effective_policy, probe_offer, resolve_offer
from client.worker.policy import gpus_lacking, skip_reason
from client.worker.worker import Worker
from sandbox.gpu import HostGpus
from tests.client.worker import test_worker as base
from tests.client.worker.test_worker import (
    TRAINER,
    TemplateImage,
    job_of,
    post_job,
    put_template,
    runner,
    running,
    template_spec,
    wait_until,
)
from tests.client.worker.test_worker_policy import NOW, POLICY, member, open_job
from tests.framework.solo import SoloNode
from tests.ledger.harness import make_genesis

docker_client = base.docker_client
template = base.template
no_leftover_containers = base.no_leftover_containers
worker_logs = base.worker_logs

CPU_LIMITS = ResourceLimits(512, 1000, 60, 64)


def gpu_job(count: int = 1, memory_mb: int = 8192) -> Job:
    return open_job(limits=replace(CPU_LIMITS, gpu_count=count, gpu_memory_mb=memory_mb))


# -- the offer ----------------------------------------------------------------------------


@pytest.mark.parametrize("policy, runtime, host, offered, why", [
    (WorkerPolicy(), True, None, (0, 0), "no GPU offered (config)"),
    (WorkerPolicy(gpus=2, gpu_memory_mb=24576), True, None, (2, 24576),
     "2 GPU(s) of 24576 MiB each offered (config)"),
    (WorkerPolicy(gpus=2, gpu_memory_mb=24576), False, None, (0, 0),
     "no GPU offered: 2 GPU(s) of 24576 MiB from config, but the Docker engine has no NVIDIA "
     "runtime [JOB-GPU.2]"),
    (WorkerPolicy(detect_gpus=True), True, HostGpus((16384, 8192), "nvidia-smi: 2"), (2, 8192),
     "2 GPU(s) of 8192 MiB each offered (detected (nvidia-smi: 2))"),
    (WorkerPolicy(gpus=4, detect_gpus=True), True, HostGpus((), "no nvidia-smi"), (0, 0),
     "no GPU offered (detected (no nvidia-smi))"),
    (WorkerPolicy(detect_gpus=True), False, HostGpus((16384,), "nvidia-smi: 1"), (0, 0),
     "but the Docker engine has no NVIDIA runtime"),
])
def test_work_gpu_1_the_offer_needs_the_config_or_detection_and_the_runtime(
        policy: WorkerPolicy, runtime: bool, host: HostGpus | None,
        offered: tuple[int, int], why: str) -> None:
    """[WORK-GPU.1] Config or detection says what the host has (detection wins, the smallest
    GPU's memory counts); without the engine's NVIDIA runtime nothing is offered."""
    offer = resolve_offer(policy, runtime, host)
    assert (offer.count, offer.memory_mb) == offered
    assert why in offer.detail, offer.detail
    effective = effective_policy(policy, offer)
    assert (effective.gpus, effective.gpu_memory_mb, effective.detect_gpus) == (*offered, False)


@pytest.mark.docker
def test_work_gpu_1_this_machine_offers_no_gpu_even_when_the_config_says_so() -> None:
    """[WORK-GPU.1] The probes on this machine: its engine has no NVIDIA runtime and it has
    no nvidia-smi, so neither config nor detection offers a GPU."""
    from sandbox.engine import connect

    client = connect()
    for policy in (WorkerPolicy(gpus=1, gpu_memory_mb=4096), WorkerPolicy(detect_gpus=True)):
        offer = probe_offer(policy, client)
        assert (offer.count, offer.memory_mb) == (0, 0), offer
    assert probe_offer(WorkerPolicy(), client) == GpuOffer(0, 0,
                                                           "no GPU offered (config gpus = 0)")


def test_work_gpu_1_gpu_keys_in_the_worker_config(tmp_path: Path) -> None:
    """[WORK-GPU.1] ``[worker] gpus``, ``gpu_memory_mb``, ``detect_gpus`` are config keys,
    checked like the others."""
    doc = {"node": {"key_file": "k", "genesis": "g"},
           "worker": {"gpus": 2, "gpu_memory_mb": 16384, "detect_gpus": True}}
    worker = NodeConfig.from_dict(doc, tmp_path / "config.toml").worker
    assert (worker.gpus, worker.gpu_memory_mb, worker.detect_gpus) == (2, 16384, True)
    doc["worker"] = {"gpus": -1}
    with pytest.raises(ConfigError, match=r"\[worker\] gpus = -1 is not a valid int"):
        NodeConfig.from_dict(doc, tmp_path / "config.toml")


# -- the decision -------------------------------------------------------------------------


def test_work_gpu_1_a_gpu_job_is_skipped_by_a_worker_without_enough_gpus() -> None:
    """[WORK-GPU.1] Too few GPUs (``gpu_count``) or too little memory on each
    (``gpu_memory``) is a skip with its reason; enough of both, or a CPU job, is not."""
    none = skip_reason(gpu_job(), member(), POLICY, NOW)
    assert none is not None and none.code == "gpu_count"
    assert str(none) == "needs 1 GPU(s); this worker offers 0"
    two = replace(POLICY, gpus=2, gpu_memory_mb=8192)
    few = skip_reason(gpu_job(count=3), member(), two, NOW)
    assert few is not None and str(few) == "needs 3 GPU(s); this worker offers 2"
    small = skip_reason(gpu_job(memory_mb=8193), member(), two, NOW)
    assert small is not None and small.code == "gpu_memory"
    assert str(small) == "needs 8193 MiB per GPU; this worker's GPUs have 8192"
    assert skip_reason(gpu_job(count=2), member(), two, NOW) is None
    assert skip_reason(gpu_job(memory_mb=0), member(), replace(POLICY, gpus=1),
                       NOW) is None
    assert skip_reason(open_job(limits=CPU_LIMITS), member(), POLICY, NOW) is None
    assert gpus_lacking(open_job(limits=CPU_LIMITS).spec, POLICY) is None


# -- on a real node -----------------------------------------------------------------------


@pytest.mark.docker
async def test_work_gpu_1_a_gpu_job_on_chain_is_never_taken_by_this_gpu_less_worker(
        tmp_path: Path, docker_client: docker.DockerClient, template: TemplateImage,
        caplog: pytest.LogCaptureFixture) -> None:
    """[WORK-GPU.1] [JOB-GPU.1] Two template jobs on chain, one requesting a GPU. Alice's
    config offers a GPU, but this machine's engine has no NVIDIA runtime, so she offers
    none: she trains and claims the CPU job and never takes the GPU job (no pick, no
    attempt, no claim), its skip reason in her status."""
    genesis, keys = make_genesis(members=("submitter", "alice"))
    async with SoloNode(genesis, keys["v0"], tmp_path / "node") as node:
        put_template(node, template)
        spec = template_spec(template, node.now_ms(), expiry_s=90)
        gpu_spec = replace(spec, limits=replace(spec.limits, gpu_count=1, gpu_memory_mb=1024),
                           description="needs a GPU")
        gpu_id = post_job(node, keys["submitter"], gpu_spec)
        cpu_id = post_job(node, keys["submitter"], spec)
        policy = replace(TRAINER, gpus=1, gpu_memory_mb=24576)
        alice = Worker(node, policy, runner=runner(docker_client, "alice"), key=keys["alice"])
        async with running(alice):
            await wait_until(lambda: _claim(node, cpu_id, keys["alice"].address), 120,
                             "alice's claim on the CPU job", [alice])
            await wait_until(lambda: alice.summary()["training"] is None, 60,
                             "alice done training", [alice])
            summary = alice.summary()
        assert job_of(node, gpu_id).spec.limits.to_wire()[7:] == [1, 1024]
        assert job_of(node, gpu_id).claims == ()
        skipped = summary["skipped"]
        assert isinstance(skipped, dict)
        assert skipped[gpu_id.hex()] == "needs 1 GPU(s); this worker offers 0", skipped
        assert alice.policy.gpus == 0
    messages = [r.getMessage() for r in caplog.records if r.name == "learningchain.worker"]
    assert ("GPUs: no GPU offered: 1 GPU(s) of 24576 MiB from config, but the Docker engine "
            "has no NVIDIA runtime [JOB-GPU.2]") in messages
    about_gpu = [m for m in messages if gpu_id.hex()[:12] in m]
    assert about_gpu == [f"job {gpu_id.hex()[:12]} skipped: needs 1 GPU(s); this worker "
                         f"offers 0"], about_gpu  # logged once; never picked, fetched or run
    assert any(m.startswith(f"job {cpu_id.hex()[:12]} picked: bounty") for m in messages)
    assert alice.attempts.latest(gpu_id.hex()) is None
    assert alice.attempts.latest(cpu_id.hex()) is not None


def _claim(node: SoloNode, job_id: bytes, claimer: Address) -> Claim | None:
    """The claim once the job (posted, perhaps not yet in a block) holds one of ``claimer``."""
    job = node.state.job(job_id)
    return job.claim_of(claimer) if job is not None else None
