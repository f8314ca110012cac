"""[WORK-DISK.1] [VOTE-FAILED.7] A worker whose disk fills up waits for room instead of
giving up: a trainer then trains again and is paid, a verifier votes.

The trainer's case: the worker's folder (state file, run outputs, kept models) is a tmpfs of
this test's own; the job's output cannot be copied out of the container once it is full
(``host_error``, the node's fault [JOB-EXIT.5]). Before, the attempt was given back and the
worker, finding the engine answering, ran it again at once, failing the same way until its
bound on runs [WORK-ATTEMPTS.1] made it give the job up; and a state file it could not save
ended the job for good.

The verifier's case: the evaluation's files (its ``challenge.json``, the copy of its
output) go to the temporary folder, here a tmpfs of this test's own, filled after alice's
claim. Before, the evaluation failed with ``host_error`` and both voters (alice's own vote
included) abstained at once, burning their bonds [VOTE-NOSHOW.1] for a disk that says
nothing about the model. Needs root (the mounts), as CI runs.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import tempfile
from pathlib import Path

import docker
import pytest

from chain.records import JobStatus, Outcome
from client.worker.worker import Worker
from tests.client.worker import test_worker as base
from tests.client.worker.test_worker import (
    BOUNTY,
    CLAIM_WINDOW_S,
    TRAINER,
    VERIFIER,
    TemplateImage,
    claimed_then_prefetched,
    expire_once_claimed,
    job_of,
    post_job,
    put_template,
    runner,
    running,
    settled,
    template_spec,
    wait_until,
)
from tests.framework import host_engine
from tests.framework.disk_fill import fill
from tests.framework.solo import SoloNode
from tests.ledger.harness import make_genesis

pytestmark = [pytest.mark.docker]
docker_client = base.docker_client
template = base.template
no_leftover_containers = base.no_leftover_containers
worker_logs = base.worker_logs

if os.geteuid() != 0:
    if os.environ.get("CI"):
        raise RuntimeError("tests/client/worker/test_worker_disk_full.py needs root in CI")
    pytestmark.append(pytest.mark.skip(reason="mounting a tmpfs needs root"))

TMPFS_MB = 160
"""Room for the template job's 64 + 64 MiB [WORK-DISK.1] once the filler is gone."""
FULL_S = 4.0
"""How long the disk stays full once the worker reported it: several of its polls."""
COMMIT_WINDOW_MS = 240_000
"""Room for the disk to stay full a while and both voters to evaluate on a busy machine."""


async def test_work_disk_1_a_full_disk_pauses_the_job_and_it_is_paid_once_freed(
        tmp_path: Path, docker_client: docker.DockerClient, template: TemplateImage,
        caplog: pytest.LogCaptureFixture) -> None:
    host_before = host_engine.fingerprint()
    worker_dir = tmp_path / "node" / "worker"
    worker_dir.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_MB}m", "tmpfs",
                    str(worker_dir)], check=True)
    try:
        genesis, keys = make_genesis(members=("submitter", "alice"))
        async with SoloNode(genesis, keys["v0"], tmp_path / "node") as node:
            put_template(node, template)
            job_id = post_job(node, keys["submitter"],
                              template_spec(template, node.now_ms(), expiry_s=CLAIM_WINDOW_S))
            alice = Worker(node, TRAINER, runner=runner(docker_client, "alice"),
                           key=keys["alice"])
            voter = Worker(node, VERIFIER, runner=runner(docker_client, "v0"))
            async with running(alice, voter):
                await wait_until(lambda: (alice.summary()["training"] or {}).get("phase")
                                 == "training" and alice.threads.running, 90,
                                 "alice to train", [alice, voter])
                filler = await asyncio.to_thread(fill, worker_dir)
                problem = await wait_until(
                    lambda: (p := alice.summary()["engine_problem"]) and "MiB free" in p and p,
                    90, "alice to report the full disk", [alice, voter])
                assert (alice.summary()["training"] or {}).get("phase") \
                    == "waiting for disk space", alice.summary()
                assert alice.store.state.job(job_id).attempts == 0, "given back"
                assert not job_of(node, job_id).claims
                await asyncio.sleep(FULL_S)
                assert alice.summary()["engine_problem"] is not None
                assert alice.store.state.job(job_id).runs == 1, "no run while the disk is full"
                filler.unlink()
                await expire_once_claimed(node, job_id, [alice], [alice, voter], 150)
                job = await wait_until(lambda: settled(node, job_id), 150, "the job to settle",
                                       [alice, voter])
                assert alice.summary()["engine_problem"] is None
            assert job.status == JobStatus.PAID and job.winner == keys["alice"].address
            assert node.state.account(keys["alice"].address).balance == 1_000 + BOUNTY
    finally:
        subprocess.run(["umount", "-l", str(worker_dir)], check=False)
    text = caplog.text
    assert "host_error" in str(problem) or "cannot save" in str(problem), problem
    assert "the disk has room again" in text, text[-3000:]
    assert host_engine.changes(host_before, host_engine.fingerprint()) == []


async def test_vote_failed_7_a_full_disk_at_the_vote_is_waited_for_and_voted_on(
        tmp_path: Path, docker_client: docker.DockerClient, template: TemplateImage,
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(scratch)],
                   check=True)
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    try:
        genesis, keys = make_genesis(members=("submitter", "alice"))
        async with SoloNode(genesis, keys["v0"], tmp_path / "node") as node:
            put_template(node, template)
            job_id = post_job(node, keys["submitter"], template_spec(
                template, node.now_ms(), expiry_s=CLAIM_WINDOW_S,
                commit_window_ms=COMMIT_WINDOW_MS))
            alice = Worker(node, TRAINER, runner=runner(docker_client, "alice"),
                           key=keys["alice"])
            voter = Worker(node, VERIFIER, runner=runner(docker_client, "v0"))
            async with running(alice, voter):
                spec = await claimed_then_prefetched(node, job_id, alice, voter, template)
                filler = await asyncio.to_thread(fill, scratch)
                node.skip_to(spec.expiry_ms)  # the claim window's rest would pass idle
                problem = await wait_until(
                    lambda: (p := voter.engine_problem) and "MiB free" in p and p, 120,
                    "the voter to report the full disk", [alice, voter])
                await asyncio.sleep(FULL_S)
                job = job_of(node, job_id)
                assert job.status == JobStatus.VOTE_COMMIT and job.vote_of(voter.address) \
                    is None, job.status
                filler.unlink()
                settle_s = 30 + COMMIT_WINDOW_MS / 1000 + 60
                job = await wait_until(lambda: settled(node, job_id), settle_s,
                                       "the job to settle", [alice, voter])
                assert voter.engine_problem is None and alice.engine_problem is None
    finally:
        subprocess.run(["umount", "-l", str(scratch)], check=False)
    assert "host_error" in str(problem) or "could not write" in str(problem), problem
    assert job.status == JobStatus.PAID and job.winner == keys["alice"].address
    [verdict] = job.verdicts
    assert verdict.outcome == Outcome.VALID and verdict.valid_votes >= 1, verdict
    assert verdict.invalid_votes == 0, verdict
    text = caplog.text
    assert "[VOTE-FAILED.7]" in text and "the disk has room again" in text, text[-4000:]
    assert "our sandbox failed" not in text
