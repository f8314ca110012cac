"""Peer management on real sockets: exchange, limits, reconnect, gossip scoring, shutdown."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import aiohttp
from p2p_harness import CHAIN_ID, config, key, start_node
from p2p_hostile import handshake

from chain.crypto import PrivateKey
from p2p.config import P2PConfig
from p2p.gossip import Gossip
from p2p.gossip_core import Verdict
from p2p.node import Node
from p2p.sync import BlockSync
from tests.framework.hash_chain import HashChain
from tests.framework.wait import wait_until_async


async def test_wire_pex_2_peer_exchange_finds_nodes_not_in_config() -> None:
    async with AsyncExitStack() as stack:
        hub = await start_node(stack, "hub")
        a = await start_node(stack, "a", bootstrap=(hub.endpoint,))
        b = await start_node(stack, "b", bootstrap=(hub.endpoint,))
        await wait_until_async(lambda: len(hub.peers) == 2)
        await wait_until_async(lambda: b.address in a.peers or a.address in b.peers, timeout=20)


async def test_wire_pex_3_reconnects_after_the_peer_restarts() -> None:
    async with AsyncExitStack() as stack:
        b_key = key("b")
        b = Node(b_key, config())
        await b.start()
        port = b.listen_port
        a = await start_node(stack, "a", bootstrap=(b.endpoint,), backoff_base=0.1, backoff_max=0.5)
        await wait_until_async(lambda: b.address in a.peers)
        await b.stop()
        await wait_until_async(lambda: b.address not in a.peers)
        b2 = Node(b_key, config(port=port))
        await stack.enter_async_context(b2)
        await wait_until_async(lambda: b2.address in a.peers, timeout=20)


async def test_wire_peers_inbound_limit_is_enforced() -> None:
    async with AsyncExitStack() as stack:
        hub = await start_node(stack, "hub", max_inbound=1)
        await start_node(stack, "a", bootstrap=(hub.endpoint,))
        await wait_until_async(lambda: len(hub.peers) == 1)
        await start_node(stack, "b", bootstrap=(hub.endpoint,))
        await asyncio.sleep(1.0)
        assert len(hub.peers) == 1


async def test_wire_gossip_8_rejected_messages_stop_and_cost_the_sender() -> None:
    async with AsyncExitStack() as stack:
        nodes: list[Node] = []
        gossips: list[Gossip] = []
        delivered: dict[int, list[bytes]] = {0: [], 1: [], 2: []}
        for i in range(3):
            boot = (nodes[-1].endpoint,) if nodes else ()
            node = await start_node(stack, f"g{i}", bootstrap=boot)
            gossip = Gossip(node)

            def validate(data: bytes, sender: object, i: int = i) -> Verdict:
                if data.startswith(b"bad"):
                    return Verdict.REJECT
                delivered[i].append(data)
                return Verdict.ACCEPT

            gossip.subscribe("tx", validate)
            gossip.start()
            nodes.append(node)
            gossips.append(gossip)
        await wait_until_async(lambda: len(nodes[1].peers) == 2)
        # Node 0 publishes without validating; node 1 rejects, charges node 0, forwards nothing.
        gossips[0].publish("tx", b"bad message")
        gossips[0].publish("tx", b"good message")
        await wait_until_async(lambda: delivered[2] == [b"good message"])
        assert delivered[1] == [b"good message"]
        assert nodes[1].peers[nodes[0].address].score.value < 0


async def test_node_cons_3_after_accept_runs_once_a_message_is_forwarded() -> None:
    """[NODE-CONS.3] ``Gossip.after_accept``: on real sockets, a relay's hook for a topic
    runs once per accepted message of it, after the validator and after the message went
    to its other peer (``on_forward`` reports the forward first); never for a rejected
    message, nor for another topic."""
    async with AsyncExitStack() as stack:
        nodes: list[Node] = []
        gossips: list[Gossip] = []
        order: list[str] = []
        received: list[bytes] = []
        for i in range(3):
            boot = (nodes[-1].endpoint,) if nodes else ()
            node = await start_node(stack, f"h{i}", bootstrap=boot)
            gossip = Gossip(node)

            def validate(data: bytes, sender: object, i: int = i) -> Verdict:
                if i == 1:
                    order.append(f"validate {data.decode()}")
                if i == 2:
                    received.append(data)
                return Verdict.REJECT if data.startswith(b"bad") else Verdict.ACCEPT

            for topic in ("tx", "consensus"):
                gossip.subscribe(topic, validate)
            gossip.start()
            nodes.append(node)
            gossips.append(gossip)
        relay = gossips[1]
        relay.on_forward = lambda topic, data, sent: order.append(f"forward {data.decode()} {sent}")
        relay.after_accept("consensus", lambda: order.append("after"))
        await wait_until_async(lambda: len(nodes[1].peers) == 2)
        gossips[0].publish("consensus", b"bad vote")
        gossips[0].publish("consensus", b"vote")
        gossips[0].publish("tx", b"transfer")
        await wait_until_async(lambda: b"vote" in received)
        await asyncio.sleep(0.3)  # the held tx relay [WIRE-GOSSIP.12] is not the hook's
        assert order[:2] == ["validate bad vote", "validate vote"], order
        assert order[2].startswith("forward vote ") and order[3] == "after", order
        assert order.count("after") == 1 and b"bad vote" not in received, order


async def test_wire_node_stop_leaves_no_task_behind() -> None:
    before = set(asyncio.all_tasks())
    async with AsyncExitStack() as stack:
        a = await start_node(stack, "a")
        b = await start_node(stack, "b", bootstrap=(a.endpoint,))
        Gossip(a).start()
        Gossip(b).start()
        chain = HashChain(CHAIN_ID, set())
        BlockSync(a, chain).start()
        BlockSync(b, HashChain(CHAIN_ID, set())).start()
        await wait_until_async(lambda: a.address in b.peers)
    await asyncio.sleep(0)
    assert set(asyncio.all_tasks()) - before == set()


async def test_wire_node_stop_leaves_no_unawaited_coroutine_behind() -> None:
    """A task the node spawned and that stop cancelled before its first step (a dial
    queued as the node stops) never ran its coroutine: it is closed, not left for Python
    to warn about ('coroutine ... was never awaited', seen in bench/hosts.py's output)."""
    import gc
    import warnings

    async def dial_never_started() -> None:
        await asyncio.sleep(60)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with AsyncExitStack() as stack:
            a = await start_node(stack, "a")
            a.spawn(dial_never_started(), name="queued-dial").cancel()  # as stop does
            await asyncio.sleep(0)
        gc.collect()
    assert not [w for w in caught if "never awaited" in str(w.message)], \
        [str(w.message) for w in caught]


def test_wire_handshake_5_config_admission_callback_is_used() -> None:
    outsider = PrivateKey.from_seed(b"x")
    cfg = P2PConfig(chain_id="c", is_admitted=lambda a: a != outsider.address)
    assert not cfg.is_admitted(outsider.address)


async def test_wire_handshake_6_admitted_peer_stalling_mid_frame_is_dropped() -> None:
    """A peer that passed the handshake, then sends one byte a second, misses pings and is cut."""
    async with AsyncExitStack() as stack:
        victim = await start_node(stack, "victim", heartbeat=1.0)
        session = await stack.enter_async_context(aiohttp.ClientSession())
        ws = await session.ws_connect(f"http://{victim.endpoint}/p2p", autoping=False)
        assert await handshake(ws, key("staller"), chain_id=CHAIN_ID) is None
        await wait_until_async(lambda: key("staller").address in victim.peers)
        transport = ws._response.connection.transport  # type: ignore[union-attr]
        assert transport is not None
        for byte in b"\x82\xfe\x10\x00":
            transport.write(bytes([byte]))
            await asyncio.sleep(1.0)
        await wait_until_async(lambda: key("staller").address not in victim.peers, timeout=15)
        await ws.close()


async def test_wire_peers_simultaneous_dials_leave_one_working_connection() -> None:
    """Both sides dial each other at once; one connection survives and services see it."""
    async with AsyncExitStack() as stack:
        pairs = []
        for i in range(4):
            a = Node(key(f"sa{i}"), config())
            b = Node(key(f"sb{i}"), config())
            await stack.enter_async_context(a)
            await stack.enter_async_context(b)
            ga, gb = Gossip(a), Gossip(b)
            got: list[bytes] = []
            ga.subscribe("tx", lambda d, s: Verdict.ACCEPT)
            gb.subscribe("tx", lambda d, s, got=got: (got.append(d), Verdict.ACCEPT)[1])
            ga.start()
            gb.start()
            a.connect("127.0.0.1", b.listen_port)
            b.connect("127.0.0.1", a.listen_port)
            pairs.append((a, b, ga, gb, got))
        for a, b, ga, gb, got in pairs:
            await wait_until_async(lambda a=a, b=b: b.address in a.peers and a.address in b.peers)
            await asyncio.sleep(0.3)  # let any duplicate be resolved
            assert a.peers[b.address].dialer == b.peers[a.address].dialer
            assert b.address in ga.core.peers and a.address in gb.core.peers
            ga.publish("tx", b"hello %d" % id(a))
            await wait_until_async(lambda got=got: len(got) == 1, timeout=5)
