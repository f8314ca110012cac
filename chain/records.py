"""State records: what the ledger remembers, each with a canonical wire form.

Records are frozen; a rule that changes one writes a new record through the
block's ``Overlay``. Their encodings feed the state root, so every field
is part of consensus.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from chain.jobspec import JobSpec
from chain.types import Address, Amount, Hash32, Height, PublicKeyBytes, TimeMs


@dataclass(frozen=True, slots=True)
class Account:
    balance: Amount = Amount(0)
    nonce: int = 0
    """The nonce the next transaction from this account must carry [TX-NONCE.1]."""
    banned: bool = False
    """Banned accounts hold nothing and can send nothing [JOB-BAN.1]."""

    def to_wire(self) -> list[Any]:
        return [self.balance, self.nonce, self.banned]

    @classmethod
    def from_wire(cls, a: list[Any]) -> Account:
        return cls(Amount(a[0]), a[1], a[2])


@dataclass(frozen=True, slots=True)
class Validator:
    pubkey: PublicKeyBytes
    power: int

    def to_wire(self) -> list[Any]:
        return [self.pubkey, self.power]

    @classmethod
    def from_wire(cls, a: list[Any]) -> Validator:
        return cls(PublicKeyBytes(a[0]), a[1])


class JobStatus(StrEnum):
    OPEN = "open"
    """Accepting claims until the expiry."""
    HOLDOUT = "holdout"
    """train/v3 after expiry: the submitter must reveal the hidden part [HOLDOUT-REVEAL.1]."""
    REVEAL = "reveal"
    """The current claimer must reveal its model."""
    VOTE_COMMIT = "vote_commit"
    """Eligible voters commit to hidden votes."""
    VOTE_REVEAL = "vote_reveal"
    """Voters open their votes."""
    FEDERATED = "federated"
    """A federated/v1 job running its rounds [FED-STATE.1]: no claims, no turns; the
    ``fed_job`` record holds its phase until it settles (PAID or REFUNDED)."""
    PAID = "paid"
    """Settled: a verified winner was paid."""
    REFUNDED = "refunded"
    """Settled: no verified winner; the escrow went back to the submitter."""
    BROKEN = "broken"
    """Settled: voters who followed the contract disagreed [JOB-BROKEN.1]; no refund."""


SETTLED = (JobStatus.PAID, JobStatus.REFUNDED, JobStatus.BROKEN)


class Outcome(StrEnum):
    VALID = "valid"
    CHEAT = "cheat"
    FORFEIT = "forfeit"
    """The claimer did not reveal in time (or was banned meanwhile) [JOB-FORFEIT.1]."""
    NO_QUORUM = "no_quorum"
    INCONCLUSIVE = "inconclusive"
    WITHDRAWN = "withdrawn"
    """Voters and the claimer itself measured that the model misses its claim [JOB-WITHDRAW.1]."""
    INCONSISTENT = "inconsistent"
    """Voters' measurements of one model disagree beyond the tolerance [JOB-BROKEN.1]."""
    EVAL_FAILED = "eval_failed"
    """The job's evaluation failed on the voters' machines (votes with no measured loss formed
    the agreeing group) [VOTE-FAILED.1]: the job's fault, nobody banned or paid for it."""


@dataclass(frozen=True, slots=True)
class Claim:
    claimer: Address
    loss: float
    commitment: Hash32
    height: Height
    index: int
    """Position of the claim transaction in its block: the tie-breaker after height."""

    @property
    def rank_key(self) -> tuple[float, int, int]:
        """[JOB-RANK.1] Lower loss first, then the earlier claim."""
        return (self.loss, self.height, self.index)

    def to_wire(self) -> list[Any]:
        return [self.claimer, self.loss, self.commitment, self.height, self.index]

    @classmethod
    def from_wire(cls, a: list[Any]) -> Claim:
        return cls(Address(a[0]), a[1], Hash32(a[2]), Height(a[3]), a[4])


