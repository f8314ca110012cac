"""federated/v1 in the ledger through real blocks (protocol_spec/federated.md §7): the whole
story, and each transaction's checks in their order. Every test ends by checking [BANK.1].
"""

from __future__ import annotations

from dataclasses import replace

from chain.content import blob_id_of_bytes
from chain.federated.blobs import ModelBlob, model_hash
from chain.federated.errors import FederatedError
from chain.federated.open.bodies import FedCommit, FedReveal
from chain.federated.open.reads import (
    aggregate_body,
    duty,
    fed_rounds,
    part_body,
    revealed_updates,
    update_bodies,
    vote_bodies,
)
from chain.federated.open.records import DepositStatus, FedPhase
from chain.federated.open.replay import end_models, replay_plan
from chain.federated.rewards import payout
from chain.federated.rounds import Aggregation
from chain.records import JobStatus
from chain.train.bodies import ClaimLoss, PostJob
from chain.types import Hash32
from chain.verifiers.bodies import VerifierLeave
from tests.federated.fed_ledger_story import (
    BOUNTY,
    DEPOSIT,
    INITIAL,
    PARTICIPANTS,
    SCALE,
    FedStory,
    conserved,
    fed_job_spec,
    salt_of,
)

LOSSES = [100, 300, 250, 120]
"""The end ballot: final loss, then alice's, bob's and carol's leave-one-out losses."""


def two_rounds_with_a_cheat() -> tuple[FedStory, str]:
    """Post, publish, round 1 accepted, round 2's first aggregate wrong and voted down,
    round 2 accepted from another aggregator, hidden part, end ballot: paid."""
    s = FedStory()
    s.post()
    s.publish()
    s.commit_and_reveal()
    s.accept_round(650_000)
    s.commit_and_reveal()
    _, weights = s.honest()
    cheat = s.post_aggregate(ModelBlob(SCALE, (1, 2, 3, 4)).to_bytes(), weights)
    s.vote({n: (False, None, None) for n in s.voters()})
    s.accept_round(720_000)
    s.chain.block(s.chain.tx("submitter", part_body(s.job_id, "hidden", b"\x32" * 32, 1000)))
    s.vote({n: (True, None, LOSSES) for n in s.voters()})
    return s, cheat


def test_story_two_rounds_cheating_aggregator_slashed_and_payout() -> None:
    """[TX-FED.1] [FED-STATE.1] [FED-STATE.2] [FED-ROUND.1] [FED-ROUND.4] [FED-ROUND.5]
    [FED-ROUND.7] [FED-END.1] [FED-END.2] [FED-END.4] [FED-VOTE.4] The whole job: each
    accepted round records its model hash, weights and revealed updates; the wrong
    aggregate's poster is banned (balance and bond burned) and another aggregator is drawn
    for the same round; the payout is [FED-REWARD.5] of the recorded weights and the agreed
    losses; escrow 0."""
    s, cheat = two_rounds_with_a_cheat()
    state = s.chain.state
    rounds = fed_rounds(state, s.job_id)
    assert [r.outcome for r in rounds] == ["accepted", "accepted"]
    assert [r.accuracy_ppm for r in rounds] == [650_000, 720_000]
    assert rounds[1].slashed == (s.chain.addr(cheat),)
    assert rounds[1].aggregator != s.chain.addr(cheat)
    assert state.account(s.chain.addr(cheat)).banned
    assert state.account(s.chain.addr(cheat)).balance == 0
    assert state.verifier_bond(s.chain.addr(cheat)) is None
    assert rounds[1].model_hash == s.fed.model_hash
    assert [u.participant for u in rounds[0].updates] == sorted(
        s.chain.addr(n) for n in PARTICIPANTS)
    assert rounds[0].updates[0].update_hash is not None
    fed = s.fed
    assert fed.phase == FedPhase.DONE and fed.deposit == DepositStatus.RETURNED
    expected = payout(BOUNTY, 500, [dict(r.weights) for r in rounds], LOSSES[0],
                      dict(zip(fed.loo_participants, LOSSES[1:], strict=True)))
    assert fed.paid == expected.paid and sum(v for _, v in fed.paid) == BOUNTY
    job = s.chain.job(s.job_id)
    assert job.status == JobStatus.PAID and job.escrow == 0
    print({s.name(a): v for a, v in fed.paid})
    conserved(s.chain)


