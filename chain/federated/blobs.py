"""The wire form of update and model blobs, and the hashes that bind them
[FED-QUANT.5] [FED-MODEL.1] [FED-MODEL.2] [FED-COMMIT.1].

Both are a fixed little-endian header and then the coordinates as int32
little-endian. A blob decodes strictly: one valid byte string per value, so a
blob's hash names exactly one update or model. An update's header names its
job, round and participant, so a blob revealed for one address, job or round
cannot be replayed for another; the model header holds no job (the initial model
is uploaded before its job exists).
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from chain.encoding import encode
from chain.federated.errors import BlobError
from chain.federated.fixed import MAX_DIMS, Q_MAX, SCALE_BITS_MAX, SCALE_BITS_MIN
from chain.types import ADDRESS_LEN, HASH_LEN, Address, Hash32

DOMAIN = "learningchain/v1"
"""The chain-wide hash domain (as ``chain.types.DOMAIN``), kept here so that the job
spec (``chain.jobspec`` -> ``chain.federated.spec``) does not import the transactions."""
UPDATE_MAGIC = b"LCFU"
MODEL_MAGIC = b"LCFM"
VERSION = 1
MAX_ROUNDS = 1000
"""[FED-SPEC.1] A job runs 1..1000 rounds; rounds are numbered from 1."""
UPDATE_HEADER = struct.Struct("<4sBBH32sI20sI")
"""[FED-QUANT.5] magic, version, scale_bits, reserved (0), job id, round, participant, dims:
68 bytes."""
MODEL_HEADER = struct.Struct("<4sBBHI")
"""[FED-MODEL.1] magic, version, scale_bits, reserved (0), dims: 12 bytes."""
COMMIT_SALT_LEN = 32


def _coordinates(data: bytes, start: int, dims: int) -> tuple[int, ...]:
    """[FED-QUANT.5] ``dims`` int32 little-endian; ``-2**31`` is refused [FED-QUANT.3]."""
    values: tuple[int, ...] = struct.unpack_from(f"<{dims}i", data, start)
    if values and min(values) < -Q_MAX:
        j = values.index(-Q_MAX - 1)
        raise BlobError("bad_coordinate", f"coordinate {j} is -2**31, outside "
                        f"[-{Q_MAX}, {Q_MAX}]", offset=start + 4 * j, got=values[j])
    return values


def _pack(values: tuple[int, ...]) -> bytes:
    if values and (max(values) > Q_MAX or min(values) < -Q_MAX):
        bad = next(v for v in values if not -Q_MAX <= v <= Q_MAX)
        raise BlobError("bad_coordinate", f"{bad} is outside [-{Q_MAX}, {Q_MAX}]", got=bad)
    return struct.pack(f"<{len(values)}i", *values)


def _check_common(data: bytes, header: struct.Struct, magic: bytes, what: str,
                  fields: tuple[bytes, int, int, int]) -> None:
    got_magic, version, scale_bits, reserved = fields
    if got_magic != magic:
        raise BlobError("bad_magic", f"a {what} blob starts with {magic!r}", offset=0,
                        got=got_magic)
    if version != VERSION:
        raise BlobError("bad_version", f"{what} blob version {version}, only {VERSION} exists",
                        offset=4, got=version)
    if not SCALE_BITS_MIN <= scale_bits <= SCALE_BITS_MAX:
        raise BlobError("bad_scale", f"scale_bits {scale_bits} outside "
                        f"{SCALE_BITS_MIN}..{SCALE_BITS_MAX}", offset=5, got=scale_bits)
    if reserved != 0:
        raise BlobError("bad_reserved", "the reserved field is 0", offset=6, got=reserved)


def _check_length(data: bytes, header_size: int, dims: int, dims_offset: int) -> None:
    if not 1 <= dims <= MAX_DIMS:
        raise BlobError("bad_dims", f"dims {dims} outside 1..{MAX_DIMS}", offset=dims_offset,
                        got=dims)
    if len(data) != header_size + 4 * dims:
        raise BlobError("bad_length", f"{dims} coordinates make a blob of "
                        f"{header_size + 4 * dims} bytes", got=len(data))


@dataclass(frozen=True, slots=True)
class UpdateBlob:
    """[FED-QUANT.5] One participant's quantised update for one round of one job."""

    job_id: Hash32
    round: int
    participant: Address
    scale_bits: int
    values: tuple[int, ...]

    @property
    def dims(self) -> int:
        return len(self.values)

    def to_bytes(self) -> bytes:
        if len(self.job_id) != HASH_LEN or len(self.participant) != ADDRESS_LEN:
            raise BlobError("bad_header", "job id is 32 bytes, participant 20",
                            got=(len(self.job_id), len(self.participant)))
        if not 1 <= self.round <= MAX_ROUNDS:
            raise BlobError("bad_round", f"round outside 1..{MAX_ROUNDS}", got=self.round)
        if not 1 <= self.dims <= MAX_DIMS:
            raise BlobError("bad_dims", f"dims outside 1..{MAX_DIMS}", got=self.dims)
        head = UPDATE_HEADER.pack(UPDATE_MAGIC, VERSION, self.scale_bits, 0, self.job_id,
                                  self.round, self.participant, self.dims)
        return head + _pack(self.values)

    @classmethod
    def from_bytes(cls, data: bytes) -> UpdateBlob:
        """[FED-QUANT.5] Strict: the exact header, exactly ``dims`` coordinates, nothing more."""
        data = bytes(data)
        if len(data) < UPDATE_HEADER.size:
            raise BlobError("truncated", f"an update header is {UPDATE_HEADER.size} bytes",
                            got=len(data))
        magic, version, scale, reserved, job, rnd, who, dims = UPDATE_HEADER.unpack_from(data)
        _check_common(data, UPDATE_HEADER, UPDATE_MAGIC, "update", (magic, version, scale,
                                                                    reserved))
        if not 1 <= rnd <= MAX_ROUNDS:
            raise BlobError("bad_round", f"round {rnd} outside 1..{MAX_ROUNDS}", offset=40,
                            got=rnd)
        _check_length(data, UPDATE_HEADER.size, dims, 64)
        return cls(Hash32(job), rnd, Address(who), scale,
                   _coordinates(data, UPDATE_HEADER.size, dims))

    def check_for(self, job_id: bytes, round: int, participant: bytes, dims: int,
                  scale_bits: int) -> UpdateBlob:
        """[FED-QUANT.5] The blob is the one this slot expects: this job, round, participant,
        the model's dims and the job's scale; else ``wrong_<field>`` with both values."""
        for name, got, want in (("job", self.job_id, job_id), ("round", self.round, round),
                                ("participant", self.participant, participant),
                                ("dims", self.dims, dims),
                                ("scale", self.scale_bits, scale_bits)):
            if got != want:
                raise BlobError(f"wrong_{name}", f"the blob's {name} is not the expected "
                                f"{want.hex() if isinstance(want, bytes) else want}",
                                got=got.hex() if isinstance(got, bytes) else got)
        return self


