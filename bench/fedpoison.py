"""A public poisoning benchmark of federated jobs: every rule against the literature's
attacks, with the project's own round, replay and payout code (issue 49 §3).

    .venv/bin/python bench/fedpoison.py                 # 10 seeds, every rule and family
    .venv/bin/python bench/fedpoison.py --jobs 2 --write-docs
    .venv/bin/python bench/fedpoison.py --rules centered_clip,centered_clip:2,bucket2_cclip
    .venv/bin/python bench/fedpoison.py --quick         # 1 seed, 4 rounds (also LC_BENCH_QUICK=1)

Ten data owners hold a Dirichlet(0.3) label split of scikit-learn's UCI digits; the job
owner holds 60 clean root rows (FLTrust's reference) and 30 % of the rows are held out
(accuracy, and the stand-in for the hidden set the members vote losses on). Each round
every owner trains the global multinomial logistic regression locally (bench/federated.py's
training) and quantises its update at 2**16 [FED-QUANT.2]; the coalition (2 or 4 owners,
chosen per seed) sends what its attack family computes, omniscient about the round's
honest updates (bench/support/fedattacks.py). The round is aggregated by
``chain.federated.fast.aggregate_round`` and applied as the chain applies it
[FED-MODEL.3]; the bounty is split by ``rewards.payout`` with the CLI's default
loo_permille (500) and leave-one-out models from ``fast.replay`` [FED-REWARD.2-9].

Per (rule, family, attackers, seed): final test accuracy, its drop against the same
rule's clean run of the same seed, backdoor success, and (at 2 attackers) the attackers'
mean payment over the lowest honest owner's; sybils' gain against the same owner paid as
one address. ``centered_clip`` [FED-AGG.10] is included, and is the default rule, once
chain/federated has it; experimental harness-side rules live in
bench/support/fedpoison_variants.py. The last line is one JSON object (``JSON_KEYS``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.support import fedpoison_report as report
from bench.support.cli import emit, parse_args
from bench.support.fedattacks import FAMILIES, sybil_family
from bench.support.fedpoison_variants import VARIANTS
from bench.support.fedsim import (
    BOUNTY,
    LATEST_RULES,
    LOO_PERMILLE,
    JobResult,
    Rule,
    address,
    load,
    parse_rule,
    project_rules,
    quantise,
    run_job,
)
from bench.support.fedweights import REWEIGHS, without_job_outliers
from chain.federated import fast

JSON_KEYS = ("clean_acc_default", "clean_acc_mean", "worst_median_drop_pts_default",
             "seeds_over_3pts_default", "attackers_over_honest_min_max", "sybil_gain_max",
             "agg_s_per_round_1m", "attackers_below_honest_seeds_min",
             "any_member_attackers_over_honest_min_max", "any_member_sybil_gain_max",
             "agg_dims", "default_rule", "worst_family_default", "worst_pay_family_default",
             "per_rule", "sybil_gain", "seeds", "rounds", "owners", "attacker_counts",
             "families", "elapsed_s")
"""The last line's keys (tests/test_bench_quick.py); the issue's seven first, then the
figures of a job open to any member beside them. The ``_default`` figures are the default
rule's in a job that names its cohort [FED-SPEC.4]: there a splitting family's extra
addresses are refused, so its attackers are owners paid once for their own data, judged by
the split's gain (``sybil_gain_max``), not by the pay ratio of the attacks."""
HEADLINE = 10
"""The keys shown in docs/federated.md's headline block."""
NEEDS_DOCKER = False
"""One process (or a pool of them), no sockets, no files: runs beside other pure tests."""
QUICK = {"seeds": 1, "rounds": 4, "attackers": "2", "splits": "3", "timing_dims": 20_000}
CC_F = 3
"""centered_clip's f: the attackers it is asked to bear (Multi-Krum's here too)."""
DOCS = Path(__file__).resolve().parents[1] / "docs" / "federated.md"
COHORT = "@cohort"
"""The suffix of a splitting family's runs in a job that names its cohort [FED-SPEC.4]."""
ADMISSIONS = ("cohort", "any_member")
"""Who may commit: the job's named owners (``--cohort``, the default) or any member."""
NOISES = ("fresh", "fixed")
TIMING_PARTICIPANTS = 20
REPEATS = 3


