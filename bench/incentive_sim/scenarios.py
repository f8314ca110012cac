"""Which populations to run, and what a deviation is worth against its honest counterpart.

Every scenario is run beside the all-honest population with the same seed,
parameters and rules. Jobs, workers, reached losses and measurement noise are
drawn per job and per vote from the seed alone (world.py), so the only
difference between the two runs is the deviation: a deviating member's profit
minus the same member's profit when it was honest is what deviating is worth
to it (common random numbers; far less noise than comparing two members).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from statistics import fmean
from typing import Any

from bench.incentive_sim.accounting import Summary, member_profit, summarise
from bench.incentive_sim.agents import STRATEGIES
from bench.incentive_sim.driver import Voting
from bench.incentive_sim.world import Scenario, Tally, run
from chain.train.rules import MAX_QUORUM_PERMILLE

DISHONEST = tuple(s for s in STRATEGIES if s != "honest")
SINGLE = tuple(s for s in DISHONEST if s not in ("cartel", "exhauster"))
"""Strategies run alone and at the tolerated share; the cartel only runs as a coalition."""
LAZY = ("lazy_valid", "lazy_echo")


def tolerated(members: int, voting: Voting) -> int:
    """The largest coalition the verdict rules tolerate with every member a verifier:
    with the claimer out, E = members - 1 voters, and the honest rest must still make a
    quorum and a supermajority of the opened votes on its own [VOTE-VERDICT.2]."""
    eligible = members - 1
    need = max(voting.quorum_permille, voting.supermajority_permille)
    f = 0
    while (eligible - (f + 1)) * 1000 >= need * eligible and f + 1 < members:
        f += 1
    return f


def standard(base: Scenario, *, strategies: Iterable[str] = SINGLE,
             coalitions: bool = True, beyond: bool = True) -> list[Scenario]:
    """Each strategy alone (one member) and at the tolerated share; coalitions at the
    tolerated share; and, marked ``beyond``, one member past it (informational)."""
    f = tolerated(base.members, base.voting)
    out: list[Scenario] = []
    if base.rules != "current":
        return [replace(sc, name=f"{sc.name} ({base.rules})")
                for sc in standard(replace(base, rules="current"), strategies=strategies,
                                   coalitions=coalitions, beyond=beyond)
                for sc in [replace(sc, rules=base.rules)]]
    for s in strategies:
        out.append(replace(base, name=f"{s}/alone", adversaries=((s, 1),)))
        if f > 1:
            out.append(replace(base, name=f"{s}/x{f}", adversaries=((s, f),)))
    if coalitions and f >= 2:
        out += [
            replace(base, name=f"coalition/cartel x{f}", adversaries=(("cartel", f),)),
            replace(base, name=f"coalition/cheater+lazy_echo x{f}",
                    adversaries=(("cheater", 1), ("lazy_echo", f - 1))),
            replace(base, name=f"coalition/griefer+sybil x{f}",
                    adversaries=(("griefer", f - 1), ("sybil", 1))),
            replace(base, name=f"coalition/withholding_submitter x{f}",
                    adversaries=(("withholding_voter", f),), withholding_submitter=True),
            replace(base, name=f"coalition/cheater_withdraw+cheater x{f}",
                    adversaries=(("cheater_withdraw", f - 1), ("cheater", 1))),
        ]
    if coalitions and f >= base.voting.max_turns:
        # [THREAT-EXHAUST.1], closed: max_turns sacrificial cheaters on one job. Cheat
        # verdicts no longer count against max_turns [JOB-TURN.1], so the honest claim
        # behind them is still tried and paid.
        out.append(replace(base, name=f"coalition/exhauster x{base.voting.max_turns}",
                           adversaries=(("exhauster", base.voting.max_turns),)))
    if coalitions:
        # [THREAT-QUORUM.1], closed: the submitter asks for a unanimous quorum so that one
        # colluding verifier could block every turn; [JOB-POST.1] rejects every such post
        # (quorum_too_high). The same pair at the largest quorum allowed (667) does not pay.
        out += [replace(base, name="withholding_submitter/quorum 1000 x1",
                        adversaries=(("withholding_voter", 1),), withholding_submitter=True,
                        submitter_voting=replace(base.voting, quorum_permille=1000)),
                replace(base, name=f"withholding_submitter/quorum {MAX_QUORUM_PERMILLE} x1",
                        adversaries=(("withholding_voter", 1),), withholding_submitter=True,
                        submitter_voting=replace(base.voting,
                                                 quorum_permille=MAX_QUORUM_PERMILLE))]
    if beyond:  # past the bound: shown, never asserted
        out += [replace(base, name=f"beyond/{s} x{f + 1}", adversaries=((s, f + 1),))
                for s in ("cartel", "griefer", "withholding_voter")]
    return out


@dataclass(frozen=True, slots=True)
class Result:
    summary: Summary
    deviation: dict[str, float]
    """Strategy -> mean over its members of (profit here - profit when honest) per job."""
    honest_change: float
    """The same for the members that stayed honest: what the adversaries' presence did to
    everyone (a banned competitor leaves more bounties to all)."""
    profit_vs_honest: dict[str, float]
    """Strategy -> deviation - honest_change: what deviating is worth beyond what every
    member gained or lost by the adversaries being there."""
    within_tolerance: bool

    def to_json(self) -> dict[str, Any]:
        return {"scenario": self.summary.scenario, "within_tolerance": self.within_tolerance,
                "profit_vs_honest": self.profit_vs_honest, "deviation": self.deviation,
                "honest_change": self.honest_change,
                **{k: v for k, v in self.summary.to_json().items()
                   if k not in ("scenario", "profit_vs_honest")}}


def compare(tally: Tally, baseline: Tally) -> Result:
    rules, jobs = tally.scenario.rules, tally.jobs
    diffs: dict[str, list[float]] = {}
    for name, book in tally.books.items():
        delta = (member_profit(book, rules) - member_profit(baseline.books[name], rules)) / jobs
        diffs.setdefault(book.strategy.name, []).append(delta)
    honest = fmean(diffs.pop("honest", [0.0]))
    deviation = {s: round(fmean(v), 4) for s, v in sorted(diffs.items())}
    relative = {s: round(d - honest, 4) for s, d in deviation.items()}
    if tally.scenario.withholding_submitter:
        # The second submitter and its withholding verifiers act as one: their gain is the
        # submitter's (against the honest first submitter) plus the verifiers'.
        def change(sub: str) -> float:
            return tally.submitters[sub]["profit"] - baseline.submitters[sub]["profit"]
        coalition = sum(d - honest for d in diffs.get("withholding_voter", []))
        # Its verifiers are priced as part of the coalition, not as a strategy of their
        # own (where the submitter's posts are rejected they never withhold at all).
        relative.pop("withholding_voter", None)
        relative["withholding_submitter"] = round(
            (change("sub_b") - change("sub_a")) / jobs + coalition, 4)
    f = tolerated(tally.scenario.members, tally.scenario.voting)
    size = sum(n for _, n in tally.scenario.adversaries)
    return Result(summarise(tally), deviation, round(honest, 4), relative, size <= f)


def run_all(scenarios: list[Scenario], jobs: int, seed: int,
            progress: Callable[[Result], None] | None = None,
            baselines: dict[Scenario, Tally] | None = None) -> list[Result]:
    """Runs each scenario beside its all-honest baseline (one baseline per parameter set;
    pass ``baselines`` to read them afterwards)."""
    baselines = {} if baselines is None else baselines
    out = []
    for sc in scenarios:
        key = replace(sc, name="honest", adversaries=(), withholding_submitter=False,
                      submitter_voting=None)
        if key not in baselines:
            baselines[key] = run(key, jobs, seed)
        result = compare(run(sc, jobs, seed), baselines[key])
        if progress is not None:
            progress(result)
        out.append(result)
    return out


def headline(results: list[Result]) -> dict[str, Any]:
    """The figures CI checks, over the scenarios within the tolerated share: per strategy
    the best deviation found (the most favourable to the deviator), honest claims slashed,
    and the worst share of honest work paid."""
    inside = [r for r in results if r.within_tolerance and not is_open(r)]
    best: dict[str, float] = {}
    for r in inside:
        for s, v in r.profit_vs_honest.items():
            best[s] = max(best.get(s, v), v)
    return {
        "profit_vs_honest": dict(sorted(best.items())),
        "honest_slashed": sum(r.summary.honest_slashed for r in inside),
        "honest_bonds_lost": sum(r.summary.honest_bonds_lost for r in inside),
        "honest_paid_share": min((r.summary.honest_paid_share for r in inside), default=1.0),
        "honest_votes_paid_share": min((r.summary.honest_votes_paid_share for r in inside),
                                       default=1.0),
        "open_findings": {r.summary.scenario: {
            "profit_vs_honest": r.profit_vs_honest, "honest_slashed": r.summary.honest_slashed,
            "honest_paid_share": r.summary.honest_paid_share}
            for r in results if r.within_tolerance and is_open(r)},
    }


def is_open(result: Result) -> bool:
    """A known open finding (docs/incentives.md): measured and reported, not asserted."""
    return result.summary.scenario.startswith("open/")
