"""bench/support/fedsep.py's statistics on made-up histories: a split whose noise keeps its
direction reads 1 in coherence and in consecutive cosine whatever the noise's size, one
with fresh noise does not, and a pair with too few common rounds is left out."""

from __future__ import annotations

import numpy as np
import pytest

from bench.support import fedsep

A, B, C = b"a" * 20, b"b" * 20, b"c" * 20


def _history(rng: np.random.Generator, fixed: bool, rounds: int = 8,
             dims: int = 500) -> list[dict[bytes, np.ndarray]]:
    directions = rng.normal(size=(2, dims))
    out = []
    for _ in range(rounds):
        u = rng.normal(size=dims) * 100
        scale = rng.uniform(20, 80)  # the noise's size follows the update's, round by round
        noise = directions if fixed else rng.normal(size=(2, dims))
        out.append({A: np.rint(u + scale * noise[0]).astype(np.int64),
                    B: np.rint(u + scale * noise[1]).astype(np.int64),
                    C: np.rint(rng.normal(size=dims) * 100).astype(np.int64)})
    return out


def test_a_persistent_noise_split_keeps_one_difference_direction() -> None:
    rng = np.random.default_rng(3)
    got = fedsep.pair_statistics(_history(rng, fixed=True), A, B)
    assert got is not None
    assert got["coherence"] == pytest.approx(1.0, abs=1e-3)
    assert got["consecutive"] == pytest.approx(1.0, abs=1e-3)
    assert got["demeaned"] > 0.5  # the shared u_t, less the noise's varying size


def test_fresh_noise_and_unrelated_owners_do_not() -> None:
    rng = np.random.default_rng(4)
    fresh = fedsep.pair_statistics(_history(rng, fixed=False), A, B)
    unrelated = fedsep.pair_statistics(_history(rng, fixed=True), A, C)
    assert fresh is not None and unrelated is not None
    assert fresh["coherence"] < 0.6 and abs(fresh["consecutive"]) < 0.2
    assert abs(unrelated["demeaned"]) < 0.2 and unrelated["coherence"] < 0.6


def test_pairs_need_three_common_rounds_and_can_be_restricted() -> None:
    rng = np.random.default_rng(5)
    history = _history(rng, fixed=True, rounds=3)
    assert len(fedsep.pairs(history)) == 3
    assert len(fedsep.pairs(history, within=[A, B])) == 1
    assert fedsep.pairs(history[:2]) == []
    extreme = fedsep.extreme(fedsep.pairs(history), highest=False)
    assert set(extreme) == set(fedsep.STATISTICS)
    assert fedsep.extreme([], highest=True) == dict.fromkeys(fedsep.STATISTICS)
