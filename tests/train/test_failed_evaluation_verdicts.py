"""Votes whose evaluation failed never convict the claimer (issue 30 §1).

[VOTE-FAILED.1] a vote with no measured loss (the job's evaluation failed, timed out,
stalled or wrote no loss on the voter's machine) is never evidence that the claimer lied:
when such votes form the agreeing group the turn ends ``eval_failed``, nobody is banned
and no bond is burned. [VOTE-FAILED.2] the turn passes to the next claim and does not
count against ``max_turns``; a job that ends without a paid turn after such a turn burns
its escrow instead of refunding it (the submitter holds the revealed model).
"""

from __future__ import annotations

from chain.records import JobStatus, Outcome
from tests.ledger.harness import Chain
from tests.train.test_job_lifecycle import BOUNTY, ESCROW, assert_conserved, claims_then_expire
from tests.train.test_verdicts import Votes, _turn

ALL_FAIL: Votes = {"alice": (False, None), "carol": (False, None), "erin": (False, None),
                   "v0": (False, None)}


def _bonds(chain: Chain, names: tuple[str, ...]) -> dict[str, object]:
    return {n: chain.state.verifier_bond(chain.addr(n)) for n in names}


def test_vote_failed_1_every_evaluation_failed_nobody_banned_turn_passes() -> None:
    """[VOTE-FAILED.1] [VOTE-FAILED.2] the voters' evaluations all fail on bob's model while
    bob insists it is valid (the job tells the voters' runs from bob's, or bob revealed
    garbage: nobody can say which): eval_failed, bob neither banned nor paid, no voter's bond
    burned, dave's honest claim gets its turn and is paid."""
    chain = Chain()
    job_id = claims_then_expire(chain, {"bob": 0.2, "dave": 0.3})
    bob_before = chain.balance("bob")
    bonds = _bonds(chain, tuple(ALL_FAIL))
    _turn(chain, job_id, "bob", ALL_FAIL, own=(True, 0.2))
    job = chain.job(job_id)
    assert job.verdicts[0].outcome == Outcome.EVAL_FAILED
    assert job.verdicts[0].verified_loss is None
    assert not chain.state.account(chain.addr("bob")).banned
    assert chain.balance("bob") == bob_before
    assert _bonds(chain, tuple(ALL_FAIL)) == bonds and all(bonds.values())
    assert job.status == JobStatus.REVEAL and job.current == chain.addr("dave")
    dave_before = chain.balance("dave")
    _turn(chain, job_id, "dave", {"alice": (True, 0.3), "carol": (True, 0.3),
                                  "erin": (True, 0.3), "v0": (True, 0.3)}, own=(True, 0.3))
    job = chain.job(job_id)
    assert job.status == JobStatus.PAID and job.winner == chain.addr("dave")
    assert chain.balance("dave") == dave_before + BOUNTY
    assert_conserved(chain)


def test_vote_failed_2_job_ending_after_a_failed_turn_burns_its_escrow_no_refund() -> None:
    """[VOTE-FAILED.2] the only claim's evaluation fails for every voter: the submitter holds
    the revealed model and gets nothing back; nobody is paid, banned or slashed."""
    chain = Chain()
    submitter_before = chain.balance("submitter")
    job_id = claims_then_expire(chain, {"bob": 0.2})
    bob_before, burned_before = chain.balance("bob"), chain.state.burned
    voters = {**ALL_FAIL, "dave": (False, None)}
    bonds = _bonds(chain, tuple(voters))
    _turn(chain, job_id, "bob", voters, own=(True, 0.2))
    job = chain.job(job_id)
    assert [v.outcome for v in job.verdicts] == [Outcome.EVAL_FAILED]
    assert job.status == JobStatus.BROKEN and job.escrow == 0 and job.winner is None
    assert chain.balance("submitter") == submitter_before - ESCROW
    assert chain.balance("bob") == bob_before
    assert chain.state.burned - burned_before == ESCROW
    assert _bonds(chain, tuple(voters)) == bonds
    assert not any(chain.state.account(chain.addr(n)).banned for n in ("bob", *voters))
    assert_conserved(chain)


def test_vote_failed_1_failed_votes_never_count_as_invalid() -> None:
    """[VOTE-FAILED.1] two voters measured the lie, two could not evaluate: the measured
    group is not a supermajority of the opened votes, so the liar is not convicted on the
    failures' account (inconsistent: the job's evaluation does not reproduce); with three
    measured and one failed the liar is banned as before."""
    chain = Chain()
    job_id = claims_then_expire(chain, {"bob": 0.2})
    _turn(chain, job_id, "bob", {"alice": (False, 5.0), "carol": (False, 5.0),
                                 "erin": (False, None), "v0": (False, None)}, own=(True, 0.2))
    assert chain.job(job_id).verdicts[0].outcome == Outcome.INCONSISTENT
    assert not chain.state.account(chain.addr("bob")).banned
    chain = Chain()
    job_id = claims_then_expire(chain, {"bob": 0.2})
    _turn(chain, job_id, "bob", {"alice": (False, 5.0), "carol": (False, 5.0),
                                 "erin": (False, 5.0), "v0": (False, None)}, own=(True, 0.2))
    assert chain.job(job_id).verdicts[0].outcome == Outcome.CHEAT
    assert chain.state.account(chain.addr("bob")).banned
    assert_conserved(chain)


