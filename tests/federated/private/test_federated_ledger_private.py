"""Private mode through real blocks (protocol_spec/federated.md §6-7): keys, shares,
masked reveals, unmask blobs, the aggregate members recompute from public bytes, and
each new transaction's checks in their order. Every test ends by checking [BANK.1].
"""

from __future__ import annotations

import itertools
from dataclasses import replace

from chain.federated.blobs import ModelBlob
from chain.federated.fixed import rdiv
from chain.federated.open.reads import fed_rounds
from chain.federated.open.records import FedPhase
from chain.federated.private.bodies import FedKeys
from chain.federated.private.reads import commit_bodies, masked_reveal, shares_body, unmask_body
from chain.federated.rewards import payout
from chain.records import JobStatus
from chain.types import Hash32
from tests.federated.fed_ledger_story import BOUNTY, SCALE, conserved, fed_job_spec
from tests.federated.fed_private_story import (
    OWNERS,
    PrivateStory,
    coefficients,
    private_job_spec,
    secrets_of,
)


def private_story() -> PrivateStory:
    """Round 1: four keyed, dave drops after the share exchange, three survivors unmask;
    round 2: all four. Both accepted; the job pays by round weights [FED-REWARD.6]."""
    s = PrivateStory()
    s.post(private_job_spec())
    s.publish()
    s.private_round(("alice", "bob", "carol"))
    s.accept_private(600_000)
    s.private_round(OWNERS)
    s.accept_private(700_000)
    return s


def _needles(s: PrivateStory) -> list[bytes]:
    """Each update's coordinates as int32 and int64 little-endian byte strings."""
    out = []
    for r in (1, 2):
        for n in OWNERS:
            v = s.update(n, r)
            out += [v.astype("<i4").tobytes(), v.astype("<i8").tobytes()]
            out += [int(x).to_bytes(4, "little", signed=True) + int(y).to_bytes(
                4, "little", signed=True) for x, y in itertools.pairwise(v)]
    return out


def test_private_story_dropout_unmasked_accepted_and_paid() -> None:
    """[TX-FED.8] [TX-FED.9] [TX-FED.10] [FED-PRIV.9] [FED-PRIV.10] [FED-REWARD.6] A
    private job through blocks: the phases commit -> shares -> reveal -> unmask ->
    aggregate; round 1's aggregate (dave dropped after sharing) is the plain mean of the
    three survivors', round 2's of all four, each recomputed from the public blobs and
    accepted; weights 1 per survivor; the payout is [FED-REWARD.5] with no leave-one-out
    part; escrow 0."""
    s = private_story()
    rounds = fed_rounds(s.chain.state, s.job_id)
    assert [r.outcome for r in rounds] == ["accepted", "accepted"]
    addr = s.chain.addr
    assert dict(rounds[0].weights) == {addr(n): 1 for n in ("alice", "bob", "carol")}
    assert dict(rounds[1].weights) == {addr(n): 1 for n in OWNERS}
    m1 = ModelBlob.from_bytes(s.store[bytes(rounds[0].model_blob)]).values
    sum1 = [sum(v[k] for n, v in _plain(s, 1).items() if n != "dave") for k in range(4)]
    assert m1 == tuple(rdiv(x, 3) for x in sum1)  # the initial model is zero
    m2 = ModelBlob.from_bytes(s.store[bytes(rounds[1].model_blob)]).values
    sum2 = [sum(v[k] for v in _plain(s, 2).values()) for k in range(4)]
    assert m2 == tuple(a + rdiv(x, 4) for a, x in zip(m1, sum2, strict=True))
    fed = s.fed
    assert fed.phase == FedPhase.DONE
    expected = payout(BOUNTY, 0, [dict(r.weights) for r in rounds], None, None)
    assert fed.paid == expected.paid and sum(v for _, v in fed.paid) == BOUNTY
    assert s.chain.job(s.job_id).status == JobStatus.PAID
    print({s.name(a): v for a, v in fed.paid})
    conserved(s.chain)


