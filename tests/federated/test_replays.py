"""Replays of earlier updates earn nothing [FED-REWARD.10]: on the ledger, a data owner that
sends another owner's update of the round before (exactly, or within one quantum) is left
out of the round by the members' computation, is not named in the weights, and the end's
replay and payout leave it out too; one more quantum off is an update like any other."""

from __future__ import annotations

from chain.content import blob_id_of_bytes
from chain.federated.blobs import ModelBlob, UpdateBlob, model_hash
from chain.federated.history import replays, within_quantum
from chain.federated.open.reads import fed_rounds, part_body, update_bodies
from chain.federated.open.records import FedPhase
from chain.federated.open.replay import end_models, replay_plan
from chain.federated.rounds import Aggregation
from chain.types import Address
from client.federated.member.compute import (
    earlier_updates,
    needed_blobs,
    round_aggregate,
    step_base,
)
from tests.federated.fed_ledger_story import (
    INITIAL,
    SCALE,
    UPDATES,
    FedStory,
    conserved,
    fed_job_spec,
    salt_of,
)
from tests.ledger.harness import Chain

OWNERS = ("alice", "bob", "carol", "dave")


def test_within_one_quantum_is_the_same_update() -> None:
    """[FED-REWARD.10] Equal, or at most 1 apart in every coordinate: a replay; 2 apart in
    one coordinate, or another length: not."""
    assert within_quantum((5, -7, 0), (5, -7, 0)) and within_quantum((5, -7, 0), (6, -8, 1))
    assert not within_quantum((5, -7, 0), (7, -7, 0))
    assert not within_quantum((5, -7), (5, -7, 0))
    assert replays([(b"a", (1, 2)), (b"b", (9, 9))], [(0, 3), (4, 4)]) == {b"a"}


def _round(s: FedStory, r: int, sent: dict[str, tuple[int, ...]],
           blobs: dict[bytes, bytes], stale_and_cap: bool = False
           ) -> tuple[tuple[Address, ...], dict[str, int]]:
    """Round r with each owner's ``sent`` values: commits, reveals, the member's own
    computation from the state and blobs (history included; ``stale_and_cap``: with
    [FED-REWARD.12] [FED-REWARD.13]), posted, voted valid."""
    tx = s.chain.tx
    made = {}
    for n, values in sent.items():
        data = UpdateBlob(s.job_id, r, s.chain.addr(n), SCALE, values).to_bytes()
        blobs[blob_id_of_bytes(data)] = data
        made[n] = update_bodies(s.job_id, r, s.chain.addr(n), data, salt_of("u", n, r))
    s.chain.block(*(tx(n, b.commit) for n, b in made.items()))
    s.until_deadline()
    s.chain.block(*(tx(n, b.reveal) for n, b in made.items()))
    s.until_deadline()
    spec = s.chain.job(s.job_id).spec.federated
    assert spec is not None
    earlier = fed_rounds(s.chain.state, s.job_id)
    base, history = step_base(spec, earlier), earlier_updates(earlier)
    assert needed_blobs(s.fed, base, history) <= set(blobs)
    mine = round_aggregate(s.fed, spec, blobs, base=base, history=history,
                           stale_and_cap=stale_and_cap)
    s.post_aggregate(mine.model_blob, {Address(a): w for a, w in mine.weights})
    s.vote({n: (True, 700_000, None) for n in s.voters()})
    blobs[blob_id_of_bytes(mine.model_blob)] = mine.model_blob
    s.model = ModelBlob.from_bytes(mine.model_blob).values
    return mine.replays, {s.name(a): w for a, w in mine.weights}


def two_round_job() -> tuple[FedStory, dict[bytes, bytes], dict[str, tuple[int, ...]]]:
    """A version-4 trimmed-mean job of two rounds for the four owners, published; its blobs
    so far and round 1's honest updates."""
    s = FedStory(Chain(protocol_version=4))
    s.post(fed_job_spec(aggregation=Aggregation("trimmed_mean", 0), min_participants=2,
                        max_participants=4, rounds=2))
    s.publish()
    blobs = {blob_id_of_bytes(INITIAL.to_bytes()): INITIAL.to_bytes()}
    first: dict[str, tuple[int, ...]] = {
        "alice": UPDATES["alice"], "bob": UPDATES["bob"], "carol": UPDATES["carol"],
        "dave": (1100, -250, 280, 50)}
    return s, blobs, first


def test_a_replayed_update_is_left_out_and_paid_nothing() -> None:
    """[FED-REWARD.10] [FED-REWARD.2] [FED-REWARD.5] Round 1: four honest owners. Round 2:
    dave sends alice's round-1 update and carol sends bob's plus one quantum
    in every coordinate; only alice and bob train. Both copies are left out of round 2 (not
    named in its weights); the end's replay reaches the recorded hash; the payout gives the
    two copiers round 1's shares only."""
    s, blobs, first = two_round_job()
    left, w1 = _round(s, 1, first, blobs)
    assert left == () and set(w1) == set(OWNERS) and all(w1.values())
    second = {"alice": (2100, -380, 590, 90), "bob": (2300, -220, 480, 130),
              "carol": tuple(v + 1 for v in UPDATES["bob"]), "dave": UPDATES["alice"]}
    left, w2 = _round(s, 2, second, blobs)
    assert sorted(s.name(a) for a in left) == ["carol", "dave"]
    assert set(w2) == {"alice", "bob"} and all(w2.values())
    recorded = fed_rounds(s.chain.state, s.job_id)
    assert {s.name(a) for a, _ in recorded[1].weights} == {"alice", "bob"}
    s.chain.block(s.chain.tx("submitter", part_body(s.job_id, "hidden", b"\x32" * 32, 1000)))
    plan = replay_plan(s.chain.state, s.job_id)
    assert plan is not None
    final, _ = end_models(plan, blobs)
    assert model_hash(ModelBlob(SCALE, final).to_bytes()) == recorded[-1].model_hash
    losses = [100] + [150] * len(s.fed.loo_participants)
    s.vote({n: (True, None, losses) for n in s.voters()})
    assert s.fed.phase == FedPhase.DONE
    paid = {s.name(a): v for a, v in s.fed.paid}
    assert paid["alice"] > paid["dave"] and paid["bob"] > paid["carol"], paid
    conserved(s.chain)


def test_two_quanta_off_is_not_a_replay() -> None:
    """[FED-REWARD.10] An update 2 off an earlier one in a single coordinate is weighed as
    an update (here: named in the round's weights)."""
    s = FedStory(Chain(protocol_version=4))
    s.post(fed_job_spec(min_participants=2, max_participants=3, rounds=2))
    s.publish()
    blobs = {blob_id_of_bytes(INITIAL.to_bytes()): INITIAL.to_bytes()}
    _round(s, 1, {n: UPDATES[n] for n in ("alice", "bob", "carol")}, blobs)
    off = (UPDATES["alice"][0] + 2, *UPDATES["alice"][1:])
    left, w2 = _round(s, 2, {"alice": (2100, -380, 590, 90), "bob": (2300, -220, 480, 130),
                             "carol": off}, blobs)
    assert left == () and "carol" in w2
