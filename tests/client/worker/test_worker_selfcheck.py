"""Hostile jobs against the real ``Worker`` (issue 13 §1, §2): self-check and bounded runs.

Each test posts a small hostile job (a Python script on the offline base
image) on a real ``SoloNode`` and lets a real ``Worker`` with a real Docker
sandbox take it, through the same code path production uses:

- [WORK-SELFCHECK.1] an evaluate that is not a function of the model (random,
  or garbage metrics) is evaluated twice before any claim; the worker does not
  claim, marks the job inconsistent (status, log) and never runs it again,
  even after a restart;
- [WORK-ATTEMPTS.1] a train that writes a path deeper than the host's
  PATH_MAX into /output (which once made workers run one job 152 times) is
  the job's fault: each run uses up an attempt, the job is run exactly
  ``max_attempts`` times, and a restarted worker does not run it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import docker
import docker.errors
import pytest

from chain.crypto import PrivateKey
from chain.jobspec import JobSpec, ParamSpec, ResourceLimits, VotingParams
from chain.train.bodies import PostJob
from chain.transactions import sign_transaction
from chain.types import Amount, Hash32, TimeMs
from client.node.config import WorkerPolicy
from client.worker.attempt_log import job_attempts
from client.worker.worker import Worker
from sandbox.base_image import BASE_TAG, build_image, ensure_base_image
from sandbox.engine import connect
from sandbox.image_blob import digest_bytes, export_image
from sandbox.policy import LABEL_MANAGED, LABEL_NODE
from sandbox.runner import SandboxRunner
from tests.framework.solo import SoloNode
from tests.ledger.harness import make_genesis

pytestmark = pytest.mark.docker

NODE_PREFIX = f"pytest-selfcheck-{os.getpid()}"
T = TypeVar("T")

TRAIN = """#!/usr/bin/env python3
import json, os, sys
mode = sys.argv[1] if len(sys.argv) > 1 else "ok"
if mode == "deep":  # a path twice the host's PATH_MAX: 40 folders of 200 bytes
    os.chdir("/output")
    for _ in range(40):
        os.mkdir("d" * 200)
        os.chdir("d" * 200)
    open("leaf", "w").write("x")
with open("/output/model.pt", "w") as f:
    json.dump({"seed": json.loads(os.environ["LC_PARAMS"])["seed"]}, f)
"""

EVALUATE = """#!/usr/bin/env python3
import json, os, sys
mode = sys.argv[1] if len(sys.argv) > 1 else "ok"
with open("/output/metrics.json", "w") as f:
    if mode == "random":  # not a function of the model: os.urandom is not seeded by LC_SEED
        f.write(json.dumps({"loss": int.from_bytes(os.urandom(4), "big") / 2**32}))
    elif mode == "garbage":  # a 400-digit loss
        f.write('{"loss": ' + "9" * 400 + "}")
    else:
        f.write(json.dumps({"loss": 0.25}))