def test_post_registers_the_kind_and_escrows() -> None:
    """[TX-FED.1] [FED-SPEC.1] A federated/v1 post escrows bounty + voter rewards + the
    holdout deposit, runs rounds (status federated) and takes no claims."""
    s = FedStory()
    before = s.chain.balance("submitter")
    spec = fed_job_spec()
    s.post(spec)
    assert s.chain.balance("submitter") == before - spec.escrow
    assert spec.escrow == BOUNTY + 5 * 3 + DEPOSIT
    assert s.chain.job(s.job_id).status == JobStatus.FEDERATED
    assert s.fed.phase == FedPhase.COMMIT and s.fed.round == 1
    claim = s.chain.tx("alice", ClaimLoss(s.job_id, 0.1, Hash32(b"\x00" * 32)))
    assert s.chain.reject(claim) == "job_not_open"
    conserved(s.chain)


def test_post_deposit_and_window_bounds() -> None:
    """[TX-FED.1] [HOLDOUT-POST.1] The deposit must exceed every voter reward; every round
    window must be at least ``min_window_ms``."""
    s = FedStory()
    small = fed_job_spec()
    assert small.federated is not None
    small = replace(small, federated=replace(small.federated,
                                             holdout=replace(small.federated.holdout,
                                                             deposit=15)))
    assert s.chain.reject(s.chain.tx("submitter", PostJob(small))) == "deposit_too_small"
    short = fed_job_spec(aggregate_window_ms=999)
    assert s.chain.reject(s.chain.tx("submitter", PostJob(short))) == "window_too_short"
    conserved(s.chain)


def test_commit_checks_in_order() -> None:
    """[TX-FED.2] unknown_job, not_federated, wrong_round, not_in_commit_window, not_member,
    owner_cannot_participate, already_committed, round_full."""
    s = FedStory()
    s.post(fed_job_spec(max_participants=2))
    s.publish()
    body = s.bodies("alice", 1).commit
    tx = s.chain.tx
    assert s.chain.reject(tx("alice", replace(body, job_id=Hash32(b"\x01" * 32)))) == \
        "unknown_job"
    train = s.chain.tx("submitter", PostJob(replace(fed_job_spec(), kind="train/v1",
                                                    federated=None)))
    s.chain.block(train)
    assert s.chain.reject(tx("alice", replace(body, job_id=train.hash))) == "not_federated"
    assert s.chain.reject(tx("alice", replace(body, round=2))) == "wrong_round"
    assert s.chain.reject(tx("alice", body), at=s.fed.deadline_ms) == "not_in_commit_window"
    assert s.chain.reject(tx("mallory", body)) == "not_member"
    assert s.chain.reject(tx("submitter", body)) == "owner_cannot_participate"
    s.chain.block(tx("alice", body), tx("bob", s.bodies("bob", 1).commit))
    assert s.chain.reject(tx("alice", body)) == "already_committed"
    assert s.chain.reject(tx("carol", s.bodies("carol", 1).commit)) == "round_full"
    conserved(s.chain)


def test_reveal_checks_in_order() -> None:
    """[TX-FED.3] [FED-COMMIT.1] not_in_reveal_window, no_commitment, already_revealed,
    wrong_size (68 + 4·dims), commitment_mismatch (another blob, another salt, another
    participant's opening)."""
    s = FedStory()
    s.post()
    s.publish()
    tx = s.chain.tx
    s.chain.block(*(tx(n, s.bodies(n, 1).commit) for n in ("alice", "bob")))
    reveal = s.bodies("alice", 1).reveal
    assert s.chain.reject(tx("alice", reveal)) == "not_in_reveal_window"
    s.until_deadline()
    assert s.chain.reject(tx("carol", s.bodies("carol", 1).reveal)) == "no_commitment"
    assert s.chain.reject(tx("alice", replace(reveal, size=reveal.size + 4))) == "wrong_size"
    assert s.chain.reject(tx("alice", replace(reveal, salt=b"\x00" * 32))) == \
        "commitment_mismatch"
    assert s.chain.reject(tx("bob", replace(reveal, round=1))) == "commitment_mismatch"
    s.chain.block(tx("alice", reveal))
    assert s.chain.reject(tx("alice", reveal)) == "already_revealed"
    assert s.chain.reject(tx("alice", reveal), at=s.fed.deadline_ms) == "not_in_reveal_window"
    conserved(s.chain)


