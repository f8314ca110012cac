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
    "description": "[API-PROGRESS.1] The progress of this node's worker's training run on the "
                   "job; null when none is under way. [API-PROGRESS.2] view 'operator' (a "
                   "request with the node's API token): the last valid progress file "
                   "[JOB-PROGRESS.3]; view 'public' (anyone else) [API-PROGRESS.3]: the "
                   "fraction in whole percent, never decreasing, changed at most once per "
                   "30 s; step, metric, metric_name, checkpoint_step and resumed_from "
                   "withheld (null, '')",
    "properties": {
        "worker": {"type": "string", "pattern": "^lc1[0-9a-f]{48}$"},
        "attempt": _COUNT,
        "fraction": {"type": "number", "minimum": 0, "maximum": 1},
        "step": {"oneOf": [_COUNT, *_OR_NULL]},
        "metric": {"oneOf": [{"type": "number"}, *_OR_NULL]},
        "metric_name": {"type": "string", "minLength": 0, "maxLength": 32},
        "checkpoint_step": {"oneOf": [_COUNT, *_OR_NULL]},
        "resumed_from": {"oneOf": [_COUNT, *_OR_NULL]},
        "updated_ms": {"type": "integer", "minimum": 0},
        "view": {"type": "string", "enum": ["operator", "public"]},
    },
    "required": ["worker", "attempt", "fraction", "step", "metric", "metric_name",
                 "checkpoint_step", "resumed_from", "updated_ms", "view"],
    "additionalProperties": False,
}
