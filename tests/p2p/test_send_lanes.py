"""[WIRE-GOSSIP.11] A peer's send queue has two lanes: consensus gossip leaves before every
frame already queued in the bulk lane (transaction batches, answers, blobs).

On a real node over 127.0.0.1 (a raw peer reads what the node writes), and on the queue
itself with a stand-in socket whose writes wait until the test lets them go.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import Any

import pytest
from p2p_harness import start_node
from test_p2p_rules import expect, hostile

from p2p.config import GossipParams
from p2p.gossip import Gossip
from p2p.gossip_core import Verdict
from p2p.peer import ConnectionClosed, PeerConnection
from p2p.wire import Publish

TX_BATCH = 60 * 1024
"""A full transaction batch, as nodes gossip them [NODE-TX.1]."""


async def test_wire_gossip_11_a_vote_leaves_before_the_transaction_batches_queued_ahead() -> None:
    """The node queues 40 transaction batches (2.4 MB) for its peer, then one consensus
    message: the peer reads the consensus message first. With one lane it came 41st."""
    async with AsyncExitStack() as stack:
        node = await start_node(stack, "sender")
        gossip = Gossip(node)
        for topic in ("tx", "consensus"):
            gossip.subscribe(topic, lambda data, sender: Verdict.ACCEPT)
        gossip.start()
        async with hostile(node, "reader") as ws:
            for i in range(40):  # no await between publishes: the writer runs after them
                gossip.publish("tx", bytes([i]) * TX_BATCH)
            gossip.publish("consensus", b"a vote")
            order = [await expect(ws, Publish) for _ in range(41)]
    topics = [m.topic for m in order]
    assert topics[0] == "consensus", topics[:3]
    assert [m.data[0] for m in order[1:]] == list(range(40)), "the bulk lane kept its order"


def test_wire_gossip_11_consensus_is_the_only_urgent_topic_by_default() -> None:
    assert GossipParams().urgent_topics == ("consensus",)


class _Sealer:
    def seal(self, frame: bytes) -> bytes:
        return frame


class _Session:
    send = _Sealer()


class _HeldSocket:
    """Writes wait for ``release``; what was written is in ``sent``, in order."""

    def __init__(self) -> None:
        self.closed = False
        self.sent: list[bytes] = []
        self.gate = asyncio.Semaphore(0)

    async def send_bytes(self, data: bytes) -> None:
        await self.gate.acquire()
        self.sent.append(bytes(data))

    async def close(self) -> None:
        """As a WebSocket's close: its handshake takes a while, then nothing more is sent."""
        await _settle()
        self.closed = True

    def release(self, writes: int) -> None:
        for _ in range(writes):
            self.gate.release()


def _connection(ws: _HeldSocket, *, frames: int = 100, queue_bytes: int = 1 << 20) -> Any:
    conn = PeerConnection.__new__(PeerConnection)  # only the queue's state: no handshake
    PeerConnection.__init__(conn, ws, identity=None, session=_Session(),  # type: ignore[arg-type]
                            outbound=True, remote_host="127.0.0.1", dialer=b"",  # type: ignore[arg-type]
                            queue_size=frames, queue_bytes=queue_bytes, rate_msgs=1e9,
                            rate_burst=1e9, rate_bytes=1e12)
    return conn


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_wire_gossip_11_urgent_frames_overtake_queued_bulk_and_lanes_keep_order() -> None:
    ws = _HeldSocket()
    conn = _connection(ws)
    writer = asyncio.create_task(conn.writer_loop())
    for i in range(4):
        assert conn.send_frame_nowait(b"bulk%d" % i)
    await _settle()  # the writer holds bulk0 in its write
    assert conn.send_frame_nowait(b"vote0", urgent=True)
    assert conn.send_frame_nowait(b"vote1", urgent=True)
    await conn.send_frame(b"answer")  # a response: bulk lane, behind the rest
    ws.release(7)
    await _settle()
    assert ws.sent == [b"bulk0", b"vote0", b"vote1", b"bulk1", b"bulk2", b"bulk3", b"answer"]
    assert conn.queued_frames == 0 and conn._queued_bytes == 0
    await conn.close(timeout=0.1)
    await asyncio.wait_for(writer, 5)


async def test_wire_gossip_11_both_lanes_share_the_limits() -> None:
    """A full queue drops an urgent gossip frame as it drops a bulk one; a response waits
    for room, which the writer makes."""
    ws = _HeldSocket()
    conn = _connection(ws, frames=3)
    writer = asyncio.create_task(conn.writer_loop())
    assert conn.send_frame_nowait(b"a") and conn.send_frame_nowait(b"b")
    assert conn.send_frame_nowait(b"v", urgent=True)
    assert not conn.send_frame_nowait(b"late vote", urgent=True)
    assert not conn.send_frame_nowait(b"c")
    await _settle()  # the writer takes the vote into its (held) write: room for one
    await asyncio.wait_for(conn.send_frame(b"answer"), 5)
    waiting = asyncio.create_task(conn.send_frame(b"answer2"))
    await _settle()
    assert not waiting.done(), "a response waits while the queue is full"
    ws.release(1)
    await asyncio.wait_for(waiting, 5)
    ws.release(4)
    await _settle()
    assert ws.sent == [b"v", b"a", b"b", b"answer", b"answer2"]
    byte_bound = _connection(_HeldSocket(), queue_bytes=10)
    assert byte_bound.send_frame_nowait(b"x" * 10)
    assert not byte_bound.send_frame_nowait(b"y", urgent=True)
    await conn.close(timeout=0.1)
    await asyncio.wait_for(writer, 5)


async def test_wire_gossip_11_close_sends_what_was_queued_then_stops() -> None:
    ws = _HeldSocket()
    conn = _connection(ws)
    writer = asyncio.create_task(conn.writer_loop())
    conn.send_frame_nowait(b"b0")
    conn.send_frame_nowait(b"v0", urgent=True)
    ws.release(10)
    await conn.close(timeout=0.1)
    await asyncio.wait_for(writer, 5)
    assert ws.sent == [b"v0", b"b0"]
    assert not conn.send_frame_nowait(b"after", urgent=True)
    with pytest.raises(ConnectionClosed):
        await conn.send_frame(b"after")


async def test_wire_gossip_11_a_steady_flow_of_votes_lets_one_bulk_frame_through_every_8() -> None:
    ws = _HeldSocket()
    conn = _connection(ws)
    writer = asyncio.create_task(conn.writer_loop())
    conn.send_frame_nowait(b"first")
    await _settle()  # the writer holds it
    for i in range(3):
        conn.send_frame_nowait(b"bulk%d" % i)
    for i in range(20):
        conn.send_frame_nowait(b"vote%02d" % i, urgent=True)
    ws.release(24)
    await _settle()
    votes = [b"vote%02d" % i for i in range(20)]
    assert ws.sent == [b"first", *votes[:8], b"bulk0", *votes[8:16], b"bulk1", *votes[16:],
                       b"bulk2"]
    await conn.close(timeout=0.1)
    await asyncio.wait_for(writer, 5)
