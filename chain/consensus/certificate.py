"""Commit certificates: the signed precommits that prove a block was decided.

[CONS-CERT.1] A certificate for (height, round, block_hash) is valid against
the validator set of ``height`` when its signers are distinct members, sorted
by address, every signature verifies over the precommit digest of
(chain_id, height, round, block_hash) [CONS-SIGN.1], and their power is more
than two thirds of the total [CONS-QUORUM.1]. Any node checks a block it did
not see decided with ``verify_certificate`` alone.

Wire form: ``[height, round, block_hash, [[validator, signature], ...]]``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from chain.crypto import verify
from chain.encoding import decode, encode
from chain.types import (
    ADDRESS_LEN,
    HASH_LEN,
    SIGNATURE_LEN,
    Address,
    Hash32,
    Height,
    Round,
    Signature,
    TimeMs,
)

from .errors import InvalidCertificate, InvalidMessage
from .messages import (
    MAX_HEIGHT,
    MAX_ROUND,
    PRECOMMIT,
    Vote,
    _bytes,
    _int,
    vote_digest,
)
from .validators import MAX_VALIDATORS, ValidatorSet

MAX_CERTIFICATE_BYTES = MAX_VALIDATORS * 100 + 100


@dataclass(frozen=True, slots=True)
class CommitCertificate:
    """More than two thirds of the power precommitted ``block_hash`` in ``round``."""

    height: Height
    round: Round
    block_hash: Hash32
    signatures: tuple[tuple[Address, Signature], ...]
    """(validator, precommit signature) pairs in ascending address order."""

    def to_wire(self) -> list[Any]:
        return [self.height, self.round, self.block_hash, [[a, s] for a, s in self.signatures]]

    def encode(self) -> bytes:
        return encode(self.to_wire())

    def precommits(self) -> list[Vote]:
        """The certificate unpacked into precommit votes (e.g. for evidence)."""
        return [
            Vote(PRECOMMIT, self.height, self.round, self.block_hash, a, s)
            for a, s in self.signatures
        ]


def certificate_from_precommits(votes: Iterable[Vote]) -> CommitCertificate:
    """Builds a certificate from precommits of one (height, round, block_hash)."""
    votes = list(votes)
    if not votes:
        raise ValueError("a certificate needs at least one precommit")
    first = votes[0]
    if first.block_hash is None:
        raise ValueError("a certificate is for a block, not nil")
    for v in votes:
        if (v.kind, v.height, v.round, v.block_hash) != (
            PRECOMMIT,
            first.height,
            first.round,
            first.block_hash,
        ):
            raise ValueError("precommits of a certificate must agree")
    by_addr = {v.validator: v.signature for v in votes}
    return CommitCertificate(
        first.height,
        first.round,
        first.block_hash,
        tuple(sorted(by_addr.items())),
    )


def verify_certificate(
    cert: CommitCertificate,
    validator_set: ValidatorSet,
    chain_id: str,
) -> None:
    """[CONS-CERT.1] Raises ``InvalidCertificate`` unless ``cert`` proves a commit.

    ``validator_set`` must be the set of ``cert.height``. Pure; no I/O.
    """
    if cert.block_hash is None or len(cert.block_hash) != HASH_LEN:
        raise InvalidCertificate("bad_block_hash", "a certificate certifies a 32-byte hash")
    digest = vote_digest(chain_id, PRECOMMIT, cert.height, cert.round, cert.block_hash)
    previous = b""
    power = 0
    for address, signature in cert.signatures:
        if address <= previous:
            raise InvalidCertificate(
                "unsorted_or_duplicate", "signers must be sorted by address, each once"
            )
        previous = address
        member = validator_set.get(address)
        if member is None:
            raise InvalidCertificate("unknown_signer", f"{address.hex()} is not a validator")
        if not verify(member.public_key, digest, signature):
            raise InvalidCertificate("bad_signature", f"signature of {address.hex()} is invalid")
        power += member.power
    if not validator_set.is_quorum(power):
        raise InvalidCertificate(
            "insufficient_power",
            f"signers hold {power} of {validator_set.total_power}; need more than two thirds",
        )


def certificate_from_wire(fields: Any) -> CommitCertificate:
    if not isinstance(fields, list) or len(fields) != 4 or not isinstance(fields[3], list):
        raise InvalidMessage("bad_shape", "certificate must be [height, round, hash, sigs]")
    if len(fields[3]) > MAX_VALIDATORS:
        raise InvalidMessage("bad_shape", "too many certificate signatures")
    sigs: list[tuple[Address, Signature]] = []
    for pair in fields[3]:
        if not isinstance(pair, list) or len(pair) != 2:
            raise InvalidMessage("bad_shape", "certificate entry must be [validator, signature]")
        sigs.append(
            (
                Address(_bytes(pair[0], "validator", ADDRESS_LEN)),
                Signature(_bytes(pair[1], "signature", SIGNATURE_LEN)),
            )
        )
    return CommitCertificate(
        Height(_int(fields[0], "height", 1, MAX_HEIGHT)),
        Round(_int(fields[1], "round", 0, MAX_ROUND)),
        Hash32(_bytes(fields[2], "block_hash", HASH_LEN)),
        tuple(sigs),
    )


def decode_certificate(data: bytes) -> CommitCertificate:
    """Decodes the certificate stored with a block; structure only, no verification."""
    return certificate_from_wire(decode(data, max_size=MAX_CERTIFICATE_BYTES))


@dataclass(frozen=True, slots=True)
class Decision:
    """A decided block with its certificate, as the core hands it to ``Application.decided``.

    Not a wire message: a lagging node catches up by block sync [CONS-CATCHUP.1]."""

    height: Height
    block_hash: Hash32
    time_ms: TimeMs
    block: bytes
    certificate: CommitCertificate
