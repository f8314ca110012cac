"""Every rejection rule: send the bad transaction, check its reason code."""

from __future__ import annotations

import dataclasses

import pytest

from chain.crypto import PrivateKey
from chain.errors import DecodeError, InvalidBlock
from chain.governance.bodies import GovernanceAction, GovernanceApprove, GovernancePropose
from chain.jobspec import VotingParams
from chain.train.bodies import PostJob, RevealModel, VoteCommit
from chain.transactions import SignedTransaction, Transfer, sign_transaction
from chain.transition import apply_block
from chain.types import Amount, Hash32
from tests.ledger.harness import GENESIS_TIME, Chain, job_spec


@pytest.fixture
def chain() -> Chain:
    return Chain()


def open_job(chain: Chain, **kw: object) -> bytes:
    tx = chain.tx("submitter", PostJob(job_spec(**kw)))  # type: ignore[arg-type]
    chain.block(tx)
    return tx.hash


def in_reveal(chain: Chain, claims: dict[str, float]) -> bytes:
    job_id = open_job(chain)
    chain.block(*(chain.claim(n, job_id, loss) for n, loss in claims.items()))
    chain.block(at=GENESIS_TIME + 10_000)
    return job_id


# --- envelope -------------------------------------------------------------------------

def test_invalid_signature_wrong_chain(chain: Chain) -> None:
    """[ENC-DOMAIN.1] [TX-SIG.1] The chain id is in the signed digest."""
    tx = sign_transaction(chain.keys["alice"], "other-chain", 0,
                          Transfer(chain.addr("bob"), Amount(1)))
    assert chain.reject(tx) == "bad_signature"


def test_invalid_signature_tampered_body(chain: Chain) -> None:
    good = chain.tx("alice", Transfer(chain.addr("bob"), Amount(1)))
    forged = SignedTransaction.create(Transfer(chain.addr("bob"), Amount(999)),
                                      good.sender_pubkey, good.nonce, good.signature)
    assert chain.reject(forged) == "bad_signature"


def test_invalid_nonce_replay(chain: Chain) -> None:
    tx = chain.tx("alice", Transfer(chain.addr("bob"), Amount(1)))
    chain.block(tx)
    assert chain.reject(tx) == "bad_nonce"


def test_invalid_nonce_gap(chain: Chain) -> None:
    assert chain.reject(chain.tx("alice", Transfer(chain.addr("bob"), Amount(1)), nonce=5)) \
        == "bad_nonce"


def test_invalid_oversized_transaction(chain: Chain) -> None:
    """[TX-SIZE.1] [ENC-LIMIT.1] Over 16 KiB or with trailing bytes: a decode error."""
    spec = dataclasses.replace(job_spec(), description="x" * 1024)
    big = SignedTransaction.create(PostJob(spec), chain.keys["alice"].public_key, 0,
                                   chain.keys["alice"].sign(b"\x00" * 32))
    assert len(big.wire) < 16 * 1024
    with pytest.raises(DecodeError) as e:
        SignedTransaction.decode(big.wire + b"\x00")
    assert e.value.code == "trailing_bytes"
    with pytest.raises(DecodeError) as e:
        SignedTransaction.decode(b"\x00" * (16 * 1024 + 1))
    assert e.value.code == "oversized"


# --- transfers ------------------------------------------------------------------------

def test_invalid_transfer_insufficient_balance(chain: Chain) -> None:
    assert chain.reject(chain.tx("alice", Transfer(chain.addr("bob"), Amount(10_000)))) \
        == "insufficient_balance"


def test_invalid_transfer_to_self(chain: Chain) -> None:
    assert chain.reject(chain.tx("alice", Transfer(chain.addr("alice"), Amount(1)))) \
        == "self_transfer"


def test_invalid_transfer_zero_amount_is_a_decode_error(chain: Chain) -> None:
    tx = SignedTransaction.create(Transfer(chain.addr("bob"), Amount(0)),
                                  chain.keys["alice"].public_key, 0,
                                  chain.keys["alice"].sign(b"\x01" * 32))
    with pytest.raises(DecodeError, match="amount"):
        SignedTransaction.decode(tx.wire)


def test_fresh_key_without_credits_cannot_send(chain: Chain) -> None:
    fresh = PrivateKey.from_seed(b"fresh")
    tx = sign_transaction(fresh, chain.state.chain_id, 0, Transfer(chain.addr("bob"), Amount(1)))
    assert chain.reject(tx) == "insufficient_balance"


