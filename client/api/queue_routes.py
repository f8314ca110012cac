"""``GET /jobs/{job_id}/queue`` [API-QUEUE.1]: why a job has no claim yet.

Where the job stands in the order workers take open jobs (best bounty per core-second
first, [WORK-QUEUE.1]), the jobs before it, whether a worker on the default policy takes it
at all, and what would change it; computed from the ledger's job records by
``client.worker.queue_view``, at the node's clock.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from chain.records import JobStatus
from client.api.json_forms import parse_hash
from client.api.problems import ApiProblem
from client.node.handle import NodeHandle
from client.worker.queue_view import waiting

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class QueueRoutes:
    """The one route over the open jobs' order; ``routes()`` lists it."""

    def __init__(self, node: NodeHandle) -> None:
        self.node = node

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [("GET", "/jobs/{job_id}/queue", self.get_queue)]

    async def get_queue(self, request: web.Request) -> web.Response:
        """[API-QUEUE.1] ``{"job_id", "status", "claims", "queue"}``: ``queue`` is null
        unless the job is open; open jobs of every kind a worker runs are compared."""
        job_id = parse_hash(request.match_info["job_id"], "job_id")
        state = self.node.state
        job = state.job(job_id)
        if job is None:
            raise ApiProblem(404, "unknown_job", f"no job {job_id.hex()}")
        out: dict[str, Any] = {"job_id": job_id.hex(), "status": str(job.status),
                               "claims": len(job.claims), "queue": None}
        if job.status == JobStatus.OPEN:
            jobs = [j for j in (state.job(k) for k in state.keys("job")) if j is not None]
            out["queue"] = waiting(job, jobs, self.node.now_ms()).to_json()
        return web.json_response(out)
