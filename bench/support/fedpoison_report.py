"""Figures of bench/fedpoison.py from its per-run records: the per rule × family table,
the per-rule summary, and the docs/federated.md section between its markers.

Kept apart from the runs so the table can be rebuilt from saved records (``--records``)
without rerunning the jobs.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BEGIN = "<!-- fedpoison:begin -->"
END = "<!-- fedpoison:end -->"
OVER_PTS = 3.0
"""Issue 49's target: a seed more than 3 points below the rule's clean run counts."""

Record = dict[str, Any]
"""One run: rule, family ("clean" for none), attackers, seed, acc, backdoor, and with
payments ``ratio`` (attackers' mean pay / lowest honest pay), ``below`` (every attacker
paid less than every honest owner) and, for sybils, ``gain``."""


def median(xs: Iterable[float]) -> float | None:
    vals = list(xs)
    return statistics.median(vals) if vals else None


@dataclass(frozen=True)
class Cell:
    """One (rule, family, attackers) over the seeds."""

    seeds: int
    median_drop: float | None
    over: int
    vs_absent: float | None
    """Median drop against the same seed's run with the coalition absent: the damage done
    beyond the data the coalition withholds."""
    ratio: float | None
    below: int | None
    paid_seeds: int
    backdoor: float | None
    gain: float | None


def cells(records: Sequence[Record]) -> dict[tuple[str, str, int], Cell]:
    """Per (rule, family, attackers): median drop in points vs the same rule's clean run of
    the same seed, seeds more than 3 points down, median pay ratio, seeds where every
    attacker is paid less than every honest owner, median backdoor success and gain."""
    clean = {(r["rule"], r["seed"]): r["acc"] for r in records if r["family"] == "clean"}
    gone = {(r["rule"], r["seed"], r["attackers"]): r["acc"] for r in records
            if r["family"] == "absent"}
    groups: dict[tuple[str, str, int], list[Record]] = {}
    for r in records:
        if r["family"] != "clean" and not r["family"].startswith("split"):
            groups.setdefault((r["rule"], r["family"], r["attackers"]), []).append(r)
    out = {}
    for key, rs in groups.items():
        drops = [100 * (clean[(key[0], r["seed"])] - r["acc"]) for r in rs
                 if (key[0], r["seed"]) in clean]
        damage = [100 * (gone[(key[0], r["seed"], key[2])] - r["acc"]) for r in rs
                  if (key[0], r["seed"], key[2]) in gone]
        paid = [r for r in rs if r.get("ratio") is not None]
        out[key] = Cell(len(rs), median(drops), sum(d > OVER_PTS for d in drops),
                        median(damage) if key[1] != "absent" else None,
                        median(r["ratio"] for r in paid),
                        sum(bool(r["below"]) for r in paid) if paid else None, len(paid),
                        median(r["backdoor"] for r in rs) if key[1].startswith("backdoor")
                        else None,
                        median(r["gain"] for r in rs if r.get("gain") is not None))
    return out


INFINITE = 1000.0
"""A pay ratio this large means the lowest honest owner got nothing (its pay is taken as 1
unit): shown as ∞."""


def _f(x: float | None, fmt: str) -> str:
    return "–" if x is None else format(x, fmt)


def _ratio(x: float | None) -> str:
    return "∞" if x is not None and x >= INFINITE else _f(x, ".2f")


METRICS = ("drop", "vs_absent", "pay")


def _cell(c: Cell | None, metric: str) -> str:
    if c is None:
        return "–"
    if metric == "drop":
        return f"{_f(c.median_drop, '.1f')} ({c.over})"
    if metric == "vs_absent":
        return _f(c.vs_absent, ".1f")
    if not c.paid_seeds:
        return "–"
    return f"{_ratio(c.ratio)} ({c.below})"


def matrix(records: Sequence[Record], rules: Sequence[str], families: Sequence[str],
           count: int, metric: str) -> list[str]:
    """Markdown rows, a family per row and a rule per column, at ``count`` attackers:
    ``drop``: median drop in points (seeds more than 3 points down); ``vs_absent``: median
    drop against the coalition absent; ``pay``: median attackers' mean pay over the lowest
    honest owner's (seeds where every attacker got less than every honest owner)."""
    cs = cells(records)
    lines = ["| family | " + " | ".join(rules) + " |", "|---|" + "---|" * len(rules)]
    for fam in families:
        if metric != "drop" and fam == "absent":
            continue
        cols = [_cell(cs.get((rule, fam, count)), metric) for rule in rules]
        if any(c != "–" for c in cols):
            lines.append(f"| {fam} | " + " | ".join(cols) + " |")
    return lines


def extras(records: Sequence[Record], rules: Sequence[str],
           counts: Sequence[int]) -> list[str]:
    """Markdown rows: backdoor success (median) per attacker count and the 3-address
    sybils' gain (median) per rule."""
    cs = cells(records)
    lines = ["| | " + " | ".join(rules) + " |", "|---|" + "---|" * len(rules)]
    for fam in ("backdoor", "backdoor_x1"):
        for a in counts:
            cols = [cs.get((r, fam, a)) for r in rules]
            if any(c is not None for c in cols):
                lines.append(f"| {fam} success {a}/10 | " + " | ".join(
                    _f(c.backdoor if c else None, ".2f") for c in cols) + " |")
    for a in counts:
        cols = [cs.get((r, "sybil3", a)) for r in rules]
        if any(c is not None and c.gain is not None for c in cols):
            lines.append(f"| sybil gain, 3 addresses, {a}/10 | " + " | ".join(
                _f(c.gain if c else None, ".2f") for c in cols) + " |")
    return lines


