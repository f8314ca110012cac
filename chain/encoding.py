"""Canonical msgpack: exactly one valid encoding for every value [ENC-CANON.1].

Allowed values: nil, bool, int in [-2**63, 2**64), finite float64, UTF-8 str,
bin, arrays, and maps whose keys are str sorted by their UTF-8 bytes. Integers
use the shortest msgpack form, floats always float64, strings always str8+
family and bytes always bin family (msgpack's own minimal choices). Decoding
re-encodes and compares byte for byte, which rejects every other encoding:
non-minimal integers, float32, unsorted or duplicate map keys, raw/str mixups,
ext types, trailing bytes.

msgpack-python interprets one extension type itself, the timestamp (ext -1), without
calling ``ext_hook``: ``unpackb`` returns a ``msgpack.Timestamp`` and ``packb`` gives the
same bytes back, so a re-encode check alone would accept it. Such values are refused
by type, in both decode paths, before any caller sees them [ENC-CANON.2].
"""

from __future__ import annotations

import math
import re
from typing import Any

import msgpack

from chain.errors import DecodeError

MAX_ENCODED_SIZE = 4 * 1024 * 1024
"""Upper bound for any single decoded object; callers pass tighter limits."""

INT_MIN = -(2**63)
INT_MAX = 2**64 - 1


_PLAIN = frozenset({str, bytes, bool, type(None)})
"""Exact types that encode as they are (subclasses take the general path)."""


def _normalise(value: Any) -> Any:
    """Checks a value tree is encodable and returns it with map keys sorted."""
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is int:
        if not INT_MIN <= value <= INT_MAX:
            raise DecodeError(f"integer out of range: {value}", code="int_range")
        return value
    if kind is list or kind is tuple:
        return [v if type(v) in _PLAIN else _normalise(v) for v in value]
    return _normalise_other(value)


def _normalise_other(value: Any) -> Any:
    if isinstance(value, msgpack.Timestamp):
        raise DecodeError("msgpack ext type -1 (timestamp) is not allowed [ENC-CANON.2]",
                          code="ext_type")
    if value is None or isinstance(value, bool | str | bytes):
        return value
    if isinstance(value, memoryview | bytearray):  # zero-copy views (e.g. received chunks)
        return bytes(value)
    if isinstance(value, int):
        if not INT_MIN <= value <= INT_MAX:
            raise DecodeError(f"integer out of range: {value}", code="int_range")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise DecodeError("non-finite float", code="float_not_finite")
        return value
    if isinstance(value, list | tuple):
        return [_normalise(v) for v in value]
    if isinstance(value, dict):
        for k in value:
            if not isinstance(k, str):
                raise DecodeError("map keys must be strings", code="map_key_type")
        return {k: _normalise(value[k]) for k in sorted(value, key=lambda s: s.encode())}
    raise DecodeError(f"type not encodable: {type(value).__name__}", code="type")


def encode(value: Any) -> bytes:
    """The canonical encoding of ``value`` (lists, tuples, dicts, scalars)."""
    try:
        normal = _normalise(value)
    except RecursionError:  # a hostile input nested deeper than the stack: refused, not a crash
        raise DecodeError("value nested too deeply", code="too_deep") from None
    return msgpack.packb(normal, use_bin_type=True, use_single_float=False)


def _reject_ext(code: int, data: bytes) -> Any:
    raise DecodeError(f"msgpack ext type {code} is not allowed", code="ext_type")


class _HasMap(DecodeError):
    """Not an error of the input: a map leaves the fast path for the full check."""


def _no_maps(pairs: Any) -> Any:
    raise _HasMap("map")


_SLOW = object()
_NON_FINITE = (b"\xcb\x7f", b"\xcb\xff")
"""A float64 NaN or infinity starts with these two bytes (exponent all ones)."""

_TIMESTAMP_HEADS = (b"\xd6\xff", b"\xd7\xff", b"\xc7\x0c\xff")
"""The shortest forms of ext -1 that msgpack decodes into a ``Timestamp`` (fixext 4,
fixext 8, ext 8 of 12 bytes); longer forms re-encode shorter and miss the fast path."""

_SLOW_HEADS = re.compile(b"|".join(re.escape(head) for head in _NON_FINITE + _TIMESTAMP_HEADS))
"""Any of the heads above, found in one pass of C (five ``in`` tests from a generator cost
three times as much, on every transaction a node decodes)."""


def _decode_fast(data: bytes) -> Any:
    """The common case in C: no maps, no non-finite float, and ``packb`` gives the bytes back.

    For such a tree ``encode(value)`` is ``packb(value)`` (every msgpack integer is in range,
    nothing to sort), so this accepts exactly what the full check accepts; anything else
    (a map, a possible NaN, a mismatch, an error) returns ``_SLOW`` and takes the full path,
    which gives the error."""
    if _SLOW_HEADS.search(data) is not None:
        return _SLOW
    try:
        value = msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=True,
                                ext_hook=_reject_ext, object_pairs_hook=_no_maps)
        again = msgpack.packb(value, use_bin_type=True, use_single_float=False)
    except Exception:
        return _SLOW
    return value if again == data else _SLOW


def decode(data: bytes, *, max_size: int = MAX_ENCODED_SIZE) -> Any:
    """Decodes one canonical value, rejecting anything else with ``DecodeError``."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError("expected bytes", code="type")
    data = bytes(data)
    if len(data) > max_size:
        raise DecodeError(f"object of {len(data)} bytes exceeds limit {max_size}", code="oversized")
    fast = _decode_fast(data)
    if fast is not _SLOW:
        return fast
    try:
        value = msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            strict_map_key=True,
            ext_hook=_reject_ext,
        )
    except DecodeError:
        raise
    except msgpack.ExtraData as e:
        raise DecodeError("trailing bytes after object", code="trailing_bytes") from e
    except (ValueError, TypeError, msgpack.UnpackException, RecursionError) as e:
        raise DecodeError(f"malformed msgpack: {e}", code="malformed") from e
    try:
        again = encode(value)
    except DecodeError as e:
        if e.code == "ext_type":
            raise
        raise DecodeError(f"non-canonical value: {e}", code="non_canonical") from e
    if again != data:
        raise DecodeError("non-canonical encoding", code="non_canonical")
    return value
