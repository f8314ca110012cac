"""Private mode's round transactions' bodies [TX-FED.8] [TX-FED.9] [TX-FED.10].

Free of ``chain.transactions`` (listed there through ``ledger_bodies.FED_BODIES``) like
the other federated bodies. A participant publishes its round keys [FED-PRIV.6], then the
id of its share blob [FED-PRIV.7]; after the reveals a survivor names its unmask blob
[FED-PRIV.8]. The ledger checks who, when, once and the blob sizes; it never reads a blob.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, ClassVar

from chain import fields as F
from chain.encoding import encode
from chain.federated.blobs import DOMAIN, MAX_ROUNDS
from chain.types import PUBKEY_LEN as KEY_LEN
from chain.types import Hash32


def keys_commitment(job_id: bytes, round: int, participant: bytes, mask_key: bytes,
                    enc_key: bytes) -> Hash32:
    """[TX-FED.8] In private mode ``fed_commit`` commits to the round keys:
    ``SHA-256(encode([domain, "fed-priv-keys", job_id, round, participant, mask_key,
    enc_key]))``; ``fed_keys`` opens it (the masked update cannot be committed before the
    mask set is known)."""
    return Hash32(hashlib.sha256(encode([DOMAIN, "fed-priv-keys", job_id, round, participant,
                                         mask_key, enc_key])).digest())


@dataclass(frozen=True, slots=True)
class FedKeys:
    """[TX-FED.8] A participant's two round keys [FED-PRIV.6]."""

    TAG: ClassVar[str] = "fed_keys"
    job_id: Hash32
    round: int
    mask_key: bytes
    enc_key: bytes

    def to_wire(self) -> list[Any]:
        return [self.job_id, self.round, self.mask_key, self.enc_key]

    @classmethod
    def from_wire(cls, a: list[Any]) -> FedKeys:
        F.array(a, "fed_keys", 4)
        return cls(F.hash32(a[0], "job_id"), F.uint(a[1], "round", 1, MAX_ROUNDS),
                   F.blob(a[2], "mask_key", KEY_LEN), F.blob(a[3], "enc_key", KEY_LEN))


def _blob_fields(a: list[Any], tag: str) -> tuple[Hash32, int, Hash32, int]:
    """``[job_id, round, blob, size]``: the wire shape ``fed_shares`` and ``fed_unmask``
    share [TX-FED.9] [TX-FED.10]; ``tag`` names the body in a decoding error."""
    F.array(a, tag, 4)
    return (F.hash32(a[0], "job_id"), F.uint(a[1], "round", 1, MAX_ROUNDS),
            F.hash32(a[2], "blob"), F.uint(a[3], "size", 1, 1 << 40))


@dataclass(frozen=True, slots=True)
class FedShares:
    """[TX-FED.9] The id and size of the sender's share blob [FED-PRIV.7]."""

    TAG: ClassVar[str] = "fed_shares"
    job_id: Hash32
    round: int
    blob: Hash32
    size: int

    def to_wire(self) -> list[Any]:
        return [self.job_id, self.round, self.blob, self.size]

    @classmethod
    def from_wire(cls, a: list[Any]) -> FedShares:
        return cls(*_blob_fields(a, "fed_shares"))


@dataclass(frozen=True, slots=True)
class FedUnmask:
    """[TX-FED.10] The id and size of a survivor's unmask blob [FED-PRIV.8]."""

    TAG: ClassVar[str] = "fed_unmask"
    job_id: Hash32
    round: int
    blob: Hash32
    size: int

    def to_wire(self) -> list[Any]:
        return [self.job_id, self.round, self.blob, self.size]

    @classmethod
    def from_wire(cls, a: list[Any]) -> FedUnmask:
        return cls(*_blob_fields(a, "fed_unmask"))


PRIVATE_BODIES = (FedKeys, FedShares, FedUnmask)
