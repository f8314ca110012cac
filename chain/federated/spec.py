"""The ``federated/v1`` job kind's own fields [FED-SPEC.1] [FED-SPEC.2] [FED-SPEC.3].

A federated job's spec is train/v1's twelve common fields (image, entry points,
limits, bounty, expiry, voting, ...) followed by this one array, as every kind
extends v1 [JOB-KIND.1]. It is not yet registered in ``chain.jobspec``: the ledger
must first learn the kind's rounds, or a posted federated job would be settled as
a training race (protocol_spec/federated.md §5, Registration).

Every field is bounded and cross-checked when the object is built, so a value
that exists is valid, whether decoded or constructed.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from chain import fields as F
from chain.errors import DecodeError
from chain.federated.blobs import MAX_ROUNDS
from chain.federated.fixed import MAX_DIMS, MAX_ROUND_PARTICIPANTS, SCALE_BITS_MAX, SCALE_BITS_MIN
from chain.federated.rounds import MULTI_KRUM, TRIMMED_MEAN, Aggregation
from chain.train.holdout.spec import Holdout
from chain.types import Address, Hash32

FEDERATED_V1 = "federated/v1"
OPEN = "open"
PRIVATE = "private"
PRIVACY_MODES = (OPEN, PRIVATE)
WIRE_LENGTH = 13
"""[FED-SPEC.1] Elements of a spec without a cohort; with one, a 14th [FED-SPEC.4]."""
DAY_MS = 24 * 3600 * 1000
MAX_DP_CLIP = 1 << 43
"""[FED-SPEC.3] The largest L2 norm of a model vector: sqrt(2**24) × 2**31."""
MAX_NOISE_PERMILLE = 10_000
PPM = 1_000_000


def _bad(field: str, why: str) -> DecodeError:
    return DecodeError(f"bad field 'federated.{field}': {why}", code="bad_field")


def cohort_admits(cohort: Collection[bytes], sender: bytes, owner: bytes) -> bool:
    """[FED-SPEC.4] Whether ``sender`` may commit to a job whose owner is ``owner``: anyone
    when ``cohort`` is empty; else its addresses, and the owner (its FLTrust reference).
    Membership [TX-FED.2] is checked apart."""
    return not cohort or sender == owner or sender in cohort


@dataclass(frozen=True, slots=True)
class FederatedSpec:
    """[FED-SPEC.1] What a federated job fixes when it is posted."""

    initial_model: Hash32
    """Blob id [WIRE-BLOB.0] of the initial model blob [FED-MODEL.1]."""
    dims: int
    """Coordinates of the model, 1..2**24; every update has exactly these."""
    scale_bits: int
    """The fixed-point scale 2**scale_bits of the model and every update [FED-QUANT.1]."""
    rounds: int
    """How many rounds at most (1..1000); the target accuracy may end the job earlier."""
    min_participants: int
    """Fewest revealed updates for a round to count (else it is void)."""
    max_participants: int
    """Most updates a round takes (the first commitments, by block order)."""
    aggregation: Aggregation
    target_accuracy_ppm: int | None
    """Accuracy (parts per million, on the holdout's public part) that ends the job early."""
    holdout: Holdout
    """The evaluation data commitment, as train/v3's [HOLDOUT-POOL.1]: the public part
    measures each round's accuracy, the hidden part scores the leave-one-out models."""
    privacy: str
    """``open`` (updates visible, robust rules) or ``private`` (masked, plain mean)."""
    dp_clip: int
    """private: each update's L2 norm bound, in quantised units; open: 0."""
    dp_noise_permille: int
    """private: Gaussian noise std per participant as a share of ``dp_clip`` × 1000."""
    commit_window_ms: int
    reveal_window_ms: int
    aggregate_window_ms: int
    loo_permille: int
    """Share of the bounty paid by leave-one-out improvement [FED-REWARD.5]; private: 0."""
    cohort: tuple[Address, ...] = ()
    """[FED-SPEC.4] The only addresses that may commit updates, ascending; empty: any
    admitted member. The submitter's answer to splitting: one data owner, one address."""

    def __post_init__(self) -> None:
        self._check()

    def _check(self) -> None:
        """[FED-SPEC.2] [FED-SPEC.3] Bounds of each field, then how fields constrain each
        other; ``bad_field`` naming the field and the value."""
        F.hash32(self.initial_model, "federated.initial_model")
        F.uint(self.dims, "federated.dims", 1, MAX_DIMS)
        F.uint(self.scale_bits, "federated.scale_bits", SCALE_BITS_MIN, SCALE_BITS_MAX)
        F.uint(self.rounds, "federated.rounds", 1, MAX_ROUNDS)
        F.uint(self.min_participants, "federated.min_participants", 1, MAX_ROUND_PARTICIPANTS)
        F.uint(self.max_participants, "federated.max_participants", self.min_participants,
               MAX_ROUND_PARTICIPANTS)
        if self.target_accuracy_ppm is not None:
            F.uint(self.target_accuracy_ppm, "federated.target_accuracy_ppm", 1, PPM)
        F.one_of(self.privacy, "federated.privacy", PRIVACY_MODES)
        for name in ("commit_window_ms", "reveal_window_ms", "aggregate_window_ms"):
            F.uint(getattr(self, name), f"federated.{name}", 1, DAY_MS)
        F.uint(self.loo_permille, "federated.loo_permille", 0, 1000)
        agg = self.aggregation
        if agg.rule == TRIMMED_MEAN and agg.trim > 0 \
                and self.min_participants < 2 * agg.trim + 2:
            raise _bad("min_participants", f"a trimmed mean with trim {agg.trim} needs at "
                       f"least {2 * agg.trim + 2} participants (2k + 1 without any one of "
                       f"them), got {self.min_participants}")
        if agg.rule == MULTI_KRUM and self.min_participants < agg.needs + 1:
            raise _bad("min_participants", f"Multi-Krum with f {agg.trim} needs at least "
                       f"{agg.needs + 1} participants (f + 3 without any one of them), got "
                       f"{self.min_participants}")
        self._check_cohort()
        h = self.holdout
        if h.finalists != 1 or h.tie_tolerance != 0.0 or math.copysign(1, h.tie_tolerance) < 0:
            raise _bad("holdout", "a federated job has no finalists or tie tolerance: "
                       f"finalists 1 and tie_tolerance 0.0, got {h.finalists}, "
                       f"{h.tie_tolerance!r}")
        if self.privacy == OPEN:
            if self.dp_clip or self.dp_noise_permille:
                raise _bad("dp", f"open mode adds no noise: [0, 0], got "
                           f"[{self.dp_clip}, {self.dp_noise_permille}]")
            return
        F.uint(self.dp_clip, "federated.dp_clip", 1, MAX_DP_CLIP)
        F.uint(self.dp_noise_permille, "federated.dp_noise_permille", 0, MAX_NOISE_PERMILLE)
        if agg != Aggregation(TRIMMED_MEAN, 0):
            raise _bad("aggregation", "private mode sees only the sum of the updates: its "
                       f"rule is the plain mean ['trimmed_mean', 0], got {agg.to_wire()}")
        if self.loo_permille:
            raise _bad("loo_permille", "private mode has no single update to leave out: 0, "
                       f"got {self.loo_permille}")

    def _check_cohort(self) -> None:
        """[FED-SPEC.4] Distinct addresses in ascending order (one encoding per set), at
        most 256, and at least ``min_participants`` (fewer could never fill a round)."""
        if not self.cohort:
            return
        F.array(list(self.cohort), "federated.cohort", max_len=MAX_ROUND_PARTICIPANTS)
        for i, a in enumerate(self.cohort):
            F.address(a, f"federated.cohort[{i}]")
        if any(a >= b for a, b in itertools.pairwise(self.cohort)):
            raise _bad("cohort", "addresses strictly ascending (sorted, no repeats)")
        if len(self.cohort) < self.min_participants:
            raise _bad("cohort", f"{len(self.cohort)} addresses cannot fill a round of "
                                 f"min_participants {self.min_participants}")

    def admits(self, sender: Address, owner: Address) -> bool:
        """[FED-SPEC.4] Whether ``sender`` may commit to this job (``cohort_admits``)."""
        return cohort_admits(self.cohort, sender, owner)

    def to_wire(self) -> list[Any]:
        """[FED-SPEC.1] The 13-element array (protocol_spec/federated.md §5), and the cohort
        as a 14th element when there is one [FED-SPEC.4]."""
        cohort: list[Any] = [list(self.cohort)] if self.cohort else []
        return [self.initial_model, self.dims, self.scale_bits, self.rounds,
                self.min_participants, self.max_participants, self.aggregation.to_wire(),
                self.target_accuracy_ppm, self.holdout.to_wire(), self.privacy,
                [self.dp_clip, self.dp_noise_permille],
                [self.commit_window_ms, self.reveal_window_ms, self.aggregate_window_ms],
                self.loo_permille, *cohort]

    @classmethod
    def from_wire(cls, v: Any) -> FederatedSpec:
        """[FED-SPEC.1] Strict: exactly 13 elements of the stated types, or 14 with a
        non-empty cohort [FED-SPEC.4]; bounds as built."""
        a = F.array(v, "federated", max_len=WIRE_LENGTH + 1)
        if len(a) == WIRE_LENGTH + 1:
            raw = F.array(a[WIRE_LENGTH], "federated.cohort", max_len=MAX_ROUND_PARTICIPANTS)
            if not raw:
                raise _bad("cohort", "an empty cohort is written by leaving the element out")
            cohort = tuple(F.address(x, f"federated.cohort[{i}]") for i, x in enumerate(raw))
        else:
            F.array(a, "federated", WIRE_LENGTH)
            cohort = ()
        dp = F.array(a[10], "federated.dp", 2)
        windows = F.array(a[11], "federated.windows", 3)
        return cls(
            initial_model=F.hash32(a[0], "federated.initial_model"),
            dims=F.uint(a[1], "federated.dims"),
            scale_bits=F.uint(a[2], "federated.scale_bits"),
            rounds=F.uint(a[3], "federated.rounds"),
            min_participants=F.uint(a[4], "federated.min_participants"),
            max_participants=F.uint(a[5], "federated.max_participants"),
            aggregation=Aggregation.from_wire(a[6]),
            target_accuracy_ppm=None if a[7] is None
            else F.uint(a[7], "federated.target_accuracy_ppm"),
            holdout=Holdout.from_wire(a[8]),
            privacy=F.one_of(a[9], "federated.privacy", PRIVACY_MODES),
            dp_clip=F.uint(dp[0], "federated.dp_clip"),
            dp_noise_permille=F.uint(dp[1], "federated.dp_noise_permille"),
            commit_window_ms=F.uint(windows[0], "federated.commit_window_ms"),
            reveal_window_ms=F.uint(windows[1], "federated.reveal_window_ms"),
            aggregate_window_ms=F.uint(windows[2], "federated.aggregate_window_ms"),
            loo_permille=F.uint(a[12], "federated.loo_permille"),
            cohort=cohort,
        )

    @property
    def round_window_ms(self) -> int:
        return self.commit_window_ms + self.reveal_window_ms + self.aggregate_window_ms
