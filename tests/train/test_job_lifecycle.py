"""Complete job lifecycles through blocks [JOB-*]: the four cases of the ledger issue."""

from __future__ import annotations

from chain.records import JobStatus, Outcome
from chain.train.bodies import PostJob
from tests.ledger.harness import GENESIS_TIME, Chain, job_spec

BOUNTY, REWARD, TURNS = 100, 6, 3
ESCROW = BOUNTY + REWARD * TURNS


def post(chain: Chain, **kw: object) -> bytes:
    tx = chain.tx("submitter", PostJob(job_spec(BOUNTY, voter_reward=REWARD, max_turns=TURNS,
                                                **kw)))  # type: ignore[arg-type]
    chain.block(tx)
    return tx.hash


def claims_then_expire(chain: Chain, losses: dict[str, float]) -> bytes:
    job_id = post(chain)
    chain.block(*(chain.claim(name, job_id, loss) for name, loss in losses.items()))
    chain.block(at=GENESIS_TIME + 10_000)  # expiry: the reveal turn of the best claim starts
    return job_id


def assert_conserved(chain: Chain) -> None:
    assert chain.state.total_credits() == chain.state.supply


def test_best_of_three_claims_verified_and_paid() -> None:
    """(a) three claims; the best reveals, is voted valid, and is paid.
    [JOB-POST-ESCROW.1] [VOTE-REWARD.1] [JOB-SETTLE.1]"""
    chain = Chain()
    before = {n: chain.balance(n) for n in ("submitter", "alice", "bob", "carol", "dave")}
    job_id = claims_then_expire(chain, {"alice": 0.30, "bob": 0.20, "carol": 0.25})
    job = chain.job(job_id)
    assert job.status == JobStatus.REVEAL and job.current == chain.addr("bob")
    chain.block(chain.reveal("bob", job_id))
    job = chain.job(job_id)
    assert job.status == JobStatus.VOTE_COMMIT
    # Eligible: every member but the submitter and the judged claimer.
    assert chain.addr("bob") not in job.eligible_voters
    assert chain.addr("submitter") not in job.eligible_voters
    voters = {"alice": (True, 0.201), "carol": (True, 0.20), "dave": (True, 0.199),
              "erin": (True, 0.2)}
    chain.vote_round(job_id, "bob", voters)
    job = chain.job(job_id)
    assert job.status == JobStatus.PAID and job.winner == chain.addr("bob")
    assert [v.outcome for v in job.verdicts] == [Outcome.VALID]
    # Bob gets the bounty; the four voters split the turn's reward (6 // 4 = 1 each);
    # the submitter gets back the unused rest of the escrow.
    assert chain.balance("bob") == before["bob"] + BOUNTY
    assert chain.balance("dave") == before["dave"] + 1
    assert chain.balance("submitter") == before["submitter"] - BOUNTY - 4
    assert job.escrow == 0
    assert_conserved(chain)


def test_cheating_winner_banned_slashed_and_runner_up_paid() -> None:
    """(b) the winner is voted a cheater: banned, slashed; the runner-up verified and paid."""
    chain = Chain()
    alice_before = chain.balance("alice")
    supply = chain.state.supply
    job_id = claims_then_expire(chain, {"alice": 0.30, "dave": 0.01})
    chain.block(chain.reveal("dave", job_id))
    chain.vote_round(job_id, "dave", {"alice": (False, 0.9), "bob": (False, 0.905),
                                      "carol": (False, 0.9), "erin": (False, None)})
    dave = chain.state.account(chain.addr("dave"))
    assert dave.banned and dave.balance == 0
    # Dave's whole balance and his verifier bond [JOB-BAN.1]; v0 was eligible and did not
    # vote, so its bond is burned too [VOTE-NOSHOW.1].
    bond = chain.state.params.verifier_bond
    assert chain.state.burned == 1_000 + bond + bond
    assert chain.state.verifier_bond(chain.addr("v0")) is None
    job = chain.job(job_id)
    assert job.verdicts[0].outcome == Outcome.CHEAT
    assert job.status == JobStatus.REVEAL and job.current == chain.addr("alice")
    chain.block(chain.reveal("alice", job_id))
    chain.vote_round(job_id, "alice", {"bob": (True, 0.3), "carol": (True, 0.3),
                                       "erin": (True, 0.3)})
    job = chain.job(job_id)
    assert job.status == JobStatus.PAID and job.winner == chain.addr("alice")
    # Alice voted in the first turn with the majority (1 of 4 shares of 6) and won the bounty.
    assert chain.balance("alice") == alice_before + BOUNTY + 1
    assert chain.state.supply == supply
    assert_conserved(chain)


