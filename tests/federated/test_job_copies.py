"""Copies over the job share one leave-one-out improvement [FED-REWARD.14]: the committed
vectors against an implementation written from the spec's text alone, the cases that try
to break the rule (a sum clamped per round or not at all, a relation closed transitively,
a zero sum), the fast path against the reference, and a fresh-noise split that no round
catches but the job sums do, while honest owners of different data keep their own."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from chain.federated.errors import FederatedError
from chain.federated.fixed import Q_MAX
from chain.federated.job_copies import (
    copy_counts,
    copy_counts_array,
    credited_losses,
    job_sums,
)
from chain.federated.rounds import RoundInput
from tests.federated.test_stale_and_cap import _trust  # [FED-AGG.4] from the spec's text

VECTORS_FILE = (Path(__file__).resolve().parents[2] / "protocol_spec" / "vectors"
                / "federated.json")


def _vec(v: Any) -> list[int]:
    return [int(x) for x in v]


_U = (1000, -200, 300, 40)
_N1 = (0, 600, 400, 0)
_N3 = (300, 0, 0, -500)
_Q8 = Q_MAX // 8
CASES: list[dict[str, Any]] = [
    {   # s1, s2: one owner's update u with opposite noise: each round's pair at cosine
        # 0.37, their sums (3u ± n3) near-copies. h: another owner's data. x: one round,
        # loss equal to the final one. z: a zero sum (nobody's copy, counts 1).
        "rounds": [
            {"s1": [u + n for u, n in zip(_U, _N1, strict=True)],
             "s2": [u - n for u, n in zip(_U, _N1, strict=True)],
             "h": [-100, 900, 300, 0], "z": [5, 5, 5, 5]},
            {"s1": [u - n for u, n in zip(_U, _N1, strict=True)],
             "s2": [u + n for u, n in zip(_U, _N1, strict=True)],
             "h": [-120, 950, 280, 10], "x": [100, -200, 1000, 300], "z": [-5, -5, -5, -5]},
            {"s1": [u + n for u, n in zip(_U, _N3, strict=True)],
             "s2": [u - n for u, n in zip(_U, _N3, strict=True)],
             "h": [-90, 880, 320, 5]},
        ],
        "final_loss": 1000,
        "losses": {"s1": 1600, "s2": 1450, "h": 1900, "x": 1000, "z": 990},
    },
    {   # The clamp comes once, after summing: p's sum (3Q, 3Q/8) clamps to (Q, 3Q/8),
        # a near-copy of q's (Q, Q) (cosine 0.91); unclamped it is not (0.79).
        "rounds": [{"p": [Q_MAX, _Q8, 0, 0], "q": [Q_MAX, Q_MAX, 0, 0]},
                   {"p": [Q_MAX, _Q8, 0, 0]}, {"p": [Q_MAX, _Q8, 0, 0]}],
        "final_loss": 50,
        "losses": {"p": 80, "q": 81},
    },
    {   # Not closed transitively: a ~ b (cosine 0.82) and b ~ c (0.82), a and c apart.
        "rounds": [{"a": [1000, 0], "b": [819, 574], "c": [342, 940]}],
        "final_loss": 0,
        "losses": {"a": 300, "b": 300, "c": 300},
    },
]


def job_copy_vectors() -> list[dict[str, Any]]:
    """[FED-REWARD.14] Each case's job sums, copy counts and credited losses, computed by
    chain.federated.job_copies (the ballot in name order)."""
    out = []
    for case in CASES:
        names = sorted(case["losses"])
        inputs = [RoundInput({n.encode(): tuple(v) for n, v in r.items()}) for r in case["rounds"]]
        keys = [n.encode() for n in names]
        sums = job_sums(inputs, keys)
        counts = copy_counts(sums, keys)
        credited = credited_losses(case["final_loss"], [case["losses"][n] for n in names],
                                   counts)
        out.append({**case, "participants": names,
                    "job_sums": {n: _vec(sums[n.encode()]) for n in names
                                 if n.encode() in sums},
                    "copy_counts": dict(zip(names, counts, strict=True)),
                    "credited_losses": dict(zip(names, credited, strict=True))})
    return out


# ------------------------------------------------ the spec's text, written out again

def _spec_credited(case: dict[str, Any], clamp: str = "after", transitive: bool = False
                   ) -> dict[str, int]:
    """The rule from its text. ``clamp`` "per_round" or "never" and ``transitive`` are what
    the rule must not do (the tests show the vectors catch each)."""
    sums: dict[str, list[int]] = {}
    for r in case["rounds"]:
        for n, v in r.items():
            s = [x + y for x, y in zip(sums.get(n, [0] * len(v)), v, strict=True)]
            sums[n] = [max(-Q_MAX, min(Q_MAX, x)) for x in s] if clamp == "per_round" else s
    if clamp == "after":
        sums = {n: [max(-Q_MAX, min(Q_MAX, x)) for x in s] for n, s in sums.items()}
    names = case["participants"]
    near = {a: {b for b in names if b != a and b in sums and a in sums
                and _trust(sums[a], sums[b]) >= 52429} for a in names}
    if transitive:
        for _ in names:
            near = {a: near[a] | {c for b in near[a] for c in near[b] if c != a} for a in names}
    final = case["final_loss"]
    out = {}
    for a in names:
        loss, c = case["losses"][a], 1 + len(near[a])
        out[a] = final + (loss - final) // c if loss > final else loss
    return out


def _committed() -> list[dict[str, Any]]:
    return json.loads(VECTORS_FILE.read_text())["rewards"]["job_copies"]  # type: ignore[no-any-return]


def test_fed_reward_14_vectors_match_an_implementation_of_the_spec_text() -> None:
    """[FED-REWARD.14] The committed credited losses, from the text alone; the sybils' and
    the clamp case's losses are divided, the honest owner's and the zero sum's are not."""
    cases = _committed()
    for case in cases:
        assert _spec_credited(case) == case["credited_losses"]
    first = cases[0]["credited_losses"]
    assert first == {"h": 1900, "s1": 1300, "s2": 1225, "x": 1000, "z": 990}
    assert cases[1]["copy_counts"] == {"p": 2, "q": 2}
    assert cases[2]["copy_counts"] == {"a": 2, "b": 3, "c": 2}


