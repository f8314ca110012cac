"""What a worker takes on and what it claims: pure functions, no I/O.

Everything here is a decision over chain records and the operator's
``WorkerPolicy``, so it is tested without a node, a clock or Docker.
``client.worker.worker`` carries the decisions out.

Decisions (and why):

- **Which job**: every OPEN job the policy accepts, best ``bounty`` per unit
  of work first. The work of one run is bounded by the spec's limits, so
  ``time_s * cpu_millis / 1000`` (core-seconds) is the honest unit; ties go
  to the job whose window closes first, then to the lower job id.
- **When to claim**: when the loss beats our own live claim (the ledger
  requires that, [JOB-CLAIM-ONE.1]) and would rank within the first
  ``max_turns`` claims of other claimers. A runner-up is not wasted: if the
  leader forfeits or is caught cheating the next claim gets its turn
  ([JOB-TURN.1]), so a claim that cannot be reached by any turn is the
  only one not worth a transaction.
- **Seeds**: one per (job, claimer, attempt), so each attempt draws fresh
  hyperparameters, a restarted worker repeats nothing it already tried, and
  two workers on one job explore different points.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable
from dataclasses import dataclass

from chain.crypto import address_to_text
from chain.jobspec import TRAIN_V1, TRAIN_V2, TRAIN_V3, JobSpec
from chain.records import Account, Job, JobStatus
from chain.types import Address
from client.node.config import WorkerPolicy
from sandbox.job_file import ParamRange
from sandbox.limits import ResourceLimits, TrainParams, from_spec

SEED_DOMAIN = b"learningchain/worker-seed/v1\x00"
WORKER_KINDS = (TRAIN_V1, TRAIN_V2, TRAIN_V3)
"""[JOB-KIND.1] [WORK-DATA.1] The kinds this worker runs; it skips any other (``kind``)."""
MIB = 1024 * 1024
RETRY_MARGIN = 1.5
"""Another attempt starts only if this many times the last attempt's duration is left."""
RETRY_SLACK_MS = 2_000
"""Plus this much, for the claim transaction to reach a block before the expiry."""


@dataclass(frozen=True, slots=True)
class Identity:
    """What the chain says about the worker's own key, as selection needs it."""

    address: Address
    member: bool
    account: Account


def image_id_text(spec: JobSpec) -> str:
    """The spec's image digest as the engine names it (``sha256:<hex>``)."""
    return "sha256:" + spec.image_digest.hex()


@dataclass(frozen=True, slots=True)
class Skip:
    """Why a job is not taken: a stable ``code`` (to log each reason once) and a sentence."""

    code: str
    text: str

    def __str__(self) -> str:
        return self.text


def skip_reason(job: Job, me: Identity, policy: WorkerPolicy, now_ms: int) -> Skip | None:
    """Why this worker will not train ``job`` now; None when it may."""
    spec, limits = job.spec, job.spec.limits
    if job.status != JobStatus.OPEN:
        return Skip("not_open", f"not open ({job.status})")
    if job.submitter == me.address:
        return Skip("own_job", "our own job")
    if not me.member:
        return Skip("not_member", "this key is not an admitted member, so it may not claim")
    if me.account.banned:
        return Skip("banned", "this key is banned")
    if spec.kind not in WORKER_KINDS:
        return Skip("kind", f"unknown job kind {spec.kind!r}")
    if spec.bounty < policy.min_bounty:
        return Skip("bounty", f"bounty {spec.bounty} < min_bounty {policy.min_bounty}")
    for name, have, most in (("memory_mb", limits.memory_mb, policy.max_memory_mb),
                             ("cpu_millis", limits.cpu_millis, policy.max_cpu_millis),
                             ("time_s", limits.time_s, policy.max_time_s),
                             ("disk_mb", limits.disk_mb, policy.max_disk_mb)):
        if have > most:
            return Skip(name, f"{name} {have} > policy max {most}")
    gpus = gpus_lacking(spec, policy)
    if gpus is not None:
        return gpus
    image = image_too_large(spec, policy)
    if image is not None:
        return Skip("image_size", image)
    data = data_too_large(spec, policy)
    if data is not None:
        return Skip("data_size", data)
    left_s = (spec.expiry_ms - now_ms) / 1000
    if left_s <= policy.min_time_left_s:
        return Skip("time_left", f"claim window closes in {left_s:.1f} s (policy "
                                 f"min_time_left_s {policy.min_time_left_s:g})")
    if policy.accept_submitters and address_to_text(job.submitter) not in policy.accept_submitters:
        return Skip("submitter", "submitter not in accept_submitters")
    if policy.accept_images and image_id_text(spec) not in policy.accept_images:
        return Skip("image", f"image {image_id_text(spec)} not in accept_images")
    return None


