"""LedgerNode behaviours on real sockets in one process: rebroadcasts reach late peers,
local submissions are bounded."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import client.node.ledger_node as node_module
from chain.keyfile import read_key_file
from chain.mempool import Admission
from chain.transactions import Transfer, sign_transaction
from chain.types import Amount
from client.devnet.network import create_network
from client.node.config import NodeConfig
from client.node.ledger_node import LedgerNode
from tests.framework.ports import free_base_port
from tests.framework.wait import wait_until_async


async def test_validator_starting_late_still_gets_the_votes_it_missed(tmp_path: Path) -> None:
    """[NODE-CONS.1] Two validators (both needed for a quorum) started 300 ms apart: the
    first one's votes of height 1 were gossiped before the second connected, so only a
    rebroadcast that gossip does not de-duplicate lets height 1 be decided."""
    layout = create_network(tmp_path, validators=2, workers=0, base_port=free_base_port(2),
                            consensus={"commit_ms": 50})
    first = LedgerNode(NodeConfig.load(layout.nodes[0].config))
    second = LedgerNode(NodeConfig.load(layout.nodes[1].config))
    await first.start()
    try:
        await asyncio.sleep(0.3)
        await second.start()
        try:
            await wait_until_async(lambda: min(first.height, second.height) >= 3, timeout=20)
        finally:
            await second.stop()
    finally:
        await first.stop()


async def test_local_submissions_are_refused_past_the_local_limit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """[NODE-MEMPOOL.2] Past the local limit a client gets 'mempool_full' (and retries)."""
    monkeypatch.setattr(node_module, "LOCAL_SUBMIT_LIMIT", 2)
    layout = create_network(tmp_path, validators=1, workers=0, base_port=free_base_port(1),
                            users={"alice": 100, "bob": 0},
                            consensus={"commit_ms": 60_000, "propose_ms": 60_000})
    alice = next(u for u in layout.users if u.name == "alice")
    key = read_key_file(alice.key_file, alice.passphrase_file.read_text().strip())
    bob = next(u for u in layout.users if u.name == "bob")
    node = LedgerNode(NodeConfig.load(layout.nodes[0].config))
    await node.start()
    try:
        await wait_until_async(lambda: node.height >= 1, timeout=10)
        from chain.crypto import address_from_text

        txs = [sign_transaction(key, layout.chain_id, n, Transfer(address_from_text(bob.address),
                                                                  Amount(1)))
               for n in range(3)]
        results = [node.submit(tx) for tx in txs]
        assert [r.status for r in results[:2]] == [Admission.ACCEPTED] * 2
        assert (results[2].status, results[2].code) == (Admission.FULL, "mempool_full")
        assert node.submit(txs[0]).status == Admission.DUPLICATE  # known ones still answer
    finally:
        await node.stop()
