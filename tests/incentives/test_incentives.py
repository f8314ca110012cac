"""The protocol's economic promise, measured over the real ledger rules (issue 20).

A small seeded run of ``bench/incentives.py`` (every strategy alone, at the largest
share the verdict rules tolerate, and in coalitions, each beside the all-honest run
of the same seed) must show: no dishonest strategy earns what honest work earns,
honest winners are never slashed, honest work is always paid. The lazy voter, the
exception under the old [VOTE-REWARD.1] ([THREAT-LAZY.1]), must lose under the
challenge rule the ledger now pays by ([VOTE-CHALLENGE.1], [VOTE-REWARD.2]).
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from bench import incentives
from bench.incentive_sim.scenarios import LAZY, SINGLE, run_all, tolerated
from bench.incentive_sim.world import Scenario, World
from chain.train.rules import MAX_QUORUM_PERMILLE

JOBS, SEED = 60, 3


@pytest.fixture(scope="module")
def figures() -> dict[str, Any]:
    out, _, _ = incentives.measure(JOBS, SEED, quiet=True)
    return out


def v1_findings(figures: dict[str, Any]) -> list[str]:
    """Open findings on train/v1 jobs (the train/v3 ones are test_holdout_incentives.py's)."""
    return [k for k in figures["open_findings"] if not k.startswith("open/v3/")]


def test_the_entry_point_prints_one_json_object_last(capsys: pytest.CaptureFixture[str]) -> None:
    """``bench/incentives.py --jobs N --seed S``: one line per scenario, then the JSON."""
    assert incentives.main(["--jobs", "8", "--seed", "5"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    last = json.loads(lines[-1])
    assert {"profit_vs_honest", "honest_slashed", "honest_paid_share", "verification",
            "vote_reward_1"} <= set(last)
    assert len(lines) > len(SINGLE)  # the scenario lines came first


def test_every_dishonest_strategy_earns_less_than_honest_work(figures: dict[str, Any]) -> None:
    """Cheaters (insisting or withdrawing), copiers, withholding winners, lazy voters,
    griefers, withholding voters and submitters, sybils, exhausters and the cartel; on
    train/v3 jobs the overfitter, the finalist that never reveals, the submitters that
    withhold or mismatch the hidden part [HOLDOUT-FORFEIT.1], and the voters that skip the
    hidden evaluation or every evaluation [HOLDOUT-VOTE-REWARD.1]: each profit per job minus
    the honest strategy's is negative in the scenario most favourable to it. No finding is
    left open, on train/v1 or train/v3 jobs."""
    profit = figures["profit_vs_honest"]
    dishonest = set(SINGLE) | {"cartel", "withholding_submitter", "exhauster", "overfitter",
                               "finalist_noshow", "withholding_submitter_v3",
                               "mismatched_reveal", "hidden_liar", "lazy_v3"}
    assert set(LAZY) <= dishonest and not v1_findings(figures)
    assert figures["open_findings"] == {}
    assert dishonest <= set(profit)
    paying = {s: v for s, v in profit.items() if s in dishonest and not v < 0}
    assert not paying, f"dishonest strategies that pay: {paying}"


def test_honest_winners_are_never_slashed_and_honest_work_is_paid(
        figures: dict[str, Any]) -> None:
    """Within the tolerated share no honest claim is judged a cheat [VOTE-VERDICT.2], no
    honest verifier loses its bond [VOTE-NOSHOW.1], every job with an honest claim pays
    an honest claimer, and every honest vote is paid [VOTE-REWARD.1]. On train/v3 jobs
    (merged into the same figures) "paid" means the bounty went to a model that
    generalises: the hidden winner [HOLDOUT-WINNER.1]."""
    assert figures["honest_slashed"] == 0
    assert figures["honest_bonds_lost"] == 0
    assert figures["honest_paid_share"] == 1.0
    assert figures["honest_votes_paid_share"] == 1.0
    assert figures["vote_reward_1"]["honest_slashed"] == 0
    assert figures["vote_reward_1"]["honest_paid_share"] == 1.0
    assert figures["train_v3"]["honest_slashed"] == 0
    assert figures["train_v3"]["honest_paid_share"] == 1.0


def test_threat_lazy_1_the_lazy_voter_loses_under_the_wired_challenge_rule(
        figures: dict[str, Any]) -> None:
    """[THREAT-LAZY.1] [VOTE-REWARD.2] [VOTE-CHALLENGE.1] Closed: the ledger pays a turn's
    reward only to voters whose challenge answer (the model's loss on a subset the reveal's
    block picks) is in the agreeing group; a voter that votes "valid" echoing the claim
    without evaluating answers the claimed loss, lands outside it and earns less than an
    evaluating voter, alone and at the tolerated share. The same votes priced with the
    rule the challenge replaced, [VOTE-REWARD.1] (agreement with the verdict alone), pay
    the lazy voter more than honest voting: the challenge is what turned it negative."""
    for lazy in LAZY:
        assert figures["profit_vs_honest"][lazy] < 0, lazy
        assert figures["vote_reward_1"]["profit_vs_honest"][lazy] > 0, lazy


def test_threat_lazy_1_the_ledger_itself_refuses_the_lazy_voter_its_share() -> None:
    """[VOTE-REWARD.2] On the ledger's own balances (no side computation): in a run with
    one lazy_echo verifier, the ledger pays it no voter reward on an honest claim's turn,
    while every honest voter's vote is paid."""
    sc = Scenario("lazy", adversaries=(("lazy_echo", 1),))
    world = World(sc, 10, SEED)
    tally = world.run()
    lazy = next(b for b in tally.books.values() if b.strategy.name == "lazy_echo")
    honest = [b for b in tally.books.values() if b.strategy.name == "honest"]
    assert tally.outcomes == {"valid": 10}
    assert min(b.chain_voter_income for b in honest) > 0
    # An echo is paid only on the turns where the subset's loss happened to fall within
    # tolerance of the claim: far less than any evaluating voter earned.
    assert 2 * lazy.chain_voter_income < min(b.chain_voter_income for b in honest)
    assert tally.honest_votes_paid == tally.honest_votes > 0


def test_verification_costs_the_graph_what_the_voters_evaluate(figures: dict[str, Any]) -> None:
    """Every eligible voter and the claimer evaluate each verified model: with 12 members
    and one turn per job when all are honest, 12 evaluations per job (11 eligible voters
    and the claimer's own [VOTE-SELF.1]); the voters are paid at most the turn's reward."""
    cost = figures["verification"]
    assert cost["evaluations_per_job"] == 12
    assert cost["eval_cost_per_job"] == 12 * Scenario("x").economy.eval_cost
    assert 0 < cost["voter_rewards_per_job"] <= Scenario("x").voting.voter_reward


def test_the_simulation_drives_the_real_ledger() -> None:
    """Blocks are checked as a validator checks them (apply_block: tx root, re-execution,
    state root); the ledger's own rules reject the copier's reveal and the sybils'
    unadmitted identities; credits are conserved [BANK.1]."""
    sc = Scenario("check", adversaries=(("copier", 1), ("sybil", 1), ("cheater", 1)))
    world = World(sc, 12, SEED, verify_blocks=True)
    tally = world.run()
    assert tally.rejected.get("commitment_mismatch", 0) > 0  # a copier cannot open a copy
    assert tally.rejected.get("not_member", 0) > 0  # sybil identities cannot claim
    assert tally.rejected.get("not_eligible_voter", 0) > 0  # nor vote
    state = world.d.state
    assert state.total_credits() == state.supply
    assert tally.settled.get("paid", 0) == 12


def test_past_the_tolerated_share_the_guarantees_are_not_claimed() -> None:
    """One griefer more than the bound blocks the supermajority: the honest claims are no
    longer judged valid (the job is found broken instead). The bound is real, and the
    CI figures above are only claimed within it."""
    base = Scenario("beyond")
    f = tolerated(base.members, base.voting)
    assert f == 3  # 12 members: 11 eligible voters, 8 honest make a supermajority
    [inside, beyond] = run_all([Scenario("in", adversaries=(("griefer", f),)),
                                Scenario("out", adversaries=(("griefer", f + 1),))], 20, SEED)
    assert inside.summary.outcomes == {"valid": 20}
    assert inside.within_tolerance and not beyond.within_tolerance
    assert beyond.summary.outcomes.get("valid", 0) < 20


def test_threat_exhaust_1_sacrificial_cheaters_no_longer_use_up_a_jobs_turns(
        figures: dict[str, Any]) -> None:
    """[THREAT-EXHAUST.1] [JOB-TURN.1] Closed: ``max_turns`` members claim one job far below
    reach and insist; each is judged a cheat, banned and burned, and cheat verdicts no
    longer count against ``max_turns``, so the honest claim behind them is tried and paid.
    Honest work is paid on every job and the attack costs each attacker its balance."""
    sc = Scenario("exhauster x3", adversaries=(("exhauster", 3),))
    assert sc.voting.max_turns == 3
    [result] = run_all([sc], 12, SEED)
    assert result.summary.outcomes.get("cheat") == 3  # the three sacrificial turns
    assert result.summary.banned.get("exhauster") == 3
    assert result.summary.honest_paid_share == 1.0  # job 0's honest claim too
    assert result.summary.settled == {"paid": 12}
    assert result.summary.honest_slashed == 0
    assert result.profit_vs_honest["exhauster"] < 0
    # ... and in the seeded CI run, within the headline (no longer an open finding).
    assert figures["profit_vs_honest"]["exhauster"] < 0
    assert not v1_findings(figures)


def test_threat_quorum_1_a_unanimous_quorum_is_rejected_and_the_largest_allowed_does_not_pay(
        figures: dict[str, Any]) -> None:
    """[THREAT-QUORUM.1] [JOB-POST.1] Closed: the withholding submitter asks for a quorum of
    1000 permille so that one colluding verifier that withholds its vote could make every
    turn 'no quorum' after the model was revealed. The ledger rejects every such post
    (quorum_too_high): not one of its jobs is posted and the pair loses what honest work
    would have earned. At the largest quorum allowed (667) the same withholding verifier
    blocks nothing: every turn is judged valid, honest work is paid, and the pair loses."""
    jobs = 20
    [rejected, largest] = run_all(
        [Scenario(f"withholding_submitter/quorum {q} x1", adversaries=(("withholding_voter", 1),),
                  withholding_submitter=True,
                  submitter_voting=replace(Scenario("x").voting, quorum_permille=q))
         for q in (1000, MAX_QUORUM_PERMILLE)], jobs, SEED)
    assert rejected.summary.rejected.get("quorum_too_high") == jobs // 2  # every sub_b post
    assert rejected.summary.submitters["sub_b"]["credits_spent"] == 0
    assert rejected.summary.outcomes == {"valid": jobs // 2}  # sub_a's jobs only
    assert "no_quorum" not in largest.summary.outcomes
    assert largest.summary.outcomes == {"valid": jobs}
    for result in (rejected, largest):
        assert result.profit_vs_honest["withholding_submitter"] < 0
        assert result.summary.honest_paid_share == 1.0
        assert result.summary.honest_slashed == 0
    # ... and in the seeded CI run, within the headline (no longer an open finding).
    assert figures["profit_vs_honest"]["withholding_submitter"] < 0
    assert not any("quorum" in name for name in v1_findings(figures))
