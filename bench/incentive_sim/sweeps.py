"""Sweeps over the protocol's parameters: what each deviation is worth as one parameter moves.

Pure: returns rows of numbers; bench/incentives.py draws and writes them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from bench.incentive_sim.accounting import summarise
from bench.incentive_sim.scenarios import Result, run_all, tolerated
from bench.incentive_sim.world import Scenario, Tally

SWEPT = ("lazy_echo", "griefer", "withholding_voter", "cheater", "copier")
"""The deviations drawn on every sweep."""


@dataclass(frozen=True, slots=True)
class Sweep:
    param: str
    label: str
    values: tuple[float, ...]
    apply: Callable[[Scenario, Any], Scenario]


def _voting(field: str) -> Callable[[Scenario, Any], Scenario]:
    def apply(sc: Scenario, value: Any) -> Scenario:
        return replace(sc, voting=replace(sc.voting, **{field: value}))
    return apply


SWEEPS = (
    # [JOB-POST.1] bounds both from above at 667 permille: the quorum sweeps its allowed
    # range; the supermajority has one allowed value (the genesis minimum is 667).
    Sweep("quorum_permille", "quorum (permille of eligible voters; at most 667)",
          (500, 550, 600, 667), _voting("quorum_permille")),
    Sweep("voter_reward", "voter_reward per turn (credits; 11 voters share it)",
          (0, 11, 22, 33, 66, 110), _voting("voter_reward")),
    Sweep("window_blocks", "reveal / commit / vote-reveal windows (blocks of 1 s)",
          (1, 2, 3, 5), _voting("window_blocks")),
    Sweep("verifier_bond", "verifier_bond (credits)",
          (0, 5, 10, 50, 200), lambda sc, v: replace(sc, verifier_bond=v)),
    Sweep("challenge_spread", "spread of a challenge subset's loss (x tolerance)",
          (0.0, 0.5, 1.0, 3.0, 10.0),
          lambda sc, v: replace(sc, economy=replace(
              sc.economy, challenge_spread=v * sc.voting.loss_tolerance))),
)


def point(base: Scenario, jobs: int, seed: int) -> dict[str, Any]:
    """One sweep point: each swept deviation at the tolerated share (at least one member,
    so past the bound where the bound is 0), the lazy voter again under the counterfactual
    [VOTE-REWARD.1] (what the challenge changed), and the all-honest graph's figures."""
    f = max(1, tolerated(base.members, base.voting))
    scenarios = [replace(base, name=f"{s} x{f}", adversaries=((s, f if s != "cheater" else 1),))
                 for s in SWEPT]
    without = replace(base, name=f"lazy_echo x{f} vote-reward-1",
                      adversaries=(("lazy_echo", f),), rules="vote-reward-1")
    baselines: dict[Scenario, Tally] = {}
    results: list[Result] = run_all([*scenarios, without], jobs, seed, baselines=baselines)
    row: dict[str, Any] = {s: r.profit_vs_honest[s] for s, r in zip(SWEPT, results, strict=False)}
    row["lazy_echo (vote-reward-1)"] = results[-1].profit_vs_honest["lazy_echo"]
    # Worst over every swept scenario, within the bound or not (at a bound of 0, none is).
    row["honest_paid_share"] = min(r.summary.honest_paid_share for r in results)
    row["honest_slashed"] = sum(r.summary.honest_slashed for r in results)
    honest = summarise(baselines[replace(base, name="honest", adversaries=(),
                                         withholding_submitter=False)])
    row["honest_profit_per_job"] = honest.profit_per_job["honest"]
    row["eval_cost_per_job"] = honest.verification["eval_cost_per_job"]
    row["coalition"] = f
    row["bound"] = tolerated(base.members, base.voting)
    return row


def sweep(base: Scenario, spec: Sweep, jobs: int, seed: int,
          progress: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    rows = []
    for value in spec.values:
        row = {"value": value, **point(spec.apply(base, value), jobs, seed)}
        if progress is not None:
            progress(f"{spec.param}={value}: {row}")
        rows.append(row)
    return rows