def test_vote_failed_2_job_status_says_why_a_job_ended_broken() -> None:
    """[VOTE-FAILED.2] ``job status`` tells a job broken by failed evaluations from one whose
    voters disagreed [JOB-BROKEN.1]."""
    from client.cli.job.describe import outcome_text

    failed = outcome_text({"settled": True, "status": "broken",
                           "verdicts": [{"outcome": "eval_failed"}]})
    assert "evaluation failed on the voters' machines" in failed and "burned" in failed
    later = outcome_text({"settled": True, "status": "broken",
                          "verdicts": [{"outcome": "eval_failed"}, {"outcome": "no_quorum"}]})
    assert later == failed  # [JOB-TURN.2] a later turn without quorum burns too
    split = outcome_text({"settled": True, "status": "broken",
                          "verdicts": [{"outcome": "inconsistent"}]})
    assert "measured the same model differently" in split


def _failed_then_no_quorum(chain: Chain, second: str = "dave") -> bytes:
    """Turn 1 (bob): every voter's evaluation fails; turn 2 (``second``): one voter of five
    opens a vote, no quorum."""
    job_id = claims_then_expire(chain, {"bob": 0.2, second: 0.3})
    _turn(chain, job_id, "bob", {**ALL_FAIL, second: (False, None)}, own=(True, 0.2))
    assert chain.job(job_id).current == chain.addr(second)
    chain.block(chain.reveal(second, job_id))
    chain.vote_round(job_id, second, {"alice": (True, 0.3)})
    chain.block(dt=5_000)
    return job_id


def test_vote_failed_2_no_quorum_after_a_failed_turn_burns_not_refunds() -> None:
    """[VOTE-FAILED.2] [JOB-TURN.2] the submitter holds bob's revealed model from the failed
    turn; a later turn without quorum must not hand it the escrow back with that model: the
    job ends BROKEN, its escrow burned, nobody paid. (The chain refunded here before.)"""
    chain = Chain()
    submitter_before = chain.balance("submitter")
    job_id = _failed_then_no_quorum(chain)
    job = chain.job(job_id)
    assert [v.outcome for v in job.verdicts] == [Outcome.EVAL_FAILED, Outcome.NO_QUORUM]
    assert job.status == JobStatus.BROKEN and job.escrow == 0 and job.winner is None
    assert chain.balance("submitter") == submitter_before - ESCROW
    assert not any(chain.state.account(chain.addr(n)).banned for n in ("bob", "dave"))
    assert_conserved(chain)


def test_vote_failed_2_inconclusive_after_a_failed_turn_burns_not_refunds() -> None:
    """[VOTE-FAILED.2] [JOB-TURN.2] the same with an inconclusive second turn (no
    supermajority either way among agreeing measurements)."""
    chain = Chain()
    submitter_before = chain.balance("submitter")
    job_id = claims_then_expire(chain, {"bob": 0.2, "dave": 0.3})
    _turn(chain, job_id, "bob", {**ALL_FAIL, "dave": (False, None)}, own=(True, 0.2))
    _turn(chain, job_id, "dave", {"alice": (True, 0.308), "carol": (False, 0.312),
                                  "erin": (True, 0.308), "v0": (False, 0.312)},
          own=(True, 0.3))
    job = chain.job(job_id)
    assert [v.outcome for v in job.verdicts] == [Outcome.EVAL_FAILED, Outcome.INCONCLUSIVE]
    assert job.status == JobStatus.BROKEN and job.winner is None
    assert chain.balance("submitter") == submitter_before - ESCROW
    assert_conserved(chain)


def test_job_turn_2_no_quorum_after_a_withdrawn_turn_pays_the_withdrawn_claim() -> None:
    """[JOB-TURN.2] [JOB-WITHDRAW.1] every ending without a paid turn follows one order: a
    no-quorum turn after a withdrawal pays the withdrawn claim the voters agreed on, as the
    last turn would (the submitter holds that model too)."""
    chain = Chain()
    job_id = claims_then_expire(chain, {"bob": 0.2, "dave": 0.3})
    bob_before = chain.balance("bob")
    _turn(chain, job_id, "bob", {"alice": (False, 5.0), "carol": (False, 5.0),
                                 "erin": (False, 5.0), "v0": (False, 5.0),
                                 "dave": (False, 5.0)}, own=(False, 5.0))
    assert chain.job(job_id).verdicts[0].outcome == Outcome.WITHDRAWN
    chain.block(chain.reveal("dave", job_id))
    chain.vote_round(job_id, "dave", {"alice": (True, 0.3)})
    chain.block(dt=5_000)
    job = chain.job(job_id)
    assert job.verdicts[-1].outcome == Outcome.NO_QUORUM
    assert job.status == JobStatus.PAID and job.winner == chain.addr("bob")
    assert chain.balance("bob") == bob_before + BOUNTY
    assert_conserved(chain)
