"""Hidden test sets (train/v3) in the incentive simulation, over the real ledger rules.

Each strategy against its all-honest counterpart of the same seed: the overfitter wins
the public race and loses on the hidden part; a submitter that withholds or forges
the hidden part loses its deposit; honest winners are never slashed and the hidden
winner is paid; voters that skip the hidden evaluation earn less than honest ones. The
rules' ``before/`` scenarios (votes as before a rule) are asserted too, so the figures
show what each rule changed.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from bench.incentive_sim.holdout_agents import Submitter
from bench.incentive_sim.holdout_scenarios import HResult, headline, run_all, scenarios
from bench.incentive_sim.holdout_world import HoldoutScenario, HoldoutWorld
from chain.train.holdout.records import HoldoutStatus
from chain.train.holdout.rules import min_deposit

JOBS, SEED = 40, 3


@pytest.fixture(scope="module")
def results() -> dict[str, HResult]:
    return {r.name: r for r in run_all(scenarios(), JOBS, SEED)}


def test_the_overfitter_wins_the_public_race_and_loses_on_the_hidden_part(
        results: dict[str, HResult]) -> None:
    """[HOLDOUT-WINNER.1] [HOLDOUT-FINALIST.1] Alone, the overfitter's public claim ranks
    first and is judged valid (it is its true public loss: never slashed), but the honest
    finalist's hidden loss is lower: the overfitter is never paid and loses its training."""
    r = results["v3/overfitter/alone"]
    assert r.overfit_wins == 0
    assert r.profit_vs_honest["overfitter"] < 0
    assert r.honest_slashed == 0 and r.honest_paid_share == 1.0
    assert r.holdout == {"verified": JOBS}


def test_a_finalist_that_never_reveals_forfeits_its_turn(results: dict[str, HResult]) -> None:
    """[HOLDOUT-FINALIST.1] [JOB-REVEAL.1] Its turn ends 'forfeit', the next claim is judged
    and paid; keeping the model costs the training and earns no bounty."""
    for name in ("v3/finalist_noshow/alone", "v3/finalist_noshow/x3"):
        r = results[name]
        assert r.outcomes.get("forfeit", 0) > 0
        assert r.profit_vs_honest["finalist_noshow"] < 0
        assert r.honest_paid_share == 1.0 and r.honest_slashed == 0


@pytest.mark.parametrize(("name", "status"), [
    ("withholding_submitter_v3", "withheld"), ("mismatched_reveal", "rejected")])
