"""The aggregation rules on numpy int64 arrays, bit for bit the reference's
[FED-AGG.1-8] [FED-QUANT.2-4] [FED-MODEL.3].

The pure-Python rules (robust.py, fltrust.py, rounds.py) are the spec's executable
definition; this module computes the same integers about 10-50 times faster, so a
member verifies a round of 20 × 10**6 coordinates in well under a second. Nothing
here is floating point, and every intermediate that could leave int64 is bounded:

- Sums of at most 256 coordinates (< 2**39) and trust-weighted sums (< 2**55) fit
  int64 [FED-QUANT.4].
- Dot products and squared norms can reach 2**87. They are computed in int64 only
  when ``max|a| · max|b| · dims`` proves they fit; otherwise each coordinate is split
  into a signed high and an unsigned low 16-bit half and the four partial products
  are summed per 2**24-column chunk (each partial sum < 2**57) and recombined as
  Python ints: exact for any valid vector.
- FLTrust's scaled coordinate ``v · f`` (up to 2**106) is split at bit 32 of the
  factor: ``v · f_lo`` fits int64 (< 2**63), and ``v · f_hi`` is computed on ``v``
  saturated where the result would clamp anyway [FED-AGG.5].

Per-update quotients and square roots (trust, norm factor) use the reference's own
integer functions. Property tests (tests/federated/test_fast_*.py) check equality
with the reference on ties, extremes and overflow boundaries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from chain.federated.centered import FAR_SQ
from chain.federated.errors import FederatedError
from chain.federated.fast_exact import (  # noqa: F401 (some re-exported: fast.X)
    FLOAT_EXACT,
    amax,
    clamp,
    dot,
    dots,
    float_products,
    rdiv,
    square_norm,
    square_norms,
    trusts_against,
)
from chain.federated.fast_inputs import (
    ArrayLike,
    Matrix,
    Vector,
    as_matrix,
    as_vector,
    stack_checked,
    to_tuple,
)
from chain.federated.fixed import MAX_ROUND_PARTICIPANTS, Q_MAX
from chain.federated.fltrust import NORM_BITS, norm_factor, trust_from
from chain.federated.history import REPLAY_QUANTUM
from chain.federated.rewards import (
    agreement_cap,
    copy_discount,
    lower_median,
    norm_outliers,
    stale_copies,
)
from chain.federated.robust import krum_selected
from chain.federated.rounds import (
    CENTERED_CLIP,
    FLTRUST,
    MULTI_KRUM,
    TRIMMED_MEAN,
    Aggregation,
    RoundInput,
    RoundResult,
)
from chain.types import ADDRESS_LEN

# ---------------------------------------------------------------- coordinate-wise rules

def trimmed_mean_array(m: Matrix, trim: int) -> Vector:
    """[FED-AGG.2] Per column: sort, drop ``trim`` from each end, ``rdiv(sum, n - 2·trim)``.
    A sum of at most 256 coordinates fits int64."""
    n = m.shape[0]
    if trim < 0 or n < 2 * trim + 1:
        raise FederatedError("too_few_updates", f"a trimmed mean with trim {trim} needs at "
                             f"least {2 * trim + 1} updates, got {n}", n=n, trim=trim)
    if trim == 0:
        return rdiv(m.sum(axis=0, dtype=np.int64), n)
    s = np.sort(m, axis=0)
    return rdiv(s[trim:n - trim].sum(axis=0, dtype=np.int64), n - 2 * trim)


def median_array(m: Matrix) -> Vector:
    """[FED-AGG.3] Per column: the middle value; for even n ``rdiv(a + b, 2)`` of the two."""
    n = m.shape[0]
    if n == 0:
        raise FederatedError("no_updates", "an aggregate needs at least one update", n=0)
    s = np.sort(m, axis=0)
    mid = n // 2
    if n % 2:
        return s[mid].copy()
    return rdiv(s[mid - 1] + s[mid], 2)


def pair_distances(m: Matrix, n2s: list[int] | None = None,
                   m_max: int | None = None) -> list[list[int]]:
    """[FED-AGG.9] [FED-AGG.10] Exact squared distances of every pair of rows:
    ``n2_i + n2_j - 2·dot_ij``, one row against the rows after it at a time (views)."""
    n = m.shape[0]
    m_max = amax(m) if m_max is None else m_max
    n2s = square_norms(m, m_max) if n2s is None else n2s
    d = [[0] * n for _ in range(n)]
    for i in range(n - 1):
        for j, dij in enumerate(dots(m[i + 1:], m[i], m_max, m_max), start=i + 1):
            d[i][j] = d[j][i] = n2s[i] + n2s[j] - 2 * dij
    return d


def krum_scores_array(m: Matrix, f: int, n2s: list[int] | None = None,
                      m_max: int | None = None) -> list[int]:
    """[FED-AGG.9] ``robust.krum_scores``: the squared distance of rows i and j is
    ``n2_i + n2_j - 2·dot_ij`` with exact dot products [FED-QUANT.4], one row against the
    rows after it at a time (views, no copies)."""
    n = m.shape[0]
    if f < 0 or n < f + 3:
        raise FederatedError("too_few_updates", f"Multi-Krum with f {f} needs at least "
                             f"{f + 3} updates, got {n}", n=n, trim=f)
    d = pair_distances(m, n2s, m_max)
    near = n - f - 2
    return [sum(sorted(d[i][j] for j in range(n) if j != i)[:near]) for i in range(n)]


def multi_krum_array(m: Matrix, f: int, n2s: list[int] | None = None,
                     m_max: int | None = None) -> Vector:
    """[FED-AGG.9] ``robust.multi_krum``: the ``n - f`` best scored rows' plain mean (a sum
    of at most 256 coordinates fits int64)."""
    chosen = krum_selected(krum_scores_array(m, f, n2s, m_max), f)
    return rdiv(m[chosen].sum(axis=0, dtype=np.int64), len(chosen))


def multi_krum(updates: Sequence[ArrayLike] | Matrix, f: int) -> tuple[int, ...]:
    """[FED-AGG.9] ``robust.multi_krum``, bit for bit."""
    return to_tuple(multi_krum_array(as_matrix(updates), f))


def trimmed_mean(updates: Sequence[ArrayLike] | Matrix, trim: int) -> tuple[int, ...]:
    """[FED-AGG.2] ``robust.trimmed_mean``, bit for bit."""
    return to_tuple(trimmed_mean_array(as_matrix(updates), trim))


def median(updates: Sequence[ArrayLike] | Matrix) -> tuple[int, ...]:
    """[FED-AGG.3] ``robust.median``, bit for bit."""
    return to_tuple(median_array(as_matrix(updates)))


# ---------------------------------------------------------------- centered clipping

def centered_clip_array(m: Matrix, center: Vector, m_max: int | None = None) -> Vector:
    """[FED-AGG.10] ``centered.centered_clip``, bit for bit: the agreeing rows (exact dot
    products with the center), their clamped differences from it and exact squared
    norms, the far ones left out, the rest clipped to the median radius as FLTrust
    rescales [FED-AGG.5], the center plus their mean."""
    n = m.shape[0]
    if n == 0:
        raise FederatedError("too_few_updates", "centered clipping needs an update", n=0)
    if m.shape[1] != center.shape[0]:
        raise FederatedError("bad_dims", "every update needs the center's length",
                             dims=[m.shape[1]], expected=center.shape[0])
    counted = list(range(n))
    m_max = amax(m) if m_max is None else m_max
    c_max = amax(center)
    if c_max:
        agree = [i for i, d in enumerate(dots(m, center, m_max, c_max)) if d > 0]
        counted = agree if 2 * len(agree) > n else counted
    rows = m if len(counted) == n else m[counted]
    diffs = rows - center
    if m_max + c_max > Q_MAX:  # [FED-QUANT.3] only then can a difference leave the range
        diffs = clamp(diffs)
    d2s = square_norms(diffs, min(m_max + c_max, Q_MAX))
    near = FAR_SQ * lower_median(d2s)
    kept = [x for x, d2 in enumerate(d2s) if d2 <= near]
    radius2 = lower_median([d2s[x] for x in kept])
    whole = [x for x in kept if d2s[x] <= radius2]
    total = diffs[whole].sum(axis=0, dtype=np.int64)
    for x in kept:
        if d2s[x] > radius2:
            total += _scale_down(diffs[x], norm_factor(d2s[x], radius2))
    return clamp(center + rdiv(total, len(kept)))


def _scale_down(v: Vector, factor: int) -> Vector:
    """[FED-AGG.5] ``normalise_array`` for a factor below 2**32 (a shrink): ``v · factor``
    fits int64 and its nearest quotient by 2**32 is never farther from 0 than ``v``, so
    no clamp is needed."""
    if not 0 <= factor < 1 << NORM_BITS:
        return normalise_array(v, factor)
    p = v * np.int64(factor)
    q = p >> NORM_BITS
    twice = (p & np.int64((1 << NORM_BITS) - 1)) << 1
    one = np.int64(1 << NORM_BITS)
    return q + ((twice > one) | ((twice == one) & ((q & 1) == 1)))


def centered_clip(updates: Sequence[ArrayLike] | Matrix, center: ArrayLike) -> tuple[int, ...]:
    """[FED-AGG.10] ``centered.centered_clip``, bit for bit."""
    c = as_vector(center, "center")
    return to_tuple(centered_clip_array(as_matrix(updates, len(c)), c))


def model_step_array(before: Vector, after: Vector) -> Vector:
    """[FED-AGG.11] ``centered.model_step``: ``clamp(after - before)``."""
    if before.shape != after.shape:
        raise FederatedError("bad_dims", "a step needs two models of one length",
                             dims=(len(before), len(after)))
    return clamp(after - before)


# ---------------------------------------------------------------- FLTrust

def normalise_array(v: Vector, factor: int) -> Vector:
    """[FED-AGG.5] ``clamp(rdiv(v_j · factor, 2**32))`` without leaving int64.

    With ``factor = f_hi · 2**32 + f_lo``: ``v·factor / 2**32 = v·f_hi + v·f_lo / 2**32``,
    so the floor quotient is ``v·f_hi + (v·f_lo >> 32)`` and the remainder ``v·f_lo mod
    2**32``; ``|v·f_lo| <= (2**31 - 1)(2**32 - 1) < 2**63``. Where ``|v·f_hi| > 2**33`` the
    result clamps whatever the rest (``|v·f_lo >> 32| <= 2**31``), so ``v`` is saturated at
    ``L = 2**33 // f_hi + 2`` first: the product stays < 2**45 (factor < 2**75) and on the
    same side of the clamp."""
    if factor < 0 or factor >> 75:
        raise FederatedError("bad_factor", f"norm factor {factor} outside 0..2**75",
                             factor=factor)
    one = 1 << NORM_BITS
    f_hi, f_lo = divmod(factor, one)
    p = v * np.int64(f_lo)
    q = p >> NORM_BITS
    r = p & np.int64(one - 1)
    if f_hi:
        lim = (1 << 33) // f_hi + 2
        q = q + np.clip(v, -lim, lim) * np.int64(f_hi)
    twice = 2 * r
    up = (twice > one) | ((twice == one) & ((q & 1) == 1))
    return clamp(q + up.astype(np.int64))


def fltrust_array(m: Matrix, ref: Vector, n2s: list[int] | None = None,
                  m_max: int | None = None) -> tuple[Vector, tuple[int, ...]]:
    """[FED-AGG.4-6] ``fltrust.fltrust``: ``(aggregate, trusts)``. The weighted sum
    ``sum t_i · c_ij`` is < 256 · 2**16 · 2**31 = 2**55: int64. ``n2s``, ``m_max``: the
    rows' squared norms and max |coordinate| when the caller has them."""
    if m.shape[1] != ref.shape[0]:
        raise FederatedError("bad_dims", "every update needs the reference's length",
                             dims=[m.shape[1]], expected=ref.shape[0])
    ref_n2 = square_norm(ref)
    m_max = amax(m) if m_max is None else m_max
    n2s = square_norms(m, m_max) if n2s is None else n2s
    trusts = tuple(trust_from(d, n2, ref_n2)
                   for d, n2 in zip(dots(m, ref, m_max), n2s, strict=True))
    total = sum(trusts)
    if total == 0:
        return np.zeros(ref.shape[0], dtype=np.int64), trusts
    acc = np.zeros(ref.shape[0], dtype=np.int64)
    for row, t, n2 in zip(m, trusts, n2s, strict=True):
        if t:
            acc += np.int64(t) * normalise_array(row, norm_factor(n2, ref_n2))
    return rdiv(acc, total), trusts


