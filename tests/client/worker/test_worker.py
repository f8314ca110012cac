"""The worker end to end: real ledger (SoloNode), real Docker sandbox, the template job.

Each scenario posts the template digits job with short windows and lets
real ``Worker``s run it: train, claim, reveal, verify, vote. Several
workers with different member keys share one SoloNode (``Worker(key=...)``).
The job image is built and exported once per session (as tests/sandbox do).
Time the chain would only spend idle (the rest of the claim window once every
worker has claimed, a commit window waiting for a voter that never votes) is
skipped by moving the node's clock (``SoloNode.skip_to``); the windows stay
the bounds the work must fit in on a loaded machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import docker
import docker.errors
import pytest

from chain.crypto import PrivateKey
from chain.jobspec import TRAIN_V2, DataRef, JobSpec, ParamSpec, ResourceLimits, VotingParams
from chain.records import SETTLED, Job, JobStatus, Outcome
from chain.train.bodies import ClaimLoss, PostJob, RevealModel, model_commitment
from chain.transactions import sign_transaction
from chain.types import Address, Amount, Hash32, TimeMs
from client.node.config import WorkerPolicy
from client.worker.policy import sandbox_limits
from client.worker.sandboxing import ImageCache, Threads, has_image
from client.worker.worker import Worker
from sandbox.base_image import ROOTFS_TAG, build_image, ensure_base_image
from sandbox.data_blob import pack_data
from sandbox.engine import connect
from sandbox.image_blob import digest_bytes, export_image
from sandbox.job_file import load_job_file
from sandbox.job_template import build_job, init_job
from sandbox.policy import LABEL_MANAGED, LABEL_NODE
from sandbox.runner import SandboxRunner
from tests.framework import host_engine
from tests.framework.dockerd import PrivateDockerd
from tests.framework.image_export import cached_export
from tests.framework.solo import SoloNode
from tests.framework.template_v2 import make_v2
from tests.framework.wait import wait_until_async
from tests.ledger.harness import job_spec, make_genesis

pytestmark = pytest.mark.docker

NODE_PREFIX = f"pytest-worker-{os.getpid()}"
"""Every container these tests start carries a node label starting with this."""
BOUNTY = 100
REWARD = 6
TURNS = 3
TRAINER = WorkerPolicy(min_bounty=1, min_time_left_s=5, max_memory_mb=2048, max_cpu_millis=2000,
                       max_time_s=120, max_disk_mb=128, max_attempts=1)
VERIFIER = WorkerPolicy(min_bounty=10**9, verify=True)
"""Takes no job (no bounty is that high) but verifies every claim it is eligible for."""
CLAIM_WINDOW_S = 120.0
"""A job's claim window. Once every trainer has claimed (one attempt each) the rest of it is
skipped (``expire_once_claimed``), so a long one costs a quiet machine nothing; 30 s ended
jobs refunded (no claim yet) in a repeat run with the machine 5x overcommitted (load 9.5 on
2 cores: two test lanes plus parallel work)."""
RELOAD_COMMIT_WINDOW_MS = 240_000
"""The commit window of a vote whose voters must first load the job's gigabyte image again
[VOTE-FAILED.4]: both workers of the test share one engine and load it side by side. 60 s
left both without a measured loss ([VOTE-FAILED.3]: the job ended broken) in run 1 of a
`make test-repeat` on 2026-11-25, while the other test process loaded the base image into
three private engines (tests/hosts/test_job_on_hosts.py). The window ends once both have
committed [VOTE-SELF.1], so a long one costs a quiet machine nothing."""
T = TypeVar("T")


def _quiet(_message: str) -> None:
    pass


@dataclass(frozen=True, slots=True)
class TemplateImage:
    image_id: str
    tag: str
    blob_path: Path
    blob_id: bytes
    entry_points: tuple[tuple[str, tuple[str, ...]], ...]
    data: tuple[tuple[str, Path, DataRef], ...] = ()
    """[JOB-DATA.2] role, packed data tar, its reference: the job is train/v2."""


@pytest.fixture(scope="session")
def docker_client() -> docker.DockerClient:
    return connect()


@pytest.fixture(scope="session")
def template(docker_client: docker.DockerClient,
             tmp_path_factory: pytest.TempPathFactory) -> TemplateImage:
    """The template job built (cached layers: seconds) and saved to a blob file once per
    machine (``tests.framework.image_export``: every module importing this fixture ran it), with
    its data packed as train/v2 blobs: ``job init`` writes a train/v3 job whose validation
    rows are a hidden-test-set pool; ``make_v2`` joins them back into data/valid.csv,
    which is packed below as the ``valid`` blob of ``template_spec``'s train/v2 job."""
    ensure_base_image(docker_client, log=_quiet)
    job_dir = tmp_path_factory.mktemp("worker-template") / "job"
    init_job(job_dir, name="pytest-worker-digits")
    make_v2(job_dir)
    built = build_job(docker_client, job_dir, log=_quiet)
    folder = tmp_path_factory.mktemp("worker-blob")
    blob = cached_export(docker_client, built.image_id)
    job = load_job_file(job_dir)
    data = []
    for role, path in job.data_paths(job_dir).items():
        packed = pack_data(path, folder / f"data-{role}.tar")
        data.append((role, packed.path, DataRef(Hash32(packed.blob_id), packed.size)))
    return TemplateImage(built.image_id, built.tag, blob.path, blob.blob_id,
                         job.entry_points, tuple(data))


