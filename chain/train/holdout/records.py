"""The ``holdout`` table: what the ledger remembers of a train/v3 job's hidden test set.

One record per train/v3 job, keyed by job id, written beside the ``job`` record
so that train/v1 and v2 job records keep their wire form [JOB-KIND.1]. See
protocol_spec/ledger.md §5b and state.md for the wire form.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from chain.jobspec import DataRef
from chain.types import Address, Hash32, Height


class HoldoutStatus(StrEnum):
    COMMITTED = "committed"
    """Posted: the split is drawn and the public part published before expiry."""
    REVEALED = "revealed"
    """The submitter named its hidden part [HOLDOUT-REVEAL.1]; voters have not judged it."""
    VERIFIED = "verified"
    """A supermajority of a turn's voters found the hidden part matches the root."""
    UNPUBLISHED = "unpublished"
    """No public part by expiry: deposit burned, escrow refunded [HOLDOUT-FORFEIT.1]."""
    WITHHELD = "withheld"
    """No hidden part in the reveal window: deposit burned, public ranking [HOLDOUT-FORFEIT.1]."""
    REJECTED = "rejected"
    """Voters found the hidden part does not match: deposit burned, public ranking."""


LIVE = (HoldoutStatus.REVEALED, HoldoutStatus.VERIFIED)
"""While the hidden part is live, votes carry a hidden loss [HOLDOUT-VOTE.1]."""
FORFEITED = (HoldoutStatus.UNPUBLISHED, HoldoutStatus.WITHHELD, HoldoutStatus.REJECTED)


@dataclass(frozen=True, slots=True)
class Finalist:
    """A claim voted valid while the hidden part was live [HOLDOUT-FINALIST.1]."""

    claimer: Address
    hidden_loss: float | None
    """The voters' agreed hidden loss [HOLDOUT-AGREE.1]; None if none was agreed."""
    height: Height
    index: int
    """The claim's place in the chain: the tie-break, earlier first [HOLDOUT-WINNER.1]."""

    def to_wire(self) -> list[Any]:
        return [self.claimer, self.hidden_loss, self.height, self.index]

    @classmethod
    def from_wire(cls, a: list[Any]) -> Finalist:
        return cls(Address(a[0]), a[1], Height(a[2]), a[3])


@dataclass(frozen=True, slots=True)
class HoldoutState:
    """[HOLDOUT-STATE.1] The split, the published parts, and the finalists judged so far."""

    seed: Hash32 | None = None
    """[HOLDOUT-SPLIT.1] Drawn from the hash of the block at ``posted_height + 1``."""
    public: DataRef | None = None
    """The published public part [HOLDOUT-PUBLISH.1]."""
    hidden: DataRef | None = None
    """The revealed hidden part [HOLDOUT-REVEAL.1]."""
    status: HoldoutStatus = HoldoutStatus.COMMITTED
    finalists: tuple[Finalist, ...] = ()

    @property
    def live(self) -> bool:
        return self.status in LIVE

    def to_wire(self) -> list[Any]:
        return [self.seed, None if self.public is None else self.public.to_wire(),
                None if self.hidden is None else self.hidden.to_wire(), str(self.status),
                [f.to_wire() for f in self.finalists]]

    @classmethod
    def from_wire(cls, a: list[Any]) -> HoldoutState:
        return cls(None if a[0] is None else Hash32(a[0]),
                   None if a[1] is None else DataRef(Hash32(a[1][0]), a[1][1]),
                   None if a[2] is None else DataRef(Hash32(a[2][0]), a[2][1]),
                   HoldoutStatus(a[3]), tuple(Finalist.from_wire(f) for f in a[4]))
