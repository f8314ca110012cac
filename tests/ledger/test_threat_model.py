"""The threat model's ledger attacks, each tried and failing (protocol_spec/threat_model.md)."""

from __future__ import annotations

from chain.records import JobStatus, Outcome
from chain.train.bodies import ClaimLoss, PostJob, VoteCommit
from chain.transactions import Transfer
from chain.types import Amount, Hash32
from tests.ledger.harness import GENESIS_TIME, Chain, job_spec


def posted(chain: Chain) -> bytes:
    tx = chain.tx("submitter", PostJob(job_spec()))
    chain.block(tx)
    return tx.hash


def test_threat_copy_claim_front_run_cannot_reveal() -> None:
    """[THREAT-COPY.1] erin copies alice's claim (loss and commitment) and lands it first."""
    chain = Chain()
    job_id = posted(chain)
    original = chain.claim("alice", job_id, 0.1)
    assert isinstance(original.body, ClaimLoss)
    copy = chain.tx("erin", ClaimLoss(Hash32(job_id), original.body.loss,
                                      original.body.commitment))
    chain.block(copy, original)  # the copy is earlier: it ranks first
    chain.block(at=GENESIS_TIME + 10_000)
    assert chain.job(job_id).current == chain.addr("erin")
    # erin cannot open alice's commitment: it binds alice's address.
    chain.salts[(job_id, "erin")] = chain.salts[(job_id, "alice")]
    assert chain.reject(chain.reveal("erin", job_id)) == "commitment_mismatch"
    chain.block(dt=5_000)
    job = chain.job(job_id)
    assert job.verdicts[0].outcome == Outcome.FORFEIT and job.current == chain.addr("alice")
    chain.block(chain.reveal("alice", job_id))
    chain.vote_round(job_id, "alice", {v: (True, 0.1) for v in ("bob", "carol", "dave", "v0")})
    assert chain.job(job_id).winner == chain.addr("alice")


def test_threat_reannounced_claim_cannot_open_with_copied_model() -> None:
    """[THREAT-COPY.2] Knowing the model hash and salt, another address still cannot claim it."""
    chain = Chain()
    job_id = posted(chain)
    chain.block(chain.claim("alice", job_id, 0.1))
    secret = chain.salts[(job_id, "alice")]
    # bob re-announces with his own commitment to alice's model: it opens for bob...
    chain.block(chain.claim("bob", job_id, 0.05, model=secret[:32]))
    chain.block(at=GENESIS_TIME + 10_000)
    chain.block(chain.reveal("bob", job_id))
    # ...but every verifier measures the model's real loss (0.1), so bob's 0.05 is a lie.
    chain.vote_round(job_id, "bob", {v: (False, 0.1) for v in ("carol", "dave", "erin", "v0")})
    assert chain.state.account(chain.addr("bob")).banned
    assert chain.job(job_id).current == chain.addr("alice")


def test_threat_vote_from_non_member_or_banned() -> None:
    """[THREAT-SYBIL.1] Fresh keys and banned members cannot vote."""
    chain = Chain()
    job_id = posted(chain)
    chain.block(chain.claim("alice", job_id, 0.2), chain.claim("bob", job_id, 0.01))
    chain.block(at=GENESIS_TIME + 10_000)
    chain.block(chain.reveal("bob", job_id))
    chain.vote_round(job_id, "bob", {v: (False, 0.9) for v in ("carol", "dave", "erin", "v0")})
    assert chain.state.account(chain.addr("bob")).banned
    chain.block(chain.reveal("alice", job_id))
    assert chain.reject(chain.vote_commit("mallory", job_id, "alice", False, None)) \
        == "not_eligible_voter"
    assert chain.reject(chain.vote_commit("bob", job_id, "alice", False, None)) == "sender_banned"


def test_threat_copied_vote_commitment_counts_for_nothing() -> None:
    """[THREAT-LAZY.1] A lazy voter copying another's hidden vote cannot open it."""
    chain = Chain()
    job_id = posted(chain)
    chain.block(chain.claim("alice", job_id, 0.2))
    chain.block(at=GENESIS_TIME + 10_000)
    chain.block(chain.reveal("alice", job_id))
    honest = chain.vote_commit("bob", job_id, "alice", True, 0.2)
    assert isinstance(honest.body, VoteCommit)
    lazy = chain.tx("carol", VoteCommit(Hash32(job_id), chain.addr("alice"),
                                        honest.body.commitment))
    chain.block(honest, lazy)
    chain.block(dt=5_000)
    chain.salts[(job_id, "vote:carol")] = chain.salts[(job_id, "vote:bob")]
    assert chain.reject(chain.vote_reveal("carol", job_id, "alice", True, 0.2)) \
        == "vote_commitment_mismatch"


def test_threat_submitter_cannot_take_the_bounty_back() -> None:
    """[THREAT-UNPAID.1] The escrow is gone from the submitter's balance; it cannot claim,
    judge, or cancel its own job."""
    chain = Chain()
    balance = chain.balance("submitter")
    job_id = posted(chain)
    escrow = job_spec().escrow
    assert chain.balance("submitter") == balance - escrow
    assert chain.reject(chain.tx("submitter", Transfer(chain.addr("bob"), Amount(balance)))) \
        == "insufficient_balance"
    assert chain.reject(chain.claim("submitter", job_id, 0.0)) == "submitter_cannot_claim"
    chain.block(chain.claim("alice", job_id, 0.2))
    chain.block(at=GENESIS_TIME + 10_000)
    chain.block(chain.reveal("alice", job_id))
    assert chain.reject(chain.vote_commit("submitter", job_id, "alice", False, None)) \
        == "not_eligible_voter"


def test_threat_false_cheat_votes_need_a_supermajority() -> None:
    """[THREAT-GRIEF.1] A minority voting an honest winner 'cheat' does not ban it."""
    chain = Chain()
    job_id = posted(chain)
    chain.block(chain.claim("alice", job_id, 0.2))
    chain.block(at=GENESIS_TIME + 10_000)
    chain.block(chain.reveal("alice", job_id))
    chain.vote_round(job_id, "alice", {"bob": (False, 0.9), "carol": (True, 0.2),
                                       "dave": (True, 0.2), "erin": (True, 0.2),
                                       "v0": (True, 0.2)})
    assert not chain.state.account(chain.addr("alice")).banned
    assert chain.job(job_id).status == JobStatus.PAID


def test_threat_winner_never_reveals_gets_nothing() -> None:
    """[THREAT-NOREVEAL.1] Silence forfeits the claim; with no one else the bounty returns."""
    chain = Chain()
    start = chain.balance("submitter")
    job_id = posted(chain)
    chain.block(chain.claim("alice", job_id, 0.2))
    chain.block(at=GENESIS_TIME + 10_000)
    chain.block(dt=5_000)
    job = chain.job(job_id)
    assert job.status == JobStatus.REFUNDED and job.verdicts[0].outcome == Outcome.FORFEIT
    assert chain.balance("submitter") == start
