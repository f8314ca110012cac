"""Evidence of equivocation, checked purely so the ledger can record it [CONS-EVIDENCE.1].

[CONS-EVIDENCE.1] ``DuplicateVoteEvidence(vote_a, vote_b)`` proves that one
validator signed two different votes of the same kind at the same height and
round. It is valid when: both votes have the same validator, kind, height and
round; their block hashes differ (nil counts as a value); ``vote_a`` sorts
before ``vote_b`` by their wire encodings (one canonical form per pair, so the
same equivocation cannot be recorded twice under two forms); the validator is
a member of the set of that height; both signatures verify.

Wire form: ``["duplicate_vote", vote_a wire, vote_b wire]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chain.crypto import verify
from chain.encoding import decode, encode
from chain.types import Address

from .errors import InvalidEvidence
from .messages import Vote, vote_from_wire
from .validators import ValidatorSet

MAX_EVIDENCE_BYTES = 512


@dataclass(frozen=True, slots=True)
class DuplicateVoteEvidence:
    """Two conflicting votes signed by one validator, in canonical order."""

    vote_a: Vote
    vote_b: Vote

    @classmethod
    def of(cls, one: Vote, other: Vote) -> DuplicateVoteEvidence:
        """Puts two conflicting votes in canonical order."""
        if encode(one.to_wire()) <= encode(other.to_wire()):
            return cls(one, other)
        return cls(other, one)

    def to_wire(self) -> list[Any]:
        return ["duplicate_vote", self.vote_a.to_wire(), self.vote_b.to_wire()]

    def encode(self) -> bytes:
        return encode(self.to_wire())


def decode_evidence(data: bytes) -> DuplicateVoteEvidence:
    """Structure only; ``check_evidence`` decides whether it proves anything."""
    fields = decode(data, max_size=MAX_EVIDENCE_BYTES)
    if not isinstance(fields, list) or len(fields) != 3 or fields[0] != "duplicate_vote":
        raise InvalidEvidence("bad_shape", "evidence must be ['duplicate_vote', vote, vote]")
    if not isinstance(fields[1], list) or not isinstance(fields[2], list):
        raise InvalidEvidence("bad_shape", "evidence votes must be arrays")
    return DuplicateVoteEvidence(vote_from_wire(fields[1]), vote_from_wire(fields[2]))


def check_evidence(
    evidence: DuplicateVoteEvidence, validator_set: ValidatorSet, chain_id: str
) -> Address:
    """[CONS-EVIDENCE.1] Returns the offender's address or raises ``InvalidEvidence``.

    ``validator_set`` is the set of ``evidence.vote_a.height``. Pure; the ledger
    decides how old evidence may be and what the offender loses.
    """
    a, b = evidence.vote_a, evidence.vote_b
    if (a.validator, a.kind, a.height, a.round) != (b.validator, b.kind, b.height, b.round):
        raise InvalidEvidence("not_same_slot", "votes differ in validator, kind, height or round")
    if a.block_hash == b.block_hash:
        raise InvalidEvidence("not_conflicting", "both votes are for the same value")
    if not encode(a.to_wire()) < encode(b.to_wire()):
        raise InvalidEvidence("not_canonical", "vote_a must sort before vote_b")
    member = validator_set.get(a.validator)
    if member is None:
        raise InvalidEvidence("unknown_validator", f"{a.validator.hex()} is not a validator")
    for vote in (a, b):
        if not verify(member.public_key, vote.digest(chain_id), vote.signature):
            raise InvalidEvidence("bad_signature", "a vote's signature does not verify")
    return a.validator