def cohort_lines(records: Sequence[Record], rule: str, counts: Sequence[int],
                 suffix: str) -> list[str]:
    """Markdown rows: each splitting family in a job open to any member and in one that
    names its cohort (``FAMILY`` + ``suffix``): median drop (seeds over 3 points) and the
    attackers' gain over their pay as one address (median)."""
    cs = cells(records)
    fams = sorted({f.removesuffix(suffix) for (r, f, _) in cs if r == rule
                   and f.endswith(suffix)})
    lines = ["| family | attackers | job | median drop (seeds > 3 pts) | gain (median) |",
             "|---|---|---|---|---|"]
    for fam in fams:
        for a in counts:
            for label, name in (("any member", fam), ("cohort named", fam + suffix)):
                c = cs.get((rule, name, a))
                if c is not None:
                    lines.append(f"| {fam} | {a}/10 | {label} | "
                                 f"{_f(c.median_drop, '.1f')} ({c.over}) | "
                                 f"{_f(c.gain, '.2f')} |")
    return lines


def clean_line(records: Sequence[Record], rules: Sequence[str]) -> list[str]:
    """Markdown rows: each rule's clean accuracy (median, min, max over seeds)."""
    lines = ["| rule | clean accuracy (median) | min | max |", "|---|---|---|---|"]
    for rule in rules:
        accs = [r["acc"] for r in records if r["rule"] == rule and r["family"] == "clean"]
        if accs:
            lines.append(f"| {rule} | {statistics.median(accs):.3f} | {min(accs):.3f} | "
                         f"{max(accs):.3f} |")
    return lines


def sybil_lines(records: Sequence[Record]) -> list[str]:
    """Markdown rows: the gain of one owner split into k addresses (default rule), with
    fresh and fixed noise, in a job that names its cohort and in one open to any member."""
    splits = [r for r in records if r["family"].startswith("split")
              and r.get("gain") is not None]
    ks = sorted({r["split"] for r in splits})
    lines = ["| job | noise | addresses | gain (median) | min | max |",
             "|---|---|---|---|---|---|"]
    for admission, label in (("cohort", "cohort named (`--cohort`)"),
                             ("any_member", "any member (`--any-member`)")):
        for noise in ("fresh", "fixed"):
            for k in ks:
                gs = [r["gain"] for r in splits if r["split"] == k
                      and r.get("admission", "any_member") == admission
                      and r.get("noise", "fresh") == noise]
                if gs:
                    lines.append(f"| {label} | {noise} | {k} | {statistics.median(gs):.2f} "
                                 f"| {min(gs):.2f} | {max(gs):.2f} |")
    return lines


def split_gains(records: Sequence[Record]) -> dict[str, Any]:
    """``{admission: {noise: {k: {median, max}}}}`` of the split runs' gains."""
    out: dict[str, Any] = {}
    for r in records:
        if r["family"].startswith("split") and r.get("gain") is not None:
            key = (r.get("admission", "any_member"), r.get("noise", "fresh"), str(r["split"]))
            out.setdefault(key, []).append(r["gain"])
    nested: dict[str, Any] = {}
    for (admission, noise, k), gs in sorted(out.items()):
        nested.setdefault(admission, {}).setdefault(noise, {})[k] = {
            "median": round(statistics.median(gs), 3), "max": round(max(gs), 3)}
    return nested


def worst_gain(gains: dict[str, Any], admission: str) -> float | None:
    """The largest median gain over noise kinds and address counts of one admission."""
    ms = [g["median"] for by_k in gains.get(admission, {}).values() for g in by_k.values()]
    return max(ms) if ms else None


def summary(records: Sequence[Record], rule: str, families: Sequence[str],
            attack_families: Sequence[str], count: int,
            pay_families: Sequence[str] | None = None) -> dict[str, Any]:
    """The issue's figures for one rule at ``count`` attackers: worst median drop (over
    the families that aim at accuracy), the most seeds over 3 points, the worst median
    pay ratio and the fewest seeds with every attacker below every honest owner (over
    ``pay_families``, by default every family)."""
    cs = cells(records)
    mine = {f: cs[(rule, f, count)] for f in families if (rule, f, count) in cs}
    drops = {f: c.median_drop for f, c in mine.items()
             if f in attack_families and c.median_drop is not None}
    paying = mine if pay_families is None else {f: c for f, c in mine.items()
                                                if f in pay_families}
    ratios = {f: c.ratio for f, c in paying.items() if c.ratio is not None}
    belows = {f: c.below for f, c in paying.items() if c.below is not None}
    worst = max(drops, key=lambda f: drops[f]) if drops else None
    bds = {f: round(c.backdoor, 3) for f, c in mine.items() if c.backdoor is not None}
    return {
        "worst_median_drop_pts": round(drops[worst], 2) if worst else None,
        "worst_family": worst,
        "seeds_over_3pts": max((mine[f].over for f in drops), default=None),
        "attackers_over_honest_min_max": round(max(ratios.values()), 3) if ratios else None,
        "worst_pay_family": max(ratios, key=lambda f: ratios[f]) if ratios else None,
        "attackers_below_every_honest_seeds_min": min(belows.values()) if belows else None,
        "backdoor_success_median": bds or None,
    }


def write_docs(path: Path, body: Sequence[str]) -> None:
    """Replaces the text between the markers (appends the section when absent); nothing
    else in the file changes."""
    text = path.read_text() if path.exists() else ""
    block = "\n".join([BEGIN, *body, END])
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        text = head + block + tail
    else:
        text = text + ("" if text.endswith("\n") or not text else "\n") + "\n" + block + "\n"
    path.write_text(text)
