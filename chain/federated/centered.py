"""Centered clipping after nearest-neighbour mixing (``centered_clip``, parameter f)
[FED-AGG.10] [FED-AGG.11], the default rule of a federated job.

After Karimireddy, He and Jaggi (*Learning from History for Byzantine Robust
Optimization*, ICML 2021; *Byzantine-Robust Learning on Heterogeneous Datasets via
Bucketing*, ICLR 2022) and Allouah et al. (*Fixing by Mixing*, AISTATS 2023), whose
nearest-neighbour mixing the byzfl library ships as a pre-aggregator:

1. mixing: each update is replaced by the mean of its ``n - f`` nearest updates (itself
   included), which shrinks the honest updates' spread on non-IID data and dilutes an
   attacker's vector into honest neighbours;
2. clipping: each mixed update's difference from the *center* (the last accepted
   round's model step, a momentum the ledger already keeps as two model blobs) is
   clipped to a radius: the lower median of those differences' norms, so at least half
   the updates pass unchanged and no update moves the aggregate by more than
   ``radius / n``;
3. the aggregate is the center plus the mean of the clipped differences.

Pure-Python integers, the spec's executable definition; ``fast.centered_clip_array``
computes the same integers with numpy.
"""

from __future__ import annotations

from collections.abc import Sequence

from chain.federated.errors import FederatedError
from chain.federated.fixed import clamp, rdiv
from chain.federated.fltrust import norm_factor, normalise, square_norm
from chain.federated.robust import square_distance


def lower_median(values: Sequence[int]) -> int:
    """The element at index ``(n - 1) // 2`` of the values sorted ascending (n >= 1)."""
    return sorted(values)[(len(values) - 1) // 2]


def nearest(distances: Sequence[Sequence[int]], i: int, keep: int) -> list[int]:
    """[FED-AGG.10] The ``keep`` indices j with the smallest ``(distances[i][j], j)``; i is
    among them (its distance to itself is 0 and copies are excluded [FED-AGG.8])."""
    return sorted(range(len(distances)), key=lambda j: (distances[i][j], j))[:keep]


def mix_nearest(updates: Sequence[Sequence[int]], f: int) -> list[tuple[int, ...]]:
    """[FED-AGG.10] Step 1: ``y_i = rdiv(sum of the n - f nearest updates to g_i, n - f)``
    per coordinate, nearness by exact squared distance, ties by index (address order)."""
    n = len(updates)
    keep = n - f
    d = [[0] * n for _ in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            d[i][j] = d[j][i] = square_distance(updates[i], updates[j])
    out = []
    for i in range(n):
        rows = [updates[j] for j in nearest(d, i, keep)]
        out.append(tuple(rdiv(sum(col), keep) for col in zip(*rows, strict=True)))
    return out


def clip_to(diff: Sequence[int], d2: int, radius2: int) -> tuple[int, ...]:
    """[FED-AGG.10] Step 2 for one difference of squared norm ``d2``: unchanged when
    ``d2 <= radius2``; else rescaled to the radius exactly as FLTrust rescales to the
    reference's norm [FED-AGG.5]: ``clamp(rdiv(e_j · F, 2**32))`` with
    ``F = isqrt(2**64 · radius2 // d2)``."""
    if d2 <= radius2:
        return tuple(diff)
    return normalise(diff, norm_factor(d2, radius2))


def centered_clip(updates: Sequence[Sequence[int]], center: Sequence[int],
                  f: int) -> tuple[int, ...]:
    """[FED-AGG.10] The aggregate of n >= f + 1 updates around ``center`` [FED-AGG.11]:

    1. ``y_i`` = ``mix_nearest(updates, f)``;
    2. ``e_i = clamp(y_i - c)`` per coordinate, ``D_i = sum_j e_ij ** 2``,
       ``R = lower_median(D_1..D_n)`` (the squared radius), ``z_i = clip_to(e_i, D_i, R)``;
    3. ``a_j = clamp(c_j + rdiv(sum_i z_ij, n))``.

    With f = 0 every ``y_i`` is the plain mean, nothing is clipped and the result is the
    plain mean (``rdiv`` of the same sum): f is the attackers the rule is asked to bear."""
    n = len(updates)
    if f < 0 or n < f + 1:
        raise FederatedError("too_few_updates", f"centered clipping with f {f} needs at "
                             f"least {f + 1} updates, got {n}", n=n, trim=f)
    dims = len(center)
    if any(len(u) != dims for u in updates):
        raise FederatedError("bad_dims", "every update needs the center's length",
                             dims=sorted({len(u) for u in updates}), expected=dims)
    mixed = mix_nearest(updates, f)
    diffs = [tuple(clamp(y - c) for y, c in zip(m, center, strict=True)) for m in mixed]
    d2s = [square_norm(e) for e in diffs]
    radius2 = lower_median(d2s)
    clipped = [clip_to(e, d2, radius2) for e, d2 in zip(diffs, d2s, strict=True)]
    return tuple(clamp(c + rdiv(sum(col), n))
                 for c, col in zip(center, zip(*clipped, strict=True), strict=True))


def model_step(before: Sequence[int], after: Sequence[int]) -> tuple[int, ...]:
    """[FED-AGG.11] The step a round applied: ``clamp(after_j - before_j)``."""
    if len(before) != len(after):
        raise FederatedError("bad_dims", "a step needs two models of one length",
                             dims=(len(before), len(after)))
    return tuple(clamp(a - b) for a, b in zip(after, before, strict=True))
