"""The numpy fast path equals the pure-Python reference bit for bit
[FED-QUANT.2] [FED-QUANT.3] [FED-QUANT.4] [FED-AGG.*] [FED-MODEL.3].

Property tests draw values that hit what can go wrong in int64: ties (few distinct
values), the range's ends ±(2**31 - 1), products past 2**63 (dot products of
extreme vectors, scaled coordinates with large norm factors), odd and even counts,
trims at 0 and at their largest; the committed vectors (federated.json) go through
the fast path too. The reference (robust.py, fltrust.py, rounds.py) is the spec's
executable definition; chain/federated/fast.py must never differ from it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.federated import fast, fast_exact
from chain.federated.blobs import ModelBlob
from chain.federated.errors import FederatedError
from chain.federated.fixed import Q_MAX, rdiv
from chain.federated.fltrust import dot, fltrust, normalise, square_norm, trust
from chain.federated.robust import krum_scores, median, multi_krum, trimmed_mean
from chain.federated.rounds import (
    CENTERED_CLIP,
    FLTRUST,
    MEDIAN,
    MULTI_KRUM,
    TRIMMED_MEAN,
    Aggregation,
    RoundInput,
    aggregate_round,
    replay,
)

VECTORS = json.loads((Path(__file__).resolve().parents[2] / "protocol_spec" / "vectors"
                      / "federated.json").read_text())
SETTINGS = settings(max_examples=150, deadline=None)
EDGES = [Q_MAX, -Q_MAX, Q_MAX - 1, -Q_MAX + 1, 0, 1, -1, 2, -2, 1 << 16, -(1 << 16),
         (1 << 16) - 1, 1 << 30, -(1 << 30)]
values = st.one_of(st.sampled_from(EDGES), st.integers(-Q_MAX, Q_MAX), st.integers(-3, 3))
"""Extremes, anything, and a narrow band that makes ties in sorting and rounding."""


@st.composite
def matrices(draw: st.DrawFn, n_min: int = 1, n_max: int = 9,
             dims_max: int = 6) -> list[tuple[int, ...]]:
    n = draw(st.integers(n_min, n_max))
    dims = draw(st.integers(1, dims_max))
    v = draw(st.sampled_from([values, st.integers(-3, 3), st.sampled_from(EDGES)]))
    return [tuple(draw(v) for _ in range(dims)) for _ in range(n)]


def hashlib_addr(name: str) -> bytes:
    """tests/federated/test_federated_vectors.py's ``addr``: the vectors' participant names."""
    import hashlib

    return hashlib.sha256(f"address:{name}".encode()).digest()[:20]


def arr(rows: list[tuple[int, ...]] | tuple[int, ...]) -> np.ndarray:
    return np.array(rows, dtype=np.int64)


@SETTINGS
@given(matrices(), st.data())
def test_trimmed_mean_fast_equals_reference(rows: list[tuple[int, ...]],
                                            data: st.DataObject) -> None:
    """[FED-AGG.2] [FED-QUANT.2] Every trim from 0 to its limit (n >= 2k + 1), odd and even
    n, ties and ±Q_MAX: the fast trimmed mean is the reference's, and one past the limit
    both refuse with too_few_updates."""
    n = len(rows)
    top = (n - 1) // 2
    for k in sorted({0, top, data.draw(st.integers(0, top))}):
        assert fast.trimmed_mean(arr(rows), k) == trimmed_mean(rows, k)
    for rule in (fast.trimmed_mean, trimmed_mean):
        with pytest.raises(FederatedError) as e:
            rule(rows, top + 1)
        assert e.value.code == "too_few_updates"


@SETTINGS
@given(matrices())
def test_median_fast_equals_reference(rows: list[tuple[int, ...]]) -> None:
    """[FED-AGG.3] Odd n (the middle value) and even n (rdiv of the two middles, ties to
    even, at ±Q_MAX too): the fast median is the reference's."""
    assert fast.median(arr(rows)) == median(rows)
    assert fast.median(rows) == median(rows)  # tuples go through check_vector