# --- jobs -----------------------------------------------------------------------------

def test_invalid_post_from_non_member(chain: Chain) -> None:
    """[JOB-POST.1] Only admitted members post jobs."""
    assert chain.reject(chain.tx("mallory", PostJob(job_spec()))) == "not_member"


def test_invalid_post_insufficient_balance(chain: Chain) -> None:
    """[JOB-POST-ESCROW.1] The escrow must be affordable; nothing moves otherwise."""
    code = chain.reject(chain.tx("alice", PostJob(job_spec(bounty=5_000))))
    assert code == "insufficient_balance"


@pytest.mark.parametrize(("kw", "code"), [
    ({"expiry_ms": GENESIS_TIME + 1_500}, "expiry_too_soon"),
    ({"expiry_ms": GENESIS_TIME + 10**12}, "expiry_too_far"),
    ({"window_ms": 10}, "window_too_short"),
    ({"quorum": 100}, "quorum_too_low"),
    ({"supermajority": 600}, "supermajority_too_low"),
    ({"quorum": 668}, "quorum_too_high"),
    ({"quorum": 1000}, "quorum_too_high"),
    ({"supermajority": 668}, "supermajority_too_high"),
    ({"supermajority": 1000}, "supermajority_too_high"),
    ({"max_turns": 9}, "too_many_turns"),
])
def test_invalid_post_parameters(chain: Chain, kw: dict[str, int], code: str) -> None:
    """[JOB-POST.1] Expiry, windows, quorum, supermajority and turns within the bounds."""
    assert chain.reject(chain.tx("alice", PostJob(job_spec(**kw)))) == code  # type: ignore[arg-type]


def test_invalid_claim_unknown_job(chain: Chain) -> None:
    assert chain.reject(chain.claim("alice", b"\x42" * 32, 0.1)) == "unknown_job"


def test_invalid_claim_non_member(chain: Chain) -> None:
    job_id = open_job(chain)
    assert chain.reject(chain.claim("mallory", job_id, 0.1)) == "not_member"


def test_invalid_claim_by_submitter(chain: Chain) -> None:
    job_id = open_job(chain)
    assert chain.reject(chain.claim("submitter", job_id, 0.1)) == "submitter_cannot_claim"


def test_invalid_claim_after_expiry(chain: Chain) -> None:
    job_id = open_job(chain)
    assert chain.reject(chain.claim("alice", job_id, 0.1), at=GENESIS_TIME + 10_000) \
        == "job_not_open"


def test_invalid_claim_not_improving_own(chain: Chain) -> None:
    """[JOB-CLAIM-ONE.1] A claimer's new claim must beat and replaces its previous one."""
    job_id = open_job(chain)
    chain.block(chain.claim("alice", job_id, 0.2))
    assert chain.reject(chain.claim("alice", job_id, 0.2)) == "claim_not_improved"
    chain.block(chain.claim("alice", job_id, 0.1))  # a better one replaces it
    assert len(chain.job(job_id).claims) == 1


def test_invalid_reveal_not_your_turn(chain: Chain) -> None:
    """[JOB-REVEAL.1] Only the current claimer reveals."""
    job_id = in_reveal(chain, {"alice": 0.2, "bob": 0.1})
    assert chain.reject(chain.reveal("alice", job_id)) == "not_your_turn"


def test_invalid_reveal_while_open(chain: Chain) -> None:
    job_id = open_job(chain)
    chain.block(chain.claim("alice", job_id, 0.2))
    assert chain.reject(chain.reveal("alice", job_id)) == "not_in_reveal_phase"


def test_invalid_reveal_wrong_model(chain: Chain) -> None:
    """[JOB-REVEAL.1] The reveal must open the claim's commitment."""
    job_id = in_reveal(chain, {"alice": 0.2})
    tx = chain.tx("alice", RevealModel(Hash32(job_id), Hash32(b"\x99" * 32), b"\x00" * 32))
    assert chain.reject(tx) == "commitment_mismatch"


