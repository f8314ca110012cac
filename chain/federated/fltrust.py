"""Trust-weighted aggregation in the spirit of FLTrust (Cao et al., NDSS 2021)
[FED-AGG.4] [FED-AGG.5] [FED-AGG.6].

The job's owner trains on a small clean root dataset each round and reveals that
*reference* update with the others. Each participant's update is scored by its
direction against the reference (ReLU of the cosine similarity) and rescaled to
the reference's norm, so neither a sign flip nor scaling by 100 buys influence.
Everything is exact: cosines are compared as squared integer quotients and the
square roots are ``math.isqrt`` (floor), so every machine gets the same trust.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from chain.federated.errors import FederatedError
from chain.federated.fixed import clamp, rdiv

TRUST_BITS = 16
TRUST_ONE = 1 << TRUST_BITS
"""[FED-AGG.4] Trust is an integer in 0..2**16: 2**16 is cosine 1 (same direction)."""
NORM_BITS = 32
"""[FED-AGG.5] The norm factor is a fixed-point number with 32 fractional bits."""


def square_norm(v: Sequence[int]) -> int:
    """[FED-AGG.4] ``sum(v_j ** 2)``, exact."""
    return sum(x * x for x in v)


def dot(a: Sequence[int], b: Sequence[int]) -> int:
    """[FED-AGG.4] ``sum(a_j * b_j)``, exact."""
    if len(a) != len(b):
        raise FederatedError("bad_dims", f"dot of {len(a)} and {len(b)} coordinates",
                             dims=(len(a), len(b)))
    return sum(x * y for x, y in zip(a, b, strict=True))


def trust_from(d: int, n2: int, ref_n2: int) -> int:
    """[FED-AGG.4] ``floor(2**16 · ReLU(cos))`` from the dot product and both squared norms:
    0 when ``d <= 0`` or either norm is 0, else ``isqrt(2**32 · d**2 // (n2 · ref_n2))``.

    Exact: ``floor(sqrt(x)) == isqrt(floor(x))`` for real x >= 0, and Cauchy-Schwarz
    (``d**2 <= n2 · ref_n2``) keeps the result <= 2**16."""
    if d <= 0 or n2 == 0 or ref_n2 == 0:
        return 0
    return math.isqrt((d * d << (2 * TRUST_BITS)) // (n2 * ref_n2))


def trust(update: Sequence[int], reference: Sequence[int]) -> int:
    """[FED-AGG.4] The trust of ``update`` against ``reference``, in 1/2**16 units."""
    return trust_from(dot(update, reference), square_norm(update), square_norm(reference))


def norm_factor(n2: int, ref_n2: int) -> int:
    """[FED-AGG.5] ``floor(2**32 · |reference| / |update|) = isqrt(2**64 · ref_n2 // n2)``;
    ``n2 > 0``."""
    if n2 <= 0:
        raise FederatedError("zero_norm", "a zero update has no direction to rescale", n2=n2)
    return math.isqrt((ref_n2 << (2 * NORM_BITS)) // n2)


def normalise(update: Sequence[int], factor: int) -> tuple[int, ...]:
    """[FED-AGG.5] Each coordinate times the factor: ``clamp(rdiv(v_j · factor, 2**32))``.
    The result's norm is the reference's (within rounding): up or down, as FLTrust does,
    so a scaled-up update gains nothing and a small honest one is not drowned out."""
    one = 1 << NORM_BITS
    return tuple(clamp(rdiv(x * factor, one)) for x in update)


def fltrust(updates: Sequence[Sequence[int]],
            reference: Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """[FED-AGG.6] ``(aggregate, trusts)``: with ``t_i`` the trusts [FED-AGG.4] and ``c_i``
    the normalised updates [FED-AGG.5], ``W = sum(t_i)``; the aggregate is the zero vector
    when W = 0, else ``rdiv(sum_i t_i · c_ij, W)`` per coordinate. ``trusts`` are in the
    updates' order; an update with trust 0 does not enter the sum (an outlier)."""
    dims = len(reference)
    if any(len(u) != dims for u in updates):
        raise FederatedError("bad_dims", "every update needs the reference's length",
                             dims=sorted({len(u) for u in updates}), expected=dims)
    ref_n2 = square_norm(reference)
    trusts: list[int] = []
    scaled: list[tuple[int, tuple[int, ...]]] = []
    for u in updates:
        n2 = square_norm(u)
        t = trust_from(dot(u, reference), n2, ref_n2)
        trusts.append(t)
        if t:
            scaled.append((t, normalise(u, norm_factor(n2, ref_n2))))
    total = sum(trusts)
    if total == 0:
        return (0,) * dims, tuple(trusts)
    sums = [0] * dims
    for t, c in scaled:
        for j, x in enumerate(c):
            sums[j] += t * x
    return tuple(rdiv(s, total) for s in sums), tuple(trusts)
