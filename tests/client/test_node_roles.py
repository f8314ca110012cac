"""Node roles and the consensus WAL on real LedgerNodes in this process (loopback sockets,
SQLite files, the WAL file): what a full node does, what a validator writes before it speaks."""

from __future__ import annotations

import dataclasses
import os
from contextlib import AsyncExitStack
from pathlib import Path

from chain.consensus.wal import WriteAheadLog
from chain.crypto import PrivateKey
from chain.keyfile import read_key_file
from chain.transactions import Transfer, sign_transaction
from chain.types import Address, Amount
from client.devnet.network import NetworkLayout, create_network
from client.node.config import NodeConfig
from client.node.consensus_driver import CONSENSUS_TOPIC
from client.node.ledger_node import LedgerNode
from p2p.config import P2PConfig
from p2p.gossip import Gossip
from p2p.gossip_core import Verdict
from p2p.node import Node
from tests.framework.wait import wait_until_async

FAST = {"propose_ms": 300, "prevote_ms": 150, "precommit_ms": 150, "commit_ms": 50}


def network(tmp_path: Path) -> NetworkLayout:
    return create_network(tmp_path / "net", validators=1, workers=0,
                          users={"alice": 1_000, "bob": 0, "carol": 0, "dave": 0},
                          consensus=FAST)


def user_key(layout: NetworkLayout, name: str) -> PrivateKey:
    user = next(u for u in layout.users if u.name == name)
    return read_key_file(user.key_file, user.passphrase_file.read_text().strip())


def node(layout: NetworkLayout, *, data_dir: Path | None = None,
         roles: tuple[str, ...] | None = None, key: PrivateKey | None = None,
         bootstrap: tuple[str, ...] = ()) -> LedgerNode:
    """Node 0's config on OS-chosen ports, dialling only ``bootstrap``, learning no peers."""
    config = NodeConfig.load(layout.nodes[0].config)
    config = dataclasses.replace(config, p2p_port=0, api_port=0, bootstrap=bootstrap,
                                 peer_exchange=False)
    if data_dir is not None:
        config = dataclasses.replace(config, data_dir=data_dir)
    if roles is not None:
        config = dataclasses.replace(config, roles=roles)
    return LedgerNode(config, key=key)


def wal_records(data_dir: Path) -> list[object]:
    wal, history = WriteAheadLog.open(data_dir / "consensus.wal")
    wal.close()
    return list(history)


async def test_node_role_1_full_node_stores_follows_serves_sync_and_blobs_and_admits(
        tmp_path: Path) -> None:
    """A node with role ``full`` (a member key, no seat): stores the validator's blocks as
    they come; admits a transaction submitted to it, which reaches the validator by the
    ``tx`` topic and is committed; is the only peer of a third node, which syncs the whole
    chain and fetches a blob from it; and signs nothing (its WAL stays empty)."""
    layout = network(tmp_path)
    async with AsyncExitStack() as stack:
        validator = node(layout)
        await validator.start()
        stack.push_async_callback(validator.stop)
        full = node(layout, data_dir=tmp_path / "full", roles=("full",),
                    key=user_key(layout, "bob"), bootstrap=(validator.p2p.endpoint,))
        await full.start()
        stack.push_async_callback(full.stop)
        await wait_until_async(lambda: full.height >= 3, timeout=20)
        for height in range(1, full.height + 1):
            ours, theirs = full.block(height), validator.block(height)
            assert ours is not None and theirs is not None and ours.hash == theirs.hash

        alice, bob = user_key(layout, "alice"), user_key(layout, "bob")
        tx = sign_transaction(alice, layout.chain_id, full.next_nonce(alice.address),
                              Transfer(bob.address, Amount(7)))
        assert full.submit(tx).accepted
        await wait_until_async(lambda: validator.tx_location(tx.hash) is not None, timeout=20)
        await wait_until_async(lambda: full.tx_location(tx.hash) is not None, timeout=20)
        assert full.ledger.state.account(bob.address).balance == 7

        payload = os.urandom(3 * 1024 * 1024 + 5)
        source = tmp_path / "model.bin"
        source.write_bytes(payload)
        blob = full.put_blob_file(source)
        late = node(layout, data_dir=tmp_path / "late", roles=("full",),
                    key=user_key(layout, "carol"), bootstrap=(full.p2p.endpoint,))
        await late.start()
        stack.push_async_callback(late.stop)
        target = validator.height
        await wait_until_async(lambda: late.height >= target, timeout=30)
        assert set(late.p2p.peers) == {full.key.address}, "its only peer is the full node"
        assert late.tx_location(tx.hash) == validator.tx_location(tx.hash)
        assert (await late.fetch_blob(blob)).read_bytes() == payload
    assert wal_records(tmp_path / "full") == []
    assert wal_records(tmp_path / "late") == []


async def test_node_wal_1_signed_messages_are_in_the_wal_before_peers_get_them(
        tmp_path: Path) -> None:
    """A member's observer node reads the validator's WAL file the moment each consensus
    message arrives by gossip: every one is already in the file (appended and written, not
    left in a buffer; the fsync itself is not observable here). Past height 64 the WAL is
    pruned (no record below 65 is left) while the validator goes on signing."""
    layout = network(tmp_path)
    data_dir = NodeConfig.load(layout.nodes[0].config).data_dir
    wal_path = data_dir / "consensus.wal"
    arrived: list[bool] = []
    async with AsyncExitStack() as stack:
        validator = node(layout)
        await validator.start()
        stack.push_async_callback(validator.stop)
        observer = Node(user_key(layout, "dave"), P2PConfig(  # serves no sync: never ban for it
            chain_id=layout.chain_id, bootstrap=(validator.p2p.endpoint,), ban_threshold=-1e9))
        await stack.enter_async_context(observer)
        gossip = Gossip(observer)

        def check(data: bytes, sender: Address | None) -> Verdict:
            arrived.append(data in wal_path.read_bytes())
            return Verdict.IGNORE

        gossip.subscribe(CONSENSUS_TOPIC, check)
        gossip.start()
        await wait_until_async(lambda: len(arrived) >= 30, timeout=30,
                               detail=lambda: (len(arrived), list(observer.peers),
                                               validator.height, dict(observer.stats)))
        assert all(arrived), f"{arrived.count(False)} of {len(arrived)} arrived before the WAL"
        await wait_until_async(lambda: validator.height >= 70, timeout=60)
    heights = [record.message.height for record in wal_records(data_dir)]  # type: ignore[attr-defined]
    assert heights and min(heights) >= 65 and max(heights) >= 70, (min(heights), max(heights))