def test_too_few_reveals_void_the_round() -> None:
    """[FED-ROUND.2] A committed participant that does not reveal is out; fewer than
    ``min_participants`` revealed updates make the round void (no aggregator, the model
    unchanged, weights empty) and the next round starts."""
    s = FedStory()
    s.post()
    s.publish()
    tx = s.chain.tx
    s.chain.block(*(tx(n, s.bodies(n, 1).commit) for n in PARTICIPANTS))
    s.until_deadline()
    s.chain.block(tx("alice", s.bodies("alice", 1).reveal))
    assert [u.participant for u in revealed_updates(s.fed)] == [s.chain.addr("alice")]
    s.until_deadline()
    void = fed_rounds(s.chain.state, s.job_id)
    assert [(r.outcome, r.weights, r.model_hash) for r in void] == [("void", (), None)]
    assert s.fed.phase == FedPhase.COMMIT and s.fed.round == 2
    conserved(s.chain)


def test_aggregate_checks_in_order() -> None:
    """[TX-FED.4] [FED-ROUND.3] wrong_round, wrong_attempt, not_in_aggregate_window,
    not_aggregator, bad_weights (unrevealed, unordered or repeated participants)."""
    s = FedStory()
    s.post()
    s.publish()
    s.commit_and_reveal()
    fed = s.fed
    assert fed.aggregator is not None
    who = s.name(fed.aggregator)
    blob, weights = s.honest()
    good = aggregate_body(s.job_id, 1, 0, blob, weights)
    tx = s.chain.tx
    assert s.chain.reject(tx(who, replace(good, round=2))) == "wrong_round"
    assert s.chain.reject(tx(who, replace(good, attempt=1))) == "wrong_attempt"
    assert s.chain.reject(tx(who, good), at=fed.deadline_ms) == "not_in_aggregate_window"
    other = next(n for n in ("dave", "erin") if n != who)
    assert s.chain.reject(tx(other, good)) == "not_aggregator"
    backwards = replace(good, weights=tuple(reversed(good.weights)))
    assert s.chain.reject(tx(who, backwards)) == "bad_weights"
    stranger = replace(good, weights=((s.chain.addr("mallory"), 1),))
    assert s.chain.reject(tx(who, stranger)) == "bad_weights"
    twice = replace(good, weights=(good.weights[0], good.weights[0]))
    assert s.chain.reject(tx(who, twice)) == "bad_weights"
    s.chain.block(tx(who, good))
    assert s.fed.phase == FedPhase.VOTE_COMMIT
    assert s.chain.reject(tx(who, good)) == "not_in_aggregate_window"
    assert s.fed.aggregator not in s.fed.voters
    conserved(s.chain)


def test_silent_aggregator_is_replaced() -> None:
    """[FED-ROUND.6] An aggregator that posts nothing in its window loses its turn (not
    banned); another is drawn from those not tried, for the same round."""
    s = FedStory()
    s.post()
    s.publish()
    s.commit_and_reveal()
    first = s.fed.aggregator
    s.until_deadline()
    assert s.fed.phase == FedPhase.AGGREGATE and s.fed.attempt == 1
    assert s.fed.aggregator != first and s.fed.tried == (first,)
    assert not s.chain.state.account(first).banned  # type: ignore[arg-type]
    s.accept_round()
    assert fed_rounds(s.chain.state, s.job_id)[0].outcome == "accepted"
    conserved(s.chain)


