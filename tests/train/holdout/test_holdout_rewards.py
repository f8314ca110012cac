"""Holdout votes are paid for the hidden evaluation [HOLDOUT-CHALLENGE.1] [HOLDOUT-VOTE-REWARD.1].

A live turn's vote may answer the turn's challenge on the hidden part; when any vote
does, only the voters whose answers agree with the honest group's are paid, so a hidden
loss reported without evaluating the hidden part (threat_model.md
[THREAT-HOLDOUT-REWARD.1]) no longer earns the reward. Votes without answers (7-element
holdout votes) are paid as before [VOTE-REWARD.1].
"""

from __future__ import annotations

import os

from chain.encoding import decode, encode
from chain.errors import DecodeError
from chain.records import JobStatus
from chain.train.bodies import VoteCommit
from chain.train.holdout.bodies import HoldoutReveal, HoldoutVoteReveal, holdout_vote_commitment
from chain.train.holdout.records import HoldoutStatus
from chain.types import Hash32
from tests.ledger.harness import Chain
from tests.train.holdout.test_holdout import HIDDEN, race

AVote = tuple[bool, float | None, bool, float | None, float | None, float | None]
"""valid, measured_loss, holdout_ok, hidden_loss, hidden_challenge_loss, challenge_loss."""


def _alices_turn(chain: Chain) -> bytes:
    job_id = race(chain)
    chain.block(chain.tx("submitter", HoldoutReveal(Hash32(job_id), HIDDEN)))
    chain.block(chain.reveal("alice", job_id))
    return job_id


def _voters(chain: Chain, job_id: bytes) -> list[str]:
    names = {chain.addr(n): n for n in chain.keys}
    return [names[a] for a in chain.job(job_id).eligible_voters]


def _round(chain: Chain, job_id: bytes, votes: dict[str, AVote]) -> dict[str, int]:
    """Commit and open ``votes`` on alice's claim; each voter's balance change."""
    alice = chain.addr("alice")
    before = {v: chain.balance(v) for v in votes}
    salts = {v: os.urandom(32) for v in votes}
    chain.block(*(chain.tx(v, VoteCommit(Hash32(job_id), alice, holdout_vote_commitment(
        job_id, alice, chain.addr(v), valid, measured, ok, hidden, salts[v], answer, public)))
        for v, (valid, measured, ok, hidden, answer, public) in votes.items()))
    if chain.job(job_id).status == JobStatus.VOTE_COMMIT:
        chain.block(at=chain.job(job_id).phase_deadline_ms)
    chain.block(*(chain.tx(v, HoldoutVoteReveal(Hash32(job_id), alice, valid, measured, ok,
                                                 hidden, salts[v], answer, public))
                  for v, (valid, measured, ok, hidden, answer, public) in votes.items()))
    return {v: chain.balance(v) - before[v] for v in votes}


def _honest(answer: float, public: float | None = None) -> AVote:
    return (True, 0.10, True, 0.90, answer, public)


