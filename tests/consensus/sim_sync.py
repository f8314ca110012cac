"""The simulated network under the node's real ``p2p.sync.BlockSync`` [CONS-CATCHUP.2] [CONS-SIM].

Every simulated node runs the ``BlockSync`` a node runs (same batch, same
parallelism, same penalties); only its ``SyncTransport`` is simulated, the way
the socket ``Node`` carries it (``p2p.sync_transport.NodeSyncTransport``):

- ``SimLinks`` models connections as TCP does: two live nodes that no
  partition separates are connected; a crash, a restart or a partition closes
  the connection (both sides see the peer leave, and requests over it fail)
  and its end opens a new one (both sides see the peer arrive and send their
  status, [WIRE-SYNC.1]). On an open connection messages are delayed as the
  scenario says but never lost, duplicated or reordered; what was in flight on
  a closed connection is lost.
- ``SimSyncTransport`` is one node incarnation's transport: ``status``,
  ``getblocks`` (answered by the peer's own ``BlockSync.serve``) and
  ``blocks``, with the node's request time-out, and a tick every
  ``TICK_SECONDS``, all on the virtual clock. Everything it reports to
  ``BlockSync`` is a scheduled event of its own, never a call from inside one
  of ``BlockSync``'s calls (the transport contract).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

from chain.types import Address
from p2p.config import P2PConfig
from p2p.node import RequestFailed
from p2p.scoring import Offence
from p2p.sync_transport import TICK_SECONDS, Reply, SyncEvents
from p2p.wire import Blocks

if TYPE_CHECKING:
    from tests.consensus.sim import SimNetwork, SimNode

REQUEST_TIMEOUT_MS = round(P2PConfig(chain_id="lc-sim").request_timeout * 1000)
"""The node's own request time-out."""
TICK_MS = round(TICK_SECONDS * 1000)


class SimLinks:
    """Which pairs of nodes are connected, and the in-order delivery on each connection."""

    def __init__(self, net: SimNetwork) -> None:
        self.net = net
        self.up: set[tuple[int, int]] = set()
        self.epoch: dict[tuple[int, int], int] = {}
        """Bumped whenever a connection closes or opens: what was sent before is lost."""
        self._last: dict[tuple[int, int], int] = {}
        """(src, dst) -> delivery time of the last message: a connection keeps its order."""

    @staticmethod
    def pair(a: int, b: int) -> tuple[int, int]:
        return (a, b) if a < b else (b, a)

    def neighbours(self, index: int) -> list[int]:
        return [j for j in range(len(self.net.nodes))
                if j != index and self.pair(index, j) in self.up]

    def _wanted(self, a: SimNode, b: SimNode) -> bool:
        sc, now = self.net.sc, self.net.now
        if not (a.alive and b.alive):
            return False
        if sc.partition is not None:
            side, start, heal = sc.partition
            if start <= now < heal and (a.index in side) != (b.index in side):
                return False
        return True

    def refresh(self) -> None:
        """Closes and opens connections to match who is alive and what the partition cuts
        (call it whenever one of them changed: a node died or booted, a partition began or
        healed)."""
        nodes = self.net.nodes
        for a in nodes:
            for b in nodes[a.index + 1:]:
                key = (a.index, b.index)
                linked = key in self.up
                wanted = self._wanted(a, b)
                if linked and not wanted:
                    self.up.discard(key)
                    self.epoch[key] = self.epoch.get(key, 0) + 1
                    for x, y in ((a, b), (b, a)):
                        if x.transport is not None:
                            x.transport.link_down(y)
                    linked = False
                if wanted and not linked:
                    self.up.add(key)
                    self.epoch[key] = self.epoch.get(key, 0) + 1
                    for x, y in ((a, b), (b, a)):
                        assert x.transport is not None
                        x.transport.link_up(y)

    def send(self, src: SimNode, dst: SimNode, payload: tuple[Any, ...]) -> None:
        """Over the connection, if there is one: delayed, in order, never lost."""
        key = self.pair(src.index, dst.index)
        if key not in self.up:
            return
        sc, net = self.net.sc, self.net
        hi = sc.delay_range[1] if net.now < sc.chaos_until else sc.delta
        at = net.now + (net.rng.randint(1, hi) if hi > 0 else 0)
        at = max(at, self._last.get((src.index, dst.index), 0))
        self._last[(src.index, dst.index)] = at
        net.deliver_at(at, dst, src, ("sync", self.epoch[key], payload))

    def deliver(self, dst: SimNode, src: SimNode, epoch: int, payload: tuple[Any, ...]) -> None:
        """A message arrives at ``dst`` (a step of its own), unless its connection closed
        since it was sent."""
        key = self.pair(src.index, dst.index)
        transport = dst.transport
        if key not in self.up or self.epoch[key] != epoch or transport is None:
            return
        tag = payload[0]
        if tag == "status":
            transport.events.on_status(src.address, payload[1])
        elif tag == "getblocks":
            _, req_id, start, count = payload
            self.send(dst, src, ("blocks", req_id, start, transport.events.serve(start, count)))
        elif tag == "blocks":
            _, req_id, start, items = payload
            transport.answer(req_id, Blocks(req_id, start, items))