def test_attempts_run_out_round_void() -> None:
    """[FED-ROUND.6] After ``max_turns`` aggregators tried the round is void."""
    s = FedStory()
    s.post(fed_job_spec(max_turns=2, rounds=1))
    s.publish()
    s.commit_and_reveal()
    s.until_deadline()
    s.until_deadline()
    assert [r.outcome for r in fed_rounds(s.chain.state, s.job_id)] == ["void"]
    assert s.fed.phase == FedPhase.DONE and s.fed.paid == ()
    assert s.chain.job(s.job_id).status == JobStatus.REFUNDED
    conserved(s.chain)


def test_undecided_vote_draws_again_without_ban() -> None:
    """[FED-VOTE.3] Without quorum no verdict: nobody is banned, another aggregator is
    drawn for the same round."""
    s = FedStory()
    s.post()
    s.publish()
    s.commit_and_reveal()
    blob, weights = s.honest()
    who = s.post_aggregate(blob, weights)
    s.vote({s.voters()[0]: (True, 1, None)})
    assert s.fed.attempt == 1 and s.fed.phase == FedPhase.AGGREGATE
    assert not s.chain.state.account(s.chain.addr(who)).banned
    conserved(s.chain)


def test_vote_checks_in_order() -> None:
    """[TX-FED.5] [TX-FED.6] [FED-VOTE.1] [FED-VOTE.2] wrong_round, wrong_attempt,
    not_in_vote_commit_window, not_eligible_voter (the aggregator, an outsider),
    already_committed; not_in_vote_reveal_window, no_commitment, bad_vote,
    vote_commitment_mismatch, already_revealed."""
    s = FedStory()
    s.post()
    s.publish()
    s.commit_and_reveal()
    blob, weights = s.honest()
    who = s.post_aggregate(blob, weights)
    voter = next(n for n in s.voters() if n != who)
    made = vote_bodies(s.job_id, 1, 0, s.chain.addr(voter), True, accuracy_ppm=5,
                       salt=salt_of("v"))
    tx = s.chain.tx
    assert s.chain.reject(tx(voter, replace(made.commit, round=2))) == "wrong_round"
    assert s.chain.reject(tx(voter, replace(made.commit, attempt=1))) == "wrong_attempt"
    assert s.chain.reject(tx(voter, made.commit), at=s.fed.deadline_ms) == \
        "not_in_vote_commit_window"
    assert s.chain.reject(tx(who, made.commit)) == "not_eligible_voter"
    assert s.chain.reject(tx("mallory", made.commit)) == "not_eligible_voter"
    s.chain.block(tx(voter, made.commit))
    assert s.chain.reject(tx(voter, made.commit)) == "already_committed"
    assert s.chain.reject(tx(voter, made.reveal)) == "not_in_vote_reveal_window"
    s.until_deadline()
    other = next(n for n in s.voters() if n not in (who, voter))
    assert s.chain.reject(tx(other, made.reveal)) == "no_commitment"
    assert s.chain.reject(tx(voter, replace(made.reveal, accuracy_ppm=None))) == "bad_vote"
    assert s.chain.reject(tx(voter, replace(made.reveal, losses=(1,)))) == "bad_vote"
    assert s.chain.reject(tx(voter, replace(made.reveal, accuracy_ppm=6))) == \
        "vote_commitment_mismatch"
    s.chain.block(tx(voter, made.reveal))
    assert s.chain.reject(tx(voter, made.reveal)) == "already_revealed"
    conserved(s.chain)


def test_part_checks() -> None:
    """[TX-FED.7] not_owner, split_not_drawn, already_published, not_in_publish_window,
    not_in_hidden_window."""
    s = FedStory()
    s.post()
    public = part_body(s.job_id, "public", b"\x31" * 32, 1000)
    assert s.chain.reject(s.chain.tx("alice", public)) == "not_owner"
    assert s.chain.reject(s.chain.tx("submitter", public)) == "split_not_drawn"
    s.publish()
    assert s.chain.reject(s.chain.tx("submitter", public)) == "already_published"
    hidden = part_body(s.job_id, "hidden", b"\x32" * 32, 1000)
    assert s.chain.reject(s.chain.tx("submitter", hidden)) == "not_in_hidden_window"
    s.commit_and_reveal()
    assert s.chain.reject(s.chain.tx("submitter", replace(public, which="public"))) == \
        "not_in_publish_window"
    conserved(s.chain)


