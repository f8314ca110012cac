"""The bounty split of a federated job [FED-REWARD.1] [FED-REWARD.3-9] [FED-REWARD.12-13].

Two measured contributions, nothing self-reported: each round's weights
([FED-AGG.7], from the revealed updates, with norm outliers zeroed and near-copies
sharing one weight [FED-REWARD.7] [FED-REWARD.8]; the job's outliers zeroed at the end
[FED-REWARD.9]) and each participant's leave-one-out
improvement on the hidden test set at the end (losses voted as integers in
micro-units). Every split is integer arithmetic with the largest-remainder rule,
so the payments sum to the bounty exactly. See protocol_spec/federated.md §4.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from chain.federated.errors import FederatedError

K = TypeVar("K", bytes, int)

MAX_LOSS = 1 << 40
"""[FED-REWARD.3] A voted loss is an integer in 0..2**40 - 1 micro-units (loss × 10**6)."""
MAX_WEIGHT = (1 << 64) - 1
NORM_OUTLIER_SQ = 100
"""[FED-REWARD.7] An update whose squared norm exceeds 100 × the round's median squared norm
(its norm more than 10 × the median norm) is a norm outlier."""
COPY_TRUST = 52429
"""[FED-REWARD.8] Two updates whose mutual trust [FED-AGG.4] is at least 52429 (cosine 0.8,
in 1/2**16 units, rounded up) are near-copies."""
STALE_TRUST = COPY_TRUST
"""[FED-REWARD.12] An update whose trust with another address's latest earlier update is at
least this (cosine 0.8, as [FED-REWARD.8]) and above its trust with every other update of
its round is a stale copy."""
JOB_OUTLIER_DIVISOR = 2
"""[FED-REWARD.9] A participant whose mean round weight is below 1/2 of the job's lower
median mean round weight is an outlier of the job."""


def lower_median(values: Sequence[int]) -> int:
    """The lower median: the element at index ``(n - 1) // 2`` of the values sorted
    ascending (n >= 1)."""
    if not values:
        raise FederatedError("no_values", "a median needs at least one value", n=0)
    return sorted(values)[(len(values) - 1) // 2]


def norm_outliers(weights: Sequence[int], square_norms: Sequence[int]) -> list[int]:
    """[FED-REWARD.7] The weights with norm outliers set to 0: among the updates of positive
    weight, N2 is the lower median of their squared norms, and one with a squared norm
    ``> 100 · N2`` gets weight 0 (the others keep theirs).

    Why: FLTrust's normalisation [FED-AGG.5] and the coordinate-wise rules' ranks already
    take a scaled update's extra influence away, but its direction stays honest, so its
    weight would pay the scaling attack like an honest update. An honest participant
    gains nothing by sending a larger update and has no reason to; honest norms differ
    by a few times between owners (up to 3.8 × the median in the digits job), 10 × is
    beyond that. Medians of the positive-weight updates: a zero or opposed majority
    (weight 0) cannot drag N2 to 0 and zero the honest ones."""
    if len(weights) != len(square_norms):
        raise FederatedError("bad_dims", "one squared norm per weight",
                             dims=(len(weights), len(square_norms)))
    positive = [n2 for w, n2 in zip(weights, square_norms, strict=True) if w > 0]
    if not positive:
        return list(weights)
    limit = NORM_OUTLIER_SQ * lower_median(positive)
    return [0 if n2 > limit else w for w, n2 in zip(weights, square_norms, strict=True)]


def copy_discount(weights: Sequence[int], pair_trust: Callable[[int, int], int]) -> list[int]:
    """[FED-REWARD.8] Near-copies share one weight: for each update i of positive weight,
    ``c_i`` is 1 plus the number of other updates j of positive weight with
    ``pair_trust(i, j) >= COPY_TRUST`` (their trust [FED-AGG.4], symmetric); its weight
    becomes ``w_i // c_i``. Updates of weight 0 neither count nor change.

    Why: a round weight pays agreement with the round's direction, and an owner of the
    same data as another (or of data that teaches the same thing) sends nearly the same
    direction: two of them would be paid twice for one contribution, and a duplicate
    would out-earn an owner of fresh data that agrees less because nobody else has it.
    Measured in the digits job: two owners of the same rows trained with different seeds
    have cosines 0.72-0.97 (0.93 typical), owners of different shards at most 0.69.
    Exact copies are already excluded [FED-AGG.8]; this catches the near ones. The rule
    cannot tell the original from the copy, so both share, as [FED-AGG.8] does."""
    live = [i for i, w in enumerate(weights) if w > 0]
    count = dict.fromkeys(live, 1)
    for x, i in enumerate(live):
        for j in live[x + 1:]:
            if pair_trust(i, j) >= COPY_TRUST:
                count[i] += 1
                count[j] += 1
    return [w // count[i] if i in count else w for i, w in enumerate(weights)]


def stale_copies(weights: Sequence[int], nearest_now: Sequence[int],
                 nearest_earlier: Sequence[int]) -> list[int]:
    """[FED-REWARD.12] The weights with stale copies set to 0: update i is one when
    ``nearest_earlier[i]`` (its largest trust with the latest earlier update of any other
    address) is ``>= STALE_TRUST`` and ``> nearest_now[i]`` (its largest trust with any other
    update of its round and with its own address's latest earlier update; 0 for none).

    Why: a free-rider that resends another owner's earlier update, shifted just past the
    replay quantum [FED-REWARD.10], points where that owner pointed a round ago; its weight
    and its leave-one-out improvement then pay the copy like the owner's own work, and
    the copy discount [FED-REWARD.8] halves the owner. The owner's fresh update of this
    round is a little further from its old one than the copy is, and nearer its own old
    one than to the copy's old one (a replay of its update from the round before), so an
    earlier copy cannot make the owner look stale. Honest owners of different data are
    far apart (measured: trusts with other addresses' latest updates at most 0.74)."""
    if not len(weights) == len(nearest_now) == len(nearest_earlier):
        raise FederatedError("bad_dims", "one nearest trust of each kind per weight",
                             dims=(len(weights), len(nearest_now), len(nearest_earlier)))
    return [0 if e >= STALE_TRUST and e > now else w
            for w, now, e in zip(weights, nearest_now, nearest_earlier, strict=True)]


def agreement_cap(weights: Sequence[int]) -> list[int]:
    """[FED-REWARD.13] Each weight capped at A, the lower median of the positive weights
    (``min(w, A)``; no positive weight: unchanged).

    Why: a round weight pays agreement with the round's direction, and nobody agrees with
    it better than an update computed from the others' (their mean, or the mean shifted
    inside their spread: the variance-hiding attack), which carries no data of its own.
    On non-IID data honest owners point at their own classes, so their weights are modest
    and such a copy earned up to twice the typical honest weight (measured: paid more
    than the lowest honest owner in 3 seeds of 10). Capped at the typical weight, being
    more agreeable than half the owners buys nothing; on IID data honest weights sit near
    their median and the cap moves little."""
    positive = [w for w in weights if w > 0]
    if not positive:
        return list(weights)
    cap = lower_median(positive)
    return [min(w, cap) for w in weights]


def job_outliers(round_weights: Sequence[Mapping[bytes, int]]) -> set[bytes]:
    """[FED-REWARD.9] The job's outliers. Over the scored rounds (positive weight sum), each
    participant named in at least one of them has ``a = (sum of its weights in those
    rounds) // (number of those rounds naming it)``, its mean round weight; with M the
    lower median of every such participant's ``a``, the outliers are those with
    ``2 · a < M``.

    Why: in a single round an attacker's update can look as aligned as an honest owner's
    whose data differ (a label flipper's first round, a noise vector by chance), and an
    honest owner's weight can be near 0 in some rounds; over the job they separate
    (measured: attackers' mean weights 1/5 or less of the lowest honest owner's). With
    honest participants a majority, M is an honest participant's mean, so an honest owner
    is cut only if it agreed less than half as much as a typical honest one. The mean is
    over the rounds a participant took part in, so joining late is no penalty."""
    sums: dict[bytes, int] = {}
    rounds: dict[bytes, int] = {}
    for ws in round_weights:
        if sum(ws.values()) <= 0:
            continue
        for a, w in ws.items():
            sums[a] = sums.get(a, 0) + w
            rounds[a] = rounds.get(a, 0) + 1
    if not sums:
        return set()
    means = {a: sums[a] // rounds[a] for a in sums}
    m = lower_median(list(means.values()))
    return {a for a, v in means.items() if JOB_OUTLIER_DIVISOR * v < m}


def split(total: int, weights: Mapping[K, int]) -> dict[K, int]:
    """[FED-REWARD.4] ``total`` shared in proportion to ``weights`` (ints >= 0, sum > 0):
    each key gets ``floor(total · w / W)``; the dust ``total - sum`` (fewer units than keys
    with a non-zero remainder) goes one unit each to the largest remainders
    ``total · w mod W``, ties by ascending key. A key of weight 0 gets exactly 0."""
    if total < 0:
        raise FederatedError("bad_total", f"cannot split {total}", total=total)
    bad = {k: w for k, w in weights.items() if not 0 <= w <= MAX_WEIGHT}
    if bad:
        raise FederatedError("bad_weight", f"weights are ints in 0..2**64-1: {bad}", bad=bad)
    w_sum = sum(weights.values())
    if w_sum == 0:
        raise FederatedError("no_weight", "a split needs some positive weight", total=total)
    shares = {k: total * w // w_sum for k, w in weights.items()}
    dust = total - sum(shares.values())
    order = sorted(weights, key=lambda k: (-(total * weights[k] % w_sum), k))
    for k in order[:dust]:
        shares[k] += 1
    return shares


@dataclass(frozen=True, slots=True)
class Payout:
    """[FED-REWARD.5] What the bounty becomes: ``paid`` per participant (address order, zero
    shares left out) and ``refund`` to the owner; ``sum(paid) + refund == bounty``."""

    paid: tuple[tuple[bytes, int], ...]
    refund: int
    round_pool: int
    loo_pool: int

    def of(self, participant: bytes) -> int:
        return dict(self.paid).get(participant, 0)


def improvements(final_loss: int, loo_losses: Mapping[bytes, int],
                 eligible: set[bytes]) -> dict[bytes, int]:
    """[FED-REWARD.3] ``max(0, L_without_i - L_final)`` for each participant with a positive
    weight in some round; 0 for the others (an update the rules never accepted contributed
    nothing, whatever the loss says)."""
    for name, loss in (("final", final_loss), *((a.hex(), v) for a, v in loo_losses.items())):
        if isinstance(loss, bool) or not isinstance(loss, int) or not 0 <= loss < MAX_LOSS:
            raise FederatedError("bad_loss", f"loss {name} must be an int in "
                                 f"0..2**40-1 micro-units", loss=loss)
    return {a: max(0, loss - final_loss) if a in eligible else 0
            for a, loss in loo_losses.items()}


def payout(bounty: int, loo_permille: int, round_weights: Sequence[Mapping[bytes, int]],
           final_loss: int | None = None,
           loo_losses: Mapping[bytes, int] | None = None) -> Payout:
    """[FED-REWARD.5] The bounty split.

    - The job's outliers [FED-REWARD.9] have weight 0 in every round.
    - Rounds with a positive total weight are *scored*; the others pay nothing.
    - Improvements ``imp_i`` [FED-REWARD.3]; none when ``final_loss`` is None (private
      mode, or no verified hidden loss) [FED-REWARD.6].
    - No scored round and no improvement: the whole bounty is refunded. Only one kind
      present: it takes the whole bounty. Both: ``loo_pool = bounty · loo_permille // 1000``
      and the round pool is the rest.
    - The round pool is split equally over the scored rounds [FED-REWARD.4] (dust to the
      earliest), each round's share by that round's weights [FED-REWARD.1]; the loo pool
      by ``imp_i``. A participant's payment is the sum of its shares.
    """
    if not 0 <= loo_permille <= 1000 or bounty < 0:
        raise FederatedError("bad_param", "bounty >= 0, loo_permille in 0..1000",
                             bounty=bounty, loo_permille=loo_permille)
    for ws in round_weights:
        bad = {k: w for k, w in ws.items() if not 0 <= w <= MAX_WEIGHT}
        if bad:
            raise FederatedError("bad_weight", f"weights are ints in 0..2**64-1: {bad}",
                                 bad=bad)
    outliers = job_outliers(round_weights)
    cut = [{a: 0 if a in outliers else w for a, w in ws.items()} for ws in round_weights]
    scored = {r: ws for r, ws in enumerate(cut) if sum(ws.values()) > 0}
    eligible = {a for ws in scored.values() for a, w in ws.items() if w > 0}
    imp: dict[bytes, int] = {}
    if final_loss is not None and loo_losses is not None:
        imp = improvements(final_loss, loo_losses, eligible)
    has_loo = sum(imp.values()) > 0
    if not scored and not has_loo:
        return Payout((), bounty, 0, 0)
    if not has_loo:
        loo_pool = 0
    elif not scored:
        loo_pool = bounty
    else:
        loo_pool = bounty * loo_permille // 1000
    round_pool = bounty - loo_pool
    paid: dict[bytes, int] = {}
    if scored:
        for r, pool in split(round_pool, {r: 1 for r in scored}).items():
            for a, share in split(pool, scored[r]).items():
                paid[a] = paid.get(a, 0) + share
    if has_loo:
        for a, share in split(loo_pool, imp).items():
            paid[a] = paid.get(a, 0) + share
    return Payout(tuple(sorted((a, v) for a, v in paid.items() if v)), 0, round_pool,
                  loo_pool)


def private_round_weights(included: Sequence[bytes]) -> dict[bytes, int]:
    """[FED-REWARD.6] Private mode sees no single update, so a round's weights are 1 for
    each participant whose masked update entered the unmasked sum."""
    return {a: 1 for a in included}
