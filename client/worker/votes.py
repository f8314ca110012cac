"""Verifying other members' claims: evaluate the revealed model, vote in two steps.

[VOTE-ELIGIBLE.2] Only the eligible voters fixed at the reveal vote. The
model is fetched by its blob id and evaluated with the job's own evaluate
entry point in this worker's sandbox; the vote is *valid* exactly when the
measured loss is within the job's tolerance of the claim
[VOTE-CONSISTENT.1]. A model that cannot be fetched, or whose evaluation
fails for any reason in ``JOB_FAULTS`` (the model or the job: invalid model,
bad metrics, a timeout, bad output...), or that has not returned in time to commit,
is voted *invalid* with no measured loss: "evaluation failed", which never counts
against the claimer [VOTE-FAILED.1]. Only a failure on our side (``WORKER_FAULTS``
[JOB-EXIT.5]: the engine confirmed failing, the image missing, the host) says nothing
about the model, and then the verifier abstains rather than accuse, once a missing image
has been loaded again [VOTE-FAILED.4] or a failed engine waited for [VOTE-FAILED.6] and
the evaluation run once more within the commit window. Every evaluation uses the
job's evaluation seed [EVAL-ENV.2] and its declared limits [EVAL-ENV.6], and is built
by the one builder the claimer's self-check uses too [EVAL-SAME.1].

[VOTE-SELF.1] When the turn is our own claim's, the worker measures its
revealed model exactly as the voters do, in the same window, and votes on it:
honestly ``valid = measured <= claimed + tolerance``, so a claim that no longer
reproduces (a job whose evaluation changed after the expiry) is withdrawn, not
punished [JOB-WITHDRAW.1]. The DEMO cheat mode insists on its lie (valid, the
claimed loss) and so is still banned.

The vote is committed hidden [VOTE-COMMIT.1/2] with a salt written to the
worker state first, and opened in the reveal window [VOTE-REVEAL.1], by
this process or by the one that starts after it.

[VOTE-CHALLENGE.1] Every vote, the claimer's own included [EVAL-SAME.1], answers the
turn's challenge: the seed comes from the block that included the reveal, the worker hands
it to evaluate as ``$LC_INPUT/challenge.json``, and the model's loss on the subset,
reported in the same run as ``challenge_loss``, is committed with the vote and opened
with it, so [VOTE-REWARD.2] can pay it. An evaluation that reports none (a job
built before the challenge) sends the vote without an answer.

[HOLDOUT-VOTE.1] On a train/v3 turn whose hidden part is live, the vote also
says whether the hidden part opens the job's commitment (fetched and checked
before anything runs on it) and the model's loss on it: the same evaluate entry
point, with the hidden part mounted where the public part was [HOLDOUT-BLOB.6].
[HOLDOUT-CHALLENGE.1] Both runs get the same ``challenge.json``; the hidden run's
``challenge_loss`` answers the challenge on the hidden part, the public run's the
public one, and the holdout vote carries both, so [HOLDOUT-VOTE-REWARD.1] can pay it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from chain.crypto import address_to_text
from chain.records import Job, JobStatus
from chain.train.bodies import VoteCommit, VoteReveal, vote_commitment
from chain.train.challenge import challenge_seed, reveal_block_hash
from chain.train.holdout.bodies import HoldoutVoteReveal, holdout_vote_commitment
from chain.types import Address, Hash32
from client.node.config import WorkerPolicy
from client.node.handle import NodeHandle
from client.worker.data_blobs import DataUnavailable, HoldoutPartRefused
from client.worker.evaluation import (
    EvaluationInputs,
    evaluation_inputs,
    fresh_challenge_seed,
    run_evaluation,
)
from client.worker.outbox import Action, Outbox, short
from client.worker.policy import (
    self_vote,
    should_self_vote,
    should_vote,
    vote_valid,
)
from client.worker.sandboxing import (
    ImageCache,
    ImageUnavailable,
    Threads,
    remove_stopped_before,
    wait_for_disk,
    wait_for_engine,
)
from client.worker.state import VoteSecret, WorkerStore
from p2p.blobstore import BlobError
from sandbox.results import WORKER_FAULTS, EvalResult, FailureReason
from sandbox.runner import SandboxRunner

log = logging.getLogger("learningchain.worker")

EVAL_SCRATCH_BYTES = 4 << 20
"""[VOTE-FAILED.7] Room beyond the evaluation's output cap: its challenge file and the
copy's staging."""
OUR_SIDE = WORKER_FAULTS
"""[JOB-EXIT.5] Evaluation failures that say nothing about the model: the verifier
abstains. Every other failure is the model's or the job's: an invalid vote."""