def test_unpublished_public_part_refunds_and_burns_deposit() -> None:
    """[FED-END.3] No public part by round 1's commit deadline: nothing to measure rounds
    on; the deposit is burned and the rest refunded."""
    s = FedStory()
    s.post()
    before = s.chain.balance("submitter")
    burned = s.chain.state.burned
    s.chain.block(at=s.fed.deadline_ms)
    assert s.fed.phase == FedPhase.DONE and s.fed.deposit == DepositStatus.BURNED
    assert s.chain.state.burned == burned + DEPOSIT
    assert s.chain.balance("submitter") == before + fed_job_spec().escrow - DEPOSIT
    conserved(s.chain)


def test_withheld_hidden_part_pays_by_round_weights_and_forfeits() -> None:
    """[FED-END.3] [FED-REWARD.5] The owner does not name its hidden part: its deposit is
    burned and the bounty is paid by the recorded round weights alone."""
    s = FedStory()
    s.post(fed_job_spec(rounds=1))
    s.publish()
    s.commit_and_reveal()
    s.accept_round()
    assert s.fed.phase == FedPhase.HIDDEN
    burned = s.chain.state.burned
    s.until_deadline()
    fed = s.fed
    rounds = fed_rounds(s.chain.state, s.job_id)
    assert fed.deposit == DepositStatus.BURNED and s.chain.state.burned == burned + DEPOSIT
    assert fed.paid == payout(BOUNTY, 500, [dict(rounds[0].weights)]).paid
    conserved(s.chain)


def test_end_ballot_rejects_hidden_part() -> None:
    """[FED-END.2] [FED-END.3] A supermajority says the hidden part does not match: the
    deposit is forfeited and the payout is by round weights alone."""
    s = FedStory()
    s.post(fed_job_spec(rounds=1))
    s.publish()
    s.commit_and_reveal()
    s.accept_round()
    s.chain.block(s.chain.tx("submitter", part_body(s.job_id, "hidden", b"\x32" * 32, 9)))
    assert "submitter" not in s.voters()
    s.vote({n: (False, None, None) for n in s.voters()})
    rounds = fed_rounds(s.chain.state, s.job_id)
    assert s.fed.deposit == DepositStatus.BURNED
    assert s.fed.paid == payout(BOUNTY, 500, [dict(rounds[0].weights)]).paid
    conserved(s.chain)


def test_target_accuracy_ends_early() -> None:
    """[FED-ROUND.7] An accepted round whose voted accuracy reaches the target ends the
    job before its rounds run out."""
    s = FedStory()
    s.post(fed_job_spec(rounds=5, target_accuracy_ppm=600_000))
    s.publish()
    s.commit_and_reveal()
    s.accept_round(600_000)
    assert s.fed.phase == FedPhase.HIDDEN and len(fed_rounds(s.chain.state, s.job_id)) == 1
    conserved(s.chain)


def test_voter_rewards_bounded_by_pool() -> None:
    """[FED-VOTE.5] Each decided ballot pays at most ``voter_reward`` to the agreeing
    voters, at most ``voter_reward × max_turns`` over the job."""
    s, _ = two_rounds_with_a_cheat()
    assert s.fed.voter_paid == 5 * 3
    conserved(s.chain)


def test_api_duty_walks_the_phases() -> None:
    """[FED-STATE.1] ``duty`` tells each address what to send in each phase."""
    s = FedStory()
    s.post()
    now = s.chain.now
    assert duty(s.chain.state, s.job_id, s.chain.addr("alice"), now + 1) == "commit"
    s.chain.block()
    s.chain.block()
    assert duty(s.chain.state, s.job_id, s.chain.addr("submitter"), s.chain.now) == "publish"
    s.publish()
    s.chain.block(s.chain.tx("alice", s.bodies("alice", 1).commit))
    assert duty(s.chain.state, s.job_id, s.chain.addr("alice"), s.chain.now) is None
    s.until_deadline()
    assert duty(s.chain.state, s.job_id, s.chain.addr("alice"), s.chain.now) == "reveal"
    ub = update_bodies(s.job_id, 1, s.chain.addr("alice"), s.update_blob("alice", 1),
                       salt_of("update", "alice", 1))
    assert isinstance(ub.commit, FedCommit) and isinstance(ub.reveal, FedReveal)
    assert ub.reveal == s.bodies("alice", 1).reveal
    conserved(s.chain)


