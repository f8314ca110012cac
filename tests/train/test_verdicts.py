"""Verdicts that tell a lying claimer from a broken job (issue 13 §1).

[VOTE-SELF.1] the claimer measures its own model beside the voters;
[VOTE-AGREE.1] the voters' agreeing group; [VOTE-VERDICT.2] the outcome;
[JOB-WITHDRAW.1] a claim that no longer reproduces for its own claimer is
withdrawn, not punished; [JOB-BROKEN.1] voters who disagree mean the job is
broken: nobody is banned and nothing is refunded; [JOB-TURN.2] the best
withdrawn model the voters agreed on is paid when no turn is valid.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from chain.records import JobStatus, Outcome, VoteRecord
from chain.train.verdict import agreement
from chain.types import Address, Hash32
from tests.ledger.harness import Chain
from tests.train.test_job_lifecycle import (
    BOUNTY,
    ESCROW,
    REWARD,
    assert_conserved,
    claims_then_expire,
)

Votes = dict[str, tuple[bool, float | None]]


def _vote(loss: float | None, valid: bool = False) -> VoteRecord:
    return VoteRecord(Address(b"\1" * 20), Hash32(b"\0" * 32), True, valid, loss)


def test_agreement_is_the_largest_group_within_the_tolerance() -> None:
    """[VOTE-AGREE.1] width-tolerance interval; lower median; no-loss votes a group."""
    group = agreement([_vote(x) for x in (0.50, 0.505, 0.508, 0.9, None)], 0.01)
    assert (group.size, group.verified_loss) == (3, 0.505)
    group = agreement([_vote(x) for x in (0.5, 0.7, None, None)], 0.01)
    assert (group.size, group.verified_loss) == (2, None)
    # Ties between intervals go to the lowest one; a tie with no-loss goes to no-loss.
    assert agreement([_vote(x) for x in (0.1, 0.5)], 0.01).verified_loss == 0.1
    assert agreement([_vote(0.1), _vote(None)], 0.01).verified_loss is None
    assert agreement([], 0.01).size == 0


@given(st.lists(st.one_of(st.none(), st.floats(-1e300, 1e300)), max_size=40),
       st.floats(0.0, 10.0))
def test_agreement_is_total_and_bounded(losses: list[float | None], tolerance: float) -> None:
    """[VOTE-AGREE.1] never raises; the group is non-empty for any vote and fits the width."""
    group = agreement([_vote(x) for x in losses], tolerance)
    assert (group.size >= 1) == bool(losses) and group.size <= len(losses)
    if group.verified_loss is not None:
        members = [x for x in losses if x is not None
                   and abs(x - group.verified_loss) <= tolerance]
        assert len(members) >= group.size


def _turn(chain: Chain, job_id: bytes, claimer: str, voters: Votes,
          own: tuple[bool, float | None] | None) -> None:
    """The claimer reveals; voters (and the claimer itself, when ``own``) vote."""
    chain.block(chain.reveal(claimer, job_id))
    votes = dict(voters)
    if own is not None:
        votes[claimer] = own
    chain.vote_round(job_id, claimer, votes)


HONEST_VOTERS_SEE_5: Votes = {"alice": (False, 5.0), "carol": (False, 5.0),
                              "erin": (False, 5.0), "v0": (False, 5.0)}


def test_self_vote_is_accepted_but_never_counted_or_paid() -> None:
    """[VOTE-SELF.1] the claimer's own vote opens with the others; counts and pays nothing."""
    chain = Chain()
    job_id = claims_then_expire(chain, {"bob": 0.2})
    bob_before = chain.balance("bob")
    _turn(chain, job_id, "bob", {"alice": (True, 0.2), "carol": (True, 0.2),
                                 "dave": (True, 0.2), "erin": (True, 0.2)}, own=(True, 0.2))
    job = chain.job(job_id)
    assert job.status == JobStatus.PAID
    verdict = job.verdicts[0]
    assert (verdict.valid_votes, verdict.invalid_votes) == (4, 0)
    assert chain.balance("bob") == bob_before + BOUNTY  # no voter share for its own vote
    assert_conserved(chain)


def test_claim_that_no_longer_reproduces_for_its_claimer_is_withdrawn_not_banned() -> None:
    """[JOB-WITHDRAW.1] a time-bombed evaluation: the claimer measured 0.2 before expiry,
    now measures 5.0 like every voter; it says so and is not banned."""
    chain = Chain()
    job_id = claims_then_expire(chain, {"bob": 0.2, "dave": 0.3})
    _turn(chain, job_id, "bob", HONEST_VOTERS_SEE_5, own=(False, 5.0))
    job = chain.job(job_id)
    assert job.verdicts[0].outcome == Outcome.WITHDRAWN
    assert job.verdicts[0].verified_loss == 5.0
    assert not chain.state.account(chain.addr("bob")).banned
    assert job.status == JobStatus.REVEAL and job.current == chain.addr("dave")
    assert_conserved(chain)


def test_liar_that_insists_on_its_claim_is_still_banned() -> None:
    """[VOTE-VERDICT.2] voters agree the model scores 5.0; the claimer insists on 0.2."""
    chain = Chain()
    job_id = claims_then_expire(chain, {"bob": 0.2})
    _turn(chain, job_id, "bob", HONEST_VOTERS_SEE_5, own=(True, 0.2))
    assert chain.job(job_id).verdicts[0].outcome == Outcome.CHEAT
    bob = chain.state.account(chain.addr("bob"))
    assert bob.banned and bob.balance == 0
    assert_conserved(chain)


