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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from chain.types import Address
from p2p.errors import P2PError
from p2p.node import Node, RequestFailed
from p2p.peer import PeerConnection
from p2p.scoring import Offence
from p2p.wire import MAX_BLOCKS_PER_REQUEST, MAX_FRAME_SIZE, Blocks, GetBlocks, Status

log = logging.getLogger(__name__)

_FRAME_MARGIN = 4096


class BlockSource(Protocol):
    """What sync needs from the ledger. Heights start at 1; ``height()`` is 0 before any block."""

    def height(self) -> int:
        """The height of the last applied block."""
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


_LOCAL_RETRY_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class _Range:
    start: int
    count: int


class BlockSync:
    """Catch-up and follow for one node."""

    def __init__(
        self,
        node: Node,
        source: BlockSource,
        *,
        batch: int = 100,
        parallel: int = 4,
        on_caught_up: Callable[[int], None] | None = None,
    ) -> None:
        self.node = node
        self.source = source
        self.batch = min(batch, MAX_BLOCKS_PER_REQUEST)
        self.parallel = parallel
        self.on_caught_up = on_caught_up
        self.peer_heights: dict[Address, int] = {}
        self.caught_up = asyncio.Event()
        """Set once the local height reached every peer's reported height."""
        self._wake = asyncio.Event()
        node.on(Status, self._on_status)
        node.on(GetBlocks, self._on_getblocks)
        node.on_connect(self._peer_up)
        node.on_disconnect(self._peer_down)

    def start(self) -> None:
        self.node.spawn(self._run(), name="block-sync")

    def notify_height(self) -> None:
        """Tell peers our height grew (call after every committed block) [WIRE-SYNC.1]."""
        self.node.broadcast(Status(self.source.height()))

    @property
    def target(self) -> int:
        return max(self.peer_heights.values(), default=0)

    # -- serving -----------------------------------------------------------

    def _peer_up(self, peer: PeerConnection) -> None:
        peer.send_nowait(Status(self.source.height()))

    def _peer_down(self, peer: PeerConnection) -> None:
        self.peer_heights.pop(peer.address, None)

    def _on_status(self, peer: PeerConnection, message: Status) -> None:
        self.peer_heights[peer.address] = message.height
        self._wake.set()

    async def _on_getblocks(self, peer: PeerConnection, message: GetBlocks) -> None:
        """[WIRE-SYNC.3] Serve what we have, trimmed to fit one frame."""
        items: list[list[bytes]] = []
        size = 0
        if message.start >= 1:
            for block, cert in self.source.get_blocks(message.start, message.count):
                size += len(block) + len(cert) + 16
                if size > MAX_FRAME_SIZE - _FRAME_MARGIN:
                    break
                items.append([block, cert])
        await peer.send(Blocks(message.req_id, message.start, items))

    # -- fetching ----------------------------------------------------------

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            if self.target > self.source.height():
                try:
                    await self._catch_up()
                except LocalApplyFailure as e:
                    log.error("block sync paused: %s; retrying in %.0f s", e, _LOCAL_RETRY_SECONDS)
                    await asyncio.sleep(_LOCAL_RETRY_SECONDS)
                    continue
                self.notify_height()
            level = self.peer_heights and self.source.height() >= self.target
            if level and not self.caught_up.is_set():
                log.info("caught up at height %d", self.source.height())
                self.caught_up.set()
                if self.on_caught_up is not None:
                    self.on_caught_up(self.source.height())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self._wake.wait()

    async def _catch_up(self) -> None:
        """[WIRE-SYNC.5] Fetch batches in parallel from several peers; apply in order."""
        todo: list[_Range] = []
        planned = self.source.height()
        results: dict[int, tuple[PeerConnection, list[list[bytes]]]] = {}
        in_flight: dict[asyncio.Task[Blocks], tuple[_Range, PeerConnection]] = {}
        load: dict[Address, int] = {}
        excluded: dict[int, set[Address]] = {}
        try:
            while True:
                target = self.target
                # Plan a bounded window ahead, so a peer claiming an absurd height
                # costs nothing but its own failed requests.
                window = self.batch * self.parallel * max(1, len(self.peer_heights))
                while planned < target and planned - self.source.height() < window:
                    count = min(self.batch, target - planned)
                    todo.append(_Range(planned + 1, count))
                    planned += count
                self._schedule(todo, in_flight, load, excluded)
                if not in_flight:
                    return
                done, _ = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    rng, peer = in_flight.pop(task)
                    load[peer.address] -= 1
                    self._collect(task, rng, peer, todo, results, excluded)
                self._apply_ready(results, todo, excluded)
                todo.sort(key=lambda r: r.start)
        finally:
            for task in in_flight:
                task.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)

    def _schedule(
        self,
        todo: list[_Range],
        in_flight: dict[asyncio.Task[Blocks], tuple[_Range, PeerConnection]],
        load: dict[Address, int],
        excluded: dict[int, set[Address]],
    ) -> None:
        remaining: list[_Range] = []
        for rng in todo:
            if len(in_flight) >= self.parallel * max(1, len(self.peer_heights)):
                remaining.append(rng)
                continue
            last = rng.start + rng.count - 1
            candidates = [
                p
                for a, p in self.node.peers.items()
                if self.peer_heights.get(a, 0) >= last
                and a not in excluded.get(rng.start, set())
                and load.get(a, 0) < self.parallel
            ]
            if not candidates:
                remaining.append(rng)
                continue
            peer = min(candidates, key=lambda p: (load.get(p.address, 0), self.node.rng.random()))
            load[peer.address] = load.get(peer.address, 0) + 1
            task = asyncio.create_task(self._request(peer, rng))
            in_flight[task] = (rng, peer)
        todo[:] = remaining
        if not in_flight and todo:
            # Nobody left to ask for some range: forget exclusions and retry later.
            excluded.clear()

    async def _request(self, peer: PeerConnection, rng: _Range) -> Blocks:
        message = GetBlocks(self.node.next_req_id(), rng.start, rng.count)
        response = await self.node.request(peer, message)
        if not isinstance(response, Blocks):
            raise RequestFailed(f"{peer!r} answered {response.TAG}")
        return response

    def _collect(
        self,
        task: asyncio.Task[Blocks],
        rng: _Range,
        peer: PeerConnection,
        todo: list[_Range],
        results: dict[int, tuple[PeerConnection, list[list[bytes]]]],
        excluded: dict[int, set[Address]],
    ) -> None:
        try:
            response = task.result()
        except RequestFailed as e:
            log.info("blocks %d+%d from %r failed: %s", rng.start, rng.count, peer, e)
            excluded.setdefault(rng.start, set()).add(peer.address)
            todo.append(rng)
            return
        items = response.items[: rng.count]
        if response.start != rng.start or not items:
            # Nothing (or the wrong range) from a peer that claimed these heights:
            # charge it and stop believing its claim [WIRE-SYNC.6].
            self.node.penalize(peer, Offence.BAD_RESPONSE)
            claimed = self.peer_heights.get(peer.address)
            if claimed is not None:
                self.peer_heights[peer.address] = min(claimed, rng.start - 1)
            excluded.setdefault(rng.start, set()).add(peer.address)
            todo.append(rng)
            return
        results[rng.start] = (peer, items)
        if len(items) < rng.count:
            todo.append(_Range(rng.start + len(items), rng.count - len(items)))

    def _apply_ready(
        self,
        results: dict[int, tuple[PeerConnection, list[list[bytes]]]],
        todo: list[_Range],
        excluded: dict[int, set[Address]],
    ) -> None:
        """[WIRE-SYNC.6] Apply contiguous batches; a failing block sends its range elsewhere."""
        while (nxt := self.source.height() + 1) in results:
            peer, items = results.pop(nxt)
            for i, (block, cert) in enumerate(items):
                try:
                    self.source.apply(block, cert)
                except LocalApplyFailure:
                    raise
                except Exception as e:
                    log.warning("block %d from %r rejected: %s", nxt + i, peer, e)
                    self.node.penalize(peer, Offence.BAD_RESPONSE)
                    bad = nxt + i
                    excluded.setdefault(bad, set()).add(peer.address)
                    todo.append(_Range(bad, len(items) - i))
                    return
