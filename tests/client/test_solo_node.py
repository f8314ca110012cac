"""The solo node commits real blocks: transfers land, time passes, listeners hear every block."""

from __future__ import annotations

from pathlib import Path

from chain.transactions import Transfer, sign_transaction
from chain.types import Amount
from tests.framework.solo import SoloNode
from tests.ledger.harness import make_genesis


async def test_solo_node_commits_transfers_and_tells_listeners(tmp_path: Path) -> None:
    genesis, keys = make_genesis(validators=1)
    seen: list[int] = []
    async with SoloNode(genesis, keys["v0"], tmp_path, block_interval=0.05) as node:
        node.add_block_listener(lambda b: seen.append(b.block.header.height))
        alice, bob = keys["alice"], keys["bob"]
        tx = sign_transaction(alice, genesis.chain_id, node.next_nonce(alice.address),
                              Transfer(bob.address, Amount(7)))
        assert node.submit(tx).accepted
        block = await node.commit_block()
        assert tx in block.txs and node.tx_location(tx.hash) == (block.header.height, 0)
        assert node.state.account(bob.address).balance == 1_007
        assert node.status().height == node.height == block.header.height
    assert seen and seen == sorted(seen)
