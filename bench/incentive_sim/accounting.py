"""From a run's tally to the figures: profit per job by strategy, and the honest guarantees.

profit = what the ledger left the member holding (balance + bond) minus what it
held at genesis, minus the work it paid for (training, evaluations). Under the
counterfactual 'vote-reward-1' the ledger's voter rewards (the challenge rule
[VOTE-REWARD.2]) are replaced, vote for vote, by what the rule it replaced,
[VOTE-REWARD.1], would have paid.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import fmean
from typing import Any

from bench.incentive_sim.world import MemberBook, Tally


def member_profit(book: MemberBook, rules: str) -> float:
    profit = book.end_wealth - book.start_wealth - book.train_cost - book.eval_cost
    if rules == "vote-reward-1":
        profit += book.counterfactual_voter_income - book.chain_voter_income
    return profit


@dataclass(frozen=True, slots=True)
class Summary:
    scenario: str
    profit_per_job: dict[str, float]
    """Strategy -> mean profit per job of one member using it."""
    profit_vs_honest: dict[str, float]
    """Strategy -> its profit per job minus the honest members' in the same run."""
    honest_slashed: int
    """Honest claims judged 'cheat' (and so banned)."""
    honest_bonds_lost: int
    """Credits of verifier bond honest voters forfeited."""
    honest_paid_share: float
    """Jobs with an honest claim whose bounty went to an honest claim."""
    honest_votes_paid_share: float
    """Honest opened votes that the reward rule paid."""
    verification: dict[str, float]
    outcomes: dict[str, int]
    settled: dict[str, int]
    rejected: dict[str, int]
    submitters: dict[str, dict[str, float]]
    banned: dict[str, int]
    """Strategy -> members of it banned by the end."""

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def summarise(tally: Tally) -> Summary:
    rules = tally.scenario.rules
    by_strategy: dict[str, list[float]] = {}
    banned: dict[str, int] = {}
    for book in tally.books.values():
        name = book.strategy.name
        by_strategy.setdefault(name, []).append(member_profit(book, rules) / tally.jobs)
        banned[name] = banned.get(name, 0) + (book.banned_at_job is not None)
    profit = {s: round(fmean(v), 4) for s, v in sorted(by_strategy.items())}
    honest = profit.get("honest", 0.0)
    vs = {s: round(p - honest, 4) for s, p in profit.items() if s != "honest"}
    econ = tally.scenario.economy
    rewards = tally.voter_rewards_paid if rules == "current" else \
        sum(b.counterfactual_voter_income for b in tally.books.values())
    verification = {
        "evaluations_per_job": round(tally.evaluations / tally.jobs, 3),
        "eval_cost_per_job": round(tally.evaluations * econ.eval_cost / tally.jobs, 3),
        "voter_rewards_per_job": round(rewards / tally.jobs, 3),
        "share_of_bounty": round(tally.evaluations * econ.eval_cost / tally.jobs
                                 / tally.scenario.voting.bounty, 4),
    }
    return Summary(
        scenario=tally.scenario.name, profit_per_job=profit, profit_vs_honest=vs,
        honest_slashed=tally.honest_slashed, honest_bonds_lost=tally.honest_bonds_lost,
        honest_paid_share=round(tally.honest_paid_jobs / tally.deserving_jobs, 4)
        if tally.deserving_jobs else 1.0,
        honest_votes_paid_share=round(tally.honest_votes_paid / tally.honest_votes, 4)
        if tally.honest_votes else 1.0,
        verification=verification, outcomes=dict(sorted(tally.outcomes.items())),
        settled=dict(sorted(tally.settled.items())), rejected=dict(sorted(tally.rejected.items())),
        submitters=tally.submitters, banned={k: v for k, v in sorted(banned.items()) if v})