def test_withholding_or_forging_the_hidden_part_burns_the_deposit(
        results: dict[str, HResult], name: str, status: str) -> None:
    """[HOLDOUT-FORFEIT.1] [HOLDOUT-JUDGE.1] With K = 2 finalists: every job of the deviating
    submitter ends with its holdout withheld (or rejected by the voters) and the deposit
    burned; the bounty is paid on the public ranking to an honest claim. Counting the value
    of the model it keeps, the submitter loses against submitting honestly."""
    r = results[f"v3/{name}"]
    assert r.holdout == {"verified": JOBS // 2, status: JOBS // 2}
    assert r.profit_vs_honest[name] < 0
    assert r.honest_paid_share == 1.0 and r.honest_slashed == 0


def test_the_headline_guarantees_hold_within_the_bound(results: dict[str, HResult]) -> None:
    """Outside the open findings: every dishonest train/v3 strategy is negative, no honest
    claim is slashed, honest work (the hidden winner) is paid on every job."""
    h = headline(list(results.values()))
    assert set(h["profit_vs_honest"]) == {"overfitter", "finalist_noshow", "hidden_liar",
                                          "lazy_v3", "withholding_submitter_v3",
                                          "mismatched_reveal"}
    assert h["open_findings"] == {}
    assert all(v < 0 for v in h["profit_vs_honest"].values()), h["profit_vs_honest"]
    assert h["honest_slashed"] == 0 and h["honest_paid_share"] == 1.0


@pytest.mark.parametrize("strategy", ["hidden_liar", "lazy_v3"])
def test_threat_holdout_reward_1_closed_votes_without_the_hidden_evaluation_lose(
        results: dict[str, HResult], strategy: str) -> None:
    """[THREAT-HOLDOUT-REWARD.1] closed by [HOLDOUT-CHALLENGE.1] [HOLDOUT-VOTE-REWARD.1]:
    honest holdout votes answer the turn's challenge on both parts, and only voters whose
    answers agree with theirs are paid. A voter that reports its public loss as the hidden
    one (its public answer as the hidden answer), or evaluates nothing (echoes the claim),
    is paid only when its guess lands in the group by luck: less than honest voting, alone
    and at the tolerated share; in the headline. Before the rule (``before/``: 7-element
    votes, [VOTE-REWARD.1]) the same strategies earned more than honest voting."""
    for size in ("alone", "x3"):
        after, before = results[f"v3/{strategy}/{size}"], results[f"before/v3/{strategy}/{size}"]
        assert after.profit_vs_honest[strategy] < 0 < before.profit_vs_honest[strategy]
        assert after.honest_paid_share == 1.0 and after.honest_slashed == 0
        assert after.holdout == {"verified": JOBS}
    h = headline(list(results.values()))
    assert h["profit_vs_honest"][strategy] < 0
    assert f"before/v3/{strategy}/alone" in h["before_holdout_vote_reward_1"]


def test_threat_holdout_crowd_1_closed_overfit_finalists_leave_their_slots(
        results: dict[str, HResult]) -> None:
    """[THREAT-HOLDOUT-CROWD.1] closed by [HOLDOUT-SLOT.1]: with K = 2 finalists and three
    overfitters among 12 members, an overfit finalist's hidden loss is far above its claim,
    so it does not fill a slot; the turns go on to the honest claims behind it, which are
    judged and paid on every job that has one (an overfitter can still win a job where
    every claim is overfit); overfitting loses, and the scenario is in the headline."""
    r = results["v3/overfitter/x3"]
    assert r.honest_paid_share == 1.0 and r.honest_slashed == 0
    assert r.profit_vs_honest["overfitter"] < 0
    h = headline(list(results.values()))
    assert h["profit_vs_honest"]["overfitter"] >= r.profit_vs_honest["overfitter"]
    assert "open/v3/overfitter/x3" not in h["open_findings"]


@pytest.mark.parametrize("name", ["withholding_submitter_v3", "mismatched_reveal"])
def test_threat_holdout_deposit_1_closed_forfeiting_loses_at_k_equal_max_turns(
        results: dict[str, HResult], name: str) -> None:
    """[THREAT-HOLDOUT-DEPOSIT.1] closed by [HOLDOUT-POST.1]: with K = max_turns = 3
    finalists an honest submitter pays three turns' voter rewards; withholding (or a forged
    part the voters reject) stops after one and saves two, but the deposit the ledger now
    requires (voter_reward x max_turns + 1 = 100) is more: the deviation loses, and it is
    in the headline."""
    r = results[f"v3/{name}/finalists 3"]
    assert r.profit_vs_honest[name] < 0
    assert r.honest_paid_share == 1.0 and r.honest_slashed == 0
    h = headline(list(results.values()))
    assert h["profit_vs_honest"][name] >= r.profit_vs_honest[name]
    assert not any(k.endswith("finalists 3") for k in h["open_findings"])


def test_the_simulation_posts_the_least_deposit_the_ledger_allows() -> None:
    """[HOLDOUT-POST.1] The scenario's deposit is the bound itself, so the closed finding
    is measured at its edge (tests/train/holdout/test_holdout.py: one credit less is refused)."""
    sc = HoldoutScenario("edge")
    assert sc.deposit == min_deposit(sc.voting.voter_reward, sc.voting.max_turns)


def test_the_v3_simulation_drives_the_real_ledger() -> None:
    """The split, finalists, holdout status and burned deposits are the ledger's: a
    mismatching submitter's holdouts are rejected by the honest voters' holdout votes, its
    deposits burned; credits are conserved [BANK.1]."""
    sc = replace(HoldoutScenario("check"), submitter=Submitter.MISMATCH)
    world = HoldoutWorld(sc, 6, SEED)
    tally = world.run()
    state = world.d.state
    assert state.total_credits() == state.supply
    assert state.burned == sc.deposit * 3  # sub_b posted 3 of the 6 jobs
    statuses = [h.status for j in world.info if (h := state.holdout(j)) is not None]
    assert statuses.count(HoldoutStatus.REJECTED) == 3
    assert tally.settled == {"paid": 6} and not tally.rejected
