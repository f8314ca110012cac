"""Checked numpy inputs of the fast aggregation rules (chain/federated/fast.py)
[FED-QUANT.3]: every vector a round reads is a valid one before any arithmetic, with the
reference's error codes. Apart from fast.py so that it stays within the module bound.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from chain.federated.errors import FederatedError
from chain.federated.fixed import MAX_DIMS, Q_MAX, check_vector

Vector = npt.NDArray[np.int64]
Matrix = npt.NDArray[np.int64]
ArrayLike = npt.NDArray[Any] | Sequence[int]


def as_vector(v: ArrayLike, name: str, dims: int | None = None) -> Vector:
    """[FED-QUANT.3] An int64 copy of a valid vector: integers in ``[-Q_MAX, Q_MAX]``,
    1..MAX_DIMS of them (``dims`` when given); the reference's error codes otherwise.
    A non-array goes through the reference's ``check_vector`` (it refuses floats and
    bools, which numpy would convert silently)."""
    if not isinstance(v, np.ndarray):
        return np.array(check_vector(v, name, dims), dtype=np.int64)
    if v.ndim != 1 or v.dtype.kind not in "iu":
        raise FederatedError("bad_coordinate", f"{name} is not a 1-d integer array "
                             f"(dtype {v.dtype}, shape {v.shape})", name=name,
                             dtype=str(v.dtype), shape=v.shape)
    if not 1 <= len(v) <= MAX_DIMS or (dims is not None and len(v) != dims):
        raise FederatedError("bad_dims", f"{name} has {len(v)} coordinates, expected "
                             f"{dims if dims is not None else f'1..{MAX_DIMS}'}",
                             name=name, dims=len(v), expected=dims)
    lo, hi = int(v.min()), int(v.max())
    if lo < -Q_MAX or hi > Q_MAX:
        j = int(np.argmax(v > Q_MAX)) if hi > Q_MAX else int(np.argmax(v < -Q_MAX))
        raise FederatedError("bad_coordinate", f"{name}[{j}] = {int(v[j])} is not in "
                             f"[-{Q_MAX}, {Q_MAX}]", name=name, index=j, value=int(v[j]))
    return v.astype(np.int64, copy=False)


def stack_checked(named: Sequence[tuple[str, ArrayLike]], dims: int | None = None) -> Matrix:
    """[FED-QUANT.3] The vectors as one ``(n, dims)`` int64 matrix, each checked as
    ``as_vector`` does. Fast when every one is a 1-d int8..int64 or uint8..uint32 array of
    one length: copied into the matrix as they are and range-checked once, whole; any
    other input, or a failed check, goes vector by vector for the reference's error."""
    want = dims if dims is not None else (len(named[0][1]) if named else 0)
    simple = 1 <= want <= MAX_DIMS and all(
        isinstance(v, np.ndarray) and v.ndim == 1 and len(v) == want
        and (v.dtype.kind == "i" or (v.dtype.kind == "u" and v.dtype.itemsize < 8))
        for _, v in named)
    if simple and named:
        m = np.empty((len(named), want), dtype=np.int64)
        for i, (_, v) in enumerate(named):
            m[i] = v
        if int(m.min()) >= -Q_MAX and int(m.max()) <= Q_MAX:
            return m
    rows = [as_vector(v, name, dims) for name, v in named]
    lengths = {len(r) for r in rows}
    if len(lengths) > 1:
        raise FederatedError("bad_dims", f"updates of different lengths {sorted(lengths)}",
                             dims=sorted(lengths))
    return np.stack(rows) if rows else np.zeros((0, max(want, 0)), dtype=np.int64)


def as_matrix(updates: Sequence[ArrayLike] | Matrix, dims: int | None = None) -> Matrix:
    """The updates as one ``(n, dims)`` int64 matrix, each row checked [FED-QUANT.3]."""
    if not len(updates):
        raise FederatedError("no_updates", "an aggregate needs at least one update", n=0)
    return stack_checked([(f"update {i}", u) for i, u in enumerate(updates)], dims)


def to_tuple(v: Vector) -> tuple[int, ...]:
    """A vector as the reference's tuple of Python ints."""
    return tuple(v.tolist())