def fltrust(updates: Sequence[ArrayLike] | Matrix,
            reference: ArrayLike) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """[FED-AGG.6] ``fltrust.fltrust``, bit for bit."""
    ref = as_vector(reference, "reference")
    if not len(updates):
        return (0,) * len(ref), ()
    agg, trusts = fltrust_array(as_matrix(updates, len(ref)), ref)
    return to_tuple(agg), trusts


# ---------------------------------------------------------------- one round

def _copies(m: Matrix, n2s: list[int]) -> set[int]:
    """[FED-AGG.8] Rows equal to another row. Equal rows have equal squared norms and first
    coordinates, so only those groups are compared in full."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, n2 in enumerate(n2s):
        groups.setdefault((n2, *m[i, :4].tolist()), []).append(i)
    out: set[int] = set()
    for rows in groups.values():
        for x, i in enumerate(rows):
            for j in rows[x + 1:]:
                if np.array_equal(m[i], m[j]):
                    out.update((i, j))
    return out


def _pair_trusts(rows: Matrix, live: list[int], n2s: list[int],
                 m_max: int) -> dict[tuple[int, int], int]:
    """[FED-AGG.4] The trust of every pair of ``live`` rows (``rows`` holds just those).
    When ``max|x|**2 · dims < 2**53`` every partial sum of a dot product is an integer
    float64 holds exactly, so the whole Gram matrix is one BLAS product; otherwise one
    row's exact dot products against the rows after it at a time."""
    pair: dict[tuple[int, int], int] = {}
    if len(live) > 1 and m_max * m_max * rows.shape[1] < FLOAT_EXACT:
        gram, _ = float_products(rows)
        for x, i in enumerate(live[:-1]):
            for y in range(x + 1, len(live)):
                pair[i, live[y]] = trust_from(int(gram[x, y]), n2s[i], n2s[live[y]])
        return pair
    for x, i in enumerate(live[:-1]):
        ds = dots(rows[x + 1:], rows[x], m_max, m_max)
        for j, d in zip(live[x + 1:], ds, strict=True):
            pair[i, j] = trust_from(d, n2s[i], n2s[j])
    return pair