def _plain(s: PrivateStory, r: int) -> dict[str, list[int]]:
    return {n: s.update(n, r).tolist() for n in OWNERS}


def test_aggregate_equals_the_unmasked_sum_and_no_update_is_readable() -> None:
    """[FED-PRIV.9] [FED-PRIV.4] [FED-PRIV.1] The model each round records is the previous
    one plus ``rdiv`` of the survivors' sum (exactly what [FED-AGG.2]'s plain mean gives);
    no block and no stored blob (keys, shares, masked, unmask blobs, models) contains any
    participant's update as int32 or int64 words."""
    s = PrivateStory()
    s.post(private_job_spec(rounds=1))
    s.publish()
    s.private_round(("alice", "bob", "carol"))
    want = s.expected_model(("alice", "bob", "carol"))
    blob, weights, error = s.honest_private()
    assert error is None and ModelBlob.from_bytes(blob).values == want
    s.accept_private()
    assert fed_rounds(s.chain.state, s.job_id)[0].model_hash is not None
    needles = _needles(s)
    haystacks = [b.encode() for b in s.chain.blocks] + list(s.store.values())
    for hay in haystacks:
        assert not any(n in hay for n in needles)
    conserved(s.chain)


def test_too_few_unmask_blobs_leave_the_model_and_pay_nobody() -> None:
    """[FED-PRIV.9] With one unmask blob of three survivors (threshold 3 of 4 keyed) no
    seed can be rebuilt: every member computes the unchanged model with no weights; the
    round is accepted as such and the job refunds its bounty."""
    s = PrivateStory()
    s.post(private_job_spec(rounds=1))
    s.publish()
    s.private_round(("alice", "bob", "carol"), unmaskers=("alice",))
    blob, weights, error = s.honest_private()
    assert weights == {} and error is not None and error.startswith("too_few_shares")
    assert ModelBlob.from_bytes(blob).values == s.model
    s.accept_private()
    assert s.fed.paid == () and s.chain.job(s.job_id).status == JobStatus.REFUNDED
    conserved(s.chain)


def test_a_round_with_too_few_survivors_is_void() -> None:
    """[FED-ROUND.2] [FED-PRIV.10] Fewer revealed masked updates than ``min_participants``:
    the round is void at the reveal window's end, no unmask window."""
    s = PrivateStory()
    s.post(private_job_spec(rounds=1, min_participants=3))
    s.publish()
    s.commit_keys()
    s.post_shares()
    s.reveal_masked(("alice", "bob"))
    assert [r.outcome for r in fed_rounds(s.chain.state, s.job_id)] == ["void"]
    conserved(s.chain)


def test_keys_checks_in_order() -> None:
    """[TX-FED.8] not_private (an open job), wrong_round, no_commitment, bad_key (not a
    point; both keys the same), commitment_mismatch, already_keyed, not_in_commit_window."""
    open_job = PrivateStory()
    open_job.post(fed_job_spec())
    open_job.publish()
    c, k = commit_bodies(open_job.job_id, 1, open_job.chain.addr("alice"),
                         secrets_of("alice", 1))
    assert open_job.chain.reject(open_job.chain.tx("alice", k)) == "not_private"
    s = PrivateStory()
    s.post(private_job_spec())
    s.publish()
    me = s.chain.addr("alice")
    c, k = commit_bodies(s.job_id, 1, me, secrets_of("alice", 1))
    tx = s.chain.tx
    assert s.chain.reject(tx("alice", replace(k, round=2))) == "wrong_round"
    assert s.chain.reject(tx("alice", k)) == "no_commitment"
    s.chain.block(tx("alice", c))
    assert s.chain.reject(tx("alice", replace(k, mask_key=b"\x02" + bytes(32)))) == "bad_key"
    assert s.chain.reject(tx("alice", replace(k, enc_key=k.mask_key))) == "bad_key"
    other = secrets_of("bob", 1)
    assert s.chain.reject(tx("alice", FedKeys(s.job_id, 1, other.mask_key,
                                              other.enc_key))) == "commitment_mismatch"
    s.chain.block(tx("alice", k))
    assert s.chain.reject(tx("alice", k)) == "already_keyed"
    s.until_deadline()
    assert s.fed.phase == FedPhase.SHARES
    assert s.chain.reject(tx("alice", k)) == "not_in_commit_window"
    conserved(s.chain)


