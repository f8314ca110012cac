"""Centered clipping around the last step [FED-AGG.10] and its center [FED-AGG.11]: the
committed vectors against an implementation written from the spec's text alone, the bound
the clipping promises, what the agreement and distance steps leave out, the protocol version
that admits the rule [TX-FED.11], and a job on the ledger whose every round a member computes
from the state and blobs exactly as the end's replay does (a void round between accepted
ones included)."""

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


def _spec_lower_median(values: list[int]) -> int:
    return sorted(values)[(len(values) - 1) // 2]


def _spec_centered_clip(g: list[list[int]], c: list[int]) -> dict[str, object]:
    """federated.md [FED-AGG.10] steps 1-5, line by line."""
    n = len(g)
    s = list(range(n))
    if any(c):
        a = [i for i in range(n) if sum(x * y for x, y in zip(g[i], c, strict=True)) > 0]
        if 2 * len(a) > n:
            s = a
    e = {i: [_spec_clamp(x - y) for x, y in zip(g[i], c, strict=True)] for i in s}
    big_e = {i: sum(x * x for x in e[i]) for i in s}
    m = _spec_lower_median([big_e[i] for i in s])
    t = [i for i in s if big_e[i] <= 9 * m]
    r = _spec_lower_median([big_e[i] for i in t])
    z = []
    for i in t:
        if big_e[i] <= r:
            z.append(e[i])
        else:
            factor = math.isqrt((r << 64) // big_e[i])
            z.append([_spec_clamp(_spec_rdiv(x * factor, 1 << 32)) for x in e[i]])
    agg = [_spec_clamp(cj + _spec_rdiv(sum(zi[j] for zi in z), len(t)))
           for j, cj in enumerate(c)]
    return {"counted": s, "diffs": {str(i): v for i, v in e.items()},
            "square_norms": {str(i): str(v) for i, v in big_e.items()}, "kept": t,
            "radius2": str(r), "aggregate": agg}


def test_vectors_match_an_implementation_of_the_spec_text() -> None:
    """[FED-AGG.10] [FED-AGG.11] Every committed case, each intermediate included, from the
    spec text alone; and the reference rule gives the same aggregate."""
    cases = [c for c in VECTORS if "updates" in c]
    assert len(cases) >= 6
    for c in cases:
        got = _spec_centered_clip(c["updates"], c["center"])
        assert got == {k: c[k] for k in got}, c
        assert list(centered_clip(c["updates"], c["center"])) == c["aggregate"]
    step = next(c for c in VECTORS if "step" in c)
    assert step["step"] == [_spec_clamp(a - b) for a, b in zip(
        step["model_after"], step["model_before"], strict=True)]


def test_what_the_agreement_and_distance_steps_leave_out() -> None:
    """[FED-AGG.10] Against a center most updates agree with, an update pointing the other
    way is left out whole, and one agreeing but 23 times farther than the median as well;
    with a zero center, one 400 times farther than the median is out (the aggregate is the
    others'); without an agreeing majority, everything counts."""
    c = _spec_centered_clip([[10, 20], [12, 18], [30, 70], [11, 19], [-40, -80]], [10, 21])
    assert c["counted"] == [0, 1, 2, 3] and c["kept"] == [0, 1, 3]  # (30, 70): too far
    far = _spec_centered_clip([[10, 20], [12, 18], [9, 22], [11, 19], [-4000, -8000]], [0, 0])
    assert far["kept"] == [0, 1, 2, 3]
    assert centered_clip([(10, 20), (12, 18), (9, 22), (11, 19), (-4000, -8000)], (0, 0)) == \
        centered_clip([(10, 20), (12, 18), (9, 22), (11, 19)], (0, 0))
    split = _spec_centered_clip([[1, 1], [3, -5], [-7, 2], [-2, -2]], [1, 1])
    assert split["counted"] == [0, 1, 2, 3]


values = st.integers(-(1 << 20), 1 << 20)


@settings(max_examples=120, deadline=None)
@given(st.integers(1, 8), st.integers(1, 5), st.data())
def test_aggregate_stays_within_the_radius_of_the_center(n: int, dims: int,
                                                         data: st.DataObject) -> None:
    """[FED-AGG.10] Every clipped difference is at most the radius long (plus rounding), so
    the aggregate lies within the radius of the center, whatever the updates; the fast
    path gives the same integers."""
    ups = [tuple(data.draw(values) for _ in range(dims)) for _ in range(n)]
    c = tuple(data.draw(values) for _ in range(dims))
    spec = _spec_centered_clip([list(u) for u in ups], list(c))
    got = centered_clip(ups, c)
    assert list(got) == spec["aggregate"]
    assert math.dist(got, c) <= math.sqrt(int(str(spec["radius2"]))) + dims
    assert got == fast.centered_clip(np.array(ups, dtype=np.int64), np.array(c))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.tuples(values, values, values), min_size=0, max_size=5),
                min_size=1, max_size=4))
