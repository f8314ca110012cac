"""The executor lottery [PRED-LOTTERY.1] [PRED-LOTTERY.2].

No party controls it: the seed is a block hash the requester could not see when it sent
the request, and the draw is a fixed function of the seed and the sorted candidates, so
every node (and a second implementation) draws the same executors.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from chain.encoding import encode
from chain.errors import InvalidTransaction
from chain.types import DOMAIN, Address, Hash32

_SPACE = 1 << 256


def _h(*items: object) -> bytes:
    return hashlib.sha256(encode([DOMAIN, *items])).digest()


def lottery_seed(request_id: bytes, block_hash: bytes) -> Hash32:
    """[PRED-LOTTERY.1] ``SHA-256(encode([domain, "predict-lottery", request_id, block_hash]))``
    where ``block_hash`` is the hash of the block that includes the request."""
    return Hash32(_h("predict-lottery", request_id, block_hash))


def candidates(offering: Iterable[Address], requester: Address) -> tuple[Address, ...]:
    """[PRED-LOTTERY.2] Members offering prediction service, minus the requester, sorted by
    address bytes, each once."""
    return tuple(sorted({a for a in offering if a != requester}))


def draw(seed: bytes, pool: tuple[Address, ...] | list[Address], k: int) -> tuple[Address, ...]:
    """[PRED-LOTTERY.2] k distinct executors, uniformly, in draw order.

    For counter c = 0, 1, 2, ...: ``r = int(SHA-256(encode([domain, "predict-draw", seed, c])),
    big-endian)``; with n candidates and ``limit = 2^256 − (2^256 mod n)``, a draw with
    ``r ≥ limit`` is discarded (no modulo bias), else candidate ``r mod n`` is drawn unless it
    already was. Stops at k. Fewer than k candidates: ``too_few_executors``."""
    n = len(pool)
    if list(pool) != sorted(set(pool)):
        raise ValueError("the pool is sorted by address, without repeats")
    if n < k:
        raise InvalidTransaction("too_few_executors", f"{n} members offer prediction service; "
                                                      f"the request needs k={k}")
    chosen: list[Address] = []
    counter = 0
    while len(chosen) < k:
        index = draw_index(int.from_bytes(_h("predict-draw", seed, counter), "big"), n)
        counter += 1
        if index is not None and pool[index] not in chosen:
            chosen.append(pool[index])
    return tuple(chosen)


def draw_index(r: int, n: int) -> int | None:
    """[PRED-LOTTERY.2] One 256-bit draw ``r`` → a candidate index, or None when
    ``r ≥ 2^256 − (2^256 mod n)`` (the incomplete last block of n values is discarded)."""
    if not 0 <= r < _SPACE or n < 1:
        raise ValueError(f"r in [0, 2^256) and n >= 1, got n={n}")
    return None if r >= _SPACE - (_SPACE % n) else r % n