@SETTINGS
@given(matrices(1, 4, 8), st.integers(-Q_MAX, Q_MAX))
def test_exact_dots_equal_python_ints(rows: list[tuple[int, ...]], scale: int) -> None:
    """[FED-AGG.4] [FED-QUANT.4] Dot products and squared norms past 2**63 (extreme
    coordinates overflow int64 at 2 of them) are exact: the 16-bit split agrees with
    Python's unbounded ints."""
    m = arr(rows)
    b = np.clip(m[0] * 0 + scale, -Q_MAX, Q_MAX)
    assert fast.dots(m, b) == [dot(r, tuple(b.tolist())) for r in rows]
    assert fast.square_norms(m) == [square_norm(r) for r in rows]
    assert fast.dots(m, m[::-1].copy()) == [dot(r, s) for r, s in zip(rows, rows[::-1],
                                                                        strict=True)]


def test_dots_across_chunk_boundaries(monkeypatch: pytest.MonkeyPatch) -> None:
    """[FED-QUANT.4] The split path sums 2**24-column chunks; with chunks of 3 columns an
    extreme 10-column vector crosses three boundaries and is still exact, as is the
    int64 path on small values."""
    monkeypatch.setattr(fast_exact, "CHUNK", 3)  # where dots reads it
    rows = [tuple([Q_MAX] * 10), tuple([-Q_MAX, Q_MAX] * 5), tuple(range(-5, 5))]
    m = arr(rows)
    assert fast.square_norms(m) == [square_norm(r) for r in rows]
    assert fast.square_norms(m)[0] == 10 * Q_MAX ** 2 > 1 << 63
    assert fast.dots(m, m[1]) == [dot(r, rows[1]) for r in rows]


FACTORS = st.one_of(
    st.integers(0, (1 << 75) - 1),
    st.integers(0, 1 << 34),
    st.sampled_from([0, 1, (1 << 32) - 1, 1 << 32, (1 << 32) + 1, (1 << 33) - 1,
                     (3 << 31), (1 << 64) - 1, 1 << 64, (1 << 75) - 1, 1 << 31]))


@SETTINGS
@given(st.lists(values, min_size=1, max_size=8), FACTORS)
def test_normalise_fast_equals_reference(v: list[int], factor: int) -> None:
    """[FED-AGG.5] ``clamp(rdiv(v · f, 2**32))`` for factors up to 2**75 (products up to
    2**106), halves exactly representable (ties), and factors whose high part saturates
    only some coordinates: the int64 split is the reference's."""
    assert fast.to_tuple(fast.normalise_array(arr(tuple(v)), factor)) == \
        normalise(v, factor)


@SETTINGS
@given(matrices(1, 8, 5), st.data())
def test_fltrust_fast_equals_reference(rows: list[tuple[int, ...]],
                                       data: st.DataObject) -> None:
    """[FED-AGG.4] [FED-AGG.5] [FED-AGG.6] Trusts and aggregate equal the reference's for
    any updates and reference, including scaled and sign-flipped copies of the reference,
    zero vectors and extreme coordinates (dot products past 2**63)."""
    dims = len(rows[0])
    ref = data.draw(st.tuples(*[values] * dims))
    extra = [tuple(-x for x in ref), tuple(max(-Q_MAX, min(Q_MAX, 100 * x)) for x in ref),
             (0,) * dims]
    rows = rows + data.draw(st.lists(st.sampled_from(extra), max_size=3))
    assert fast.fltrust(arr(rows), arr(ref)) == fltrust(rows, ref)
    assert fast.trusts_against(arr(rows), arr(ref)) == [trust(r, ref) for r in rows]


RULES = [Aggregation(TRIMMED_MEAN, 0), Aggregation(TRIMMED_MEAN, 1),
         Aggregation(TRIMMED_MEAN, 2), Aggregation(MEDIAN), Aggregation(FLTRUST),
         Aggregation(MULTI_KRUM, 0), Aggregation(MULTI_KRUM, 1), Aggregation(MULTI_KRUM, 2),
         Aggregation(CENTERED_CLIP, 0), Aggregation(FLTRUST, 1)]


