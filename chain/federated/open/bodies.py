"""The federated round transactions' bodies and wire forms [TX-FED.2-7].

Kept apart from their handlers (``chain.federated.open.tx``) and free of
``chain.transactions`` so that ``chain.transactions`` lists them in its type dispatch
without an import cycle (as ``chain.predict.bodies``). Each wire form is a fixed array;
``None`` is nil. The commitments a participant and a voter send are computed by
``update_commitment`` ([FED-COMMIT.1], ``chain.federated.blobs``) and ``fed_vote_commitment``
below.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, ClassVar

from chain import fields as F
from chain.encoding import encode
from chain.errors import FieldError
from chain.federated.blobs import COMMIT_SALT_LEN, DOMAIN, MAX_ROUNDS
from chain.federated.fixed import MAX_ROUND_PARTICIPANTS
from chain.federated.private.bodies import PRIVATE_BODIES
from chain.federated.rewards import MAX_LOSS
from chain.jobspec import DataRef
from chain.types import Address, Hash32

MAX_WEIGHT = 1 << 16
"""[FED-AGG.7] A round weight is in 0..2**16 (2**16 = cosine 1)."""
PPM = 1_000_000
MAX_ATTEMPT = 255
"""[FED-ROUND.6] Aggregators tried per round (the ledger stops at the job's ``max_turns``)."""
PARTS = ("public", "hidden")
END_ROUND = 0
"""[FED-END.2] The ``round`` of the end ballot (the leave-one-out losses); rounds count from 1."""


def _round(v: Any, name: str = "round") -> int:
    return F.uint(v, name, 0, MAX_ROUNDS)


@dataclass(frozen=True, slots=True)
class FedCommit:
    """[TX-FED.2] A participant's (or, under FLTrust, the owner's reference) update
    commitment for the current round [FED-COMMIT.1]."""

    TAG: ClassVar[str] = "fed_commit"
    job_id: Hash32
    round: int
    commitment: Hash32

    def to_wire(self) -> list[Any]:
        return [self.job_id, self.round, self.commitment]

    @classmethod
    def from_wire(cls, a: list[Any]) -> FedCommit:
        F.array(a, "fed_commit", 3)
        return cls(F.hash32(a[0], "job_id"), _round(a[1]), F.hash32(a[2], "commitment"))


@dataclass(frozen=True, slots=True)
class FedReveal:
    """[TX-FED.3] Opens an update commitment: the update blob's id and exact size, its
    SHA-256 (``update_hash``) and the salt."""

    TAG: ClassVar[str] = "fed_reveal"
    job_id: Hash32
    round: int
    blob: Hash32
    size: int
    update_hash: Hash32
    salt: bytes

    def to_wire(self) -> list[Any]:
        return [self.job_id, self.round, self.blob, self.size, self.update_hash, self.salt]

    @classmethod
    def from_wire(cls, a: list[Any]) -> FedReveal:
        F.array(a, "fed_reveal", 6)
        return cls(F.hash32(a[0], "job_id"), _round(a[1]), F.hash32(a[2], "blob"),
                   F.uint(a[3], "size", 1, 1 << 40), F.hash32(a[4], "update_hash"),
                   F.blob(a[5], "salt", COMMIT_SALT_LEN))


@dataclass(frozen=True, slots=True)
class FedAggregate:
    """[TX-FED.4] The drawn aggregator's result for the round: the new global model's hash
    [FED-MODEL.2] and blob id, and the weight [FED-AGG.7] of every participant whose update
    entered the aggregation, ascending by address."""

    TAG: ClassVar[str] = "fed_aggregate"
    job_id: Hash32
    round: int
    attempt: int
    model_hash: Hash32
    model_blob: Hash32
    weights: tuple[tuple[Address, int], ...]

    def to_wire(self) -> list[Any]:
        return [self.job_id, self.round, self.attempt, self.model_hash, self.model_blob,
                [[a, w] for a, w in self.weights]]

    @classmethod
    def from_wire(cls, a: list[Any]) -> FedAggregate:
        F.array(a, "fed_aggregate", 6)
        rows = F.array(a[5], "weights", max_len=MAX_ROUND_PARTICIPANTS)
        weights = []
        for i, row in enumerate(rows):
            pair = F.array(row, f"weights[{i}]", 2)
            weights.append((F.address(pair[0], f"weights[{i}].participant"),
                            F.uint(pair[1], f"weights[{i}].weight", 0, MAX_WEIGHT)))
        return cls(F.hash32(a[0], "job_id"), _round(a[1]), F.uint(a[2], "attempt", 0,
                                                                  MAX_ATTEMPT),
                   F.hash32(a[3], "model_hash"), F.hash32(a[4], "model_blob"), tuple(weights))


@dataclass(frozen=True, slots=True)
class FedVoteCommit:
    """[TX-FED.5] A hidden vote on the round's posted aggregate, or (``round`` 0) on the end
    ballot's losses [FED-END.2]."""

    TAG: ClassVar[str] = "fed_vote_commit"
    job_id: Hash32
    round: int
    attempt: int
    commitment: Hash32

    def to_wire(self) -> list[Any]:
        return [self.job_id, self.round, self.attempt, self.commitment]

    @classmethod
    def from_wire(cls, a: list[Any]) -> FedVoteCommit:
        F.array(a, "fed_vote_commit", 4)
        return cls(F.hash32(a[0], "job_id"), _round(a[1]),
                   F.uint(a[2], "attempt", 0, MAX_ATTEMPT), F.hash32(a[3], "commitment"))


@dataclass(frozen=True, slots=True)
class FedVoteReveal:
    """[TX-FED.6] Opens a vote. On an aggregate: ``valid`` and, when valid, the model's
    accuracy on the holdout's public part in ppm (nil when invalid). On the end ballot:
    ``valid`` (the hidden part matched its root and was evaluated) and, when valid, the
    losses ``[final, loo_1 .. loo_n]`` in micro-units (nil when invalid)."""

    TAG: ClassVar[str] = "fed_vote_reveal"
    job_id: Hash32
    round: int
    attempt: int
    valid: bool
    accuracy_ppm: int | None
    losses: tuple[int, ...] | None
    salt: bytes

    def to_wire(self) -> list[Any]:
        return [self.job_id, self.round, self.attempt, self.valid, self.accuracy_ppm,
                None if self.losses is None else list(self.losses), self.salt]

    @classmethod
    def from_wire(cls, a: list[Any]) -> FedVoteReveal:
        F.array(a, "fed_vote_reveal", 7)
        losses = None
        if a[5] is not None:
            items = F.array(a[5], "losses", max_len=MAX_ROUND_PARTICIPANTS + 1)
            losses = tuple(F.uint(x, f"losses[{i}]", 0, MAX_LOSS - 1)
                           for i, x in enumerate(items))
        accuracy = None if a[4] is None else F.uint(a[4], "accuracy_ppm", 0, PPM)
        return cls(F.hash32(a[0], "job_id"), _round(a[1]),
                   F.uint(a[2], "attempt", 0, MAX_ATTEMPT), F.boolean(a[3], "valid"),
                   accuracy, losses, F.blob(a[6], "salt", COMMIT_SALT_LEN))


@dataclass(frozen=True, slots=True)
class FedPart:
    """[TX-FED.7] The owner names a part of its holdout pool: ``public`` before round 1's
    commit window closes, ``hidden`` at the end [FED-END.1]."""

    TAG: ClassVar[str] = "fed_part"
    job_id: Hash32
    which: str
    part: DataRef

    def to_wire(self) -> list[Any]:
        return [self.job_id, self.which, self.part.to_wire()]

    @classmethod
    def from_wire(cls, a: list[Any]) -> FedPart:
        F.array(a, "fed_part", 3)
        which = F.one_of(a[1], "which", PARTS)
        return cls(F.hash32(a[0], "job_id"), which, DataRef.from_wire(a[2], which))


def fed_vote_commitment(job_id: bytes, round: int, attempt: int, voter: bytes, valid: bool,
                        accuracy_ppm: int | None, losses: tuple[int, ...] | None,
                        salt: bytes) -> Hash32:
    """[FED-VOTE.1] ``SHA-256(encode([domain, "fed-vote", job_id, round, attempt, voter,
    valid, accuracy_ppm, losses, salt]))``: bound to the voter and to one aggregate attempt,
    so a vote cannot be copied or replayed on another aggregate."""
    if len(salt) != COMMIT_SALT_LEN:
        raise FieldError("salt", f"{COMMIT_SALT_LEN} bytes", len(salt))
    return Hash32(hashlib.sha256(encode(
        [DOMAIN, "fed-vote", job_id, round, attempt, voter, valid, accuracy_ppm,
         None if losses is None else list(losses), salt])).digest())


FED_BODIES: tuple[Any, ...] = (FedCommit, FedReveal, FedAggregate, FedVoteCommit, FedVoteReveal,
                              FedPart, *PRIVATE_BODIES)