class _Handle:
    __slots__ = ("cancelled",)

    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class SimSyncTransport:
    """``SyncTransport`` of one node incarnation over ``SimLinks`` on the virtual clock."""

    def __init__(self, net: SimNetwork, node: SimNode) -> None:
        self.net, self.node, self.incarnation = net, node, node.incarnation
        self._events: SyncEvents | None = None
        self._req_ids = itertools.count(1)
        self._pending: dict[int, tuple[int, Callable[[Reply], None], _Handle, _Handle]] = {}
        """req_id -> (peer index, on_reply, the handle given to sync, the time-out's)."""

    @property
    def events(self) -> SyncEvents:
        if self._events is None:
            raise RuntimeError("transport not attached")
        return self._events

    def later(self, callback: Callable[[], None], delay_ms: int = 0,
              handle: _Handle | None = None) -> None:
        """Runs ``callback`` as a step of this incarnation (dropped if it died meanwhile)."""
        self.net.call_at(self.net.now + delay_ms, self.node, self.incarnation,
                         handle or _Handle(), callback)

    # -- SyncTransport ---------------------------------------------------------

    def attach(self, events: SyncEvents) -> None:
        self._events = events

    def start(self) -> None:
        def tick() -> None:
            self.events.tick()
            self.later(tick, TICK_MS)
        self.later(tick, TICK_MS)

    def now(self) -> float:
        return self.net.now / 1000

    def peers(self) -> Collection[Address]:
        return [self.net.nodes[j].address for j in self.net.links.neighbours(self.node.index)]

    def send_status(self, peer: Address | None, height: int) -> None:
        if peer is None:
            targets = [self.net.nodes[j] for j in self.net.links.neighbours(self.node.index)]
        else:
            targets = [self.net.by_peer[bytes(peer)]]
        for dst in targets:
            self.net.links.send(self.node, dst, ("status", height))

    def request(self, peer: Address, start: int, count: int,
                on_reply: Callable[[Reply], None]) -> _Handle:
        dst = self.net.by_peer[bytes(peer)]
        req_id = next(self._req_ids)
        handle, timeout = _Handle(), _Handle()
        self._pending[req_id] = (dst.index, on_reply, handle, timeout)
        self.net.links.send(self.node, dst, ("getblocks", req_id, start, count))
        self.later(functools.partial(self._end, req_id, None), REQUEST_TIMEOUT_MS, timeout)
        return handle

    def penalize(self, peer: Address, offence: Offence) -> None:
        self.net.sync_penalties.append((self.node.index, self.net.by_peer[bytes(peer)].index,
                                        offence))

    # -- what the links report ---------------------------------------------------

    def answer(self, req_id: int, blocks: Blocks) -> None:
        self._end(req_id, blocks)

    def _end(self, req_id: int, reply: Reply | None) -> None:
        """A request ends: answered, timed out (``None``) or its connection closed."""
        entry = self._pending.pop(req_id, None)
        if entry is None:
            return
        _, on_reply, handle, timeout = entry
        timeout.cancel()
        if not handle.cancelled:
            on_reply(reply if reply is not None else
                     RequestFailed(f"getblocks {req_id} timed out"))

    def link_up(self, peer: SimNode) -> None:
        self.later(lambda: self.events.on_peer_up(peer.address))

    def link_down(self, peer: SimNode) -> None:
        if not self.node.alive or self.node.incarnation != self.incarnation:
            return
        self.later(lambda: self.events.on_peer_down(peer.address))
        closed = RequestFailed("peer disconnected")
        for req_id, entry in list(self._pending.items()):
            if entry[0] == peer.index:
                self.later(functools.partial(self._end, req_id, closed))
