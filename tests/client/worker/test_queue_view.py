"""[WORK-QUEUE.1] Why a job has no claim yet: its place in the order workers take open
jobs (``policy.pick_job``: best bounty per core-second, then the earlier expiry, then the
lower id), the jobs before it, the bounty that would put it first, and whether a worker on
the default policy would take it at all."""

from __future__ import annotations

from dataclasses import replace

from chain.jobspec import ResourceLimits
from chain.records import JobStatus
from client.node.config import WorkerPolicy
from client.worker.policy import pick_job, work_units
from client.worker.queue_view import MAX_AHEAD, waiting
from tests.client.worker.test_worker_policy import NOW, open_job


def test_work_queue_1_position_ahead_and_the_bounty_that_would_lead() -> None:
    mine = open_job(b"\x0a" * 32, bounty=100)  # 60 s × 1 core: 100 / 60 per core-second
    richer = open_job(b"\x0b" * 32, bounty=500)
    rich = open_job(b"\x0c" * 32, bounty=300)
    poorer = open_job(b"\x0d" * 32, bounty=50)
    closed = replace(open_job(b"\x0e" * 32, bounty=9_000), status=JobStatus.PAID)
    w = waiting(mine, [mine, richer, rich, poorer, closed], NOW)
    assert (w.position, w.open_jobs, w.ahead_count) == (3, 4, 2)
    assert [a.job_id for a in w.ahead] == [b"\x0b" * 32, b"\x0c" * 32]
    assert w.bounty_to_lead == 501 and w.default_skip is None
    # the bounty it names does put it first, in the workers' own pick
    lead = replace(mine, spec=replace(mine.spec, bounty=w.bounty_to_lead))
    assert pick_job([lead, richer, rich, poorer]) is lead
    assert waiting(lead, [lead, richer, rich, poorer], NOW).position == 1
    below = replace(mine, spec=replace(mine.spec, bounty=w.bounty_to_lead - 2))
    assert pick_job([below, richer]) is richer
    advice = w.to_json()["advice"]
    assert any("2 open job(s) pay more" in a and "501" in a for a in advice)


def test_work_queue_1_first_in_line_and_a_job_the_default_policy_skips() -> None:
    mine = open_job(bounty=100)
    w = waiting(mine, [mine, open_job(b"\x0b" * 32, bounty=10)], NOW)
    assert w.position == 1 and w.bounty_to_lead is None and w.ahead == ()
    assert "first in the workers' order" in w.to_json()["advice"][0]
    big = replace(mine, spec=replace(mine.spec, limits=ResourceLimits(
        memory_mb=64_000, cpu_millis=1000, time_s=60, disk_mb=64)))
    w = waiting(big, [big], NOW)
    assert w.default_skip is not None and "memory_mb 64000 > policy max 4096" in w.default_skip
    assert "default policy skips this job" in w.to_json()["advice"][0]
    assert waiting(big, [big], NOW, WorkerPolicy(max_memory_mb=65_536)).default_skip is None


def test_work_queue_1_ties_go_to_the_earlier_expiry_and_only_open_accepted_jobs_count() -> None:
    mine = open_job(b"\x0a" * 32, bounty=100, expiry_in_ms=120_000)
    same_sooner = open_job(b"\x0b" * 32, bounty=100, expiry_in_ms=60_000)
    same_later = open_job(b"\x0c" * 32, bounty=100, expiry_in_ms=180_000)
    too_big = replace(open_job(b"\x0d" * 32, bounty=10_000), spec=replace(
        open_job().spec, bounty=10_000, limits=ResourceLimits(
            memory_mb=64_000, cpu_millis=1000, time_s=60, disk_mb=64)))
    w = waiting(mine, [mine, same_sooner, same_later, too_big], NOW)
    assert w.position == 2 and [a.job_id for a in w.ahead] == [b"\x0b" * 32]
    assert w.first_ahead_ends_in_ms == 60_000 and w.expires_in_ms == 120_000
    assert w.bounty_to_lead == int(100 / work_units(mine.spec) * work_units(mine.spec)) + 1
    many = [open_job(bytes([i]) * 32, bounty=1_000 + i) for i in range(1, 9)]
    w = waiting(mine, [mine, *many], NOW)
    assert w.ahead_count == 8 and len(w.ahead) == MAX_AHEAD
    assert w.ahead[0].bounty == 1_008  # the best first
