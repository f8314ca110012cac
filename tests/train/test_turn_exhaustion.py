"""[JOB-TURN.1] Cheat verdicts do not use up ``max_turns`` ([THREAT-EXHAUST.1]).

``max_turns`` members that claim one job far below reach, reveal and insist are
each judged a cheat and banned; the honest claim behind them must still get its
turn and be paid. The escrow funds ``max_turns`` voter rewards: turns beyond them
are paid from what the escrow holds above the bounty, never from the bounty itself
[VOTE-REWARD.1].
"""

from __future__ import annotations

from chain.records import JobStatus, Outcome
from tests.ledger.harness import Chain
from tests.train.test_job_lifecycle import (
    BOUNTY,
    ESCROW,
    REWARD,
    TURNS,
    assert_conserved,
    claims_then_expire,
)

MEMBERS = ("alice", "bob", "carol", "dave", "erin", "v0")


def _judge(chain: Chain, job_id: bytes, claimer: str, valid: bool, loss: float | None,
           own: tuple[bool, float]) -> None:
    """The claimer reveals; every other member that is not banned votes, and so does the
    claimer on its own model [VOTE-SELF.1]."""
    chain.block(chain.reveal(claimer, job_id))
    votes = {n: (valid, loss) for n in MEMBERS
             if n != claimer and not chain.state.account(chain.addr(n)).banned}
    votes[claimer] = own
    chain.vote_round(job_id, claimer, votes)


def test_job_turn_1_sacrificial_cheaters_cannot_use_up_the_honest_claims_turn() -> None:
    """[JOB-TURN.1] [THREAT-EXHAUST.1] Three liars (max_turns is 3) claim far below reach and
    insist: three cheat verdicts, three bans. The honest claim behind them still gets its
    turn, is judged valid and paid the whole bounty."""
    chain = Chain()
    liars = ("alice", "bob", "carol")
    job_id = claims_then_expire(chain, {"alice": 0.01, "bob": 0.02, "carol": 0.03,
                                        "dave": 0.5})
    submitter_before = chain.balance("submitter") + ESCROW
    for liar in liars:
        _judge(chain, job_id, liar, valid=False, loss=0.9, own=(True, 0.01))
    job = chain.job(job_id)
    assert [v.outcome for v in job.verdicts] == [Outcome.CHEAT] * TURNS
    assert all(chain.state.account(chain.addr(n)).banned for n in liars)
    assert job.status == JobStatus.REVEAL and job.current == chain.addr("dave")
    dave_before = chain.balance("dave")
    _judge(chain, job_id, "dave", valid=True, loss=0.5, own=(True, 0.5))
    job = chain.job(job_id)
    assert job.status == JobStatus.PAID and job.winner == chain.addr("dave")
    assert chain.balance("dave") == dave_before + BOUNTY
    # Four rewarded turns, three funded: the voters of all four shared at most what the
    # escrow held beyond the bounty, and the submitter got the rest back.
    voter_rewards = submitter_before - BOUNTY - chain.balance("submitter")
    assert 0 <= voter_rewards <= REWARD * TURNS
    assert job.escrow == 0
    assert_conserved(chain)



def test_threat_exhaust_1_garbage_revealers_cannot_use_up_the_honest_claims_turn() -> None:
    """[THREAT-EXHAUST.1] [VOTE-FAILED.2] [THREAT-GARBAGE.1] Three members (max_turns is 3)
    claim far below reach and reveal bytes no evaluation can read (or a hash nobody serves):
    every voter votes "evaluation failed" while each insists. Three eval_failed turns, none
    counted against max_turns: the honest claim behind them is still tried and paid. The
    residual, pinned here so a rule change shows: the garbage revealers lose nothing (not
    banned, balances unchanged) and the voters of those turns are paid nothing."""
    chain = Chain()
    griefers = ("alice", "bob", "carol")
    job_id = claims_then_expire(chain, {"alice": 0.01, "bob": 0.02, "carol": 0.03,
                                        "dave": 0.5})
    before = {n: chain.balance(n) for n in MEMBERS}
    for griefer in griefers:
        _judge(chain, job_id, griefer, valid=False, loss=None, own=(True, 0.01))
    job = chain.job(job_id)
    assert [v.outcome for v in job.verdicts] == [Outcome.EVAL_FAILED] * TURNS
    assert not any(chain.state.account(chain.addr(n)).banned for n in griefers)
    assert {n: chain.balance(n) for n in MEMBERS} == before  # nobody paid or slashed
    assert job.status == JobStatus.REVEAL and job.current == chain.addr("dave")
    _judge(chain, job_id, "dave", valid=True, loss=0.5, own=(True, 0.5))
    job = chain.job(job_id)
    assert job.status == JobStatus.PAID and job.winner == chain.addr("dave")
    assert chain.balance("dave") == before["dave"] + BOUNTY
    assert_conserved(chain)


