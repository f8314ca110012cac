"""A hidden test set's commitment as a job spec carries it [HOLDOUT-SPEC.1].

Its own module so that both ``chain.jobspec`` (train/v3) and ``chain.federated.spec``
(federated/v1, which reuses it as its evaluation data commitment) import it without an
import cycle between the two.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chain import fields as F
from chain.errors import DecodeError
from chain.types import Amount, Hash32

MAX_FINALISTS = 16
MIN_POOL = 2
MAX_POOL = 4000
"""[HOLDOUT-POOL.1] A pool holds 2 .. 4,000 samples: one file each, and a part's tar holds at
most 4,096 entries [JOB-DATA.2]. A sample may be one example or a shard of many."""


@dataclass(frozen=True, slots=True)
class Holdout:
    """[HOLDOUT-SPEC.1] A train/v3 job's hidden test set: the committed pool and how it is used."""

    root: Hash32
    """Merkle root of the salted pool [HOLDOUT-POOL.1] (``chain.train.holdout.split``)."""
    pool: int
    """Number of samples in the pool, 2..4000."""
    public_permille: int
    """Share of the pool made public after the split [HOLDOUT-SPLIT.1]; the rest is hidden."""
    finalists: int
    """K: how many valid public claims are judged on the hidden part, 1..max_turns."""
    deposit: Amount
    """Escrowed beside the bounty; burned if the submitter fails a duty [HOLDOUT-FORFEIT.1]."""
    reveal_window_ms: int
    """Time after expiry for the submitter to reveal the hidden part [HOLDOUT-REVEAL.1]."""
    tie_tolerance: float
    """Hidden losses within this of the best count as tied; the earlier claim wins."""

    @property
    def public_count(self) -> int:
        return self.pool * self.public_permille // 1000

    def to_wire(self) -> list[Any]:
        return [self.root, self.pool, self.public_permille, self.finalists, self.deposit,
                self.reveal_window_ms, self.tie_tolerance]

    @classmethod
    def from_wire(cls, v: Any) -> Holdout:
        a = F.array(v, "spec.holdout", 7)
        pool = F.uint(a[1], "spec.holdout.pool", MIN_POOL, MAX_POOL)
        permille = F.uint(a[2], "spec.holdout.public_permille", 1, 999)
        public = pool * permille // 1000
        if not 1 <= public <= pool - 1:
            raise DecodeError(f"bad field 'spec.holdout': {permille} permille of {pool} samples "
                              f"makes {public} public; both parts need at least one sample",
                              code="bad_field")
        tie = F.finite_float(a[6], "spec.holdout.tie_tolerance")
        if tie < 0:
            raise DecodeError("bad field 'spec.holdout.tie_tolerance': must be >= 0",
                              code="bad_field")
        return cls(F.hash32(a[0], "spec.holdout.root"), pool, permille,
                   F.uint(a[3], "spec.holdout.finalists", 1, MAX_FINALISTS),
                   F.amount(a[4], "spec.holdout.deposit"),
                   F.uint(a[5], "spec.holdout.reveal_window_ms", 1, 24 * 3600 * 1000), tie)
