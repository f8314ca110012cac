"""Centered clipping after nearest-neighbour mixing [FED-AGG.10] and its center [FED-AGG.11]:
the committed vectors against an implementation written from the spec's text alone, the
bound the clipping promises, the protocol version that admits the rule [TX-FED.11], and a
job on the ledger whose every round a member computes from the state and blobs exactly as
the end's replay does (a void round between accepted ones included)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.content import blob_id_of_bytes
from chain.federated import fast
from chain.federated.blobs import ModelBlob, model_hash
from chain.federated.centered import centered_clip
from chain.federated.fixed import Q_MAX
from chain.federated.open.reads import fed_rounds
from chain.federated.open.replay import end_models, replay_plan
from chain.federated.rounds import CENTERED_CLIP, Aggregation, RoundInput, replay
from chain.train.bodies import PostJob
from chain.types import Address
from client.federated.member.compute import needed_blobs, round_aggregate, step_base
from tests.federated.fed_ledger_story import (
    INITIAL,
    PARTICIPANTS,
    SCALE,
    FedStory,
    conserved,
    fed_job_spec,
)
from tests.ledger.harness import Chain

VECTORS = json.loads((Path(__file__).resolve().parents[2] / "protocol_spec" / "vectors"
                      / "federated.json").read_text())["aggregation"]["centered_clip"]


# ------------------------------------------------------- from federated.md's text alone

def _spec_rdiv(n: int, d: int) -> int:
    """FED-QUANT.2 as written: the nearest integer to n/d, ties to the even one."""
    q, r = divmod(n, d)
    if 2 * r > d or (2 * r == d and q % 2 == 1):
        q += 1
    return q


def _spec_clamp(v: int) -> int:
    return -Q_MAX if v < -Q_MAX else Q_MAX if v > Q_MAX else v


def _spec_centered_clip(g: list[list[int]], c: list[int], f: int) -> dict[str, object]:
    """federated.md [FED-AGG.10] steps 1-5, line by line."""
    n = len(g)
    dist = [[sum((a - b) ** 2 for a, b in zip(g[i], g[j], strict=True)) for j in range(n)]
            for i in range(n)]
    mixed = []
    for i in range(n):
        near = sorted((dist[i][j], j) for j in range(n))[:n - f]
        mixed.append([_spec_rdiv(sum(g[j][k] for _, j in near), n - f)
                      for k in range(len(c))])
    e = [[_spec_clamp(y - cj) for y, cj in zip(m, c, strict=True)] for m in mixed]
    big_e = [sum(x * x for x in row) for row in e]
    r = sorted(big_e)[(n - 1) // 2]
    z = []
    for row, ei in zip(e, big_e, strict=True):
        if ei <= r:
            z.append(row)
        else:
            factor = math.isqrt((r << 64) // ei)
            z.append([_spec_clamp(_spec_rdiv(x * factor, 1 << 32)) for x in row])
    agg = [_spec_clamp(cj + _spec_rdiv(sum(zi[j] for zi in z), n)) for j, cj in enumerate(c)]
    return {"mixed": mixed, "diffs": e, "square_norms": [str(x) for x in big_e],
            "radius2": str(r), "aggregate": agg}


def test_vectors_match_an_implementation_of_the_spec_text() -> None:
    """[FED-AGG.10] [FED-AGG.11] Every committed case, each intermediate included, from the
    spec text alone; and the reference rule gives the same aggregate."""
    cases = [c for c in VECTORS if "updates" in c]
    assert len(cases) >= 5
    for c in cases:
        got = _spec_centered_clip(c["updates"], c["center"], c["f"])
        assert got == {k: c[k] for k in got}, c
        assert list(centered_clip(c["updates"], c["center"], c["f"])) == c["aggregate"]
    step = next(c for c in VECTORS if "step" in c)
    assert step["step"] == [_spec_clamp(a - b) for a, b in zip(
        step["model_after"], step["model_before"], strict=True)]


def test_f_zero_is_the_plain_mean_and_a_far_attacker_is_clipped() -> None:
    """[FED-AGG.10] f = 0 mixes everything: the plain mean. With f = 1, an update 100 times
    farther than the others moves the aggregate by at most the radius over n."""
    ups = [(10, 20), (12, 18), (9, 22), (11, 19), (-4000, -8000)]
    assert centered_clip(ups, (0, 0), 0) == (_spec_rdiv(-3958, 5), _spec_rdiv(-7921, 5))
    honest = centered_clip(ups[:4], (0, 0), 1)
    attacked = centered_clip(ups, (0, 0), 1)
    moved = math.dist(honest, attacked)
    assert moved <= math.hypot(10, 20) * 2 / 5 + 2, (honest, attacked)


values = st.integers(-(1 << 20), 1 << 20)


@settings(max_examples=120, deadline=None)
@given(st.integers(1, 8), st.integers(1, 5), st.data())
def test_aggregate_stays_within_the_radius_of_the_center(n: int, dims: int,
                                                         data: st.DataObject) -> None:
    """[FED-AGG.10] Every clipped difference is at most the radius long (plus rounding), so
    the aggregate lies within the radius of the center, whatever the updates."""
    f = data.draw(st.integers(0, n - 1))
    ups = [tuple(data.draw(values) for _ in range(dims)) for _ in range(n)]
    c = tuple(data.draw(values) for _ in range(dims))
    radius2 = int(str(_spec_centered_clip([list(u) for u in ups], list(c), f)["radius2"]))
    got = centered_clip(ups, c, f)
    assert math.dist(got, c) <= math.sqrt(radius2) + dims
    assert got == fast.centered_clip(np.array(ups, dtype=np.int64), np.array(c), f)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.tuples(values, values, values), min_size=0, max_size=5),
                min_size=1, max_size=4), st.integers(0, 2), st.data())
def test_replay_carries_the_center_as_live_rounds_do(rounds: list[list[tuple[int, int, int]]],
                                                     f: int, data: st.DataObject) -> None:
    """[FED-AGG.11] [FED-REWARD.2] Rounds computed one at a time with the center the last
    step (as members do live) reach the model the replay reaches, on both paths; a round
    too small for the rule [FED-AGG.1] steps by zero, so the next center is zero."""
    agg = Aggregation(CENTERED_CLIP, f)
    model: tuple[int, ...] = (0, 0, 0)
    center: tuple[int, ...] = (0, 0, 0)
    inputs = []
    for i, rows in enumerate(rounds):
        updates = {bytes([i * 10 + j + 1]) * 20: r for j, r in enumerate(rows)}
        inputs.append(RoundInput(updates))
        result = fast.aggregate_round(agg, updates, None, 3, center)
        new = tuple(max(-Q_MAX, min(Q_MAX, a + b)) for a, b in zip(model, result.aggregate,
                                                                strict=True))
        center = tuple(b - a for a, b in zip(model, new, strict=True))  # 0 after a void one
        model = new
    assert replay(agg, (0, 0, 0), inputs) == model == fast.replay(agg, (0, 0, 0), inputs)


# ------------------------------------------------------- the ledger [TX-FED.11]

def test_the_rule_needs_protocol_version_4() -> None:
    """[TX-FED.11] A job naming centered_clip is refused while version 3 is in force
    (``needs_protocol_version``) and posted under version 4."""
    spec = fed_job_spec(aggregation=Aggregation(CENTERED_CLIP, 1), min_participants=3)
    old = FedStory(Chain(protocol_version=3))
    assert old.chain.reject(old.chain.tx("submitter", PostJob(spec))) == \
        "needs_protocol_version"
    new = FedStory(Chain(protocol_version=4))
    new.post(spec)
    assert new.fed.round == 1
    conserved(new.chain)


def test_members_compute_each_round_as_the_end_replays_it() -> None:
    """[FED-AGG.11] [FED-STATE.2] [FED-REWARD.2] A centered_clip job of four rounds (the
    second void): each accepted round's model comes from the member's own computation
    (``step_base`` names the model two accepted rounds back, its blob is fetched with the
    round's), and the end's replay from the state and blobs reaches the same final hash."""
    s = FedStory(Chain(protocol_version=4))
    s.post(fed_job_spec(aggregation=Aggregation(CENTERED_CLIP, 1), min_participants=3,
                        rounds=4))
    s.publish()
    blobs = {blob_id_of_bytes(INITIAL.to_bytes()): INITIAL.to_bytes()}
    bases = []
    for r in (1, 2, 3, 4):
        fed = s.fed
        assert fed.round == r
        if r == 2:  # two reveals of three: void [FED-ROUND.2]
            s.commit_and_reveal(PARTICIPANTS[:2])
            continue
        s.commit_and_reveal()
        fed = s.fed
        spec = s.chain.job(s.job_id).spec.federated
        assert spec is not None
        base = step_base(spec, fed_rounds(s.chain.state, s.job_id))
        bases.append(base)
        for n in PARTICIPANTS:
            data = s.update_blob(n, r)
            blobs[blob_id_of_bytes(data)] = data
        assert needed_blobs(fed, base) <= set(blobs)
        mine = round_aggregate(fed, spec, blobs, base=base)
        s.post_aggregate(mine.model_blob, {Address(a): w for a, w in mine.weights})
        s.vote({n: (True, 700_000, None) for n in s.voters()})
        blobs[blob_id_of_bytes(mine.model_blob)] = mine.model_blob
        s.model = ModelBlob.from_bytes(mine.model_blob).values
    recorded = fed_rounds(s.chain.state, s.job_id)
    assert [r.outcome for r in recorded] == ["accepted", "void", "accepted", "accepted"]
    # round 1: no center; round 3: the initial model; round 4: round 1's model
    assert bases == [None, blob_id_of_bytes(INITIAL.to_bytes()), recorded[0].model_blob], bases
    plan = replay_plan(s.chain.state, s.job_id)
    assert plan is not None
    final, loo = end_models(plan, blobs)
    assert model_hash(ModelBlob(SCALE, final).to_bytes()) == recorded[-1].model_hash
    assert final == s.model and set(loo) == set(plan.loo_participants)
    conserved(s.chain)


def test_cli_default_rule_is_centered_clipping_where_the_graph_has_it() -> None:
    """[FED-SPEC.2] [TX-FED.11] ``job submit --federated`` without ``--rule``: centered
    clipping with f = (min participants - 1) // 2 on a version 4 graph (or one that does not
    say); the plain mean on an older graph and in private mode; what is given, as given."""
    from client.cli.job.federated import chosen_aggregation

    terms = {"min_participants": 10, "privacy": "open"}
    assert chosen_aggregation(terms, 4) == Aggregation(CENTERED_CLIP, 4)
    assert chosen_aggregation(terms, None) == Aggregation(CENTERED_CLIP, 4)
    assert chosen_aggregation({**terms, "min_participants": 2}, 4) == \
        Aggregation(CENTERED_CLIP, 0)
    assert chosen_aggregation(terms, 3) == Aggregation("trimmed_mean", 0)
    assert chosen_aggregation({**terms, "privacy": "private"}, 4) == \
        Aggregation("trimmed_mean", 0)
    assert chosen_aggregation({**terms, "rule": "multi_krum", "trim": 2}, 4) == \
        Aggregation("multi_krum", 2)
    assert chosen_aggregation({**terms, "rule": CENTERED_CLIP, "trim": 1}, 4) == \
        Aggregation(CENTERED_CLIP, 1)
