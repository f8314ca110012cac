"""One authenticated connection: a bounded send queue, its writer, and frame receipt.

Every frame leaves as one sealed record of the connection's secure channel
[WIRE-SECURE.4]; ``open_record`` is its receiving half. The queue has two lanes
[WIRE-GOSSIP.11]: frames sent ``urgent`` (consensus gossip) leave before everything else
queued, so a vote does not wait behind megabytes of transaction batches to a slow peer.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass

import aiohttp
from aiohttp import WSMsgType, web

from chain.types import Address
from p2p.errors import P2PError
from p2p.handshake import PeerIdentity
from p2p.scoring import PeerScore, TokenBucket
from p2p.secure import Session
from p2p.wire import Message, encode_frame

log = logging.getLogger(__name__)

WebSocket = aiohttp.ClientWebSocketResponse | web.WebSocketResponse

URGENT_RUN = 8
"""[WIRE-GOSSIP.11] Urgent frames written in a row before a waiting bulk frame goes."""
ABANDONED_KEPT = 256
"""[WIRE-REQ.3] Abandoned request ids remembered per connection (the oldest forgotten)."""


class ConnectionClosed(P2PError):
    """The WebSocket closed or failed while we waited on it."""


@dataclass(frozen=True, slots=True)
class Frame:
    """What ``receive_frame`` got: bytes, or a reason the connection must end."""

    data: bytes | None
    oversized: bool = False
    text: bool = False


async def receive_frame(ws: WebSocket) -> Frame:
    """The next data frame; ``ConnectionClosed`` when the connection is over."""
    msg = await ws.receive()
    if msg.type is WSMsgType.BINARY:
        return Frame(bytes(msg.data))
    if msg.type is WSMsgType.TEXT:
        return Frame(None, text=True)
    if msg.type is WSMsgType.ERROR:
        exc = msg.data
        if (
            isinstance(exc, aiohttp.WebSocketError)
            and exc.code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
        ):
            return Frame(None, oversized=True)
        raise ConnectionClosed(f"websocket error: {exc!r}")
    raise ConnectionClosed(f"websocket {msg.type.name.lower()}")


class PeerConnection:
    """A peer after a successful handshake."""

    def __init__(
        self,
        ws: WebSocket,
        identity: PeerIdentity,
        session: Session,
        *,
        outbound: bool,
        remote_host: str,
        dialer: Address,
        dialled_port: int | None = None,
        queue_size: int,
        queue_bytes: int = 16 * 1024 * 1024,
        rate_msgs: float,
        rate_burst: float,
        rate_bytes: float,
        stats: Counter[str] | None = None,
    ) -> None:
        self.ws = ws
        self.session = session
        """The secure channel's ciphers and handshake hash [WIRE-SECURE.2]."""
        self.stats: Counter[str] = stats if stats is not None else Counter()
        """Metrics: ``bytes_sent`` and ``frames_sent`` (the node's shared counter)."""
        self.identity = identity
        self.outbound = outbound
        self.remote_host = remote_host
        self.dialled_port = dialled_port
        """The port we dialled (outbound only): where this peer is reachable from here,
        which differs from its announced ``listen_port`` behind a proxy."""
        self.dialer = dialer
        """Address of the side that opened the connection (duplicate tie-break)."""
        self.score = PeerScore()
        self.msg_bucket = TokenBucket(rate_msgs, rate_burst)
        self.byte_bucket = TokenBucket(rate_bytes, rate_bytes)
        self._urgent: deque[bytes | bytearray] = deque()
        """[WIRE-GOSSIP.11] Frames that leave before any in ``_bulk``."""
        self._bulk: deque[bytes | bytearray] = deque()
        self._queue_size = queue_size
        """Frames queued at most, both lanes together."""
        self._queue_bytes_limit = queue_bytes
        self._queued_bytes = 0
        self._urgent_run = 0
        """Urgent frames written in a row while a bulk frame waited [WIRE-GOSSIP.11]."""
        self._ready = asyncio.Event()
        """Set while a frame waits or the writer should stop."""
        self._stopping = False
        self._space = asyncio.Event()
        self._space.set()
        self.closed = asyncio.Event()
        self.pending: dict[int, asyncio.Future[Message]] = {}
        """Our requests on this connection awaiting a response, by ``req_id``."""
        self.abandoned: OrderedDict[int, None] = OrderedDict()
        """[WIRE-REQ.3] The last ``ABANDONED_KEPT`` requests we stopped waiting for (timed
        out, or their fetch ended): a late answer to one is dropped, not charged."""

    @property
    def address(self) -> Address:
        return self.identity.address

    def abandon(self, req_id: int) -> None:
        """[WIRE-REQ.3] We stopped waiting for ``req_id``: its answer, if it comes, is late,
        not unsolicited. The last ``ABANDONED_KEPT`` are remembered."""
        self.abandoned[req_id] = None
        while len(self.abandoned) > ABANDONED_KEPT:
            self.abandoned.popitem(last=False)

    def answered_late(self, req_id: int) -> bool:
        """[WIRE-REQ.3] Whether a response to no pending request answers an abandoned one
        (forgotten then: a second answer to it is unsolicited)."""
        return self.abandoned.pop(req_id, False) is None

    @property
    def listen_endpoint(self) -> tuple[str, int] | None:
        if self.identity.listen_port == 0:
            return None
        return (self.remote_host, self.identity.listen_port)

    def __repr__(self) -> str:
        direction = "out" if self.outbound else "in"
        return f"<Peer {self.address.hex()[:8]} {direction} {self.remote_host}>"

    async def send(self, message: Message) -> None:
        """Queues a message, waiting while the queue is full (back-pressure)."""
        await self.send_frame(encode_frame(message))

    @property
    def queued_frames(self) -> int:
        return len(self._urgent) + len(self._bulk)

    def _full(self) -> bool:
        return self._queued_bytes >= self._queue_bytes_limit or \
            self.queued_frames >= self._queue_size

    def _enqueue(self, frame: bytes | bytearray, urgent: bool) -> None:
        (self._urgent if urgent else self._bulk).append(frame)
        self._queued_bytes += len(frame)
        self._ready.set()

    async def send_frame(self, frame: bytes | bytearray) -> None:
        """Waits while the peer has more than ``queue_bytes`` (or ``queue_size`` frames)
        unsent: it reads too slowly. Bulk lane: requests' answers, blobs, blocks."""
        while self._full() and not self.closed.is_set():
            self._space.clear()
            await self._space.wait()
        if self.closed.is_set():
            raise ConnectionClosed("peer closed")
        self._enqueue(frame, urgent=False)

    def send_nowait(self, message: Message) -> bool:
        return self.send_frame_nowait(encode_frame(message))

    def send_frame_nowait(self, frame: bytes | bytearray, *, urgent: bool = False) -> bool:
        """Queues without waiting; drops (returns False) when the peer cannot keep up.
        ``urgent``: ahead of every frame queued in the bulk lane [WIRE-GOSSIP.11]."""
        if self.closed.is_set() or self._full():
            return False
        self._enqueue(frame, urgent)
        return True

    def _next_frame(self) -> bytes | bytearray:
        """[WIRE-GOSSIP.11] The urgent lane's first frame, except that after
        ``URGENT_RUN`` of them in a row a waiting bulk frame goes: a steady flow of votes
        (64 validators, their repeats) never starves block sync or transactions."""
        if self._urgent and (not self._bulk or self._urgent_run < URGENT_RUN):
            self._urgent_run = self._urgent_run + 1 if self._bulk else 0
            return self._urgent.popleft()
        self._urgent_run = 0
        return self._bulk.popleft()

    async def writer_loop(self) -> None:
        """Sends queued frames, the urgent lane first, each lane in order, until ``close``
        (what was queued before it still leaves)."""
        try:
            while True:
                if not self._urgent and not self._bulk:
                    if self._stopping:
                        return
                    self._ready.clear()
                    await self._ready.wait()
                    continue
                if self.ws.closed:
                    return
                frame = self._next_frame()
                if not self._full():  # a frame's place is free once taken, its bytes once sent
                    self._space.set()
                # [WIRE-SECURE.4] sealed here, in send order: the counter is the order
                await self.ws.send_bytes(self.session.send.seal(frame))
                self.stats["bytes_sent"] += len(frame)
                self.stats["frames_sent"] += 1
                self._queued_bytes -= len(frame)
                if not self._full():
                    self._space.set()
        except (ConnectionError, aiohttp.ClientError, RuntimeError) as e:
            log.debug("%r: send failed: %s", self, e)
        finally:
            self.closed.set()
            self._space.set()

    def open_record(self, record: bytes) -> bytes:
        """[WIRE-SECURE.4-5] The frame in the next record; ``BadRecord`` when it fails."""
        return self.session.recv.open(record)

    def mark_closed(self) -> None:
        """Stops all sending at once; ``close`` finishes the job."""
        self.closed.set()
        self._space.set()

    async def close(self, timeout: float = 2.0) -> None:
        self.mark_closed()
        self._stopping = True
        self._ready.set()
        try:
            async with asyncio.timeout(timeout):
                await self.ws.close()
        except (TimeoutError, ConnectionError, aiohttp.ClientError, RuntimeError):
            pass