@dataclass(frozen=True, slots=True)
class VoteRecord:
    voter: Address
    commitment: Hash32
    revealed: bool = False
    valid: bool = False
    measured_loss: float | None = None
    holdout_ok: bool | None = None
    """A holdout vote [HOLDOUT-VOTE.1] (train/v3 with a live hidden part): whether the
    hidden part matched its commitment; None on every other vote (5-element wire)."""
    hidden_loss: float | None = None
    """A holdout vote's loss measured on the hidden part (None: not measured)."""
    hidden_challenge_loss: float | None = None
    """[HOLDOUT-CHALLENGE.1] An opened holdout vote's answer to the hidden challenge (None:
    none; the eighth element of a holdout vote's wire when present)."""
    challenge_loss: float | None = None
    """[VOTE-CHALLENGE.1] An opened vote's loss on the turn's challenge subset (None: no
    answer; a 6-element wire when present on a plain vote, 9 on a holdout vote)."""

    @property
    def is_holdout_vote(self) -> bool:
        return self.holdout_ok is not None

    def to_wire(self) -> list[Any]:
        wire = [self.voter, self.commitment, self.revealed, self.valid, self.measured_loss]
        if self.holdout_ok is not None:
            wire += [self.holdout_ok, self.hidden_loss]
            if self.challenge_loss is not None:
                wire += [self.hidden_challenge_loss, self.challenge_loss]
            elif self.hidden_challenge_loss is not None:
                wire.append(self.hidden_challenge_loss)
        elif self.challenge_loss is not None:
            wire.append(self.challenge_loss)
        return wire

    @classmethod
    def from_wire(cls, a: list[Any]) -> VoteRecord:
        if len(a) == 9:
            return cls(Address(a[0]), Hash32(a[1]), a[2], a[3], a[4], a[5], a[6], a[7], a[8])
        if len(a) == 8:
            return cls(Address(a[0]), Hash32(a[1]), a[2], a[3], a[4], a[5], a[6],
                       hidden_challenge_loss=a[7])
        if len(a) == 7:
            return cls(Address(a[0]), Hash32(a[1]), a[2], a[3], a[4], a[5], a[6])
        if len(a) == 6:
            return cls(Address(a[0]), Hash32(a[1]), a[2], a[3], a[4], challenge_loss=a[5])
        return cls(Address(a[0]), Hash32(a[1]), a[2], a[3], a[4])


@dataclass(frozen=True, slots=True)
class Verdict:
    """The end of one turn: whose claim, what happened, and how the votes fell.

    [VOTE-RECORD.1] ``invalid_votes`` is every opened voter vote not ``valid``, failed
    evaluations included: not the I of [VOTE-VERDICT.2] (measured invalid votes only)."""

    claimer: Address
    outcome: Outcome
    valid_votes: int
    invalid_votes: int
    eligible: int
    time_ms: TimeMs
    model_hash: Hash32 | None
    verified_loss: float | None = None
    """The voters' agreed measurement [VOTE-AGREE.1]; None without a numeric agreement."""

    def to_wire(self) -> list[Any]:
        return [self.claimer, str(self.outcome), self.valid_votes, self.invalid_votes,
                self.eligible, self.time_ms, self.model_hash, self.verified_loss]

    @classmethod
    def from_wire(cls, a: list[Any]) -> Verdict:
        return cls(Address(a[0]), Outcome(a[1]), a[2], a[3], a[4], TimeMs(a[5]),
                   None if a[6] is None else Hash32(a[6]), a[7])