def test_fltrust_owner_commits_its_reference_and_without_it_the_round_is_void() -> None:
    """[TX-FED.2] [FED-ROUND.2] Under FLTrust the owner commits its reference update like a
    participant (not counted in ``max_participants``); a round whose reference is not
    revealed is void."""
    s = FedStory()
    s.post(fed_job_spec(aggregation=Aggregation("fltrust", 0), max_participants=2))
    s.publish()
    tx = s.chain.tx
    owner = update_bodies(s.job_id, 1, s.chain.addr("submitter"), s.update_blob("alice", 1),
                          salt_of("ref"))
    s.chain.block(tx("alice", s.bodies("alice", 1).commit), tx("bob", s.bodies("bob", 1).commit),
                  tx("submitter", owner.commit))
    assert len(s.fed.updates) == 3
    assert duty(s.chain.state, s.job_id, s.chain.addr("submitter"), s.chain.now) is None
    s.until_deadline()
    s.chain.block(tx("alice", s.bodies("alice", 1).reveal), tx("bob", s.bodies("bob", 1).reveal))
    s.until_deadline()
    assert [r.outcome for r in fed_rounds(s.chain.state, s.job_id)] == ["void"]
    conserved(s.chain)


def test_private_mode_reveals_masked_blob_size() -> None:
    """[TX-FED.3] [FED-PRIV.1] In private mode the revealed blob is a masked one: exactly
    68 + 8·dims bytes; the open size is refused (the private round's keys and shares
    first: tests/federated/private/test_federated_ledger_private.py)."""
    from tests.federated.fed_private_story import PrivateStory, private_job_spec
    s = PrivateStory()
    s.post(private_job_spec())
    s.publish()
    s.commit_keys(("alice", "bob"))
    s.post_shares(("alice", "bob"))
    open_size = s.bodies("bob", 1).reveal
    assert s.chain.reject(s.chain.tx("bob", open_size)) == "wrong_size"
    s.reveal_masked(("alice", "bob"))
    assert all(u.size == 68 + 8 * 4 for u in s.fed.updates)
    conserved(s.chain)


def test_banned_participant_share_is_burned() -> None:
    """[FED-END.4] [FED-ROUND.5] A participant banned before the payout (here: drawn as
    aggregator and caught) gets nothing: its share is burned, the rest paid as computed."""
    s = FedStory()
    s.post(fed_job_spec(rounds=1, loo_permille=0))
    s.publish()
    s.commit_and_reveal()
    # let silent aggregators pass until a participant is drawn
    while s.name(s.fed.aggregator) not in PARTICIPANTS:
        s.until_deadline()
    _, weights = s.honest()
    cheat = s.post_aggregate(ModelBlob(SCALE, (9, 9, 9, 9)).to_bytes(), weights)
    s.vote({n: (False, None, None) for n in s.voters()})
    burned = s.chain.state.burned
    s.accept_round()
    fed = s.fed
    share = dict(fed.paid).get(s.chain.addr(cheat), 0)
    assert share > 0 and s.chain.balance(cheat) == 0
    assert s.chain.state.burned == burned + share
    conserved(s.chain)


def test_end_vote_needs_every_loss() -> None:
    """[TX-FED.6] [FED-END.2] A valid end vote carries exactly 1 + len(loo_participants)
    losses and no accuracy (``bad_vote``); the end ballot is round 0, attempt 0."""
    s = FedStory()
    s.post(fed_job_spec(rounds=1))
    s.publish()
    s.commit_and_reveal()
    s.accept_round()
    s.chain.block(s.chain.tx("submitter", part_body(s.job_id, "hidden", b"\x32" * 32, 9)))
    voter = s.voters()[0]
    short = vote_bodies(s.job_id, 0, 0, s.chain.addr(voter), True, losses=LOSSES[:3],
                        salt=salt_of("short"))
    assert s.chain.reject(s.chain.tx(voter, replace(short.commit, round=1))) == "wrong_round"
    s.chain.block(s.chain.tx(voter, short.commit))
    s.until_deadline()
    assert s.chain.reject(s.chain.tx(voter, short.reveal)) == "bad_vote"
    with_acc = replace(short.reveal, losses=tuple(LOSSES), accuracy_ppm=1)
    assert s.chain.reject(s.chain.tx(voter, with_acc)) == "bad_vote"
    conserved(s.chain)