def test_claimer_that_sends_no_measurement_is_judged_as_insisting() -> None:
    """[VOTE-VERDICT.2] silence is not a withdrawal."""
    chain = Chain()
    job_id = claims_then_expire(chain, {"bob": 0.2})
    _turn(chain, job_id, "bob", HONEST_VOTERS_SEE_5, own=None)
    assert chain.job(job_id).verdicts[0].outcome == Outcome.CHEAT


def test_voters_who_disagree_mean_a_broken_job_nobody_banned_no_refund() -> None:
    """[JOB-BROKEN.1] evaluation differs per machine: no ban, claimer paid, no refund."""
    chain = Chain()
    submitter_before = chain.balance("submitter")
    job_id = claims_then_expire(chain, {"bob": 0.2})
    bob_before = chain.balance("bob")
    burned_before = chain.state.burned
    voters: Votes = {"alice": (True, 0.2), "carol": (False, 5.0), "erin": (False, 2.0),
                     "v0": (True, 0.1)}
    _turn(chain, job_id, "bob", voters, own=(True, 0.2))
    job = chain.job(job_id)
    assert job.verdicts[0].outcome == Outcome.INCONSISTENT
    assert job.status == JobStatus.BROKEN and job.escrow == 0
    assert not any(chain.state.account(chain.addr(n)).banned for n in ("bob", *voters))
    assert chain.balance("bob") == bob_before + BOUNTY
    assert chain.balance("submitter") == submitter_before - ESCROW  # nothing comes back
    # Every voter that followed the contract shares the turn's reward; the rest is burned.
    # Dave, eligible, sent no vote: his bond is burned as well [VOTE-NOSHOW.1].
    share = REWARD // len(voters)
    no_show_bonds = chain.state.params.verifier_bond
    assert chain.state.burned - burned_before == (ESCROW - BOUNTY - share * len(voters)
                                                  + no_show_bonds)
    assert_conserved(chain)


def test_every_claim_withdrawn_the_best_agreed_model_is_paid_not_refunded() -> None:
    """[JOB-TURN.2] a time bomb cannot buy the revealed models for nothing."""
    chain = Chain()
    submitter_before = chain.balance("submitter")
    job_id = claims_then_expire(chain, {"bob": 0.2, "dave": 0.3})
    _turn(chain, job_id, "bob", HONEST_VOTERS_SEE_5, own=(False, 5.0))
    dave_voters: Votes = {"alice": (False, 4.0), "carol": (False, 4.0), "erin": (False, 4.0),
                          "v0": (False, 4.0)}
    _turn(chain, job_id, "dave", dave_voters, own=(False, 4.0))
    job = chain.job(job_id)
    assert [v.outcome for v in job.verdicts] == [Outcome.WITHDRAWN, Outcome.WITHDRAWN]
    assert job.status == JobStatus.PAID and job.winner == chain.addr("dave")  # 4.0 < 5.0
    assert chain.balance("submitter") < submitter_before - BOUNTY
    assert not chain.state.account(chain.addr("bob")).banned
    assert_conserved(chain)


def test_lying_then_withdrawing_loses_to_a_worse_honest_claim() -> None:
    """Incentive: a liar that withdraws is paid at most what honesty would pay it, here
    nothing: dave really reached 0.3 but claimed 0.01; alice honestly claimed 0.4."""
    chain = Chain()
    job_id = claims_then_expire(chain, {"dave": 0.01, "alice": 0.4})
    dave_voters: Votes = {"bob": (False, 0.3), "carol": (False, 0.3), "erin": (False, 0.3),
                          "v0": (False, 0.3)}
    _turn(chain, job_id, "dave", dave_voters, own=(False, 0.3))
    alice_voters: Votes = {"bob": (True, 0.4), "carol": (True, 0.4), "erin": (True, 0.4),
                           "v0": (True, 0.4)}
    _turn(chain, job_id, "alice", alice_voters, own=(True, 0.4))
    job = chain.job(job_id)
    assert job.status == JobStatus.PAID and job.winner == chain.addr("alice")
    assert_conserved(chain)


def test_withdrawn_turns_do_not_use_up_max_turns() -> None:
    """[JOB-TURN.1] withdrawals, like forfeits, cannot crowd honest claims out."""
    chain = Chain()
    job_id = claims_then_expire(chain, {"alice": 0.01, "bob": 0.02, "carol": 0.03,
                                        "dave": 0.5})
    for liar in ("alice", "bob", "carol"):
        voters: Votes = {n: (False, 0.9) for n in ("alice", "bob", "carol", "dave", "erin", "v0")
                         if n != liar}
        _turn(chain, job_id, liar, voters, own=(False, 0.9))
    assert chain.job(job_id).current == chain.addr("dave")  # max_turns is 3
    honest: Votes = {n: (True, 0.5) for n in ("alice", "bob", "carol", "erin")}
    _turn(chain, job_id, "dave", honest, own=(True, 0.5))
    assert chain.job(job_id).winner == chain.addr("dave")
