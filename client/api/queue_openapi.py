"""The OpenAPI path and schema of ``GET /jobs/{job_id}/queue`` [API-QUEUE.1]."""

from __future__ import annotations

from collections.abc import Callable

from client.api.openapi_types import HEX32, INT, S, array, bounded, nullable, obj, ref, text
from client.worker.queue_view import MAX_AHEAD

_NUMBER: S = {"type": "number"}
_COUNT = bounded(0, 2**31)

QUEUE_SCHEMAS: dict[str, S] = {
    "JobQueue": obj({
        "job_id": HEX32, "status": {"type": "string"}, "claims": _COUNT,
        "queue": nullable(obj({
            "position": {**bounded(1, 2**31), "description": "1 = first in the workers' "
                         "order (best bounty per core-second first)"},
            "open_jobs": _COUNT,
            "score": {**_NUMBER, "description": "Bounty per core-second of one run"},
            "ahead_count": _COUNT,
            "ahead": array(obj({"job_id": HEX32, "bounty": INT, "score": _NUMBER,
                                "expiry_ms": INT, "claims": _COUNT}), MAX_AHEAD),
            "bounty_to_lead": {**nullable(INT), "description": "The least bounty that would "
                               "put it first; null when it is first"},
            "default_skip": {**nullable(text(400)), "description": "Why a worker on the "
                             "default policy skips it; null when it takes it"},
            "expires_in_ms": INT, "first_ahead_ends_in_ms": nullable(INT),
            "advice": array(text(600)),
        }, description="[WORK-QUEUE.1]; null unless the job is open")),
    }, description="[API-QUEUE.1] Why a job has no claim yet"),
}


def queue_paths(op: Callable[..., S], json: Callable[..., S], error: Callable[[str], S],
                path_param: Callable[[str, S, str], S]) -> dict[str, S]:
    """The one route, built with ``client.api.openapi``'s helpers (passed in)."""
    return {"/jobs/{job_id}/queue": {"get": op(
        "Where a job stands in the workers' order",
        {"200": json(ref("JobQueue")), "400": error("Malformed id"),
         "404": error("No such job")},
        params=[path_param("job_id", HEX32, "Job id (hash of its post_job transaction)")],
        tags=("jobs",))}}
