"""One round of a federated job: which updates count, the aggregate, each update's weight,
the model step, and the leave-one-out models the rewards measure
[FED-AGG.1] [FED-AGG.7] [FED-AGG.8] [FED-MODEL.3] [FED-REWARD.2] [FED-REWARD.7]
[FED-REWARD.8] [FED-REWARD.12] [FED-REWARD.13].

Pure functions of the revealed blobs: any member recomputes an aggregator's
result bit for bit and votes on it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chain import fields as F
from chain.federated.centered import centered_clip, model_step
from chain.federated.errors import FederatedError
from chain.federated.fixed import MAX_ROUND_PARTICIPANTS, check_vector, clamp
from chain.federated.fltrust import dot, fltrust, square_norm, trust, trust_from
from chain.federated.history import replays
from chain.federated.rewards import agreement_cap, copy_discount, norm_outliers, stale_copies
from chain.federated.robust import median, multi_krum, trimmed_mean
from chain.types import ADDRESS_LEN

TRIMMED_MEAN = "trimmed_mean"
MEDIAN = "median"
FLTRUST = "fltrust"
MULTI_KRUM = "multi_krum"
CENTERED_CLIP = "centered_clip"
RULES = (TRIMMED_MEAN, MEDIAN, FLTRUST, MULTI_KRUM, CENTERED_CLIP)
"""[FED-SPEC.2] The aggregation rules a job may name."""
MAX_TRIM = (MAX_ROUND_PARTICIPANTS - 2) // 2
MAX_KRUM_F = MAX_ROUND_PARTICIPANTS - 4
"""[FED-AGG.9] Multi-Krum's f: f + 4 participants (f + 3 without any one) fit in a round."""
PARAMETER_MAX = {TRIMMED_MEAN: MAX_TRIM, MULTI_KRUM: MAX_KRUM_F, MEDIAN: 0, FLTRUST: 1,
                 CENTERED_CLIP: 0}
"""FLTrust's parameter 1 [FED-AGG.12]: its trusted updates through centered clipping."""


@dataclass(frozen=True, slots=True)
class Aggregation:
    """[FED-SPEC.2] A job's rule and its one parameter: ``trim`` (k) for the trimmed mean,
    f (the attackers tolerated) for Multi-Krum [FED-AGG.9], 1 for FLTrust's trusted
    updates through centered clipping [FED-AGG.12], 0 for the others."""

    rule: str
    trim: int = 0

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise FederatedError("bad_rule", f"unknown aggregation rule {self.rule!r}",
                                 rule=self.rule)
        hi = PARAMETER_MAX[self.rule]
        if not 0 <= self.trim <= hi:
            raise FederatedError("bad_trim", f"{self.rule} takes a parameter in 0..{hi}"
                                 if hi else f"{self.rule} takes no trim", trim=self.trim)

    @property
    def needs(self) -> int:
        """Fewest updates the rule aggregates: 2k + 1 for the trimmed mean, f + 3 for
        Multi-Krum, else 1."""
        return self.trim + 3 if self.rule == MULTI_KRUM else 2 * self.trim + 1

    @property
    def uses_center(self) -> bool:
        """[FED-AGG.11] Whether the rule clips around the last step: centered clipping and
        FLTrust through it [FED-AGG.12]."""
        return self.rule == CENTERED_CLIP or (self.rule == FLTRUST and self.trim == 1)

    def to_wire(self) -> list[Any]:
        return [self.rule, self.trim]

    @classmethod
    def from_wire(cls, v: Any) -> Aggregation:
        a = F.array(v, "federated.aggregation", 2)
        rule = F.one_of(a[0], "federated.aggregation.rule", RULES)
        return cls(rule, F.uint(a[1], "federated.aggregation.trim", 0, PARAMETER_MAX[rule]))


@dataclass(frozen=True, slots=True)
class RoundResult:
    """What a round's updates give: the aggregate and, per participant (address order), its
    weight; weight 0 means rejected as an outlier for the round [FED-AGG.7]."""

    aggregate: tuple[int, ...]
    weights: tuple[tuple[bytes, int], ...]
    duplicates: tuple[bytes, ...]
    """Participants excluded for sending the same vector as another [FED-AGG.8]."""
    replays: tuple[bytes, ...] = ()
    """Participants left out for replaying an earlier update [FED-REWARD.10]: not named in
    ``weights``."""

    @property
    def rejected(self) -> tuple[bytes, ...]:
        return tuple(a for a, w in self.weights if w == 0)

    def weight_of(self, participant: bytes) -> int:
        return dict(self.weights).get(participant, 0)


