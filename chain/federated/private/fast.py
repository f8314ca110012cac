"""Private mode's masking on numpy uint64 arrays, bit for bit masking.py's
[FED-PRIV.1-4], and update blobs decoded straight into arrays [FED-QUANT.5].

Z/2**64 is exactly numpy's uint64 arithmetic (it wraps), and a signed int64 read
as uint64 is ``v mod 2**64`` (two's complement), so masking and unmasking are a
few whole-array additions per SHAKE-256 stream; the stream itself is
masking.py's, read with ``frombuffer`` instead of ``struct``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from chain.encoding import encode
from chain.federated.blobs import MAX_ROUNDS, UPDATE_HEADER, UPDATE_MAGIC, UpdateBlob
from chain.federated.errors import BlobError, FederatedError
from chain.federated.fast import Vector, as_vector, rdiv
from chain.federated.fixed import MAX_DIMS, MAX_ROUND_PARTICIPANTS, Q_MAX
from chain.federated.private.masking import (
    MASKED_MAGIC,
    PAIR,
    SEED_LEN,
    SELF,
    masked_header,
    pair_sign,
)
from chain.types import DOMAIN, Address, Hash32

Words = npt.NDArray[np.uint64]


def mask_words(kind: str, seed: bytes, job_id: bytes, round: int, dims: int) -> Words:
    """[FED-PRIV.2] ``masking.mask`` as a uint64 array (read-only, from the digest)."""
    if kind not in (SELF, PAIR) or len(seed) != SEED_LEN or not 1 <= dims <= MAX_DIMS:
        raise FederatedError("bad_mask", "a mask is 'self' or 'pair', from a 32-byte seed, "
                             f"1..{MAX_DIMS} words", kind=kind, seed_len=len(seed), dims=dims)
    stream = hashlib.shake_256(encode([DOMAIN, "fed-mask", kind, job_id, round, seed]))
    return np.frombuffer(stream.digest(8 * dims), dtype="<u8").astype(np.uint64, copy=False)


def to_ring(v: Vector) -> Words:
    """[FED-PRIV.1] Signed int64 values as elements of Z/2**64 (two's complement)."""
    return v.astype(np.int64).view(np.uint64)


def mask_update_array(update: npt.NDArray[Any], me: bytes, self_seed: bytes,
                      pair_seeds: Mapping[bytes, bytes], job_id: bytes, round: int) -> Words:
    """[FED-PRIV.3] ``masking.mask_update``: ``x + m(self) + sum_j sign(me, j) · m(pair j)``
    modulo 2**64."""
    x = as_vector(update, "update")
    dims = len(x)
    acc = to_ring(x).copy()
    acc += mask_words(SELF, self_seed, job_id, round, dims)
    for j, s in sorted(pair_seeds.items()):
        m = mask_words(PAIR, s, job_id, round, dims)
        if pair_sign(me, j) > 0:
            acc += m
        else:
            acc -= m
    return acc


def unmask_sum_array(masked: Mapping[bytes, npt.NDArray[np.uint64]],
                     self_seeds: Mapping[bytes, bytes],
                     dropped: Mapping[bytes, Mapping[bytes, bytes]], job_id: bytes,
                     round: int, dims: int) -> Vector:
    """[FED-PRIV.4] ``masking.unmask_sum`` as a signed int64 array, with the same checks:
    the sum is read signed and each coordinate must lie within ±(survivors · Q_MAX)."""
    survivors = sorted(masked)
    if not survivors or len(survivors) + len(dropped) > MAX_ROUND_PARTICIPANTS:
        raise FederatedError("bad_unmask", "1..256 participants in a masked round",
                             survivors=len(survivors), dropped=len(dropped))
    if set(self_seeds) != set(survivors):
        raise FederatedError("bad_unmask", "one self seed per survivor, no other",
                             missing=sorted(a.hex() for a in set(survivors) - set(self_seeds)))
    acc = np.zeros(dims, dtype=np.uint64)
    for a in survivors:
        y = masked[a]
        if not isinstance(y, np.ndarray) or y.dtype != np.uint64 or y.shape != (dims,):
            raise FederatedError("bad_unmask", f"masked update of {a.hex()} is not {dims} "
                                 "ring elements", participant=a.hex())
        acc += y
        acc -= mask_words(SELF, self_seeds[a], job_id, round, dims)
    for d, seeds in sorted(dropped.items()):
        if d in masked or set(seeds) != set(survivors):
            raise FederatedError("bad_unmask", f"dropped {d.hex()} needs its pair seed with "
                                 "every survivor and no masked update", participant=d.hex())
        for a in survivors:
            m = mask_words(PAIR, seeds[a], job_id, round, dims)
            if pair_sign(a, d) > 0:
                acc -= m
            else:
                acc += m
    out = acc.view(np.int64)
    bound = len(survivors) * Q_MAX
    bad = np.flatnonzero((out > bound) | (out < -bound))
    if bad.size:
        k = int(bad[0])
        raise FederatedError("bad_unmask", f"coordinate {k} unmasks to {int(out[k])}, "
                             f"outside ±{bound}: a seed is wrong", index=k, value=int(out[k]))
    return out


def private_aggregate_array(total: Vector, survivors: int) -> Vector:
    """[FED-PRIV.4] ``rdiv(S_j, survivors)``: |S_j| <= 256 · Q_MAX fits int64."""
    return rdiv(total, survivors)


def masked_blob_bytes(job_id: bytes, round: int, participant: bytes, scale_bits: int,
                      words: Words) -> bytes:
    """[FED-PRIV.1] ``MaskedBlob.to_bytes`` from an array: header, then uint64 LE words."""
    head = UPDATE_HEADER.pack(MASKED_MAGIC, 1, scale_bits, 0, job_id, round, participant,
                              len(words))
    return head + words.astype("<u8", copy=False).tobytes()


def masked_words(data: bytes) -> Words:
    """[FED-PRIV.1] The words of a masked blob, after ``MaskedBlob.from_bytes``'s checks."""
    data = bytes(data)
    masked_header(data)
    return np.frombuffer(data, dtype="<u8", offset=UPDATE_HEADER.size).astype(np.uint64)


@dataclass(frozen=True, slots=True, eq=False)
class DecodedUpdate:
    """[FED-QUANT.5] An update blob's header fields and its coordinates as an int64 array."""

    job_id: Hash32
    round: int
    participant: Address
    scale_bits: int
    values: Vector


def decode_update(data: bytes) -> DecodedUpdate:
    """[FED-QUANT.5] ``UpdateBlob.from_bytes`` with the coordinates as an array. The header
    is checked by the reference decoder on a one-coordinate copy (same codes and offsets);
    any blob the fast checks refuse goes to the reference decoder whole, which raises the
    reference's error before it unpacks a coordinate; then ``-2**31`` is refused."""
    data = bytes(data)
    if len(data) < UPDATE_HEADER.size:
        raise BlobError("truncated", f"an update header is {UPDATE_HEADER.size} bytes",
                        got=len(data))
    magic, version, scale, reserved, job, rnd, who, dims = UPDATE_HEADER.unpack_from(data)
    if not (magic == UPDATE_MAGIC and 1 <= dims <= MAX_DIMS and 1 <= rnd <= MAX_ROUNDS
            and len(data) == UPDATE_HEADER.size + 4 * dims):
        UpdateBlob.from_bytes(data)
        raise BlobError("bad_length", "the reference decoder accepted a blob the fast "
                        "checks refused", got=len(data))
    UpdateBlob.from_bytes(UPDATE_HEADER.pack(magic, version, scale, reserved, job, rnd, who,
                                             1) + bytes(4))
    raw = np.frombuffer(data, dtype="<i4", offset=UPDATE_HEADER.size)
    low = np.flatnonzero(raw == -Q_MAX - 1)
    if low.size:
        j = int(low[0])
        raise BlobError("bad_coordinate", f"coordinate {j} is -2**31, outside "
                        f"[-{Q_MAX}, {Q_MAX}]", offset=UPDATE_HEADER.size + 4 * j,
                        got=-Q_MAX - 1)
    return DecodedUpdate(Hash32(job), rnd, Address(who), scale, raw.astype(np.int64))
