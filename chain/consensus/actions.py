"""What the core needs (``Application``) and what it asks the driver to do (actions).

The driver carries out a step's actions in order and completes each before the
next; in particular ``PersistSigned`` is durable (fsynced) before the following
``Broadcast`` leaves [CONS-WAL.1].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from chain.types import Hash32, Height, Round, TimeMs

from .certificate import Decision
from .errors import ConsensusError
from .evidence import DuplicateVoteEvidence
from .messages import Proposal, Vote
from .timeouts import Timeout
from .validators import ValidatorSet
from .wal import SignedRecord


class Application(Protocol):
    """What the core needs from the ledger. Every method must be deterministic."""

    def validators_at(self, height: Height) -> ValidatorSet:
        """[CONS-VALSET.2] The set of ``height``; changes decided in block h apply at h + 2."""
        ...

    def propose(self, height: Height, round_: Round, time_ms: TimeMs) -> tuple[Hash32, bytes]:
        """A new block for ``height`` embedding ``time_ms``: (its hash, its bytes)."""
        ...

    def validate(self, height: Height, block_hash: Hash32, block: bytes, time_ms: TimeMs) -> bool:
        """True when ``block`` hashes to ``block_hash``, embeds ``time_ms`` and may be applied."""
        ...

    def decided(self, decision: Decision) -> None:
        """The core decided ``decision``; called before it enters the next height.

        A ledger applies the block here (durably), so that ``validators_at``
        and ``validate`` of the next height, which the core calls at once, see
        it. ``CommitDeferred`` means "not now, nothing was stored" (e.g. the
        database is locked by another process): the core stays at the height
        and the driver calls ``retry_commit`` later [CONS-COMMIT.2]. Any other
        exception means the node cannot go on; the driver stops it and a
        restart resumes from storage and the WAL.
        """
        ...


@runtime_checkable
class Pacing(Protocol):
    """An application that says when a height's first round should start [CONS-PACE.1].

    Without it (the simulator's toy apps) the core starts every height at once."""

    def block_due(self, height: Height, now: int) -> bool:
        """The next block has something to record at ``now``: transactions, a block step
        that is due, or the empty-block interval has passed."""
        ...


class CommitDeferred(ConsensusError):
    """[CONS-COMMIT.2] The application could not store a decision yet and changed nothing."""

    code = "commit_deferred"


# ------------------------------------------------------------------ actions


@dataclass(frozen=True, slots=True)
class Broadcast:
    message: Proposal | Vote


@dataclass(frozen=True, slots=True)
class ScheduleTimeout:
    timeout: Timeout
    delay_ms: int


@dataclass(frozen=True, slots=True)
class PersistSigned:
    """[CONS-WAL.1] Append to the WAL and fsync before carrying out any later action."""

    record: SignedRecord


@dataclass(frozen=True, slots=True)
class Commit:
    """A decided block: apply it and store it with its certificate."""

    decision: Decision


@dataclass(frozen=True, slots=True)
class CommitStalled:
    """[CONS-COMMIT.2] ``decided`` was deferred: report ``reason``, call ``retry_commit`` later."""

    height: Height
    reason: str


@dataclass(frozen=True, slots=True)
class ReportEvidence:
    evidence: DuplicateVoteEvidence


@dataclass(frozen=True, slots=True)
class PeerMisbehaved:
    peer: bytes | None
    code: str


Action = (
    Broadcast
    | ScheduleTimeout
    | PersistSigned
    | Commit
    | CommitStalled
    | ReportEvidence
    | PeerMisbehaved
)
