"""The worker's training task: pick a job, train, self-check, claim.

One job at a time: fetch and load its image, train with sampled
hyperparameters, evaluate the model twice in fresh evaluation containers
[WORK-SELFCHECK.1], and claim the worse of the two losses when they agree.

Whose fault a failed run is decides what it costs [JOB-EXIT.5]: a failure in
``JOB_FAULTS`` (whatever the job wrote or printed) uses up one of the job's
attempts; only a failure in ``WORKER_FAULTS`` (the engine confirmed down, the
host) is given back. Either way a job is never run more than
``max_attempts + max_given_back`` times by this worker, counted in the state
file so a restart cannot reset it [WORK-ATTEMPTS.1].
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from chain.content import blob_id_of_file
from chain.crypto import PrivateKey
from chain.records import Job, JobStatus
from chain.train.bodies import ClaimLoss, model_commitment
from chain.types import Address, Hash32
from client.node.config import WorkerPolicy
from client.node.handle import NodeHandle
from client.worker.attempt_log import AttemptLog, fault_of
from client.worker.data_blobs import DataUnavailable
from client.worker.evaluation import evaluation_inputs, fresh_challenge_seed, run_evaluation
from client.worker.outbox import Action, Outbox, short
from client.worker.policy import (
    Identity,
    Skip,
    another_attempt,
    claimed_loss,
    job_score,
    max_runs,
    pick_job,
    runs_exhausted,
    sample_params,
    sandbox_limits,
    seed_for,
    skip_reason,
    skips_to_forget,
    worth_claiming,
)
from client.worker.progress_view import (
    ProgressFeed,
    observe,
    operator_json,
    public_json,
)
from client.worker.sandboxing import (
    ImageCache,
    ImageUnavailable,
    Threads,
    container_label,
    disk_room,
    remove_containers,
    wait_for_disk,
    wait_for_engine,
)
from client.worker.selfcheck import VARIANTS, CheckOutcome, SelfCheck, judge
from client.worker.state import ClaimSecret, WorkerStore
from client.worker.votes import seconds_until
from sandbox.checkpoints import RunWatch, kept_checkpoint, resumed_wall_time, train_split
from sandbox.limits import MIB
from sandbox.progress import Progress
from sandbox.results import WORKER_FAULTS, EvalResult, FailureReason
from sandbox.runner import SandboxRunner

log = logging.getLogger("learningchain.worker")


@dataclass(frozen=True, slots=True)
class WorkerFault:
    """Why a run failed on this machine's side (``WORKER_FAULTS``): the attempt is given
    back [WORK-ATTEMPTS.1]. ``reason`` says which wait comes next: the disk's room for a
    ``host_error`` [WORK-DISK.1], else the engine."""

    reason: str | None
    text: str

    def __str__(self) -> str:
        return self.text


IMAGE_RETRY_S = 30.0
"""A job whose image blob could not be fetched is tried again after this long."""


class Trainer:
    """The training task of one worker (see the module docstring)."""

    def __init__(self, node: NodeHandle, policy: WorkerPolicy, key: PrivateKey,
                 store: WorkerStore, outbox: Outbox, threads: Threads, runner: SandboxRunner,
                 images: ImageCache, wake: Callable[[], None],
                 attempts: AttemptLog | None = None) -> None:
        self.node = node
        self.attempts = attempts if attempts is not None else AttemptLog(
            store.dir, store.address_text)
        """What each attempt ended with, kept for the job's submitter [API-JOBLOG.1]."""
        self.policy = policy
        self.key = key
        self.address: Address = key.address
        self.store = store
        self.outbox = outbox
        self.threads = threads
        self.runner = runner
        self.images = images
        self._wake = wake
        self.task: asyncio.Task[None] | None = None
        self.now: dict[str, object] | None = None
        """What the training in progress is doing (for the summary)."""
        self.engine_problem: str | None = None
        """Why job work is paused: the Docker engine failed and does not answer yet."""
        self.skipped: dict[bytes, str] = {}
        """Code of the reason each job was last skipped for (logged when it changes)."""
        self.skip_text: dict[bytes, str] = {}
        self.finished: dict[bytes, str] = {}
        """Jobs the training task is done with (why), not picked again."""
        self.refused: dict[bytes, str] = {}
        self.refused_until: dict[bytes, float] = {}
        """Refusals that may pass (the image blob was not reachable): monotonic time to retry."""
        self.last_attempt_ms: dict[bytes, float] = {}
        self.data: dict[bytes, dict[str, Path]] = {}
        """A train/v2 job's unpacked data folders by role [JOB-DATA.3], while it trains."""
        self.inconsistent_found = 0
        """Metrics: jobs this worker found inconsistent [WORK-SELFCHECK.1] since it started."""
        self.feeds: dict[bytes, ProgressFeed] = {}
        """[API-PROGRESS.1] The progress of the run under way, by job: the last valid file
        and what its public view published [API-PROGRESS.2-3]."""
        self.clock_ms: Callable[[], int] = lambda: int(time.time() * 1000)
        """Wall-clock milliseconds for the progress views (tests set their own)."""
        for job_hex, attempt in store.give_back_interrupted(self._has_checkpoint):
            log.warning("job %s: attempt %d was cut short (crash, kill or stop); it is given "
                        "back and resumes from its kept checkpoint [WORK-RESUME.1]",
                        job_hex[:12], attempt)

    def _has_checkpoint(self, job_id: bytes, attempt: int) -> bool:
        return kept_checkpoint(self.store.checkpoint_dir(job_id, attempt)) is not None

    def progress_of(self, job_id: bytes, *, operator: bool = False) -> dict[str, object] | None:
        """[API-PROGRESS.1-3] The live progress of this worker's run on the job: every field
        for the node's operator, else the public view (whole percent, the rest withheld)."""
        feed = self.feeds.get(job_id)
        if feed is None:
            return None
        return operator_json(feed) if operator else public_json(feed, self.clock_ms())

    def live_progress(self) -> dict[bytes, dict[str, object]]:
        """[API-PROGRESS.3] The public view of every run under way that has one (``/metrics``
        is open to anyone)."""
        views = {job_id: self.progress_of(job_id) for job_id in list(self.feeds)}
        return {job_id: view for job_id, view in views.items() if view is not None}

    def doing(self, *, operator: bool = False) -> dict[str, object] | None:
        """What the training in progress is doing, for ``GET /status``: its ``progress`` is
        the operator's or the public view [API-PROGRESS.2]."""
        now = self.now
        if now is None:
            return None
        job = now.get("job")
        progress = self.progress_of(bytes.fromhex(job), operator=operator) \
            if isinstance(job, str) else None
        return {**now, "progress": progress}

    def tables(self) -> tuple[dict[bytes, object], ...]:
        """Per-job notes, pruned by the worker once a job is no longer followed (the skip
        reasons apart: ``prune_skips``)."""
        return (self.finished, self.refused,  # type: ignore[return-value]
                self.refused_until, self.last_attempt_ms)

    def prune_skips(self, live: set[bytes]) -> None:
        """Keep the skip reasons of live jobs and of the ``SETTLED_SKIPS_KEPT`` most recently
        skipped others (insertion order: a reason is re-noted only when it changes)."""
        for job_id in skips_to_forget(list(self.skipped), live):
            del self.skipped[job_id]
            self.skip_text.pop(job_id, None)

    # -- picking -------------------------------------------------------------------------

    def maybe_train(self, jobs: list[Job], now: int) -> None:
        if self.task is not None and not self.task.done():
            return
        state = self.node.state
        me = Identity(self.address, state.is_member(self.address), state.account(self.address))
        candidates = []
        for job in jobs:
            if job.status != JobStatus.OPEN:
                continue
            reason = self.not_again(job.job_id) or skip_reason(job, me, self.policy, now)
            if reason is None:
                candidates.append(job)
            elif self.skipped.get(job.job_id) != reason.code:
                self.skipped.pop(job.job_id, None)  # re-noted last: the most recent skip
                self.skipped[job.job_id] = reason.code
                self.skip_text[job.job_id] = reason.text
                log.info("job %s skipped: %s", short(job.job_id), reason.text)
        picked = pick_job(candidates)
        if picked is None:
            return
        job = picked
        self.skipped.pop(job.job_id, None)
        self.skip_text.pop(job.job_id, None)
        log.info("job %s picked: bounty %d, %.3g credits per core-second, limits %s, expiry in "
                 "%.1f s", short(job.job_id), job.spec.bounty, job_score(job.spec),
                 job.spec.limits, (job.spec.expiry_ms - now) / 1000)
        self.now = {"job": job.job_id.hex(), "phase": "starting", "attempt": 0}
        self.task = asyncio.create_task(self._train(job.job_id),
                                        name=f"worker-train-{short(job.job_id)}")

    def _refuse(self, job_id: bytes, error: Exception) -> None:
        """No image: for good when the blob is not the job's, else try again a bit later."""
        if isinstance(error, ImageUnavailable | DataUnavailable) and error.permanent:
            self.refused[job_id] = f"refused: {error}"
            log.error("job %s refused: %s", short(job_id), error)
            return
        why = str(error) or "not ready before the expiry"
        retry_s = getattr(error, "retry_s", None) or IMAGE_RETRY_S
        what = "data" if isinstance(error, DataUnavailable) else "image"
        self.refused[job_id] = f"{what} not available: {why}; trying again in {retry_s:g} s"
        self.refused_until[job_id] = time.monotonic() + retry_s
        log.warning("job %s: %s", short(job_id), self.refused[job_id])

    def not_again(self, job_id: bytes) -> Skip | None:
        """A job this worker already refused, finished, found inconsistent, or spent its
        runs on [WORK-ATTEMPTS.1] (from the state file: a restart does not reset it)."""
        if job_id in self.refused:
            until = self.refused_until.get(job_id)
            if until is None or time.monotonic() < until:
                return Skip("refused", self.refused[job_id])
            del self.refused[job_id], self.refused_until[job_id]
        if job_id in self.finished:
            return Skip("finished", self.finished[job_id])
        progress = self.store.state.find_job(job_id)
        if progress is None:
            return None
        if progress.inconsistent:
            return Skip("inconsistent", f"inconsistent job: {progress.inconsistent}")
        exhausted = runs_exhausted(progress.attempts, progress.runs, self.policy)
        return Skip("attempts", exhausted) if exhausted is not None else None

    # -- one job -------------------------------------------------------------------------

    async def _train(self, job_id: bytes) -> None:
        """Attempts on one job until the policy, the bound, the clock or the loss says stop."""
        label = short(job_id)
        why: str | None = "done"
        try:
            job = self.node.state.job(job_id)
            if job is None:
                return
            self._set_phase("preparing image")
            try:
                async with asyncio.timeout(seconds_until(self.node, job.spec.expiry_ms)):
                    image_id = await self.images.ensure(job.spec, label, job_id)
                    self._set_phase("fetching data")
                    self.data[job_id] = await self.images.data.ensure(job.spec, label, job_id)
                    if self.policy.overfit_public and "valid" in self.data[job_id]:
                        log.warning("job %s: OVERFITTING (demo): training on the public "
                                    "validation data [WORK-HOLDOUT.1]", label)
                        self.data[job_id]["train"] = self.data[job_id]["valid"]
            except (ImageUnavailable, DataUnavailable, TimeoutError) as e:
                why = None
                self._refuse(job_id, e)
                return
            progress = self.store.state.job(job_id)
            while True:
                job = self.node.state.job(job_id)
                if job is None:
                    return
                if progress.inconsistent:
                    why = f"inconsistent job: {progress.inconsistent}"
                    return
                stop = another_attempt(job, progress.attempts, self.policy, self.node.now_ms(),
                                       self.last_attempt_ms.get(job_id), progress.best_measured,
                                       progress.runs)
                if stop is not None:
                    why = stop
                    log.info("job %s: no more attempts: %s (best measured loss %r)", label, stop,
                             progress.best_measured)
                    return
                progress.attempts += 1
                progress.runs += 1
                progress.running = progress.attempts  # [WORK-RESUME.1] set until it ends
                # a crash mid-run repeats neither this seed nor this run
                if not await self._save(job):
                    why = "expired while the disk was full"
                    return
                engine_failure = await self._attempt(job, progress.attempts, image_id)
                progress.running = 0
                if engine_failure is not None:
                    # this node failed, not the job: the attempt (same seed) runs again, while
                    # the absolute bound on runs [WORK-ATTEMPTS.1] allows
                    progress.attempts -= 1
                if not await self._save(job):
                    why = "expired while the disk was full"
                    return
                if engine_failure is not None:
                    if progress.runs >= max_runs(self.policy):
                        why = (f"{progress.runs} runs, the bound of max_attempts + "
                               f"max_given_back; last failure: {engine_failure}")
                        log.error("job %s: given up: %s", label, why)
                        return
                    if not await self._wait_for_host(job, engine_failure):
                        why = "expired while this machine could not run it"
                        return
        except asyncio.CancelledError:
            raise
        except Exception as e:
            why = f"failed: {e}"
            log.exception("job %s: training failed; the worker goes on", label)
        finally:
            self.data.pop(job_id, None)
            if why is not None:
                self.finished[job_id] = why
            self.now = None
            self._wake()

    def _set_phase(self, phase: str, attempt: int | None = None) -> None:
        if self.now is not None:
            self.now["phase"] = phase
            if attempt is not None:
                self.now["attempt"] = attempt

    async def _save(self, job: Job) -> bool:
        """Save the worker's state; on a full disk wait for room and save again [WORK-DISK.1].
        False when the job expired first."""
        while True:
            try:
                await asyncio.to_thread(self.store.save)
                return True
            except OSError as e:
                if not await self._wait_for_disk(job, f"cannot save the worker's state: {e}"):
                    return False

    async def _wait_for_host(self, job: Job, fault: WorkerFault) -> bool:
        """A run failed because of this machine: wait for the disk when the host failed
        (``host_error``: an output or a model that could not be written) and the disk lacks
        the job's room [WORK-DISK.1], else for the engine."""
        if fault.reason == FailureReason.HOST_ERROR \
                and shutil.disk_usage(self.store.dir).free < disk_room(job.spec):
            return await self._wait_for_disk(job, str(fault))
        return await self._wait_for_engine(job, str(fault))

    async def _wait_for_disk(self, job: Job, failure: str) -> bool:
        """[WORK-DISK.1] Pause the job until this worker's disk has its room again."""
        label = short(job.job_id)
        self.engine_problem = failure
        self._set_phase("waiting for disk space")
        log.error("job %s paused: %s; the attempt is given back and runs again once the disk "
                  "has %d MiB free", label, failure, disk_room(job.spec) // MIB)
        try:
            waited = await wait_for_disk(
                self.store.dir, disk_room(job.spec),
                lambda: self.node.now_ms() < job.spec.expiry_ms,
                lambda free: setattr(self, "engine_problem", f"{failure}; {free}"))
            if waited is None:
                log.error("job %s expired while the disk was full", label)
                return False
            log.warning("the disk has room again after %.0f s; job %s resumes", waited, label)
            return True
        finally:
            self.engine_problem = None

    async def _wait_for_engine(self, job: Job, failure: str) -> bool:
        """Pause job work until the Docker engine answers again; False if the job expired."""
        label = short(job.job_id)
        self.engine_problem = failure
        self._set_phase("waiting for the Docker engine")
        log.error("job %s paused: the Docker engine failed (%s); the attempt is given back "
                  "and runs again once the engine answers", label, failure)
        try:
            waited = await wait_for_engine(
                self.threads, self.runner.client,
                lambda: self.node.now_ms() < job.spec.expiry_ms,
                lambda ping: setattr(self, "engine_problem", f"{failure}; ping: {ping}"))
            if waited is not None:
                log.warning("the Docker engine answers again after %.0f s; job %s resumes",
                            waited, label)
                # a restarted engine remembers the containers it had to stop
                await asyncio.to_thread(remove_containers, self.runner.client,
                                        self.runner.node_id, self.address)
                return True
            log.error("job %s expired while the Docker engine was unavailable", label)
            return False
        finally:
            self.engine_problem = None

    async def _attempt(self, job: Job, attempt: int, image_id: str) -> WorkerFault | None:
        """One training run: sample, train, self-check, and claim when it is worth it.

        Returns why, when the run failed because of this node (``WORKER_FAULTS``) rather
        than the job; a job's failure returns None and keeps the attempt used.
        """
        label, spec = short(job.job_id), job.spec
        params = sample_params(spec, seed_for(job.job_id, self.address, attempt))
        limits = sandbox_limits(spec)
        tag = container_label(job.job_id, self.address)
        run_dir = self.store.runs / f"{job.job_id.hex()[:16]}-{attempt}"
        shutil.rmtree(run_dir, ignore_errors=True)
        kept_dir = self.store.checkpoint_dir(job.job_id, attempt)
        kept = await asyncio.to_thread(kept_checkpoint, kept_dir)
        wall = resumed_wall_time(limits.wall_time_s, kept)  # [JOB-CHECKPOINT.4]
        limits, checkpoint_bytes = train_split(replace(limits, wall_time_s=wall or 1.0),
                                               spec.limits.disk_mb)
        resumed = kept.step if kept is not None and checkpoint_bytes else None
        watch = None
        if checkpoint_bytes:
            self.feeds[job.job_id] = ProgressFeed(self.store.address_text, attempt, resumed,
                                                  started_ms=self.clock_ms())
            watch = RunWatch(kept_dir, checkpoint_bytes,
                             lambda p: self._on_progress(job.job_id, attempt, resumed, p),
                             resume=kept, label=f"{label}-{attempt}")
        log.info("job %s: attempt %d/%d: params %s (seed %d)", label, attempt,
                 self.policy.max_attempts, dict(params.hyperparameters), params.seed)
        started, started_ms = time.monotonic(), self.node.now_ms()
        run = self.store.state.job(job.job_id).runs

        def record(stage: str, reason: FailureReason | str | None, fault: str, *,
                   exit_code: int | None = None, detail: str = "", loss: float | None = None,
                   output: bytes = b"") -> None:
            self.attempts.record(job.job_id, attempt=attempt, run=run, started_ms=started_ms,
                                 seconds=time.monotonic() - started, stage=stage,
                                 reason=reason, fault=fault, exit_code=exit_code,
                                 detail=detail, loss=loss, output=output,
                                 resumed_from=resumed)

        keep_checkpoint = True  # until the attempt ends for good (cancelled: kept)
        try:
            if wall is None:
                keep_checkpoint = False
                spent = kept.seconds if kept is not None else 0.0
                log.warning("job %s: attempt %d: no time left to resume (%.1f s of %g s spent "
                            "up to its checkpoint) [JOB-CHECKPOINT.4]", label, attempt, spent,
                            spec.limits.time_s)
                record("train", FailureReason.TIMEOUT, "job",
                       detail=f"[JOB-CHECKPOINT.4] {spent:.1f} s of the {spec.limits.time_s} s "
                              f"limit spent before the checkpoint it would resume from")
                return None
            if resumed is not None and kept is not None:
                log.info("job %s: attempt %d resumes from its checkpoint of step %d (%.1f s "
                         "spent; %.1f s left) [JOB-CHECKPOINT.3]", label, attempt, resumed,
                         kept.seconds, limits.wall_time_s)
            self._set_phase("training", attempt)
            trained = await self.threads.run(self.runner.train, image_id, params, limits, None,
                                             run_dir / "train", job_id=tag,
                                             argv=spec.entry_point("train"),
                                             data=self.data.get(job.job_id), watch=watch)
            if not trained.ok or trained.model_path is None:
                log.warning("job %s: attempt %d: training failed: %s: %s; log tail: %r", label,
                            attempt, trained.reason, trained.detail, trained.log_tail[-500:])
                record("train", trained.reason or FailureReason.MODEL_MISSING,
                       fault_of(trained.reason or FailureReason.MODEL_MISSING),
                       exit_code=trained.exit_code, detail=trained.detail,
                       output=trained.logs)
                if trained.reason == FailureReason.IMAGE_MISSING:
                    self.images.forget(image_id)
                if trained.reason in WORKER_FAULTS:
                    return WorkerFault(trained.reason,
                                       f"training: {trained.reason}: {trained.detail}")
                keep_checkpoint = False
                return None  # the job's fault [JOB-EXIT.5]: the attempt is used up
            self._set_phase("self-check", attempt)
            check, runs = await self._self_check(job, image_id, trained.model_path, tag)
            failed = next((r for r in runs if not r.ok), None)
            if check.outcome == CheckOutcome.WORKER_FAULT:
                log.warning("job %s: attempt %d: self-check: %s", label, attempt, check.why)
                record("self-check", failed.reason if failed else "worker_fault", "worker",
                       exit_code=failed.exit_code if failed else None, detail=check.why,
                       output=failed.logs if failed else b"")
                self.images.forget(image_id)
                return WorkerFault(failed.reason if failed else None, f"self-check: {check.why}")
            keep_checkpoint = False  # the model exists: the attempt will not train again
            if check.outcome == CheckOutcome.INCONSISTENT or check.loss is None:
                record("self-check", failed.reason if failed else "inconsistent", "job",
                       exit_code=failed.exit_code if failed else None, detail=check.why,
                       output=failed.logs if failed else b"")
                self._mark_inconsistent(job.job_id, check)
                return None
            measured = check.loss
            record("self-check", None, "", detail=check.why, loss=measured)
            progress = self.store.state.job(job.job_id)
            if progress.best_measured is None or measured < progress.best_measured:
                progress.best_measured = measured
            log.info("job %s: attempt %d: %s -> loss %r (train %.1f s; self-check %s)", label,
                     attempt, dict(params.hyperparameters), measured, trained.seconds, check.why)
            try:
                await self._claim(job.job_id, attempt, measured, trained.model_path)
            except OSError as e:  # [WORK-DISK.1] the model or its salt could not be kept
                record("claim", FailureReason.HOST_ERROR, "worker", detail=str(e))
                why = f"claim: {FailureReason.HOST_ERROR}: cannot keep the model: {e}"
                return WorkerFault(FailureReason.HOST_ERROR, why)
            return None
        finally:
            self.last_attempt_ms[job.job_id] = (time.monotonic() - started) * 1000
            self.feeds.pop(job.job_id, None)
            shutil.rmtree(run_dir, ignore_errors=True)
            if not keep_checkpoint:
                self.store.drop_checkpoints(job.job_id, attempt)

    def _on_progress(self, job_id: bytes, attempt: int, resumed: int | None,
                     progress: Progress) -> None:
        """[JOB-PROGRESS.4] From the watching thread: the run's last valid progress, into the
        feed its run started (none once the run ended: a late read is dropped)."""
        feed = self.feeds.get(job_id)
        if feed is not None and feed.attempt == attempt and feed.resumed_from == resumed:
            self.feeds[job_id] = observe(feed, progress, self.clock_ms())

    async def _self_check(self, job: Job, image_id: str, model: Path,
                          tag: str) -> tuple[SelfCheck, tuple[EvalResult, ...]]:
        """[WORK-SELFCHECK.1] Two fresh evaluation containers (plain, then variant), each
        built exactly as a voter's run [EVAL-SAME.1]: the voters' environment, seed, data
        mounts and a ``challenge.json`` of the same form, whose seed is drawn fresh
        [EVAL-SAME.2] (the turn's seed does not exist before the reveal); stops at a failed
        run. Returns the verdict and the runs (a failed run's output goes to the attempt
        record, bounded [API-JOBLOG.3])."""
        spec = job.spec
        inputs = evaluation_inputs(job.job_id, spec, self.address, self.data.get(job.job_id),
                                   fresh_challenge_seed())
        results = []
        for variant in VARIANTS:
            result = await self.threads.run(run_evaluation, self.runner, image_id, model,
                                            inputs, variant=variant)
            results.append(result)
            if not result.ok:
                break  # a failed run decides the check; no second container needed
        return judge(tuple(results), spec.loss_tolerance), tuple(results)

    def _mark_inconsistent(self, job_id: bytes, check: SelfCheck) -> None:
        """[WORK-SELFCHECK.1] No claim; the job is never run again by this worker."""
        progress = self.store.state.job(job_id)
        # Served (the worker status): stored as the self-check record's detail is, by the
        # same rule [API-JOBLOG.3] (long tokens redacted, <worker> paths, 300 characters)
        progress.inconsistent = self.attempts.sanitise(check.why)
        self.store.save()
        self.inconsistent_found += 1
        log.error("job %s: INCONSISTENT, not claiming and not running it again: %s",
                  short(job_id), check.why)

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
        try:
            self.store.save()  # write-ahead: we can open the commitment before anyone sees it
        except OSError:  # [WORK-DISK.1] nothing was claimed: forget it, in memory and on disk
            progress.claims.remove(secret)
            with contextlib.suppress(OSError):
                kept.unlink()
            raise
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