@dataclass(frozen=True, slots=True)
class Job:
    """A posted job through its whole lifecycle (see protocol_spec/ledger.md §Jobs)."""

    job_id: Hash32
    submitter: Address
    spec: JobSpec
    posted_height: Height
    posted_time_ms: TimeMs
    status: JobStatus
    escrow: Amount
    """Credits still held for this job; zero once settled."""
    claims: tuple[Claim, ...] = ()
    """At most one live claim per claimer: its best [JOB-CLAIM-ONE.1]."""
    tried: tuple[Address, ...] = ()
    """Claimers whose turn has ended, in order."""
    current: Address | None = None
    """The claimer whose turn it is (reveal and vote phases)."""
    phase_deadline_ms: TimeMs = TimeMs(0)
    model_hash: Hash32 | None = None
    """The current claimer's revealed model."""
    eligible_voters: tuple[Address, ...] = ()
    votes: tuple[VoteRecord, ...] = ()
    verdicts: tuple[Verdict, ...] = ()
    winner: Address | None = None
    paid: Amount = Amount(0)
    """What the winner received."""

    def claim_of(self, claimer: Address) -> Claim | None:
        for c in self.claims:
            if c.claimer == claimer:
                return c
        return None

    def ranked_claims(self) -> list[Claim]:
        return sorted(self.claims, key=lambda c: c.rank_key)

    def best_claim(self) -> Claim | None:
        return min(self.claims, key=lambda c: c.rank_key, default=None)

    def vote_of(self, voter: Address) -> VoteRecord | None:
        for v in self.votes:
            if v.voter == voter:
                return v
        return None

    def to_wire(self) -> list[Any]:
        return [
            self.job_id, self.submitter, self.spec.to_wire(), self.posted_height,
            self.posted_time_ms, str(self.status), self.escrow,
            [c.to_wire() for c in self.claims], list(self.tried), self.current,
            self.phase_deadline_ms, self.model_hash, list(self.eligible_voters),
            [v.to_wire() for v in self.votes], [v.to_wire() for v in self.verdicts],
            self.winner, self.paid,
        ]

    @classmethod
    def from_wire(cls, a: list[Any]) -> Job:
        return cls(
            job_id=Hash32(a[0]), submitter=Address(a[1]), spec=JobSpec.from_wire(a[2]),
            posted_height=Height(a[3]), posted_time_ms=TimeMs(a[4]), status=JobStatus(a[5]),
            escrow=Amount(a[6]), claims=tuple(Claim.from_wire(c) for c in a[7]),
            tried=tuple(Address(x) for x in a[8]),
            current=None if a[9] is None else Address(a[9]),
            phase_deadline_ms=TimeMs(a[10]),
            model_hash=None if a[11] is None else Hash32(a[11]),
            eligible_voters=tuple(Address(x) for x in a[12]),
            votes=tuple(VoteRecord.from_wire(v) for v in a[13]),
            verdicts=tuple(Verdict.from_wire(v) for v in a[14]),
            winner=None if a[15] is None else Address(a[15]), paid=Amount(a[16]),
        )


@dataclass(frozen=True, slots=True)
class ValidatorChange:
    """A validator-set change approved by governance, effective at ``height``."""

    kind: str
    """``add`` or ``remove``."""
    address: Address
    pubkey: PublicKeyBytes | None
    power: int

    def to_wire(self) -> list[Any]:
        return [self.kind, self.address, self.pubkey, self.power]

    @classmethod
    def from_wire(cls, a: list[Any]) -> ValidatorChange:
        return cls(a[0], Address(a[1]), None if a[2] is None else PublicKeyBytes(a[2]), a[3])


@dataclass(frozen=True, slots=True)
class Params:
    """Protocol parameters, fixed at genesis [PARAMS.*]; defaults defended in the spec."""

    max_block_txs: int = 20_000
    max_block_bytes: int = 2 * 1024 * 1024
    """Sum of the block's transaction sizes; within consensus's 2 MiB proposal cap."""
    min_job_duration_ms: int = 1_000
    max_job_duration_ms: int = 30 * 24 * 3600 * 1000
    min_window_ms: int = 1_000
    max_turns: int = 5
    min_quorum_permille: int = 500
    min_supermajority_permille: int = 667
    governance_window_ms: int = 7 * 24 * 3600 * 1000
    validator_change_delay: int = 2
    max_block_time_drift_ms: int = 10_000
    verifier_bond: int = 10
    """Credits a member locks to verify [VERIFY-JOIN.1]; forfeited on a missed vote."""

    def to_wire(self) -> list[Any]:
        return [getattr(self, f) for f in self.__dataclass_fields__]

    @classmethod
    def from_wire(cls, a: list[Any]) -> Params:
        return cls(*a)