def test_fltrust_round_with_its_reference_is_aggregated() -> None:
    """[FED-ROUND.2] [FED-ROUND.3] Under FLTrust, with the owner's reference revealed and
    enough participants, an aggregator is drawn (never the owner) and the reference is not
    a participant the weights may name."""
    s = FedStory()
    s.post(fed_job_spec(aggregation=Aggregation("fltrust", 0)))
    s.publish()
    tx = s.chain.tx
    ref = update_bodies(s.job_id, 1, s.chain.addr("submitter"), s.update_blob("alice", 1),
                        salt_of("ref"))
    s.chain.block(tx("submitter", ref.commit), *(tx(n, s.bodies(n, 1).commit)
                                                 for n in ("alice", "bob")))
    s.until_deadline()
    s.chain.block(tx("submitter", ref.reveal), *(tx(n, s.bodies(n, 1).reveal)
                                                 for n in ("alice", "bob")))
    s.until_deadline()
    fed = s.fed
    assert fed.phase == FedPhase.AGGREGATE and fed.aggregator != s.chain.addr("submitter")
    who = s.name(fed.aggregator)
    body = aggregate_body(s.job_id, 1, 0, b"model", {s.chain.addr("submitter"): 1})
    assert s.chain.reject(tx(who, body)) == "bad_weights"
    conserved(s.chain)


def test_drawn_aggregator_cannot_leave_with_its_bond() -> None:
    """[FED-ROUND.3] [VERIFY-LEAVE.1] From the draw to the verdict the aggregator's
    ``verifier_leave`` is refused (``verifying``), so a wrong aggregate's poster cannot take
    its bond out before it is slashed; after the verdict it may leave."""
    s = FedStory()
    s.post(fed_job_spec(rounds=1))
    s.publish()
    s.commit_and_reveal()
    who = s.name(s.fed.aggregator)
    leave = s.chain.tx(who, VerifierLeave())
    assert s.chain.reject(leave) == "verifying"
    assert s.chain.reject(s.chain.tx("mallory", VerifierLeave())) == "not_verifier"
    s.accept_round()
    s.chain.block(s.chain.tx(who, VerifierLeave()))
    assert s.chain.state.verifier_bond(s.chain.addr(who)) is None
    conserved(s.chain)


def test_end_models_replay_from_the_state_and_blobs() -> None:
    """[FED-STATE.2] [FED-REWARD.2] [FED-MODEL.3] From the state alone (replay_plan) and the
    fetched blobs, the replayed final model hashes to the last accepted round's recorded
    model hash; each leave-one-out model differs from it; a missing blob is named."""
    s, _ = two_rounds_with_a_cheat()
    plan = replay_plan(s.chain.state, s.job_id)
    assert plan is not None and len(plan.rounds) == 2
    blobs = {blob_id_of_bytes(INITIAL.to_bytes()): INITIAL.to_bytes()}
    for r in (1, 2):
        for n in PARTICIPANTS:
            data = s.update_blob(n, r)
            blobs[blob_id_of_bytes(data)] = data
    assert plan.blobs() == set(blobs)
    final, loo = end_models(plan, blobs)
    assert model_hash(ModelBlob(SCALE, final).to_bytes()) == plan.rounds[-1].model_hash
    assert set(loo) == set(plan.loo_participants) and all(m != final for m in loo.values())
    missing = dict(blobs)
    missing.pop(blob_id_of_bytes(s.update_blob("bob", 2)))
    try:
        end_models(plan, missing)
    except FederatedError as e:
        assert e.code == "missing_blob"
    else:
        raise AssertionError("a missing blob must be named")
