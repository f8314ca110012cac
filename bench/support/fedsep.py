"""Can a persistent-noise split be told apart from honest owners by its update history?
(issue 49 §2; measured by bench/fedsplit.py)

One owner's k addresses send ``u_t + s_t · n_i``: its update plus noise whose *direction*
``n_i`` is the same every round. Each pair's difference ``s_t (n_i − n_j)`` then keeps one
direction for the whole job, and the addresses' demeaned histories share ``u_t − ū``.
These statistics of a pair's revealed updates say how far honest pairs of owners with
different data are from that (all pure, over the quantised vectors as revealed):

- ``coherence``: ``‖Σ_t d_t‖ / Σ_t ‖d_t‖`` of the differences ``d_t = x_a,t − x_b,t``
  (1 when every round's difference points the same way);
- ``consecutive``: the mean cosine of ``d_t`` and ``d_{t+1}``;
- ``demeaned``: the cosine of the two histories after each address's mean over the job is
  taken away (what the varying part of the updates shares).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import numpy.typing as npt

STATISTICS = ("coherence", "consecutive", "demeaned")
MIN_ROUNDS = 3


def pair_statistics(rounds: Sequence[Mapping[bytes, npt.NDArray[np.int64]]],
                    a: bytes, b: bytes) -> dict[str, float] | None:
    """The three statistics of addresses ``a`` and ``b`` over the rounds both revealed in;
    None with fewer than ``MIN_ROUNDS`` such rounds."""
    both = [(r[a].astype(np.float64), r[b].astype(np.float64)) for r in rounds
            if a in r and b in r]
    if len(both) < MIN_ROUNDS:
        return None
    xa = np.stack([x for x, _ in both])
    xb = np.stack([y for _, y in both])
    diffs = xa - xb
    lengths = np.linalg.norm(diffs, axis=1)
    coherence = float(np.linalg.norm(diffs.sum(axis=0)) / max(lengths.sum(), 1e-12))
    units = diffs / np.maximum(lengths, 1e-12)[:, None]
    consecutive = float(np.mean(np.einsum("ij,ij->i", units[:-1], units[1:])))
    da, db = xa - xa.mean(axis=0), xb - xb.mean(axis=0)
    demeaned = float((da * db).sum() / max(np.linalg.norm(da) * np.linalg.norm(db), 1e-12))
    return {"coherence": coherence, "consecutive": consecutive, "demeaned": demeaned}


def pairs(rounds: Sequence[Mapping[bytes, npt.NDArray[np.int64]]],
          within: Iterable[bytes] | None = None) -> list[dict[str, float]]:
    """The statistics of every pair of addresses, or only of pairs inside ``within``."""
    chosen = set(within) if within is not None else None
    addresses = sorted({a for r in rounds for a in r})
    out = []
    for a, b in itertools.combinations(addresses, 2):
        if chosen is not None and not (a in chosen and b in chosen):
            continue
        got = pair_statistics(rounds, a, b)
        if got is not None:
            out.append(got)
    return out


def extreme(found: Sequence[dict[str, float]], highest: bool) -> dict[str, float | None]:
    """Each statistic's largest (``highest``) or smallest value over ``found``, rounded."""
    pick = max if highest else min
    return {name: (round(pick(f[name] for f in found), 3) if found else None)
            for name in STATISTICS}
