"""Why a job has no claim yet, for ``job status`` and ``job watch`` [API-QUEUE.1]
[WORK-QUEUE.1]: where it stands in the workers' order and what would change it."""

from __future__ import annotations

from typing import Any

from client.api.http_client import ApiClient, ApiError


def job_queue(client: ApiClient, job: dict[str, Any]) -> dict[str, Any] | None:
    """The queue view of an open job without claims; None otherwise, or when the node
    cannot say (an older node answers 404 not_found): extra, never required."""
    if job.get("status") != "open" or job.get("claim_count"):
        return None
    try:
        queue = client.job_queue(job["job_id"]).get("queue")
    except ApiError:
        return None
    return queue if isinstance(queue, dict) else None


def queue_lines(q: dict[str, Any]) -> list[str]:
    """``no claim yet: #3 of 5 open jobs ...``, the jobs before it, then the advice."""
    lines = [f"no claim yet: #{q['position']} of {q['open_jobs']} open job(s) in the order "
             f"workers take them (best bounty per core-second first; this one "
             f"{q['score']:.3g})"]
    for a in q["ahead"]:
        lines.append(f"  before it: {a['job_id'][:16]}… bounty {a['bounty']}, "
                     f"{a['score']:.3g}/core-s, {a['claims']} claim(s)")
    if q["ahead_count"] > len(q["ahead"]):
        lines.append(f"  … and {q['ahead_count'] - len(q['ahead'])} more")
    lines += [f"  what would change it: {line}" for line in q["advice"]]
    return lines