@dataclass(frozen=True)
class Config:
    """What one seed's worker runs (picklable: names, not objects)."""

    rules: tuple[str, ...]
    families: tuple[str, ...]
    counts: tuple[int, ...]
    pay_counts: tuple[int, ...]
    splits: tuple[int, ...]
    default: str
    rounds: int
    owners: int
    cc_f: int
    round_weights: str = "chain"
    """An experiment's round weights (``fedweights.REWEIGHS``) for every rule."""
    job_outliers: bool = True
    """False: no participant is an outlier of the job [FED-REWARD.9] (an experiment)."""


def rules_of(cfg: Config) -> list[Rule]:
    known = project_rules(cfg.cc_f)
    rules = [parse_rule(s, known, VARIANTS) for s in cfg.rules]
    reweigh = REWEIGHS[cfg.round_weights]
    return rules if reweigh is None else [replace(r, reweigh=reweigh) for r in rules]


def attackers_of(seed: int, owners: int, count: int) -> tuple[int, ...]:
    """The coalition of a seed: the first ``count`` owners of a seeded permutation (so the
    4 include the 2)."""
    perm = np.random.default_rng([seed, 7]).permutation(owners)
    return tuple(sorted(int(i) for i in perm[:count]))


def _pay_fields(paid: dict[int, int] | None, clean: dict[int, int] | None,
                attackers: tuple[int, ...]) -> dict[str, Any]:
    """The ratio of the attackers' mean payment to the lowest honest one (the lowest
    taken as at least 1 unit), whether every attacker got less than every honest owner,
    and the attackers' gain over their clean-run payment."""
    if paid is None:
        return {}
    honest = [v for i, v in paid.items() if i not in attackers]
    mine = [paid[i] for i in attackers]
    out: dict[str, Any] = {"ratio": statistics.mean(mine) / max(min(honest), 1),
                           "below": max(mine) < min(honest)}
    if clean is not None:
        gains = [paid[i] / clean[i] for i in attackers if clean[i] > 0]
        out["gain"] = statistics.mean(gains) if gains else None
    return out


def _record(rule: str, family: str, attackers: tuple[int, ...], seed: int,
            r: JobResult) -> dict[str, Any]:
    return {"rule": rule, "family": family, "attackers": len(attackers), "seed": seed,
            "acc": r.accuracy, "backdoor": r.backdoor, "agg_s": r.agg_s}


def seed_runs(seed: int, cfg: Config) -> list[dict[str, Any]]:
    """Every run of one seed: each rule's clean job, each family at each attacker count,
    and the default rule's split runs (one owner through k addresses)."""
    with without_job_outliers(not cfg.job_outliers):
        return _seed_runs(seed, cfg)


def _seed_runs(seed: int, cfg: Config) -> list[dict[str, Any]]:
    t0 = time.perf_counter()
    data = load(seed, cfg.owners)
    out = []
    for rule in rules_of(cfg):
        clean = run_job(data, rule, None, (), cfg.rounds, seed, pay=True)
        out.append(_record(rule.name, "clean", (), seed, clean))
        for count in cfg.counts:
            attackers = attackers_of(seed, cfg.owners, count)
            for name in cfg.families:
                fam = FAMILIES[name]
                r = run_job(data, rule, fam, attackers, cfg.rounds, seed,
                            pay=count in cfg.pay_counts and not fam.reference)
                rec = _record(rule.name, name, attackers, seed, r)
                rec.update(_pay_fields(r.paid, clean.paid if fam.addresses > 1 else None,
                                       attackers))
                out.append(rec)
        if rule.name == cfg.default:
            out += _cohort_runs(data, rule, seed, cfg, clean.paid or {})
            out += _split_runs(data, rule, seed, cfg, clean.paid or {})
    print(f"seed {seed}: {len(out)} runs in {time.perf_counter() - t0:.1f} s", flush=True)
    return out


