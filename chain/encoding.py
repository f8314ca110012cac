"""Canonical msgpack: exactly one valid encoding for every value [ENC-CANON.1].

Allowed values: nil, bool, int in [-2**63, 2**64), finite float64, UTF-8 str,
bin, arrays, and maps whose keys are str sorted by their UTF-8 bytes. Integers
use the shortest msgpack form, floats always float64, strings always str8+
family and bytes always bin family (msgpack's own minimal choices). Decoding
re-encodes and compares byte for byte, which rejects every other encoding:
non-minimal integers, float32, unsorted or duplicate map keys, raw/str mixups,
ext types, trailing bytes.
"""

from __future__ import annotations

import math
from typing import Any

import msgpack

from chain.errors import DecodeError

MAX_ENCODED_SIZE = 4 * 1024 * 1024
"""Upper bound for any single decoded object; callers pass tighter limits."""

INT_MIN = -(2**63)
INT_MAX = 2**64 - 1


def _normalise(value: Any) -> Any:
    """Checks a value tree is encodable and returns it with map keys sorted."""
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
    return msgpack.packb(_normalise(value), use_bin_type=True, use_single_float=False)


def _reject_ext(code: int, data: bytes) -> Any:
    raise DecodeError(f"msgpack ext type {code} is not allowed", code="ext_type")


def decode(data: bytes, *, max_size: int = MAX_ENCODED_SIZE) -> Any:
    """Decodes one canonical value, rejecting anything else with ``DecodeError``."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError("expected bytes", code="type")
    data = bytes(data)
    if len(data) > max_size:
        raise DecodeError(f"object of {len(data)} bytes exceeds limit {max_size}", code="oversized")
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
        raise DecodeError(f"non-canonical value: {e}", code="non_canonical") from e
    if again != data:
        raise DecodeError("non-canonical encoding", code="non_canonical")
    return value