"""


@dataclass(frozen=True, slots=True)
class HostileImage:
    image_id: str
    blob_path: Path
    blob_id: bytes


@pytest.fixture(scope="module")
def docker_client() -> docker.DockerClient:
    return connect()


@pytest.fixture(scope="module")
def hostile(docker_client: docker.DockerClient,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostileImage]:
    ensure_base_image(docker_client, log=lambda _m: None)
    context = tmp_path_factory.mktemp("hostile-job")
    for name, text in (("train", TRAIN), ("evaluate", EVALUATE)):
        (context / name).write_text(text)
        (context / name).chmod(0o755)
    (context / "Dockerfile").write_text(
        f"FROM {BASE_TAG}\nCOPY train evaluate /job/\nUSER 65534:65534\nWORKDIR /tmp\n")
    image_id = build_image(docker_client, context, "learningchain/pytest-hostile-worker:latest",
                           lambda _m: None)
    blob = export_image(docker_client, image_id, context / "image.tar")
    yield HostileImage(image_id, blob.path, blob.blob_id)
    blob.path.unlink(missing_ok=True)  # a 1 GB tar: the retention policy keeps module dirs


@pytest.fixture(autouse=True)
def no_leftover_containers(docker_client: docker.DockerClient) -> Iterator[None]:
    yield
    left = [c for c in docker_client.containers.list(ignore_removed=True, all=True,
                                                     filters={"label": f"{LABEL_MANAGED}=1"})
            if str(c.labels.get(LABEL_NODE, "")).startswith(NODE_PREFIX)]
    for container in left:
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)
    assert not left, f"containers left behind: {[c.name for c in left]}"


@pytest.fixture(autouse=True)
def worker_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="learningchain.worker")


def spec_for(image: HostileImage, now_ms: int, train: str, evaluate: str) -> JobSpec:
    return JobSpec(
        kind="train/v1", image_digest=Hash32(digest_bytes(image.image_id)),
        image_blob=Hash32(image.blob_id), image_ref="pytest-hostile",
        entry_points=(("evaluate", ("/job/evaluate", evaluate)), ("train", ("/job/train", train))),
        limits=ResourceLimits(memory_mb=256, cpu_millis=1000, time_s=30, disk_mb=16, model_mb=1),
        search_space=(ParamSpec("width", "choice", (1, 2)),),
        bounty=Amount(100), expiry_ms=TimeMs(now_ms + 120_000), loss_tolerance=1e-3,
        voting=VotingParams(reveal_window_ms=10_000, commit_window_ms=10_000,
                            vote_reveal_window_ms=10_000, quorum_permille=500,
                            supermajority_permille=667, voter_reward=Amount(3), max_turns=3),
        description="hostile job")


def post(node: SoloNode, key: PrivateKey, spec: JobSpec) -> bytes:
    tx = sign_transaction(key, node.chain_id, node.next_nonce(key.address), PostJob(spec))
    result = node.submit(tx)
    assert result.accepted, result
    return tx.hash


async def wait_until(predicate: Callable[[], T | None], timeout_s: float, what: str,
                     worker: Worker) -> T:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}: "
                                 f"{worker.summary()}")
        await asyncio.sleep(0.1)


def training_done(worker: Worker, job_id: bytes) -> Callable[[], bool]:
    def check() -> bool:
        trainer = worker.trainer
        return trainer is not None and job_id in trainer.finished and trainer.now is None
    return check


POLICY = WorkerPolicy(min_bounty=1, min_time_left_s=5, max_memory_mb=1024, max_time_s=60,
                      max_disk_mb=64, max_attempts=3, max_given_back=2)


@pytest.mark.parametrize("evaluate", ["random", "garbage"])
async def test_work_selfcheck_1_irreproducible_or_broken_evaluate_is_never_claimed(
        tmp_path: Path, docker_client: docker.DockerClient, hostile: HostileImage,
        caplog: pytest.LogCaptureFixture, evaluate: str) -> None:
    genesis, keys = make_genesis(members=("submitter", "alice"))
    async with SoloNode(genesis, keys["v0"], tmp_path / "node") as node:
        node.put_blob_file(hostile.blob_path)
        job_id = post(node, keys["submitter"], spec_for(hostile, node.now_ms(), "ok", evaluate))
        runner = SandboxRunner(docker_client, node_id=f"{NODE_PREFIX}-alice")
        alice = Worker(node, POLICY, runner=runner, key=keys["alice"])
        await alice.start()
        try:
            await wait_until(training_done(alice, job_id), 90, "alice to give the job up", alice)
            await asyncio.sleep(2.0)  # a few more blocks: she must not pick it again
            summary = alice.summary()
        finally:
            await alice.stop()
        job = node.state.job(job_id)
        assert job is not None and job.claims == ()
        assert summary["sent"] == {}
        inconsistent = summary["inconsistent"]
        assert isinstance(inconsistent, dict) and job_id.hex() in inconsistent
        progress = summary["jobs"][job_id.hex()]  # type: ignore[index]
        assert progress["runs"] == 1 and progress["attempts"] == 1, progress
        assert alice.trainer is not None and alice.trainer.inconsistent_found == 1
        if evaluate == "random":
            assert "does not reproduce" in inconsistent[job_id.hex()]
            assert "run 2 (variant): loss" in inconsistent[job_id.hex()]
        else:
            assert "bad_metrics" in inconsistent[job_id.hex()]
        assert "INCONSISTENT, not claiming and not running it again" in caplog.text
        assert caplog.text.count("attempt 1/3: params") == 1
        assert "attempt 2/3" not in caplog.text
        # [API-JOBLOG.1] the submitter can learn why: the attempt's record says so
        [record] = job_attempts(node.data_dir / "worker", job_id)
        assert (record.stage, record.outcome, record.fault, record.run) == (
            "self-check", "failed", "job", 1)
        assert record.reason == ("inconsistent" if evaluate == "random" else "bad_metrics")
        # [API-JOBLOG.3] the worker status serves the line the record serves: one rule
        assert inconsistent[job_id.hex()] == record.detail
        assert progress["last_failure"] == f"self-check: {record.reason}: {record.detail}"

        # a restart on the same folder remembers: the job is skipped, never run again
        again = Worker(node, POLICY, runner=runner, key=keys["alice"])
        await again.start()
        try:
            await wait_until(lambda: job_id.hex() in again.summary()["skipped"], 30,  # type: ignore[operator]
                             "the restarted worker to skip the job", again)
        finally:
            await again.stop()
        assert "inconsistent job" in again.summary()["skipped"][job_id.hex()]  # type: ignore[index]
        assert caplog.text.count("attempt 1/3: params") == 1


async def test_work_attempts_1_output_deeper_than_path_max_runs_at_most_max_attempts(
        tmp_path: Path, docker_client: docker.DockerClient, hostile: HostileImage,
        caplog: pytest.LogCaptureFixture) -> None:
    """Issue 13 §2: 152 runs by 2 workers whose policy allowed 3 each. Now: exactly 3."""
    genesis, keys = make_genesis(members=("submitter", "alice"))
    async with SoloNode(genesis, keys["v0"], tmp_path / "node") as node:
        node.put_blob_file(hostile.blob_path)
        job_id = post(node, keys["submitter"], spec_for(hostile, node.now_ms(), "deep", "ok"))
        runner = SandboxRunner(docker_client, node_id=f"{NODE_PREFIX}-alice")
        alice = Worker(node, POLICY, runner=runner, key=keys["alice"])
        await alice.start()
        try:
            await wait_until(training_done(alice, job_id), 120, "alice to give the job up", alice)
            await asyncio.sleep(2.0)
        finally:
            await alice.stop()
        progress = alice.store.state.job(job_id)
        assert (progress.attempts, progress.runs) == (3, 3)
        assert alice.summary()["engine_problem"] is None
        text = caplog.text
        assert text.count("training failed: bad_output") == 3
        assert "attempt 4/" not in text and "paused: the Docker engine failed" not in text
        assert "all 3 attempts used" in text
        records = job_attempts(node.data_dir / "worker", job_id)
        assert [(r.attempt, r.stage, r.reason, r.fault) for r in records] == [
            (n, "train", "bad_output", "job") for n in (1, 2, 3)]
        assert all(r.detail.startswith("output ") and r.exit_code == 0 for r in records), records

        again = Worker(node, POLICY, runner=runner, key=keys["alice"])
        await again.start()
        try:
            await wait_until(lambda: job_id.hex() in again.summary()["skipped"], 30,  # type: ignore[operator]
                             "the restarted worker to skip the job", again)
        finally:
            await again.stop()
        assert caplog.text.count("training failed: bad_output") == 3
        job = node.state.job(job_id)
        assert job is not None and job.claims == ()

