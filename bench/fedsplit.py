"""Where a split owner's gain comes from, and what a participation fee or the
leave-one-out share would do to it (issue 49 §2).

    .venv/bin/python bench/fedsplit.py              # 10 seeds, centered_clip, 15 rounds
    .venv/bin/python bench/fedsplit.py --quick      # 2 seeds, 4 rounds

One owner of the benchmark's job (bench/fedpoison.py's data, rule and harness) sends its
honest update through k = 2, 3, 5 addresses, each with noise that keeps every pair's
cosine under the copy threshold [FED-REWARD.8]: *fresh* noise every round, or the *same*
noise directions every round (``fixed``). Each run's payout inputs (recorded weights,
final and leave-one-out losses) are captured once and paid again through
``rewards.payout``

- with the leave-one-out share ``loo_permille`` at 0, 500 (the CLI's default) and 1000;
- with a participation fee of φ × (bounty / 10) per address paid into the job's pool
  (the pool grows by the fees and is split as the bounty is), φ in 0, 0.25, 0.5, 1, 2.

gain = the owner's total over its addresses (net of fees) / its pay as one address in the
same seed's clean run. ``honest_net_over_gross_min`` is the lowest honest owner's net pay
under the fee over its pay without one (what the fee costs the poorest honest owner);
``honest_unpaid`` counts the clean runs' honest owners paid nothing (of seeds × 10).

Levers measured rather than built (docs/federated.md, "Splitting"):
``--copy-trust C`` moves the near-copy threshold of [FED-REWARD.8] [FED-REWARD.14] to
cosine C, and the split's noise is sized to stay under it; ``--round-weights nnls`` pays
each round by ``bench/support/fedweights.py``'s least-squares shares of the root update,
``--chain-share S`` pays a share S of each round by the chain's weights instead,
``--round-weights shapley`` pays each round by exact Shapley values of the addresses
(how much closer each brings a coalition's mean to the root update), and
``--without-job-outliers`` lifts [FED-REWARD.9].
The last line is one JSON object (``JSON_KEYS``).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import statistics
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.support import fedattacks, fedsep, fedsim
from bench.support.cli import emit, parse_args
from bench.support.fedattacks import Family, sybil
from bench.support.fedsim import address, load, project_rules, run_job
from bench.support.fedweights import (
    REWEIGHS,
    mixed_weights,
    without_job_outliers,
)
from chain.federated import job_copies, rewards
from chain.federated.rewards import payout

JSON_KEYS = ("gain_fresh", "gain_fixed", "gain_fixed_loo1000", "fee_gain_fixed",
             "honest_net_over_gross_min", "honest_unpaid", "seeds", "rounds", "rule",
             "job_copies", "copy_trust", "round_weights", "chain_share", "job_outliers",
             "separability")
NEEDS_DOCKER = False
QUICK = {"seeds": 2, "rounds": 4}
SPLITS = (2, 3, 5)
LAMBDAS = (0, 500, 1000)
PHIS = (0.0, 0.25, 0.5, 1.0, 2.0)
OWNERS = 10
Captured = tuple[Sequence[Mapping[bytes, int]], int | None, Mapping[bytes, int] | None]


@contextlib.contextmanager
def copy_trust(cosine: float | None) -> Iterator[None]:
    """The near-copy threshold of [FED-REWARD.8] and [FED-REWARD.14] at ``cosine`` (the
    splits' noise sized to it too) for the runs inside; ``None``: the chain's."""
    modules = (rewards, job_copies, fedattacks)
    saved = [m.COPY_TRUST for m in modules]
    if cosine is not None:
        for m in modules:
            m.COPY_TRUST = round(cosine * 65536)
    try:
        yield
    finally:
        for m, value in zip(modules, saved, strict=True):
            m.COPY_TRUST = value


def capture_runs(seed: int, rounds: int, rule_name: str, round_weights: str = "chain",
                 chain_share: float = 0.0) -> dict[Any, Any]:
    """The clean run's and every split run's payout inputs for one seed."""
    captured: list[Captured] = []
    real = fedsim.payout

    def spy(bounty: int, lam: int, weights: Any, final_loss: Any, loo: Any) -> Any:
        captured.append((weights, final_loss, loo))
        return real(bounty, lam, weights, final_loss, loo)

    fedsim.payout = spy  # type: ignore[assignment]  # the harness calls payout by its module
    try:
        rule = project_rules(3)[rule_name]
        if round_weights == "nnls" and chain_share:
            rule = dataclasses.replace(rule, reweigh=mixed_weights(chain_share))
        elif (reweigh := REWEIGHS[round_weights]) is not None:
            rule = dataclasses.replace(rule, reweigh=reweigh)
        data = load(seed, OWNERS)
        revealed: list[Mapping[bytes, Any]] = []
        clean = run_job(data, rule, None, (), rounds, seed, pay=True, observe=revealed.append)
        perm = np.random.default_rng([seed, 7]).permutation(OWNERS)
        owner = next((int(i) for i in perm if (clean.paid or {}).get(int(i), 0) > 0),
                     int(perm[0]))
        out: dict[Any, Any] = {"owner": owner, "clean": captured[-1],
                               ("pairs", "honest"): fedsep.pairs(revealed)}
        for k in SPLITS:
            for fixed in (False, True):
                revealed = []
                run_job(data, rule, Family(f"split{k}", sybil(k, fixed), "", addresses=k),
                        (owner,), rounds, seed, pay=True, observe=revealed.append)
                out[(k, fixed)] = captured[-1]
                out[("pairs", k, fixed)] = fedsep.pairs(
                    revealed, within=[address(owner, c) for c in range(k)])
        return out
    finally:
        fedsim.payout = real


def owner_net(cap: Captured, owner: int, k: int, lam: int, fee: int) -> int:
    """The owner's pay over its k addresses, the pool grown by every address's fee, less
    its own k fees."""
    weights, final_loss, loo = cap
    addresses = set(loo or {}) | {a for ws in weights for a in ws}
    p = payout(fedsim.BOUNTY + len(addresses) * fee, lam, weights, final_loss, loo)
    return sum(p.of(address(owner, c)) for c in range(k)) - k * fee


def gains(runs: Sequence[dict[Any, Any]], k: int, fixed: bool, lam: int, fee: int) -> list[float]:
    out = []
    for run in runs:
        single = owner_net(run["clean"], run["owner"], 1, lam, fee)
        if single > 0:
            out.append(owner_net(run[(k, fixed)], run["owner"], k, lam, fee) / single)
    return out


def honest_cost(runs: Sequence[dict[Any, Any]], fee: int) -> float:
    """The lowest (over seeds and owners) net pay under the fee over the pay without it."""
    worst = float("inf")
    for run in runs:
        weights, final_loss, loo = run["clean"]
        gross = payout(fedsim.BOUNTY, fedsim.LOO_PERMILLE, weights, final_loss, loo)
        for o in range(OWNERS):
            g = gross.of(address(o, 0))
            if g > 0:
                worst = min(worst, owner_net(run["clean"], o, 1, fedsim.LOO_PERMILLE, fee) / g)
    return worst


def honest_unpaid(runs: Sequence[dict[Any, Any]]) -> int:
    """How many (seed, owner) of the clean runs the default payout pays nothing."""
    paid = [payout(fedsim.BOUNTY, fedsim.LOO_PERMILLE, *run["clean"]) for run in runs]
    return sum(1 for p in paid for o in range(OWNERS) if p.of(address(o, 0)) == 0)


def _med(xs: Sequence[float]) -> float | None:
    return round(statistics.median(xs), 2) if xs else None


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--rule", default="centered_clip")
    ap.add_argument("--without-job-copies", action="store_true",
                    help="the end votes of protocol version 4, before [FED-REWARD.14]")
    ap.add_argument("--copy-trust", type=float, default=None,
                    help="near-copy threshold as a cosine (default: the chain's, 0.8)")
    ap.add_argument("--round-weights", choices=tuple(REWEIGHS), default="chain",
                    help="nnls, shapley: round weights from bench/support/fedweights.py")
    ap.add_argument("--chain-share", type=float, default=0.0,
                    help="with --round-weights nnls: this share of each round by the "
                         "chain's weights, the rest by the fit")
    ap.add_argument("--without-job-outliers", action="store_true",
                    help="no participant is an outlier of the job [FED-REWARD.9]")
    args = parse_args(ap, QUICK, argv)
    fedsim.JOB_COPIES = not args.without_job_copies
    with copy_trust(args.copy_trust), without_job_outliers(args.without_job_outliers):
        runs = [capture_runs(seed, args.rounds, args.rule, args.round_weights,
                             args.chain_share) for seed in range(1, args.seeds + 1)]
        trust = rewards.COPY_TRUST / 65536
        _report(args, runs, trust)


def _report(args: argparse.Namespace, runs: Sequence[dict[Any, Any]], trust: float) -> None:
    print(f"{args.rule}, {args.seeds} seeds, {args.rounds} rounds, copy trust {trust:.3f}, "
          f"{args.round_weights} round weights (chain share {args.chain_share}), job outliers "
          f"{'lifted' if args.without_job_outliers else 'kept'}: gain median (max)")
    print("| loo_permille | " + " | ".join(f"k={k} {n}" for k in SPLITS
                                          for n in ("fresh", "fixed")) + " |")
    for lam in LAMBDAS:
        cells = []
        for k in SPLITS:
            for fixed in (False, True):
                g = gains(runs, k, fixed, lam, 0)
                cells.append(f"{_med(g)} ({max(g):.2f})" if g else "-")
        print(f"| {lam} | " + " | ".join(cells) + " |")
    print("fee into the pool (loo_permille 500): gain median (max); lowest honest net/gross")
    fee_fixed: dict[str, Any] = {}
    honest: dict[str, float] = {}
    for phi in PHIS:
        fee = int(phi * fedsim.BOUNTY / OWNERS)
        cells = []
        for k in SPLITS:
            g = gains(runs, k, True, fedsim.LOO_PERMILLE, fee)
            fee_fixed[f"{phi}:{k}"] = _med(g)
            cells.append(f"k={k} fixed {_med(g)} ({max(g):.2f})" if g else "-")
        honest[str(phi)] = round(honest_cost(runs, fee), 2)
        print(f"| φ={phi} | " + " | ".join(cells) + f" | honest {honest[str(phi)]} |")
    separability = {"honest_max": fedsep.extreme(
        [p for run in runs for p in run[("pairs", "honest")]], highest=True)}
    for fixed in (False, True):
        separability[f"{'fixed' if fixed else 'fresh'}_split_min"] = fedsep.extreme(
            [p for run in runs for k in SPLITS for p in run[("pairs", k, fixed)]],
            highest=False)
    print("pairs' update histories (bench/support/fedsep.py): honest owners' largest, "
          "the splits' smallest")
    print("| pairs | " + " | ".join(fedsep.STATISTICS) + " |")
    for name, values in separability.items():
        print(f"| {name} | " + " | ".join(str(values[s]) for s in fedsep.STATISTICS) + " |")
    lam0 = fedsim.LOO_PERMILLE
    emit({
        "gain_fresh": {k: _med(gains(runs, k, False, lam0, 0)) for k in SPLITS},
        "gain_fixed": {k: _med(gains(runs, k, True, lam0, 0)) for k in SPLITS},
        "gain_fixed_loo1000": {k: _med(gains(runs, k, True, 1000, 0)) for k in SPLITS},
        "fee_gain_fixed": fee_fixed, "honest_net_over_gross_min": honest,
        "honest_unpaid": honest_unpaid(runs),
        "seeds": args.seeds, "rounds": args.rounds, "rule": args.rule,
        "job_copies": fedsim.JOB_COPIES, "copy_trust": round(trust, 4),
        "round_weights": args.round_weights, "chain_share": args.chain_share,
        "job_outliers": not args.without_job_outliers, "separability": separability,
    }, JSON_KEYS)


if __name__ == "__main__":
    main()
