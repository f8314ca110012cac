"""The bounty split, tried to break [FED-REWARD.*].

Property tests for the split's arithmetic (exact sums, dust, zero weights) and
toy jobs (tests/federated/toy.py) in which free-riders, copiers, sign flippers
and scalers take part: they earn nothing or nothing extra, honest participants
earn, and the payments always sum to the bounty.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.federated.errors import FederatedError
from chain.federated.fltrust import TRUST_ONE
from chain.federated.rewards import (
    COPY_TRUST,
    MAX_LOSS,
    copy_discount,
    improvements,
    job_outliers,
    norm_outliers,
    payout,
    private_round_weights,
    split,
)
from chain.federated.rounds import FLTRUST, MEDIAN, TRIMMED_MEAN, Aggregation
from tests.federated import toy

SETTINGS = settings(max_examples=150, deadline=None)
addrs = st.binary(min_size=20, max_size=20)
amounts = st.integers(0, 10**15)


def a(i: int) -> bytes:
    return bytes([i]) * 20


@SETTINGS
@given(amounts, st.dictionaries(addrs, st.integers(0, 2**64 - 1), min_size=1, max_size=12))
def test_split_sums_exactly_and_dust_follows_remainders(
        total: int, weights: dict[bytes, int]) -> None:
    """[FED-REWARD.4] Shares sum to the total; each is floor or floor + 1 of the exact
    share; weight 0 gets 0; the +1s go to the largest remainders (ties by key)."""
    if sum(weights.values()) == 0:
        with pytest.raises(FederatedError):
            split(total, weights)
        return
    shares = split(total, weights)
    w_sum = sum(weights.values())
    assert sum(shares.values()) == total
    for k, w in weights.items():
        floor = total * w // w_sum
        assert shares[k] in (floor, floor + 1)
        if w == 0:
            assert shares[k] == 0
    bumped = [k for k in weights if shares[k] > total * weights[k] // w_sum]
    rest = [k for k in weights if k not in bumped]
    rem = {k: total * weights[k] % w_sum for k in weights}
    for b in bumped:
        assert all((rem[b], -b[0]) >= (rem[r], -r[0]) or rem[b] > rem[r] for r in rest)


def test_split_dust_by_hand() -> None:
    """[FED-REWARD.4] 10 over weights 1:1:1 -> 4, 3, 3 (dust to the lowest key); 7 over 1:2 ->
    2, 5 (remainders 1 and 2: the larger gets the unit)."""
    assert split(10, {a(3): 1, a(1): 1, a(2): 1}) == {a(1): 4, a(2): 3, a(3): 3}
    assert split(7, {a(1): 1, a(2): 2}) == {a(1): 2, a(2): 5}
    assert split(0, {a(1): 5}) == {a(1): 0}
    for bad in ({a(1): -1}, {a(1): 2**64}):
        with pytest.raises(FederatedError):
            split(5, bad)
    with pytest.raises(FederatedError):
        split(-1, {a(1): 1})


@SETTINGS
@given(amounts, st.integers(0, 1000),
       st.lists(st.dictionaries(addrs, st.integers(0, 1 << 16), max_size=6), max_size=6),
       st.one_of(st.none(), st.integers(0, MAX_LOSS - 1)),
       st.dictionaries(addrs, st.integers(0, MAX_LOSS - 1), max_size=6))
def test_payout_always_sums_to_the_bounty(bounty: int, lam: int,
                                          weights: list[dict[bytes, int]],
                                          final: int | None, loo: dict[bytes, int]) -> None:
    """[FED-REWARD.5] [FED-REWARD.1] [FED-REWARD.3] Whatever the weights and losses:
    payments plus refund are the bounty; a refund only when nothing was scored and nobody
    improved the model; nobody with weight 0 in every round is paid."""
    p = payout(bounty, lam, weights, final, loo)
    assert sum(v for _, v in p.paid) + p.refund == bounty
    assert p.round_pool + p.loo_pool == (bounty if p.refund == 0 else 0)
    ever = {k for ws in weights for k, w in ws.items() if w > 0}
    assert {k for k, _ in p.paid} <= ever
    if p.refund:
        assert p.refund == bounty and not p.paid


def test_rejected_in_a_round_earns_nothing_for_it() -> None:
    """[FED-REWARD.1] [FED-REWARD.3] A participant with weight 0 in round 2 gets only its
    round-1 share; one with weight 0 everywhere gets nothing, even with a large loss-based
    improvement; the dust of 100 over three rounds goes to the earliest."""
    w = [{a(1): 1, a(2): 1}, {a(1): 1, a(2): 0}, {a(1): 1, a(3): 0}]
    p = payout(100, 0, w)
    assert p.of(a(1)) == 17 + 33 + 33 and p.of(a(2)) == 17 and p.of(a(3)) == 0
    imp = improvements(10, {a(1): 12, a(2): 11, a(3): 10**6}, eligible={a(1), a(2)})
    assert imp == {a(1): 2, a(2): 1, a(3): 0}
    p = payout(90, 1000, w, 10, {a(1): 12, a(2): 11, a(3): 10**6})
    assert p.of(a(3)) == 0 and p.of(a(1)) == 60 and p.of(a(2)) == 30
    with pytest.raises(FederatedError):
        improvements(-1, {}, set())
    with pytest.raises(FederatedError):
        payout(10, 1001, w)


def test_payout_pools_by_hand() -> None:
    """[FED-REWARD.5] Both kinds: loo pool = B·λ//1000; only rounds: all to rounds; only
    improvements: all to them; neither: refund."""
    w = [{a(1): 3, a(2): 1}]
    both = payout(1001, 300, w, 100, {a(1): 100, a(2): 150})
    assert (both.loo_pool, both.round_pool) == (300, 701)
    assert both.of(a(1)) == 526 + 0 and both.of(a(2)) == 175 + 300
    rounds_only = payout(1001, 300, w, 100, {a(1): 100, a(2): 90})
    assert rounds_only.loo_pool == 0 and rounds_only.of(a(1)) == 751
    loo_only = payout(50, 300, [{a(1): 1}, {a(2): 0}], None, None)
    assert loo_only.of(a(1)) == 50
    nothing = payout(50, 300, [{a(1): 0}], 5, {a(1): 1})
    assert nothing.refund == 50 and nothing.paid == ()


def test_private_mode_pays_equally_per_round() -> None:
    """[FED-REWARD.6] Private mode: weight 1 per included participant, no leave-one-out."""
    rounds = [private_round_weights([a(1), a(2)]), private_round_weights([a(2), a(3)])]
    p = payout(1000, 0, rounds)
    assert dict(p.paid) == {a(1): 250, a(2): 500, a(3): 250}


TARGET = (4000, -2400, 800, 1600, -3200, 120)
noise = st.lists(st.integers(-60, 60), min_size=3, max_size=7)


@settings(max_examples=25, deadline=None)
@given(noise, noise, noise, st.sampled_from([Aggregation(FLTRUST), Aggregation(MEDIAN),
                                            Aggregation(TRIMMED_MEAN, 1)]))
def test_free_rider_and_sign_flipper_earn_nothing(n1: list[int], n2: list[int], n3: list[int],
                                                  agg: Aggregation) -> None:
    """[FED-REWARD.3] [FED-REWARD.5] [FED-AGG.7] In a toy job with three honest members, a
    free-rider (zero update) and a sign flipper (×10): the free-rider and the flipper earn
    0 under every robust rule, every honest member earns, and all sums to the bounty."""
    people = {a(1): toy.honest(n1, 1), a(2): toy.honest(n2, 2), a(3): toy.honest(n3, 3),
              a(4): toy.free_rider, a(5): toy.sign_flipper(10)}
    r = toy.run(agg, TARGET, people, 4, 10_000, 500)
    assert r.payout.of(a(4)) == 0 and r.payout.of(a(5)) == 0
    assert all(r.payout.of(a(i)) > 0 for i in (1, 2, 3))
    assert sum(v for _, v in r.payout.paid) == 10_000
    assert all(w[a(4)] == 0 for w in r.weights)
    if agg.rule == FLTRUST:
        assert r.loo_losses[a(4)] == r.final_loss  # never in a sum: bit for bit the same model
        assert r.loo_losses[a(5)] == r.final_loss


@settings(max_examples=25, deadline=None)
@given(noise, noise, st.one_of(st.integers(2, 9), st.integers(12, 100)))
def test_scaled_updates_buy_no_extra_weight(n1: list[int], n2: list[int], scale: int) -> None:
    """[FED-REWARD.1] [FED-AGG.5] [FED-REWARD.7] Scaling an update (what an inflated sample
    count does in FedAvg) buys no weight: up to 9 × its FLTrust weight is the unscaled
    update's in every round; beyond 10 × the round's median norm it is a norm outlier,
    weight 0 in every round, and it is paid nothing."""
    base = {a(1): toy.honest(n1, 1), a(2): toy.honest(n2, 2), a(3): toy.honest()}
    big = {**base, a(3): toy.scaler(scale)}
    r1 = toy.run(Aggregation(FLTRUST), TARGET, base, 3, 1000, 0)
    r2 = toy.run(Aggregation(FLTRUST), TARGET, big, 3, 1000, 0)
    assert all(w[a(3)] > 0 for w in r1.weights)
    if scale <= 9:
        assert [w[a(3)] for w in r1.weights] == [w[a(3)] for w in r2.weights]
        # the others' weights move only with the model's rounding, so the pay barely moves
        assert abs(r2.payout.of(a(3)) - r1.payout.of(a(3))) <= 20
    else:
        assert [w[a(3)] for w in r2.weights] == [0, 0, 0]
        assert r2.payout.of(a(3)) == 0 and r2.payout.of(a(1)) > 0 and r2.payout.of(a(2)) > 0


def test_norm_outliers_by_hand() -> None:
    """[FED-REWARD.7] The median squared norm is taken over the positive weights only (here
    100, the lower median of 100, 100, 121, 10**6), and a squared norm above 100 × it gets
    weight 0; exactly 100 × keeps its weight; weight-0 updates do not move the median."""
    assert norm_outliers([5, 6, 7, 8], [100, 121, 100, 10**6]) == [5, 6, 7, 0]
    assert norm_outliers([5, 6, 7], [100, 100, 10_000]) == [5, 6, 7]
    assert norm_outliers([5, 6, 7], [100, 100, 10_001]) == [5, 6, 0]
    # three zero-weight (e.g. zero or opposed) updates of tiny norm cannot cut the honest two
    assert norm_outliers([0, 0, 0, 9, 9], [1, 1, 1, 400, 500]) == [0, 0, 0, 9, 9]
    assert norm_outliers([0, 0], [1, 2]) == [0, 0]
    with pytest.raises(FederatedError):
        norm_outliers([1, 2], [3])


def test_copy_discount_by_hand() -> None:
    """[FED-REWARD.8] Each positive weight is divided by 1 + its near-copies (pair trust >=
    COPY_TRUST); a pair just below the threshold is not a copy; weight-0 updates neither
    count nor change; the relation is not made transitive."""
    trusts = {(0, 1): COPY_TRUST, (0, 2): COPY_TRUST - 1, (1, 2): COPY_TRUST,
              (0, 3): TRUST_ONE, (1, 3): TRUST_ONE, (2, 3): TRUST_ONE}

    def pair(i: int, j: int) -> int:
        return trusts[i, j]

    # 0~1, 1~2, not 0~2; 3 has weight 0 and is ignored although parallel to everyone
    assert copy_discount([90, 90, 90, 0], pair) == [45, 30, 45, 0]
    assert copy_discount([7], lambda i, j: 0) == [7]
    assert copy_discount([7, 8], lambda i, j: 0) == [7, 8]
    assert copy_discount([7, 8], lambda i, j: TRUST_ONE) == [3, 4]


def test_job_outliers_by_hand() -> None:
    """[FED-REWARD.9] Mean weight over the scored rounds a participant appears in; the lower
    median M of the means; ``2 · mean < M`` is an outlier, whose weight counts as 0 in every
    round (and so earns it nothing, not even the leave-one-out pool). Unscored rounds
    (weight sum 0) do not count; joining late is no penalty; equal weights (private mode)
    make no outlier."""
    rounds = [{a(1): 100, a(2): 80, a(3): 60, a(4): 30},
              {a(1): 100, a(2): 80, a(3): 60, a(4): 29, a(5): 70},
              {a(1): 0, a(2): 0, a(3): 0, a(4): 0, a(5): 0}]
    # means: 100, 80, 60, 29 (59 // 2), 70; M = 70; 2 · 29 < 70, 2 · 60 >= 70
    assert job_outliers(rounds) == {a(4)}
    p = payout(1000, 500, rounds, 10, {a(i): 20 for i in range(1, 6)})
    assert p.of(a(4)) == 0 and all(p.of(a(i)) > 0 for i in (1, 2, 3, 5))
    assert sum(v for _, v in p.paid) + p.refund == 1000
    assert job_outliers([{a(1): 35, a(2): 70, a(3): 70}]) == set()
    assert job_outliers([{a(1): 34, a(2): 70, a(3): 70}]) == {a(1)}
    assert job_outliers([private_round_weights([a(1), a(2), a(3)])] * 3) == set()
    assert job_outliers([{a(1): 0}]) == set() and job_outliers([]) == set()


def test_copier_earns_nothing_and_duplicated_data_earns_less() -> None:
    """[FED-AGG.8] [FED-REWARD.3] A member copying another's update each round makes both
    earn 0; two members with the same data (alike, not identical updates) each earn less
    than a member with fresh data, because leaving either out barely changes the model."""
    same = [5, -3, 7]
    people = {a(1): toy.honest(same), a(2): toy.honest(same), a(3): toy.honest([1, 2, -4])}
    copied = toy.run(Aggregation(FLTRUST), TARGET, people, 3, 9000, 700)
    assert copied.payout.of(a(1)) == copied.payout.of(a(2)) == 0
    assert copied.payout.of(a(3)) == 9000
    # Duplicated data: the same direction, different noise; fresh data: another direction.
    dup = {a(1): toy.honest([3, 0, 1]), a(2): toy.honest([2, 1, 0]),
           a(3): lambda step, model, r: tuple(x + (300 if j == 0 else 0)
                                              for j, x in enumerate(step))}
    target = (4000, 0, 0, 0, 0, 0)
    res = toy.run(Aggregation(TRIMMED_MEAN, 0), target, dup, 3, 9000, 700)
    imp = {k: max(0, v - res.final_loss) for k, v in res.loo_losses.items()}
    assert imp[a(3)] > imp[a(1)] and imp[a(3)] > imp[a(2)]
    assert res.payout.of(a(3)) > res.payout.of(a(1))
    assert res.payout.of(a(3)) > res.payout.of(a(2))