def _cohort_runs(data: Any, rule: Rule, seed: int, cfg: Config,
                 clean: dict[int, int]) -> list[dict[str, Any]]:
    """The splitting families again, in a job that names its cohort [FED-SPEC.4] (the
    default of ``job submit --federated``): each extra address is refused, so each attacker
    commits once, through the address the job named. Recorded as ``FAMILY@cohort``."""
    out = []
    for count in cfg.counts:
        attackers = attackers_of(seed, cfg.owners, count)
        for name in cfg.families:
            fam = FAMILIES[name]
            if fam.addresses == 1:
                continue
            r = run_job(data, rule, fam, attackers, cfg.rounds, seed,
                        pay=count in cfg.pay_counts, cohort=True)
            rec = _record(rule.name, f"{name}{COHORT}", attackers, seed, r)
            rec.update(_pay_fields(r.paid, clean, attackers))
            out.append(rec)
    return out


def _split_runs(data: Any, rule: Rule, seed: int, cfg: Config,
                clean: dict[int, int]) -> list[dict[str, Any]]:
    """One owner (the seed's first coalition member paid in the clean run) sends its honest
    update through k addresses, with fresh or fixed noise, in a job open to any member and
    in one that names its cohort; gain = its total pay / its clean pay as one address."""
    perm = np.random.default_rng([seed, 7]).permutation(cfg.owners)
    owner = next((int(i) for i in perm if clean.get(int(i), 0) > 0), int(perm[0]))
    out = []
    for admission in ADMISSIONS:
        for noise in NOISES:
            for k in cfg.splits:
                fam = sybil_family(k, fixed=noise == "fixed")
                r = run_job(data, rule, fam, (owner,), cfg.rounds, seed, pay=True,
                            cohort=admission == "cohort")
                rec = _record(rule.name, f"split{k}", (owner,), seed, r)
                rec.update(split=k, noise=noise, admission=admission)
                rec["gain"] = ((r.paid or {})[owner] / clean[owner] if clean.get(owner)
                               else None)
                out.append(rec)
    return out


def timed_round(rule: Rule, dims: int, seed: int = 1) -> float:
    """Seconds for one aggregation of 20 updates × ``dims`` by ``rule`` through
    ``fast.aggregate_round`` (center = a previous step for centered clipping; each
    address's latest earlier update for [FED-REWARD.12] where chain/federated has it),
    median of 3 runs (the machine is shared)."""
    rng = np.random.default_rng(seed)
    direction = rng.normal(size=dims) * 1e-2
    updates = {address(i): quantise(direction + rng.normal(size=dims) * 5e-3)
               for i in range(TIMING_PARTICIPANTS)}
    reference, center = quantise(direction), quantise(0.5 * direction)
    extra: dict[str, Any] = {}
    if LATEST_RULES:
        extra["latest"] = {a: quantise(0.9 * direction + rng.normal(size=dims) * 5e-3)
                           for a in updates}
    times = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        if rule.agg is None:
            rule.aggregate(updates, reference, dims, center)
        elif rule.uses_center:
            fast.aggregate_round(rule.agg, updates, reference, dims, center=center, **extra)
        else:
            fast.aggregate_round(rule.agg, updates, reference, dims, **extra)
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def run_all(cfg: Config, seeds: list[int], jobs: int) -> list[dict[str, Any]]:
    if jobs <= 1:
        return [r for s in seeds for r in seed_runs(s, cfg)]
    with ProcessPoolExecutor(jobs) as pool:
        return [r for rs in pool.map(seed_runs, seeds, [cfg] * len(seeds)) for r in rs]