def put_template(node: SoloNode, template: TemplateImage) -> bytes:
    """The submitter's uploads: the image blob and every data blob [JOB-DATA.4]."""
    for _role, path, ref in template.data:
        assert node.put_blob_file(path) == ref.blob
    return node.put_blob_file(template.blob_path)


@pytest.fixture(autouse=True)
def no_leftover_containers(docker_client: docker.DockerClient) -> Iterator[None]:
    """A stopped worker leaves none of its containers behind."""
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


def runner(client: docker.DockerClient, name: str) -> SandboxRunner:
    return SandboxRunner(client, node_id=f"{NODE_PREFIX}-{name}")


def template_spec(template: TemplateImage, now_ms: int, *, expiry_s: float,
                  commit_window_ms: int = 60_000) -> JobSpec:
    """The digits job (train/v2: its data as blobs) with a small search space (3-6 epochs:
    a run takes seconds)."""
    return JobSpec(
        kind=TRAIN_V2,
        data=tuple((role, ref) for role, _path, ref in template.data),
        image_digest=Hash32(digest_bytes(template.image_id)),
        image_blob=Hash32(template.blob_id),
        image_ref=template.tag,
        entry_points=template.entry_points,
        limits=ResourceLimits(memory_mb=1024, cpu_millis=1000, time_s=60, disk_mb=64),
        search_space=(ParamSpec("learning_rate", "log_uniform", (0.005, 0.05)),
                      ParamSpec("hidden_size", "choice", (32, 64)),
                      ParamSpec("epochs", "int", (3, 6))),
        bounty=Amount(BOUNTY),
        expiry_ms=TimeMs(now_ms + int(expiry_s * 1000)),
        loss_tolerance=1e-4,
        voting=VotingParams(reveal_window_ms=30_000, commit_window_ms=commit_window_ms,
                            vote_reveal_window_ms=30_000, quorum_permille=500,
                            supermajority_permille=667, voter_reward=Amount(REWARD),
                            max_turns=TURNS),
        description="worker end-to-end test",
    )


def post_job(node: SoloNode, key: PrivateKey, spec: JobSpec) -> bytes:
    tx = sign_transaction(key, node.chain_id, node.next_nonce(key.address), PostJob(spec))
    result = node.submit(tx)
    assert result.accepted, result
    return tx.hash


def job_of(node: SoloNode, job_id: bytes) -> Job:
    job = node.state.job(job_id)
    assert job is not None
    return job


async def wait_until(predicate: Callable[[], T | None], timeout_s: float, what: str,
                     workers: list[Worker]) -> T:
    """The framework's wait (``LC_TIMEOUT_FACTOR``), with the workers' summaries on failure."""
    return await wait_until_async(
        predicate, timeout=timeout_s, what=what,
        detail=lambda: f"workers: {[w.summary() for w in workers]}")


def settled(node: SoloNode, job_id: bytes) -> Job | None:
    job = node.state.job(job_id)
    return job if job is not None and job.status in SETTLED else None


async def expire_once_claimed(node: SoloNode, job_id: bytes, claimers: list[Worker],
                              workers: list[Worker], timeout_s: float) -> None:
    """Once every one of ``claimers`` has its claim on chain and trains no more, the rest
    of the claim window would pass idle: the node's clock moves to the job's expiry
    (``SoloNode.skip_to``). The expiry stays the bound the work had to fit in."""
    def nothing_left() -> bool:
        job = node.state.job(job_id)
        if job is None:  # the post is not in a block yet
            return False
        return job.status != JobStatus.OPEN or all(
            job.claim_of(w.address) is not None and w.summary()["training"] is None
            for w in claimers)

    await wait_until(nothing_left, timeout_s, "every claim on chain, no training", workers)
    node.skip_to(job_of(node, job_id).spec.expiry_ms)


