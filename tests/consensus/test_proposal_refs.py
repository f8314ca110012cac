"""[CONS-MSG.3] (EXPERIMENT) A proposal sent by reference: its wire form, and the driver
rebuilding it from the mempool before the core sees it, on the simulator's real nodes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chain.blocks import Block, BlockHeader, tx_root
from chain.consensus.codec import decode_message, encode_message
from chain.consensus.errors import InvalidMessage
from chain.consensus.messages import Proposal, ProposalRefs, sign_proposal
from chain.crypto import PrivateKey, sha256
from chain.encoding import decode, encode
from chain.transactions import Transfer, sign_transaction
from chain.types import Address, Amount, Hash32, Height, Round
from client.node.consensus_driver import ConsensusDriver
from p2p.gossip_core import Verdict
from tests.consensus.helpers import CHAIN, KEYS, T0
from tests.consensus.sim import Scenario, SimNetwork


def _booted() -> tuple[ConsensusDriver, ConsensusDriver, ProposalRefs]:
    """A proposer that proposed at height 1 round 0, another validator, and the
    proposal by reference."""
    net = SimNetwork(Scenario(seed=13, n=4, fast=False))
    for node in net.nodes:
        net._boot(node)
    drivers = [node.driver for node in net.nodes if node.driver is not None]
    proposer = next(d for d in drivers if d.core is not None and 0 in d.core.first_proposal
                    and d.core.me is not None
                    and d.core.vset.proposer(d.core.height, d.core.round) == d.core.me)
    assert proposer.core is not None
    proposal = proposer.core.proposals[0][proposer.core.first_proposal[0]]
    refs = proposer.app.compact(proposal)
    assert refs is not None
    receiver = next(d for d in drivers if d is not proposer)
    return proposer, receiver, refs


def test_cons_msg_3_roundtrip_and_malformed_refs() -> None:
    _, _, refs = _booted()
    data = encode_message(refs)
    assert decode_message(data) == refs
    wire = refs.to_wire()
    for broken in (wire[:9], [*wire[:7], [b"\x01" * 31], *wire[8:]],
                   [*wire[:3], 5, *wire[4:]], [*wire[:6], "head", *wire[7:]]):
        with pytest.raises(InvalidMessage):
            decode_message(encode(broken))


def test_cons_msg_3_a_proposal_by_reference_reaches_the_core_whole() -> None:
    proposer, receiver, refs = _booted()
    core = receiver.core
    assert core is not None and 0 not in core.first_proposal
    assert receiver.on_gossip(encode_message(refs), proposer.key.address) is Verdict.ACCEPT
    receiver.drain()
    assert core.first_proposal.get(0) == refs.block_hash
    assert receiver.stats["refs:expanded"] == 1
    # the same proposal again, in full or by reference: already held
    assert receiver.on_gossip(encode_message(refs), proposer.key.address) is Verdict.IGNORE


def test_cons_msg_3_a_head_that_does_not_match_its_hash_or_hashes_is_rejected() -> None:
    proposer, receiver, refs = _booted()
    other_head = ProposalRefs(refs.height, refs.round, refs.pol_round, refs.block_hash,
                              refs.time_ms, encode(["not", "a", "header"]), refs.refs,
                              refs.proposer, refs.signature)
    extra_tx = ProposalRefs(refs.height, refs.round, refs.pol_round, refs.block_hash,
                            refs.time_ms, refs.head, (*refs.refs, sha256(b"tx")),
                            refs.proposer, refs.signature)
    for bad in (other_head, extra_tx):
        assert receiver.on_gossip(encode_message(bad), proposer.key.address) is Verdict.REJECT
    assert receiver.core is not None and 0 not in receiver.core.first_proposal


def test_cons_msg_3_a_missing_transaction_is_waited_for_then_the_core_gets_the_block(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """While a named transaction is not in the mempool the message is held (and
    forwarded: it is signed and consistent); the retry timer expands it once it is."""
    proposer, receiver, refs = _booted()
    expand = receiver.app.expand
    missing = [True]
    monkeypatch.setattr(receiver.app, "expand",
                        lambda r: None if missing[0] else expand(r))
    assert receiver.on_gossip(encode_message(refs), proposer.key.address) is Verdict.ACCEPT
    assert receiver.stats["refs:waiting"] == 1
    receiver._retry_refs()
    assert receiver.core is not None and 0 not in receiver.core.first_proposal
    missing[0] = False
    receiver._retry_refs()
    receiver.drain()
    assert receiver.core.first_proposal.get(0) == refs.block_hash
    assert receiver.stats["refs:expanded_late"] == 1


def test_cons_msg_3_a_proposal_never_completed_is_dropped_and_the_full_one_still_counts(
        monkeypatch: pytest.MonkeyPatch) -> None:
    proposer, receiver, refs = _booted()
    monkeypatch.setattr(receiver.app, "expand", lambda r: None)
    assert receiver.on_gossip(encode_message(refs), proposer.key.address) is Verdict.ACCEPT
    monkeypatch.setattr(receiver.clock, "monotonic", lambda: 10**9)
    receiver._retry_refs()
    assert receiver.stats["refs:gave_up"] == 1
    assert proposer.core is not None
    full = proposer.core.proposals[0][proposer.core.first_proposal[0]]
    assert receiver.on_gossip(encode_message(full), proposer.key.address) is Verdict.ACCEPT
    receiver.drain()
    assert receiver.core is not None and receiver.core.first_proposal.get(0) == refs.block_hash


def test_node_cons_4_the_proposer_sends_by_reference_once_then_in_full() -> None:
    """[NODE-CONS.4] The first copy by reference (when every peer reads them), every
    repeat in full; a node that may not send them sends only full proposals."""
    proposer, _, refs = _booted()
    assert proposer.core is not None
    full = proposer.core.proposals[0][proposer.core.first_proposal[0]]
    sent: list[bytes] = []
    proposer.publish = sent.append
    proposer.compact = lambda: True
    proposer._known.clear()
    proposer._send(full)
    proposer._send(full)
    assert [type(decode_message(d)).__name__ for d in sent] == ["ProposalRefs", "Proposal"]
    assert decode_message(sent[0]) == refs
    _, other, _ = _booted()
    assert other.compact() is False  # the driver's default: full proposals only


def test_node_cons_4_refs_only_while_every_peer_announced_it() -> None:
    """[NODE-CONS.4] A node announces ``consensus-refs`` and sends by reference only
    while every connected peer announced it too."""
    from types import SimpleNamespace

    from client.node.ledger_node import REFS_CAPABILITY, LedgerNode

    def node(*peer_topics: tuple[str, ...]) -> object:
        peers = {i: SimpleNamespace(identity=SimpleNamespace(topics=t))
                 for i, t in enumerate(peer_topics)}
        return SimpleNamespace(p2p=SimpleNamespace(peers=peers))
    reads = ("tx", "consensus", REFS_CAPABILITY)
    assert LedgerNode._peers_read_refs(node(reads, reads))  # type: ignore[arg-type]
    assert not LedgerNode._peers_read_refs(node(reads, ("tx", "consensus")))  # type: ignore[arg-type]


# -- vectors: protocol_spec/vectors/proposal_refs.json ---------------------------------

VECTORS = Path(__file__).resolve().parents[2] / "protocol_spec" / "vectors" / "proposal_refs.json"


def vector_case() -> dict[str, str]:
    """A block of two transfers at height 1, its proposal in full and by reference, from
    fixed keys (signatures are deterministic, RFC 6979)."""
    sender = PrivateKey.from_seed(b"refs-vector-sender")
    txs = [sign_transaction(sender, CHAIN, n, Transfer(Address(b"\x02" * 20), 10 + n))
           for n in range(2)]
    proposer = KEYS[0]
    header = BlockHeader(CHAIN, Height(1), T0, Hash32(b"\x00" * 32), proposer.address,
                         tx_root(txs), Hash32(b"\x11" * 32), Hash32(b"\x00" * 32))
    block = Block(header, tuple(txs))
    full = sign_proposal(proposer, CHAIN, Height(1), Round(0), Round(-1), block.hash, T0,
                         block.encode())
    refs = ProposalRefs(full.height, full.round, full.pol_round, full.block_hash,
                        full.time_ms, header.encode(), tuple(tx.hash for tx in txs),
                        full.proposer, full.signature)
    return {"proposal": encode_message(full).hex(), "proposal_refs": encode_message(refs).hex(),
            "block_hash": block.hash.hex()}


def test_cons_msg_3_vectors() -> None:
    """The stored bytes are what this code makes, and the refs message rebuilds, from the
    two transactions, exactly the full proposal's bytes."""
    stored = json.loads(VECTORS.read_text())
    case = vector_case()
    assert {k: stored["cases"][0][k] for k in case} == case
    refs = decode_message(bytes.fromhex(case["proposal_refs"]))
    full = decode_message(bytes.fromhex(case["proposal"]))
    assert isinstance(refs, ProposalRefs) and isinstance(full, Proposal)
    block = Block.decode(full.block)
    pool = {tx.hash: tx for tx in block.txs}
    rebuilt = refs.with_block(encode([decode(refs.head), [pool[h].wire for h in refs.refs]]))
    assert encode_message(rebuilt) == bytes.fromhex(case["proposal"])


