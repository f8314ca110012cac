"""The aggregation rules, tried to break [FED-AGG.*] [FED-MODEL.3].

Property tests over small random rounds (hypothesis) for order independence,
ranges, robustness and FLTrust's trust; hand cases for ties, void rounds,
copies and attacks; and a float cross-check with numpy (tests only).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.federated.errors import FederatedError
from chain.federated.fixed import Q_MAX, rdiv
from chain.federated.fltrust import (
    TRUST_ONE,
    dot,
    fltrust,
    norm_factor,
    normalise,
    square_norm,
    trust,
)
from chain.federated.robust import median, trimmed_mean
from chain.federated.rounds import (
    FLTRUST,
    MEDIAN,
    TRIMMED_MEAN,
    Aggregation,
    RoundInput,
    aggregate_round,
    apply_aggregate,
    replay,
)

DIMS = 4
small = st.integers(-1000, 1000)
wide = st.integers(-Q_MAX, Q_MAX)


def vecs(n_min: int, n_max: int, values: st.SearchStrategy[int] = small,
         dims: int = DIMS) -> st.SearchStrategy[list[tuple[int, ...]]]:
    return st.lists(st.tuples(*[values] * dims), min_size=n_min, max_size=n_max)


def addr(i: int) -> bytes:
    return bytes([i]) * 20


def by_addr(vectors: list[tuple[int, ...]]) -> dict[bytes, tuple[int, ...]]:
    return {addr(i + 1): v for i, v in enumerate(vectors)}


SETTINGS = settings(max_examples=120, deadline=None)


@SETTINGS
@given(vecs(1, 9, wide), st.randoms(use_true_random=False))
def test_rules_ignore_the_order_of_updates(updates: list[tuple[int, ...]], rnd: object) -> None:
    """[FED-AGG.1] [FED-AGG.2] [FED-AGG.3] [FED-AGG.6] Permuting the updates (or the order a
    node happened to receive them) changes no aggregate, weight or rounding."""
    shuffled = list(updates)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    k = (len(updates) - 1) // 2
    assert trimmed_mean(shuffled, k) == trimmed_mean(updates, k)
    assert median(shuffled) == median(updates)
    ref = updates[0]
    assert fltrust(shuffled, ref)[0] == fltrust(updates, ref)[0]
    named = by_addr(updates)
    reversed_insertion = dict(reversed(list(named.items())))
    for agg in (Aggregation(TRIMMED_MEAN, k), Aggregation(MEDIAN), Aggregation(FLTRUST)):
        assert aggregate_round(agg, reversed_insertion, ref, DIMS) == \
            aggregate_round(agg, named, ref, DIMS)


@SETTINGS
@given(vecs(1, 11, wide), st.integers(0, 5))
def test_trimmed_mean_stays_within_min_and_max(updates: list[tuple[int, ...]], k: int) -> None:
    """[FED-AGG.2] Each coordinate of the trimmed mean lies within the values' [min, max]
    (so no clamp is ever needed), and equals the float reference exactly."""
    if len(updates) < 2 * k + 1:
        with pytest.raises(FederatedError):
            trimmed_mean(updates, k)
        return
    out = trimmed_mean(updates, k)
    a = np.array(updates, dtype=np.float64)
    ref = np.rint(np.sort(a, axis=0)[k:len(updates) - k].sum(axis=0) / (len(updates) - 2 * k))
    assert list(out) == [int(x) for x in ref]
    for j, col in enumerate(zip(*updates, strict=True)):
        assert min(col) <= out[j] <= max(col)


@SETTINGS
@given(vecs(1, 9), st.data())
def test_trimmed_mean_with_k_attackers_stays_in_the_honest_range(
        honest: list[tuple[int, ...]], data: st.DataObject) -> None:
    """[FED-AGG.2] With f <= k arbitrary attackers, every coordinate stays within the
    honest values' range, however extreme the attackers are."""
    f = data.draw(st.integers(0, len(honest) - 1))
    k = f + data.draw(st.integers(0, (len(honest) - f - 1) // 2))
    attackers = data.draw(vecs(f, f, wide))
    updates = honest + attackers
    assert len(updates) >= 2 * k + 1
    out = trimmed_mean(updates, k)
    for j, col in enumerate(zip(*honest, strict=True)):
        assert min(col) <= out[j] <= max(col)


@SETTINGS
@given(vecs(1, 9), st.data())
def test_median_with_a_minority_of_attackers_stays_in_the_honest_range(
        honest: list[tuple[int, ...]], data: st.DataObject) -> None:
    """[FED-AGG.3] With f < n/2 arbitrary attackers (n = honest + f), the median of each
    coordinate lies within the honest values' range, and equals numpy's median rounded
    half to even."""
    f = data.draw(st.integers(0, len(honest) - 1))
    attackers = data.draw(vecs(f, f, wide))
    updates = honest + attackers
    out = median(updates)
    assert list(out) == [int(x) for x in np.rint(np.median(np.array(updates, dtype=np.float64),
                                                           axis=0))]
    for j, col in enumerate(zip(*honest, strict=True)):
        assert min(col) <= out[j] <= max(col)


def test_median_and_trimmed_mean_by_hand() -> None:
    """[FED-AGG.2] [FED-AGG.3] Ties and even counts: the mean of the two middles rounds half
    to even; the trimmed mean drops exactly k from each end."""
    assert median([(1,), (2,)]) == (2,)      # 1.5 -> 2
    assert median([(2,), (3,)]) == (2,)      # 2.5 -> 2
    assert median([(-3,), (-2,)]) == (-2,)   # -2.5 -> -2
    assert median([(5,), (-100,), (7,)]) == (5,)
    assert trimmed_mean([(1,), (2,), (3,), (1000,)], 1) == (2,)   # (2+3)/2 = 2.5 -> 2
    assert trimmed_mean([(1,), (2,), (4,), (1000,)], 1) == (3,)
    assert trimmed_mean([(-9,), (1,), (1,), (2,), (9,)], 2) == (1,)
    assert trimmed_mean([(1,), (2,)], 0) == (2,)                  # the plain mean, 1.5 -> 2
    for bad in ([(1,)] * 2, []):
        with pytest.raises(FederatedError):
            trimmed_mean(bad, 1)
    with pytest.raises(FederatedError):
        median([(1, 2), (1,)])


@SETTINGS
@given(vecs(1, 1, wide), vecs(1, 1, wide), st.integers(1, 50))
def test_fltrust_trust_is_at_most_one_and_zero_for_the_opposite_direction(
        g: list[tuple[int, ...]], ref: list[tuple[int, ...]], scale: int) -> None:
    """[FED-AGG.4] Trust is in 0..2**16; 2**16 for the reference itself; 0 for its sign flip
    and for any update whose negation has positive trust; unchanged by scaling the update
    (no self-reported weight can be inflated by scaling); within one unit of the float
    ReLU(cos)."""
    u, r = g[0], ref[0]
    t = trust(u, r)
    assert 0 <= t <= TRUST_ONE
    if any(r):
        assert trust(r, r) == TRUST_ONE
        assert trust(tuple(-x for x in r), r) == 0
    if t > 0:
        assert trust(tuple(-x for x in u), r) == 0
    if all(abs(x) * scale <= Q_MAX for x in u):
        assert trust(tuple(x * scale for x in u), r) == t
    nu, nr = math.sqrt(square_norm(u)), math.sqrt(square_norm(r))
    if nu and nr:
        cos = max(0.0, dot(u, r) / (nu * nr))
        assert abs(t - cos * TRUST_ONE) <= 1.001


def test_trust_by_hand() -> None:
    """[FED-AGG.4] 45 degrees is floor(2**16 / sqrt 2) = 46340; orthogonal and zero are 0."""
    assert trust((1, 0), (1, 1)) == math.isqrt((1 << 32) // 2) == 46340
    assert trust((1, 0), (0, 5)) == 0
    assert trust((0, 0), (1, 1)) == 0 and trust((1, 1), (0, 0)) == 0
    assert trust((3, 4), (6, 8)) == TRUST_ONE


@SETTINGS
@given(vecs(1, 1, st.integers(-10**6, 10**6), 6), vecs(1, 1, st.integers(-10**6, 10**6), 6))
def test_normalisation_rescales_to_the_reference_norm(
        g: list[tuple[int, ...]], ref: list[tuple[int, ...]]) -> None:
    """[FED-AGG.5] The normalised update has the reference's norm within the rounding of
    one unit per coordinate, and points the same way (each coordinate keeps its sign)."""
    u, r = g[0], ref[0]
    if not any(u) or not any(r):
        return
    c = normalise(u, norm_factor(square_norm(u), square_norm(r)))
    assert abs(math.sqrt(square_norm(c)) - math.sqrt(square_norm(r))) <= math.sqrt(len(u)) + 1
    assert all(x * y >= 0 for x, y in zip(c, u, strict=True))
    with pytest.raises(FederatedError):
        norm_factor(0, 5)


def test_fltrust_sign_flipped_attacker_gets_trust_zero_and_changes_nothing() -> None:
    """[FED-AGG.6] [FED-AGG.4] An attacker sending an honest update negated (and scaled by
    100) has trust 0 and the aggregate is bit for bit the aggregate without it."""
    ref = (100, 50, -20, 0)
    honest = [(90, 60, -10, 5), (110, 40, -30, -5), (80, 55, -25, 2)]
    attacker = tuple(-100 * x for x in honest[0])
    agg, trusts = fltrust([*honest, attacker], ref)
    assert trusts[3] == 0 and all(t > 0 for t in trusts[:3])
    assert agg == fltrust(honest, ref)[0]


@SETTINGS
@given(vecs(1, 6, st.integers(-10**5, 10**5)), st.integers(2, 100))
def test_fltrust_scaling_attack_gains_nothing(updates: list[tuple[int, ...]],
                                              scale: int) -> None:
    """[FED-AGG.5] [FED-AGG.6] Scaling one update by up to 100 keeps its trust and moves
    the aggregate by at most the factor's rounding: 1 + scale·max|g|/2**32 per coordinate
    (at most 2 here), not by the scale."""
    ref = updates[0]
    scaled = [tuple(x * scale for x in updates[-1]), *updates[:-1]]
    a, ta = fltrust(updates, ref)
    b, tb = fltrust(scaled, ref)
    assert tb[0] == ta[-1]
    bound = 1 + math.ceil(scale * max(abs(x) for x in updates[-1]) / 2**32)
    assert all(abs(x - y) <= bound for x, y in zip(a, b, strict=True))


@SETTINGS
@given(vecs(1, 7, st.integers(-10**6, 10**6), 5), vecs(1, 1, st.integers(-10**6, 10**6), 5))
def test_fltrust_matches_float_fltrust(updates: list[tuple[int, ...]],
                                       ref: list[tuple[int, ...]]) -> None:
    """[FED-AGG.6] The exact aggregate equals numpy's float FLTrust (ReLU-cosine weights,
    updates rescaled to the reference norm) within the rounding of the trust units."""
    r = np.array(ref[0], dtype=np.float64)
    g = np.array(updates, dtype=np.float64)
    agg, trusts = fltrust(updates, ref[0])
    nr, ng = np.linalg.norm(r), np.linalg.norm(g, axis=1)
    if nr == 0 or sum(trusts) == 0:
        assert agg == (0,) * 5
        return
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where(ng > 0, g @ r / (ng * nr), 0.0)
        t = np.maximum(cos, 0.0)
        c = np.where(ng[:, None] > 0, g * (nr / ng)[:, None], 0.0)
    expected = (t[:, None] * c).sum(axis=0) / t.sum()
    slack = 1.5 + nr * len(updates) * 2.0 / (sum(trusts))
    assert np.all(np.abs(np.array(agg) - expected) <= slack), (agg, expected)


def test_copies_are_all_excluded() -> None:
    """[FED-AGG.8] Two addresses revealing the same vector both get weight 0 and neither
    enters the aggregate, under every rule; a zero update (a free-rider) has weight 0."""
    honest = {addr(1): (10, 20, 30, 40), addr(2): (12, 18, 33, 41), addr(3): (9, 22, 29, 38)}
    copied = {**honest, addr(4): (12, 18, 33, 41)}
    ref = (11, 19, 31, 40)
    for agg in (Aggregation(TRIMMED_MEAN, 0), Aggregation(MEDIAN), Aggregation(FLTRUST)):
        result = aggregate_round(agg, copied, ref, DIMS)
        assert set(result.duplicates) == {addr(2), addr(4)}
        assert result.weight_of(addr(2)) == result.weight_of(addr(4)) == 0
        without = {a: v for a, v in honest.items() if a != addr(2)}
        assert result.aggregate == aggregate_round(agg, without, ref, DIMS).aggregate
        free = aggregate_round(agg, {**honest, addr(5): (0, 0, 0, 0)}, ref, DIMS)
        assert free.weight_of(addr(5)) == 0 and addr(5) in free.rejected


def test_void_rounds_aggregate_to_zero() -> None:
    """[FED-AGG.1] Too few usable updates for the rule, or FLTrust without a reference: the
    aggregate is zero and every weight 0; bad inputs are refused with their data."""
    two = {addr(1): (1, 2, 3, 4), addr(2): (2, 3, 4, 5)}
    for agg, ref in ((Aggregation(TRIMMED_MEAN, 1), None), (Aggregation(FLTRUST), None)):
        result = aggregate_round(agg, two, ref, DIMS)
        assert result.aggregate == (0,) * DIMS and all(w == 0 for _, w in result.weights)
    assert aggregate_round(Aggregation(MEDIAN), {}, None, DIMS).aggregate == (0,) * DIMS
    with pytest.raises(FederatedError) as e:
        aggregate_round(Aggregation(MEDIAN), {addr(1): (1, 2, 3)}, None, DIMS)
    assert e.value.code == "bad_dims"
    with pytest.raises(FederatedError) as e:
        aggregate_round(Aggregation(MEDIAN), {b"short": (1, 2, 3, 4)}, None, DIMS)
    assert e.value.code == "bad_participant"
    with pytest.raises(FederatedError):
        aggregate_round(Aggregation(MEDIAN), {addr(i % 250 + 1) + bytes([i // 250]): (1,) * 4
                                              for i in range(257)}, None, DIMS)


def test_weights_reject_attackers_under_the_coordinate_rules() -> None:
    """[FED-AGG.7] Under the median and the trimmed mean a sign-flipped attacker disagrees
    with the robust aggregate: weight 0, rejected; honest updates keep positive weights."""
    honest = {addr(i): (100 + i, 50 - i, -20 + i, 7) for i in range(1, 6)}
    updates = {**honest, addr(9): (-5000, -2500, 1000, -350)}
    for agg in (Aggregation(MEDIAN), Aggregation(TRIMMED_MEAN, 1)):
        result = aggregate_round(agg, updates, None, DIMS)
        assert result.rejected == (addr(9),)
        assert all(result.weight_of(a) > 0 for a in honest)


def test_model_step_clamps_and_replay_leaves_one_out() -> None:
    """[FED-MODEL.3] new = clamp(old + aggregate); a replay without a participant
    re-aggregates every round without it, and without an unused one changes nothing."""
    assert apply_aggregate((Q_MAX - 1, -Q_MAX + 1, 5), (10, -10, -5)) == (Q_MAX, -Q_MAX, 0)
    with pytest.raises(FederatedError):
        apply_aggregate((1, 2), (1,))
    agg = Aggregation(FLTRUST)
    ref = (10, 10, 0, 0)
    rounds = [RoundInput({addr(1): (10, 8, 0, 1), addr(2): (-10, -10, 0, 0)}, ref),
              RoundInput({addr(1): (9, 11, 1, 0), addr(3): (20, 20, 0, 0)}, ref)]
    initial = (0, 0, 0, 0)
    full = replay(agg, initial, rounds)
    assert replay(agg, initial, rounds, without=addr(2)) == full   # trust 0 in its round
    assert replay(agg, initial, rounds, without=addr(1)) != full
    step1 = aggregate_round(agg, rounds[0].updates, ref, DIMS).aggregate
    step2 = aggregate_round(agg, rounds[1].updates, ref, DIMS).aggregate
    assert full == apply_aggregate(apply_aggregate(initial, step1), step2)


def test_rdiv_symmetry_makes_rules_odd() -> None:
    """[FED-AGG.2] [FED-AGG.3] [FED-AGG.6] Negating every update (and the reference)
    negates every aggregate exactly: ties round the same way on both sides."""
    ups = [(1, 2, -3, 5), (2, 3, -4, 6), (4, 7, 1, -1), (0, 1, 1, 2)]
    neg = [tuple(-x for x in u) for u in ups]
    assert trimmed_mean(neg, 1) == tuple(-x for x in trimmed_mean(ups, 1))
    assert median(neg) == tuple(-x for x in median(ups))
    assert fltrust(neg, neg[0])[0] == tuple(-x for x in fltrust(ups, ups[0])[0])
    assert rdiv(-7, 2) == -rdiv(7, 2)


def test_multi_krum_keeps_whole_updates_by_their_distances() -> None:
    """[FED-AGG.9] [FED-SPEC.2] Scores are the sums of the n - f - 2 smallest squared distances
    to the others; the n - f best scored are kept (ties by address order) and averaged; a
    flipped and a scaled update are left out whole; f = 0 is the plain mean; fewer than
    f + 3 updates are refused and make the round void; the wire carries f and bounds it; a
    job needs f + 4 participants (f + 3 without any one)."""
    from chain.errors import DecodeError
    from chain.federated.robust import krum_scores, krum_selected, multi_krum
    from chain.federated.rounds import MAX_KRUM_F, MULTI_KRUM
    from tests.federated.test_spec import spec

    honest = [(10, 20), (12, 18), (9, 22), (11, 19)]
    ups = [*honest, (-40, -80), (1100, 2000)]
    scores = krum_scores(ups, 2)
    assert scores[:4] == [2 + 5, 4 + 6, 5 + 13, 2 + 2]  # two nearest honest each
    assert krum_selected(scores, 2) == [0, 1, 2, 3]
    assert multi_krum(ups, 2) == (rdiv(42, 4), rdiv(79, 4))
    assert multi_krum(honest, 0) == trimmed_mean(honest, 0)
    assert krum_selected([3, 1, 3, 3], 2) == [0, 1]  # ties by index
    with pytest.raises(FederatedError):
        multi_krum(honest, 2)
    agg = Aggregation(MULTI_KRUM, 2)
    assert agg.needs == 5 and Aggregation.from_wire(agg.to_wire()) == agg
    named = {bytes([i + 1]) * 20: u for i, u in enumerate(honest)}
    assert aggregate_round(agg, named, None, 2).aggregate == (0, 0)  # void: 4 < 5
    with pytest.raises(FederatedError):
        Aggregation(MULTI_KRUM, MAX_KRUM_F + 1)
    with pytest.raises(DecodeError):
        Aggregation.from_wire([MULTI_KRUM, MAX_KRUM_F + 1])
    spec(aggregation=agg, min_participants=6)
    with pytest.raises(DecodeError) as e:
        spec(aggregation=agg, min_participants=5)
    assert "min_participants" in str(e.value)