def gpus_lacking(spec: JobSpec, policy: WorkerPolicy) -> Skip | None:
    """[WORK-GPU.1] Why this worker lacks the GPUs the job requests; None when it has them.

    ``policy`` is the effective one (``client.worker.gpus``): its ``gpus`` are what the
    host and engine really give. Only trainers ask: evaluation runs without a GPU
    [JOB-GPU.3], so any voter may verify a GPU job.
    """
    limits = spec.limits
    if limits.gpu_count > policy.gpus:
        return Skip("gpu_count", f"needs {limits.gpu_count} GPU(s); this worker offers "
                                 f"{policy.gpus}")
    if limits.gpu_count and limits.gpu_memory_mb > policy.gpu_memory_mb:
        return Skip("gpu_memory", f"needs {limits.gpu_memory_mb} MiB per GPU; this worker's "
                                  f"GPUs have {policy.gpu_memory_mb}")
    return None


def image_too_large(spec: JobSpec, policy: WorkerPolicy) -> str | None:
    """[WORK-IMAGE.1] Why the job's declared image sizes exceed this worker's policy; None
    when they fit. Checked before anything is fetched, by trainers and voters alike."""
    limits = spec.limits
    for name, have, most in (("image_mb", limits.image_mb, policy.max_image_mb),
                             ("image_unpacked_mb", limits.image_unpacked_mb,
                              policy.max_image_unpacked_mb)):
        if have > most:
            return f"declared {name} {have} > policy max_{name} {most}"
    return None


def data_too_large(spec: JobSpec, policy: WorkerPolicy) -> str | None:
    """[WORK-DATA.1] Why the job's declared data blobs exceed this worker's policy; None when
    they fit: each at most ``max_image_mb`` (the largest blob it fetches), and twice their
    sum (the blob plus its unpacked folder) at most ``disk_budget_mb``."""
    for role, ref in spec.data:
        if ref.size > policy.max_image_mb * MIB:
            return (f"declared data {role} of {ref.size} bytes > policy max_image_mb "
                    f"{policy.max_image_mb}")
    if 2 * spec.data_bytes > policy.disk_budget_mb * MIB:
        return (f"declared data of {spec.data_bytes} bytes, twice that (blob + unpacked) > "
                f"policy disk_budget_mb {policy.disk_budget_mb}")
    return None


def work_units(spec: JobSpec) -> float:
    """Core-seconds one run may take: the cost side of a job's price."""
    return spec.limits.time_s * spec.limits.cpu_millis / 1000


def job_score(spec: JobSpec) -> float:
    """Bounty per core-second of one run; higher is better."""
    return spec.bounty / max(work_units(spec), 1e-9)


def pick_job(candidates: Iterable[Job]) -> Job | None:
    """The best-paying job per unit of work; ties: earlier expiry, then lower job id."""
    return min(candidates, key=lambda j: (-job_score(j.spec), j.spec.expiry_ms, j.job_id),
               default=None)


def claim_rank(job: Job, me: Address, loss: float) -> int:
    """How many other claimers' live claims would rank before a new claim of ``loss``.

    Equal losses rank by time [JOB-RANK.1]; an existing claim is always earlier.
    """
    return sum(1 for c in job.claims if c.claimer != me and c.loss <= loss)


def worth_claiming(job: Job, me: Address, loss: float, now_ms: int,
                   pending_loss: float | None = None) -> str | None:
    """None when claiming ``loss`` now is allowed and could win; else why not.

    ``pending_loss`` is a claim of ours sent but not yet in a block: the new
    one must beat it too, or the ledger would refuse it after that lands.
    """
    if job.status != JobStatus.OPEN or now_ms >= job.spec.expiry_ms:
        return "the claim window has closed"
    own = job.claim_of(me)
    for previous in (own.loss if own else None, pending_loss):
        if previous is not None and not loss < previous:
            return f"does not beat our own claim {previous!r}"
    rank = claim_rank(job, me, loss)
    if rank >= job.spec.voting.max_turns:
        return f"{rank} better claims already; only {job.spec.voting.max_turns} turns"
    return None


def max_runs(policy: WorkerPolicy) -> int:
    """[WORK-ATTEMPTS.1] The absolute bound on runs of one job by this worker."""
    return policy.max_attempts + policy.max_given_back


