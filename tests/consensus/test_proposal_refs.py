"""[CONS-MSG.3] (EXPERIMENT) A proposal sent by reference: its wire form, and the driver
rebuilding it from the mempool before the core sees it, on the simulator's real nodes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chain.blocks import Block, BlockHeader, tx_root
from chain.consensus.codec import decode_message, encode_message
from chain.consensus.errors import InvalidMessage
from chain.consensus.messages import SHORT_ID_LEN, Proposal, ProposalRefs, sign_proposal
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


@pytest.mark.parametrize("short", [False, True], ids=["hashes", "short-ids"])
def test_cons_msg_3_a_proposal_by_reference_reaches_the_core_whole(short: bool) -> None:
    """By hashes [CONS-MSG.3] or by short ids [CONS-MSG.4]: rebuilt from the pool."""
    proposer, receiver, refs = _booted_with_txs()
    core = receiver.core
    assert core is not None and 0 not in core.first_proposal
    sent, other = (refs.to_short(), refs) if short else (refs, refs.to_short())
    assert receiver.on_gossip(encode_message(sent), proposer.key.address) is Verdict.ACCEPT
    receiver.drain()
    assert core.first_proposal.get(0) == refs.block_hash
    assert receiver.stats["refs:expanded"] == 1
    # the same proposal again, in either form: already held
    assert receiver.on_gossip(encode_message(other), proposer.key.address) is Verdict.IGNORE


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


@pytest.mark.parametrize("short", [False, True], ids=["hashes", "short-ids"])
def test_node_cons_4_the_proposer_sends_by_reference_once_then_in_full(short: bool) -> None:
    """[NODE-CONS.4] The first copy by reference (when every peer reads them; by short ids
    [CONS-MSG.4] when every peer reads those), every repeat in full; a node that may not
    send them sends only full proposals."""
    proposer, _, refs = _booted()
    assert proposer.core is not None
    full = proposer.core.proposals[0][proposer.core.first_proposal[0]]
    sent: list[bytes] = []
    proposer.publish = sent.append
    proposer.compact = lambda: True
    proposer.short_ids = lambda: short
    proposer._known.clear()
    proposer._send(full)
    proposer._send(full)
    assert [type(decode_message(d)).__name__ for d in sent] == ["ProposalRefs", "Proposal"]
    assert decode_message(sent[0]) == (refs.to_short() if short else refs)
    _, other, _ = _booted()
    assert other.compact() is False  # the driver's default: full proposals only
    assert other.short_ids() is False


def _node_with_peers(*peer_topics: tuple[str, ...]) -> object:
    """A stand-in for a ``LedgerNode`` whose peers announced these topics."""
    from types import SimpleNamespace

    peers = {i: SimpleNamespace(identity=SimpleNamespace(topics=t))
             for i, t in enumerate(peer_topics)}
    return SimpleNamespace(p2p=SimpleNamespace(peers=peers))


def test_node_cons_4_refs_only_while_every_peer_announced_it() -> None:
    """[NODE-CONS.4] A node announces ``consensus-refs`` and sends by reference only
    while every connected peer announced it too."""
    from client.node.ledger_node import REFS_CAPABILITY, LedgerNode

    node = _node_with_peers
    reads = ("tx", "consensus", REFS_CAPABILITY)
    assert LedgerNode._peers_read_refs(node(reads, reads))  # type: ignore[arg-type]
    assert not LedgerNode._peers_read_refs(node(reads, ("tx", "consensus")))  # type: ignore[arg-type]


# -- [CONS-MSG.4] short ids ----------------------------------------------------------------


def _booted_with_txs(count: int = 3) -> tuple[ConsensusDriver, ConsensusDriver, ProposalRefs]:
    """As ``_booted``, with ``count`` transfers pending in both nodes' pools and a round-0
    proposal of a block that carries them."""
    from tests.consensus.sim import CHAIN_ID

    proposer, receiver, first = _booted()
    key = proposer.key
    txs = [sign_transaction(key, CHAIN_ID, n, Transfer(Address(b"\x07" * 20), Amount(5 + n)))
           for n in range(count)]
    for driver in (proposer, receiver):
        for tx in txs:
            assert driver.app.mempool.add(tx, first.time_ms).accepted
    block_hash, block = proposer.app.propose(first.height, first.round, first.time_ms)
    proposal = sign_proposal(key, CHAIN_ID, first.height, first.round, first.pol_round,
                             block_hash, first.time_ms, block)
    refs = proposer.app.compact(proposal)
    assert refs is not None and set(refs.refs) == {tx.hash for tx in txs}
    return proposer, receiver, refs


def test_cons_msg_4_roundtrip_and_malformed_ids() -> None:
    _, _, refs = _booted_with_txs()
    short = refs.to_short()
    assert all(len(r) == SHORT_ID_LEN for r in short.refs) and short.short
    data = encode_message(short)
    assert decode_message(data) == short
    assert len(data) < len(encode_message(refs))
    wire = short.to_wire()
    assert wire[0] == "proposal-ids" and isinstance(wire[7], bytes)
    for broken in (wire[:9], [*wire[:7], wire[7] + b"\x01", *wire[8:]],
                   [*wire[:7], [wire[7]], *wire[8:]], [*wire[:6], "head", *wire[7:]]):
        with pytest.raises(InvalidMessage):
            decode_message(encode(broken))


def test_cons_msg_4_shared_prefixes_are_told_apart_by_the_root() -> None:
    """Two known transactions whose hashes share the first 8 bytes: the combination whose
    Merkle root is the head's is taken; an id naming nothing known waits; too many
    combinations, or none that fits, wait as well (the full repeat still counts)."""
    proposer, receiver, refs = _booted_with_txs()
    app = receiver.app
    hashes = list(refs.refs)
    real = app.mempool.known_by_prefix(SHORT_ID_LEN)
    twin = hashes[0][:SHORT_ID_LEN] + b"\xee" * (32 - SHORT_ID_LEN)

    def with_twins(n_twins: int) -> dict[bytes, list[bytes]]:
        index = {k: list(v) for k, v in real.items()}
        index[hashes[0][:SHORT_ID_LEN]].append(twin)
        for i in range(1, n_twins):
            index[hashes[i % len(hashes)][:SHORT_ID_LEN]].append(sha256(bytes([i])))
        return index

    short = refs.to_short()
    app.mempool.known_by_prefix = lambda n: with_twins(1)  # type: ignore[method-assign]
    assert app._resolve_short_ids(short) == tuple(hashes)
    app.mempool.known_by_prefix = lambda n: with_twins(4)  # type: ignore[method-assign]
    assert app._resolve_short_ids(short) is None  # 2**4 > SHORT_ID_TRIES combinations
    app.mempool.known_by_prefix = lambda n: {}  # type: ignore[method-assign]
    assert app._resolve_short_ids(short) is None  # nothing known: wait
    wrong = {k: [twin] if k == hashes[0][:SHORT_ID_LEN] else v for k, v in real.items()}
    app.mempool.known_by_prefix = lambda n: wrong  # type: ignore[method-assign]
    assert app._resolve_short_ids(short) is None  # only a stranger with that prefix


def test_node_cons_4_short_ids_only_while_every_peer_announced_them() -> None:
    from client.node.ledger_node import IDS_CAPABILITY, REFS_CAPABILITY, LedgerNode

    node = _node_with_peers
    both = ("tx", "consensus", REFS_CAPABILITY, IDS_CAPABILITY)
    refs_only = ("tx", "consensus", REFS_CAPABILITY)
    assert LedgerNode._peers_read_ids(node(both, both))  # type: ignore[arg-type]
    assert not LedgerNode._peers_read_ids(node(both, refs_only))  # type: ignore[arg-type]
    assert LedgerNode._peers_read_refs(node(both, refs_only))  # type: ignore[arg-type]


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
            "proposal_ids": encode_message(refs.to_short()).hex(),
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
    ids = decode_message(bytes.fromhex(case["proposal_ids"]))  # [CONS-MSG.4]
    assert isinstance(ids, ProposalRefs) and ids.short
    assert ids.refs == tuple(h[:SHORT_ID_LEN] for h in refs.refs)
    assert ids.shell() == refs.shell()


if __name__ == "__main__":  # regenerate: python -m tests.consensus.test_proposal_refs
    VECTORS.write_text(json.dumps({
        "about": "[CONS-MSG.3] a proposal by reference: the full proposal, its refs form "
                 "and [CONS-MSG.4] its short-ids form (hex of the canonical msgpack); "
                 "rebuilding the block from the two transactions gives the full proposal's "
                 "bytes",
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
