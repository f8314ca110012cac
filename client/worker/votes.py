"""Verifying other members' claims: evaluate the revealed model, vote in two steps.

[VOTE-ELIGIBLE.1] Only the eligible voters fixed at the reveal vote. The
model is fetched by its blob id and evaluated with the job's own evaluate
entry point in this worker's sandbox; the vote is *valid* exactly when the
measured loss is within the job's tolerance of the claim
[VOTE-CONSISTENT.1]. A model that cannot be fetched or evaluated counts as
invalid. A failure on our side (no image, the engine failed) says nothing
about the model, so then the verifier abstains rather than accuse.

The vote is committed hidden [VOTE-COMMIT.1/2] with a salt written to the
worker state first, and opened in the reveal window [VOTE-REVEAL.1], by
this process or by the one that starts after it.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import Counter
from collections.abc import Callable

from chain.crypto import address_to_text
from chain.records import Job, JobStatus
from chain.transactions import VoteCommit, VoteReveal, vote_commitment
from chain.types import Address, Hash32
from client.node.config import WorkerPolicy
from client.node.handle import NodeHandle
from client.worker.outbox import Action, Outbox, short
from client.worker.policy import sandbox_limits, should_vote, vote_valid
from client.worker.sandboxing import ImageCache, ImageUnavailable, Threads, container_label
from client.worker.state import VoteSecret, WorkerStore
from p2p.blobstore import BlobError
from sandbox.results import FailureReason
from sandbox.runner import SandboxRunner

log = logging.getLogger("learningchain.worker")

OUR_SIDE = (FailureReason.ENGINE_ERROR, FailureReason.IMAGE_MISSING)
"""Evaluation failures that say nothing about the model: the verifier abstains."""


def seconds_until(node: NodeHandle, time_ms: int) -> float:
    """Seconds from now to a block time (at least 1: a timeout scope needs room)."""
    return max(1.0, (time_ms - node.now_ms()) / 1000)


class Verifier:
    """One worker's votes: one verification at a time, and the opening of committed votes."""

    def __init__(self, node: NodeHandle, policy: WorkerPolicy, address: Address,
                 store: WorkerStore, outbox: Outbox, threads: Threads, runner: SandboxRunner,
                 images: ImageCache, wake: Callable[[], None]) -> None:
        self.node = node
        self.policy = policy
        self.address = address
        self.store = store
        self.outbox = outbox
        self.threads = threads
        self.runner = runner
        self.images = images
        self._wake = wake
        self.task: asyncio.Task[None] | None = None
        self.now: dict[str, object] | None = None
        """What the verification in progress is doing (for the summary)."""
        self.abstained: dict[tuple[bytes, bytes], str] = {}
        self.votes: Counter[tuple[str, bool]] = Counter()
        """Metrics: votes sent by (``commit``/``reveal``, valid)."""
        self._complained: set[bytes] = set()

    def follow(self, job: Job, height: int) -> None:
        """After each block: send a vote again, or open it, as the job's phase needs."""
        if job.status == JobStatus.VOTE_COMMIT:
            self._resend_vote_commit(job, height)
        elif job.status == JobStatus.VOTE_REVEAL:
            self._reveal_vote(job, height)

    def prune(self, live: set[bytes]) -> None:
        self.abstained = {k: v for k, v in self.abstained.items() if k[0] in live}
        self._complained &= live

    def _resend_vote_commit(self, job: Job, height: int) -> None:
        if job.current is None or not should_vote(job, self.address):
            return
        secret = self.store.state.vote(job.job_id, job.current)
        if secret is None or self.node.now_ms() >= job.phase_deadline_ms:
            return
        action = Action("vote commit", job.job_id, job.current)
        if self.outbox.due(action, height):
            body = VoteCommit(Hash32(job.job_id), job.current,
                              Hash32(bytes.fromhex(secret.commitment)))
            self.outbox.send(body, "vote commit", job.job_id, action)

    def _reveal_vote(self, job: Job, height: int) -> None:
        """[VOTE-REVEAL.1] Open our committed vote on the current turn."""
        if job.current is None:
            return
        record = job.vote_of(self.address)
        secret = self.store.state.vote(job.job_id, job.current)
        if record is None or record.revealed or secret is None:
            return
        if record.commitment.hex() != secret.commitment:
            if job.job_id not in self._complained:
                self._complained.add(job.job_id)
                log.error("job %s: our vote on chain does not match the saved one; it cannot "
                          "be opened", short(job.job_id))
            return
        action = Action("vote reveal", job.job_id, job.current)
        if self.outbox.due(action, height):
            body = VoteReveal(Hash32(job.job_id), job.current, secret.valid,
                              secret.measured_loss, bytes.fromhex(secret.salt))
            if self.outbox.send(body, "vote reveal", job.job_id, action):
                self.votes["reveal", secret.valid] += 1

    def maybe_verify(self, jobs: list[Job], now: int) -> None:
        """Start verifying the claim whose vote window closes first, if none is in progress."""
        if not self.policy.verify or (self.task is not None and not self.task.done()):
            return
        waiting = [
            job for job in jobs
            if job.current is not None and should_vote(job, self.address)
            and self.store.state.vote(job.job_id, job.current) is None
            and (job.job_id, job.current) not in self.abstained
            and now < job.phase_deadline_ms
        ]
        if not waiting:
            return
        job = min(waiting, key=lambda j: (j.phase_deadline_ms, j.job_id))
        if job.current is not None:
            self.task = asyncio.create_task(self._verify(job.job_id, job.current),
                                            name=f"worker-verify-{short(job.job_id)}")

    async def _verify(self, job_id: bytes, claimer: Address) -> None:
        """Evaluate the revealed model in our sandbox and commit a hidden vote on it."""
        label = short(job_id)
        key = (job_id, claimer)
        self.now = {"job": job_id.hex(), "claimer": address_to_text(claimer),
                    "phase": "preparing"}
        try:
            job = self.node.state.job(job_id)
            if job is None or job.current != claimer or not should_vote(job, self.address):
                return
            claim = job.claim_of(claimer)
            if claim is None or job.model_hash is None:
                return
            spec = job.spec
            log.info("job %s: verifying the claim of %s: loss %r, model %s", label,
                     address_to_text(claimer), claim.loss, job.model_hash.hex()[:16])
            try:
                async with asyncio.timeout(seconds_until(self.node, job.phase_deadline_ms)):
                    image_id = await self.images.ensure(spec, label)
            except (ImageUnavailable, TimeoutError) as e:
                why = str(e) or "not ready before the vote window closes"
                self._abstain(key, f"cannot evaluate without the job's image: {why}")
                return
            measured: float | None = None
            problem = ""
            self.now["phase"] = "fetching model"
            try:
                async with asyncio.timeout(seconds_until(self.node, job.phase_deadline_ms)):
                    model = await self.node.fetch_blob(job.model_hash)
            except (BlobError, TimeoutError) as e:
                why = str(e) or "not before the vote window closes"
                problem = f"model {job.model_hash.hex()[:16]} could not be fetched: {why}"
            else:
                self.now["phase"] = "evaluating"
                result = await self.threads.run(
                    self.runner.evaluate, image_id, model, sandbox_limits(spec),
                    job_id=container_label(job_id, self.address),
                    argv=spec.entry_point("evaluate"))
                if result.ok:
                    measured = result.loss
                elif result.reason in OUR_SIDE:
                    self.images.forget(image_id)
                    self._abstain(key, f"our sandbox failed ({result.reason}: {result.detail})")
                    return
                else:
                    problem = f"model could not be evaluated: {result.reason}: {result.detail}"
            valid = vote_valid(claim.loss, measured, spec.loss_tolerance)
            if problem:
                log.warning("job %s: %s; this counts as an invalid claim", label, problem)
            else:
                log.info("job %s: measured loss %r vs claimed %r + tolerance %g: %s", label,
                         measured, claim.loss, spec.loss_tolerance,
                         "VALID" if valid else "INVALID")
            self._commit_vote(job_id, claimer, valid, measured)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.exception("job %s: verification failed", label)
            self._abstain(key, f"verification failed: {e}")
        finally:
            self.now = None
            self._wake()

    def _commit_vote(self, job_id: bytes, claimer: Address, valid: bool,
                     measured: float | None) -> None:
        job = self.node.state.job(job_id)
        if job is None or job.current != claimer or not should_vote(job, self.address) \
                or self.node.now_ms() >= job.phase_deadline_ms:
            log.warning("job %s: the vote window closed before our evaluation finished",
                        short(job_id))
            return
        salt = os.urandom(32)
        commitment = vote_commitment(job_id, claimer, self.address, valid, measured, salt)
        key = self.store.state.vote_key(job_id, claimer)
        self.store.state.votes[key] = VoteSecret(job_id.hex(), claimer.hex(), valid, measured,
                                                 salt.hex(), commitment.hex())
        self.store.save()  # write-ahead: the salt exists on disk before the commitment is sent
        action = Action("vote commit", job_id, claimer)
        body = VoteCommit(Hash32(job_id), claimer, commitment)
        if not self.outbox.send(body, "vote commit", job_id, action):
            del self.store.state.votes[key]
            self.store.save()
            return
        self.votes["commit", valid] += 1

    def _abstain(self, key: tuple[bytes, bytes], why: str) -> None:
        self.abstained[key] = why
        log.warning("job %s: not voting on %s's claim: %s", short(key[0]),
                    address_to_text(key[1]), why)