def test_replay_carries_the_center_as_live_rounds_do(
        rounds: list[list[tuple[int, int, int]]]) -> None:
    """[FED-AGG.11] [FED-REWARD.2] Rounds computed one at a time with the center the last
    step (as members do live) reach the model the replay reaches, on both paths; a round
    too small for the rule [FED-AGG.1] steps by zero, so the next center is zero."""
    agg = Aggregation(CENTERED_CLIP, 0)
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
    """[TX-FED.11] A job naming centered_clip, or FLTrust through it, is refused while
    version 3 is in force (``needs_protocol_version``); posted under version 4."""
    spec = fed_job_spec(aggregation=Aggregation(CENTERED_CLIP, 0), min_participants=3)
    old = FedStory(Chain(protocol_version=3))
    assert old.chain.reject(old.chain.tx("submitter", PostJob(spec))) == \
        "needs_protocol_version"
    flt = fed_job_spec(aggregation=Aggregation("fltrust", 1), min_participants=3)
    assert old.chain.reject(old.chain.tx("submitter", PostJob(flt))) == \
        "needs_protocol_version"  # [FED-AGG.12]
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
    s.post(fed_job_spec(aggregation=Aggregation(CENTERED_CLIP, 0), min_participants=3,
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
    clipping on a version 4 graph (or one that does not say); the plain mean on an older
    graph and in private mode; FLTrust through centered clipping for ``--rule fltrust``
    [FED-AGG.12] where the graph has it; what is given, as given."""
    from client.cli.job.federated import chosen_aggregation

    terms = {"min_participants": 10, "privacy": "open"}
    assert chosen_aggregation(terms, 4) == Aggregation(CENTERED_CLIP, 0)
    assert chosen_aggregation(terms, None) == Aggregation(CENTERED_CLIP, 0)
    assert chosen_aggregation(terms, 3) == Aggregation("trimmed_mean", 0)
    assert chosen_aggregation({**terms, "privacy": "private"}, 4) == \
        Aggregation("trimmed_mean", 0)
    assert chosen_aggregation({**terms, "rule": "multi_krum", "trim": 2}, 4) == \
        Aggregation("multi_krum", 2)
    assert chosen_aggregation({**terms, "rule": "trimmed_mean"}, 4) == \
        Aggregation("trimmed_mean", 0)
    # [FED-AGG.12] FLTrust through centered clipping unless told otherwise, where it exists
    assert chosen_aggregation({**terms, "rule": "fltrust"}, 4) == Aggregation("fltrust", 1)
    assert chosen_aggregation({**terms, "rule": "fltrust"}, None) == Aggregation("fltrust", 1)
    assert chosen_aggregation({**terms, "rule": "fltrust"}, 3) == Aggregation("fltrust", 0)
    assert chosen_aggregation({**terms, "rule": "fltrust", "trim": 0}, 4) == \
        Aggregation("fltrust", 0)


def test_members_fetch_the_step_base_for_every_rule_that_clips_around_it() -> None:
    """[FED-AGG.11] [FED-AGG.12] ``step_base`` names the model before the last accepted round
    for centered clipping and for FLTrust through it, and nothing for FLTrust as before."""
    from chain.federated.open.records import FedRound
    from chain.types import Hash32

    rounds_done = [FedRound(1, "accepted", Hash32(b"\x01" * 32), Hash32(b"\x02" * 32)),
                   FedRound(2, "void", None, Hash32(b"\x02" * 32)),
                   FedRound(3, "accepted", Hash32(b"\x03" * 32), Hash32(b"\x04" * 32))]
    for agg, want in ((Aggregation(CENTERED_CLIP, 0), b"\x02" * 32),
                      (Aggregation("fltrust", 1), b"\x02" * 32),
                      (Aggregation("fltrust", 0), None), (Aggregation("median", 0), None)):
        spec = fed_job_spec(aggregation=agg, min_participants=3).federated
        assert spec is not None
        assert step_base(spec, rounds_done) == want, agg
        assert step_base(spec, rounds_done[:1]) == (None if want is None
                                                    else spec.initial_model)
