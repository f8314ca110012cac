"""Why a job has no claim yet, as the workers' own selection sees it [WORK-QUEUE.1].

A worker trains one job at a time and takes, among the open jobs its policy accepts, the
best bounty per core-second of one run first (``policy.pick_job``). The chain does not say
which worker runs what, but every input of that choice is on it: so a submitter whose job
waits can be told where it stands in that order, which jobs workers take before it, whether
a worker on the default policy would take it at all, and what would change it. Pure: chain
records in, a ``Waiting`` out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from chain.records import Account, Job, JobStatus
from chain.types import Address
from client.node.config import WorkerPolicy
from client.worker.policy import Identity, job_score, skip_reason, work_units

MAX_AHEAD = 5
"""The jobs named before this one (the count says how many there are in all)."""
NOBODY = Address(b"\xff" * 20)
"""A stand-in worker: an admitted member that is no job's submitter."""


@dataclass(frozen=True, slots=True)
class AheadJob:
    """An open job workers take before this one."""

    job_id: bytes
    bounty: int
    score: float
    expiry_ms: int
    claims: int


@dataclass(frozen=True, slots=True)
class Waiting:
    """[WORK-QUEUE.1] Where a job stands in the workers' order, and what would move it."""

    position: int
    """1-based among the open jobs a default-policy worker would take (this one included,
    even if that worker would skip it); 1 = first."""
    open_jobs: int
    score: float
    """Bounty per core-second of one run (``time_s × cpu_millis / 1000``)."""
    ahead: tuple[AheadJob, ...]
    ahead_count: int
    bounty_to_lead: int | None
    """The least bounty that would put it first (None when it is first)."""
    default_skip: str | None
    """Why a worker on the default policy skips it; None when it would take it."""
    expires_in_ms: int
    first_ahead_ends_in_ms: int | None

    def to_json(self) -> dict[str, Any]:
        return {"position": self.position, "open_jobs": self.open_jobs,
                "score": self.score, "ahead_count": self.ahead_count,
                "ahead": [{"job_id": a.job_id.hex(), "bounty": a.bounty, "score": a.score,
                           "expiry_ms": a.expiry_ms, "claims": a.claims} for a in self.ahead],
                "bounty_to_lead": self.bounty_to_lead, "default_skip": self.default_skip,
                "expires_in_ms": self.expires_in_ms,
                "first_ahead_ends_in_ms": self.first_ahead_ends_in_ms,
                "advice": advice(self)}


def _order_key(job: Job) -> tuple[float, int, bytes]:
    """``pick_job``'s order: best score first, then the earlier expiry, then the lower id."""
    return (-job_score(job.spec), job.spec.expiry_ms, bytes(job.job_id))


def waiting(job: Job, jobs: Iterable[Job], now_ms: int,
            policy: WorkerPolicy | None = None) -> Waiting:
    """[WORK-QUEUE.1] ``job`` among ``jobs`` (the open ones are read from it) as a worker on
    ``policy`` (default: the default policy) orders them at ``now_ms``."""
    policy = policy or WorkerPolicy()
    me = Identity(NOBODY, True, Account())
    taken = [j for j in jobs if j.status == JobStatus.OPEN and j.job_id != job.job_id
             and skip_reason(j, me, policy, now_ms) is None]
    key = _order_key(job)
    before = sorted((j for j in taken if _order_key(j) < key), key=_order_key)
    skip = skip_reason(job, me, policy, now_ms)
    lead = None
    if before:
        best = job_score(before[0].spec)
        lead = math.floor(best * work_units(job.spec)) + 1
    ends = [j.spec.expiry_ms - now_ms for j in before]
    return Waiting(
        position=len(before) + 1, open_jobs=len(taken) + 1, score=job_score(job.spec),
        ahead=tuple(AheadJob(bytes(j.job_id), j.spec.bounty, job_score(j.spec),
                             j.spec.expiry_ms, len(j.claims)) for j in before[:MAX_AHEAD]),
        ahead_count=len(before), bounty_to_lead=lead,
        default_skip=None if skip is None else skip.text,
        expires_in_ms=job.spec.expiry_ms - now_ms,
        first_ahead_ends_in_ms=min(ends) if ends else None)


def advice(w: Waiting) -> list[str]:
    """What would change it, one sentence each, for ``job status`` and ``job watch``."""
    out = []
    if w.default_skip is not None:
        out.append(f"a worker on the default policy skips this job ({w.default_skip}); "
                   "lower that limit, or find workers whose policy allows it")
    if w.ahead_count:
        out.append(f"{w.ahead_count} open job(s) pay more per core-second and workers take "
                   f"them first; a bounty of {w.bounty_to_lead} or more (or smaller limits: "
                   "time_s × cpu_millis) would put this one first")
        if w.first_ahead_ends_in_ms is not None and w.first_ahead_ends_in_ms < w.expires_in_ms:
            out.append(f"the first of them stops taking claims in "
                       f"{max(w.first_ahead_ends_in_ms, 0) // 1000} s, this job in "
                       f"{max(w.expires_in_ms, 0) // 1000} s")
    if not out:
        out.append("it is first in the workers' order: a free worker whose policy accepts it "
                   "takes it next (busy workers finish their current run first)")
    return out
