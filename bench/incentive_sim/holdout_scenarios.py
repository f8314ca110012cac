"""train/v3 scenarios: each hidden-test-set deviation beside the all-honest run of its seed.

As scenarios.py: the same seed draws the same jobs, workers, losses and noise, so
a deviating member's profit minus its profit when honest is what deviating is
worth (minus what every honest member gained or lost meanwhile). A deviating
submitter is the second one; its worth is its profit change minus the honest
first submitter's, per job it posted, counting the value of the best model it
received on each job (an overfit model is worth less: it does not generalise).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from statistics import fmean
from typing import Any

from bench.incentive_sim.holdout_agents import Submitter
from bench.incentive_sim.holdout_world import HBook, HoldoutScenario, HTally, run_holdout
from bench.incentive_sim.scenarios import tolerated

MEMBER_STRATEGIES = ("overfitter", "finalist_noshow", "hidden_liar", "lazy_v3")
SUBMITTERS = {"withholding_submitter_v3": Submitter.WITHHOLD,
              "mismatched_reveal": Submitter.MISMATCH}
OPEN: tuple[str, ...] = ()
"""Strategies of open findings: their scenarios are named ``open/...``, reported apart from
the headline's guarantees. None left: [THREAT-HOLDOUT-REWARD.1] is closed."""
BEFORE = ("hidden_liar", "lazy_v3")
"""[THREAT-HOLDOUT-REWARD.1], closed by [HOLDOUT-VOTE-REWARD.1]: these also run with holdout
votes as before the rule (no hidden challenge answers, paid by [VOTE-REWARD.1]), named
``before/...`` and kept out of the headline, to show what the rule changed."""


def profit(book: HBook) -> float:
    return book.end_wealth - book.start_wealth - book.train_cost - book.eval_cost


@dataclass(frozen=True, slots=True)
class HResult:
    name: str
    profit_vs_honest: dict[str, float]
    honest_slashed: int
    honest_paid_share: float
    within_tolerance: bool
    outcomes: dict[str, int]
    holdout: dict[str, int]
    settled: dict[str, int]
    overfit_wins: int
    submitters: dict[str, dict[str, float]]

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


BASE = HoldoutScenario("v3")


def scenarios(base: HoldoutScenario = BASE) -> list[HoldoutScenario]:
    """Each member strategy alone and at the tolerated share; each submitter strategy with
    K = 2 finalists and with K = max_turns = 3."""
    f = tolerated(base.members, base.voting)
    out = []
    for s in MEMBER_STRATEGIES:
        prefix = "open/v3" if s in OPEN else "v3"
        out.append(replace(base, name=f"{prefix}/{s}/alone", adversaries=((s, 1),)))
        # [THREAT-HOLDOUT-CROWD.1], closed by [HOLDOUT-SLOT.1]: overfit finalists no longer
        # fill the K slots, so the honest claim behind them is judged and paid.
        out.append(replace(base, name=f"{prefix}/{s}/x{f}", adversaries=((s, f),)))
        if s in BEFORE:
            out += [replace(base, name=f"before/v3/{s}/{size}", adversaries=((s, n),),
                            hidden_challenge=False) for size, n in (("alone", 1), (f"x{f}", f))]
    out += [replace(base, name=f"v3/{s}", submitter=p) for s, p in SUBMITTERS.items()]
    # [THREAT-HOLDOUT-DEPOSIT.1], closed by [HOLDOUT-POST.1]: with K finalists an honest
    # submitter pays K turns' rewards; forfeiting after the first saves K - 1 of them, less
    # than the deposit the ledger now requires (voter_reward x max_turns + 1).
    k = base.voting.max_turns
    out += [replace(base, name=f"v3/{s}/finalists {k}", submitter=p, finalists=k)
            for s, p in SUBMITTERS.items()]
    return out


def compare(tally: HTally, baseline: HTally) -> HResult:
    sc, jobs = tally.scenario, tally.jobs
    diffs: dict[str, list[float]] = {}
    for name, book in tally.books.items():
        diffs.setdefault(book.strategy.name, []).append(
            (profit(book) - profit(baseline.books[name])) / jobs)
    honest = fmean(diffs.pop("honest", [0.0]))
    relative = {s: round(fmean(v) - honest, 4) for s, v in sorted(diffs.items())}
    if sc.submitter != Submitter.HONEST:
        def change(sub: str) -> float:
            return tally.submitters[sub]["profit"] - baseline.submitters[sub]["profit"]
        name = next(k for k, p in SUBMITTERS.items() if p == sc.submitter)
        relative[name] = round((change("sub_b") - change("sub_a")) / (jobs // 2), 4)
    size = sum(n for _, n in sc.adversaries)
    return HResult(sc.name, relative, tally.honest_slashed,
                   round(tally.honest_paid_jobs / tally.deserving_jobs, 4)
                   if tally.deserving_jobs else 1.0,
                   size <= tolerated(sc.members, sc.voting), dict(sorted(tally.outcomes.items())),
                   dict(sorted(tally.holdout.items())), dict(sorted(tally.settled.items())),
                   tally.overfit_wins, tally.submitters)


def run_all(items: list[HoldoutScenario], jobs: int, seed: int) -> list[HResult]:
    baselines: dict[HoldoutScenario, HTally] = {}
    out = []
    for sc in items:
        key = replace(sc, name="honest", adversaries=(), submitter=Submitter.HONEST)
        if key not in baselines:
            baselines[key] = run_holdout(key, jobs, seed)
        out.append(compare(run_holdout(sc, jobs, seed), baselines[key]))
    return out


def headline(results: list[HResult]) -> dict[str, Any]:
    """As scenarios.headline, over the train/v3 scenarios."""
    inside = [r for r in results if r.within_tolerance
              and not r.name.startswith(("open/", "before/"))]
    best: dict[str, float] = {}
    for r in inside:
        for s, v in r.profit_vs_honest.items():
            best[s] = max(best.get(s, v), v)
    return {
        "profit_vs_honest": dict(sorted(best.items())),
        "honest_slashed": sum(r.honest_slashed for r in inside),
        "honest_paid_share": min((r.honest_paid_share for r in inside), default=1.0),
        "open_findings": {r.name: {"profit_vs_honest": r.profit_vs_honest,
                                   "honest_slashed": r.honest_slashed,
                                   "honest_paid_share": r.honest_paid_share}
                          for r in results if r.within_tolerance and r.name.startswith("open/")},
        "before_holdout_vote_reward_1": {r.name: r.profit_vs_honest for r in results
                                         if r.name.startswith("before/")},
    }
