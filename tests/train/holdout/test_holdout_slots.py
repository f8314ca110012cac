"""[HOLDOUT-SLOT.1]: an overfit finalist does not use up one of the K finalist slots.

Found by the incentive simulation ([THREAT-HOLDOUT-CROWD.1]): overfitters whose public
claims rank first filled every slot, so the honest claim behind them was never judged.
"""

from __future__ import annotations

from chain.records import JobStatus
from chain.train.holdout.bodies import HoldoutReveal
from chain.train.holdout.records import HoldoutStatus
from chain.types import Hash32
from tests.ledger.harness import Chain
from tests.train.holdout.test_holdout import (
    HIDDEN,
    holdout_round,
    honest,
    post,
    publish,
    reward_paid,
    to_holdout_window,
    v3_spec,
)


def one_slot_race(chain: Chain, claims: dict[str, float]) -> bytes:
    """K = 1, max_turns 3; the claims in order, expiry, the hidden part revealed."""
    job_id = post(chain, v3_spec(finalists=1))
    publish(chain, job_id)
    chain.block(*(chain.claim(n, job_id, loss) for n, loss in claims.items()))
    to_holdout_window(chain, job_id)
    chain.block(chain.tx("submitter", HoldoutReveal(Hash32(job_id), HIDDEN)))
    return job_id


def turn(chain: Chain, job_id: bytes, name: str, public: float, hidden: float) -> None:
    assert chain.job(job_id).current == chain.addr(name)
    chain.block(chain.reveal(name, job_id))
    holdout_round(chain, job_id, name, honest(hidden=hidden, public=public))


def test_an_overfit_finalist_leaves_its_slot_to_the_claim_behind_it() -> None:
    """[HOLDOUT-SLOT.1] [HOLDOUT-FINALIST.1] K = 1: alice claims 0.10 and measures 0.90 on
    the hidden part (more than tie 0.02 + tolerance 0.01 above her claim): she is a
    finalist but the slot stays open, bob's claim is judged (0.20 public, 0.22 hidden: in
    the slot) and bob is paid. Before the rule alice alone filled K = 1 and was paid."""
    chain = Chain()
    job_id = one_slot_race(chain, {"alice": 0.10, "bob": 0.20, "carol": 0.30})
    turn(chain, job_id, "alice", 0.10, 0.90)
    holdout = chain.state.holdout(job_id)
    assert holdout is not None and holdout.status == HoldoutStatus.VERIFIED
    assert [f.claimer for f in holdout.finalists] == [chain.addr("alice")]
    assert chain.job(job_id).status != JobStatus.PAID
    turn(chain, job_id, "bob", 0.20, 0.22)
    job = chain.job(job_id)
    assert job.status == JobStatus.PAID and job.winner == chain.addr("bob")
    assert len(job.verdicts) == 2  # carol's claim is not judged: bob filled the slot
    assert chain.state.total_credits() == chain.state.supply  # [BANK.1]


def test_a_finalist_at_the_threshold_fills_its_slot() -> None:
    """[HOLDOUT-SLOT.1] An honest model may do a little worse on the hidden part: 0.10
    claimed, 0.125 hidden (0.025 <= 0.02 + 0.01) fills the slot, the job is paid after one
    turn and the claims behind it are never judged."""
    chain = Chain()
    job_id = one_slot_race(chain, {"alice": 0.10, "bob": 0.20})
    turn(chain, job_id, "alice", 0.10, 0.125)
    job = chain.job(job_id)
    assert job.status == JobStatus.PAID and job.winner == chain.addr("alice")
    assert len(job.verdicts) == 1


def test_overfitters_lengthen_a_job_at_most_to_max_turns_and_still_one_is_paid() -> None:
    """[HOLDOUT-SLOT.1] [JOB-TURN.2] The bound: no finalist fills the slot, yet the job ends
    after max_turns (3) voted turns, paying what its escrow already held for them, and the
    best hidden loss among the finalists wins (an overfitter, when nothing better came)."""
    chain = Chain()
    before = chain.balance("submitter")
    claims = {"alice": 0.10, "bob": 0.11, "carol": 0.12, "dave": 0.13}
    job_id = one_slot_race(chain, claims)
    for name, hidden in (("alice", 0.90), ("bob", 0.60), ("carol", 0.70)):
        turn(chain, job_id, name, claims[name], hidden)
    job = chain.job(job_id)
    assert job.status == JobStatus.PAID and job.winner == chain.addr("bob")
    assert len(job.verdicts) == 3
    spent = before - chain.balance("submitter")
    assert spent <= job.spec.bounty + job.spec.voting.voter_reward * 3
    assert spent >= job.spec.bounty + 3 * reward_paid(4)
