"""The ``fed_job`` and ``fed_round`` tables: what the ledger remembers of a federated job
[FED-STATE.1] [FED-STATE.2].

``fed_job`` (key: job id) holds the running round: its phase and deadline, the
commitments and reveals, the drawn aggregator, the posted aggregate and its votes, and at
the end the payout. ``fed_round`` (key: job id ‖ round as u32 big-endian) holds each
finished round for good: the accepted model hash and weights the rewards read, or void.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from chain.jobspec import DataRef
from chain.types import Address, Amount, Hash32, TimeMs


class FedPhase(StrEnum):
    """[FED-ROUND.1] Where a federated job is; every phase ends at ``deadline_ms``."""

    COMMIT = "commit"
    SHARES = "shares"
    """[FED-PRIV.10] Private mode: keyed participants name their share blobs."""
    REVEAL = "reveal"
    UNMASK = "unmask"
    """[FED-PRIV.10] Private mode: survivors name their unmask blobs."""
    AGGREGATE = "aggregate"
    VOTE_COMMIT = "vote_commit"
    VOTE_REVEAL = "vote_reveal"
    HIDDEN = "hidden"
    """[FED-END.1] The owner must name its hidden part."""
    END_COMMIT = "end_commit"
    END_REVEAL = "end_reveal"
    DONE = "done"


class DepositStatus(StrEnum):
    HELD = "held"
    RETURNED = "returned"
    BURNED = "burned"


@dataclass(frozen=True, slots=True)
class FedUpdate:
    """One commitment of the running round and, once revealed, its blob."""

    participant: Address
    commitment: Hash32
    blob: Hash32 | None = None
    size: int = 0
    update_hash: Hash32 | None = None

    def to_wire(self) -> list[Any]:
        return [self.participant, self.commitment, self.blob, self.size, self.update_hash]

    @classmethod
    def from_wire(cls, a: list[Any]) -> FedUpdate:
        return cls(Address(a[0]), Hash32(a[1]), None if a[2] is None else Hash32(a[2]), a[3],
                   None if a[4] is None else Hash32(a[4]))


@dataclass(frozen=True, slots=True)
class FedVote:
    """A committed vote and, once opened, what it says."""

    voter: Address
    commitment: Hash32
    opened: bool = False
    valid: bool = False
    accuracy_ppm: int | None = None
    losses: tuple[int, ...] | None = None

    def to_wire(self) -> list[Any]:
        return [self.voter, self.commitment, self.opened, self.valid, self.accuracy_ppm,
                None if self.losses is None else list(self.losses)]

    @classmethod
    def from_wire(cls, a: list[Any]) -> FedVote:
        return cls(Address(a[0]), Hash32(a[1]), a[2], a[3], a[4],
                   None if a[5] is None else tuple(a[5]))


@dataclass(frozen=True, slots=True)
class PostedAggregate:
    """[TX-FED.4] What the aggregator posted for the round."""

    aggregator: Address
    model_hash: Hash32
    model_blob: Hash32
    weights: tuple[tuple[Address, int], ...]

    def to_wire(self) -> list[Any]:
        return [self.aggregator, self.model_hash, self.model_blob,
                [[a, w] for a, w in self.weights]]

    @classmethod
    def from_wire(cls, a: list[Any]) -> PostedAggregate:
        return cls(Address(a[0]), Hash32(a[1]), Hash32(a[2]),
                   tuple((Address(x), w) for x, w in a[3]))


@dataclass(frozen=True, slots=True)
class FedRound:
    """[FED-STATE.2] A finished round: ``accepted`` (model hash, blob, weights and the voted
    accuracy recorded) or ``void`` (the model unchanged, every weight 0)."""

    round: int
    outcome: str
    model_hash: Hash32 | None
    model_blob: Hash32
    weights: tuple[tuple[Address, int], ...] = ()
    accuracy_ppm: int | None = None
    aggregator: Address | None = None
    slashed: tuple[Address, ...] = ()
    """Aggregators whose aggregate for this round was voted invalid [FED-ROUND.5]."""
    updates: tuple[FedUpdate, ...] = ()
    """The round's revealed updates (the owner's FLTrust reference included), ascending by
    address: what the leave-one-out replays [FED-REWARD.2] fetch at the end."""

    def to_wire(self) -> list[Any]:
        return [self.round, self.outcome, self.model_hash, self.model_blob,
                [[a, w] for a, w in self.weights], self.accuracy_ppm, self.aggregator,
                list(self.slashed), [u.to_wire() for u in self.updates]]

    @classmethod
    def from_wire(cls, a: list[Any]) -> FedRound:
        return cls(a[0], a[1], None if a[2] is None else Hash32(a[2]), Hash32(a[3]),
                   tuple((Address(x), w) for x, w in a[4]), a[5],
                   None if a[6] is None else Address(a[6]), tuple(Address(x) for x in a[7]),
                   tuple(FedUpdate.from_wire(u) for u in a[8]))


@dataclass(frozen=True, slots=True)
class FedJob:
    """[FED-STATE.1] A federated job's running state."""

    job_id: Hash32
    owner: Address
    phase: FedPhase
    round: int
    deadline_ms: TimeMs
    model_blob: Hash32
    """The current global model's blob id (the spec's initial model before round 1)."""
    model_hash: Hash32 | None = None
    """[FED-MODEL.2] The current global model's hash; None until a round is accepted."""
    attempt: int = 0
    seed: Hash32 | None = None
    """[HOLDOUT-SPLIT.1] The holdout's split seed, drawn at ``posted_height + 2``."""
    public: DataRef | None = None
    hidden: DataRef | None = None
    updates: tuple[FedUpdate, ...] = ()
    aggregator: Address | None = None
    tried: tuple[Address, ...] = ()
    slashed: tuple[Address, ...] = ()
    posted: PostedAggregate | None = None
    voters: tuple[Address, ...] = ()
    votes: tuple[FedVote, ...] = ()
    voter_paid: Amount = Amount(0)
    accuracy_ppm: int | None = None
    """The last accepted round's voted accuracy."""
    loo_participants: tuple[Address, ...] = ()
    """[FED-END.2] The end ballot's participants, in the order of its losses."""
    deposit: DepositStatus = DepositStatus.HELD
    paid: tuple[tuple[Address, int], ...] = ()
    refund: Amount = Amount(0)

    def update_of(self, participant: bytes) -> FedUpdate | None:
        return next((u for u in self.updates if u.participant == participant), None)

    def vote_of(self, voter: bytes) -> FedVote | None:
        return next((v for v in self.votes if v.voter == voter), None)

    def to_wire(self) -> list[Any]:
        return [self.job_id, self.owner, str(self.phase), self.round, self.deadline_ms,
                self.model_blob, self.model_hash, self.attempt, self.seed,
                None if self.public is None else self.public.to_wire(),
                None if self.hidden is None else self.hidden.to_wire(),
                [u.to_wire() for u in self.updates], self.aggregator, list(self.tried),
                list(self.slashed), None if self.posted is None else self.posted.to_wire(),
                list(self.voters), [v.to_wire() for v in self.votes], self.voter_paid,
                self.accuracy_ppm, list(self.loo_participants), str(self.deposit),
                [[a, v] for a, v in self.paid], self.refund]

    @classmethod
    def from_wire(cls, a: list[Any]) -> FedJob:
        return cls(
            Hash32(a[0]), Address(a[1]), FedPhase(a[2]), a[3], TimeMs(a[4]), Hash32(a[5]),
            None if a[6] is None else Hash32(a[6]), a[7], None if a[8] is None else Hash32(a[8]),
            None if a[9] is None else DataRef.from_wire(a[9], "public"),
            None if a[10] is None else DataRef.from_wire(a[10], "hidden"),
            tuple(FedUpdate.from_wire(u) for u in a[11]),
            None if a[12] is None else Address(a[12]), tuple(Address(x) for x in a[13]),
            tuple(Address(x) for x in a[14]),
            None if a[15] is None else PostedAggregate.from_wire(a[15]),
            tuple(Address(x) for x in a[16]), tuple(FedVote.from_wire(v) for v in a[17]),
            Amount(a[18]), a[19], tuple(Address(x) for x in a[20]), DepositStatus(a[21]),
            tuple((Address(x), v) for x, v in a[22]), Amount(a[23]))


def round_key(job_id: bytes, round: int) -> bytes:
    """[FED-STATE.2] ``fed_round`` key: job id ‖ round (u32 big-endian)."""
    return bytes(job_id) + round.to_bytes(4, "big")