async def close_commit_window_once_voted(node: SoloNode, job_id: bytes, claimer: Address,
                                         voter: Address, workers: list[Worker]) -> None:
    """Once ``voter`` has committed its vote on ``claimer``'s turn, the commit window only
    waits for voters that never vote: the node's clock moves to its end."""
    def committed() -> Job | None:
        job = job_of(node, job_id)
        if job.current != claimer or job.status != JobStatus.VOTE_COMMIT:
            return job if job.current != claimer or job.status in SETTLED else None
        return job if job.vote_of(voter) is not None else None

    job = await wait_until(committed, 90, "the vote commitment", workers)
    if job.current == claimer and job.status == JobStatus.VOTE_COMMIT:
        node.skip_to(job.phase_deadline_ms)


@contextlib.asynccontextmanager
async def running(*workers: Worker) -> Any:
    started: list[Worker] = []
    try:
        for worker in workers:
            await worker.start()
            started.append(worker)
        yield
    finally:
        for worker in started:
            await worker.stop()


async def claimed_then_prefetched(node: SoloNode, job_id: bytes, trainer: Worker,
                                  voter: Worker, template: TemplateImage) -> JobSpec:
    """Waits for ``trainer``'s claim (its training over), then has ``voter`` check the job's
    image as one that fetched it ahead of the vote does; the job's spec."""
    def claimed() -> bool:
        job = node.state.job(job_id)
        return job is not None and job.claim_of(trainer.address) is not None \
            and trainer.summary()["training"] is None

    await wait_until(claimed, CLAIM_WINDOW_S, "alice's claim", [trainer, voter])
    spec = job_of(node, job_id).spec
    assert await voter.images.ensure(spec, "prefetch", job_id) == template.image_id
    return spec

async def test_honest_worker_claims_reveals_is_verified_and_paid(
        tmp_path: Path, docker_client: docker.DockerClient, template: TemplateImage,
        caplog: pytest.LogCaptureFixture) -> None:
    """[NODE-ROLE.3] The verifier is a ``Worker`` given no key: it votes with the node's
    own key (v0), and v0 -- not some other identity -- is paid the voter reward.
    [JOB-DATA.3] [JOB-DATA.4] [JOB-KIND.2] The job is the template, train/v2: its image
    holds code only (``ls -R /job``), its data arrive as blobs, each worker unpacks them
    once and trains, self-checks and votes with them mounted at /data/<role>."""
    # members: submitter, alice and the validator v0 (validators are members): v0 is the voter
    genesis, keys = make_genesis(members=("submitter", "alice"))
    async with SoloNode(genesis, keys["v0"], tmp_path / "node") as node:
        supply = node.state.total_credits()
        assert put_template(node, template) == template.blob_id
        job_id = post_job(node, keys["submitter"],
                          template_spec(template, node.now_ms(), expiry_s=CLAIM_WINDOW_S))
        alice = Worker(node, TRAINER, runner=runner(docker_client, "alice"), key=keys["alice"])
        voter = Worker(node, VERIFIER, runner=runner(docker_client, "v0"))  # the node's own key
        async with running(alice, voter):
            await expire_once_claimed(node, job_id, [alice], [alice, voter], CLAIM_WINDOW_S)
            job = await wait_until(lambda: settled(node, job_id), 120, "the job to settle",
                                   [alice, voter])
            await wait_until(lambda: "settled" in alice.summary()["sent"], 10,  # type: ignore[operator]
                             "alice to see the settlement", [alice, voter])
            summary = alice.summary()
        state = node.state
        assert job.status == JobStatus.PAID and job.winner == keys["alice"].address
        assert job.paid == BOUNTY and job.escrow == 0
        assert [(v.claimer, v.outcome) for v in job.verdicts] == [
            (keys["alice"].address, Outcome.VALID)]
        assert job.model_hash is not None and node.blob_path(job.model_hash) is not None
        # [VOTE-CHALLENGE.1] [VOTE-REWARD.2] v0's vote answered the turn's challenge (the
        # template's loss on the subset the reveal's block picked, reported in the same
        # run), and it is paid for it; alice's own vote carries none.
        votes = {v.voter: v for v in job.votes}
        answer = votes[keys["v0"].address].challenge_loss
        assert answer is not None and answer != votes[keys["v0"].address].measured_loss
        assert votes[keys["alice"].address].challenge_loss is None
        assert state.account(keys["alice"].address).balance == 1_000 + BOUNTY
        assert state.account(keys["v0"].address).balance == 1_000 + REWARD
        escrow = BOUNTY + REWARD * TURNS
        assert state.account(keys["submitter"].address).balance == \
            1_000 - escrow + (escrow - BOUNTY - REWARD)
        assert state.total_credits() == supply
    for worker in (alice, voter):  # both unpacked both data blobs, fixed [EVAL-ENV.4]
        for role, _path, ref in template.data:
            csv = worker.store.dir / "data" / ref.blob.hex() / f"{role}.csv"
            assert csv.is_file() and csv.stat().st_mtime == 946_684_800, csv
    listing = runner(docker_client, "ls").run_entry(
        template.image_id, "list", ["ls", "-R", "/job"], {}, sandbox_limits(job.spec),
        tmp_path / "ls")
    assert listing.ok and b"lcjob.py" in listing.logs and b".csv" not in listing.logs
    # [VOTE-SELF.1] alice votes on her own claim too (never counted or paid)
    assert summary["sent"] == {"claim": 1, "reveal": 1, "vote commit": 1, "vote reveal": 1,
                               "settled": 1}
    assert summary["jobs"] == {}  # settled jobs are forgotten
    text = caplog.text
    for line in ("fetching data train", "unpacking data valid",
                 "picked: bounty 100", "attempt 1/1: params", "self-check run 1 (plain): loss",
                 "claim sent", "our turn: revealing", "verifying OUR OWN claim",
                 "our own vote says VALID", "measured loss", "vote commit sent",
                 "vote reveal sent", "settled: paid", "(us), paid 100; our payout 100"):
        assert line in text, line


