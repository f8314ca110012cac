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


async def test_node_mempool_1_a_full_mempool_refuses_gossip_and_answers_503(
        tmp_path: Path) -> None:
    """[NODE-MEMPOOL.1] The node's pool holds 8,000 transactions (2,000 per sender): the
    next one from a peer is not admitted (IGNORE, the peer is not charged) and a client
    gets HTTP 503 ``mempool_full``. Consensus is paused so nothing leaves the pool."""
    senders = [f"s{i}" for i in range(5)]
    layout = create_network(tmp_path, validators=1, workers=0, base_port=free_base_port(1),
                            users={**{s: 10_000 for s in senders}, "bob": 0},
                            consensus={"commit_ms": 600_000, "propose_ms": 600_000})
    keys = {u.name: read_key_file(u.key_file, u.passphrase_file.read_text().strip())
            for u in layout.users}
    from chain.crypto import address_from_text
    from chain.encoding import encode
    from client.api.http_client import ApiClient, ApiError
    from p2p.gossip_core import Verdict

    bob = address_from_text(next(u.address for u in layout.users if u.name == "bob"))
    node = LedgerNode(NodeConfig.load(layout.nodes[0].config))
    await node.start()
    try:
        assert node.mempool.limits == node_module.MEMPOOL_LIMITS
        assert (node_module.MEMPOOL_LIMITS.max_txs, node_module.MEMPOOL_LIMITS.max_bytes,
                node_module.MEMPOOL_LIMITS.max_per_sender) == (8_000, 8 * 1024 * 1024, 2_000)
        await wait_until_async(lambda: node.height >= 1, timeout=10)
        height = node.height

        def transfers(sender: str, count: int) -> list[bytes]:
            return [sign_transaction(keys[sender], layout.chain_id, n,
                                     Transfer(bob, Amount(1))).wire for n in range(count)]

        for sender in senders[:4]:  # 4 × 2,000 = 8,000 through the gossip path
            wires = transfers(sender, 2_000)
            for start in range(0, len(wires), 400):
                batch = encode(wires[start:start + 400])
                assert node._on_tx_gossip(batch, None) == Verdict.ACCEPT
        assert len(node.mempool) == 8_000 and node.height == height
        extra = transfers(senders[4], 1)
        assert node._on_tx_gossip(encode(extra), None) == Verdict.IGNORE
        assert node.admissions["gossip", "mempool_full"] == 1
        client = ApiClient(f"http://{node.api_endpoint}")
        late = sign_transaction(keys[senders[4]], layout.chain_id, 0, Transfer(bob, Amount(2)))
        with pytest.raises(ApiError) as refused:
            await asyncio.to_thread(client.submit, late)
        assert (refused.value.status, refused.value.code) == (503, "mempool_full")
    finally:
        await node.stop()


async def test_node_cons_4_validators_propose_by_reference_and_commit_every_transfer(
        tmp_path: Path) -> None:
    """[NODE-CONS.4] Three validators on real sockets announce ``consensus-refs``, so
    each sends its proposals' first copies by reference; the others rebuild them from
    their mempools (transfers submitted to node 0 reach the rest by gossip first) and
    every transfer is committed on every node."""
    layout = create_network(tmp_path, validators=3, workers=0, base_port=free_base_port(3),
                            users={"alice": 1_000, "bob": 0}, consensus={"commit_ms": 100})
    alice = next(u for u in layout.users if u.name == "alice")
    key = read_key_file(alice.key_file, alice.passphrase_file.read_text().strip())
    bob = next(u for u in layout.users if u.name == "bob")
    nodes = [LedgerNode(NodeConfig.load(n.config)) for n in layout.nodes]
    for n in nodes:
        await n.start()
    try:
        await wait_until_async(lambda: min(n.height for n in nodes) >= 1, timeout=20)
        from chain.crypto import address_from_text

        to = address_from_text(bob.address)
        for nonce in range(30):
            tx = sign_transaction(key, layout.chain_id, nonce, Transfer(to, Amount(1)))
            result = nodes[0].submit(tx)
            assert result.status == Admission.ACCEPTED, result
            await asyncio.sleep(0.02)
        await wait_until_async(
            lambda: all(n.ledger.state.account(to).balance == 30 for n in nodes), timeout=30)
        expanded = sum(n.driver.stats["refs:expanded"] + n.driver.stats["refs:expanded_late"]
                       for n in nodes)
        assert expanded >= 1, [dict(n.driver.stats) for n in nodes]
        assert all(n.driver.stats["gossip:reject"] == 0 for n in nodes)
    finally:
        for n in nodes:
            await n.stop()


async def test_api_batch_1_parses_only_what_the_submission_window_admits(
        tmp_path: Path) -> None:
    """[API-BATCH.1] [NODE-MEMPOOL.2] A batch larger than the room the node's submission
    window leaves is decoded and signature-checked only up to that room; the rest is
    answered 'full' from its hashes (pending ones as duplicates). A load generator re-sends
    its batch tail to a busy node many times, and each time paid the node every signature.
    Consensus is paused so nothing leaves the pool."""
    import aiohttp

    from chain.crypto import address_from_text
    from chain.encoding import encode
    from chain.transactions import SignedTransaction

    layout = create_network(tmp_path, validators=1, workers=0, base_port=free_base_port(1),
                            users={"alice": 100, "bob": 0},
                            consensus={"commit_ms": 600_000, "propose_ms": 600_000})
    alice = next(u for u in layout.users if u.name == "alice")
    key = read_key_file(alice.key_file, alice.passphrase_file.read_text().strip())
    bob = address_from_text(next(u.address for u in layout.users if u.name == "bob"))
    txs = [sign_transaction(key, layout.chain_id, n, Transfer(bob, Amount(1))) for n in range(6)]
    node = LedgerNode(NodeConfig.load(layout.nodes[0].config))
    await node.start()
    try:
        await wait_until_async(lambda: node.height >= 1, timeout=10)
        checked: list[int] = []
        prefill = node.prefill_signatures

        async def counting_prefill(batch: list[SignedTransaction]) -> None:
            checked.append(len(batch))
            await prefill(batch)

        node.prefill_signatures = counting_prefill  # type: ignore[method-assign]
        url = f"http://{node.api_endpoint}/api/v1/txs/batch"

        async def post(wires: list[bytes]) -> dict[str, object]:
            async with aiohttp.ClientSession() as s, s.post(
                    url, data=encode(wires),
                    headers={"Content-Type": "application/octet-stream"}) as r:
                assert r.status == 200, await r.text()
                answer: dict[str, object] = await r.json()
                return answer

        node.submit_window.size = 2
        answer = await post([tx.wire for tx in txs[:5]])
        assert (answer["accepted"], answer["duplicates"]) == (2, 0)
        assert [(r["index"], r["status"], r["code"]) for r in answer["rejected"]] == [  # type: ignore[attr-defined, index]
            (2, "full", "mempool_full"), (3, "full", "mempool_full"),
            (4, "full", "mempool_full")]
        assert checked == [2] and node.submit_room() == 0

        node.submit_window.size = 4  # room for two more; the re-sent head is pending
        answer = await post([tx.wire for tx in txs])
        assert (answer["accepted"], answer["duplicates"]) == (2, 2)
        assert [r["index"] for r in answer["rejected"]] == [4, 5]  # type: ignore[attr-defined, index]
        assert checked == [2, 2]
        assert [tx.hash for tx in node.mempool.reap(10)] == [tx.hash for tx in txs[:4]]
    finally:
        await node.stop()
