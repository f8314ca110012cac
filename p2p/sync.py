"""Block sync: catch up from several peers in batches, then follow the chain [WIRE-SYNC.*].

The ledger plugs in through ``BlockSource``: blocks and their commit
certificates travel as opaque bytes, and ``apply`` checks the certificate and
applies the block (raising on anything invalid) [WIRE-SYNC.4]. Every node
tells its peers its height on connect and whenever it grows (``Status``); a
node that sees a peer ahead asks for the missing range in batches of at most
``MAX_BLOCKS_PER_REQUEST``, spread over every peer that has them, and applies
them strictly in height order [WIRE-SYNC.5]. A batch that times out, comes
back short or fails ``apply`` is asked of another peer; a failed ``apply``
costs the sender score [WIRE-SYNC.6]. When its height reaches the highest
height any peer reported, the node sets ``caught_up`` (then joins consensus)
and keeps following by the same mechanism [WIRE-SYNC.7].

A node that pruned its oldest blocks [STORE-PRUNE.*] says so in its status
(its base height) and answers ``notfound`` below it; a syncing node asks each
range only of peers whose base is at or below it, and when no peer holds the
next height it stops asking and says which heights are missing [WIRE-SYNC.8].

``BlockSync`` does no I/O and keeps no task: it reacts to what its
``SyncTransport`` (``p2p.sync_transport``) reports (peers coming and going,
statuses, answers, ticks) and asks the transport to send. Over the socket
``Node`` that is ``NodeSyncTransport``; the consensus simulator runs this very
class over its simulated network on a virtual clock.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from chain.types import Address
from p2p.errors import P2PError
from p2p.node import Node, RequestFailed
from p2p.scoring import Offence
from p2p.sync_transport import Cancellable, NodeSyncTransport, Reply, SyncTransport
from p2p.wire import MAX_BLOCKS_PER_REQUEST, MAX_FRAME_SIZE

log = logging.getLogger(__name__)

_FRAME_MARGIN = 4096


class BlockSource(Protocol):
    """What sync needs from the ledger. Heights start at 1; ``height()`` is 0 before any block."""

    def height(self) -> int:
        """The height of the last applied block."""
        ...

    def base_height(self) -> int:
        """The oldest height ``get_blocks`` can serve (1 unless pruned) [WIRE-SYNC.8].
        Optional: a source without it serves from 1."""
        ...

    def get_blocks(self, start: int, count: int) -> list[tuple[bytes, bytes]]:
        """Up to ``count`` consecutive ``(block, certificate)`` pairs from ``start``."""
        ...

    def apply(self, block: bytes, certificate: bytes) -> None:
        """Verifies the certificate and applies block ``height() + 1``; raises if invalid."""
        ...


class LocalApplyFailure(P2PError):
    """``BlockSource.apply`` could not store a block that may well be valid (e.g. the
    database is locked or the disk is full): no peer is blamed; sync retries later."""


LOCAL_RETRY_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class _Range:
    start: int
    count: int


@dataclass(eq=False)
class _CatchUp:
    """One catch-up in progress: planned ranges, requests out, answers not yet applied."""

    planned: int
    """The highest height a range was planned for."""
    todo: list[_Range] = field(default_factory=list)
    in_flight: dict[int, tuple[_Range, Address, Cancellable]] = field(default_factory=dict)
    results: dict[int, tuple[Address, list[list[bytes]]]] = field(default_factory=dict)
    load: Counter[Address] = field(default_factory=Counter)
    excluded: dict[int, set[Address]] = field(default_factory=dict)
    """Range start -> peers not to ask for it again in this catch-up."""


class BlockSync:
    """Catch-up and follow for one node, over a ``SyncTransport`` (or a socket ``Node``)."""

    def __init__(
        self,
        transport: SyncTransport | Node,
        source: BlockSource,
        *,
        batch: int = 100,
        parallel: int = 4,
        on_caught_up: Callable[[int], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if isinstance(transport, Node):
            rng = rng or transport.rng
            transport = NodeSyncTransport(transport)
        self.transport: SyncTransport = transport
        self.source = source
        self.batch = min(batch, MAX_BLOCKS_PER_REQUEST)
        self.parallel = parallel
        self.on_caught_up = on_caught_up
        self.rng = rng or random.Random()
        self.peer_heights: dict[Address, int] = {}
        self.peer_bases: dict[Address, int] = {}
        """[WIRE-SYNC.8] The oldest height each peer stores; absent: 1."""
        self.missing: tuple[int, int] | None = None
        """[WIRE-SYNC.8] Heights no connected peer stores any more (first, last), while they
        stop this node from catching up; None otherwise."""
        self.caught_up = asyncio.Event()
        """Set once the local height reached every peer's reported height."""
        self._catch_up: _CatchUp | None = None
        self._tickets = itertools.count(1)
        self._paused_until = float("-inf")
        self.held = False
        """While True nothing is fetched or applied (a node restoring a snapshot [SNAP-*]
        must not have block sync move its database off genesis meanwhile)."""
        transport.attach(self)

    def start(self) -> None:
        self.transport.start()

    def notify_height(self) -> None:
        """Tell peers our height grew (call after every committed block) [WIRE-SYNC.1]."""
        self._send_status(None)

    def _base(self) -> int:
        base_height = getattr(self.source, "base_height", None)
        return 1 if base_height is None else int(base_height())

    def _send_status(self, peer: Address | None) -> None:
        """[WIRE-SYNC.1/8] The base travels only when above 1 (old transports lack it)."""
        base = self._base()
        if base > 1:
            self.transport.send_status(peer, self.source.height(), base=base)
        else:
            self.transport.send_status(peer, self.source.height())

    @property
    def target(self) -> int:
        return max(self.peer_heights.values(), default=0)

    @property
    def fetching(self) -> bool:
        """A catch-up is in progress (requests are out)."""
        return self._catch_up is not None

    # -- events from the transport ------------------------------------------

    def on_peer_up(self, peer: Address) -> None:
        self._send_status(peer)

    def on_peer_down(self, peer: Address) -> None:
        self.peer_heights.pop(peer, None)
        self.peer_bases.pop(peer, None)

    def on_status(self, peer: Address, height: int, base: int = 1) -> None:
        self.peer_heights[peer] = height
        self.peer_bases[peer] = max(1, min(base, height))
        self._advance()

    def tick(self) -> None:
        self._advance()

    def serve(self, start: int, count: int) -> list[list[bytes]] | None:
        """[WIRE-SYNC.3] What we have of ``start .. start + count - 1``, trimmed to one frame;
        None when ``start`` is below our base height (pruned: ``notfound``) [WIRE-SYNC.8]."""
        items: list[list[bytes]] = []
        size = 0
        if 1 <= start < self._base():
            return None
        if start >= 1:
            for block, cert in self.source.get_blocks(start, count):
                size += len(block) + len(cert) + 16
                if size > MAX_FRAME_SIZE - _FRAME_MARGIN:
                    break
                items.append([block, cert])
        return items

    # -- fetching ------------------------------------------------------------

    def _advance(self) -> None:
        """Starts, continues or ends a catch-up; then checks whether we are level."""
        if self.held or self.transport.now() < self._paused_until:
            return
        run = self._catch_up
        if run is None and self.target > self.source.height():
            if self._next_is_pruned_everywhere():
                return
            run = self._catch_up = _CatchUp(planned=self.source.height())
        if run is not None:
            self._plan(run)
            self._schedule(run)
            if run.in_flight:
                return
            # Done, or nobody left to ask for what is missing: the next status or
            # tick starts afresh from our height.
            self._catch_up = None
            self.notify_height()
        level = self.peer_heights and self.source.height() >= self.target
        if level and not self.caught_up.is_set():
            log.info("caught up at height %d", self.source.height())
            self.caught_up.set()
            if self.on_caught_up is not None:
                self.on_caught_up(self.source.height())

    def _next_is_pruned_everywhere(self) -> bool:
        """[WIRE-SYNC.8] Every peer ahead of us pruned our next height: say once which heights
        are missing and ask nobody (no requests that can only fail) until a status changes
        that; the node stays not caught up."""
        nxt = self.source.height() + 1
        ahead = {a: self.peer_bases.get(a, 1) for a, h in self.peer_heights.items() if h >= nxt}
        if not ahead or min(ahead.values()) <= nxt:
            if self.missing is not None:
                log.info("block sync: heights from %d are stored by a peer again", nxt)
            self.missing = None
            return False
        missing = (nxt, min(ahead.values()) - 1)
        if missing != self.missing:
            self.missing = missing
            log.error("block sync stopped: blocks %d..%d are pruned on every connected peer "
                      "(oldest stored: %s); connect a peer that keeps them (retain_blocks = 0)",
                      missing[0], missing[1],
                      ", ".join(f"{_name(a)} from {b}" for a, b in sorted(ahead.items())))
        return True

    def _plan(self, run: _CatchUp) -> None:
        """[WIRE-SYNC.5] Ranges up to the target, at most a bounded window ahead, so a peer
        claiming an absurd height costs nothing but its own failed requests."""
        target = self.target
        window = self.batch * self.parallel * max(1, len(self.peer_heights))
        while run.planned < target and run.planned - self.source.height() < window:
            count = min(self.batch, target - run.planned)
            run.todo.append(_Range(run.planned + 1, count))
            run.planned += count

    def _schedule(self, run: _CatchUp) -> None:
        """[WIRE-SYNC.5] Each range to the least loaded peer that reported its heights."""
        remaining: list[_Range] = []
        for rng in run.todo:
            if len(run.in_flight) >= self.parallel * max(1, len(self.peer_heights)):
                remaining.append(rng)
                continue
            last = rng.start + rng.count - 1
            candidates = [
                a
                for a in self.transport.peers()
                if self.peer_heights.get(a, 0) >= last
                and self.peer_bases.get(a, 1) <= rng.start  # [WIRE-SYNC.8]
                and a not in run.excluded.get(rng.start, set())
                and run.load[a] < self.parallel
            ]
            if not candidates:
                remaining.append(rng)
                continue
            peer = min(candidates, key=lambda a: (run.load[a], self.rng.random()))
            run.load[peer] += 1
            ticket = next(self._tickets)
            handle = self.transport.request(
                peer, rng.start, rng.count, functools.partial(self._on_reply, run, ticket)
            )
            run.in_flight[ticket] = (rng, peer, handle)
        run.todo[:] = remaining
        if not run.in_flight and run.todo:
            run.excluded.clear()

    def _on_reply(self, run: _CatchUp, ticket: int, reply: Reply) -> None:
        if run is not self._catch_up:
            return  # an abandoned catch-up
        entry = run.in_flight.pop(ticket, None)
        if entry is None:
            return
        rng, peer, _ = entry
        run.load[peer] -= 1
        self._collect(run, rng, peer, reply)
        try:
            self._apply_ready(run)
        except LocalApplyFailure as e:
            log.error("block sync paused: %s; retrying in %.0f s", e, LOCAL_RETRY_SECONDS)
            self._abandon(run)
            self._paused_until = self.transport.now() + LOCAL_RETRY_SECONDS
            return
        run.todo.sort(key=lambda r: r.start)
        self._advance()

    def _abandon(self, run: _CatchUp) -> None:
        for _, _, handle in run.in_flight.values():
            handle.cancel()
        run.in_flight.clear()
        if self._catch_up is run:
            self._catch_up = None

    def _collect(self, run: _CatchUp, rng: _Range, peer: Address, reply: Reply) -> None:
        if isinstance(reply, RequestFailed):
            log.info("blocks %d+%d from %s failed: %s", rng.start, rng.count, _name(peer), reply)
            run.excluded.setdefault(rng.start, set()).add(peer)
            run.todo.append(rng)
            return
        items = reply.items[: rng.count]
        if reply.start != rng.start or not items:
            # Nothing (or the wrong range) from a peer that claimed these heights:
            # charge it and stop believing its claim [WIRE-SYNC.6].
            self.transport.penalize(peer, Offence.BAD_RESPONSE)
            claimed = self.peer_heights.get(peer)
            if claimed is not None:
                self.peer_heights[peer] = min(claimed, rng.start - 1)
            run.excluded.setdefault(rng.start, set()).add(peer)
            run.todo.append(rng)
            return
        run.results[rng.start] = (peer, items)
        if len(items) < rng.count:
            run.todo.append(_Range(rng.start + len(items), rng.count - len(items)))

    def _apply_ready(self, run: _CatchUp) -> None:
        """[WIRE-SYNC.6] Apply contiguous batches; a failing block sends its range elsewhere."""
        while (nxt := self.source.height() + 1) in run.results:
            peer, items = run.results.pop(nxt)
            for i, (block, cert) in enumerate(items):
                try:
                    self.source.apply(block, cert)
                except LocalApplyFailure:
                    raise
                except Exception as e:
                    log.warning("block %d from %s rejected: %s", nxt + i, _name(peer), e)
                    self.transport.penalize(peer, Offence.BAD_RESPONSE)
                    bad = nxt + i
                    run.excluded.setdefault(bad, set()).add(peer)
                    run.todo.append(_Range(bad, len(items) - i))
                    return


def _name(peer: Address) -> str:
    return bytes(peer).hex()[:8]