async def test_cheater_is_voted_out_and_banned_and_the_honest_runner_up_is_paid(
        tmp_path: Path, docker_client: docker.DockerClient, template: TemplateImage,
        caplog: pytest.LogCaptureFixture) -> None:
    genesis, keys = make_genesis(members=("submitter", "alice", "dave"))
    alice_a, voter_a, dave_a = (keys[n].address for n in ("alice", "v0", "dave"))
    async with SoloNode(genesis, keys["v0"], tmp_path / "node") as node:
        supply = node.state.total_credits()
        put_template(node, template)
        job_id = post_job(node, keys["submitter"],
                          template_spec(template, node.now_ms(), expiry_s=CLAIM_WINDOW_S))
        cheater = replace(TRAINER, cheat_loss_factor=0.01)
        workers = [
            Worker(node, TRAINER, runner=runner(docker_client, "alice"), key=keys["alice"]),
            Worker(node, cheater, runner=runner(docker_client, "dave"), key=keys["dave"]),
            Worker(node, VERIFIER, runner=runner(docker_client, "v0")),
        ]
        async with running(*workers):
            await expire_once_claimed(node, job_id, workers[:2], workers, CLAIM_WINDOW_S)
            job = await wait_until(lambda: settled(node, job_id), 150, "the job to settle",
                                   workers)
        state = node.state
        # dave's lie ranked first, was revealed, measured by alice and v0, and judged a cheat
        assert [(v.claimer, v.outcome, v.invalid_votes) for v in job.verdicts] == [
            (dave_a, Outcome.CHEAT, 2), (alice_a, Outcome.VALID, 0)]
        assert job.status == JobStatus.PAID and job.winner == alice_a
        dave = state.account(dave_a)
        # dave's balance and his verifier bond are burned [JOB-BAN.1]
        assert dave.banned and dave.balance == 0 and \
            state.burned == 1_000 + state.params.verifier_bond
        # alice: bounty + half the cheat turn's reward; v0: half of it + the whole valid turn's
        assert state.account(alice_a).balance == 1_000 + BOUNTY + REWARD // 2
        assert state.account(voter_a).balance == 1_000 + REWARD // 2 + REWARD
        escrow = BOUNTY + REWARD * TURNS
        assert state.account(keys["submitter"].address).balance == \
            1_000 - escrow + (escrow - BOUNTY - 2 * REWARD)
        assert state.total_credits() == supply
    text = caplog.text
    assert "is CHEATING (demo/test only)" in text and "CHEATING (demo): claiming loss" in text
    assert "INVALID" in text and "this key is now banned" in text