def test_holdout_vote_reward_1_a_hidden_answer_without_the_hidden_evaluation_is_not_paid() -> None:
    """[HOLDOUT-VOTE-REWARD.1] [HOLDOUT-CHALLENGE.1] Four voters evaluate the hidden part
    and answer its challenge near 0.88; one reports the public loss as the hidden loss and
    its public subset's loss as the answer (the hidden liar): it agrees with the public
    verdict, but its answer is outside the group, so the reward (6) goes to the four."""
    chain = Chain()
    job_id = _alices_turn(chain)
    names = _voters(chain, job_id)
    assert len(names) == 5
    votes = {v: _honest(0.880 + 0.002 * i) for i, v in enumerate(names[:4])}
    votes[names[4]] = (True, 0.10, True, 0.10, 0.12, None)
    paid = _round(chain, job_id, votes)
    assert paid == {**{v: 6 // 4 for v in names[:4]}, names[4]: 0}
    job = chain.job(job_id)
    assert job.current == chain.addr("bob")  # alice is a finalist, the turns go on
    holdout = chain.state.holdout(job_id)
    assert holdout is not None and holdout.finalists[0].hidden_loss == 0.90


def test_holdout_vote_reward_1_the_lazy_echo_is_not_paid() -> None:
    """[HOLDOUT-VOTE-REWARD.1] A voter that evaluates nothing (valid, the claim as public
    and hidden loss and as the answer) agrees with the verdict and is not paid."""
    chain = Chain()
    job_id = _alices_turn(chain)
    names = _voters(chain, job_id)
    votes = {v: _honest(0.880 + 0.002 * i) for i, v in enumerate(names[:4])}
    votes[names[4]] = (True, 0.10, True, 0.10, 0.10, None)
    paid = _round(chain, job_id, votes)
    assert paid[names[4]] == 0 and all(paid[v] == 1 for v in names[:4])


def test_holdout_vote_reward_1_without_answers_every_agreeing_voter_is_paid() -> None:
    """[HOLDOUT-VOTE-REWARD.1] [VOTE-REWARD.1] No vote answers the hidden challenge (the
    7-element form of votes before the rule): paid by agreement with the verdict alone, as
    old chains were, the lazy vote included."""
    chain = Chain()
    job_id = _alices_turn(chain)
    names = _voters(chain, job_id)
    votes = {v: (True, 0.10, True, 0.90, None, None) for v in names[:4]}
    votes[names[4]] = (True, 0.10, True, 0.10, None, None)
    paid = _round(chain, job_id, votes)
    assert set(paid.values()) == {6 // 5}


def test_holdout_vote_reward_1_answers_without_a_supermajority_pay_nobody() -> None:
    """[HOLDOUT-VOTE-REWARD.1] [VOTE-REWARD.2] Three agreeing answers of five opened votes
    are short of the supermajority (3000 < 667 x 5): nobody is paid for the turn, and what
    is not paid stays in escrow."""
    chain = Chain()
    job_id = _alices_turn(chain)
    names = _voters(chain, job_id)
    escrow = chain.job(job_id).escrow
    votes = {v: _honest(0.880 + 0.002 * i) for i, v in enumerate(names[:3])}
    votes[names[3]] = (True, 0.10, True, 0.90, None, None)
    votes[names[4]] = (True, 0.10, True, 0.10, 0.10, None)
    paid = _round(chain, job_id, votes)
    assert set(paid.values()) == {0}
    assert chain.job(job_id).escrow == escrow


def test_holdout_vote_reward_1_a_rejected_part_pays_the_voters_that_found_it_bad() -> None:
    """[HOLDOUT-VOTE-REWARD.1] [HOLDOUT-JUDGE.1] A supermajority finds the hidden part bad
    (no hidden loss, no answer); one voter says it is fine and answers. The part is
    rejected, and the reward goes to the voters that agreed with the verdict and found the
    part bad: an answer on a rejected part earns nothing, and cannot deny the checkers
    their pay."""
    chain = Chain()
    job_id = _alices_turn(chain)
    names = _voters(chain, job_id)
    votes: dict[str, AVote] = {v: (True, 0.10, False, None, None, None) for v in names[:4]}
    votes[names[4]] = (True, 0.10, True, 0.90, 0.88, None)
    paid = _round(chain, job_id, votes)
    assert paid == {**{v: 6 // 4 for v in names[:4]}, names[4]: 0}
    holdout = chain.state.holdout(job_id)
    assert holdout is not None and holdout.status == HoldoutStatus.REJECTED


def test_holdout_challenge_1_the_commitment_covers_the_answer_and_needs_a_hidden_loss() -> None:
    """[HOLDOUT-CHALLENGE.1] [HOLDOUT-VOTE.1] An answer other than the committed one does not
    open the commitment (``vote_commitment_mismatch``); an answer without a hidden loss is
    ``vote_inconsistent`` (the answer comes from the run that measures the hidden loss)."""
    chain = Chain()
    job_id = _alices_turn(chain)
    alice, carol, dave = chain.addr("alice"), chain.addr("carol"), chain.addr("dave")
    salt = os.urandom(32)
    c_carol = holdout_vote_commitment(job_id, alice, carol, True, 0.1, True, 0.9, salt, 0.88)
    c_dave = holdout_vote_commitment(job_id, alice, dave, True, 0.1, True, None, salt, 0.88)
    chain.block(chain.tx("carol", VoteCommit(Hash32(job_id), alice, c_carol)),
                chain.tx("dave", VoteCommit(Hash32(job_id), alice, c_dave)))
    chain.block(at=chain.job(job_id).phase_deadline_ms)
    for answer in (0.87, None):
        assert chain.reject(chain.tx("carol", HoldoutVoteReveal(
            Hash32(job_id), alice, True, 0.1, True, 0.9, salt, answer))) == \
            "vote_commitment_mismatch"
    assert chain.reject(chain.tx("dave", HoldoutVoteReveal(
        Hash32(job_id), alice, True, 0.1, True, None, salt, 0.88))) == "vote_inconsistent"
    chain.block(chain.tx("carol", HoldoutVoteReveal(Hash32(job_id), alice, True, 0.1, True, 0.9,
                                                     salt, 0.88)))
    record = chain.job(job_id).vote_of(carol)
    assert record is not None and record.hidden_challenge_loss == 0.88
    assert record.hidden_loss == 0.9 and record.challenge_loss is None


def _decode(wire: list[object]) -> str | HoldoutVoteReveal:
    try:
        return HoldoutVoteReveal.from_wire(decode(encode(wire)))
    except DecodeError as e:
        return e.code


def test_holdout_challenge_1_wire_forms() -> None:
    """[HOLDOUT-CHALLENGE.1] 7 elements (no answer) still decode; 8 with a finite float (the
    hidden answer); 9 with the hidden answer or nil, then a finite float (the public answer);
    an eighth nil in the 8-form, a nil or integer answer, ten elements or only six are
    ``bad_field``; answers round-trip and the 7-element form encodes as before."""
    base: list[object] = [b"\x01" * 32, b"\x02" * 20, True, 0.1, True, 0.9, b"\x03" * 32]
    plain = _decode(base)
    assert isinstance(plain, HoldoutVoteReveal) and plain.hidden_challenge_loss is None
    assert plain.to_wire() == base
    answered = _decode([*base, 0.88])
    assert isinstance(answered, HoldoutVoteReveal) and answered.hidden_challenge_loss == 0.88
    assert answered.to_wire() == [*base, 0.88]
    for wire in ([*base, 0.88, 0.1], [*base, None, 0.1]):
        both = _decode(wire)
        assert isinstance(both, HoldoutVoteReveal) and both.challenge_loss == 0.1
        assert both.to_wire() == wire
    for bad in ([*base, None], [*base, 1], [*base, 0.88, None], [*base, 0.88, 1],
                [*base, 0.88, 0.1, 0.2], base[:6]):
        assert _decode(bad) == "bad_field", bad


def test_holdout_vote_reward_1_public_answers_filter_too() -> None:
    """[HOLDOUT-VOTE-REWARD.1] [HOLDOUT-CHALLENGE.1] With public answers (the ninth element),
    a voter that evaluates the hidden part but echoes the claim on the public part (its
    public answer the claim) is not paid either: both filters apply."""
    chain = Chain()
    job_id = _alices_turn(chain)
    names = _voters(chain, job_id)
    votes = {v: _honest(0.880 + 0.002 * i, 0.140 + 0.002 * i) for i, v in enumerate(names[:4])}
    votes[names[4]] = _honest(0.885, 0.10)
    paid = _round(chain, job_id, votes)
    assert paid == {**{v: 6 // 4 for v in names[:4]}, names[4]: 0}
    assert chain.job(job_id).verdicts[-1].valid_votes == 5


def test_holdout_vote_reward_1_on_a_rejected_part_public_answers_still_filter() -> None:
    """[HOLDOUT-VOTE-REWARD.1] [HOLDOUT-JUDGE.1] The part is rejected; among the voters that
    found it bad, one echoed the claim as its public answer: it is not paid."""
    chain = Chain()
    job_id = _alices_turn(chain)
    names = _voters(chain, job_id)
    votes: dict[str, AVote] = {v: (True, 0.10, False, None, None, 0.140 + 0.002 * i)
                               for i, v in enumerate(names[:4])}
    votes[names[4]] = (True, 0.10, False, None, None, 0.10)
    paid = _round(chain, job_id, votes)
    assert paid == {**{v: 6 // 4 for v in names[:4]}, names[4]: 0}