def pair_trusts(rows: Matrix, live: list[int], n2s: list[int]) -> dict[tuple[int, int], int]:
    """[FED-AGG.4] The trust of every pair of ``live`` rows: ``rows`` holds just those, in
    order, and ``n2s`` every row's squared norm by its index in ``live``'s numbering."""
    return _pair_trusts(rows, live, n2s, amax(rows))


def _reward_weights(usable: Matrix, raw: list[int], n2s: list[int], m_max: int,
                    sums: Matrix | None = None, owners: Sequence[bytes] = (),
                    latest: Mapping[bytes, ArrayLike] | None = None) -> list[int]:
    """[FED-REWARD.7] [FED-REWARD.8] [FED-REWARD.11] [FED-REWARD.12] [FED-REWARD.13] The
    rewards' steps on the raw weights, as ``rounds.aggregate_round`` takes them: norm
    outliers to 0; with ``latest`` (``owners``: each row's address), stale copies to 0 and
    the cap at the median; then near-copies (in this round's updates, or in their running
    ``sums``) share one weight. The pair trusts are computed only among the updates still
    of positive weight (with ``latest``, among all, once, for both steps)."""
    ws = norm_outliers(raw, n2s)
    every: dict[tuple[int, int], int] | None = None
    if latest is not None:
        now, before, every = _nearest_trusts(usable, ws, n2s, m_max, owners, latest)
        ws = agreement_cap(stale_copies(ws, now, before))
    live = [i for i, w in enumerate(ws) if w > 0]
    if every is not None:
        pair = {(i, j): every[i, j] for x, i in enumerate(live) for j in live[x + 1:]}
    else:
        rows = usable if len(live) == len(ws) else usable[live]  # views, no copies
        pair = _pair_trusts(rows, live, n2s, m_max)
    if sums is not None:
        s_rows = sums if len(live) == len(ws) else sums[live]
        s_max = amax(sums)
        s2s = square_norms(sums, s_max)
        for key, t in _pair_trusts(s_rows, live, s2s, s_max).items():
            pair[key] = max(pair[key], t)
    return copy_discount(ws, lambda i, j: pair[i, j])