async def test_restarted_workers_still_reveal_their_model_and_their_vote(
        tmp_path: Path, docker_client: docker.DockerClient, template: TemplateImage,
        caplog: pytest.LogCaptureFixture) -> None:
    # carol is eligible but runs no worker: v0's vote alone does not end the commit window
    genesis, keys = make_genesis(members=("submitter", "alice", "carol"))
    alice_a, voter_a = keys["alice"].address, keys["v0"].address
    two_tries = replace(TRAINER, max_attempts=2)
    alice_runner = runner(docker_client, "alice")
    async with SoloNode(genesis, keys["v0"], tmp_path / "node") as node:
        put_template(node, template)
        job_id = post_job(node, keys["submitter"], template_spec(
            template, node.now_ms(), expiry_s=CLAIM_WINDOW_S, commit_window_ms=20_000))
        voter = Worker(node, VERIFIER, runner=runner(docker_client, "v0"))
        await voter.start()
        everyone = [voter]
        try:
            # 1. alice is stopped while her first attempt trains: its container is killed
            alice = Worker(node, two_tries, runner=alice_runner, key=keys["alice"])
            everyone.append(alice)
            await alice.start()
            await wait_until(lambda: _container_running(docker_client, alice_runner.node_id),
                             60, "alice's training container", everyone)
            await alice.stop()
            assert not await asyncio.to_thread(_containers_of, docker_client,
                                               alice_runner.node_id)
            assert "stopping: killed job containers" in caplog.text
            # 2. a new worker on the same folder uses attempt 2 (attempt 1's seed is spent)
            alice = Worker(node, two_tries, runner=alice_runner, key=keys["alice"])
            everyone.append(alice)
            await alice.start()
            claim = await wait_until(lambda: job_of(node, job_id).claim_of(alice_a),
                                     CLAIM_WINDOW_S, "alice's claim on chain", everyone)
            await wait_until(lambda: alice.summary()["training"] is None, 30,
                             "alice's training to end", everyone)
            assert alice.summary()["jobs"][job_id.hex()] == {
                "attempts": 2, "runs": 2, "best_measured_loss": claim.loss,
                "claimed_loss": claim.loss, "claims": 1, "last_failure": None}
            await alice.stop()
            # 3. a third start, after the claim: it reveals when the turn comes
            alice = Worker(node, two_tries, runner=alice_runner, key=keys["alice"])
            everyone.append(alice)
            await alice.start()
            await expire_once_claimed(node, job_id, [alice], everyone, 30)
            await wait_until(lambda: job_of(node, job_id).vote_of(voter_a), 90,
                             "the vote commitment of v0", everyone)
            # 4. the voter (v0) is stopped after committing and restarted in the reveal phase
            await voter.stop()
            # once alice's own vote is in too, only carol's is missing: it never comes
            def own_vote_in() -> Job | None:
                job = job_of(node, job_id)
                done = job.vote_of(alice_a) or job.status != JobStatus.VOTE_COMMIT
                return job if done else None

            committed = await wait_until(own_vote_in, 30, "alice's own vote commitment",
                                         everyone)
            if committed.status == JobStatus.VOTE_COMMIT:
                node.skip_to(committed.phase_deadline_ms)
            await wait_until(lambda: job_of(node, job_id).status == JobStatus.VOTE_REVEAL, 30,
                             "the vote reveal phase", everyone)
            vote = job_of(node, job_id).vote_of(voter_a)
            assert vote is not None and not vote.revealed
            voter = Worker(node, VERIFIER, runner=runner(docker_client, "v0"))
            everyone.append(voter)
            await voter.start()
            job = await wait_until(lambda: settled(node, job_id), 30, "the job to settle",
                                   everyone)
        finally:
            for worker in everyone:
                await worker.stop()
    assert job.status == JobStatus.PAID and job.winner == alice_a
    verdict = job.verdicts[-1]
    assert (verdict.outcome, verdict.valid_votes, verdict.eligible) == (Outcome.VALID, 1, 2)
    assert "attempt 2/2: params" in caplog.text and "attempt 1/2: params" in caplog.text


def _containers_of(client: docker.DockerClient, node_id: str) -> list[str]:
    return [str(c.name) for c in client.containers.list(
        all=True, ignore_removed=True,
        filters={"label": [f"{LABEL_MANAGED}=1", f"{LABEL_NODE}={node_id}"]})]


def _container_running(client: docker.DockerClient, node_id: str) -> bool:
    return bool(_containers_of(client, node_id))