def test_threat_garbage_1_residual_a_lone_garbage_claim_burns_the_escrow_at_no_cost() -> None:
    """[THREAT-GARBAGE.1] (open residual, threat_model.md) The only claim on a job reveals
    garbage: the turn is eval_failed and the job ends BROKEN, its escrow burned
    [VOTE-FAILED.2], where with no claim at all it would have been refunded; the claimer,
    who may have trained nothing, keeps every credit. The rule cannot tell this claimer
    from an honest one whose model a hostile evaluate fails only on the voters' machines,
    so it punishes neither; this test pins what that costs the submitter."""
    chain = Chain()
    submitter_before = chain.balance("submitter")
    job_id = claims_then_expire(chain, {"alice": 0.01})
    alice_before, burned_before = chain.balance("alice"), chain.state.burned
    _judge(chain, job_id, "alice", valid=False, loss=None, own=(True, 0.01))
    job = chain.job(job_id)
    assert [v.outcome for v in job.verdicts] == [Outcome.EVAL_FAILED]
    assert job.status == JobStatus.BROKEN and job.winner is None
    assert chain.balance("submitter") == submitter_before - ESCROW
    assert chain.state.burned - burned_before == ESCROW
    assert chain.balance("alice") == alice_before
    assert not chain.state.account(chain.addr("alice")).banned
    assert_conserved(chain)


def test_threat_slowvoter_1_residual_failed_votes_past_a_third_make_a_cheat_inconsistent() -> None:
    """[THREAT-SLOWVOTER.1] (open residual, threat_model.md) [VOTE-VERDICT.2] assumes fewer
    than a third of a turn's voters faulty. A liar's turn with 5 voters: 3 measure the
    truth (invalid, loss 0.9) and 2 could not finish in time (slow machines, or friends of
    the liar) and vote "evaluation failed". The largest agreeing group (3) is below ⅔ of 5:
    the turn is inconsistent, nobody is banned and the liar is paid. One failed vote of 5
    (under a third) leaves the cheat verdict standing."""
    chain = Chain()
    job_id = claims_then_expire(chain, {"alice": 0.01})
    chain.block(chain.reveal("alice", job_id))
    truth, failed = (False, 0.9), (False, None)
    chain.vote_round(job_id, "alice", {"bob": failed, "carol": failed, "dave": truth,
                                       "erin": truth, "v0": truth, "alice": (True, 0.01)})
    job = chain.job(job_id)
    assert [v.outcome for v in job.verdicts] == [Outcome.INCONSISTENT]
    assert not chain.state.account(chain.addr("alice")).banned
    assert job.winner == chain.addr("alice")
    assert_conserved(chain)

    chain = Chain()
    job_id = claims_then_expire(chain, {"alice": 0.01})
    chain.block(chain.reveal("alice", job_id))
    chain.vote_round(job_id, "alice", {"bob": failed, "carol": truth, "dave": truth,
                                       "erin": truth, "v0": truth, "alice": (True, 0.01)})
    assert [v.outcome for v in chain.job(job_id).verdicts] == [Outcome.CHEAT]
    assert chain.state.account(chain.addr("alice")).banned
    assert_conserved(chain)