def _ordered(updates: Mapping[bytes, Sequence[int]],
             dims: int) -> list[tuple[bytes, tuple[int, ...]]]:
    """[FED-AGG.1] The round's updates in ascending address order, each checked."""
    if len(updates) > MAX_ROUND_PARTICIPANTS:
        raise FederatedError("too_many_updates", f"{len(updates)} updates, at most "
                             f"{MAX_ROUND_PARTICIPANTS} per round", n=len(updates))
    out = []
    for addr in sorted(updates):
        if not isinstance(addr, bytes) or len(addr) != ADDRESS_LEN:
            raise FederatedError("bad_participant", "participants are 20-byte addresses",
                                 participant=addr)
        out.append((addr, check_vector(updates[addr], f"update of {addr.hex()}", dims)))
    return out


def aggregate_round(agg: Aggregation, updates: Mapping[bytes, Sequence[int]],
                    reference: Sequence[int] | None, dims: int,
                    center: Sequence[int] | None = None,
                    earlier: Sequence[Sequence[int]] = (),
                    history: Mapping[bytes, Sequence[int]] | None = None,
                    latest: Mapping[bytes, Sequence[int]] | None = None) -> RoundResult:
    """[FED-AGG.1] [FED-AGG.7] [FED-AGG.8] One round, as every member computes it.

    1. Updates in ascending address order; each a valid vector of ``dims`` [FED-AGG.1].
    2. Vectors sent by two or more addresses are all excluded, weight 0 [FED-AGG.8]; of the
       rest, replays of ``earlier`` updates are left out, not named [FED-REWARD.10].
    3. The rule on the rest: trimmed mean [FED-AGG.2], median [FED-AGG.3], Multi-Krum
       [FED-AGG.9], centered clipping around ``center`` [FED-AGG.10] (the last accepted
       round's step [FED-AGG.11]; None: zeros) or FLTrust against ``reference``
       [FED-AGG.6]. Fewer usable updates than
       the rule needs (or no reference for FLTrust): the round is void, aggregate zero,
       every weight 0.
    4. Weights [FED-AGG.7]: FLTrust's trust; for the other rules the trust of the update
       against the round's aggregate (its agreement with the robust result).
    5. Norm outliers get weight 0 [FED-REWARD.7]; with ``latest`` (each address's latest
       earlier revealed update; None before protocol version 4), stale copies get weight 0
       [FED-REWARD.12] and every weight is capped at the lower median of the positive
       ones [FED-REWARD.13]; then near-copies share one weight [FED-REWARD.8], near in
       this round's updates or in their running sums with ``history`` (each address's
       earlier revealed updates summed) [FED-REWARD.11]. The aggregate does not depend
       on steps 4-5.
    """
    ordered = _ordered(updates, dims)
    counts = Counter(v for _, v in ordered)
    dupes = tuple(a for a, v in ordered if counts[v] > 1)
    usable = [(a, v) for a, v in ordered if counts[v] == 1]
    replayed = replays(usable, earlier)
    usable = [(a, v) for a, v in usable if a not in replayed]
    zero = (0,) * dims
    if agg.rule == FLTRUST and reference is not None:
        ref = check_vector(reference, "reference", dims)
        vectors = [v for _, v in usable]
        aggregate, trusts = fltrust(vectors, ref) if vectors else (zero, ())
        if agg.trim == 1:  # [FED-AGG.12]
            trusted = [v for v, t in zip(vectors, trusts, strict=True) if t > 0]
            c = zero if center is None else check_vector(center, "center", dims)
            aggregate = centered_clip(trusted, c) if trusted else zero
        weight = dict(zip((a for a, _ in usable), trusts, strict=True))
    elif agg.rule != FLTRUST and len(usable) >= agg.needs:
        vectors = [v for _, v in usable]
        if agg.rule == CENTERED_CLIP:
            c = zero if center is None else check_vector(center, "center", dims)
            aggregate = centered_clip(vectors, c)
        elif agg.rule == TRIMMED_MEAN:
            aggregate = trimmed_mean(vectors, agg.trim)
        elif agg.rule == MULTI_KRUM:
            aggregate = multi_krum(vectors, agg.trim)
        else:
            aggregate = median(vectors)
        weight = {a: trust(v, aggregate) for a, v in usable}
    else:
        aggregate, weight = zero, {}
    if weight:
        vectors = [v for _, v in usable]
        n2s = [square_norm(v) for v in vectors]
        ws = norm_outliers([weight[a] for a, _ in usable], n2s)
        if latest is not None:
            now, before = nearest_trusts(usable, n2s, latest)
            ws = agreement_cap(stale_copies(ws, now, before))
        sums = running_sums(usable, history)
        s2s = [square_norm(v) for v in sums]
        ws = copy_discount(ws, lambda i, j: max(
            trust_from(dot(vectors[i], vectors[j]), n2s[i], n2s[j]),
            trust_from(dot(sums[i], sums[j]), s2s[i], s2s[j])))
        weight = dict(zip((a for a, _ in usable), ws, strict=True))
    return RoundResult(aggregate, tuple((a, weight.get(a, 0)) for a, _ in ordered
                                        if a not in replayed), dupes,
                       tuple(a for a, _ in ordered if a in replayed))


