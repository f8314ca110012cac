"""The JSON Schema of a run's live progress in ``GET /jobs/{id}/logs`` [API-PROGRESS.1].

Kept apart from ``openapi.py`` (which holds every other schema) only for that module's size;
plain JSON Schema, the same closed-object form as ``openapi.obj``.
"""

from __future__ import annotations

from typing import Any

_COUNT: dict[str, Any] = {"type": "integer", "minimum": 0}
_OR_NULL = ({"type": "null"},)

RUN_PROGRESS: dict[str, Any] = {
    "type": "object",
    "description": "[API-PROGRESS.1] The last valid progress file [JOB-PROGRESS.3] of this "
                   "node's worker's training run on the job; null when none is under way",
    "properties": {
        "worker": {"type": "string", "pattern": "^lc1[0-9a-f]{48}$"},
        "attempt": _COUNT,
        "fraction": {"type": "number", "minimum": 0, "maximum": 1},
        "step": _COUNT,
        "metric": {"oneOf": [{"type": "number"}, *_OR_NULL]},
        "metric_name": {"type": "string", "minLength": 0, "maxLength": 32},
        "checkpoint_step": {"oneOf": [_COUNT, *_OR_NULL]},
        "resumed_from": {"oneOf": [_COUNT, *_OR_NULL]},
        "updated_ms": {"type": "integer", "minimum": 0},
    },
    "required": ["worker", "attempt", "fraction", "step", "metric", "metric_name",
                 "checkpoint_step", "resumed_from", "updated_ms"],
    "additionalProperties": False,
}