async def test_worker_refuses_a_mismatched_or_missing_image_blob(
        tmp_path: Path, docker_client: docker.DockerClient, template: TemplateImage) -> None:
    genesis, keys = make_genesis(members=("submitter", "alice"))
    async with SoloNode(genesis, keys["v0"], tmp_path / "node") as node:
        put_template(node, template)
        spec = template_spec(template, node.now_ms(), expiry_s=60)
        # the blob holds the template image, but the job names another image id
        wrong = post_job(node, keys["submitter"],
                         replace(spec, image_digest=Hash32(b"\x42" * 32)))
        missing = post_job(node, keys["submitter"], replace(
            spec, image_digest=Hash32(b"\x43" * 32), image_blob=Hash32(b"\x44" * 32)))
        alice = Worker(node, TRAINER, runner=runner(docker_client, "alice"), key=keys["alice"])
        async with running(alice):
            refused = await wait_until(
                lambda: len(alice.summary()["refused"]) == 2 and alice.summary()["refused"],
                60, "both jobs refused", [alice])
        assert isinstance(refused, dict)
        assert "image digest mismatch: job names sha256:4242" in refused[wrong.hex()]
        assert "could not be fetched" in refused[missing.hex()]
        assert job_of(node, wrong).claims == () and alice.summary()["sent"] == {}


async def test_an_image_missing_from_the_engine_is_fetched_and_loaded_from_its_blob(
        tmp_path: Path, docker_client: docker.DockerClient, template: TemplateImage) -> None:
    context = tmp_path / "image"
    context.mkdir()
    (context / "marker").write_text(uuid.uuid4().hex)  # a new image id every run
    (context / "Dockerfile").write_text(f"FROM {ROOTFS_TAG}\nCOPY marker /job/marker\n")
    image_id = build_image(docker_client, context, f"{NODE_PREFIX}-load:latest", _quiet)
    try:
        blob = export_image(docker_client, image_id, tmp_path / "image.tar")
        docker_client.images.remove(image_id, force=True)
        assert not has_image(docker_client, image_id)
        genesis, keys = make_genesis()
        async with SoloNode(genesis, keys["v0"], tmp_path / "node", block_interval=60) as node:
            node.put_blob_file(blob.path)
            spec = replace(job_spec(), image_digest=Hash32(digest_bytes(image_id)),
                           image_blob=Hash32(blob.blob_id))
            images = ImageCache(node, docker_client, Threads())
            assert await images.ensure(spec, "load-test") == image_id
        assert has_image(docker_client, image_id)
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker_client.images.remove(image_id, force=True)


