"""Exact integer arithmetic on int64 arrays for chain/federated/fast.py [FED-QUANT.2-4]
[FED-AGG.4]: rounded division, the clamp, and dot products that are exact whatever the
magnitudes (int64 when a bound proves they fit, 16-bit halves otherwise, float64 BLAS
column blocks when every partial sum is an integer float64 holds).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from chain.federated.errors import FederatedError
from chain.federated.fast_inputs import Matrix, Vector
from chain.federated.fixed import Q_MAX
from chain.federated.fltrust import trust_from

INT64_MAX = (1 << 63) - 1
CHUNK = 1 << 24
"""Columns per exact partial dot product: 2**24 · 2**32 < 2**57 even for the split halves."""
_HALF = 16
_LOW = (1 << _HALF) - 1


def rdiv(n: Vector, d: int) -> Vector:
    """[FED-QUANT.2] Element-wise ``rdiv``: nearest, ties to even. numpy's integer floor
    division and remainder follow Python's signs, so ``q, r`` are the reference's.
    ``|n| + d`` must fit int64 (every caller's sums are < 2**56)."""
    if d <= 0:
        raise FederatedError("bad_divisor", f"rdiv needs a positive divisor, got {d}", d=d)
    q, r = np.divmod(n, np.int64(d))
    twice = 2 * r
    up = (twice > d) | ((twice == d) & ((q & 1) == 1))
    return q + up.astype(np.int64)


def clamp(v: Vector) -> Vector:
    """[FED-QUANT.3] Saturate to ``[-Q_MAX, Q_MAX]``."""
    return np.clip(v, -Q_MAX, Q_MAX)


def amax(a: npt.NDArray[np.int64]) -> int:
    return max(int(a.max()), -int(a.min())) if a.size else 0


def rowdot(a: Matrix, b: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Row-wise int64 dot products of ``a`` with ``b`` (a vector, or a matrix row by row)."""
    if b.ndim == 1:
        return a @ b
    return np.einsum("ij,ij->i", a, b)


def dots(a: Matrix, b: npt.NDArray[np.int64], a_max: int | None = None,
         b_max: int | None = None) -> list[int]:
    """[FED-AGG.4] Exact ``sum_j a_ij · b_j`` for each row i (``b`` a vector, or a matrix of
    ``a``'s shape for row-by-row products) as Python ints, whatever the magnitudes
    [FED-QUANT.4]: int64 when ``max|a| · max|b| · dims < 2**63``, else 16-bit halves.
    ``a_max``/``b_max``: those maxima when the caller knows them (or a bound on them)."""
    dims = a.shape[1]
    a_max = amax(a) if a_max is None else a_max
    b_max = (a_max if b is a else amax(b)) if b_max is None else b_max
    if a_max * b_max * dims <= INT64_MAX:
        return [int(x) for x in rowdot(a, b)]
    total = [0] * a.shape[0]
    for start in range(0, dims, CHUNK):
        ac, bc = a[:, start:start + CHUNK], b[..., start:start + CHUNK]
        ah, al = ac >> _HALF, ac & _LOW   # ac == ah · 2**16 + al, |ah| <= 2**15, 0 <= al
        bh, bl = bc >> _HALF, bc & _LOW
        hh = rowdot(ah, bh)                        # each product <= 2**30
        mid = rowdot(ah, bl) + rowdot(al, bh)     # each product < 2**31
        ll = rowdot(al, bl)                        # each product < 2**32
        for i in range(len(total)):
            total[i] += (int(hh[i]) << (2 * _HALF)) + (int(mid[i]) << _HALF) + int(ll[i])
    return total


def square_norms(a: Matrix, a_max: int | None = None) -> list[int]:
    """[FED-AGG.4] Exact ``sum_j a_ij ** 2`` for each row."""
    return dots(a, a, a_max, a_max)


def dot(a: Vector, b: Vector) -> int:
    """[FED-AGG.4] Exact ``sum_j a_j · b_j``."""
    if a.shape != b.shape:
        raise FederatedError("bad_dims", f"dot of {len(a)} and {len(b)} coordinates",
                             dims=(len(a), len(b)))
    return dots(a[None, :], b)[0]


def square_norm(v: Vector) -> int:
    """[FED-AGG.4] Exact ``sum_j v_j ** 2``."""
    return dots(v[None, :], v)[0]


def trusts_against(a: Matrix, b: Vector) -> list[int]:
    """[FED-AGG.4] [FED-AGG.7] The trust of each row of ``a`` against ``b``."""
    b2 = square_norm(b)
    return [trust_from(d, n2, b2) for d, n2 in zip(dots(a, b), square_norms(a), strict=True)]


FLOAT_EXACT = 1 << 53
"""Integers below this are exact in float64: a product of rows whose every partial sum stays
below it is computed by BLAS without a rounding."""


GRAM_COLUMNS = 1 << 14
"""Columns converted to float64 at a time by ``float_products``: two blocks of 20 rows stay
in the processor's cache between their conversion and their product, where one float64
copy of 20 rows of 1 M coordinates (160 MiB) went out to memory and back."""


def float_products(a: Matrix, b: Matrix | None = None
                   ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64] | None]:
    """``a @ a.T`` and ``a @ b.T`` (None without ``b``) as exact int64, through float64 BLAS
    products of column blocks: each block's sums are sums of some of the full products'
    terms, integers below 2**53 like them (the caller has checked ``max|x|**2 · dims <
    2**53``), so each block is exact, and the blocks add up in int64."""
    n, dims = a.shape
    gram = np.zeros((n, n), dtype=np.int64)
    cross = None if b is None else np.zeros((n, b.shape[0]), dtype=np.int64)
    for start in range(0, dims, GRAM_COLUMNS):
        fa = a[:, start:start + GRAM_COLUMNS].astype(np.float64)
        gram += (fa @ fa.T).astype(np.int64)
        if b is not None and cross is not None:
            cross += (fa @ b[:, start:start + GRAM_COLUMNS].astype(np.float64).T
                      ).astype(np.int64)
    return gram, cross