def _nearest_trusts(usable: Matrix, ws: list[int], n2s: list[int], m_max: int,
                    owners: Sequence[bytes], latest: Mapping[bytes, ArrayLike]
                    ) -> tuple[list[int], list[int], dict[tuple[int, int], int]]:
    """[FED-REWARD.12] ``rounds.nearest_trusts`` for the rows of positive weight (the others
    keep 0, which ``stale_copies`` reads the same), and every pair's trust, which the copy
    discount reuses. Exact: two BLAS products on one float64 copy of the rows when every
    partial sum is an integer float64 holds (as ``_pair_trusts``), else ``dots``."""
    n, dims = usable.shape
    named = sorted((b, v) for b, v in latest.items() if len(v) == dims)
    now, before = [0] * n, [0] * n
    if not named:
        return now, before, _pair_trusts(usable, list(range(n)), n2s, m_max)
    earlier = stack_checked([(f"earlier update of {b.hex()}", v) for b, v in named], dims)
    e_max = amax(earlier)
    e2s = square_norms(earlier, e_max)
    if max(m_max, e_max) ** 2 * dims < FLOAT_EXACT:
        gram, cross = float_products(usable, earlier)
        assert cross is not None
        every = {(i, j): trust_from(int(gram[i, j]), n2s[i], n2s[j])
                 for i in range(n) for j in range(i + 1, n)}
        ds = [[int(d) for d in row] for row in cross]
    else:
        every = _pair_trusts(usable, list(range(n)), n2s, m_max)
        by_earlier = [dots(usable, earlier[k], m_max, e_max) for k in range(len(named))]
        ds = [[col[i] for col in by_earlier] for i in range(n)]
    for i in (i for i, w in enumerate(ws) if w > 0):
        mine = [trust_from(ds[i][k], n2s[i], e2s[k]) for k, (b, _) in enumerate(named)]
        now[i] = max([every[min(i, j), max(i, j)] for j in range(n) if j != i]
                     + [t for t, (b, _) in zip(mine, named, strict=True) if b == owners[i]],
                     default=0)
        before[i] = max((t for t, (b, _) in zip(mine, named, strict=True) if b != owners[i]),
                        default=0)
    return now, before, every