def runs_exhausted(attempts: int, runs: int, policy: WorkerPolicy) -> str | None:
    """[WORK-ATTEMPTS.1] Why no run of this job may start any more, whatever the cause of
    earlier failures; None while one may."""
    if attempts >= policy.max_attempts:
        return f"all {policy.max_attempts} attempts used"
    if runs >= max_runs(policy):
        return (f"{runs} runs started, the bound max_attempts + max_given_back = "
                f"{max_runs(policy)} (runs spoilt by the engine included)")
    return None


def another_attempt(job: Job, attempts: int, policy: WorkerPolicy, now_ms: int,
                    last_attempt_ms: float | None, best_loss: float | None,
                    runs: int = 0) -> str | None:
    """None when one more training run is worth starting; else why the worker stops."""
    if job.status != JobStatus.OPEN:
        return f"job is {job.status}"
    exhausted = runs_exhausted(attempts, runs, policy)
    if exhausted is not None:
        return exhausted
    if best_loss is not None and best_loss <= 0:
        return "loss 0 reached; nothing can beat it"
    left = job.spec.expiry_ms - now_ms
    need = RETRY_SLACK_MS + (RETRY_MARGIN * last_attempt_ms if last_attempt_ms else 0)
    if left <= need:
        return f"only {left / 1000:.1f} s left before the expiry"
    return None


def seed_for(job_id: bytes, address: bytes, attempt: int) -> int:
    """The seed of one attempt: fixed by (job, claimer, attempt), in [0, 2**63)."""
    digest = hashlib.sha256(SEED_DOMAIN + job_id + address + attempt.to_bytes(4, "big")).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def sample_params(spec: JobSpec, seed: int) -> TrainParams:
    """One point of the job's search space, drawn from ``seed`` (as ``JobFile.sample_params``)."""
    rng = random.Random(seed)
    ranges = [ParamRange(p.name, p.kind, tuple(p.values)) for p in spec.search_space]
    return TrainParams(seed, {r.name: r.sample(rng) for r in ranges})


def sandbox_limits(spec: JobSpec) -> ResourceLimits:
    """The container limits of one run of this job: from its declared limits only
    [EVAL-ENV.6], the model bounded by the declared ``model_mb`` [JOB-LIMITS.1]."""
    return from_spec(spec.limits)


def claimed_loss(measured: float, cheat_loss_factor: float) -> float:
    """What the worker announces: the measured loss, or (DEMO ONLY) a lie ``factor * loss``."""
    if cheat_loss_factor > 0:
        return measured * cheat_loss_factor
    return measured


def vote_valid(claimed: float, measured: float | None, tolerance: float) -> bool:
    """[VOTE-CONSISTENT.1] Valid exactly when the measured loss is within tolerance."""
    return measured is not None and measured <= claimed + tolerance


def self_vote(claimed: float, measured: float | None, tolerance: float,
              cheat_loss_factor: float) -> tuple[bool, float | None]:
    """[VOTE-SELF.1] The claimer's vote on its own claim: (valid, measured loss).

    Honest: what it measures now, judged like any vote [VOTE-CONSISTENT.1]. DEMO
    cheat mode insists on its lie (valid, the claimed loss), so that the vote still
    bans it [JOB-BAN.1].
    """
    if cheat_loss_factor > 0:
        return True, claimed
    return vote_valid(claimed, measured, tolerance), measured


def should_self_vote(job: Job, me: Address) -> bool:
    """[VOTE-SELF.1] Our own claim's turn is in VOTE_COMMIT and we have not voted on it."""
    return (job.status == JobStatus.VOTE_COMMIT and job.current == me
            and job.model_hash is not None and job.vote_of(me) is None)


def should_vote(job: Job, me: Address) -> bool:
    """In VOTE_COMMIT, eligible, and no vote of ours recorded on chain yet."""
    return (job.status == JobStatus.VOTE_COMMIT and job.current is not None
            and job.current != me and me in job.eligible_voters and job.vote_of(me) is None)


SETTLED_SKIPS_KEPT = 32
"""Skip reasons kept for jobs that have left the chain's active set: an operator who sees a
job refunded wants to know why this worker passed it over (the dashboard's "Jobs skipped"),
but the notes of a long-running node stay bounded."""


def skips_to_forget(skipped_oldest_first: list[bytes], live: set[bytes],
                    kept: int = SETTLED_SKIPS_KEPT) -> list[bytes]:
    """The skipped jobs whose reasons to drop: those no longer live, but the ``kept`` most
    recently skipped of them."""
    gone = [job_id for job_id in skipped_oldest_first if job_id not in live]
    return gone[:max(0, len(gone) - kept)]
