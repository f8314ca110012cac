"""The aggregation rules on real data (bench/federated.py, digits, 6 non-IID owners).

Evidence, not a unit check: a logistic regression trained federatedly through
chain/federated's exact rules learns, a sign-flipping owner wrecks the plain
mean but not FLTrust, and the bounty split pays the flipper almost nothing.
Thresholds are wide (float local training may differ across machines); the
figures are printed.
"""

from __future__ import annotations

from bench.federated import OWNERS, load, rewards, run

ROUNDS = 6


def test_fltrust_learns_and_resists_a_sign_flipper_that_wrecks_the_mean() -> None:
    """[FED-AGG.6] [FED-AGG.2] [FED-MODEL.3] [FED-REWARD.5] Clean FLTrust accuracy rises
    above 0.9; with one owner sending -5 × its update, FLTrust ends within 2 points of
    clean while the plain mean falls below 0.5; the flipper earns under 1 % of the bounty
    and less than every honest owner, and the payments sum to the bounty."""
    data = load("digits", 1)
    clean = run(data, "fltrust", 0, ROUNDS)
    attacked = run(data, "fltrust", 1, ROUNDS)
    mean = run(data, "mean", 1, ROUNDS)
    print("clean fltrust", clean["accuracy"])
    print("1 flipper fltrust", attacked["accuracy"])
    print("1 flipper mean", mean["accuracy"])
    assert clean["accuracy"][-1] > clean["accuracy"][0] and clean["accuracy"][-1] > 0.9
    assert attacked["accuracy"][-1] >= clean["accuracy"][-1] - 0.02
    assert mean["accuracy"][-1] < 0.5
    paid = rewards(data, "fltrust", attacked["_state"], 1_000_000)
    print("rewards", paid)
    flipper = paid["paid"][f"owner{OWNERS}"]
    assert sum(paid["paid"].values()) + paid["refund"] == 1_000_000
    assert flipper < 10_000
    assert all(paid["paid"][f"owner{i}"] > flipper for i in range(1, OWNERS))
