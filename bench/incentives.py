"""Incentives over the real ledger rules: what every strategy earns against honest work.

    .venv/bin/python bench/incentives.py --jobs 600 --seed 1
    .venv/bin/python bench/incentives.py --sweep --out docs/ --jobs 300
    .venv/bin/python bench/incentives.py --quick      # 10 jobs (also LC_BENCH_QUICK=1)

Runs every strategy of bench/incentive_sim (alone, at the largest share the
verdict rules tolerate, in coalitions, and past the bound for show) through
chain/ with signed transactions in real blocks, beside the all-honest run of
the same seed. One line per scenario, then the last line, one JSON object:
``profit_vs_honest`` (strategy -> profit per job minus the honest strategy's,
the most favourable scenario within the bound), ``honest_slashed``,
``honest_paid_share``, ``verification`` (cost of verification to the graph
per job), and ``vote_reward_1``: the same scenarios priced with the voter rewards of
the rule the challenge replaced [VOTE-REWARD.1] (docs/incentives.md).
train/v3 jobs (hidden test sets, bench/incentive_sim/holdout_*.py) run as a scenario
family of their own; their strategies join ``profit_vs_honest`` and their guarantees
the headline's, their open findings ``open_findings``; ``train_v3`` gives the detail.
With ``--sweep`` it also sweeps the protocol parameters and writes PNG plots
and the generated tables of docs/incentives.md to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.incentive_sim import holdout_scenarios as v3
from bench.incentive_sim.holdout_scenarios import HResult
from bench.incentive_sim.scenarios import LAZY, Result, headline, run_all, standard
from bench.incentive_sim.sweeps import SWEEPS, sweep
from bench.incentive_sim.world import Scenario
from bench.support.cli import emit, parse_args

JSON_KEYS = ("jobs", "seed", "profit_vs_honest", "honest_slashed", "honest_bonds_lost",
             "honest_paid_share", "honest_votes_paid_share", "open_findings", "verification",
             "honest_profit_per_job", "vote_reward_1", "beyond_the_bound", "train_v3",
             "seconds")
"""Keys of the last line without ``--sweep`` (tests/test_bench_quick.py); ``--sweep``
adds ``sweeps``."""
NEEDS_DOCKER = False
"""One process, no sockets; files only with ``--sweep``: CI may run it in parallel."""
QUICK = {"jobs": 10, "sweep_jobs": 10}

BEGIN, END = "<!-- BEGIN GENERATED (bench/incentives.py --sweep) -->", "<!-- END GENERATED -->"


def line(r: Result) -> str:
    s = r.summary
    mark = "" if r.within_tolerance else "  [beyond the bound]"
    return (f"{s.scenario:44s} profit_vs_honest {json.dumps(r.profit_vs_honest)} "
            f"honest_slashed {s.honest_slashed} honest_paid {s.honest_paid_share:.3f} "
            f"outcomes {json.dumps(s.outcomes)}{mark}")


def v3_line(r: HResult) -> str:
    return (f"{r.name:44s} profit_vs_honest {json.dumps(r.profit_vs_honest)} "
            f"honest_slashed {r.honest_slashed} honest_paid {r.honest_paid_share:.3f} "
            f"holdout {json.dumps(r.holdout)}")


def measure(jobs: int, seed: int, quiet: bool = False
            ) -> tuple[dict[str, Any], list[Result], list[HResult]]:
    """The headline run: every scenario under the ledger's rules; the lazy voters, the
    cheater and the griefer also priced with the rewards of [VOTE-REWARD.1] (what the
    challenge changed); then the train/v3 family, merged into the headline."""
    def show(r: Result) -> None:
        if not quiet:
            print(line(r), flush=True)

    current = run_all(standard(Scenario("base")), jobs, seed, show)
    without = run_all(standard(Scenario("base", rules="vote-reward-1"),
                                strategies=(*LAZY, "cheater", "griefer"), coalitions=False,
                                beyond=False), jobs, seed, show)
    baseline = run_all([Scenario("honest")], jobs, seed)[0].summary
    out = {"jobs": jobs, "seed": seed, **headline(current),
           "verification": baseline.verification,
           "honest_profit_per_job": baseline.profit_per_job["honest"],
           "vote_reward_1": headline(without),
           "beyond_the_bound": {r.summary.scenario: {
               "profit_vs_honest": r.profit_vs_honest, "honest_slashed": r.summary.honest_slashed,
               "honest_paid_share": r.summary.honest_paid_share}
               for r in current if not r.within_tolerance}}
    holdout = v3.run_all(v3.scenarios(), jobs, seed)
    if not quiet:
        for r in holdout:
            print(v3_line(r), flush=True)
    h3 = v3.headline(holdout)
    out["profit_vs_honest"] = dict(sorted({**out["profit_vs_honest"],
                                           **h3["profit_vs_honest"]}.items()))
    out["honest_slashed"] += h3["honest_slashed"]
    out["honest_paid_share"] = min(out["honest_paid_share"], h3["honest_paid_share"])
    out["open_findings"] = {**out["open_findings"], **h3["open_findings"]}
    out["train_v3"] = h3
    return out, current + without, holdout


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    return head + "".join("| " + " | ".join(str(row.get(c, "")) for c in columns) + " |\n"
                          for row in rows)


def plot(param: str, label: str, rows: list[dict[str, Any]], out: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [r["value"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for key in ("lazy_echo", "lazy_echo (vote-reward-1)", "griefer", "withholding_voter",
                "cheater", "copier"):
        left.plot(xs, [r[key] for r in rows], marker="o", label=key)
    left.axhline(0, color="black", linewidth=0.8)
    left.set_xlabel(label)
    left.set_ylabel("profit per job minus honest (credits)")
    left.set_title("deviations (above 0: pays)")
    left.legend(fontsize=7)
    right.plot(xs, [r["honest_profit_per_job"] for r in rows], marker="o",
               label="honest member profit / job")
    right.plot(xs, [r["eval_cost_per_job"] for r in rows], marker="s",
               label="evaluation cost / job (all-honest graph)")
    right.plot(xs, [100 * r["honest_paid_share"] for r in rows], marker="^",
               label="honest work paid, worst scenario (%)")
    right.set_xlabel(label)
    right.legend(fontsize=7)
    right.set_title("honest members and the graph")
    fig.tight_layout()
    path = out / f"incentives_{param}.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def write_doc(out: Path, headline_json: dict[str, Any], results: list[Result],
              holdout: list[HResult], sweeps: dict[str, list[dict[str, Any]]], jobs: int, seed: int,
              sweep_jobs: int) -> None:
    parts = [f"Generated by `.venv/bin/python bench/incentives.py --sweep --out {out}/ "
             f"--jobs {jobs} --seed {seed} --sweep-jobs {sweep_jobs}`.\n",
             "### Every scenario (profit per job minus honest, credits)\n",
             table([{"scenario": r.summary.scenario,
                     "within bound": "yes" if r.within_tolerance else "**no**",
                     "profit_vs_honest": ", ".join(f"{k} {v:+.2f}"
                                                   for k, v in r.profit_vs_honest.items()),
                     "honest slashed": r.summary.honest_slashed,
                     "honest paid": f"{100 * r.summary.honest_paid_share:.1f} %",
                     "outcomes": ", ".join(f"{k} {v}" for k, v in r.summary.outcomes.items())}
                    for r in results],
                   ["scenario", "within bound", "profit_vs_honest", "honest slashed",
                    "honest paid", "outcomes"]),
             "\n### train/v3 scenarios (hidden test sets; profit per job minus honest)\n",
             table([{"scenario": r.name,
                     "within bound": "yes" if r.within_tolerance else "**no**",
                     "profit_vs_honest": ", ".join(f"{k} {v:+.2f}"
                                                   for k, v in r.profit_vs_honest.items()),
                     "honest slashed": r.honest_slashed,
                     "honest paid": f"{100 * r.honest_paid_share:.1f} %",
                     "overfit wins": r.overfit_wins,
                     "holdout": ", ".join(f"{k} {v}" for k, v in r.holdout.items()),
                     "outcomes": ", ".join(f"{k} {v}" for k, v in r.outcomes.items())}
                    for r in holdout],
                   ["scenario", "within bound", "profit_vs_honest", "honest slashed",
                    "honest paid", "overfit wins", "holdout", "outcomes"]),
             "\n### Headline (last line of the run)\n\n```json\n"
             + json.dumps(headline_json, indent=1) + "\n```\n"]
    for spec in SWEEPS:
        rows = sweeps.get(spec.param)
        if not rows:
            continue
        image = f"![{spec.param}](incentives_{spec.param}.png)"
        parts.append(f"\n### Sweep: {spec.label}\n\n{image}\n\n")
        parts.append(table(rows, ["value", "lazy_echo", "lazy_echo (vote-reward-1)", "griefer",
                                  "withholding_voter", "cheater", "copier", "honest_slashed",
                                  "honest_paid_share", "honest_profit_per_job",
                                  "eval_cost_per_job", "coalition", "bound"]))
    generated = "\n".join(parts)
    doc = out / "incentives.md"
    text = doc.read_text() if doc.exists() else f"# Incentives\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        text += f"\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    doc.write_text(f"{head}{BEGIN}\n{generated}\n{END}{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=600, help="jobs per scenario")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--sweep", action="store_true", help="sweep the protocol parameters")
    parser.add_argument("--sweep-jobs", type=int, default=300, help="jobs per sweep point")
    parser.add_argument("--out", type=Path, default=Path("docs"))
    args = parse_args(parser, QUICK, argv)
    started = time.monotonic()
    figures, results, holdout = measure(args.jobs, args.seed)
    sweeps: dict[str, list[dict[str, Any]]] = {}
    if args.sweep:
        args.out.mkdir(parents=True, exist_ok=True)
        for spec in SWEEPS:
            sweeps[spec.param] = sweep(Scenario("base"), spec, args.sweep_jobs, args.seed,
                                       lambda text: print(text, flush=True))
            print(f"plot: {plot(spec.param, spec.label, sweeps[spec.param], args.out)}")
        write_doc(args.out, figures, results, holdout, sweeps, args.jobs, args.seed,
                  args.sweep_jobs)
        figures["sweeps"] = sweeps
    figures["seconds"] = round(time.monotonic() - started, 1)
    emit(figures, (*JSON_KEYS, "sweeps") if args.sweep else JSON_KEYS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
