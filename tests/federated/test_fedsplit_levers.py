"""The split levers bench/fedsplit.py measures (issue 49 §2): least-squares and Shapley
round weights (bench/support/fedweights.py) and a moved near-copy threshold."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from bench import fedsplit
from bench.support import fedattacks, fedsim, fedweights
from bench.support.fedweights import (
    MIX_UNIT,
    SCALE,
    mixed_weights,
    nnls_weights,
    shapley_weights,
)
from chain.federated import job_copies, rewards

RNG = np.random.default_rng(49)
DIMS = 400


def _vec(scale: float = 10_000.0) -> np.ndarray:
    return np.rint(RNG.normal(size=DIMS) * scale).astype(np.int64)


def test_copies_of_one_update_share_the_coefficient_one_address_would_get() -> None:
    u = _vec()
    alone = nnls_weights({b"a": u}, u, {b"a": 1})
    assert abs(alone[b"a"] - SCALE) <= 1
    noise = [_vec(3_000.0) for _ in range(3)]
    split = {bytes([65 + i]): u + n for i, n in enumerate(noise)}
    shared = nnls_weights(split, u, dict.fromkeys(split, 1))
    assert 0 < sum(shared.values()) <= alone[b"a"]  # k copies: one share, noise costs it
    assert all(w > 0 for w in shared.values())


def test_owners_of_different_directions_keep_their_own_coefficients() -> None:
    u1, u2 = _vec(), _vec()
    got = nnls_weights({b"x": u1, b"y": u2}, u1 + 2 * u2, {b"x": 5, b"y": 5})
    assert abs(got[b"x"] - SCALE) < SCALE // 100
    assert abs(got[b"y"] - 2 * SCALE) < SCALE // 100


def test_an_update_the_rule_left_at_weight_0_stays_0_and_is_not_fitted() -> None:
    u = _vec()
    got = nnls_weights({b"good": u, b"out": u}, u, {b"good": 3, b"out": 0})
    assert got[b"out"] == 0
    assert abs(got[b"good"] - SCALE) <= 1
    assert nnls_weights({b"out": u}, u, {b"out": 0}) == {b"out": 0}


def test_a_chain_share_pays_an_owner_the_fit_leaves_out() -> None:
    u = _vec()
    updates = {b"fit": u, b"left": u + _vec(20_000.0)}
    chain_weights = {b"fit": 30_000, b"left": 10_000}
    assert nnls_weights(updates, u, chain_weights)[b"left"] < SCALE // 100
    got = mixed_weights(0.1)(updates, u, chain_weights)
    assert got[b"left"] >= round(0.1 * 0.25 * MIX_UNIT) - 1  # its share of the chain's tenth
    assert abs(sum(got.values()) - MIX_UNIT) <= 2


def test_lifting_job_outliers_applies_inside_and_is_undone() -> None:
    before = rewards.job_outliers, fedsim.job_outliers
    low = [{b"a": 100, b"b": 100, b"c": 1}]
    assert rewards.job_outliers(low) == {b"c"}
    with fedsplit.without_job_outliers(True):
        assert rewards.job_outliers(low) == set() == fedsim.job_outliers(low)
    with fedsplit.without_job_outliers(False):
        assert rewards.job_outliers(low) == {b"c"}
    assert (rewards.job_outliers, fedsim.job_outliers) == before


def test_copy_trust_moves_every_reader_of_the_threshold_and_puts_it_back() -> None:
    before = rewards.COPY_TRUST
    with fedsplit.copy_trust(0.7):
        assert rewards.COPY_TRUST == job_copies.COPY_TRUST == fedattacks.COPY_TRUST == 45875
    assert rewards.COPY_TRUST == job_copies.COPY_TRUST == fedattacks.COPY_TRUST == before
    with pytest.raises(RuntimeError), fedsplit.copy_trust(0.6):
        raise RuntimeError("a failed run")
    assert before == rewards.COPY_TRUST


def test_fedsplit_quick_with_both_levers_reports_them(capsys: pytest.CaptureFixture[str]) -> None:
    fedsplit.main(["--quick", "--seeds", "1", "--round-weights", "nnls", "--copy-trust", "0.7",
                   "--chain-share", "0.1", "--without-job-outliers"])
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["round_weights"] == "nnls"
    assert last["copy_trust"] == 0.7
    assert last["chain_share"] == 0.1
    assert last["job_outliers"] is False
    assert 0 <= last["honest_unpaid"] <= 10
    assert set(last["gain_fixed"]) == {"2", "3", "5"}
    assert rewards.COPY_TRUST == 52429


def _permutation_shapley(updates: list[np.ndarray], ref: np.ndarray) -> list[float]:
    """Shapley values by their definition (each order of arrival, the marginal gain of
    ``U(S) = ‖r‖² − ‖r − mean(S)‖²``): an independent check of the subset sum."""
    def utility(members: tuple[int, ...]) -> float:
        if not members:
            return 0.0
        mean = np.mean([updates[i] for i in members], axis=0)
        return float(ref @ ref - (ref - mean) @ (ref - mean))
    n = len(updates)
    phi = [0.0] * n
    orders = list(itertools.permutations(range(n)))
    for order in orders:
        for k, i in enumerate(order):
            phi[i] += utility(tuple(sorted(order[:k + 1]))) - utility(tuple(sorted(order[:k])))
    return [v / len(orders) for v in phi]


def test_shapley_weights_are_the_shapley_values_of_the_round_game_paid_as_shares() -> None:
    ref = _vec().astype(np.float64)
    updates = [ref + _vec(8_000.0), ref + _vec(12_000.0), 0.5 * ref + _vec(5_000.0),
               -ref + _vec(1_000.0)]
    ints = [np.rint(u).astype(np.int64) for u in updates]
    names = [b"a", b"b", b"c", b"d"]
    got = shapley_weights(dict(zip(names, ints, strict=True)), np.rint(ref).astype(np.int64),
                          dict.fromkeys(names, 1))
    phi = _permutation_shapley([u.astype(np.float64) for u in ints], np.rint(ref))
    assert phi[3] < 0 and got[b"d"] == 0  # away from the owner's direction: paid nothing
    positive = sum(max(v, 0.0) for v in phi)
    for name, value in zip(names[:3], phi[:3], strict=True):
        assert abs(got[name] - value / positive * MIX_UNIT) <= 2
    assert abs(sum(got.values()) - MIX_UNIT) <= 3


def test_shapley_weights_leave_out_addresses_at_weight_0() -> None:
    u = _vec()
    got = shapley_weights({b"in": u, b"out": u}, u, {b"in": 1, b"out": 0})
    assert got == {b"in": MIX_UNIT, b"out": 0}


def test_sampled_shapley_estimates_the_exact_values_past_the_exact_bound() -> None:
    """Above ``EXACT_SHAPLEY_MAX`` addresses the values are sampled from orders of arrival;
    on 10 addresses, where both run, the estimate is within a few percent of the sum."""
    ref = _vec().astype(np.float64)
    ups = np.stack([ref * RNG.uniform(-0.5, 1.5) + _vec(9_000.0) for _ in range(10)])
    exact = fedweights._exact_shapley(ups, ref)
    sampled = fedweights._sampled_shapley(ups, ref)
    scale = float(np.abs(exact).sum())
    assert float(np.abs(sampled - exact).max()) < 0.05 * scale
    assert abs(float(sampled.sum()) - float(exact.sum())) < 1e-6 * scale  # efficiency
    many = {bytes([i]): _vec() for i in range(fedweights.EXACT_SHAPLEY_MAX + 3)}
    got = shapley_weights(many, _vec(), dict.fromkeys(many, 1))
    assert abs(sum(got.values()) - MIX_UNIT) <= len(many)
