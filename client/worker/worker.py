"""The worker loop: pick jobs worth it, train, claim, reveal, verify others, vote.

One asyncio task follows the chain: after every committed block it looks
at the jobs and does what each needs (send a claim again, reveal our model
when it is our turn, open our votes, log a settlement). Heavy work runs in
more tasks, each doing one thing at a time: **training**
(``client.worker.training``: one job at a time: fetch and load its image,
train with sampled hyperparameters, self-check the model in two fresh
evaluation containers [WORK-SELFCHECK.1], claim), **verifying**
(``client.worker.votes``: evaluate a revealed model, commit a hidden vote;
on our own claim's turn, measure our own model and vote on it
[VOTE-SELF.1]) and **disk collection** (``client.worker.disk``: images and
blobs of settled jobs under the disk budget [WORK-GC.1]). Every Docker call
runs on a thread, so the node's event loop is never blocked.

What must survive a crash (claim secrets and model files, vote salts, run
counts [WORK-ATTEMPTS.1], inconsistent jobs, owned images) is written by
``client.worker.state`` before the transaction that needs it is sent; a
worker started on the same data folder picks up where it stopped. Which
jobs to take and when a claim is worth sending are the pure functions of
``client.worker.policy``.

Chain rules followed here: [JOB-CLAIM.1], [JOB-COMMIT.1], [JOB-REVEAL.1],
[VOTE-ELIGIBLE.2], [VOTE-COMMIT.1/2], [VOTE-SELF.1], [VOTE-REVEAL.1],
[VOTE-CONSISTENT.1] (protocol_spec/ledger.md §5); worker rules in
protocol_spec/node.md §6.
"""

from __future__ import annotations

import asyncio
import logging

from chain.crypto import PrivateKey, address_to_text
from chain.records import SETTLED, Job, JobStatus, Outcome, Verdict
from chain.train.bodies import ClaimLoss, RevealModel
from chain.types import Address, Hash32
from client.node.config import WorkerPolicy
from client.node.handle import CommittedBlock, NodeHandle
from client.worker import gpus
from client.worker.attempt_log import AttemptLog
from client.worker.disk import DiskKeeper
from client.worker.enrolment import Enrolment
from client.worker.outbox import Action, Outbox, short
from client.worker.sandboxing import ImageCache, Threads, remove_containers
from client.worker.state import WorkerStore
from client.worker.training import Trainer
from client.worker.votes import Verifier
from p2p.blobstore import BlobError
from sandbox import launcher
from sandbox import runtime as sandbox_runtime
from sandbox.checkpoints import CHECKPOINT_DIR
from sandbox.engine import connect
from sandbox.runner import SandboxRunner

log = logging.getLogger("learningchain.worker")