def test_fed_reward_14_the_vectors_break_a_wrong_clamp_or_a_transitive_relation() -> None:
    """[FED-REWARD.14] An implementation that clamps never (or each round) or closes the
    relation transitively gets another vector wrong."""
    cases = _committed()
    assert _spec_credited(cases[1], clamp="never") != cases[1]["credited_losses"]
    assert _spec_credited(cases[2], transitive=True) != cases[2]["credited_losses"]
    assert job_sums([RoundInput({b"p": (Q_MAX,)}), RoundInput({b"p": (Q_MAX,)}),
                     RoundInput({b"p": (-Q_MAX,)})], [b"p"]) == {b"p": (Q_MAX,)}


def test_fed_reward_14_fast_path_equals_the_reference() -> None:
    """[FED-REWARD.14] ``copy_counts_array`` (int64, BLAS or exact dots) gives the reference's
    counts on random jobs: small and near-Q_MAX coordinates, absent rounds, zero sums,
    planted copies."""
    rng = random.Random(1405)
    for trial in range(120):
        dims = rng.choice([1, 3, 8, 40])
        big = trial % 3 == 0
        names = [bytes([65 + i]) for i in range(rng.randint(1, 7))]
        base = [rng.randint(-Q_MAX, Q_MAX) if big else rng.randint(-900, 900)
                for _ in range(dims)]
        rounds = []
        for _ in range(rng.randint(1, 5)):
            ups = {}
            for n in names:
                if rng.random() < 0.2:
                    continue
                if rng.random() < 0.4:  # a noisy copy of the shared direction
                    v = [max(-Q_MAX, min(Q_MAX, b + rng.randint(-300, 300))) for b in base]
                elif rng.random() < 0.1:
                    v = [0] * dims
                else:
                    v = [rng.randint(-Q_MAX, Q_MAX) if big else rng.randint(-900, 900)
                         for _ in range(dims)]
                ups[n] = tuple(v)
            rounds.append(RoundInput(ups))
        expected = copy_counts(job_sums(rounds, names), names)
        assert copy_counts_array(rounds, names) == expected, trial


def test_fed_reward_14_a_fresh_noise_split_shares_and_honest_owners_do_not() -> None:
    """[FED-REWARD.14] One owner through 3 addresses, fresh noise each round keeping every
    round's pairs under cosine 0.8 (so [FED-REWARD.8] never sees them), shares over the job;
    4 owners of different directions keep a count of 1 and their losses."""
    rng = np.random.default_rng(14)
    dims, rounds = 200, 12
    owners = rng.normal(size=(5, dims)) * 1000
    inputs = []
    for _ in range(rounds):
        drift = owners + rng.normal(size=owners.shape) * 30
        ups = {f"h{i}".encode(): tuple(int(x) for x in np.rint(drift[i])) for i in range(4)}
        u = drift[4]
        for c in range(3):
            noisy = np.rint(u + rng.normal(size=dims) * 0.9 * np.linalg.norm(u) / math.sqrt(dims))
            ups[f"s{c}".encode()] = tuple(int(x) for x in noisy)
        sy = [np.array(ups[f"s{c}".encode()], dtype=float) for c in range(3)]
        assert max(_trust(_vec(a), _vec(b)) for a, b in ((sy[0], sy[1]), (sy[0], sy[2]),
                                                          (sy[1], sy[2]))) < 52429
        inputs.append(RoundInput(ups))
    names = sorted({a for r in inputs for a in r.updates})
    counts = dict(zip(names, copy_counts_array(inputs, names), strict=True))
    assert counts == {**{f"h{i}".encode(): 1 for i in range(4)},
                      **{f"s{c}".encode(): 3 for c in range(3)}}
    credited = credited_losses(100, [400] * len(names), [counts[n] for n in names])
    assert dict(zip(names, credited, strict=True)) == {
        **{f"h{i}".encode(): 400 for i in range(4)}, **{f"s{c}".encode(): 200 for c in range(3)}}


def test_fed_reward_14_credited_losses_refuse_bad_counts() -> None:
    """A count per loss, each at least 1: anything else is a clear error naming both."""
    with pytest.raises(FederatedError) as err:
        credited_losses(10, [20, 30], [1])
    assert err.value.code == "bad_counts"
    with pytest.raises(FederatedError):
        credited_losses(10, [20], [0])