def test_invalid_vote_outside_window_and_ineligible(chain: Chain) -> None:
    """[VOTE-ELIGIBLE.2] [VOTE-COMMIT.2] Members only, not the submitter, in the window, once."""
    job_id = in_reveal(chain, {"alice": 0.2})
    early = chain.vote_commit("bob", job_id, "alice", True, 0.2)
    assert chain.reject(early) == "not_in_vote_commit_phase"
    chain.block(chain.reveal("alice", job_id))
    assert chain.reject(chain.vote_commit("mallory", job_id, "alice", True, 0.2)) \
        == "not_eligible_voter"
    assert chain.reject(chain.vote_commit("submitter", job_id, "alice", False, None)) \
        == "not_eligible_voter"
    wrong = chain.tx("bob", VoteCommit(Hash32(job_id), chain.addr("carol"), Hash32(b"\0" * 32)))
    assert chain.reject(wrong) == "wrong_claim"
    chain.block(chain.vote_commit("bob", job_id, "alice", True, 0.2))
    assert chain.reject(chain.vote_commit("bob", job_id, "alice", True, 0.2)) == "already_voted"
    assert chain.reject(chain.vote_reveal("bob", job_id, "alice", True, 0.2)) \
        == "not_in_vote_reveal_phase"


def test_invalid_vote_reveal_rules(chain: Chain) -> None:
    """[VOTE-REVEAL.1] [VOTE-CONSISTENT.1] Only committed votes open, matching their
    commitment, and 'valid' must agree with the measured loss."""
    job_id = in_reveal(chain, {"alice": 0.2})
    chain.block(chain.reveal("alice", job_id))
    chain.block(chain.vote_commit("bob", job_id, "alice", True, 0.5),
                chain.vote_commit("carol", job_id, "alice", True, 0.2))
    chain.block(dt=5_000)  # commit window ends
    assert chain.reject(chain.vote_reveal("dave", job_id, "alice", True, 0.2)) \
        == "no_vote_commitment"
    # bob committed to 'valid' with a measured loss far above the claim: inconsistent.
    assert chain.reject(chain.vote_reveal("bob", job_id, "alice", True, 0.5)) \
        == "vote_inconsistent"
    assert chain.reject(chain.vote_reveal("carol", job_id, "alice", False, 0.2)) \
        == "vote_commitment_mismatch"


# --- governance -----------------------------------------------------------------------

def test_invalid_governance_from_non_validator(chain: Chain) -> None:
    """[GOV-PROPOSE.1] Only validators propose."""
    action = GovernanceAction("admit_member", chain.addr("mallory"))
    assert chain.reject(chain.tx("alice", GovernancePropose(action))) == "not_validator"


def test_invalid_governance_actions() -> None:
    """[GOV-PROPOSE.1] [GOV-APPROVE.1] Actions valid now; approvals name a pending proposal."""
    chain = Chain(validators=4)
    assert chain.reject(chain.tx("v0", GovernancePropose(
        GovernanceAction("admit_member", chain.addr("alice"))))) == "already_member"
    assert chain.reject(chain.tx("v0", GovernancePropose(
        GovernanceAction("add_validator", chain.keys["v1"].public_key, 1)))) == "already_validator"
    assert chain.reject(chain.tx("v0", GovernancePropose(
        GovernanceAction("remove_validator", chain.addr("alice"))))) == "unknown_validator"
    assert chain.reject(chain.tx("v0", GovernanceApprove(Hash32(b"\1" * 32)))) \
        == "unknown_proposal"


def test_governance_needs_more_than_two_thirds() -> None:
    """[GOV-THRESHOLD.1] 2 of 4 and 2 of 4 are not enough; the third approval executes."""
    chain = Chain(validators=4)
    propose = chain.tx("v0", GovernancePropose(
        GovernanceAction("admit_member", chain.addr("mallory"))))
    chain.block(propose)
    chain.block(chain.tx("v1", GovernanceApprove(propose.hash)))
    assert not chain.state.is_member(chain.addr("mallory"))
    assert chain.reject(chain.tx("v1", GovernanceApprove(propose.hash))) == "already_approved"
    chain.block(chain.tx("v2", GovernanceApprove(propose.hash)))
    assert chain.state.is_member(chain.addr("mallory"))


def test_governance_proposal_expires() -> None:
    chain = Chain(validators=4)
    propose = chain.tx("v0", GovernancePropose(
        GovernanceAction("admit_member", chain.addr("mallory"))))
    chain.block(propose)
    week = chain.state.params.governance_window_ms
    assert chain.reject(chain.tx("v1", GovernanceApprove(propose.hash)),
                        at=chain.now + week) in ("proposal_expired", "unknown_proposal")