COMMIT_MARGIN_S = 10.0
"""[VOTE-FAILED.3] At most this much of a vote commit window is kept for the commitment to
reach a block after the evaluation (a quarter of what is left, when less)."""


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
        self.engine_problem: str | None = None
        """Why the verification in progress waits: the engine failed [VOTE-FAILED.6]."""
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

    def _may_vote(self, job: Job) -> bool:
        """An eligible voter on another's claim, or the claimer on its own [VOTE-SELF.1]."""
        return should_vote(job, self.address) or should_self_vote(job, self.address)

    def _resend_vote_commit(self, job: Job, height: int) -> None:
        if job.current is None or not self._may_vote(job):
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
            body: VoteReveal | HoldoutVoteReveal
            if secret.holdout_ok is not None:
                body = HoldoutVoteReveal(Hash32(job.job_id), job.current, secret.valid,
                                         secret.measured_loss, secret.holdout_ok,
                                         secret.hidden_loss, bytes.fromhex(secret.salt),
                                         secret.hidden_challenge_loss, secret.challenge_loss)
            else:
                body = VoteReveal(Hash32(job.job_id), job.current, secret.valid,
                                  secret.measured_loss, bytes.fromhex(secret.salt),
                                  secret.challenge_loss)
            if self.outbox.send(body, "vote reveal", job.job_id, action):
                self.votes["reveal", secret.valid] += 1

    def maybe_verify(self, jobs: list[Job], now: int) -> None:
        """Start measuring the claim whose vote window closes first, if none is in progress:
        our own claim's turn first [VOTE-SELF.1] (whatever ``verify`` says), then, when the
        policy verifies, other claims we are an eligible voter on."""
        if self.task is not None and not self.task.done():
            return
        waiting = [
            job for job in jobs
            if job.current is not None
            and (should_self_vote(job, self.address)
                 or (self.policy.verify and should_vote(job, self.address)))
            and self.store.state.vote(job.job_id, job.current) is None
            and (job.job_id, job.current) not in self.abstained
            and now < job.phase_deadline_ms
        ]
        if not waiting:
            return
        job = min(waiting, key=lambda j: (j.current != self.address, j.phase_deadline_ms,
                                          j.job_id))
        if job.current is not None:
            self.task = asyncio.create_task(self._verify(job.job_id, job.current),
                                            name=f"worker-verify-{short(job.job_id)}")

    async def _verify(self, job_id: bytes, claimer: Address) -> None:
        """Evaluate the revealed model in our sandbox and commit a hidden vote on it."""
        label = short(job_id)
        key = (job_id, claimer)
        own = claimer == self.address
        self.now = {"job": job_id.hex(), "claimer": address_to_text(claimer),
                    "phase": "preparing", "own_claim": own}
        try:
            job = self.node.state.job(job_id)
            if job is None or job.current != claimer or not self._may_vote(job):
                return
            claim = job.claim_of(claimer)
            if claim is None or job.model_hash is None:
                return
            spec = job.spec
            whose = "OUR OWN claim [VOTE-SELF.1]" if own else \
                f"the claim of {address_to_text(claimer)}"
            log.info("job %s: verifying %s: loss %r, model %s", label, whose, claim.loss,
                     job.model_hash.hex()[:16])
            try:
                async with asyncio.timeout(seconds_until(self.node, job.phase_deadline_ms)):
                    image_id = await self.images.ensure(spec, label, job_id)
                    data = await self.images.data.ensure(spec, label, job_id)
            except (ImageUnavailable, DataUnavailable, TimeoutError) as e:
                why = str(e) or "not ready before the vote window closes"
                self._abstain(key, f"cannot evaluate without the job's image and data: {why}")
                return
            measured: float | None = None
            challenge: float | None = None
            problem = ""
            turn_seed = self._challenge_seed(job)  # [VOTE-CHALLENGE.1] [EVAL-SAME.1]
            seed = turn_seed if turn_seed is not None else fresh_challenge_seed()
            self.now["phase"] = "fetching model"
            try:
                had_model = self.node.blob_path(job.model_hash) is not None
                async with asyncio.timeout(seconds_until(self.node, job.phase_deadline_ms)):
                    model = await self.node.fetch_blob(job.model_hash)
                if not had_model and self.images.disk is not None:
                    self.images.disk.record("blob", job.model_hash.hex(),
                                            model.stat().st_size, job_id)
            except (BlobError, TimeoutError) as e:
                why = str(e) or "not before the vote window closes"
                problem = f"model {job.model_hash.hex()[:16]} could not be fetched: {why}"
            else:
                self.now["phase"] = "evaluating"
                result = await self._evaluate_reloading(job, image_id, model, evaluation_inputs(
                    job_id, spec, self.address, data, seed))
                if result is None:
                    problem = ("the evaluation did not finish in time to commit a vote "
                               "[VOTE-FAILED.3]")
                elif result.ok:
                    measured = result.loss
                    if turn_seed is not None:
                        challenge = result.metrics.get("challenge_loss")
                elif result.reason in OUR_SIDE:
                    self.images.forget(image_id)
                    self._abstain(key, f"our sandbox failed ({result.reason}: {result.detail})")
                    return
                else:
                    problem = f"model could not be evaluated: {result.reason}: {result.detail}"
            hidden: tuple[bool, float | None, float | None] | None = None
            holdout = self.node.state.holdout(job_id)
            if holdout is not None and holdout.live:
                self.now["phase"] = "evaluating on the hidden part"
                hidden = await self._hidden_loss(job, image_id, model if not problem else None,
                                                 data, seed,
                                                 answer=turn_seed is not None and not own)
                if hidden is None:
                    return
            valid = vote_valid(claim.loss, measured, spec.loss_tolerance)
            if own:
                valid, measured = self._own_vote(label, claim.loss, measured, spec.loss_tolerance,
                                                 problem)
            elif problem:
                log.warning("job %s: %s; voting 'evaluation failed' (no measured loss), which "
                            "never counts against the claimer [VOTE-FAILED.1]", label, problem)
            else:
                log.info("job %s: measured loss %r vs claimed %r + tolerance %g: %s", label,
                         measured, claim.loss, spec.loss_tolerance,
                         "VALID" if valid else "INVALID")
            self._commit_vote(job_id, claimer, valid, measured, hidden,
                              None if problem or own else challenge)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.exception("job %s: verification failed", label)
            self._abstain(key, f"verification failed: {e}")
        finally:
            self.now = None
            self._wake()

    def _own_vote(self, label: str, claimed: float, measured: float | None, tolerance: float,
                  problem: str) -> tuple[bool, float | None]:
        """[VOTE-SELF.1] Our vote on our own claim, and the log line that says it."""
        cheat = self.policy.cheat_loss_factor
        valid, said = self_vote(claimed, measured, tolerance, cheat)
        if cheat > 0:
            log.warning("job %s: CHEATING (demo): our own vote insists our claim %r is valid "
                        "(we measured %r)", label, claimed, measured)
        elif problem:
            log.warning("job %s: our own model: %s; our own vote says invalid", label, problem)
        else:
            log.info("job %s: our own model measures %r now vs claimed %r + tolerance %g: "
                     "our own vote says %s", label, measured, claimed, tolerance,
                     "VALID" if valid else "INVALID (the claim no longer reproduces)")
        return valid, said

    async def _hidden_loss(self, job: Job, image_id: str, model: Path | None,
                           data: dict[str, Path], seed: bytes, *, answer: bool
                           ) -> tuple[bool, float | None, float | None] | None:
        """[HOLDOUT-VOTE.1] (holdout_ok, hidden loss, hidden challenge answer) for this turn;
        None to abstain (our side failed). A part that is refused or not served is
        ``holdout_ok = false``; a model that cannot be evaluated on a good part has no hidden
        loss. [HOLDOUT-CHALLENGE.1] The run gets the public run's ``challenge.json`` (built
        by the same [EVAL-SAME.1] builder); with ``answer`` (the turn's real seed), its
        ``challenge_loss`` answers the challenge on the hidden part (None: none reported)."""
        label = short(job.job_id)
        claimer = job.current
        try:
            async with asyncio.timeout(seconds_until(self.node, job.phase_deadline_ms)):
                hidden_dir = await self.images.data.holdout_part(job.spec, job.job_id, "hidden",
                                                                 label)
        except HoldoutPartRefused as e:
            log.warning("job %s: %s; our vote says the hidden part is bad", label, e)
            return False, None, None
        except (DataUnavailable, TimeoutError) as e:
            if claimer is not None:
                self._abstain((job.job_id, claimer), f"hidden part not ready: {e or 'timeout'}")
            return None
        if model is None:
            return True, None, None
        result = await self._evaluate_reloading(job, image_id, model, evaluation_inputs(
            job.job_id, job.spec, self.address, {**data, "valid": hidden_dir}, seed))
        if result is None:
            log.warning("job %s: the hidden-part evaluation did not finish in time to commit a "
                        "vote [VOTE-FAILED.3]", label)
            return True, None, None
        if result.ok:
            hidden_answer = result.metrics.get("challenge_loss") if answer else None
            log.info("job %s: hidden loss %r, hidden challenge answer %r", label, result.loss,
                     hidden_answer)
            return True, result.loss, hidden_answer
        if result.reason in OUR_SIDE:
            self.images.forget(image_id)
            if claimer is not None:
                self._abstain((job.job_id, claimer),
                              f"our sandbox failed on the hidden part ({result.reason})")
            return None
        log.warning("job %s: the model could not be evaluated on the hidden part: %s: %s",
                    label, result.reason, result.detail)
        return True, None, None

    async def _evaluate(self, job: Job, image_id: str, model: Path,
                        inputs: EvaluationInputs) -> EvalResult | None:
        """[EVAL-SAME.1] One evaluation run, built as the claimer's are; None when it has not
        returned in time to commit a vote before the window closes [VOTE-FAILED.3] (the
        job's run is bounded by its own limits; this bounds our wait on it, so a job that
        stalls gets a vote with no loss, never a missing vote and a burned bond)."""
        remaining = seconds_until(self.node, job.phase_deadline_ms)
        budget = max(1.0, remaining - min(COMMIT_MARGIN_S, remaining / 4))
        try:
            async with asyncio.timeout(budget):
                return await self.threads.run(run_evaluation, self.runner, image_id, model,
                                              inputs)
        except TimeoutError:
            return None
        except OSError as e:  # our temporary folder (its challenge file): a full disk
            return EvalResult(ok=False, reason=FailureReason.HOST_ERROR, loss=None,
                              detail=f"host could not write the evaluation's files: {e}")

    async def _evaluate_reloading(self, job: Job, image_id: str, model: Path,
                                  inputs: EvaluationInputs) -> EvalResult | None:
        """``_evaluate``, run once more if our engine no longer held the job's image
        [VOTE-FAILED.4]: an operator's prune (or another program) removed it since it was
        checked, which says nothing about the model; abstaining would burn our bond
        [VOTE-NOSHOW.1]. The image is fetched and loaded again from its blob first
        [JOB-IMAGE.3], within the commit window."""
        result = await self._evaluate(job, image_id, model, inputs)
        if result is not None and result.reason == FailureReason.ENGINE_ERROR and \
                await self._wait_for_engine(job, result.detail):
            result = await self._evaluate(job, image_id, model, inputs)
        if result is not None and result.reason == FailureReason.HOST_ERROR and \
                await self._wait_for_room(job, result.detail, inputs.limits.output_bytes):
            result = await self._evaluate(job, image_id, model, inputs)
        if result is None or result.reason != FailureReason.IMAGE_MISSING:
            return result
        label = short(job.job_id)
        self.images.forget(image_id)
        log.warning("job %s: image %s is no longer in the engine; loading it again from its "
                    "blob to evaluate once more [VOTE-FAILED.4]", label, image_id[:19])
        try:
            async with asyncio.timeout(seconds_until(self.node, job.phase_deadline_ms)):
                await self.images.ensure(job.spec, label, job.job_id)
        except (ImageUnavailable, TimeoutError) as e:
            log.warning("job %s: image %s could not be loaded again: %s", label,
                        image_id[:19], e or "not before the vote window closes")
            return result
        return await self._evaluate(job, image_id, model, inputs)

    async def _wait_for_room(self, job: Job, failure: str, output_bytes: int) -> bool:
        """[VOTE-FAILED.7] Our disk could not take the evaluation's files (``host_error``):
        that says nothing about the model either. Wait, while the commit window leaves time
        to evaluate, until the temporary folder has room for them; True once it has."""
        label = short(job.job_id)
        folder = Path(tempfile.gettempdir())
        need = output_bytes + EVAL_SCRATCH_BYTES
        self.engine_problem = failure
        if self.now is not None:
            self.now["phase"] = "waiting for disk space"
        log.error("job %s: our evaluation could not write its files (%s); waiting for %d MiB "
                  "free in %s to evaluate once more before the vote window closes "
                  "[VOTE-FAILED.7]", label, failure, need >> 20, folder)
        try:
            waited = await wait_for_disk(
                folder, need,
                lambda: seconds_until(self.node, job.phase_deadline_ms) > COMMIT_MARGIN_S + 1,
                lambda free: setattr(self, "engine_problem", f"{failure}; {free}"))
            if waited is None:
                log.error("job %s: no room for the evaluation before the vote window closes",
                          label)
                return False
            log.warning("job %s: the disk has room again after %.0f s; evaluating once more",
                        label, waited)
            return True
        finally:
            self.engine_problem = None

    async def _wait_for_engine(self, job: Job, failure: str) -> bool:
        """[VOTE-FAILED.6] Our Docker engine failed during the evaluation (stopped, restarted
        by an upgrade or an operator): that says nothing about the model, and abstaining
        would burn our bond [VOTE-NOSHOW.1]. Ping it every ``ENGINE_POLL_S`` while the
        commit window leaves time to evaluate; True once it answers (what the outage left
        of our containers removed), False when the window runs out first."""
        label = short(job.job_id)
        seen = time.time()
        self.engine_problem = failure
        if self.now is not None:
            self.now["phase"] = "waiting for the Docker engine"
        log.error("job %s: the Docker engine failed during our evaluation (%s); waiting for it "
                  "to evaluate once more before the vote window closes [VOTE-FAILED.6]",
                  label, failure)
        try:
            waited = await wait_for_engine(
                self.threads, self.runner.client,
                lambda: seconds_until(self.node, job.phase_deadline_ms) > COMMIT_MARGIN_S + 1,
                lambda ping: setattr(self, "engine_problem", f"{failure}; ping: {ping}"))
            if waited is not None:
                log.warning("job %s: the Docker engine answers again after %.0f s; evaluating "
                            "once more", label, waited)
                await asyncio.to_thread(remove_stopped_before, self.runner.client,
                                        self.runner.node_id, self.address, seen)
                return True
            log.error("job %s: the Docker engine did not answer before the vote window "
                      "closes", label)
            return False
        finally:
            self.engine_problem = None

    def _challenge_seed(self, job: Job) -> bytes | None:
        """[VOTE-CHALLENGE.1] This turn's challenge seed, from the block that included the
        reveal (searched back from the tip), for the public run and, on a holdout turn, the
        hidden one too [HOLDOUT-CHALLENGE.1]; None when the block is not found."""
        if job.current is None or job.model_hash is None:
            return None
        top = self.node.height
        blocks = (b for h in range(top, max(0, top - 10_000), -1)
                  if (b := self.node.block(h)) is not None)
        found = reveal_block_hash(blocks, job.job_id, job.current, job.model_hash)
        if found is None:
            log.warning("job %s: the block of the reveal was not found; voting without a "
                        "challenge answer", short(job.job_id))
            return None
        return challenge_seed(found, job.job_id, job.current, job.model_hash)

    def _commit_vote(self, job_id: bytes, claimer: Address, valid: bool,
                     measured: float | None,
                     hidden: tuple[bool, float | None, float | None] | None = None,
                     challenge: float | None = None) -> None:
        job = self.node.state.job(job_id)
        if job is None or job.current != claimer or not self._may_vote(job) \
                or self.node.now_ms() >= job.phase_deadline_ms:
            log.warning("job %s: the vote window closed before our evaluation finished",
                        short(job_id))
            return
        salt = os.urandom(32)
        holdout_ok, hidden_loss, hidden_answer = hidden if hidden is not None else \
            (None, None, None)
        if hidden_loss is None:
            hidden_answer = None  # [HOLDOUT-CHALLENGE.1] no answer without a hidden loss
        if holdout_ok is None:
            commitment = vote_commitment(job_id, claimer, self.address, valid, measured, salt,
                                         challenge)
        else:
            commitment = holdout_vote_commitment(job_id, claimer, self.address, valid, measured,
                                                 holdout_ok, hidden_loss, salt, hidden_answer,
                                                 challenge)
        key = self.store.state.vote_key(job_id, claimer)
        self.store.state.votes[key] = VoteSecret(job_id.hex(), claimer.hex(), valid, measured,
                                                 salt.hex(), commitment.hex(), holdout_ok,
                                                 hidden_loss, challenge, hidden_answer)
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
