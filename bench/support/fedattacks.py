"""Poisoning attacks on one federated round, as a coalition of data owners mounts them
(issue 49 §3, bench/fedpoison.py).

Each family is a pure function of what the coalition sees in the round and a seeded
random generator: the worst case of the literature, attackers *omniscient* about every
honest update of the round (they may collude with the aggregator or read the revealed
blobs of an earlier, identical round). Updates are float vectors in model units; the
harness quantises them at 2**16 [FED-QUANT.2] and keeps them distinct from every other
vector of the round (attackers know that exact copies are excluded [FED-AGG.8]).

Why our own implementations: the benchmark must be reproducible from this repository
alone, and each family is a few lines once the round's honest updates are at hand.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

from chain.federated.rewards import COPY_TRUST, NORM_OUTLIER_SQ

Floats = npt.NDArray[np.float64]
SCALE = float(1 << 16)
"""Updates are sent at 2**16 [FED-QUANT.2]; the sybil calibration measures cosines on the
quantised vectors, as the chain does."""


@dataclass(frozen=True, slots=True)
class RoundView:
    """What the coalition knows when it sends its updates for one round."""

    honest: Floats
    """(owners, dims): every owner's honest local update this round, the attackers' own
    honest updates included (full knowledge)."""
    attackers: tuple[int, ...]
    """Owner indices (rows of ``honest``) that attack."""
    round: int
    """0-based round index."""
    rounds: int
    previous: Floats | None
    """(owners, dims): what each owner's main address sent in the round before (None in
    the first), for replaying free-riders."""
    poisoned: Floats | None = None
    """(attackers, dims): each attacker's update trained on its rows plus trigger-stamped
    copies relabelled to the target class (the backdoor family only)."""


Sent = list[list[Floats]]
"""Per attacker (in ``attackers`` order), the vectors it sends: one per address."""
Attack = Callable[[RoundView, np.random.Generator], Sent]


@dataclass(frozen=True, slots=True)
class Family:
    """One attack family: its function, and what the harness must prepare for it."""

    name: str
    attack: Attack
    what: str
    """One line for the table's legend."""
    needs_poison: bool = False
    addresses: int = 1
    """Addresses each attacker sends through (sybils: more than one)."""
    reference: bool = False
    """A baseline, not an attack (the coalition absent): shown, never the worst family."""


def absent(view: RoundView, rng: np.random.Generator) -> Sent:
    """The coalition sends nothing: what the job loses with its data alone, so a drop can
    be read as data lost versus damage done."""
    return [[] for _ in view.attackers]


def _same(view: RoundView, v: Floats) -> Sent:
    """Every attacker sends ``v`` (the harness dithers them apart by one quantum)."""
    return [[v.copy()] for _ in view.attackers]


# ---------------------------------------------------------------- statistical attacks

def alie_z(n: int, m: int) -> float:
    """Baruch et al. (NeurIPS 2019, "A little is enough"): the largest z such that the
    shifted value still has s = floor(n/2 + 1) - m honest values beyond it, so that the
    coordinate-wise rules and Krum keep the attackers in their majority."""
    s = n // 2 + 1 - m
    return NormalDist().inv_cdf(max(min((n - s) / n, 1 - 1e-9), 0.5))


def variance_hiding(view: RoundView, rng: np.random.Generator) -> Sent:
    """mean − z·std per coordinate: inside the honest spread, always pulling one way."""
    mu, sd = view.honest.mean(axis=0), view.honest.std(axis=0)
    z = alie_z(view.honest.shape[0], len(view.attackers))
    return _same(view, mu - z * sd)


def inner_product(eps: float) -> Attack:
    """Xie et al. (UAI 2019): −ε × the honest mean, so the aggregate's inner product with
    the true gradient turns negative (large ε) or the step shrinks unnoticed (small ε)."""
    def attack(view: RoundView, rng: np.random.Generator) -> Sent:
        return _same(view, -eps * view.honest.mean(axis=0))
    return attack


def _direction(mu: Floats, kind: str) -> Floats:
    """Shejwalkar & Houmansadr's perturbations: the inverse unit vector or inverse sign."""
    if kind == "unit":
        norm = float(np.linalg.norm(mu))
        return -mu / norm if norm > 0 else np.zeros_like(mu)
    return -np.sign(mu)


def _largest_gamma(ok: Callable[[float], bool], start: float = 1.0,
                   steps: int = 40) -> float:
    """The largest γ >= 0 with ``ok(γ)``, by doubling then bisection (0 if none)."""
    lo, hi = 0.0, start
    while ok(hi) and hi < 1e9:
        lo, hi = hi, 2 * hi
    for _ in range(steps):
        mid = (lo + hi) / 2
        if ok(mid):
            lo = mid
        else:
            hi = mid
    return lo


