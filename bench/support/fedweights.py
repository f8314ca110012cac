"""Experimental round weights for bench/fedsplit.py (issue 49 §2): measured, not protocol.

``nnls_weights`` pays a round by how much of the job owner's root update
([FED-AGG.5]'s reference, revealed every round) each update is needed to rebuild: the
non-negative least-squares coefficients ``α`` of ``reference ≈ Σ αᵢ uᵢ``. k noisy copies
of one update are collinear in their signal, so the fit shares one coefficient among them
(their noise only worsens it), where the chain's weights [FED-AGG.7] pay each copy for its
own agreement with the round. The fit is sparse: an update the others already explain
gets 0, whoever sent it.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping

import numpy as np
from scipy.optimize import nnls

from bench.support import fedsim
from bench.support.fedsim import Ints, Reweigh
from chain.federated import rewards

SCALE = 1 << 16
"""Coefficients as integers, 1.0 = 65,536 (the unit of a round weight's trust)."""
MIX_UNIT = 1 << 32
"""A mixed weight's unit: the whole round is 2³² (within [FED-REWARD.5]'s weight bound)."""


def nnls_weights(updates: Mapping[bytes, Ints], reference: Ints,
                 weights: dict[bytes, int]) -> dict[bytes, int]:
    """Each address the rule named, weighted ``round(αᵢ · 2¹⁶)``; an address the rule left at
    weight 0 (an outlier, a replay) stays at 0 and takes no part in the fit."""
    named = [a for a in sorted(weights) if weights[a] > 0]
    out = dict.fromkeys(weights, 0)
    if not named:
        return out
    basis = np.stack([updates[a] for a in named]).astype(np.float64).T
    alpha, _ = nnls(basis, reference.astype(np.float64), maxiter=50 * len(named))
    out.update({a: round(float(x) * SCALE) for a, x in zip(named, alpha, strict=True)})
    return out


def mixed_weights(chain_share: float) -> Reweigh:
    """Round weights ``(1 − s) · nnls share + s · the chain's share`` (each normalised over
    the round, in units of 2⁻³²): the chain's part keeps every owner the fit leaves out
    paid something, and is what a split can multiply."""
    def weigh(updates: Mapping[bytes, Ints], reference: Ints,
              weights: dict[bytes, int]) -> dict[bytes, int]:
        fit = nnls_weights(updates, reference, weights)
        fit_sum, chain_sum = sum(fit.values()), sum(w for w in weights.values() if w > 0)
        if fit_sum <= 0 or chain_sum <= 0:
            return dict(weights)
        return {a: round(((1 - chain_share) * fit[a] / fit_sum
                          + chain_share * max(w, 0) / chain_sum) * MIX_UNIT)
                for a, w in weights.items()}
    return weigh


EXACT_SHAPLEY_MAX = 14
"""Named addresses up to which ``shapley_weights`` sums every coalition (16,384; the
means of 2ⁿ coalitions take 2ⁿ × the model's size in memory)."""
SHAPLEY_PERMUTATIONS = 400
"""Orders of arrival sampled above that (seeded by the round's size: reproducible)."""


def _utility(means: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """``U = ‖r‖² − ‖r − m‖²`` for each row ``m``."""
    return float(ref @ ref) - ((ref[None, :] - means) ** 2).sum(axis=1)


def _exact_shapley(ups: np.ndarray, ref: np.ndarray) -> np.ndarray:
    n = len(ups)
    masks = np.arange(1 << n)
    member = ((masks[:, None] >> np.arange(n)[None, :]) & 1).astype(np.float64)
    sizes = member.sum(axis=1)
    means = (member @ ups) / np.maximum(sizes, 1)[:, None]
    utility = _utility(means, ref)
    utility[0] = 0.0
    by_size = np.array([math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n)
                        for k in range(n)])
    phi = np.zeros(n)
    for i in range(n):
        without = masks[(masks >> i) & 1 == 0]
        coef = by_size[sizes[without].astype(int)]
        phi[i] = float((coef * (utility[without | (1 << i)] - utility[without])).sum())
    return phi


def _sampled_shapley(ups: np.ndarray, ref: np.ndarray) -> np.ndarray:
    n = len(ups)
    rng = np.random.default_rng([49, n])
    phi = np.zeros(n)
    for _ in range(SHAPLEY_PERMUTATIONS):
        order = rng.permutation(n)
        prefix = np.cumsum(ups[order], axis=0) / np.arange(1, n + 1)[:, None]
        gains = np.diff(np.concatenate([[0.0], _utility(prefix, ref)]))
        phi[order] += gains
    return phi / SHAPLEY_PERMUTATIONS


def shapley_weights(updates: Mapping[bytes, Ints], reference: Ints,
                    weights: dict[bytes, int]) -> dict[bytes, int]:
    """Each named address's exact Shapley value in the round's game ``U(S) = ‖r‖² − ‖r −
    mean(S)‖²`` (``r`` the job owner's root update [FED-AGG.5], ``U(∅) = 0``: how much
    closer the mean of a coalition's updates comes to the owner's direction), negative
    values paid 0, as shares of the round in units of 2⁻³². Shapley pays substitutes
    less: a second copy of an update barely moves a coalition's mean. The mean stands
    for the rule's aggregate (centered clipping moves it little for updates the round
    accepts). Exact over every coalition (2ⁿ of them) for at most ``EXACT_SHAPLEY_MAX``
    named addresses, else estimated from ``SHAPLEY_PERMUTATIONS`` orders of arrival."""
    named = [a for a in sorted(weights) if weights[a] > 0]
    out = dict.fromkeys(weights, 0)
    n = len(named)
    if n == 0:
        return out
    ups = np.stack([updates[a] for a in named]).astype(np.float64)
    ref = reference.astype(np.float64)
    phi = _exact_shapley(ups, ref) if n <= EXACT_SHAPLEY_MAX else _sampled_shapley(ups, ref)
    positive = np.maximum(phi, 0.0)
    total = positive.sum()
    if total <= 0:
        return out
    out.update({a: round(float(p) / total * MIX_UNIT) for a, p in zip(named, positive,
                                                                     strict=True)})
    return out


REWEIGHS: dict[str, Reweigh | None] = {"chain": None, "nnls": nnls_weights,
                                       "shapley": shapley_weights}
"""``--round-weights`` of bench/fedsplit.py and bench/fedpoison.py: ``chain`` keeps the
rule's own weights [FED-AGG.7]."""


@contextlib.contextmanager
def without_job_outliers(lifted: bool) -> Iterator[None]:
    """With ``lifted``, no participant is an outlier of the job [FED-REWARD.9] (in the
    payout and in the end ballot) for the runs inside."""
    saved = rewards.job_outliers, fedsim.job_outliers
    if lifted:
        rewards.job_outliers = fedsim.job_outliers = lambda weights: set()
    try:
        yield
    finally:
        rewards.job_outliers, fedsim.job_outliers = saved
