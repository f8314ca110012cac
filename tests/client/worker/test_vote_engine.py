"""[VOTE-FAILED.6] The Docker engine stops while a vote is due: the voters wait for it, and
evaluate once it answers, instead of abstaining (which burns a voter's bond).

The engine stopped is a private dockerd of the test's own (``private_dockerd``); the
machine's engine keeps its pid and its containers.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from chain.records import JobStatus, Outcome
from client.worker.sandboxing import remove_stopped_before
from client.worker.worker import Worker
from sandbox.policy import LABEL_JOB, LABEL_MANAGED, LABEL_NODE
from tests.client.worker import test_worker as base
from tests.client.worker.test_worker import (
    CLAIM_WINDOW_S,
    TRAINER,
    VERIFIER,
    TemplateImage,
    claimed_then_prefetched,
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
from tests.framework.dockerd import PrivateDockerd
from tests.framework.solo import SoloNode
from tests.ledger.harness import make_genesis

pytestmark = pytest.mark.docker
docker_client = base.docker_client
template = base.template
no_leftover_containers = base.no_leftover_containers
worker_logs = base.worker_logs

COMMIT_WINDOW_MS = 240_000
"""Room for the engine to stay down a while, come back (a restart of a private engine
takes seconds), and both voters to evaluate on a busy machine."""
DOWN_S = 6.0
"""How long the engine stays down once a voter has reported it: several of its pings."""


async def test_vote_failed_6_an_engine_stopped_before_the_vote_is_waited_for_and_voted_on(
        tmp_path: Path, private_dockerd: PrivateDockerd, template: TemplateImage,
        caplog: pytest.LogCaptureFixture) -> None:
    """Alice trains and claims; then her engine (shared with the voter, as two workers of a
    demo graph share one) stops before the vote. Both evaluations fail with
    ``engine_error``; each voter reports the engine in its status and pings it, and once it
    answers again evaluates and votes: the claim is VALID and paid, nobody abstained, and
    no container of the workers is left. Before [VOTE-FAILED.6] both abstained at once
    ("our sandbox failed (engine_error"), the turn had no quorum and the bonds burned."""
    host_before = host_engine.fingerprint()
    engine = private_dockerd.client()
    genesis, keys = make_genesis(members=("submitter", "alice"))
    async with SoloNode(genesis, keys["v0"], tmp_path / "node") as node:
        put_template(node, template)
        job_id = post_job(node, keys["submitter"], template_spec(
            template, node.now_ms(), expiry_s=CLAIM_WINDOW_S, commit_window_ms=COMMIT_WINDOW_MS))
        alice = Worker(node, TRAINER, runner=runner(engine, "alice"), key=keys["alice"])
        voter = Worker(node, VERIFIER, runner=runner(engine, "v0"))
        async with running(alice, voter):
            spec = await claimed_then_prefetched(node, job_id, alice, voter, template)
            await asyncio.to_thread(private_dockerd.stop)  # SIGTERM, as an init system does
            assert private_dockerd.pid is None
            node.skip_to(spec.expiry_ms)  # the claim window's rest would pass idle
            problem = await wait_until(lambda: voter.engine_problem, 120,
                                       "the voter to report the engine", [alice, voter])
            assert problem and voter.summary()["engine_problem"] is not None
            await asyncio.sleep(DOWN_S)
            job = job_of(node, job_id)
            assert job.status == JobStatus.VOTE_COMMIT and job.vote_of(voter.address) is None
            await asyncio.to_thread(private_dockerd.start)
            settle_s = 30 + COMMIT_WINDOW_MS / 1000 + 60
            job = await wait_until(lambda: settled(node, job_id), settle_s,
                                   "the job to settle", [alice, voter])
            assert voter.engine_problem is None and alice.engine_problem is None
    assert job.status == JobStatus.PAID and job.winner == keys["alice"].address
    [verdict] = job.verdicts
    assert verdict.outcome == Outcome.VALID and verdict.valid_votes >= 1, verdict
    assert verdict.invalid_votes == 0, verdict
    text = caplog.text
    assert text.count("waiting for it to evaluate once more before the vote window closes "
                      "[VOTE-FAILED.6]") == 2, text[-4000:]
    assert text.count("the Docker engine answers again") == 2
    assert "our sandbox failed" not in text
    assert host_engine.changes(host_before, host_engine.fingerprint()) == []


def test_vote_failed_6_only_what_the_outage_left_is_removed(
        private_dockerd: PrivateDockerd) -> None:
    """After the engine answers again a voter removes its own job containers that are exited
    or dead and were made before it saw the outage; a running one (an engine with live
    restore keeps them), one made since, and another worker's are left."""
    engine = private_dockerd.client()
    base_image = engine.images.list()[0].id
    me, other = b"\x01" * 20, b"\x02" * 20

    def make(owner: bytes, command: list[str]) -> str:
        labels = {LABEL_MANAGED: "1", LABEL_NODE: "lc-test-v0",
                  LABEL_JOB: f"job-{owner.hex()[:12]}"}
        container = engine.containers.run(base_image, command, labels=labels, detach=True,
                                          network_mode="none")
        if command == ["true"]:
            container.wait(timeout=60)
        return str(container.name)

    stale = make(me, ["true"])
    running_one = make(me, ["sleep", "600"])
    theirs = make(other, ["true"])
    seen = time.time() + 1.0  # the engine's clock is this machine's; a second of slack
    time.sleep(1.5)
    fresh = make(me, ["true"])
    assert remove_stopped_before(engine, "lc-test-v0", me, seen) == [stale]
    left = {c.name for c in engine.containers.list(all=True)}
    assert {running_one, theirs, fresh} <= left and stale not in left