PRUNE_EVERY = 100
"""Every this many blocks, notes about settled jobs are dropped from memory."""
STOP_TIMEOUT_S = 30.0
"""How long ``stop`` waits for sandbox threads after killing their containers."""


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
        self.attempts = AttemptLog(self.store.dir, self.address_text)
        """Each training attempt's outcome, served to the job's submitter [API-JOBLOG.1]."""
        self.threads = Threads()
        self._runner = runner
        self._images: ImageCache | None = None
        self._wake = asyncio.Event()
        self._main: asyncio.Task[None] | None = None
        self._stopped = False
        self._pruned_at = -1
        self.outbox = Outbox(node, self.key)
        self.enrolment = Enrolment(node, self.outbox, self.address, policy.verify)
        """Opts in to verification, or out, as the policy says [WORK-VERIFY.1]."""
        self.verifier: Verifier | None = None
        self.trainer: Trainer | None = None
        self.disk: DiskKeeper | None = None
        self._verdicts_seen: dict[bytes, int] = {}
        self._complained: set[tuple[str, bytes]] = set()

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

    @property
    def engine_problem(self) -> str | None:
        """Why job work is paused: the Docker engine failed and does not answer yet (during
        a training, or a verification [VOTE-FAILED.6])."""
        training = self.trainer.engine_problem if self.trainer is not None else None
        return training or (self.verifier.engine_problem if self.verifier is not None
                            else None)

    async def start(self) -> None:
        """Resume the persisted state, clean up leftover containers, follow the chain."""
        own_runner = self._runner is None
        if self._runner is None:
            client = await asyncio.to_thread(connect)
            # [JOB-RUNTIME.1-2] runsc where installed; a runtime the engine lacks refuses
            choice = await asyncio.to_thread(sandbox_runtime.resolve, client, self.policy.runtime)
            (log.info if choice.isolated else log.warning)("%s", choice.describe())
            evaluation = sandbox_runtime.for_evaluation(self.node.genesis.eval_runtime,
                                                        await asyncio.to_thread(client.info))
            if evaluation is None:  # [JOB-RUNTIME.13] a genesis made before issue 47
                log.warning("the graph's genesis names no eval_runtime: this node evaluates "
                            "under its own runtime, and a member whose runtime differs may "
                            "measure another loss [JOB-RUNTIME.13]")
            else:
                log.info("claims are evaluated under %s, the graph's runtime [JOB-RUNTIME.13]",
                         evaluation)
            await asyncio.to_thread(launcher.folder)  # [JOB-SECCOMP.5] built before any job
            self._runner = SandboxRunner(client, node_id=f"worker-{self.address.hex()[:12]}",
                                         runtime=choice.name, eval_runtime=evaluation)
        else:
            log.info("jobs run under the given runner's runtime (%s)",
                     self._runner.runtime or "the engine's default")
        offer = await asyncio.to_thread(gpus.probe_offer, self.policy, self.runner.client)
        self.policy = gpus.effective_policy(self.policy, offer)  # [WORK-GPU.1]
        log.info("GPUs: %s", offer.detail)
        state = self.store.open()
        self.disk = DiskKeeper(self.node, self.runner.client, self.store, self.policy)
        self._images = ImageCache(self.node, self.runner.client, self.threads, self.policy,
                                  self.disk, data_root=self.store.dir / "data")
        self.disk.on_removed_image.append(self._images.forget)
        self.verifier = Verifier(self.node, self.policy, self.address, self.store, self.outbox,
                                 self.threads, self.runner, self._images, self._wake.set)
        self.trainer = Trainer(self.node, self.policy, self.key, self.store, self.outbox,
                               self.threads, self.runner, self._images, self._wake.set,
                               self.attempts)
        leftovers = await asyncio.to_thread(remove_containers, self.runner.client,
                                            self.runner.node_id, self.address)
        if leftovers:
            log.info("removed %d job containers left by an earlier run: %s", len(leftovers),
                     ", ".join(leftovers))
        if own_runner:  # [JOB-WARM.2] the first job restores the checkpoint, not makes it
            self.runner.warm.prepare_in_background(  # its runs keep checkpoints [JOB-WARM.8]
                self.runner.runtime, volumes=(CHECKPOINT_DIR,))
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
        self.node.add_tick_listener(self._on_tick)  # [CONS-PACE.1] retries between blocks
        self._main = asyncio.create_task(self._follow_chain(), name="worker-chain")
        self._wake.set()

    async def stop(self) -> None:
        """Cancel the tasks, kill this worker's containers, wait for the sandbox threads."""
        if self._stopped:
            return
        self._stopped = True
        verifying = self.verifier.task if self.verifier is not None else None
        training = self.trainer.task if self.trainer is not None else None
        collecting = self.disk.task if self.disk is not None else None
        tasks = [t for t in (self._main, training, verifying, collecting) if t is not None]
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

    def _on_tick(self) -> None:
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
        if state.height % PRUNE_EVERY == 0 and state.height != self._pruned_at:
            self._pruned_at = state.height  # ticks repeat a height [CONS-PACE.1]
            self._prune({job.job_id for job in active})
        self.enrolment.maybe_enrol(state.height)
        for job in active:
            try:
                self._follow(job, state.height)
            except Exception:
                log.exception("job %s: handling failed; the worker goes on", short(job.job_id))
        if self.verifier is not None:
            self.verifier.maybe_verify(active, now)
        if self.trainer is not None:
            self.trainer.maybe_train(active, now)
        if self.disk is not None:
            self.disk.maybe_collect()

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
        tables: list[dict[bytes, object]] = [self._verdicts_seen]  # type: ignore[list-item]
        if self.trainer is not None:
            tables.extend(self.trainer.tables())
            self.trainer.prune_skips(live)
        for table in tables:
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
            elif ours and verdict.outcome == Outcome.WITHDRAWN:
                log.warning("%s: our model no longer reproduces our claim (we measured so too); "
                            "not banned [JOB-WITHDRAW.1]", line)
            else:
                log.info("%s", line)

    def _settled(self, job: Job) -> None:
        if self.disk is not None:
            self.disk.job_settled(job.job_id)
        if self.store.state.find_job(job.job_id) is None and not any(
                k.startswith(job.job_id.hex() + ":") for k in self.store.state.votes):
            return
        payout = job.paid if job.winner == self.address else 0
        for verdict in job.verdicts:
            secret = self.store.state.vote(job.job_id, verdict.claimer)
            if secret is None or verdict.claimer == self.address:
                continue  # [VOTE-SELF.1] our vote on our own claim is never paid
            payout += voter_share(job, verdict, secret.valid)
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
        verifier, trainer = self.verifier, self.trainer
        jobs: dict[str, object] = {}
        inconsistent: dict[str, str] = {}
        for job_hex, progress in self.store.state.jobs.items():
            best = min(progress.claims, key=lambda c: c.claimed_loss, default=None)
            jobs[job_hex] = {
                "attempts": progress.attempts,
                "runs": progress.runs,
                "best_measured_loss": progress.best_measured,
                "claimed_loss": best.claimed_loss if best else None,
                "claims": len(progress.claims),
                "last_failure": self.attempts.last_failure(job_hex),
            }
            if progress.inconsistent:
                # [API-JOBLOG.3] a line stored by an older node is bounded when served
                inconsistent[job_hex] = self.attempts.sanitise(progress.inconsistent)
        return {
            "address": self.address_text,
            "running": self._main is not None and not self._stopped,
            "cheating": self.policy.cheat_loss_factor > 0,
            "verify": self.policy.verify,
            "training": trainer.doing() if trainer else None,  # public progress [API-PROGRESS.3]
            "engine_problem": self.engine_problem,
            "verifying": dict(verifier.now) if verifier and verifier.now else None,
            "jobs": jobs,
            "inconsistent": inconsistent,
            "pending_votes": len(self.store.state.votes),
            "sent": dict(self.outbox.counters),
            "skipped": {k.hex(): v for k, v in (trainer.skip_text if trainer else {}).items()},
            "refused": {k.hex(): v for k, v in (trainer.refused if trainer else {}).items()},
            "abstained": {f"{j.hex()}:{c.hex()}": v
                          for (j, c), v in (verifier.abstained if verifier else {}).items()},
            "disk": self.disk.summary() if self.disk is not None else None,
        }


def voter_share(job: Job, verdict: Verdict, voted_valid: bool) -> int:
    """What one voter's opened vote earned on ``verdict`` [VOTE-REWARD.1] (for the log)."""
    reward = job.spec.voting.voter_reward
    if verdict.outcome == Outcome.INCONSISTENT:
        opened = verdict.valid_votes + verdict.invalid_votes
        return reward // opened if opened else 0
    if verdict.outcome == Outcome.VALID and voted_valid and verdict.valid_votes:
        return reward // verdict.valid_votes
    if verdict.outcome in (Outcome.CHEAT, Outcome.WITHDRAWN) and not voted_valid \
            and verdict.invalid_votes:
        return reward // verdict.invalid_votes
    return 0
