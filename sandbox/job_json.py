"""Bounded, total parsing of JSON a job (or a submitter's image) wrote [JOB-JSON.*].

Everything here reads bytes an untrusted party chose. ``parse_json`` never
raises anything but ``JobJsonError`` (a ``ValueError``), whatever the input:
no ``RecursionError`` from deep nesting, no ``OverflowError`` or
``ValueError`` from a 400-digit integer, no NaN or infinity, no duplicate
key silently taking the last value. The bounds are checked *before* the
standard library's parser sees the text: size first, then nesting depth
by a linear scan, then the parser runs with hooks that range-check every
number and reject every duplicate key.

``parse_metrics`` applies the shape rules of ``metrics.json`` [JOB-EVAL.2]
on top.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sandbox.errors import SandboxError

MAX_JSON_BYTES = 64 * 1024
"""[JOB-JSON.1] A job's JSON file is at most 64 KiB."""
MAX_DEPTH = 32
"""[JOB-JSON.2] Arrays and objects nest at most 32 deep."""
MAX_NUMBER_CHARS = 40
"""[JOB-JSON.3] A number literal is at most 40 characters (any double's repr is ≤ 24)."""
MAX_METRICS = 64
"""[JOB-EVAL.2] metrics.json holds at most 64 members."""
METRIC_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
"""[JOB-EVAL.2] A metric name: 1 to 64 of ``A-Z a-z 0-9 _ . -``."""
_EXCERPT = 48


class JobJsonError(SandboxError, ValueError):
    """A job's JSON broke a rule; ``rule`` names it, ``excerpt`` shows the bad bytes."""

    def __init__(self, rule: str, detail: str, excerpt: str = "") -> None:
        super().__init__(f"[{rule}] {detail}" + (f": {excerpt}" if excerpt else ""))
        self.rule = rule
        self.detail = detail
        self.excerpt = excerpt


@dataclass(frozen=True, slots=True)
class JsonBounds:
    """The bounds one kind of file is parsed under."""

    max_bytes: int = MAX_JSON_BYTES
    max_depth: int = MAX_DEPTH
    max_number_chars: int = MAX_NUMBER_CHARS


def _excerpt(text: str | bytes) -> str:
    shown = text[:_EXCERPT]
    more = "..." if len(text) > _EXCERPT else ""
    return f"{shown!r}{more} ({len(text)} chars)" if more else repr(shown)


def parse_json(data: bytes, bounds: JsonBounds = JsonBounds()) -> Any:
    """Parse ``data`` as one JSON value under ``bounds``; raise only ``JobJsonError``.

    [JOB-JSON.1] size, UTF-8; [JOB-JSON.2] depth; [JOB-JSON.3] numbers:
    at most ``max_number_chars`` characters, finite as a double (``1e400``,
    ``NaN``, ``Infinity``, ``-Infinity`` refused); [JOB-JSON.4] no object
    has the same key twice.
    """
    if len(data) > bounds.max_bytes:
        raise JobJsonError("JOB-JSON.1", f"{len(data)} bytes, more than {bounds.max_bytes}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise JobJsonError("JOB-JSON.1", f"not UTF-8 at byte {e.start}",
                           _excerpt(data[max(0, e.start - 8):e.start + 8])) from None
    _check_depth(text, bounds.max_depth)
    try:
        return json.loads(
            text,
            parse_int=lambda s: _number(s, bounds, is_int=True),
            parse_float=lambda s: _number(s, bounds, is_int=False),
            parse_constant=_constant,
            object_pairs_hook=_unique_object,
        )
    except JobJsonError:
        raise
    except (ValueError, RecursionError, OverflowError, MemoryError) as e:
        # json.JSONDecodeError is a ValueError; the others cannot happen after the
        # checks above, but the parser is total by construction, not by argument.
        raise JobJsonError("JOB-JSON.0", f"not JSON: {type(e).__name__}: {e}") from None


def _check_depth(text: str, max_depth: int) -> None:
    """[JOB-JSON.2] One linear pass: brackets outside strings never nest deeper than allowed."""
    depth = 0
    in_string = False
    escaped = False
    for i, c in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "[{":
            depth += 1
            if depth > max_depth:
                raise JobJsonError("JOB-JSON.2", f"nested deeper than {max_depth}",
                                   f"at character {i}")
        elif c in "]}":
            depth -= 1


def _number(literal: str, bounds: JsonBounds, *, is_int: bool) -> int | float:
    """[JOB-JSON.3] Range-check a number literal before (and after) converting it."""
    if len(literal) > bounds.max_number_chars:
        raise JobJsonError("JOB-JSON.3", f"number literal longer than {bounds.max_number_chars}"
                           " characters", _excerpt(literal))
    if is_int:
        return int(literal)
    value = float(literal)
    if not math.isfinite(value):
        raise JobJsonError("JOB-JSON.3", "number is out of the range of a double",
                           _excerpt(literal))
    return value


def _constant(name: str) -> Any:
    raise JobJsonError("JOB-JSON.3", "NaN and infinities are not JSON numbers", repr(name))


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """[JOB-JSON.4] A duplicate key is refused, never last-wins."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise JobJsonError("JOB-JSON.4", "duplicate key", _excerpt(key))
        out[key] = value
    return out


def parse_metrics(data: bytes) -> dict[str, float]:
    """``metrics.json`` [JOB-EVAL.2]: an object of named finite numbers with a ``loss``.

    Raises ``JobJsonError`` naming the rule broken. The shape rules: the
    value is an object [JOB-EVAL.2a]; at most ``MAX_METRICS`` members
    [JOB-EVAL.2b]; every name matches ``METRIC_NAME_RE`` [JOB-EVAL.2c]; every
    value is a number, not a boolean, string, null, array or object
    [JOB-EVAL.2d]; ``loss`` is present [JOB-EVAL.2e]. Integers are read as
    doubles and must stay finite.
    """
    raw = parse_json(data, JsonBounds(max_bytes=MAX_JSON_BYTES, max_depth=1))
    if not isinstance(raw, dict):
        raise JobJsonError("JOB-EVAL.2a", f"metrics.json is a JSON {_kind(raw)}, not an object")
    if len(raw) > MAX_METRICS:
        raise JobJsonError("JOB-EVAL.2b", f"{len(raw)} metrics, more than {MAX_METRICS}")
    metrics: dict[str, float] = {}
    for name, value in raw.items():
        if not METRIC_NAME_RE.fullmatch(name):
            raise JobJsonError("JOB-EVAL.2c", "metric name is not 1-64 of A-Z a-z 0-9 _ . -",
                               _excerpt(name))
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise JobJsonError("JOB-EVAL.2d", f"metric {name!r} is a JSON {_kind(value)}, "
                               "not a number")
        number = float(value)
        if not math.isfinite(number):
            raise JobJsonError("JOB-JSON.3", f"metric {name!r} is out of the range of a double")
        metrics[name] = number
    if "loss" not in metrics:
        raise JobJsonError("JOB-EVAL.2e", "metrics.json has no 'loss'")
    return metrics


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, Mapping) else type(value).__name__