@SETTINGS
@given(matrices(3, 9), st.integers(0, 3))
def test_multi_krum_fast_equals_reference(rows: list[tuple[int, ...]], f: int) -> None:
    """[FED-AGG.9] Scores (squared distances from exact dot products, extremes included),
    the selection with its ties by index, and the mean of the kept rows equal the
    reference's; too few rows for f are refused alike."""
    if len(rows) < f + 3:
        with pytest.raises(FederatedError):
            multi_krum(rows, f)
        with pytest.raises(FederatedError):
            fast.multi_krum(arr(rows), f)
        return
    assert fast.krum_scores_array(arr(rows), f) == krum_scores(rows, f)
    assert fast.multi_krum(arr(rows), f) == multi_krum(rows, f)


@SETTINGS
@given(matrices(0, 9, 5), st.sampled_from(RULES), st.data())
def test_aggregate_round_fast_equals_reference(rows: list[tuple[int, ...]], agg: Aggregation,
                                               data: st.DataObject) -> None:
    """[FED-AGG.1] [FED-AGG.7] [FED-AGG.8] [FED-REWARD.10] [FED-REWARD.11] A whole round:
    copies (all senders excluded), replays of earlier updates (left out), running sums
    (near-copies by history),
    void rounds (too few updates, no reference), weights against the aggregate or the
    reference: aggregate, weights and duplicates equal the reference's, whatever the
    arrays' integer dtype."""
    dims = len(rows[0]) if rows else 3
    if rows and data.draw(st.booleans()):
        rows = [*rows, rows[data.draw(st.integers(0, len(rows) - 1))]]
    ref = data.draw(st.one_of(st.none(), st.tuples(*[values] * dims)))
    center = data.draw(st.one_of(st.none(), st.tuples(*[values] * dims)))
    earlier = [tuple(max(-Q_MAX, min(Q_MAX, x + data.draw(st.integers(-2, 2)))) for x in r)
               for r in rows if data.draw(st.booleans())]  # replays within 1, and not
    updates = {bytes([i + 1]) * 20: r for i, r in enumerate(rows)}
    history = {a: tuple(data.draw(values) * data.draw(st.integers(1, 3)) for _ in range(dims))
               for a in updates if data.draw(st.booleans())}  # running sums [FED-REWARD.11]
    want = aggregate_round(agg, updates, ref, dims, center, earlier, history)
    arrays = {a: np.array(v, dtype=data.draw(st.sampled_from([np.int64, np.int32])))
              for a, v in updates.items()}
    got_arr, got = fast.aggregate_round_array(agg, arrays, None if ref is None else arr(ref),
                                              dims, None if center is None else arr(center),
                                              earlier, history)
    assert got == want
    assert fast.to_tuple(got_arr) == want.aggregate
    assert fast.aggregate_round(agg, updates, ref, dims, center, earlier, history) == want


@SETTINGS
@given(st.lists(st.integers(-(1 << 20), 1 << 20), min_size=2, max_size=6),
       st.lists(st.lists(st.integers(-300, 300), min_size=6, max_size=6), min_size=2,
                max_size=7),
       st.integers(1, 5000), st.sampled_from(RULES), st.data())
def test_reward_weight_steps_fast_equal_reference(base: list[int], noise: list[list[int]],
                                                  scale: int, agg: Aggregation,
                                                  data: st.DataObject) -> None:
    """[FED-REWARD.7] [FED-REWARD.8] Rounds built to trigger the reward steps: updates near
    one direction (near-copies sharing weights), one of them scaled by up to 5000 (a norm
    outlier past 10 ×), extremes in the split dot-product path: the fast weights equal the
    reference's, and a copy-discounted or cut weight does happen."""
    dims = len(base)
    rows = [tuple(b + n[j] for j, b in enumerate(base)) for n in noise]
    rows.append(tuple(max(-Q_MAX, min(Q_MAX, scale * b)) for b in base))
    if data.draw(st.booleans()):
        rows.append(tuple(data.draw(st.sampled_from(EDGES)) for _ in range(dims)))
    updates = {bytes([i + 1]) * 20: r for i, r in enumerate(rows)}
    ref = tuple(base)
    want = aggregate_round(agg, updates, ref, dims)
    got = fast.aggregate_round(agg, {a: arr(v) for a, v in updates.items()}, arr(ref), dims)
    assert got == want


