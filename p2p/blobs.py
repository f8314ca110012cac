"""Blob transfer: serve stored blobs, fetch missing ones in checked chunks [WIRE-BLOB.*].

Fetching ``blob`` (its SHA-256):

1. Ask every peer that announced it (``BlobHave``; else every peer) for its
   manifest: size and the SHA-256 of each 1 MiB chunk. A size over the
   store's bound is refused before anything is written [WIRE-BLOB.6]. The
   manifest most peers agree on is used; peers that sent another are not.
2. Pull chunks from all those peers at once, a few requests in flight per
   peer. Each chunk is checked against the manifest on arrival and written at
   its offset in ``partial/<hex>``; a bad chunk costs its sender score and
   that peer is dropped from this fetch [WIRE-BLOB.5].
3. A peer that disconnects or stalls hands its chunks back to the others;
   peers that announce the blob later join in. A fetch that restarts first
   re-checks what the partial file already holds [WIRE-BLOB.8].
4. When every chunk is in, the whole file must hash to ``blob``; only then is
   it renamed into the store [WIRE-BLOB.7].
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import queue
from collections import Counter, deque
from collections.abc import Callable
from pathlib import Path

from chain.types import Address
from p2p.blobstore import BlobCorrupt, BlobStore, BlobTooLarge, BlobUnavailable, chunk_count
from p2p.node import Node, RequestFailed
from p2p.peer import PeerConnection
from p2p.scoring import Offence
from p2p.wire import (
    CHUNK_SIZE,
    MAX_BLOB_HAVE,
    MAX_MANIFEST_CHUNKS,
    BlobHave,
    Chunk,
    GetChunk,
    GetManifest,
    Manifest,
    NotFound,
)

log = logging.getLogger(__name__)

_HASH_AHEAD = 32
"""Chunks kept in memory while waiting for the hash prefix to reach them."""

Progress = Callable[[int, int], None]
"""Called with (verified bytes so far, total bytes)."""


class BlobService:
    """Serves the local store and fetches blobs from peers."""

    def __init__(self, node: Node, store: BlobStore, *, window: int = 4) -> None:
        self.node = node
        self.store = store
        self.window = window
        """Chunk requests in flight per peer."""
        self.announcers: dict[bytes, set[Address]] = {}
        self.chunks_from: dict[bytes, Counter[Address]] = {}
        """Per fetched blob, how many verified chunks each peer supplied."""
        self._changed = asyncio.Event()
        node.on(BlobHave, self._on_have)
        node.on(GetManifest, self._on_get_manifest)
        node.on(GetChunk, self._on_get_chunk)
        node.on_connect(self._peer_up)
        node.on_disconnect(self._peer_down)

    # -- serving -----------------------------------------------------------

    def announce(self, blob: bytes) -> None:
        """[WIRE-BLOB.1] Tell every peer we can serve ``blob``."""
        self.node.broadcast(BlobHave([blob]))

    def _peer_up(self, peer: PeerConnection) -> None:
        have = self.store.blobs()[:MAX_BLOB_HAVE]
        if have:
            peer.send_nowait(BlobHave(have))

    def _peer_down(self, peer: PeerConnection) -> None:
        for holders in self.announcers.values():
            holders.discard(peer.address)
        self._changed.set()

    def _on_have(self, peer: PeerConnection, message: BlobHave) -> None:
        for blob in message.hashes:
            if len(self.announcers) < 4096 or blob in self.announcers:
                self.announcers.setdefault(blob, set()).add(peer.address)
        self._changed.set()

    async def _on_get_manifest(self, peer: PeerConnection, message: GetManifest) -> None:
        manifest = self.store.manifest(message.blob)
        if manifest is None:
            await peer.send(NotFound(message.req_id))
            return
        size, hashes = manifest
        await peer.send(Manifest(message.req_id, message.blob, size, hashes))

    async def _on_get_chunk(self, peer: PeerConnection, message: GetChunk) -> None:
        data = self.store.read_chunk(message.blob, message.index)
        if data is None:
            await peer.send(NotFound(message.req_id))
            return
        await peer.send(Chunk(message.req_id, data))

    # -- fetching ----------------------------------------------------------

    async def fetch(
        self, blob: bytes, *, progress: Progress | None = None, patience: float = 30.0
    ) -> Path:
        """Fetches ``blob`` into the store and returns its path.

        Raises ``BlobTooLarge``, ``BlobCorrupt`` (final hash mismatch; nothing
        kept), or ``BlobUnavailable`` when no peer serves it for ``patience``
        seconds.
        """
        if self.store.has(blob):
            return self.store.path(blob)
        size, hashes, sources = await self._agree_on_manifest(blob, patience)
        part = self.store.partial_path(blob)
        done = set(await asyncio.to_thread(self.store.partial_chunks, blob, hashes, size))
        if not part.is_file() or part.stat().st_size != size:
            with part.open("wb") as f:
                f.truncate(size)
        transfer = _Transfer(self, blob, size, hashes, done, part, progress)
        await transfer.run(sources, patience)
        if transfer.hashed != len(hashes) or transfer.whole.digest() != blob:
            part.unlink(missing_ok=True)
            for address in sources:
                peer = self.node.peers.get(address)
                if peer is not None:
                    self.node.penalize(peer, Offence.BAD_RESPONSE)
            raise BlobCorrupt(f"fetched bytes do not hash to {blob.hex()}; discarded")
        await asyncio.to_thread(self.store.commit_verified, blob, part, size, hashes)
        self.announce(blob)
        return self.store.path(blob)

    async def _agree_on_manifest(
        self, blob: bytes, patience: float
    ) -> tuple[int, list[bytes], set[Address]]:
        """[WIRE-BLOB.4] The (size, chunk hashes) most responding peers agree on."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + patience
        while True:
            peers = self._candidates(blob)
            answers = await asyncio.gather(*(self._ask_manifest(p, blob) for p in peers))
            votes: Counter[tuple[int, tuple[bytes, ...]]] = Counter()
            voters: dict[tuple[int, tuple[bytes, ...]], set[Address]] = {}
            for peer, answer in zip(peers, answers, strict=True):
                if answer is None:
                    continue
                key = (answer.size, tuple(answer.chunk_hashes))
                votes[key] += 1
                voters.setdefault(key, set()).add(peer.address)
            if votes:
                (size, hashes), _ = votes.most_common(1)[0]
                return size, list(hashes), voters[(size, hashes)]
            if loop.time() >= deadline:
                raise BlobUnavailable(f"no peer serves blob {blob.hex()}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(1.0, max(0.0, deadline - loop.time()))):
                    await self._changed.wait()

    def _candidates(self, blob: bytes) -> list[PeerConnection]:
        announced = self.announcers.get(blob, set())
        peers = [p for a, p in self.node.peers.items() if a in announced]
        return peers or list(self.node.peers.values())

    async def _ask_manifest(self, peer: PeerConnection, blob: bytes) -> Manifest | None:
        try:
            answer = await self.node.request(peer, GetManifest(self.node.next_req_id(), blob))
        except RequestFailed:
            return None
        if not isinstance(answer, Manifest):
            return None
        if answer.blob != blob or len(answer.chunk_hashes) != chunk_count(answer.size):
            self.node.penalize(peer, Offence.BAD_RESPONSE)
            return None
        if answer.size > self.store.max_blob_size or answer.size > MAX_MANIFEST_CHUNKS * CHUNK_SIZE:
            raise BlobTooLarge(
                f"blob {blob.hex()} has {answer.size} bytes, limit {self.store.max_blob_size}"
            )
        return answer


class _Transfer:
    """One fetch in progress: chunk bookkeeping and per-peer workers."""

    def __init__(
        self,
        service: BlobService,
        blob: bytes,
        size: int,
        hashes: list[bytes],
        done: set[int],
        part: Path,
        progress: Progress | None,
    ) -> None:
        self.service = service
        self.node = service.node
        self.blob = blob
        self.size = size
        self.hashes = hashes
        self.done = done
        self.missing: deque[int] = deque(i for i in range(len(hashes)) if i not in done)
        self.part = part
        self.progress = progress
        self.received = sum(self._chunk_len(i) for i in done)
        self.active: Counter[Address] = Counter()
        self.whole = hashlib.sha256()
        self._hash_queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        """SHA-256 of the verified prefix, advanced as chunks are written."""
        self.hashed = 0
        self.ahead: dict[int, bytes] = {}
        self.verified: asyncio.Queue[tuple[int, bytes, Address]] = asyncio.Queue(16)
        """Checked chunks waiting for the writer (bounds memory to 16 chunks)."""
        self.excluded: set[Address] = set()

    def _chunk_len(self, index: int) -> int:
        return min(CHUNK_SIZE, self.size - index * CHUNK_SIZE)

    async def run(self, sources: set[Address], patience: float) -> None:
        if self.progress is not None:
            self.progress(self.received, self.size)
        loop = asyncio.get_running_loop()
        fd = os.open(self.part, os.O_RDWR)
        hasher = asyncio.create_task(asyncio.to_thread(self._hash_thread))
        try:
            self._drain_prefix(fd)  # chunks kept from an earlier attempt
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._write_verified(fd))
                idle_since = loop.time()
                while len(self.done) < len(self.hashes):
                    announced = self.service.announcers.get(self.blob, set())
                    for address in (sources | announced) - set(self.active) - self.excluded:
                        peer = self.node.peers.get(address)
                        if peer is not None and self.missing:
                            self.active[address] += self.service.window
                            for _ in range(self.service.window):
                                tg.create_task(self._worker(peer))
                    if self.active:
                        idle_since = loop.time()
                    elif loop.time() - idle_since > patience:
                        raise BlobUnavailable(f"every source of {self.blob.hex()} is gone")
                    self.service._changed.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(0.5):
                            await self.service._changed.wait()
        finally:
            self._hash_queue.put(None)  # the thread always ends, even on error
            await asyncio.shield(hasher)
            os.close(fd)

    def _hash_thread(self) -> None:
        """Feeds the whole-blob hash on its own thread so it overlaps with receiving."""
        while (data := self._hash_queue.get()) is not None:
            self.whole.update(data)

    def _advance_hash(self, fd: int, index: int, data: bytes) -> None:
        """[WIRE-BLOB.7] Extends the whole-blob hash over the contiguous verified prefix.

        Chunks that arrive ahead of the prefix wait in memory (at most
        ``_HASH_AHEAD`` of them) or are read back from the file later.
        """
        if index != self.hashed:
            if len(self.ahead) < _HASH_AHEAD:
                self.ahead[index] = data
            return
        self._hash_queue.put(data)
        self.hashed += 1
        self._drain_prefix(fd)

    def _drain_prefix(self, fd: int) -> None:
        while self.hashed in self.done:
            nxt = self.ahead.pop(self.hashed, None)
            if nxt is None:
                nxt = os.pread(fd, self._chunk_len(self.hashed), self.hashed * CHUNK_SIZE)
            self._hash_queue.put(nxt)
            self.hashed += 1

    async def _worker(self, peer: PeerConnection) -> None:
        """Pulls chunks from one peer until none are missing or the peer fails."""
        try:
            while self.missing and peer.address not in self.excluded:
                index = self.missing.popleft()
                try:
                    answer = await self.node.request(
                        peer, GetChunk(self.node.next_req_id(), self.blob, index)
                    )
                except RequestFailed as e:
                    self.missing.appendleft(index)
                    self.service._changed.set()
                    log.info("chunk %d from %r failed: %s", index, peer, e)
                    self.excluded.add(peer.address)
                    return
                data = answer.data if isinstance(answer, Chunk) else None
                if data is None or not await asyncio.to_thread(self._check, index, data):
                    if data is not None:
                        self.node.penalize(peer, Offence.BAD_RESPONSE)
                    self.missing.appendleft(index)
                    self.excluded.add(peer.address)
                    self.service._changed.set()
                    return
                await self.verified.put((index, data, peer.address))
            if len(self.done) == len(self.hashes):
                self.service._changed.set()
        finally:
            self.active[peer.address] -= 1
            if self.active[peer.address] <= 0:
                del self.active[peer.address]
                self.service._changed.set()

    def _check(self, index: int, data: bytes) -> bool:
        """[WIRE-BLOB.5] A chunk must have the manifest's length and hash."""
        return (
            len(data) == self._chunk_len(index)
            and hashlib.sha256(data).digest() == self.hashes[index]
        )

    async def _write_verified(self, fd: int) -> None:
        """Writes checked chunks in arrival order and advances the whole-blob hash."""
        while len(self.done) < len(self.hashes):
            index, data, source = await self.verified.get()
            os.pwrite(fd, data, index * CHUNK_SIZE)
            self.done.add(index)
            self._advance_hash(fd, index, data)
            self.service.chunks_from.setdefault(self.blob, Counter())[source] += 1
            self.received += self._chunk_len(index)
            if self.progress is not None:
                self.progress(self.received, self.size)
        self.service._changed.set()