def _pairwise_sq(h: Floats) -> Floats:
    g = h @ h.T
    n2 = np.diag(g)
    return np.maximum(n2[:, None] + n2[None, :] - 2 * g, 0.0)


def min_max(kind: str) -> Attack:
    """NDSS'21 min-max: mean + γ·p with the largest γ whose distance to every honest
    update stays within the largest honest pairwise distance."""
    def attack(view: RoundView, rng: np.random.Generator) -> Sent:
        h = view.honest
        mu, p = h.mean(axis=0), _direction(h.mean(axis=0), kind)
        bound = float(_pairwise_sq(h).max())

        def ok(g: float) -> bool:
            return float((((mu + g * p) - h) ** 2).sum(axis=1).max()) <= bound
        return _same(view, mu + _largest_gamma(ok) * p)
    return attack


def min_sum(kind: str) -> Attack:
    """NDSS'21 min-sum: mean + γ·p with the largest γ whose summed squared distance to
    the honest updates stays within the largest honest update's sum."""
    def attack(view: RoundView, rng: np.random.Generator) -> Sent:
        h = view.honest
        mu, p = h.mean(axis=0), _direction(h.mean(axis=0), kind)
        bound = float(_pairwise_sq(h).sum(axis=1).max())

        def ok(g: float) -> bool:
            return float((((mu + g * p) - h) ** 2).sum()) <= bound
        return _same(view, mu + _largest_gamma(ok) * p)
    return attack


# ---------------------------------------------------------------- targeted and adaptive

BOOST = 10.0
NORM_ROOM = 0.99 * math.sqrt(NORM_OUTLIER_SQ)
"""A boosted update stays just inside [FED-REWARD.7]'s norm bound (10 × the median norm),
so it keeps its round weight and is not an obvious outlier."""


def backdoor(boost: float) -> Attack:
    """Bagdasaryan et al. (AISTATS 2020) model replacement, bounded: the update trained on
    trigger-stamped rows, boosted ×``boost`` or to just under the norm bound, whichever is
    less (``boost`` 1: the plain poisoned update, the weakest form)."""
    def attack(view: RoundView, rng: np.random.Generator) -> Sent:
        if view.poisoned is None:
            raise ValueError("the backdoor family needs the attackers' poisoned updates")
        median_norm = float(np.median(np.linalg.norm(view.honest, axis=1)))
        out: Sent = []
        for u in view.poisoned:
            norm = float(np.linalg.norm(u))
            factor = boost if norm == 0 else min(boost, NORM_ROOM * median_norm / norm)
            out.append([factor * u])
        return out
    return attack


ONOFF_EPS = 10.0


def on_off(view: RoundView, rng: np.random.Generator) -> Sent:
    """Honest for the first third of the rounds (earning round weight), then IPM at
    ε = 10: a payment rule that only looks at the end, or averages, still pays it."""
    if view.round < view.rounds // 3:
        return [[view.honest[a].copy()] for a in view.attackers]
    return inner_product(ONOFF_EPS)(view, rng)


# ---------------------------------------------------------------- free-riders and sybils

NOISE_FRACTION = 0.1


def free_zero(view: RoundView, rng: np.random.Generator) -> Sent:
    """No work at all: the zero update."""
    return _same(view, np.zeros(view.honest.shape[1]))


def free_noise(view: RoundView, rng: np.random.Generator) -> Sent:
    """No work: Gaussian noise of a tenth of the median honest norm."""
    d = view.honest.shape[1]
    sd = NOISE_FRACTION * float(np.median(np.linalg.norm(view.honest, axis=1))) / math.sqrt(d)
    return [[np.asarray(rng.normal(0.0, sd, size=d), dtype=np.float64)]
            for _ in view.attackers]


def free_replay(nudge: int) -> Attack:
    """No work: each attacker re-sends another (honest) owner's update of the round before,
    a different one each (zeros in the first round); ``nudge`` > 0 adds that many quanta to
    one coordinate, just past [FED-REWARD.10]'s one-quantum match."""
    def attack(view: RoundView, rng: np.random.Generator) -> Sent:
        d = view.honest.shape[1]
        if view.previous is None:
            return _same(view, np.zeros(d))
        honest = [i for i in range(view.honest.shape[0]) if i not in view.attackers]
        out: Sent = []
        for j in range(len(view.attackers)):
            v = view.previous[honest[j % len(honest)]].copy()
            if nudge:
                v[int(rng.integers(d))] += nudge / SCALE
            out.append([v])
        return out
    return attack