def nearest_trusts(usable: Sequence[tuple[bytes, Sequence[int]]], n2s: Sequence[int],
                   latest: Mapping[bytes, Sequence[int]]) -> tuple[list[int], list[int]]:
    """[FED-REWARD.12] For each usable update i, two largest trusts [FED-AGG.4]: with the
    round's other updates and its own address's ``latest`` earlier update, and with the
    ``latest`` earlier update of any other address (each 0 when there is none; a vector
    of another length is no update)."""
    now, before = [], []
    for i, (a, v) in enumerate(usable):
        mine = [trust(v, latest[a])] if a in latest and len(latest[a]) == len(v) else []
        now.append(max((trust_from(dot(v, w), n2s[i], n2s[j])
                        for j, (_, w) in enumerate(usable) if j != i), default=0))
        now[-1] = max([now[-1], *mine])
        before.append(max((trust(v, w) for b, w in latest.items()
                           if b != a and len(w) == len(v)), default=0))
    return now, before


def running_sums(usable: Sequence[tuple[bytes, Sequence[int]]],
                 history: Mapping[bytes, Sequence[int]] | None) -> list[tuple[int, ...]]:
    """[FED-REWARD.11] Each update plus its address's earlier revealed updates, clamped per
    coordinate [FED-QUANT.3]; the update itself for an address with no history."""
    out = []
    for a, v in usable:
        h = (history or {}).get(a)
        out.append(tuple(v) if h is None else tuple(
            clamp(x + y) for x, y in zip(v, h, strict=True)))
    return out


def apply_aggregate(model: Sequence[int], aggregate: Sequence[int]) -> tuple[int, ...]:
    """[FED-MODEL.3] The next global model: ``clamp(old_j + aggregate_j)`` per coordinate."""
    if len(model) != len(aggregate):
        raise FederatedError("bad_dims", "the aggregate needs the model's length",
                             dims=(len(model), len(aggregate)))
    return tuple(clamp(m + a) for m, a in zip(model, aggregate, strict=True))


@dataclass(frozen=True, slots=True)
class RoundInput:
    """A finished round's revealed updates and, for FLTrust, the owner's reference."""

    updates: Mapping[bytes, Sequence[int]]
    reference: Sequence[int] | None = None


def replay(agg: Aggregation, initial: Sequence[int], rounds: Sequence[RoundInput],
           without: bytes | None = None) -> tuple[int, ...]:
    """[FED-MODEL.3] [FED-REWARD.2] The global model after ``rounds`` (the accepted ones)
    from ``initial``; with ``without``, the leave-one-out model: every round re-aggregated
    with that participant's updates removed (the others' updates as they were revealed).
    Centered clipping's center is the step the replay itself applied in the round before
    [FED-AGG.11], zeros in the first."""
    model = check_vector(initial, "initial model")
    center = (0,) * len(model)
    for r in rounds:
        updates = {a: v for a, v in r.updates.items() if a != without}
        new = apply_aggregate(model, aggregate_round(agg, updates, r.reference, len(model),
                                                     center).aggregate)
        center, model = model_step(model, new), new
    return model