def test_reward_weight_steps_happen() -> None:
    """[FED-REWARD.7] [FED-REWARD.8] Three near-parallel honest updates share their weights
    three ways and a ×100 copy of one is cut to 0, on both paths and under every rule."""
    base = (4000, -2400, 800, 1600, -3200, 120)
    rows = [tuple(x + d for x in base) for d in (0, 7, -5)] + [tuple(100 * x for x in base)]
    updates = {bytes([i + 1]) * 20: r for i, r in enumerate(rows)}
    for agg in RULES:
        if agg.needs > len(rows):
            continue  # a void round
        want = aggregate_round(agg, updates, base, len(base))
        got = fast.aggregate_round(agg, {a: arr(v) for a, v in updates.items()}, arr(base),
                                   len(base))
        assert got == want
        w = [v for _, v in want.weights]
        assert w[3] == 0 and all(0 < x <= (1 << 16) // 3 for x in w[:3]), (agg, w)


@SETTINGS
@given(st.lists(st.integers(-(1 << 55), 1 << 55), min_size=1, max_size=20),
       st.integers(1, 1 << 24))
def test_vector_rdiv_equals_reference(ns: list[int], d: int) -> None:
    """[FED-QUANT.2] Element-wise rdiv (floor divmod, ties to even) over the sums the rules
    divide (< 2**56), including exact halves: the reference's, value by value."""
    ns = [*ns, d // 2, -(d // 2), 3 * d // 2, -(3 * d // 2), d, -d]
    assert fast.rdiv(arr(tuple(ns)), d).tolist() == [rdiv(n, d) for n in ns]


def test_fast_inputs_are_refused_like_the_reference() -> None:
    """[FED-QUANT.3] -2**31, 2**31, floats and wrong lengths are refused with the
    reference's codes; a uint64 array beyond Q_MAX is not wrapped into range."""
    bad = [(np.array([1, -(1 << 31)], dtype=np.int64), "bad_coordinate"),
           (np.array([1, 1 << 31], dtype=np.int64), "bad_coordinate"),
           (np.array([1, 1 << 63], dtype=np.uint64), "bad_coordinate"),
           (np.array([0.5, 1.0]), "bad_coordinate"),
           (np.array([[1, 2]]), "bad_coordinate"),
           (np.zeros(3, dtype=np.int64), "bad_dims")]
    for v, code in bad:
        with pytest.raises(FederatedError) as e:
            fast.as_vector(v, "update", 2)
        assert e.value.code == code, (v, e.value)
    with pytest.raises(FederatedError) as e:
        fast.as_vector([1, 2.0], "update")
    assert e.value.code == "bad_coordinate"
    with pytest.raises(FederatedError) as e:
        fast.aggregate_round(Aggregation(MEDIAN), {b"short": np.ones(2, dtype=np.int64)},
                             None, 2)
    assert e.value.code == "bad_participant"


def _names(entries: list[dict[str, Any]]) -> dict[str, bytes]:
    return {e["name"]: bytes.fromhex(e["address"]) for e in entries}


def test_committed_vectors_pass_through_the_fast_path() -> None:
    """[FED-AGG.2] [FED-AGG.3] [FED-AGG.4] [FED-AGG.5] [FED-AGG.6] [FED-AGG.7] [FED-AGG.8]
    [FED-AGG.10] [FED-AGG.11] [FED-MODEL.3] [FED-MODEL.2] federated.json's trimmed means,
    medians, centered clipping, FLTrust round (each
    update's squared norm, trust and normalised vector) and the six-update rounds under
    each rule (weights, copies, model step and hash) come out of the fast path unchanged."""
    agg = VECTORS["aggregation"]
    for c in agg["trimmed_mean"]:
        assert list(fast.trimmed_mean(arr(c["updates"]), c["trim"])) == c["aggregate"]
    for c in agg["median"]:
        assert list(fast.median(arr(c["updates"]))) == c["aggregate"]
    rp = agg["replays"]
    got_rp = fast.aggregate_round(Aggregation(*rp["rule"]),
                                  {hashlib_addr(n): arr(u) for n, u in rp["updates"].items()},
                                  None, 4, None, arr(rp["earlier"]))
    assert list(got_rp.aggregate) == rp["aggregate"]
    assert sorted(got_rp.replays) == sorted(hashlib_addr(n) for n in rp["replays"])
    for c in agg["centered_clip"]:
        if "step" in c:
            assert fast.model_step_array(arr(c["model_before"]),
                                         arr(c["model_after"])).tolist() == c["step"]
            continue
        assert list(fast.centered_clip(arr(c["updates"]), arr(c["center"]))) == c["aggregate"]
    fl = agg["fltrust"]
    ref = arr(fl["reference"])
    assert fast.square_norm(ref) == fl["reference_square_norm"]
    for u in fl["updates"]:
        v = arr(u["update"])
        assert fast.square_norm(v) == u["square_norm"]
        assert fast.trusts_against(v[None, :], ref) == [u["trust"]]
        if u["trust"]:
            assert fast.normalise_array(v, int(u["norm_factor"])).tolist() == u["normalised"]
    names = _names(fl["round"]["weights"])
    got = fast.aggregate_round(Aggregation(FLTRUST),
                               {names[u["name"]]: arr(u["update"]) for u in fl["updates"]},
                               ref, len(ref))
    assert list(got.aggregate) == fl["round"]["aggregate"]
    assert dict(got.weights) == {names[w["name"]]: w["weight"] for w in fl["round"]["weights"]}
    inputs, cases = agg["rounds"][0], agg["rounds"][1:]
    assert cases
    for case in cases:
        names = _names(case["weights"])
        updates = {names[n]: arr(u) for n, u in inputs["updates"].items()}
        aggregate, result = fast.aggregate_round_array(
            Aggregation(*case["rule"]), updates, arr(inputs["reference"]), 4,
            arr(case["center"]) if "center" in case else None)
        assert list(result.aggregate) == case["aggregate"]
        assert dict(result.weights) == {names[w["name"]]: w["weight"] for w in case["weights"]}
        assert sorted(result.duplicates) == sorted(names[n] for n in case["duplicates"])
        assert sorted(result.rejected) == sorted(names[n] for n in case["rejected"])
        after = fast.apply_aggregate_array(arr(case["model_before"]), aggregate)
        assert after.tolist() == case["model_after"]
        assert ModelBlob(16, fast.to_tuple(after)).hash().hex() == case["model_hash_after"]


@settings(max_examples=60, deadline=None)
@given(st.lists(matrices(3, 6, 3), min_size=1, max_size=3), st.sampled_from(RULES),
       st.tuples(*[values] * 3), st.data())
def test_replay_fast_equals_reference(rounds: list[list[tuple[int, ...]]], agg: Aggregation,
                                      initial: tuple[int, ...], data: st.DataObject) -> None:
    """[FED-MODEL.3] [FED-REWARD.2] Several rounds stepped from an initial model near ±Q_MAX
    (clamped steps), with and without one participant (leave-one-out): the fast replay
    is the reference's model."""
    inputs = []
    for rows in rounds:
        rows3 = [(r * 3)[:3] for r in rows]
        ref = data.draw(st.one_of(st.none(), st.tuples(*[values] * 3)))
        inputs.append(RoundInput({bytes([i + 1]) * 20: r for i, r in enumerate(rows3)}, ref))
    without = data.draw(st.one_of(st.none(), st.just(bytes([1]) * 20)))
    assert fast.replay(agg, initial, inputs, without) == replay(agg, initial, inputs, without)


def test_fed_agg_4_float_products_are_exact_across_column_blocks() -> None:
    """[FED-AGG.4] The Gram and cross products that the rewards' trusts read, built from
    float64 column blocks, equal the exact integer products at the largest magnitudes the
    float path admits (``max|x|**2 · dims < 2**53``), with a partial last block."""
    rng = np.random.default_rng(7)
    dims = 2 * fast_exact.GRAM_COLUMNS + 123
    bound = math.isqrt((fast_exact.FLOAT_EXACT - 1) // dims)
    a = rng.integers(-bound, bound + 1, size=(5, dims), dtype=np.int64)
    a[0, :] = bound  # the extreme: every partial sum of row 0's square is at its largest
    b = rng.integers(-bound, bound + 1, size=(3, dims), dtype=np.int64)
    gram, cross = fast_exact.float_products(a, b)
    exact_a, exact_b = a.astype(object), b.astype(object)
    assert gram.tolist() == (exact_a @ exact_a.T).tolist()
    assert cross is not None and cross.tolist() == (exact_a @ exact_b.T).tolist()
    assert int(gram[0, 0]) == bound * bound * dims
    assert fast_exact.float_products(a)[1] is None
