"""Eight node processes gossip a transaction; a late ninth syncs 1,000 blocks, then follows.

[WIRE-GOSSIP.5] every node receives each message; [WIRE-SYNC.5-7] catch-up and follow.
"""

from __future__ import annotations

import asyncio

from p2p_harness import ProcNode, key

from tests.framework.p2p_node import signed_tx

BLOCKS = 1000


async def test_wire_gossip_and_sync_eight_processes_then_a_late_ninth() -> None:
    nodes: list[ProcNode] = []
    try:
        producer = await ProcNode.spawn("n0", "--blocks", str(BLOCKS), "--produce-every", "0.3")
        nodes.append(producer)
        others = await asyncio.gather(
            *(
                ProcNode.spawn(f"n{i}", "--blocks", str(BLOCKS), "--bootstrap", producer.endpoint)
                for i in range(1, 8)
            )
        )
        nodes.extend(others)

        # A transaction submitted at one node reaches all eight, exactly once each.
        await asyncio.sleep(1.0)
        tx = signed_tx(key("alice"), b"pay bob 5").hex()
        await nodes[3].send(cmd="publish", topic="tx", data=tx)
        for node in nodes[:3] + nodes[4:]:
            await node.wait_event(lambda e: e.get("data") == tx, timeout=20)
        for node in nodes:
            assert sum(1 for e in node.events if e.get("data") == tx) <= 1

        # A late node with no blocks catches up from several peers, then follows.
        late = await ProcNode.spawn(
            "late", "--bootstrap", nodes[1].endpoint, "--bootstrap", nodes[2].endpoint
        )
        nodes.append(late)
        caught = await late.wait_event(lambda e: e["event"] == "caught_up", timeout=60)
        assert caught["height"] >= BLOCKS
        await late.wait_event(lambda e: e.get("height", 0) >= caught["height"] + 3, timeout=30)
        await nodes[5].wait_event(lambda e: e.get("height", 0) >= caught["height"] + 3, timeout=30)
    finally:
        codes = await asyncio.gather(*(n.stop() for n in nodes))
    assert codes == [0] * len(nodes)