async def test_a_model_that_cannot_be_evaluated_or_fetched_is_an_evaluation_failed_turn(
        tmp_path: Path, docker_client: docker.DockerClient, template: TemplateImage,
        caplog: pytest.LogCaptureFixture) -> None:
    """Claims made by hand: alice reveals garbage, bob a model nobody has; v0's worker judges.

    [VOTE-FAILED.1] v0 votes *evaluation failed* (invalid, no measured loss) on both: the
    template's evaluate rejects alice's bytes (exit 3, ``invalid_model``), bob's cannot be
    fetched. Neither is evidence against the claimer (the job's own evaluate says "invalid
    model", and issue 30 §1's evaluate said so only in the voters' runs), so each turn ends
    eval_failed: nobody banned, v0's bond kept, v0 unpaid. [VOTE-FAILED.2] the job ends with
    nothing paid after such turns: BROKEN, its whole escrow burned, nothing refunded."""
    genesis, keys = make_genesis(members=("submitter", "alice", "bob"))
    alice, bob, v0 = keys["alice"], keys["bob"], keys["v0"]
    async with SoloNode(genesis, v0, tmp_path / "node") as node:
        supply = node.state.total_credits()
        put_template(node, template)
        # The commit window must hold v0's whole evaluation (data fetch and unpack, a fresh
        # container) under a loaded CI machine: 15 s was missed once, voting nothing. The
        # claim window is waited out by moving the clock once both claims are on chain: a
        # 3 s window in wall time was once past before the first block (the loaded CI
        # machine stalled this process), and neither claimer ever got a turn.
        spec = template_spec(template, node.now_ms(), expiry_s=120, commit_window_ms=40_000)
        spec = replace(spec, voting=replace(spec.voting, reveal_window_ms=5_000))
        escrow, burned = spec.escrow, node.state.burned  # [JOB-POST-ESCROW.1]
        submitter = node.state.account(keys["submitter"].address).balance - escrow
        before = {k.address: node.state.account(k.address).balance for k in (alice, bob, v0)}
        bond = node.state.verifier_bond(v0.address)
        # alice and bob verify too; each is an eligible voter on the other's turn and never
        # votes, so each loses its bond as a no-show [VOTE-NOSHOW.1], unlike v0
        no_shows = sum(node.state.verifier_bond(k.address) or 0 for k in (alice, bob))
        job_id = post_job(node, keys["submitter"], spec)
        garbage = tmp_path / "garbage.pt"
        garbage.write_bytes(b"not a model")
        models = {alice.address: node.put_blob_file(garbage), bob.address: os.urandom(32)}
        salts = {alice.address: os.urandom(32), bob.address: os.urandom(32)}
        for key, loss in ((alice, 0.01), (bob, 0.02)):
            commitment = model_commitment(job_id, key.address, models[key.address],
                                          salts[key.address])
            send(node, key, ClaimLoss(Hash32(job_id), loss, commitment))

        def both_claims_on_chain() -> bool:
            job = node.state.job(job_id)
            return job is not None and all(job.claim_of(k.address) is not None
                                           for k in (alice, bob))

        await wait_until(both_claims_on_chain, 90, "both claims on chain", [])
        node.skip_to(job_of(node, job_id).spec.expiry_ms)
        verifier = Worker(node, VERIFIER, runner=runner(docker_client, "v0"))
        async with running(verifier):
            for key in (alice, bob):
                await wait_until(turn_of(node, job_id, key.address), 90, "the claimer's turn",
                                 [verifier])
                send(node, key, RevealModel(Hash32(job_id), Hash32(models[key.address]),
                                            salts[key.address]))
                # bob (on alice's turn) and the claimers never vote: v0's vote is the last
                await close_commit_window_once_voted(node, job_id, key.address,
                                                     v0.address, [verifier])
            job = await wait_until(lambda: settled(node, job_id), 90, "the job to settle",
                                   [verifier])
        state = node.state
    assert [(v.claimer, v.outcome, v.valid_votes, v.invalid_votes, v.verified_loss)
            for v in job.verdicts] == [(alice.address, Outcome.EVAL_FAILED, 0, 1, None),
                                       (bob.address, Outcome.EVAL_FAILED, 0, 1, None)]
    assert job.status == JobStatus.BROKEN and job.winner is None and job.escrow == 0
    assert not state.account(alice.address).banned and not state.account(bob.address).banned
    assert {a: state.account(a).balance for a in before} == before  # nobody paid or slashed
    assert state.verifier_bond(v0.address) == bond and bond  # not a no-show [VOTE-NOSHOW.1]
    assert no_shows and state.verifier_bond(alice.address) is None \
        and state.verifier_bond(bob.address) is None
    assert state.account(keys["submitter"].address).balance == submitter  # no refund
    assert state.burned == burned + escrow + no_shows and state.total_credits() == supply
    assert "model could not be evaluated: invalid_model" in caplog.text
    assert "could not be fetched" in caplog.text
    assert caplog.text.count("voting 'evaluation failed' (no measured loss), which never "
                             "counts against the claimer [VOTE-FAILED.1]") == 2


def turn_of(node: SoloNode, job_id: bytes, claimer: bytes) -> Callable[[], bool]:
    def check() -> bool:
        job = node.state.job(job_id)
        return job is not None and job.status == JobStatus.REVEAL and job.current == claimer
    return check


def send(node: SoloNode, key: PrivateKey, body: Any) -> None:
    result = node.submit(sign_transaction(key, node.chain_id, node.next_nonce(key.address), body))
    assert result.accepted, result