if __name__ == "__main__":  # regenerate: python -m tests.consensus.test_proposal_refs
    VECTORS.write_text(json.dumps({
        "about": "[CONS-MSG.3] a proposal by reference: the full proposal and its refs form "
                 "(hex of the canonical msgpack); rebuilding the block from the two "
                 "transactions gives the full proposal's bytes",
        "cases": [vector_case()]}, indent=1) + "\n")


def test_mempool_hold_1_a_proposal_naming_a_transaction_the_pool_refused_is_rebuilt() -> None:
    """[MEMPOOL-HOLD.1] The receiver's pool is full and refuses a transfer the proposer
    had room for; the proposal naming it is still rebuilt here, with its bytes."""
    from dataclasses import replace

    from chain.mempool import MempoolLimits
    from tests.consensus.sim import CHAIN_ID

    _, receiver, refs = _booted()
    pool = receiver.app.mempool
    tx = sign_transaction(KEYS[1], CHAIN_ID, 0, Transfer(Address(bytes(20)), Amount(1)))
    naming = replace(refs, refs=(tx.hash,))
    assert receiver.app.expand(naming) is None
    pool.limits = MempoolLimits(max_txs=0)
    assert pool.add(tx, T0).code == "mempool_full"
    rebuilt = receiver.app.expand(naming)
    assert rebuilt is not None and tx.wire in decode(rebuilt.block)[1]
