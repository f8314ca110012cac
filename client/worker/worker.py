"""The worker loop: pick jobs worth it, train, claim, reveal, verify others, vote.

One asyncio task follows the chain: after every committed block it looks
at the jobs and does what each needs (send a claim again, reveal our model
when it is our turn, open our votes, log a settlement). Heavy work runs in
two more tasks, each doing one thing at a time: **training** (one job at a
time: fetch and load its image, train with sampled hyperparameters,
evaluate, claim) and **verifying** (evaluate a revealed model, commit a
hidden vote). Every Docker call runs on a thread, so the node's event loop
is never blocked.

What must survive a crash (claim secrets and model files, vote salts) is
written by ``client.worker.state`` before the transaction that needs it is
sent; a worker started on the same data folder picks up where it stopped.
Which jobs to take and when a claim is worth sending are the pure functions
of ``client.worker.policy``.

Chain rules followed here: [JOB-CLAIM.1], [JOB-COMMIT.1], [JOB-REVEAL.1],
[VOTE-ELIGIBLE.1], [VOTE-COMMIT.1/2], [VOTE-REVEAL.1], [VOTE-CONSISTENT.1]
(protocol_spec/ledger.md §5).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
from pathlib import Path

from chain.content import blob_id_of_file
from chain.crypto import PrivateKey, address_to_text
from chain.records import SETTLED, Job, JobStatus, Outcome
from chain.transactions import ClaimLoss, RevealModel, model_commitment
from chain.types import Address, Hash32
from client.node.config import WorkerPolicy
from client.node.handle import CommittedBlock, NodeHandle
from client.worker.outbox import Action, Outbox, short
from client.worker.policy import (
    Identity,
    Skip,
    another_attempt,
    claimed_loss,
    job_score,
    pick_job,
    sample_params,
    sandbox_limits,
    seed_for,
    skip_reason,
    worth_claiming,
)
from client.worker.sandboxing import (
    ImageCache,
    ImageUnavailable,
    Threads,
    container_label,
    remove_containers,
)
from client.worker.state import ClaimSecret, WorkerStore
from client.worker.votes import Verifier, seconds_until
from p2p.blobstore import BlobError
from sandbox.engine import connect
from sandbox.results import FailureReason
from sandbox.runner import SandboxRunner

log = logging.getLogger("learningchain.worker")

IMAGE_RETRY_S = 30.0
"""A job whose image blob could not be fetched is tried again after this long."""
PRUNE_EVERY = 100
"""Every this many blocks, notes about settled jobs are dropped from memory."""
STOP_TIMEOUT_S = 30.0
"""How long ``stop`` waits for sandbox threads after killing their containers."""
ENGINE_POLL_S = 2.0
"""Seconds between pings of a Docker engine that failed during a run."""


class Worker:
    """A node's worker role: trains other members' jobs and verifies their claims."""

    def __init__(self, node: NodeHandle, policy: WorkerPolicy, *,
                 runner: SandboxRunner | None = None, key: PrivateKey | None = None) -> None:
        self.node = node
        self.policy = policy
        self.key = key if key is not None else node.key
        """The identity the worker claims and votes with (default: the node's key)."""
        self.address: Address = self.key.address
        self.address_text = address_to_text(self.address)
        self.store = WorkerStore(node.data_dir / "worker", self.address)
        self.threads = Threads()
        self._runner = runner
        self._images: ImageCache | None = None
        self._wake = asyncio.Event()
        self._main: asyncio.Task[None] | None = None
        self._training: asyncio.Task[None] | None = None
        self._stopped = False
        self.outbox = Outbox(node, self.key)
        self.verifier: Verifier | None = None
        self._skipped: dict[bytes, str] = {}
        """Code of the reason each job was last skipped for (logged when it changes)."""
        self._skip_text: dict[bytes, str] = {}
        self._finished: dict[bytes, str] = {}
        """Jobs the training task is done with (why), not picked again."""
        self._refused: dict[bytes, str] = {}
        self._refused_until: dict[bytes, float] = {}
        """Refusals that may pass (the image blob was not reachable): monotonic time to retry."""
        self._verdicts_seen: dict[bytes, int] = {}
        self._last_attempt_ms: dict[bytes, float] = {}
        self._complained: set[tuple[str, bytes]] = set()
        self._training_now: dict[str, object] | None = None
        self.engine_problem: str | None = None
        """Why job work is paused: the Docker engine failed and does not answer yet."""

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def runner(self) -> SandboxRunner:
        if self._runner is None:
            raise RuntimeError("the worker is not started")
        return self._runner

    @property
    def images(self) -> ImageCache:
        if self._images is None:
            raise RuntimeError("the worker is not started")
        return self._images

    async def start(self) -> None:
        """Resume the persisted state, clean up leftover containers, follow the chain."""
        if self._runner is None:
            client = await asyncio.to_thread(connect)
            self._runner = SandboxRunner(client, node_id=f"worker-{self.address.hex()[:12]}")
        self._images = ImageCache(self.node, self.runner.client, self.threads)
        self.verifier = Verifier(self.node, self.policy, self.address, self.store, self.outbox,
                                 self.threads, self.runner, self._images, self._wake.set)
        state = self.store.open()
        leftovers = await asyncio.to_thread(remove_containers, self.runner.client,
                                            self.runner.node_id, self.address)
        if leftovers:
            log.info("removed %d job containers left by an earlier run: %s", len(leftovers),
                     ", ".join(leftovers))
        claims = sum(len(p.claims) for p in state.jobs.values())
        log.info("worker %s starting (state %s: %d jobs, %d claims, %d votes)",
                 self.address_text, self.store.path, len(state.jobs), claims, len(state.votes))
        if self.policy.cheat_loss_factor > 0:
            log.warning("!!! worker %s is CHEATING (demo/test only): it claims %g x the loss it "
                        "measures and reveals the real model; the vote should catch it !!!",
                        self.address_text, self.policy.cheat_loss_factor)
        if not self.node.state.is_member(self.address):
            log.warning("worker key %s is not an admitted member: it can neither claim nor vote",
                        self.address_text)
        self.node.add_block_listener(self._on_block)
        self._main = asyncio.create_task(self._follow_chain(), name="worker-chain")
        self._wake.set()

    async def stop(self) -> None:
        """Cancel the tasks, kill this worker's containers, wait for the sandbox threads."""
        if self._stopped:
            return
        self._stopped = True
        verifying = self.verifier.task if self.verifier is not None else None
        tasks = [t for t in (self._main, self._training, verifying) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:
                log.exception("worker task %s failed", task.get_name())
        if self._runner is not None:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + STOP_TIMEOUT_S
            while True:
                removed = await asyncio.to_thread(remove_containers, self.runner.client,
                                                  self.runner.node_id, self.address)
                if removed:
                    log.info("stopping: killed job containers %s", ", ".join(removed))
                if await self.threads.wait(1.0):
                    break
                if loop.time() > deadline:
                    log.warning("stopping: %d sandbox threads still running after %.0f s",
                                self.threads.running, STOP_TIMEOUT_S)
                    break
        log.info("worker %s stopped", self.address_text)

    def _on_block(self, _event: CommittedBlock) -> None:
        if not self._stopped:
            self._wake.set()

    # -- the chain follower --------------------------------------------------------------

    async def _follow_chain(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                self._step()
            except Exception:
                log.exception("worker step failed; trying again at the next block")

    def _step(self) -> None:
        state = self.node.state
        now = self.node.now_ms()
        active = [job for key in state.keys("active_job") if (job := state.job(key)) is not None]
        seen = {job.job_id for job in active}
        tracked = set(self.store.state.jobs) | {k.split(":")[0] for k in self.store.state.votes}
        for job_hex in sorted(tracked):
            job_id = bytes.fromhex(job_hex)
            if job_id not in seen and (job := state.job(job_id)) is not None:
                active.append(job)
        if state.height % PRUNE_EVERY == 0:
            self._prune({job.job_id for job in active})
        for job in active:
            try:
                self._follow(job, state.height)
            except Exception:
                log.exception("job %s: handling failed; the worker goes on", short(job.job_id))
        if self.verifier is not None:
            self.verifier.maybe_verify(active, now)
        self._maybe_train(active, now)

    def _follow(self, job: Job, height: int) -> None:
        self._log_new_verdicts(job)
        if job.status == JobStatus.OPEN:
            self._resend_claim(job, height)
        elif job.status == JobStatus.REVEAL and job.current == self.address:
            self._reveal(job, height)
        elif job.status in SETTLED:
            self._settled(job)
        elif self.verifier is not None:
            self.verifier.follow(job, height)

    def _prune(self, live: set[bytes]) -> None:
        """Forget what was noted about jobs that are settled and no longer tracked."""
        for table in (self._skipped, self._skip_text, self._finished, self._refused,
                      self._refused_until, self._verdicts_seen, self._last_attempt_ms):
            for job_id in [j for j in table if j not in live]:
                del table[job_id]
        self.outbox.prune(live)
        if self.verifier is not None:
            self.verifier.prune(live)
        self._complained = {k for k in self._complained if k[1] in live}

    # -- claims and reveals --------------------------------------------------------------

    def _resend_claim(self, job: Job, height: int) -> None:
        """A claim we wrote down but which is not on chain (crash, lost tx): send it again."""
        secret = self.store.state.best_claim(job.job_id)
        if secret is None:
            return
        own = job.claim_of(self.address)
        if own is not None and own.loss <= secret.claimed_loss:
            return
        if self.node.now_ms() >= job.spec.expiry_ms:
            return
        action = Action("claim", job.job_id, bytes.fromhex(secret.commitment))
        if self.outbox.due(action, height):
            body = ClaimLoss(Hash32(job.job_id), secret.claimed_loss,
                             Hash32(bytes.fromhex(secret.commitment)))
            self.outbox.send(body, "claim", job.job_id, action)

    def _reveal(self, job: Job, height: int) -> None:
        """[JOB-REVEAL.1] Our turn: publish the model blob, open the commitment."""
        claim = job.claim_of(self.address)
        if claim is None:
            return
        secret = self.store.state.secret_for(job.job_id, claim.commitment)
        if secret is None:
            self._complain_once("reveal", job.job_id,
                                "job %s: it is our turn but no saved model opens our claim's "
                                "commitment (state lost?); the turn will be forfeited",
                                short(job.job_id))
            return
        action = Action("reveal", job.job_id)
        if not self.outbox.due(action, height):
            return
        path = self.store.model_path(secret)
        try:
            blob = self.node.put_blob_file(path)
        except (OSError, BlobError) as e:
            self.outbox.note(action)
            log.error("job %s: cannot publish our model %s: %s", short(job.job_id), path, e)
            return
        if blob.hex() != secret.model_hash:
            log.error("job %s: model file %s now hashes to %s, not the committed %s",
                      short(job.job_id), path, blob.hex()[:16], secret.model_hash[:16])
        log.info("job %s: our turn: revealing model %s (claimed loss %r)", short(job.job_id),
                 secret.model_hash[:16], secret.claimed_loss)
        body = RevealModel(Hash32(job.job_id), Hash32(bytes.fromhex(secret.model_hash)),
                           bytes.fromhex(secret.salt))
        self.outbox.send(body, "reveal", job.job_id, action)

    # -- training ------------------------------------------------------------------------

    def _maybe_train(self, jobs: list[Job], now: int) -> None:
        if self._training is not None and not self._training.done():
            return
        state = self.node.state
        me = Identity(self.address, state.is_member(self.address), state.account(self.address))
        candidates = []
        for job in jobs:
            if job.status != JobStatus.OPEN:
                continue
            reason = self._not_again(job.job_id) or skip_reason(job, me, self.policy, now)
            if reason is None:
                candidates.append(job)
            elif self._skipped.get(job.job_id) != reason.code:
                self._skipped[job.job_id] = reason.code
                self._skip_text[job.job_id] = reason.text
                log.info("job %s skipped: %s", short(job.job_id), reason.text)
        picked = pick_job(candidates)
        if picked is None:
            return
        job = picked
        self._skipped.pop(job.job_id, None)
        self._skip_text.pop(job.job_id, None)
        log.info("job %s picked: bounty %d, %.3g credits per core-second, limits %s, expiry in "
                 "%.1f s", short(job.job_id), job.spec.bounty, job_score(job.spec),
                 job.spec.limits, (job.spec.expiry_ms - now) / 1000)
        self._training_now = {"job": job.job_id.hex(), "phase": "starting", "attempt": 0}
        self._training = asyncio.create_task(self._train(job.job_id),
                                             name=f"worker-train-{short(job.job_id)}")

    def _refuse(self, job_id: bytes, error: Exception) -> None:
        """No image: for good when the blob is not the job's, else try again a bit later."""
        if isinstance(error, ImageUnavailable) and error.permanent:
            self._refused[job_id] = f"refused: {error}"
            log.error("job %s refused: %s", short(job_id), error)
            return
        why = str(error) or "not ready before the expiry"
        self._refused[job_id] = f"image not available: {why}; trying again in " \
                                f"{IMAGE_RETRY_S:g} s"
        self._refused_until[job_id] = time.monotonic() + IMAGE_RETRY_S
        log.warning("job %s: %s", short(job_id), self._refused[job_id])

    def _not_again(self, job_id: bytes) -> Skip | None:
        """A job this worker already refused, finished or spent its attempts on."""
        if job_id in self._refused:
            until = self._refused_until.get(job_id)
            if until is None or time.monotonic() < until:
                return Skip("refused", self._refused[job_id])
            del self._refused[job_id], self._refused_until[job_id]
        if job_id in self._finished:
            return Skip("finished", self._finished[job_id])
        progress = self.store.state.find_job(job_id)
        if progress is not None and progress.attempts >= self.policy.max_attempts:
            return Skip("attempts", f"all {self.policy.max_attempts} attempts used")
        return None

    async def _train(self, job_id: bytes) -> None:
        """Attempts on one job until the policy, the clock or the loss says stop."""
        label = short(job_id)
        why: str | None = "done"
        try:
            job = self.node.state.job(job_id)
            if job is None:
                return
            self._set_phase("preparing image")
            try:
                async with asyncio.timeout(seconds_until(self.node, job.spec.expiry_ms)):
                    image_id = await self.images.ensure(job.spec, label)
            except (ImageUnavailable, TimeoutError) as e:
                why = None
                self._refuse(job_id, e)
                return
            progress = self.store.state.job(job_id)
            while True:
                job = self.node.state.job(job_id)
                if job is None:
                    return
                stop = another_attempt(job, progress.attempts, self.policy, self.node.now_ms(),
                                       self._last_attempt_ms.get(job_id), progress.best_measured)
                if stop is not None:
                    why = stop
                    log.info("job %s: no more attempts: %s (best measured loss %r)", label, stop,
                             progress.best_measured)
                    return
                progress.attempts += 1
                self.store.save()  # a crash mid-run does not repeat this seed
                engine_failure = await self._attempt(job, progress.attempts, image_id)
                if engine_failure is not None:
                    # the engine failed, not the job: this attempt (same seed) runs again
                    progress.attempts -= 1
                    self.store.save()
                    if not await self._wait_for_engine(job, engine_failure):
                        why = "expired while the Docker engine was unavailable"
                        return
        except asyncio.CancelledError:
            raise
        except Exception as e:
            why = f"failed: {e}"
            log.exception("job %s: training failed; the worker goes on", label)
        finally:
            if why is not None:
                self._finished[job_id] = why
            self._training_now = None
            self._wake.set()

    def _set_phase(self, phase: str, attempt: int | None = None) -> None:
        if self._training_now is not None:
            self._training_now["phase"] = phase
            if attempt is not None:
                self._training_now["attempt"] = attempt

    async def _wait_for_engine(self, job: Job, failure: str) -> bool:
        """Pause job work until the Docker engine answers again; False if the job expired."""
        label = short(job.job_id)
        self.engine_problem = failure
        self._set_phase("waiting for the Docker engine")
        log.error("job %s paused: the Docker engine failed (%s); the attempt is given back "
                  "and runs again once the engine answers", label, failure)
        started = time.monotonic()
        try:
            while self.node.now_ms() < job.spec.expiry_ms:
                try:
                    await self.threads.run(self.runner.client.ping)
                except Exception as e:  # docker raises a zoo of types for a dead socket
                    self.engine_problem = f"{failure}; ping: {type(e).__name__}"
                    await asyncio.sleep(ENGINE_POLL_S)
                    continue
                log.warning("the Docker engine answers again after %.0f s; job %s resumes",
                            time.monotonic() - started, label)
                # a restarted engine remembers the containers it had to stop
                await asyncio.to_thread(remove_containers, self.runner.client,
                                        self.runner.node_id, self.address)
                return True
            log.error("job %s expired while the Docker engine was unavailable", label)
            return False
        finally:
            self.engine_problem = None

    async def _attempt(self, job: Job, attempt: int, image_id: str) -> str | None:
        """One training run: sample, train, evaluate, and claim when it is worth it.

        Returns why, when the run failed because of the Docker engine rather than the job.
        """
        label, spec = short(job.job_id), job.spec
        params = sample_params(spec, seed_for(job.job_id, self.address, attempt))
        limits = sandbox_limits(spec)
        tag = container_label(job.job_id, self.address)
        run_dir = self.store.runs / f"{job.job_id.hex()[:16]}-{attempt}"
        shutil.rmtree(run_dir, ignore_errors=True)
        log.info("job %s: attempt %d/%d: params %s (seed %d)", label, attempt,
                 self.policy.max_attempts, dict(params.hyperparameters), params.seed)
        started = time.monotonic()
        try:
            self._set_phase("training", attempt)
            trained = await self.threads.run(self.runner.train, image_id, params, limits, None,
                                             run_dir / "train", job_id=tag,
                                             argv=spec.entry_point("train"))
            if not trained.ok or trained.model_path is None:
                log.warning("job %s: attempt %d: training failed: %s: %s; log tail: %s", label,
                            attempt, trained.reason, trained.detail, trained.log_tail[-500:])
                if trained.reason == FailureReason.IMAGE_MISSING:
                    self.images.forget(image_id)
                if trained.reason == FailureReason.ENGINE_ERROR:
                    return f"training: {trained.detail}"
                return None
            self._set_phase("evaluating", attempt)
            result = await self.threads.run(self.runner.evaluate, image_id, trained.model_path,
                                            limits, job_id=tag, argv=spec.entry_point("evaluate"))
            if not result.ok or result.loss is None:
                log.warning("job %s: attempt %d: evaluating our model failed: %s: %s", label,
                            attempt, result.reason, result.detail)
                if result.reason == FailureReason.ENGINE_ERROR:
                    return f"evaluating: {result.detail}"
                return None
            measured = result.loss
            progress = self.store.state.job(job.job_id)
            if progress.best_measured is None or measured < progress.best_measured:
                progress.best_measured = measured
            log.info("job %s: attempt %d: %s -> loss %r (train %.1f s, evaluate %.1f s)", label,
                     attempt, dict(params.hyperparameters), measured, trained.seconds,
                     result.seconds)
            await self._claim(job.job_id, attempt, measured, trained.model_path)
            return None
        finally:
            self._last_attempt_ms[job.job_id] = (time.monotonic() - started) * 1000
            shutil.rmtree(run_dir, ignore_errors=True)

    async def _claim(self, job_id: bytes, attempt: int, measured: float, model: Path) -> None:
        """[JOB-CLAIM.1] Save the model and its salt, then announce the loss."""
        label = short(job_id)
        loss = claimed_loss(measured, self.policy.cheat_loss_factor)
        job = self.node.state.job(job_id)
        if job is None:
            return
        pending = self.store.state.best_claim(job_id)
        why = worth_claiming(job, self.address, loss, self.node.now_ms(),
                             pending.claimed_loss if pending else None)
        if why is not None:
            log.info("job %s: attempt %d: not claiming loss %r: %s", label, attempt, loss, why)
            return
        kept = await self.threads.run(self.store.keep_model, model,
                                      f"{job_id.hex()[:16]}-{attempt}.pt")
        model_hash = await self.threads.run(blob_id_of_file, kept)
        salt = os.urandom(32)
        commitment = model_commitment(job_id, self.address, model_hash, salt)
        secret = ClaimSecret(attempt, measured, loss, str(kept.relative_to(self.store.dir)),
                             model_hash.hex(), salt.hex(), commitment.hex())
        progress = self.store.state.job(job_id)
        progress.claims.append(secret)
        self.store.save()  # write-ahead: we can open the commitment before anyone sees it
        if self.policy.cheat_loss_factor > 0:
            log.warning("job %s: CHEATING (demo): claiming loss %r although we measured %r",
                        label, loss, measured)
        log.info("job %s: claiming loss %r (model %s)", label, loss, model_hash.hex()[:16])
        action = Action("claim", job_id, commitment)
        body = ClaimLoss(Hash32(job_id), loss, commitment)
        if not self.outbox.send(body, "claim", job_id, action):
            progress.claims.remove(secret)
            self.store.save()
            with contextlib.suppress(OSError):
                kept.unlink()

    # -- outcomes ------------------------------------------------------------------------

    def _log_new_verdicts(self, job: Job) -> None:
        seen = self._verdicts_seen.get(job.job_id, 0)
        if len(job.verdicts) <= seen:
            return
        self._verdicts_seen[job.job_id] = len(job.verdicts)
        if self.store.state.find_job(job.job_id) is None and not any(
                self.store.state.vote(job.job_id, v.claimer) for v in job.verdicts):
            return
        for verdict in job.verdicts[seen:]:
            ours = verdict.claimer == self.address
            whose = "OUR claim" if ours else f"the claim of {address_to_text(verdict.claimer)}"
            line = (f"job {short(job.job_id)}: verdict on {whose}: {verdict.outcome} "
                    f"({verdict.valid_votes} valid, {verdict.invalid_votes} invalid of "
                    f"{verdict.eligible} eligible)")
            if ours and verdict.outcome == Outcome.CHEAT:
                log.error("%s: this key is now banned and its credits burned", line)
            elif ours and verdict.outcome == Outcome.FORFEIT:
                log.warning("%s: we did not reveal in time", line)
            else:
                log.info("%s", line)

    def _settled(self, job: Job) -> None:
        if self.store.state.find_job(job.job_id) is None and not any(
                k.startswith(job.job_id.hex() + ":") for k in self.store.state.votes):
            return
        payout = job.paid if job.winner == self.address else 0
        for verdict in job.verdicts:
            secret = self.store.state.vote(job.job_id, verdict.claimer)
            if secret is None or verdict.outcome not in (Outcome.VALID, Outcome.CHEAT):
                continue
            agreed = verdict.valid_votes if verdict.outcome == Outcome.VALID \
                else verdict.invalid_votes
            if secret.valid == (verdict.outcome == Outcome.VALID) and agreed:
                payout += job.spec.voting.voter_reward // agreed
        winner = address_to_text(job.winner) if job.winner else "nobody"
        log.info("job %s settled: %s, winner %s%s, paid %d; our payout %d, balance now %d",
                 short(job.job_id), job.status, winner,
                 " (us)" if job.winner == self.address else "", job.paid, payout,
                 self.node.state.account(self.address).balance)
        self.outbox.counters["settled"] += 1
        self.store.forget_job(job.job_id)
        self.store.save()

    def _complain_once(self, kind: str, job_id: bytes, message: str, *args: object) -> None:
        if (kind, job_id) not in self._complained:
            self._complained.add((kind, job_id))
            log.error(message, *args)

    # -- status --------------------------------------------------------------------------

    def summary(self) -> dict[str, object]:
        """JSON-able progress for the node status and the API."""
        verifier = self.verifier
        jobs: dict[str, object] = {}
        for job_hex, progress in self.store.state.jobs.items():
            best = min(progress.claims, key=lambda c: c.claimed_loss, default=None)
            jobs[job_hex] = {
                "attempts": progress.attempts,
                "best_measured_loss": progress.best_measured,
                "claimed_loss": best.claimed_loss if best else None,
                "claims": len(progress.claims),
            }
        return {
            "address": self.address_text,
            "running": self._main is not None and not self._stopped,
            "cheating": self.policy.cheat_loss_factor > 0,
            "verify": self.policy.verify,
            "training": dict(self._training_now) if self._training_now else None,
            "engine_problem": self.engine_problem,
            "verifying": dict(verifier.now) if verifier and verifier.now else None,
            "jobs": jobs,
            "pending_votes": len(self.store.state.votes),
            "sent": dict(self.outbox.counters),
            "skipped": {k.hex(): v for k, v in self._skip_text.items()},
            "refused": {k.hex(): v for k, v in self._refused.items()},
            "abstained": {f"{j.hex()}:{c.hex()}": v
                          for (j, c), v in (verifier.abstained if verifier else {}).items()},
        }
