"""Stale copies earn nothing [FED-REWARD.12] and no round weight exceeds the round's median
[FED-REWARD.13]: the committed vectors against an implementation written from the spec's
text alone, the cases that try to break each rule (a copy made earlier must not make its
owner stale; a consensus copy must not out-earn the median owner), the fast path against
the reference, and a job on the ledger whose replayer, 2 quanta past the replay quantum,
is paid nothing for the round it copied in."""

from __future__ import annotations

import hashlib
import json
import math
import random
from pathlib import Path
from typing import Any

import numpy as np

from chain.federated import fast
from chain.federated.fixed import Q_MAX
from chain.federated.open.reads import fed_rounds, part_body
from chain.federated.open.records import FedPhase
from chain.federated.rounds import CENTERED_CLIP, FLTRUST, MEDIAN, TRIMMED_MEAN, Aggregation
from chain.federated.rounds import aggregate_round as reference_round
from tests.federated.fed_ledger_story import UPDATES, FedStory, conserved
from tests.federated.test_replays import _round, two_round_job

VECTORS = json.loads((Path(__file__).resolve().parents[2] / "protocol_spec" / "vectors"
                      / "federated.json").read_text())["aggregation"]["stale_and_cap"]


# ------------------------------------------------ the spec's text, written out again

def _trust(a: list[int], b: list[int]) -> int:
    """[FED-AGG.4] isqrt(2^32 · d² // (n_a² · n_b²)), 0 when d <= 0 or a norm is 0."""
    d = sum(x * y for x, y in zip(a, b, strict=True))
    na, nb = sum(x * x for x in a), sum(y * y for y in b)
    if d <= 0 or na == 0 or nb == 0:
        return 0
    return math.isqrt((1 << 32) * d * d // (na * nb))


def _rdiv(n: int, d: int) -> int:
    q, r = divmod(n, d)
    return q + 1 if 2 * r > d or (2 * r == d and q % 2 == 1) else q


def _lower_median(values: list[int]) -> int:
    return sorted(values)[(len(values) - 1) // 2]


def _spec_weights(updates: dict[str, list[int]], latest: dict[str, list[int]],
                  own_latest: bool = True) -> tuple[list[int], dict[str, int]]:
    """The plain mean [FED-AGG.2] (k = 0) and the weights [FED-AGG.7] after
    [FED-REWARD.7], [FED-REWARD.12], [FED-REWARD.13] and [FED-REWARD.8], from the text.
    ``own_latest`` False leaves out the own-update term of N (what the rule must not do)."""
    names = sorted(updates, key=_addr)
    g = [updates[n] for n in names]
    dims = len(g[0])
    agg = [_rdiv(sum(v[j] for v in g), len(g)) for j in range(dims)]
    w = [_trust(v, agg) for v in g]
    n2 = [sum(x * x for x in v) for v in g]
    positive = [n2[i] for i in range(len(g)) if w[i] > 0]
    if positive:  # [FED-REWARD.7]
        w = [0 if n2[i] > 100 * _lower_median(positive) else w[i] for i in range(len(g))]
    for i, a in enumerate(names):  # [FED-REWARD.12]
        if w[i] == 0:
            continue
        e = max((_trust(g[i], v) for b, v in latest.items() if b != a), default=0)
        mine = [_trust(g[i], latest[a])] if own_latest and a in latest else []
        n = max([_trust(g[i], g[j]) for j in range(len(g)) if j != i] + mine, default=0)
        if e >= 52429 and e > n:
            w[i] = 0
    live = [x for x in w if x > 0]
    if live:  # [FED-REWARD.13]
        cap = _lower_median(live)
        w = [min(x, cap) for x in w]
    count = [1 + sum(1 for j in range(len(g)) if j != i and w[j] > 0
                     and _trust(g[i], g[j]) >= 52429) for i in range(len(g))]  # [FED-REWARD.8]
    return agg, {a: (w[i] // count[i] if w[i] > 0 else 0) for i, a in enumerate(names)}


def _addr(name: str) -> bytes:
    return hashlib.sha256(f"address:{name}".encode()).digest()[:20]


def test_vectors_match_an_implementation_of_the_spec_text() -> None:
    """[FED-REWARD.12] [FED-REWARD.13] Each committed round's aggregate and weights, from the
    text alone; and the rules do change them (the weights before version 4 differ)."""
    for case in VECTORS:
        agg, weights = _spec_weights(case["updates"], case["latest"])
        assert agg == case["aggregate"]
        assert weights == {e["name"]: e["weight"] for e in case["weights"]}
    assert any(case["weights_before_version_4"] != {e["name"]: e["weight"]
                                                   for e in case["weights"]}
               for case in VECTORS)


def test_fed_reward_12_an_earlier_copy_does_not_make_its_owner_stale() -> None:
    """[FED-REWARD.12] r copied h1's update of two rounds back and is silent now: h1's
    update is nearer r's copy than any update of its round, but nearer still its own last
    update, so it keeps its weight. Without the own-update term h1 would be cut: the case
    breaks an implementation that leaves it out."""
    case = VECTORS[1]
    _, weights = _spec_weights(case["updates"], case["latest"])
    assert weights["h1"] > 0
    _, broken = _spec_weights(case["updates"], case["latest"], own_latest=False)
    assert broken["h1"] == 0
    got = reference_round(Aggregation(TRIMMED_MEAN, 0),
                          {_addr(n): tuple(u) for n, u in case["updates"].items()}, None, 4,
                          latest={_addr(n): tuple(v) for n, v in case["latest"].items()})
    assert got.weight_of(_addr("h1")) == weights["h1"]


def test_fed_reward_13_a_consensus_copy_earns_no_more_than_the_median_owner() -> None:
    """[FED-REWARD.13] m sends the others' mean: the largest raw weight of its round, cut to
    the median positive weight, which no honest owner's weight exceeds."""
    case = VECTORS[0]
    before = case["weights_before_version_4"]
    w = {e["name"]: e["weight"] for e in case["weights"]}
    assert before["m"] == max(before.values())
    assert w["m"] == max(w.values()) == _lower_median([x for x in w.values() if x > 0])
    assert w["c"] == 0 and w["h1"] > before["h1"]  # [FED-REWARD.12]: the copy, not h1


def test_stale_and_cap_fast_equal_reference() -> None:
    """[FED-REWARD.12] [FED-REWARD.13] Random rounds near one direction, with latest earlier
    updates that are copies (±3 of a round's update, or of another's), under four rules,
    a third of them with coordinates near 2**31 (the exact dot products, no BLAS): the
    fast weights equal the reference's, and stale copies and capped weights occur."""
    rng = random.Random(49)
    stale = capped = 0

    def q(x: int) -> int:
        return max(-Q_MAX, min(Q_MAX, x))
    for t in range(250):
        n, dims = rng.randint(2, 7), rng.randint(2, 6)
        scale = 30_000_000 if t % 3 == 0 else 1  # past 2**53: the exact dots path
        base = [rng.randint(-60, 60) * scale for _ in range(dims)]
        ups = {bytes([i + 1]) * 20: tuple(q(b + rng.randint(-40, 40) * scale) for b in base)
               for i in range(n)}
        latest = {}
        for _ in range(rng.randint(0, n + 2)):
            src = rng.choice(list(ups.values()))
            latest[bytes([rng.randint(1, n + 2)]) * 20] = tuple(q(x + rng.randint(-3, 3))
                                                                for x in src)
        agg = rng.choice([Aggregation(TRIMMED_MEAN, 0), Aggregation(MEDIAN),
                          Aggregation(CENTERED_CLIP), Aggregation(FLTRUST)])
        want = reference_round(agg, ups, tuple(base), dims, latest=latest)
        got = fast.aggregate_round(agg, {a: np.array(v) for a, v in ups.items()},
                                   np.array(base), dims, latest=latest)
        assert got == want
        old = reference_round(agg, ups, tuple(base), dims)
        new_w, old_w = dict(want.weights), dict(old.weights)
        stale += sum(1 for a in new_w if new_w[a] == 0 < old_w[a])
        capped += sum(1 for a in new_w if 0 < new_w[a] < old_w[a])
    assert stale > 10 and capped > 10, (stale, capped)


def _stale_job() -> tuple[FedStory, dict[str, int], dict[str, int]]:
    s, blobs, first = two_round_job()
    _, w1 = _round(s, 1, first, blobs, stale_and_cap=True)
    copy = (UPDATES["alice"][0] + 2, *UPDATES["alice"][1:])
    second = {"alice": (2100, -380, 590, 90), "bob": (2300, -220, 480, 130),
              "carol": (700, 900, -300, 40), "dave": copy}
    left, w2 = _round(s, 2, second, blobs, stale_and_cap=True)
    assert left == ()  # 2 quanta off: not a replay [FED-REWARD.10], named in the weights
    return s, w1, w2


def test_fed_reward_12_a_replay_two_quanta_off_is_paid_nothing_for_its_round() -> None:
    """[FED-REWARD.12] [FED-REWARD.5] On the ledger at protocol version 4: dave sends alice's
    round-1 update 2 quanta off in round 2. The members' computation names it with weight 0
    and leaves alice her weight; the payout gives dave round 1's share only, less than
    each owner that trained in both rounds."""
    s, w1, w2 = _stale_job()
    assert w2["dave"] == 0 and w2["alice"] > 0 and w1["dave"] > 0
    recorded = fed_rounds(s.chain.state, s.job_id)
    assert dict((s.name(a), w) for a, w in recorded[1].weights)["dave"] == 0
    s.chain.block(s.chain.tx("submitter", part_body(s.job_id, "hidden", b"\x32" * 32, 1000)))
    losses = [100] + [150] * len(s.fed.loo_participants)
    s.vote({n: (True, None, losses) for n in s.voters()})
    assert s.fed.phase == FedPhase.DONE
    paid: dict[str, Any] = {s.name(a): v for a, v in s.fed.paid}
    assert all(paid[n] > paid["dave"] for n in ("alice", "bob", "carol")), paid
    conserved(s.chain)
