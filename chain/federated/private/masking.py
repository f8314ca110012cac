"""Private mode: pairwise-masked updates whose masks cancel in the sum
[FED-PRIV.1] [FED-PRIV.2] [FED-PRIV.3] [FED-PRIV.4].

Secure aggregation by pairwise masking (Bonawitz et al., CCS 2017): every pair
of a round's participants shares a seed, one adds the seed's mask and the other
subtracts it, and each adds a self-mask of its own. A masked update alone is a
one-time pad of the update; the sum of all of them, with the self-masks and the
masks of dropped participants removed, is exactly the sum of the updates.
Arithmetic is modulo 2**64, where the sum of 256 int32 coordinates fits.
How seeds are agreed and shared (ECDH, [FED-PRIV.5] shares) is the caller's.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from chain.encoding import encode
from chain.federated.blobs import UPDATE_HEADER, VERSION
from chain.federated.errors import BlobError, FederatedError
from chain.federated.fixed import (
    MAX_DIMS,
    MAX_ROUND_PARTICIPANTS,
    Q_MAX,
    SCALE_BITS_MAX,
    SCALE_BITS_MIN,
    check_vector,
    rdiv,
)
from chain.types import ADDRESS_LEN, DOMAIN, Address, Hash32

MASKED_MAGIC = b"LCFX"
RING = 1 << 64
SEED_LEN = 32
SELF = "self"
PAIR = "pair"


def to_ring(v: int) -> int:
    """[FED-PRIV.1] A signed integer as an element of Z/2**64."""
    return v % RING


def from_ring(u: int) -> int:
    """[FED-PRIV.1] The signed value (two's complement) of a ring element."""
    return u - RING if u >= RING >> 1 else u


def mask(kind: str, seed: bytes, job_id: bytes, round: int, dims: int) -> tuple[int, ...]:
    """[FED-PRIV.2] ``dims`` uint64 words: SHAKE-256 of
    ``encode([domain, "fed-mask", kind, job_id, round, seed])``, read as 8·dims bytes,
    each word little-endian. ``kind`` is ``"self"`` or ``"pair"``."""
    if kind not in (SELF, PAIR) or len(seed) != SEED_LEN or not 1 <= dims <= MAX_DIMS:
        raise FederatedError("bad_mask", "a mask is 'self' or 'pair', from a 32-byte seed, "
                             f"1..{MAX_DIMS} words", kind=kind, seed_len=len(seed), dims=dims)
    stream = hashlib.shake_256(encode([DOMAIN, "fed-mask", kind, job_id, round, seed]))
    return struct.unpack(f"<{dims}Q", stream.digest(8 * dims))


def pair_sign(me: bytes, other: bytes) -> int:
    """[FED-PRIV.3] +1 when ``me`` sorts before ``other`` (address bytes), else -1."""
    if me == other:
        raise FederatedError("self_pair", "a participant has no pair seed with itself",
                             participant=me.hex())
    return 1 if me < other else -1


def mask_update(update: Sequence[int], me: bytes, self_seed: bytes,
                pair_seeds: Mapping[bytes, bytes], job_id: bytes,
                round: int) -> tuple[int, ...]:
    """[FED-PRIV.3] ``y = x + m(self) + sum over the other participants j of
    sign(me, j) · m(pair seed with j)``, modulo 2**64, coordinate by coordinate."""
    x = check_vector(update, "update")
    dims = len(x)
    acc = [to_ring(v) for v in x]
    streams = [(1, mask(SELF, self_seed, job_id, round, dims))]
    streams += [(pair_sign(me, j), mask(PAIR, s, job_id, round, dims))
                for j, s in sorted(pair_seeds.items())]
    for sign, m in streams:
        for k, w in enumerate(m):
            acc[k] += sign * w
    return tuple(v % RING for v in acc)


def unmask_sum(masked: Mapping[bytes, Sequence[int]], self_seeds: Mapping[bytes, bytes],
               dropped: Mapping[bytes, Mapping[bytes, bytes]], job_id: bytes, round: int,
               dims: int) -> tuple[int, ...]:
    """[FED-PRIV.4] The exact sum of the survivors' updates.

    ``masked``: each survivor's masked update; ``self_seeds``: each survivor's self seed;
    ``dropped``: for each participant that was in the mask set but sent no masked update,
    its pair seed with every survivor. ``S = sum y_i - sum m(self_i) - sum over survivors i
    and dropped d of sign(i, d) · m(pair seed i,d)`` modulo 2**64, read signed. Each
    coordinate must lie within ±(survivors · Q_MAX), else ``bad_unmask``: a wrong seed
    leaves a uniformly random word, which passes with probability < 2**-23 per
    coordinate."""
    survivors = sorted(masked)
    if not survivors or len(survivors) + len(dropped) > MAX_ROUND_PARTICIPANTS:
        raise FederatedError("bad_unmask", "1..256 participants in a masked round",
                             survivors=len(survivors), dropped=len(dropped))
    if set(self_seeds) != set(survivors):
        raise FederatedError("bad_unmask", "one self seed per survivor, no other",
                             missing=sorted(a.hex() for a in set(survivors) - set(self_seeds)))
    acc = [0] * dims
    for a in survivors:
        y = masked[a]
        if len(y) != dims or any(not 0 <= w < RING for w in y):
            raise FederatedError("bad_unmask", f"masked update of {a.hex()} is not {dims} "
                                 "ring elements", participant=a.hex())
        for k, (w, m) in enumerate(zip(y, mask(SELF, self_seeds[a], job_id, round, dims),
                                       strict=True)):
            acc[k] += w - m
    for d, seeds in sorted(dropped.items()):
        if d in masked or set(seeds) != set(survivors):
            raise FederatedError("bad_unmask", f"dropped {d.hex()} needs its pair seed with "
                                 "every survivor and no masked update", participant=d.hex())
        for a in survivors:
            sign = pair_sign(a, d)
            for k, m in enumerate(mask(PAIR, seeds[a], job_id, round, dims)):
                acc[k] -= sign * m
    bound = len(survivors) * Q_MAX
    out = tuple(from_ring(v % RING) for v in acc)
    bad = next((k for k, v in enumerate(out) if not -bound <= v <= bound), None)
    if bad is not None:
        raise FederatedError("bad_unmask", f"coordinate {bad} unmasks to {out[bad]}, outside "
                             f"±{bound}: a seed is wrong", index=bad, value=out[bad])
    return out


def private_aggregate(total: Sequence[int], survivors: int) -> tuple[int, ...]:
    """[FED-PRIV.4] The private round's aggregate: ``rdiv(S_j, survivors)``, which is the
    plain mean [FED-AGG.2] (trim 0) of the survivors' updates."""
    return tuple(rdiv(s, survivors) for s in total)


@dataclass(frozen=True, slots=True)
class MaskedBlob:
    """[FED-PRIV.1] A masked update: the update blob's 68-byte header with magic ``LCFX``,
    then ``dims`` uint64 little-endian ring elements (any value is valid)."""

    job_id: Hash32
    round: int
    participant: Address
    scale_bits: int
    words: tuple[int, ...]

    def to_bytes(self) -> bytes:
        if len(self.job_id) != 32 or len(self.participant) != ADDRESS_LEN \
                or not 1 <= len(self.words) <= MAX_DIMS:
            raise BlobError("bad_header", "job id 32 bytes, participant 20, 1..2**24 words",
                            got=(len(self.job_id), len(self.participant), len(self.words)))
        head = UPDATE_HEADER.pack(MASKED_MAGIC, VERSION, self.scale_bits, 0, self.job_id,
                                  self.round, self.participant, len(self.words))
        return head + struct.pack(f"<{len(self.words)}Q", *self.words)

    @classmethod
    def from_bytes(cls, data: bytes) -> MaskedBlob:
        """[FED-PRIV.1] Strict like an update blob [FED-QUANT.5], 68 + 8·dims bytes."""
        data = bytes(data)
        job, rnd, who, scale, dims = masked_header(data)
        words: tuple[int, ...] = struct.unpack_from(f"<{dims}Q", data, UPDATE_HEADER.size)
        return cls(Hash32(job), rnd, Address(who), scale, words)


def masked_header(data: bytes) -> tuple[bytes, int, bytes, int, int]:
    """[FED-PRIV.1] ``(job_id, round, participant, scale_bits, dims)`` of a masked blob after
    every check but the words' (any word is valid): magic, header, exact length."""
    if len(data) < UPDATE_HEADER.size:
        raise BlobError("truncated", "a masked header is 68 bytes", got=len(data))
    magic, version, scale, reserved, job, rnd, who, dims = UPDATE_HEADER.unpack_from(data)
    if magic != MASKED_MAGIC:
        raise BlobError("bad_magic", "a masked blob starts with b'LCFX'", offset=0, got=magic)
    if version != VERSION or not SCALE_BITS_MIN <= scale <= SCALE_BITS_MAX or reserved:
        raise BlobError("bad_header", "version 1, scale_bits 8..24, reserved 0", offset=4,
                        got=(version, scale, reserved))
    if not 1 <= rnd <= 1000 or not 1 <= dims <= MAX_DIMS:
        raise BlobError("bad_header", "round 1..1000, dims 1..2**24", offset=40,
                        got=(rnd, dims))
    if len(data) != UPDATE_HEADER.size + 8 * dims:
        raise BlobError("bad_length", f"{dims} words make {68 + 8 * dims} bytes",
                        got=len(data))
    return job, rnd, who, scale, dims