@dataclass(frozen=True, slots=True)
class ModelBlob:
    """[FED-MODEL.1] A global model: the initial one the owner posts, then one per round."""

    scale_bits: int
    values: tuple[int, ...]

    @property
    def dims(self) -> int:
        return len(self.values)

    def to_bytes(self) -> bytes:
        if not 1 <= self.dims <= MAX_DIMS:
            raise BlobError("bad_dims", f"dims outside 1..{MAX_DIMS}", got=self.dims)
        return MODEL_HEADER.pack(MODEL_MAGIC, VERSION, self.scale_bits, 0,
                                 self.dims) + _pack(self.values)

    @classmethod
    def from_bytes(cls, data: bytes) -> ModelBlob:
        """[FED-MODEL.1] Strict, as an update blob."""
        data = bytes(data)
        if len(data) < MODEL_HEADER.size:
            raise BlobError("truncated", f"a model header is {MODEL_HEADER.size} bytes",
                            got=len(data))
        magic, version, scale, reserved, dims = MODEL_HEADER.unpack_from(data)
        _check_common(data, MODEL_HEADER, MODEL_MAGIC, "model", (magic, version, scale,
                                                                 reserved))
        _check_length(data, MODEL_HEADER.size, dims, 8)
        return cls(scale, _coordinates(data, MODEL_HEADER.size, dims))

    def hash(self) -> Hash32:
        return model_hash(self.to_bytes())


def model_hash(blob: bytes) -> Hash32:
    """[FED-MODEL.2] A global model's hash: SHA-256 of its canonical blob bytes. Decoding is
    strict, so equal hashes mean equal models and every node holds the same value per round."""
    return Hash32(hashlib.sha256(blob).digest())


def update_hash(blob: bytes) -> Hash32:
    """[FED-COMMIT.1] SHA-256 of an update blob's bytes."""
    return Hash32(hashlib.sha256(blob).digest())


def update_commitment(job_id: bytes, round: int, participant: bytes, blob_hash: bytes,
                      salt: bytes) -> Hash32:
    """[FED-COMMIT.1] ``SHA-256(encode([domain, "fed-update", job_id, round, participant,
    update_hash, salt]))``: bound to the address, as a claim's model commitment is, so a
    commitment seen on chain cannot be sent again by another member."""
    if len(salt) != COMMIT_SALT_LEN:
        raise BlobError("bad_salt", f"a commitment salt is {COMMIT_SALT_LEN} bytes",
                        got=len(salt))
    return Hash32(hashlib.sha256(encode([DOMAIN, "fed-update", job_id, round, participant,
                                         blob_hash, salt])).digest())