def free_mean_replay(view: RoundView, rng: np.random.Generator) -> Sent:
    """No work, and no omniscience: the mean of the updates revealed in the round before
    (public blobs), which agrees with this round's direction better than most owners do,
    yet is near no single earlier update (zeros in the first round)."""
    d = view.honest.shape[1]
    if view.previous is None:
        return _same(view, np.zeros(d))
    return _same(view, view.previous.mean(axis=0))


SYBIL_MARGIN = 0.002
"""The copies' largest pairwise cosine stays this far below [FED-REWARD.8]'s threshold."""


def _max_cosine(vs: Floats) -> float:
    q = np.rint(vs * SCALE)
    n = np.linalg.norm(q, axis=1)
    g = (q @ q.T) / np.maximum(np.outer(n, n), 1e-300)
    np.fill_diagonal(g, -1.0)
    return float(g.max())


def split_with_noise(u: Floats, k: int, rng: np.random.Generator,
                     fixed: Floats | None = None) -> list[Floats]:
    """``u`` through ``k`` addresses, each plus Gaussian noise scaled (by bisection) so
    the copies' largest pairwise cosine is just under the near-copy threshold
    [FED-REWARD.8]: they keep k full weights instead of sharing one. ``fixed``: the same
    noise directions every round (against [FED-REWARD.11]'s running sums)."""
    if k == 1:
        return [u.copy()]
    target = COPY_TRUST / 65536 - SYBIL_MARGIN
    per_coordinate = float(np.linalg.norm(u)) / math.sqrt(len(u))
    base = rng.normal(size=(k, u.shape[0])) if fixed is None else fixed
    noise: Floats = base * per_coordinate
    lo, hi = 0.0, 4.0
    while _max_cosine(u + hi * noise) >= target and hi < 1e6:
        lo, hi = hi, 2 * hi
    for _ in range(30):
        mid = (lo + hi) / 2
        if _max_cosine(u + mid * noise) >= target:
            lo = mid
        else:
            hi = mid
    return [u + hi * noise[i] for i in range(k)]


def sybil(k: int, fixed: bool = False) -> Attack:
    """Each attacker sends its own honest update through ``k`` addresses with noise: fresh
    each round, or (``fixed``) the same directions every round, drawn once per attacker."""
    def attack(view: RoundView, rng: np.random.Generator) -> Sent:
        out = []
        for a in view.attackers:
            base = np.random.default_rng([a, k, 4911]).normal(
                size=(k, view.honest.shape[1])) if fixed else None
            out.append(split_with_noise(view.honest[a], k, rng, base))
        return out
    return attack


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("variance_hiding", variance_hiding, "mean − z·std per coordinate (ALIE, z from n, m)"),
    Family("ipm_0.1", inner_product(0.1), "−0.1 × honest mean (IPM, small)"),
    Family("ipm_10", inner_product(10.0), "−10 × honest mean (IPM, large)"),
    Family("minmax_unit", min_max("unit"), "min-max, inverse unit direction"),
    Family("minmax_sign", min_max("sign"), "min-max, inverse sign direction"),
    Family("minsum_unit", min_sum("unit"), "min-sum, inverse unit direction"),
    Family("minsum_sign", min_sum("sign"), "min-sum, inverse sign direction"),
    Family("backdoor", backdoor(BOOST), "trigger backdoor, boosted ×10 within the norm bound",
           needs_poison=True),
    Family("backdoor_x1", backdoor(1.0), "trigger backdoor, not boosted", needs_poison=True),
    Family("on_off", on_off, "honest for rounds/3, then IPM ε = 10"),
    Family("free_zero", free_zero, "free-rider: zero update"),
    Family("free_noise", free_noise, "free-rider: noise, 0.1 × median honest norm"),
    Family("free_replay", free_replay(0), "free-rider: another owner's previous update"),
    Family("free_replay_2q", free_replay(2),
           "free-rider: another owner's previous update, one coordinate 2 quanta off"),
    Family("free_mean_replay", free_mean_replay,
           "free-rider: the mean of the round before's revealed updates"),
    Family("sybil3", sybil(3), "own honest update via 3 addresses, noise under COPY_TRUST",
           addresses=3),
    Family("sybil3_fixed", sybil(3, fixed=True),
           "own honest update via 3 addresses, the same noise directions every round",
           addresses=3),
    Family("absent", absent, "baseline: the coalition sends nothing", reference=True),
)}
"""The families of issue 49 §3, in table order."""


def sybil_family(k: int, fixed: bool = False) -> Family:
    """One owner split into ``k`` addresses (the sybil-gain runs): fresh noise each round,
    or (``fixed``) the same directions every round."""
    return Family(f"sybil{k}" + ("_fixed" if fixed else ""), sybil(k, fixed),
                  f"own update via {k} addresses", addresses=k)