async def test_vote_failed_4_an_image_pruned_before_the_vote_is_loaded_again_and_voted_on(
        tmp_path: Path, private_dockerd: PrivateDockerd, template: TemplateImage,
        caplog: pytest.LogCaptureFixture) -> None:
    """[VOTE-FAILED.4] Between the claim and the vote the engine loses the job's image (as
    an operator's `docker image prune -a` would do; make test-repeat saw a concurrent test's
    clean-up do it). The voters' runs answer image_missing; instead of abstaining (and
    burning their bonds) they load the image again from its blob and vote with a measured
    loss: the claim is VALID and paid. A private engine: the image removed is nobody
    else's."""
    engine = private_dockerd.client()
    genesis, keys = make_genesis(members=("submitter", "alice"))
    async with SoloNode(genesis, keys["v0"], tmp_path / "node") as node:
        put_template(node, template)
        job_id = post_job(node, keys["submitter"], template_spec(
            template, node.now_ms(), expiry_s=CLAIM_WINDOW_S,
            commit_window_ms=RELOAD_COMMIT_WINDOW_MS))
        alice = Worker(node, TRAINER, runner=runner(engine, "alice"), key=keys["alice"])
        voter = Worker(node, VERIFIER, runner=runner(engine, "v0"))
        async with running(alice, voter):
            await expire_once_claimed(node, job_id, [alice], [alice, voter], CLAIM_WINDOW_S)
            await wait_until(turn_of(node, job_id, keys["alice"].address), 60,
                             "alice's turn to reveal", [alice, voter])
            # Both workers have checked the image (alice trained on it; the voter as one
            # that fetched it ahead of the vote): neither looks at the engine again unaided.
            spec = job_of(node, job_id).spec
            assert await voter.images.ensure(spec, "prefetch", job_id) == template.image_id
            await asyncio.to_thread(engine.images.remove, template.image_id, force=True)
            assert not has_image(engine, template.image_id)
            # reveal 30 s + the commit window + vote reveal 30 s, and slack
            settle_s = 60 + RELOAD_COMMIT_WINDOW_MS / 1000 + 60
            job = await wait_until(lambda: settled(node, job_id), settle_s,
                                   "the job to settle", [alice, voter])
    assert job.status == JobStatus.PAID and job.winner == keys["alice"].address
    [verdict] = job.verdicts
    assert verdict.outcome == Outcome.VALID and verdict.valid_votes >= 1, verdict
    # alice's own vote [VOTE-SELF.1] and the voter's both met the missing image
    assert caplog.text.count("loading it again from its blob to evaluate once more "
                             "[VOTE-FAILED.4]") == 2, caplog.text
    assert "our sandbox failed (image_missing" not in caplog.text
    assert has_image(engine, template.image_id)


@pytest.mark.slow
async def test_docker_engine_stopped_mid_training_pauses_the_job_then_it_is_paid(
        tmp_path: Path, private_dockerd: PrivateDockerd, template: TemplateImage,
        caplog: pytest.LogCaptureFixture) -> None:
    """[issue 8] The engine stops while a worker trains; nothing is lost and the job goes on.

    The worker has one attempt only: if the engine failure used it up, nobody would
    ever claim and the job would expire. Instead the attempt is given back, the
    worker says why it waits, and once the engine is back it trains, claims and is paid.

    The engine stopped is a private dockerd of this test's own (issue 14: tests must not
    touch what they do not own); the machine's dockerd keeps its pid and its containers.
    It starts without the job's image, so the worker also fetches the blob and loads it.
    """
    host_before = host_engine.fingerprint()
    engine = private_dockerd.client()
    assert not has_image(engine, template.image_id)
    genesis, keys = make_genesis(members=("submitter", "alice"))
    async with SoloNode(genesis, keys["v0"], tmp_path / "node") as node:
        supply = node.state.total_credits()
        put_template(node, template)
        job_id = post_job(node, keys["submitter"],
                          template_spec(template, node.now_ms(), expiry_s=100))
        alice = Worker(node, TRAINER, runner=runner(engine, "alice"), key=keys["alice"])
        voter = Worker(node, VERIFIER, runner=runner(engine, "v0"))
        async with running(alice, voter):
            await wait_until(lambda: (alice.summary()["training"] or {}).get("phase")
                             == "training" and alice.threads.running, 90,
                             "alice to train", [alice, voter])
            await asyncio.sleep(1.0)  # the container is running
            await asyncio.to_thread(private_dockerd.stop)  # SIGTERM, as an init system does
            assert private_dockerd.pid is None
            problem = await wait_until(lambda: alice.summary()["engine_problem"], 60,
                                       "alice to report the engine", [alice, voter])
            assert "training" in str(problem)
            progress = alice.store.state.job(job_id)
            assert progress.attempts == 0, "the attempt the engine spoilt is given back"
            assert not job_of(node, job_id).claims
            assert node.state.total_credits() == supply
            await asyncio.sleep(3.0)  # the engine stays down a while
            assert alice.summary()["engine_problem"] is not None
            await asyncio.to_thread(private_dockerd.start)
            await expire_once_claimed(node, job_id, [alice], [alice, voter], 100)
            job = await wait_until(lambda: settled(node, job_id), 150, "the job to settle",
                                   [alice, voter])
            assert alice.summary()["engine_problem"] is None
        state = node.state
        assert job.status == JobStatus.PAID and job.winner == keys["alice"].address
        assert state.account(keys["alice"].address).balance == 1_000 + BOUNTY
        assert state.total_credits() == supply
    text = caplog.text
    assert "paused: the Docker engine failed" in text
    assert "the Docker engine answers again" in text
    assert f"loading image {template.image_id[:19]} into the engine" in text
    assert has_image(engine, template.image_id)
    assert host_engine.changes(host_before, host_engine.fingerprint()) == []
