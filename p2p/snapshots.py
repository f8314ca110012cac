"""Serving and asking for snapshots and the validator-set walk [WIRE-SNAP.1-5].

The bytes are opaque here: what an offer or a walk entry means, and whether it is true,
is ``chain.statesync``'s to decide (state.md §8). A node serves what its
``SnapshotSource`` holds; a joining node asks through ``offers`` and ``walk``. A
snapshot's body travels as a blob (``p2p.blobs``), checked chunk by chunk.
"""

from __future__ import annotations

from typing import Protocol

from chain.types import Address
from p2p.node import Node, RequestFailed
from p2p.peer import PeerConnection
from p2p.scoring import Offence
from p2p.wire import (
    MAX_SNAPSHOT_OFFERS,
    MAX_WALK_ENTRIES,
    GetSnapshots,
    GetWalk,
    NotFound,
    Snapshots,
    Walk,
)


class SnapshotSource(Protocol):
    def snapshot_offers(self) -> list[list[bytes]]:
        """``[manifest, header, certificate]`` of each snapshot served, newest first."""
        ...

    def walk_entries(self, above: int, limit: int) -> list[bytes]:
        """Stored walk entries of heights above ``above``, ascending, at most ``limit``."""
        ...


class SnapshotService:
    """Answers ``getsnapshots`` and ``getwalk``; asks peers the same."""

    def __init__(self, node: Node, source: SnapshotSource | None = None) -> None:
        self.node = node
        self.source = source
        node.on(GetSnapshots, self._on_get_snapshots)
        node.on(GetWalk, self._on_get_walk)

    def _on_get_snapshots(self, peer: PeerConnection, message: GetSnapshots) -> None:
        """[WIRE-SNAP.2] Every node answers; one that serves none, with no offer."""
        offers = self.source.snapshot_offers()[:MAX_SNAPSHOT_OFFERS] if self.source else []
        peer.send_nowait(Snapshots(message.req_id, offers))

    def _on_get_walk(self, peer: PeerConnection, message: GetWalk) -> None:
        """[WIRE-SNAP.4] A node without the walk (no version 3 blocks) answers ``notfound``."""
        if self.source is None:
            peer.send_nowait(NotFound(message.req_id))
            return
        entries = self.source.walk_entries(message.above, MAX_WALK_ENTRIES)
        peer.send_nowait(Walk(message.req_id, entries))

    def peers(self) -> list[Address]:
        return list(self.node.peers)

    async def offers(self, peer: Address) -> list[list[bytes]] | None:
        """The peer's offers; None when it did not answer (gone, timed out, notfound)."""
        connection = self.node.peers.get(peer)
        if connection is None:
            return None
        try:
            answer = await self.node.request(connection, GetSnapshots(self.node.next_req_id()))
        except RequestFailed:
            return None
        return answer.offers if isinstance(answer, Snapshots) else None

    async def walk(self, peer: Address, above: int) -> list[bytes] | None:
        """One page of the peer's walk above ``above``; None when it did not answer."""
        connection = self.node.peers.get(peer)
        if connection is None:
            return None
        try:
            answer = await self.node.request(connection, GetWalk(self.node.next_req_id(),
                                                                 above))
        except RequestFailed:
            return None
        return answer.entries if isinstance(answer, Walk) else None

    def charge(self, peer: Address) -> None:
        """[WIRE-SNAP.5] The peer's offer, walk or body did not check out."""
        connection = self.node.peers.get(peer)
        if connection is not None:
            self.node.penalize(connection, Offence.BAD_RESPONSE)
