"""Typed readers for decoded msgpack fields: the one field-check mechanism.

Every decoder of peer input (transactions, blocks, job specs, consensus
messages, p2p frames) is a sequence of these calls, so a malformed message
fails with a ``FieldError`` that names the field, what was expected and what
came: ``bad field 'amount': expected int in [1, 2**63-1], got -5``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from chain.errors import FieldError
from chain.types import (
    ADDRESS_LEN,
    HASH_LEN,
    MAX_AMOUNT,
    PUBKEY_LEN,
    SIGNATURE_LEN,
    Address,
    Amount,
    Hash32,
    PublicKeyBytes,
    Signature,
)


def _bad(name: str, expected: str, got: Any) -> FieldError:
    return FieldError(name, expected, got)


def array(value: Any, name: str, length: int | None = None, max_len: int = 1 << 16) -> list[Any]:
    if not isinstance(value, list):
        raise _bad(name, "array", value)
    if length is not None and len(value) != length:
        raise _bad(name, f"array of {length} items", f"{len(value)} items")
    if len(value) > max_len:
        raise _bad(name, f"at most {max_len} items", f"{len(value)} items")
    return value


def uint(value: Any, name: str, lo: int = 0, hi: int = 2**63 - 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise _bad(name, f"int in [{lo}, {hi}]", value)
    return value


def amount(value: Any, name: str, lo: int = 1) -> Amount:
    return Amount(uint(value, name, lo, MAX_AMOUNT))


def boolean(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise _bad(name, "bool", value)
    return value


def finite_float(value: Any, name: str) -> float:
    if not isinstance(value, float) or not math.isfinite(value):
        raise _bad(name, "finite float64", value)
    return value


def optional_float(value: Any, name: str) -> float | None:
    return None if value is None else finite_float(value, name)


def blob(value: Any, name: str, length: int | None = None, max_len: int = 1 << 16) -> bytes:
    if not isinstance(value, bytes):
        raise _bad(name, "bin", value)
    if length is not None and len(value) != length:
        raise _bad(name, f"{length} bytes", value)
    if len(value) > max_len:
        raise _bad(name, f"at most {max_len} bytes", value)
    return value


def text(value: Any, name: str, max_len: int = 256, min_len: int = 0) -> str:
    if not isinstance(value, str) or not min_len <= len(value) <= max_len:
        raise _bad(name, f"str of {min_len}..{max_len} chars", value)
    return value


def text_list(value: Any, name: str, max_items: int, max_len: int) -> tuple[str, ...]:
    items = array(value, name, max_len=max_items)
    return tuple(text(v, f"{name}[{i}]", max_len) for i, v in enumerate(items))


def address(value: Any, name: str) -> Address:
    return Address(blob(value, name, ADDRESS_LEN))


def hash32(value: Any, name: str) -> Hash32:
    return Hash32(blob(value, name, HASH_LEN))


def pubkey(value: Any, name: str) -> PublicKeyBytes:
    raw = blob(value, name, PUBKEY_LEN)
    if raw[0] not in (2, 3):
        raise _bad(name, "compressed public key (0x02/0x03 prefix)", raw[:1])
    return PublicKeyBytes(raw)


def signature(value: Any, name: str) -> Signature:
    return Signature(blob(value, name, SIGNATURE_LEN))


def one_of(value: Any, name: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise _bad(name, f"one of {list(allowed)}", value)
    return str(value)