def test_winner_never_reveals_forfeits_runner_up_paid() -> None:
    """(c) the winner stays silent past the reveal window; the runner-up is paid."""
    chain = Chain()
    job_id = claims_then_expire(chain, {"alice": 0.30, "bob": 0.10})
    chain.block(dt=5_000)  # reveal window (5 s) passes without bob's reveal
    job = chain.job(job_id)
    assert job.verdicts[0].outcome == Outcome.FORFEIT
    assert not chain.state.account(chain.addr("bob")).banned  # silence is no proof of cheating
    assert job.current == chain.addr("alice")
    assert chain.reject(chain.reveal("bob", job_id)) == "not_your_turn"
    chain.block(chain.reveal("alice", job_id))
    chain.vote_round(job_id, "alice", {"carol": (True, 0.3), "dave": (True, 0.31),
                                       "erin": (True, 0.3), "bob": (True, 0.3)})
    assert chain.job(job_id).winner == chain.addr("alice")
    assert_conserved(chain)


def test_every_claim_cheats_bounty_returns_to_submitter() -> None:
    """(d) every claim is voted a cheat: all banned, the submitter is refunded."""
    chain = Chain()
    start = chain.balance("submitter")
    job_id = claims_then_expire(chain, {"alice": 0.2, "bob": 0.1})
    for cheater, honest in (("bob", ["carol", "dave", "erin", "alice"]),
                            ("alice", ["carol", "dave", "erin"])):
        chain.block(chain.reveal(cheater, job_id))
        chain.vote_round(job_id, cheater, {v: (False, 0.9) for v in honest})
    job = chain.job(job_id)
    assert [v.outcome for v in job.verdicts] == [Outcome.CHEAT, Outcome.CHEAT]
    assert job.status == JobStatus.REFUNDED and job.winner is None
    # Voters who caught cheats earned 6 // 4 * 4 + 6 // 3 * 3 = 10; the rest came back.
    assert chain.balance("submitter") == start - 4 - 6
    assert job.escrow == 0
    assert_conserved(chain)


def test_no_claims_refund_at_expiry() -> None:
    """[JOB-TICK.1] [JOB-SETTLE.1] Expiry with no claim: the escrow goes back."""
    chain = Chain()
    start = chain.balance("submitter")
    job_id = post(chain)
    chain.block(at=GENESIS_TIME + 10_000)
    assert chain.job(job_id).status == JobStatus.REFUNDED
    assert chain.balance("submitter") == start
    assert_conserved(chain)


def test_too_few_votes_refunds_without_ban() -> None:
    """[VOTE-VERDICT.1] No quorum is no evidence: nobody banned, the bounty goes back."""
    chain = Chain()
    start = chain.balance("submitter")
    job_id = claims_then_expire(chain, {"alice": 0.3})
    chain.block(chain.reveal("alice", job_id))
    chain.vote_round(job_id, "alice", {"bob": (False, 0.9)})  # 1 of 4 eligible voted
    chain.block(dt=5_000)
    job = chain.job(job_id)
    assert job.verdicts[-1].outcome == Outcome.NO_QUORUM
    assert job.status == JobStatus.REFUNDED
    assert not chain.state.account(chain.addr("alice")).banned
    assert chain.balance("submitter") == start
    assert_conserved(chain)


def test_equal_loss_earlier_claim_wins() -> None:
    """[JOB-RANK.1] On equal loss the earlier claim (height, then index) gets the turn."""
    chain = Chain()
    job_id = post(chain)
    chain.block(chain.claim("carol", job_id, 0.25), chain.claim("alice", job_id, 0.25))
    chain.block(chain.claim("bob", job_id, 0.25))
    chain.block(at=GENESIS_TIME + 10_000)
    assert chain.job(job_id).current == chain.addr("carol")
    ranked = [c.claimer for c in chain.job(job_id).ranked_claims()]
    assert ranked == [chain.addr("carol"), chain.addr("alice"), chain.addr("bob")]
