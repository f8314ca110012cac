"""[WORK-ATTEMPTS.1] The absolute bound on runs, through the real ``Worker`` loop.

A fast test with a stand-in sandbox (the real-Docker ones are in
``test_worker_selfcheck.py``): a runner whose every training run fails as the
engine's fault (``engine_error``, given back each time) on an engine that
answers every ping, which is what a job that could make the runner blame the
engine would look like. Before issue 13 this looped until the expiry; now the
worker stops after ``max_attempts + max_given_back`` runs, and the count
survives a restart.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any, cast

import pytest

from chain.jobspec import JobSpec
from chain.train.bodies import PostJob
from chain.transactions import sign_transaction
from chain.types import TimeMs
from client.node.config import WorkerPolicy
from client.worker.worker import Worker
from sandbox.results import FailureReason, RunResult
from sandbox.runner import SandboxRunner
from tests.framework.solo import SoloNode
from tests.ledger.harness import job_spec, make_genesis


class _Images:
    def get(self, image_id: str) -> object:
        return object()  # "already in the engine": nothing is fetched


class _Containers:
    def list(self, **_kwargs: Any) -> list[object]:
        return []


class _Client:
    """An engine that answers: ping works, the image is there, no containers are left."""

    images = _Images()
    containers = _Containers()

    def ping(self) -> bool:
        return True


class EngineBlamingRunner:
    """Every training run fails with ``engine_error`` (a ``WORKER_FAULTS`` reason)."""

    def __init__(self) -> None:
        self.client = _Client()
        self.node_id = "pytest-attempts"
        self.runtime: str | None = None  # the engine's default, as SandboxRunner names it
        self.trains = 0

    def train(self, *_args: Any, **_kwargs: Any) -> RunResult:
        self.trains += 1
        return RunResult(ok=False, reason=FailureReason.ENGINE_ERROR, exit_code=None,
                         seconds=0.0, logs=b"", output_dir=None,
                         detail="container was stopped or removed from outside")


async def _until(predicate: Any, timeout_s: float, worker: Worker) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out: {worker.summary()}")
        await asyncio.sleep(0.05)


async def test_work_attempts_1_runs_given_back_to_the_engine_are_bounded_across_restarts(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="learningchain.worker")
    genesis, keys = make_genesis(members=("submitter", "alice"))
    policy = WorkerPolicy(min_bounty=1, min_time_left_s=1, max_attempts=2, max_given_back=3)
    async with SoloNode(genesis, keys["v0"], tmp_path / "node") as node:
        spec: JobSpec = job_spec()
        from dataclasses import replace

        spec = replace(spec, expiry_ms=TimeMs(node.now_ms() + 600_000))
        tx = sign_transaction(keys["submitter"], node.chain_id,
                              node.next_nonce(keys["submitter"].address), PostJob(spec))
        assert node.submit(tx).accepted
        job_id = tx.hash
        fake = EngineBlamingRunner()
        alice = Worker(node, policy, runner=cast(SandboxRunner, fake), key=keys["alice"])
        await alice.start()
        try:
            await _until(lambda: alice.trainer is not None and job_id in alice.trainer.finished,
                         30, alice)
            await asyncio.sleep(1.0)
        finally:
            await alice.stop()
        assert fake.trains == 5  # max_attempts 2 + max_given_back 3, not "until the expiry"
        progress = alice.store.state.job(job_id)
        assert (progress.attempts, progress.runs) == (0, 5)
        assert alice.trainer is not None
        assert "max_attempts + max_given_back" in alice.trainer.finished[job_id]

        again = Worker(node, policy, runner=cast(SandboxRunner, fake), key=keys["alice"])
        await again.start()
        try:
            await _until(lambda: job_id.hex() in again.summary()["skipped"], 30,  # type: ignore[operator]
                         again)
        finally:
            await again.stop()
        assert fake.trains == 5
        assert "5 runs started" in again.summary()["skipped"][job_id.hex()]  # type: ignore[index]
