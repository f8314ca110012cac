"""LtHash16: a homomorphic hash of a set of records [STATE-CONTENT.1].

The hash of a set is the lane-wise sum, modulo 2^16, of 1,024-lane vectors, one per
record, each the SHAKE-128 expansion of the record. Adding a record adds its vector;
removing it subtracts it: a state's digest follows its changes at the cost of the
changed records only, and two nodes holding the same records hold the same digest
whatever the order they came in. Bellare and Micciancio's construction with the
parameters of Facebook's ``LtHash<16, 1024>`` (Lewi et al., "Securing Update Propagation
with Homomorphic Hashing", 2019: about 200 bits of security from the SIS lattice
problem); plain sums or XORs of hashes would not be collision resistant.

numpy does the lane arithmetic: unsigned 16-bit sums wrap modulo 2^16 by definition.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

from chain.encoding import encode
from chain.types import Hash32

LANES = 1024
LANE_BYTES = 2
VECTOR_BYTES = LANES * LANE_BYTES
"""[STATE-CONTENT.1] A leaf's expansion: 2,048 bytes read as 1,024 little-endian uint16."""

Lanes = npt.NDArray[np.uint16]


def zero() -> Lanes:
    """The hash of the empty set."""
    return np.zeros(LANES, dtype=np.uint16)


def leaf_bytes(table: str, key: bytes, value: bytes) -> bytes:
    """[STATE-CONTENT.1] What a record contributes: SHAKE-128 of
    ``encode(["learningchain/v1", "state-leaf", table, key, value])`` to 2,048 bytes."""
    data = encode(["learningchain/v1", "state-leaf", table, key, value])
    return hashlib.shake_128(data).digest(VECTOR_BYTES)


def sum_leaves(leaves: Iterable[bytes]) -> Lanes:
    """The lane-wise sum (mod 2^16) of some leaves' expansions, in one numpy pass."""
    joined = b"".join(leaves)
    if not joined:
        return zero()
    matrix = np.frombuffer(joined, dtype="<u2").reshape(-1, LANES)
    return matrix.sum(axis=0, dtype=np.uint16)


def combine(base: Lanes, added: Lanes, removed: Lanes) -> Lanes:
    """``base + added - removed`` lane by lane, modulo 2^16."""
    return (base + added - removed).astype(np.uint16)


def digest(lanes: Lanes) -> Hash32:
    """[STATE-CONTENT.1] SHA-256 of ``encode(["learningchain/v1", "state-content",
    lanes as 2,048 little-endian bytes])``: 32 bytes for headers and manifests."""
    raw = lanes.astype("<u2").tobytes()
    return Hash32(hashlib.sha256(encode(["learningchain/v1", "state-content", raw])).digest())