PREFILTER = 64
"""[FED-REWARD.10] Columns compared first: only earlier updates within the quantum there
are compared in full (the result is the same; honest updates differ early)."""


def replay_rows(m: Matrix, earlier: Matrix | None) -> set[int]:
    """[FED-REWARD.10] ``history.replays``: rows of ``m`` within one quantum of a row of
    ``earlier`` in every column."""
    out: set[int] = set()
    if earlier is None or not len(earlier) or earlier.shape[1] != m.shape[1]:
        return out
    head = earlier[:, :PREFILTER]
    for i in range(m.shape[0]):
        near = np.flatnonzero(np.abs(head - m[i, :PREFILTER]).max(axis=1) <= REPLAY_QUANTUM)
        if any(int(np.abs(earlier[k] - m[i]).max()) <= REPLAY_QUANTUM for k in near):
            out.add(i)
    return out


def aggregate_round_array(agg: Aggregation, updates: Mapping[bytes, ArrayLike],
                          reference: ArrayLike | None, dims: int,
                          center: ArrayLike | None = None,
                          earlier: Sequence[ArrayLike] | Matrix | None = None,
                          history: Mapping[bytes, ArrayLike] | None = None,
                          latest: Mapping[bytes, ArrayLike] | None = None
                          ) -> tuple[Vector, RoundResult]:
    """[FED-AGG.1] [FED-AGG.7] [FED-AGG.8] [FED-REWARD.10] [FED-REWARD.12] ``rounds.
    aggregate_round`` with the aggregate also as an array: the same usable updates, void
    rounds, weights, copies and replays of ``earlier`` updates (vectors of any length:
    only ``dims`` long ones can match); ``latest`` as the reference takes it."""
    if len(updates) > MAX_ROUND_PARTICIPANTS:
        raise FederatedError("too_many_updates", f"{len(updates)} updates, at most "
                             f"{MAX_ROUND_PARTICIPANTS} per round", n=len(updates))
    addrs = sorted(updates)
    for a in addrs:
        if not isinstance(a, bytes) or len(a) != ADDRESS_LEN:
            raise FederatedError("bad_participant", "participants are 20-byte addresses",
                                 participant=a)
    m = stack_checked([(f"update of {a.hex()}", updates[a]) for a in addrs], dims)
    zero = np.zeros(dims, dtype=np.int64)
    if not addrs:
        return zero, RoundResult(to_tuple(zero), (), ())
    m_max = amax(m)
    n2s = square_norms(m, m_max)
    copies = _copies(m, n2s)
    dupes = tuple(a for i, a in enumerate(addrs) if i in copies)
    replayed = replay_rows(m, _earlier_matrix(earlier, dims)) - copies
    keep = [i for i in range(len(addrs)) if i not in copies and i not in replayed]
    usable = m if len(keep) == len(addrs) else m[keep]
    weight: dict[bytes, int] = {}
    aggregate = zero
    if agg.rule == FLTRUST and reference is not None:
        ref = as_vector(reference, "reference", dims)
        if keep and agg.trim == 1:  # [FED-AGG.12] the trusted updates, centered clipping
            ref_n2 = square_norm(ref)
            trusts = tuple(trust_from(d, n2s[i], ref_n2)
                           for i, d in zip(keep, dots(usable, ref, m_max), strict=True))
            trusted = [x for x, t in enumerate(trusts) if t > 0]
            if trusted:
                c = zero if center is None else as_vector(center, "center", dims)
                aggregate = centered_clip_array(usable[trusted], c)
            weight = dict(zip((addrs[i] for i in keep), trusts, strict=True))
        elif keep:
            aggregate, trusts = fltrust_array(usable, ref, [n2s[i] for i in keep], m_max)
            weight = dict(zip((addrs[i] for i in keep), trusts, strict=True))
    elif agg.rule != FLTRUST and len(keep) >= agg.needs:
        if agg.rule == TRIMMED_MEAN:
            aggregate = trimmed_mean_array(usable, agg.trim)
        elif agg.rule == MULTI_KRUM:
            aggregate = multi_krum_array(usable, agg.trim, [n2s[i] for i in keep], m_max)
        elif agg.rule == CENTERED_CLIP:
            c = zero if center is None else as_vector(center, "center", dims)
            aggregate = centered_clip_array(usable, c, m_max)
        else:
            aggregate = median_array(usable)
        a2 = square_norm(aggregate)
        ts = [trust_from(d, n2s[i], a2)
              for i, d in zip(keep, dots(usable, aggregate, m_max), strict=True)]
        weight = dict(zip((addrs[i] for i in keep), ts, strict=True))
    if weight:
        sums = None
        if history:
            sums = usable.copy()
            for x, i in enumerate(keep):
                h = history.get(addrs[i])
                if h is not None:
                    sums[x] = clamp(sums[x] + np.asarray(h, dtype=np.int64))
        ws = _reward_weights(usable, [weight[addrs[i]] for i in keep], [n2s[i] for i in keep],
                             m_max, sums, [addrs[i] for i in keep], latest)
        weight = dict(zip((addrs[i] for i in keep), ws, strict=True))
    result = RoundResult(to_tuple(aggregate),
                         tuple((a, weight.get(a, 0)) for i, a in enumerate(addrs)
                               if i not in replayed), dupes,
                         tuple(a for i, a in enumerate(addrs) if i in replayed))
    return aggregate, result


