"""The transport under block sync: what ``BlockSync`` needs from a network [WIRE-SYNC.*].

``BlockSync`` (``p2p.sync``) holds every decision of block sync (whom to ask
for which range, what to do with an answer, when it is caught up) and does no
I/O itself. It talks to peers through a ``SyncTransport`` and is told what
happens through the ``SyncEvents`` it implements:

- ``NodeSyncTransport`` (here) carries it over the socket ``Node``: ``status``,
  ``getblocks`` and ``blocks`` frames [WIRE-SYNC.1-3], requests through
  ``Node.request`` (its timeout, its failure on disconnect), and a ticker task
  owned by the node's task group;
- the consensus simulator (``tests/consensus/sim_sync.py``) carries the same
  ``BlockSync`` over its simulated links on a virtual clock.

Peers are named by their ``Address``. A transport never calls back into
``BlockSync`` from inside one of its own calls: replies, statuses and peer
changes arrive later, as separate events.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Collection, Coroutine
from typing import Any, Protocol

from chain.types import Address
from p2p.node import Node, RequestFailed
from p2p.peer import PeerConnection
from p2p.scoring import Offence
from p2p.wire import Blocks, GetBlocks, NotFound, Status

TICK_SECONDS = 1.0
"""A transport calls ``SyncEvents.tick`` this often: block sync re-plans, resumes after a
local failure, and notices that it is level with its peers."""

Reply = Blocks | RequestFailed
"""What a request ends with: the peer's answer, or why there is none."""


class Cancellable(Protocol):
    def cancel(self) -> object: ...


class SyncEvents(Protocol):
    """What a transport tells block sync (``BlockSync`` implements it)."""

    def on_peer_up(self, peer: Address) -> None:
        """A connection to ``peer`` is established."""
        ...

    def on_peer_down(self, peer: Address) -> None:
        """The connection to ``peer`` is gone (its pending requests fail on their own)."""
        ...

    def on_status(self, peer: Address, height: int, base: int = 1) -> None:
        """``peer`` says its height is ``height`` and its oldest stored block ``base``
        [WIRE-SYNC.1/8]."""
        ...

    def serve(self, start: int, count: int) -> list[list[bytes]] | None:
        """The ``blocks`` items answering a ``getblocks`` [WIRE-SYNC.3]; None: ``start`` is
        below what we store (pruned), answered ``notfound`` [WIRE-SYNC.8]."""
        ...

    def tick(self) -> None:
        """Called every ``TICK_SECONDS``."""
        ...


class SyncTransport(Protocol):
    """What block sync needs from the network."""

    def attach(self, events: SyncEvents) -> None:
        """From now on, deliver peer changes, statuses, ``getblocks`` and ticks to ``events``."""
        ...

    def start(self) -> None:
        """Starts the ticks (the peers' events may arrive before)."""
        ...

    def now(self) -> float:
        """Seconds on a clock that never goes back."""
        ...

    def peers(self) -> Collection[Address]:
        """The peers connected now."""
        ...

    def send_status(self, peer: Address | None, height: int, base: int = 1) -> None:
        """``["status", height]`` (``base`` > 1 appended) to ``peer``, or to every peer if
        ``None`` [WIRE-SYNC.1/8]. Sync passes ``base`` only when above 1."""
        ...

    def request(
        self, peer: Address, start: int, count: int, on_reply: Callable[[Reply], None]
    ) -> Cancellable:
        """Sends ``["getblocks", req_id, start, count]`` to ``peer`` [WIRE-SYNC.2]; calls
        ``on_reply`` once, later, with its ``blocks`` answer or a ``RequestFailed`` (time-out,
        disconnect, another answer), unless the returned handle is cancelled first."""
        ...

    def penalize(self, peer: Address, offence: Offence) -> None:
        """Charges ``peer`` for ``offence`` [WIRE-SCORE.3]."""
        ...


class _Request:
    """A request's task; cancelled before it ran, its coroutine is closed unawaited."""

    def __init__(self, task: asyncio.Task[Any], coro: Coroutine[Any, Any, None]) -> None:
        self.task, self.coro = task, coro

    def cancel(self) -> None:
        self.task.cancel()
        if inspect.getcoroutinestate(self.coro) == inspect.CORO_CREATED:
            self.coro.close()


class NodeSyncTransport:
    """``SyncTransport`` over the socket ``Node``."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self._events: SyncEvents | None = None
        self._asked: dict[Address, PeerConnection] = {}
        """The connection each peer was last asked on: a peer whose blocks fail ``apply``
        after it disconnected is still charged (and banned by address)."""

    def attach(self, events: SyncEvents) -> None:
        self._events = events
        self.node.on(Status, lambda peer, message: events.on_status(
            peer.address, message.height, message.base))
        self.node.on(GetBlocks, self._on_getblocks)
        self.node.on_connect(lambda peer: events.on_peer_up(peer.address))
        self.node.on_disconnect(lambda peer: events.on_peer_down(peer.address))

    def start(self) -> None:
        self.node.spawn(self._ticks(), name="block-sync")

    async def _ticks(self) -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            if self._events is not None:
                self._events.tick()

    async def _on_getblocks(self, peer: PeerConnection, message: GetBlocks) -> None:
        items = self._events.serve(message.start, message.count) if self._events else []
        if items is None:  # [WIRE-SYNC.8] pruned here: not a short answer that blames us
            await peer.send(NotFound(message.req_id))
            return
        await peer.send(Blocks(message.req_id, message.start, items))

    def now(self) -> float:
        return self.node.now()

    def peers(self) -> Collection[Address]:
        return self.node.peers.keys()

    def send_status(self, peer: Address | None, height: int, base: int = 1) -> None:
        if peer is None:
            self.node.broadcast(Status(height, base))
            return
        conn = self.node.peers.get(peer)
        if conn is not None:
            conn.send_nowait(Status(height, base))

    def request(
        self, peer: Address, start: int, count: int, on_reply: Callable[[Reply], None]
    ) -> Cancellable:
        conn = self.node.peers.get(peer)
        if conn is not None:
            self._asked[peer] = conn

        async def ask() -> None:
            reply: Reply
            if conn is None:
                reply = RequestFailed(f"{peer.hex()[:8]} is not connected")
            else:
                try:
                    response = await self.node.request(
                        conn, GetBlocks(self.node.next_req_id(), start, count)
                    )
                    if isinstance(response, Blocks):
                        reply = response
                    else:
                        reply = RequestFailed(f"{conn!r} answered {response.TAG}")
                except RequestFailed as e:
                    reply = e
                except Exception as e:  # e.g. a send that failed oddly: still an answer
                    reply = RequestFailed(f"getblocks to {conn!r} failed: {e!r}")
            on_reply(reply)

        coro = ask()
        return _Request(self.node.spawn(coro, name="getblocks"), coro)

    def penalize(self, peer: Address, offence: Offence) -> None:
        conn = self.node.peers.get(peer) or self._asked.get(peer)
        if conn is not None:
            self.node.penalize(conn, offence)
