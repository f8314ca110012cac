"""Coordinate-wise robust aggregates: trimmed mean and median [FED-AGG.2] [FED-AGG.3].

Each coordinate is aggregated on its own over the round's updates, sorted by
value, so the result does not depend on the updates' order, and the only
rounding is ``rdiv`` (nearest, ties to even). Both stay within the range of
the values they are given, so the result is a valid vector [FED-QUANT.3].
"""

from __future__ import annotations

from collections.abc import Sequence

from chain.federated.errors import FederatedError
from chain.federated.fixed import rdiv


def _columns(updates: Sequence[Sequence[int]]) -> list[tuple[int, ...]]:
    if not updates:
        raise FederatedError("no_updates", "an aggregate needs at least one update", n=0)
    dims = {len(u) for u in updates}
    if len(dims) != 1:
        raise FederatedError("bad_dims", f"updates of different lengths {sorted(dims)}",
                             dims=sorted(dims))
    return list(zip(*updates, strict=True))


def trimmed_mean(updates: Sequence[Sequence[int]], trim: int) -> tuple[int, ...]:
    """[FED-AGG.2] Per coordinate: sort the n values, drop the ``trim`` smallest and the
    ``trim`` largest, and take ``rdiv(sum of the other n - 2·trim, n - 2·trim)``. Needs
    ``n >= 2·trim + 1``; ``trim = 0`` is the plain mean.

    Why: up to ``trim`` arbitrary values per coordinate are discarded whatever they are, so
    ``trim`` attackers cannot move a coordinate outside the honest values' range."""
    n = len(updates)
    if trim < 0 or n < 2 * trim + 1:
        raise FederatedError("too_few_updates", f"a trimmed mean with trim {trim} needs at "
                             f"least {2 * trim + 1} updates, got {n}", n=n, trim=trim)
    keep = n - 2 * trim
    if trim == 0:
        return tuple(rdiv(sum(col), n) for col in _columns(updates))
    return tuple(rdiv(sum(sorted(col)[trim:n - trim]), keep) for col in _columns(updates))


def median(updates: Sequence[Sequence[int]]) -> tuple[int, ...]:
    """[FED-AGG.3] Per coordinate: the middle value of the sorted n values; for even n,
    ``rdiv(a + b, 2)`` of the two middle values a <= b (their mean, ties to even).

    Why the mean of the two middles, not the lower one: it is symmetric (a sign-flipped
    round aggregates to the negated median) and unbiased; it stays within [a, b], so still
    within the honest range whenever both middle values are honest."""
    n = len(updates)
    cols = _columns(updates)
    mid = n // 2
    if n % 2:
        return tuple(sorted(col)[mid] for col in cols)
    out = []
    for col in cols:
        s = sorted(col)
        out.append(rdiv(s[mid - 1] + s[mid], 2))
    return tuple(out)