def tables(records: list[dict[str, Any]], cfg: Config) -> list[str]:
    """The per rule × family tables (markdown), for the terminal and the docs."""
    rules, fams = list(cfg.rules), list(cfg.families)
    out: list[str] = []
    for a in cfg.counts:
        out += [f"#### {a} of {cfg.owners} attackers: median drop in points (seeds more "
                "than 3 points below the clean run)", "",
                *report.matrix(records, rules, fams, a, "drop"), "",
                f"#### {a} of {cfg.owners}: median drop against the coalition absent "
                "(the damage beyond the data it withholds)", "",
                *report.matrix(records, rules, fams, a, "vs_absent"), ""]
        if a in cfg.pay_counts:
            out += [f"#### {a} of {cfg.owners}: attackers' mean pay over the lowest honest "
                    "owner's, median (seeds where every attacker got less than every "
                    "honest owner); ∞: an honest owner got nothing", "",
                    *report.matrix(records, rules, fams, a, "pay"), ""]
    out += ["#### Backdoor success and the 3-address sybils' gain (medians)", "",
            *report.extras(records, rules, list(cfg.counts))]
    return out


def code_version() -> str:
    """The commit the rules were measured at, and whether chain/federated had changes
    beyond it (the rules move while they are tuned on this benchmark)."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, check=True,
                              capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "chain/federated"],
                               cwd=root, check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "an unknown commit"
    return f"commit {head}" + (" with uncommitted changes in chain/federated" if dirty
                               else "")


def docs_body(records: list[dict[str, Any]], cfg: Config, result: dict[str, Any],
              command: str) -> list[str]:
    """The docs/federated.md section: how it was run, the tables, the headline figures."""
    rules = list(cfg.rules)
    lines = [
        "## Poisoning benchmark (issue 49 §3)", "",
        f"Generated by `{command}` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC "
        f"at {code_version()} ({result['elapsed_s']:.0f} s, 2 cores): "
        f"{len(result['seeds'])} seeds, {cfg.rounds} rounds, "
        f"{cfg.owners} owners on a Dirichlet(0.3) split of digits (60 root rows, 30 % "
        "held out), local logistic regression as bench/federated.py, everything after "
        "quantisation through chain/federated (`fast.aggregate_round`, the model step, "
        f"`fast.replay`, `rewards.payout` with bounty {BOUNTY:,} and loo_permille "
        f"{LOO_PERMILLE}). Attackers are omniscient about the round's honest updates; "
        "they are the first owners of a seeded permutation (the 4 include the 2). A drop is "
        "against the same rule's clean run of the same seed, in accuracy points. Payments "
        f"are computed at {', '.join(map(str, cfg.pay_counts))} attackers. "
        "Every job's rounds are replayed by `fast.replay` and checked equal to the "
        "harness's before the payments.", "",
        "Rules: " + "; ".join(f"`{r.name}` ({r.agg.rule} {r.agg.trim})" if r.agg else
                              f"`{r.name}` (experimental)" for r in rules_of(cfg))
        + f". Default: `{cfg.default}`.", "",
        "| family | what the coalition sends (bench/support/fedattacks.py) |", "|---|---|",
        *(f"| {f} | {FAMILIES[f].what} |" for f in cfg.families), "",
        "Notes: the trigger (4 pixels at the left edge) is blank in every digits image, so "
        "honest updates never touch its coordinates: the hardest case for norm-bounding "
        "and clipping rules. The pay ratio takes the lowest honest payment as at least one "
        "unit; ∞ means an honest owner was paid nothing (a job outlier [FED-REWARD.9]) "
        "while the attackers were paid. The tables against the coalition absent separate "
        "the damage done from the data the coalition withholds.", "",
        "### Clean accuracy", "", *report.clean_line(records, rules), "",
        *tables(records, cfg), "",
        f"### Splitting families in a job that names its cohort ({cfg.default})", "",
        "The tables above run every family in a job open to any member. A job that names "
        "its cohort [FED-SPEC.4] refuses every address it did not name (`cohort_admits`, "
        "the chain's own test), so a splitting coalition commits once per owner, through "
        "the address the job named, with the noise it meant for the split:", "",
        *report.cohort_lines(records, cfg.default, list(cfg.counts), COHORT), "",
        f"### Splitting one owner into k addresses ({cfg.default})", "",
        *report.sybil_lines(records), "",
        "### Headline figures", "",
        f"The `_default` figures are `{cfg.default}`'s in a job that names its cohort, "
        "the job a submitter who knows its data owners posts (`job submit --federated "
        "--cohort`; with neither `--cohort` nor `--any-member` the client refuses to "
        "post). There the splitting families are owners paid once for their own data: "
        "they are judged by the split's gain (`sybil_gain_max`, the largest median over "
        "k = 2, 3, 5 and fresh or fixed noise), and the pay figures "
        "(`attackers_over_honest_min_max`, `attackers_below_honest_seeds_min`) cover "
        "the other families. The `any_member_` figures are the same job open to any "
        "member (`--any-member`), every family included: what a submitter accepts there.",
        "", "```json",
        json.dumps({k: result[k] for k in JSON_KEYS[:HEADLINE]}, indent=1), "```", "",
        "Per rule (worst family over the attacks, the absent baseline left out; the bound "
        "each rule claims):", "",
        "| rule | bound | " + " | ".join(
            f"worst median drop {a}/10 | seeds > 3 pts {a}/10" for a in cfg.counts) + " |",
        "|---|---|" + "---|---|" * len(cfg.counts),
    ]
    for name, rule in zip(rules, rules_of(cfg), strict=True):
        cols = []
        for a in cfg.counts:
            s = result["per_rule"][name][str(a)]
            cols += [f"{s['worst_median_drop_pts']} ({s['worst_family']})",
                     str(s["seeds_over_3pts"])]
        lines.append(f"| {name} | {rule.bound} | " + " | ".join(cols) + " |")
    return lines


def summarise(records: list[dict[str, Any]], cfg: Config, agg_s: float, dims: int,
              seeds: list[int], elapsed: float) -> dict[str, Any]:
    acc_fams = [f for f in cfg.families if not FAMILIES[f].reference]
    per_rule: dict[str, Any] = {}
    for rule in cfg.rules:
        accs = [r["acc"] for r in records if r["rule"] == rule and r["family"] == "clean"]
        ms = [r["agg_s"] * 1000 for r in records if r["rule"] == rule and r["family"] == "clean"]
        per_rule[rule] = {"clean_acc": round(statistics.median(accs), 4),
                          "agg_ms_per_round": round(statistics.median(ms), 2)}
        for a in cfg.counts:
            per_rule[rule][str(a)] = report.summary(records, rule, cfg.families, acc_fams, a)
    gains = report.split_gains(records)
    two = 2 if 2 in cfg.counts else cfg.counts[0]
    d = per_rule.get(cfg.default, {}).get(str(two), {})  # every address may commit
    single = [f for f in cfg.families if FAMILIES[f].addresses == 1]
    named = single + [f + COHORT for f in cfg.families if FAMILIES[f].addresses > 1]
    c = report.summary(records, cfg.default, named,
                       [f for f in named if f.removesuffix(COHORT) in acc_fams], two,
                       pay_families=single)
    return {
        "clean_acc_default": per_rule.get(cfg.default, {}).get("clean_acc"),
        "clean_acc_mean": per_rule.get("mean", {}).get("clean_acc"),
        "worst_median_drop_pts_default": c.get("worst_median_drop_pts"),
        "seeds_over_3pts_default": c.get("seeds_over_3pts"),
        "attackers_over_honest_min_max": c.get("attackers_over_honest_min_max"),
        "sybil_gain_max": report.worst_gain(gains, "cohort"),
        "agg_s_per_round_1m": round(agg_s, 4),
        "attackers_below_honest_seeds_min": c.get("attackers_below_every_honest_seeds_min"),
        "any_member_attackers_over_honest_min_max": d.get("attackers_over_honest_min_max"),
        "any_member_sybil_gain_max": report.worst_gain(gains, "any_member"),
        "agg_dims": dims, "default_rule": cfg.default,
        "worst_family_default": c.get("worst_family"),
        "worst_pay_family_default": c.get("worst_pay_family"),
        "per_rule": per_rule, "sybil_gain": gains, "seeds": seeds, "rounds": cfg.rounds,
        "owners": cfg.owners, "attacker_counts": list(cfg.counts),
        "families": list(cfg.families), "elapsed_s": round(elapsed, 1),
    }


def _ints(s: str) -> tuple[int, ...]:
    return tuple(int(x) for x in s.split(",") if x)


def main() -> None:
    known = project_rules(CC_F)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--first-seed", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--owners", type=int, default=10)
    ap.add_argument("--attackers", default="2,4", help="attacker counts, e.g. 2,4")
    ap.add_argument("--pay-attackers", default="2",
                    help="attacker counts whose runs compute payments (leave-one-out)")
    ap.add_argument("--rules", default=",".join(known),
                    help=f"rules: {', '.join(known)}, rule:param, or a variant "
                         f"({', '.join(VARIANTS)})")
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--splits", default="2,3,5", help="addresses in the sybil-gain runs")
    ap.add_argument("--cc-f", type=int, default=CC_F)
    ap.add_argument("--jobs", type=int, default=1, help="worker processes (one seed each)")
    ap.add_argument("--timing-dims", type=int, default=1_000_000)
    ap.add_argument("--save-records", type=Path, help="write every run's record (JSON)")
    ap.add_argument("--round-weights", choices=tuple(REWEIGHS), default="chain",
                    help="an experiment's round weights for every rule (bench/fedsplit.py)")
    ap.add_argument("--without-job-outliers", action="store_true",
                    help="an experiment: no participant is an outlier of the job "
                         "[FED-REWARD.9]")
    ap.add_argument("--write-docs", action="store_true",
                    help="write the tables into docs/federated.md (full runs only)")
    args = parse_args(ap, QUICK)
    known = project_rules(args.cc_f)
    rules = tuple(x for x in args.rules.split(",") if x)
    families = tuple(x for x in args.families.split(",") if x)
    for f in families:
        if f not in FAMILIES:
            raise SystemExit(f"unknown family {f!r}: {', '.join(FAMILIES)}")
    default = "centered_clip" if "centered_clip" in known else "trimmed_mean"
    cfg = Config(rules, families, _ints(args.attackers), _ints(args.pay_attackers),
                 _ints(args.splits), default, args.rounds, args.owners, args.cc_f,
                 args.round_weights, not args.without_job_outliers)
    if args.write_docs and (args.round_weights != "chain" or args.without_job_outliers):
        raise SystemExit("--write-docs records the chain's rules, not an experiment's")
    for r in rules_of(cfg):  # unknown names fail before any run
        print(f"rule {r.name}: {r.agg or 'experimental variant'}, bound {r.bound}")
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    print(f"{len(seeds)} seeds x {len(rules)} rules x {len(families)} families x attackers "
          f"{cfg.counts} (payments at {cfg.pay_counts}), {cfg.rounds} rounds, default rule "
          f"{default}", flush=True)
    t0 = time.perf_counter()
    records = run_all(cfg, seeds, args.jobs)
    if args.save_records:
        args.save_records.write_text(json.dumps(records))
    default_rule = parse_rule(default, known, VARIANTS)
    agg_s = timed_round(default_rule, args.timing_dims)
    print(f"{default} aggregation, {TIMING_PARTICIPANTS} x {args.timing_dims:,}: "
          f"{agg_s:.3f} s (median of {REPEATS})")
    result = summarise(records, cfg, agg_s, args.timing_dims, seeds,
                       time.perf_counter() - t0)
    print()
    print("\n".join(report.clean_line(records, list(rules))))
    print()
    print("\n".join(tables(records, cfg)))
    print()
    print("\n".join(report.sybil_lines(records)))
    if args.write_docs:
        if args.quick:
            raise SystemExit("--write-docs takes a full run, not --quick")
        shown = [a for i, a in enumerate(sys.argv[1:]) if a != "--save-records"
                 and (i == 0 or sys.argv[i] != "--save-records")]
        command = " ".join([".venv/bin/python bench/fedpoison.py", *shown])
        report.write_docs(DOCS, docs_body(records, cfg, result, command))
        print(f"wrote the section of {DOCS}")
    emit(result, JSON_KEYS, sort_keys=True)


if __name__ == "__main__":
    main()