def test_validator_change_takes_effect_after_delay() -> None:
    """[GOV-VALSET.1] approved at h, in the set that decides h + delay."""
    chain = Chain(validators=1)
    new = PrivateKey.from_seed(b"new-validator")
    chain.block(chain.tx("v0", GovernancePropose(
        GovernanceAction("add_validator", new.public_key, 1))))
    approved_at = chain.state.height
    delay = chain.state.params.validator_change_delay
    assert new.address not in chain.state.validators()
    while chain.state.height < approved_at + delay - 1:
        chain.block()
    assert new.address in chain.state.validators()
    assert chain.state.is_member(new.address)


def test_banned_sender_can_send_nothing(chain: Chain) -> None:
    from tests.train.test_job_lifecycle import claims_then_expire

    job_id = claims_then_expire(chain, {"alice": 0.01})
    chain.block(chain.reveal("alice", job_id))
    chain.vote_round(job_id, "alice", {v: (False, 0.9) for v in ("bob", "carol", "dave", "erin")})
    assert chain.state.account(chain.addr("alice")).banned
    assert chain.reject(chain.tx("alice", Transfer(chain.addr("bob"), Amount(1)))) \
        == "sender_banned"
    assert chain.reject(chain.tx("bob", Transfer(chain.addr("alice"), Amount(1)))) \
        == "recipient_banned"


def test_voting_params_wire_round_trip() -> None:
    v = VotingParams(1000, 1000, 1000, 667, 667, Amount(3), 2)
    assert VotingParams.from_wire(v.to_wire()) == v


def test_invalid_reveal_after_window(chain: Chain) -> None:
    """[JOB-TICK.1] [JOB-REVEAL.1] The reveal window closes by block time."""
    job_id = in_reveal(chain, {"alice": 0.2})
    # Run alone (no block tick), past the deadline: the rule itself refuses.
    assert chain.reject(chain.reveal("alice", job_id), at=chain.now + 5_000) \
        == "reveal_window_closed"


def test_invalid_vote_reveal_twice(chain: Chain) -> None:
    job_id = in_reveal(chain, {"alice": 0.2})
    chain.block(chain.reveal("alice", job_id))
    chain.block(chain.vote_commit("bob", job_id, "alice", True, 0.2),
                chain.vote_commit("carol", job_id, "alice", True, 0.2))
    chain.block(dt=5_000)
    chain.block(chain.vote_reveal("bob", job_id, "alice", True, 0.2))
    assert chain.reject(chain.vote_reveal("bob", job_id, "alice", True, 0.2)) \
        == "already_revealed"


def test_invalid_governance_last_validator_and_banned_target() -> None:
    chain = Chain(validators=1)
    assert chain.reject(chain.tx("v0", GovernancePropose(
        GovernanceAction("remove_validator", chain.addr("v0"))))) == "last_validator"
    from tests.train.test_job_lifecycle import claims_then_expire

    job_id = claims_then_expire(chain, {"alice": 0.01})
    chain.block(chain.reveal("alice", job_id))
    chain.vote_round(job_id, "alice", {v: (False, 0.9) for v in ("bob", "carol", "dave", "erin")})
    assert chain.state.account(chain.addr("alice")).banned
    new_key = PrivateKey.from_seed(b"alice")  # the banned key tries to come back as validator
    assert chain.reject(chain.tx("v0", GovernancePropose(
        GovernanceAction("add_validator", new_key.public_key, 1)))) == "target_banned"


def test_block_size_bound_proposer_and_validator() -> None:
    """[BLOCK-SIZE.1] The proposer stops at max_block_bytes; a larger block is invalid."""
    import dataclasses as dc

    from chain.blocks import Block, BlockHeader, tx_root
    from chain.records import Params
    from chain.transition import build_block

    chain = Chain(params=Params(max_block_bytes=1_000))
    txs = [chain.tx("alice", Transfer(chain.addr("bob"), Amount(1))) for _ in range(20)]
    block, _, _ = build_block(chain.state, txs, chain.now + 1000, chain.addr("v0"))
    assert 0 < len(block.txs) < 20 and sum(len(t.wire) for t in block.txs) <= 1_000
    header: BlockHeader = dc.replace(block.header, tx_root=tx_root(txs))
    with pytest.raises(InvalidBlock) as e:
        apply_block(chain.state, Block(header, tuple(txs)))
    assert e.value.code == "block_too_large"