def test_shares_reveal_and_unmask_checks_in_order() -> None:
    """[TX-FED.9] not_in_shares_window, not_keyed, wrong_size, already_shared; [TX-FED.3]
    a private reveal from outside the mask set is not_in_mask_set; [TX-FED.10]
    not_in_unmask_window, not_survivor (dropped), wrong_size, already_unmasked."""
    s = PrivateStory()
    s.post(private_job_spec())
    s.publish()
    tx = s.chain.tx
    s.commit_keys(("alice", "bob", "carol"))
    rec = s.rec
    t = len(rec.keys) // 2
    def shares(n: str):  # type: ignore[no-untyped-def]
        return shares_body(s.job_id, 1, s.chain.addr(n), secrets_of(n, 1), rec,
                           coefficients(n, t), coefficients(n + "p", t))
    blob, body = shares("alice")
    assert s.chain.reject(tx("dave", body)) == "not_keyed"
    assert s.chain.reject(tx("alice", replace(body, size=body.size + 1))) == "wrong_size"
    s.put(blob)
    s.chain.block(tx("alice", body))
    assert s.chain.reject(tx("alice", body)) == "already_shared"
    for n in ("bob", "carol"):
        b2, body2 = shares(n)
        s.put(b2)
        s.chain.block(tx(n, body2))
    s.until_deadline()
    assert s.fed.phase == FedPhase.REVEAL
    assert s.chain.reject(tx("alice", body)) == "not_in_shares_window"
    fed, rec = s.fed, s.rec
    _, reveal = masked_reveal(s.job_id, 1, s.chain.addr("alice"), secrets_of("alice", 1), rec,
                              s.update("alice", 1), SCALE)
    assert s.chain.reject(tx("alice", replace(reveal, size=reveal.size - 4))) == "wrong_size"
    s.reveal_masked(("alice", "bob"))
    assert s.fed.phase == FedPhase.UNMASK
    fed, rec = s.fed, s.rec
    _, unmask = unmask_body(fed, rec, s.chain.addr("alice"), secrets_of("alice", 1))
    assert s.chain.reject(tx("carol", unmask)) == "not_survivor"
    assert s.chain.reject(tx("alice", replace(unmask, size=unmask.size + 53))) == "wrong_size"
    s.chain.block(tx("alice", unmask))
    assert s.chain.reject(tx("alice", unmask)) == "already_unmasked"
    s.until_deadline()
    assert s.fed.phase == FedPhase.AGGREGATE
    assert s.chain.reject(tx("bob", replace(unmask, job_id=Hash32(s.job_id)))) == \
        "not_in_unmask_window"
    conserved(s.chain)


def test_a_reveal_outside_the_mask_set_is_refused() -> None:
    """[TX-FED.3] [TX-FED.9] A participant that committed and published keys but named no
    share blob is not in the mask set: its masked reveal is ``not_in_mask_set``."""
    s = PrivateStory()
    s.post(private_job_spec())
    s.publish()
    s.commit_keys(("alice", "bob", "carol"))
    s.post_shares(("alice", "bob"))
    _, reveal = masked_reveal(s.job_id, 1, s.chain.addr("carol"), secrets_of("carol", 1),
                              s.rec, s.update("carol", 1), SCALE)
    assert s.chain.reject(s.chain.tx("carol", reveal)) == "not_in_mask_set"
    conserved(s.chain)
