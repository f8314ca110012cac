"""[VOTE-CHALLENGE.1] [VOTE-REWARD.2] on the ledger: votes that answer the turn's challenge.

A vote opens with the model's loss on the challenge subset, covered by its commitment;
the turn's reward goes to the voters that agreed with the verdict and answered inside
the agreeing group of challenge losses. A lazy voter that echoes the claimed loss is
outside the group and is not paid; an answer changed after the commit does not open.
"""

from __future__ import annotations

import os

import pytest

from chain.encoding import decode, encode
from chain.errors import DecodeError
from chain.records import JobStatus, Outcome, VoteRecord
from chain.train.bodies import VoteCommit, VoteReveal, vote_commitment
from chain.types import Address, Hash32
from tests.ledger.harness import Chain
from tests.train.test_job_lifecycle import BOUNTY, REWARD, assert_conserved, claims_then_expire

Answer = tuple[bool, float, float | None]  # valid, measured loss, challenge loss


def _round(chain: Chain, job_id: bytes, claimer: str, votes: dict[str, Answer]) -> None:
    """Every listed voter commits (with its challenge answer) in one block, opens in the
    next."""
    salts = {v: os.urandom(32) for v in votes}
    commits = []
    for voter, (valid, loss, challenge) in votes.items():
        c = vote_commitment(job_id, chain.addr(claimer), chain.addr(voter), valid, loss,
                            salts[voter], challenge)
        commits.append(chain.tx(voter, VoteCommit(Hash32(job_id), chain.addr(claimer), c)))
    chain.block(*commits)
    job = chain.job(job_id)
    if job.status == JobStatus.VOTE_COMMIT:
        chain.block(at=job.phase_deadline_ms)
    chain.block(*(chain.tx(v, VoteReveal(Hash32(job_id), chain.addr(claimer), ok, loss,
                                         salts[v], challenge))
                  for v, (ok, loss, challenge) in votes.items()))


def test_vote_reward_2_a_lazy_echo_outside_the_challenge_group_is_not_paid() -> None:
    """[VOTE-REWARD.2] Bob's claim 0.3 is honest. Three voters evaluated: the subset loss
    is ~0.41. Erin voted valid echoing the claim, 0.3, as its challenge answer, without
    evaluating: the verdict is valid, but only the three in the group share the reward."""
    chain = Chain()
    job_id = claims_then_expire(chain, {"bob": 0.3})
    chain.block(chain.reveal("bob", job_id))
    before = {n: chain.balance(n) for n in ("alice", "carol", "dave", "erin", "submitter")}
    _round(chain, job_id, "bob", {"alice": (True, 0.301, 0.410), "carol": (True, 0.302, 0.412),
                                  "dave": (True, 0.300, 0.411), "erin": (True, 0.3, 0.3)})
    job = chain.job(job_id)
    assert job.status == JobStatus.PAID and job.verdicts[-1].outcome == Outcome.VALID
    share = REWARD // 3
    for evaluator in ("alice", "carol", "dave"):
        assert chain.balance(evaluator) == before[evaluator] + share
    assert chain.balance("erin") == before["erin"]
    assert chain.balance("submitter") == before["submitter"] + REWARD * 3 - 3 * share
    assert chain.balance("bob") > 0 and job.paid == BOUNTY
    assert [v.challenge_loss for v in job.votes] == [0.410, 0.412, 0.411, 0.3]
    assert_conserved(chain)


def test_vote_reward_2_without_a_supermajority_of_answers_nobody_is_paid() -> None:
    """[VOTE-REWARD.2] Answers scattered (two lazy echoes, two evaluations): no group of
    two thirds; the verdict stands (valid, the claimer paid), the voters are not."""
    chain = Chain()
    job_id = claims_then_expire(chain, {"bob": 0.3})
    chain.block(chain.reveal("bob", job_id))
    before = {n: chain.balance(n) for n in ("alice", "carol", "dave", "erin")}
    _round(chain, job_id, "bob", {"alice": (True, 0.301, 0.410), "carol": (True, 0.302, 0.412),
                                  "dave": (True, 0.3, 0.3), "erin": (True, 0.3, 0.3)})
    job = chain.job(job_id)
    assert job.status == JobStatus.PAID and job.winner == chain.addr("bob")
    assert {n: chain.balance(n) for n in before} == before
    assert_conserved(chain)


def test_vote_challenge_1_an_answer_changed_after_the_commit_does_not_open() -> None:
    """[VOTE-CHALLENGE.1] [VOTE-COMMIT.1] The commitment covers the challenge answer: a
    voter that committed 0.41 and opens with 0.30 (or with none) is refused."""
    chain = Chain()
    job_id = claims_then_expire(chain, {"bob": 0.3})
    chain.block(chain.reveal("bob", job_id))
    salt = os.urandom(32)
    c = vote_commitment(job_id, chain.addr("bob"), chain.addr("alice"), True, 0.3, salt, 0.41)
    chain.block(chain.tx("alice", VoteCommit(Hash32(job_id), chain.addr("bob"), c)))
    chain.block(at=chain.job(job_id).phase_deadline_ms)
    for answer in (0.30, None):
        tx = chain.tx("alice", VoteReveal(Hash32(job_id), chain.addr("bob"), True, 0.3, salt,
                                          answer))
        assert chain.reject(tx) == "vote_commitment_mismatch"
    chain.block(chain.tx("alice", VoteReveal(Hash32(job_id), chain.addr("bob"), True, 0.3,
                                             salt, 0.41)))
    assert chain.job(job_id).vote_of(chain.addr("alice")).challenge_loss == 0.41


def test_vote_challenge_1_the_vote_reveal_wire_has_5_or_6_elements() -> None:
    """[VOTE-CHALLENGE.1] [ENC-CANON.1] A vote without an answer keeps its 5-element form
    (every vote sent before the challenge decodes); an answer is a sixth element, a finite
    float: a sixth nil, an infinite answer or a seventh element is refused."""
    job, claimer, salt = Hash32(b"\x01" * 32), Address(b"\x02" * 20), b"\x03" * 32
    plain = VoteReveal(job, claimer, True, 0.3, salt)
    answered = VoteReveal(job, claimer, True, 0.3, salt, 0.41)
    assert len(plain.to_wire()) == 5 and len(answered.to_wire()) == 6
    for body in (plain, answered):
        assert VoteReveal.from_wire(decode(encode(body.to_wire()))) == body
    for bad in ([*plain.to_wire(), None], [*plain.to_wire(), float("inf")],
                [*answered.to_wire(), 0.5], plain.to_wire()[:4]):
        with pytest.raises(DecodeError):
            VoteReveal.from_wire(bad)


def test_vote_challenge_1_the_vote_record_keeps_its_answer() -> None:
    """[VOTE-CHALLENGE.1] An opened plain vote's record carries the answer as a sixth
    element; a record without one keeps its 5-element form, a holdout vote its 7."""
    voter, c = Address(b"\x04" * 20), Hash32(b"\x05" * 32)
    for record in (VoteRecord(voter, c, True, True, 0.3),
                   VoteRecord(voter, c, True, True, 0.3, challenge_loss=0.41),
                   VoteRecord(voter, c, True, True, 0.3, True, 0.35)):
        assert VoteRecord.from_wire(record.to_wire()) == record
    assert len(VoteRecord(voter, c, True, True, 0.3, challenge_loss=0.41).to_wire()) == 6