def _earlier_matrix(earlier: Sequence[ArrayLike] | Matrix | None, dims: int) -> Matrix | None:
    """The earlier updates of ``dims`` coordinates as one matrix (others cannot match)."""
    if earlier is None or isinstance(earlier, np.ndarray):
        return earlier
    rows = [np.asarray(v, dtype=np.int64) for v in earlier if len(v) == dims]
    return np.stack(rows) if rows else None


def aggregate_round(agg: Aggregation, updates: Mapping[bytes, ArrayLike],
                    reference: ArrayLike | None, dims: int,
                    center: ArrayLike | None = None,
                    earlier: Sequence[ArrayLike] | Matrix | None = None,
                    history: Mapping[bytes, ArrayLike] | None = None,
                    latest: Mapping[bytes, ArrayLike] | None = None) -> RoundResult:
    """[FED-AGG.1] ``rounds.aggregate_round``, bit for bit."""
    return aggregate_round_array(agg, updates, reference, dims, center, earlier, history,
                                 latest)[1]


def apply_aggregate_array(model: Vector, aggregate: Vector) -> Vector:
    """[FED-MODEL.3] ``clamp(old_j + aggregate_j)``: both in range, the sum fits int64."""
    if model.shape != aggregate.shape:
        raise FederatedError("bad_dims", "the aggregate needs the model's length",
                             dims=(len(model), len(aggregate)))
    return clamp(model + aggregate)


def replay(agg: Aggregation, initial: ArrayLike, rounds: Sequence[RoundInput],
           without: bytes | None = None) -> tuple[int, ...]:
    """[FED-MODEL.3] [FED-REWARD.2] ``rounds.replay``, bit for bit: the global model after
    ``rounds`` from ``initial``, or the leave-one-out model without ``without``'s updates
    (one fast aggregation per round)."""
    model = as_vector(initial, "initial model")
    center = np.zeros(len(model), dtype=np.int64)
    for r in rounds:
        updates = {a: v for a, v in r.updates.items() if a != without}
        aggregate, _ = aggregate_round_array(agg, updates, r.reference, len(model), center)
        new = apply_aggregate_array(model, aggregate)
        center, model = model_step_array(model, new), new
    return to_tuple(model)
