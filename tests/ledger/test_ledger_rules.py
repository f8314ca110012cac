"""Ledger rules no other test tried: each test tries to break one rule and fails to."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from chain.blocks import Block, tx_root
from chain.errors import DecodeError, InvalidBlock
from chain.governance.bodies import GovernanceAction, GovernanceApprove, GovernancePropose
from chain.jobspec import VotingParams
from chain.mempool import Mempool
from chain.records import JobStatus, Outcome
from chain.storage import sqlite_url
from chain.train.bodies import PostJob
from chain.transactions import SignedTransaction, Transfer, sign_transaction
from chain.transition import SignatureCache, apply_block, build_block
from chain.types import Amount, TimeMs
from tests.ledger.harness import Chain, job_spec


def test_gov_expire_1_proposal_dropped_at_the_end_of_its_window() -> None:
    """[GOV-EXPIRE.1] At created + window the proposal is gone; a late approval cannot revive it.

    Sent alone (no tick) at the deadline the rule itself refuses it (proposal_expired);
    in a block at that time the tick has already deleted it (unknown_proposal).
    """
    chain = Chain(validators=4)
    propose = chain.tx("v0", GovernancePropose(
        GovernanceAction("admit_member", chain.addr("mallory"))))
    chain.block(propose)
    deadline = chain.now + chain.state.params.governance_window_ms
    approve = chain.tx("v1", GovernanceApprove(propose.hash))
    assert chain.reject(approve, at=deadline) == "proposal_expired"
    chain.block(chain.tx("v1", GovernanceApprove(propose.hash)), at=deadline - 1)  # in time
    assert chain.state.proposal(propose.hash) is not None
    chain.block(at=deadline)
    assert chain.state.proposal(propose.hash) is None
    late = chain.tx("v2", GovernanceApprove(propose.hash))
    assert chain.reject(late, at=deadline + 1_000) == "unknown_proposal"
    assert not chain.state.is_member(chain.addr("mallory"))


def test_block_begin_1_windows_close_before_the_blocks_transactions() -> None:
    """[BLOCK-BEGIN.1] A reveal in the block after its deadline meets a forfeited turn.

    The tick runs first, so the reveal finds the job already past REVEAL (the
    turn forfeited, the bounty refunded), not an open reveal phase.
    """
    chain = Chain()
    post = chain.tx("submitter", PostJob(job_spec()))
    chain.block(post)
    chain.block(chain.claim("alice", post.hash, 0.2))
    chain.block(at=chain.job(post.hash).spec.expiry_ms)
    deadline = chain.job(post.hash).phase_deadline_ms
    reveal = chain.reveal("alice", post.hash)
    block, _, dropped = build_block(chain.state, [reveal], deadline, chain.addr("v0"))
    assert [e.code for _, e in dropped] == ["not_in_reveal_phase"]
    output = apply_block(chain.state, block)
    job = output.overlay.job(post.hash)
    assert job is not None and job.status == JobStatus.REFUNDED
    assert job.verdicts[-1].outcome == Outcome.FORFEIT


def test_tx_sig_cache_1_mempool_verifies_once_and_the_block_does_not_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """[TX-SIG-CACHE.1] A signature checked at admission is not checked again in the block;
    one the node has not seen is checked, and a bad one still fails the block."""
    chain = Chain()
    cache = SignatureCache()
    pool = Mempool(chain.state, cache)
    tx = sign_transaction(chain.keys["alice"], "test-chain", 0,
                          Transfer(chain.addr("bob"), Amount(1)))
    assert pool.add(tx, chain.now).accepted
    assert tx.hash in cache
    checked: list[bytes] = []
    original = SignedTransaction.signature_valid

    def counting(self: SignedTransaction, chain_id: str) -> bool:
        checked.append(self.hash)
        return original(self, chain_id)

    monkeypatch.setattr(SignedTransaction, "signature_valid", counting)
    unseen = sign_transaction(chain.keys["bob"], "test-chain", 0,
                              Transfer(chain.addr("carol"), Amount(1)))
    block, _, _ = build_block(chain.state, [tx, unseen], TimeMs(chain.now + 1_000),
                              chain.addr("v0"), cache)  # the proposer checks the unseen one
    checked.clear()
    apply_block(chain.state, block, cache)
    assert checked == []  # both seen: tx at admission, unseen while building
    fresh = SignatureCache()
    apply_block(chain.state, block, fresh)
    assert checked == [tx.hash, unseen.hash]  # a node that saw neither checks both
    forged = SignedTransaction.create(Transfer(chain.addr("bob"), Amount(2)), tx.sender_pubkey,
                                      0, tx.signature)
    header = dataclasses.replace(block.header, tx_root=tx_root([forged]))
    with pytest.raises(InvalidBlock) as raised:
        apply_block(chain.state, Block(header, (forged,)), SignatureCache())
    assert raised.value.code == "invalid_transaction"


def test_tx_sig_cache_1_a_committed_transaction_is_forgotten(tmp_path: Path) -> None:
    """[TX-SIG-CACHE.1] Ledger.apply forgets the ids of the block's transactions (their
    nonces are spent) and keeps what is still pending: the memory does not grow with every
    transaction a node ever saw. A committed transaction sent again is checked again and
    refused for its nonce, as before."""
    chain = Chain(url=sqlite_url(tmp_path))
    assert chain.ledger is not None
    cache = chain.ledger.signatures
    pool = Mempool(chain.state, cache)
    first = sign_transaction(chain.keys["alice"], "test-chain", 0,
                             Transfer(chain.addr("bob"), Amount(1)))
    pending = sign_transaction(chain.keys["alice"], "test-chain", 1,
                               Transfer(chain.addr("bob"), Amount(1)))
    assert pool.add(first, chain.now).accepted and pool.add(pending, chain.now).accepted
    assert first.hash in cache and pending.hash in cache
    block, _, _ = build_block(chain.state, [first], TimeMs(chain.now + 1_000),
                              chain.addr("v0"), cache)
    chain.ledger.apply(block)
    assert first.hash not in cache and pending.hash in cache and len(cache) == 1
    again = Mempool(chain.state, cache).add(first, chain.now)
    assert not again.accepted and again.code == "bad_nonce", again
    chain.ledger.close()


@pytest.mark.parametrize(("index", "value"), [
    (0, 0), (1, 24 * 3600 * 1000 + 1), (3, 0), (3, 1001), (4, 499), (5, -1), (6, 0), (6, 17),
])
def test_job_vote_params_1_decode_bounds(index: int, value: int) -> None:
    """[JOB-VOTE-PARAMS.1] A voting part outside its decode bounds is a bad_field."""
    wire = VotingParams(1000, 1000, 1000, 667, 667, Amount(3), 2).to_wire()
    wire[index] = value
    with pytest.raises(DecodeError) as raised:
        VotingParams.from_wire(wire)
    assert raised.value.code == "bad_field"


def test_job_vote_params_1_protocol_bounds_apply_at_posting() -> None:
    """[JOB-VOTE-PARAMS.1] Decodable but below the protocol's minimum: refused at post."""
    chain = Chain()
    assert chain.reject(chain.tx("alice", PostJob(job_spec(supermajority=600)))) \
        == "supermajority_too_low"
