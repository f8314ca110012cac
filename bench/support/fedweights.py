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

import math
from collections.abc import Mapping

import numpy as np
from scipy.optimize import nnls

from bench.support.fedsim import Ints, Reweigh

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


def shapley_weights(updates: Mapping[bytes, Ints], reference: Ints,
                    weights: dict[bytes, int]) -> dict[bytes, int]:
    """Each named address's exact Shapley value in the round's game ``U(S) = ‖r‖² − ‖r −
    mean(S)‖²`` (``r`` the job owner's root update [FED-AGG.5], ``U(∅) = 0``: how much
    closer the mean of a coalition's updates comes to the owner's direction), negative
    values paid 0, as shares of the round in units of 2⁻³². Shapley pays substitutes
    less: a second copy of an update barely moves a coalition's mean. The mean stands
    for the rule's aggregate (centered clipping moves it little for updates the round
    accepts). Exact over every coalition: 2ⁿ of them, for at most 16 named addresses."""
    named = [a for a in sorted(weights) if weights[a] > 0]
    out = dict.fromkeys(weights, 0)
    n = len(named)
    if n == 0:
        return out
    if n > 16:
        raise ValueError(f"exact Shapley over {n} addresses: at most 16")
    ups = np.stack([updates[a] for a in named]).astype(np.float64)
    ref = reference.astype(np.float64)
    masks = np.arange(1 << n)
    member = ((masks[:, None] >> np.arange(n)[None, :]) & 1).astype(np.float64)
    sizes = member.sum(axis=1)
    sums = member @ ups
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(sizes[:, None] > 0, sums / np.maximum(sizes, 1)[:, None], 0.0)
    utility = float(ref @ ref) - ((ref[None, :] - means) ** 2).sum(axis=1)
    utility[0] = 0.0
    by_size = np.array([math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n)
                        for k in range(n)])
    phi = np.zeros(n)
    for i in range(n):
        without = masks[(masks >> i) & 1 == 0]
        coef = by_size[sizes[without].astype(int)]
        phi[i] = float((coef * (utility[without | (1 << i)] - utility[without])).sum())
    positive = np.maximum(phi, 0.0)
    total = positive.sum()
    if total <= 0:
        return out
    out.update({a: round(float(p) / total * MIX_UNIT) for a, p in zip(named, positive,
                                                                     strict=True)})
    return out
