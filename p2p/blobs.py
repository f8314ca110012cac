"""Blob transfer: serve stored blobs, fetch missing ones in checked chunks [WIRE-BLOB.*].

Fetching ``blob`` (its chunk-list id, ``chain.content.blob_id``):

1. Ask peers that announced it (``BlobHave``; else every peer) for its
   manifest: size and the SHA-256 of each 1 MiB chunk. The manifest must
   hash to ``blob`` [WIRE-BLOB.4], so one honest answer is enough and a lying
   peer is caught at once. A size over the store's bound is refused before
   anything is written [WIRE-BLOB.6].
2. Pull chunks from all announcers at once, a few requests in flight per
   peer. Each chunk is checked against the manifest on arrival and written at
   its offset in ``partial/<hex>``; a bad chunk costs its sender score and
   that peer is dropped from this fetch [WIRE-BLOB.5].
3. A peer that disconnects or stalls hands its chunks back to the others;
   peers that announce the blob later join in. A fetch that restarts first
   re-checks what the partial file already holds [WIRE-BLOB.8].
4. When every chunk is in, the file is flushed and renamed into the store
   [WIRE-BLOB.7]. Every byte was hashed exactly once, on arrival.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import threading
from collections import Counter, deque
from collections.abc import Callable
from functools import partial
from pathlib import Path

from chain.content import blob_id, chunk_count
from chain.types import Address
from p2p.blobstore import BlobStore, BlobTooLarge, BlobUnavailable
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
    chunk_frame_header,
)
from p2p.writeback import start_writeback

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
"""Called with (verified bytes so far, total bytes)."""


class BlobService:
    """Serves the local store and fetches blobs from peers."""

    def __init__(self, node: Node, store: BlobStore, *, window: int = 8) -> None:
        self.node = node
        self.store = store
        self.window = window
        """Chunk requests in flight per peer."""
        self.announcers: dict[bytes, set[Address]] = {}
        self.chunks_from: dict[bytes, Counter[Address]] = {}
        """Per fetched blob, how many verified chunks each peer supplied."""
        self.stats: Counter[str] = Counter()
        """Metrics: fetches started/completed/``failed:<error>``, bytes fetched and served."""
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
        frame = self.store.read_chunk_frame(
            message.blob, message.index, partial(chunk_frame_header, message.req_id)
        )
        if frame is None:
            await peer.send(NotFound(message.req_id))
            return
        await peer.send_frame(frame)
        self.stats["chunks_served"] += 1
        self.stats["bytes_served"] += len(frame)

    # -- fetching ----------------------------------------------------------

    async def fetch(
        self, blob: bytes, *, progress: Progress | None = None, patience: float = 30.0
    ) -> Path:
        """Fetches ``blob`` into the store and returns its path.

        Raises ``BlobTooLarge``, or ``BlobUnavailable`` when no peer serves it
        (a correct manifest and every chunk) for ``patience`` seconds.
        """
        if self.store.has(blob):
            return self.store.path(blob)
        self.stats["fetches_started"] += 1
        try:
            path = await self._fetch(blob, progress, patience)
        except BaseException as e:
            self.stats[f"failed:{type(e).__name__}"] += 1
            raise
        self.stats["fetches_completed"] += 1
        return path

    async def _fetch(self, blob: bytes, progress: Progress | None, patience: float) -> Path:
        size, hashes, sources = await self._agree_on_manifest(blob, patience)
        part = self.store.partial_path(blob)
        done = set(await asyncio.to_thread(self.store.partial_chunks, blob, hashes, size))
        if not part.is_file() or part.stat().st_size != size:
            with part.open("wb") as f:
                f.truncate(size)
        transfer = _Transfer(self, blob, size, hashes, done, part, progress)
        await transfer.run(sources, patience)
        await asyncio.to_thread(self.store.commit_verified, blob, part, size, hashes)
        self.announce(blob)
        return self.store.path(blob)

    async def _agree_on_manifest(
        self, blob: bytes, patience: float
    ) -> tuple[int, list[bytes], set[Address]]:
        """[WIRE-BLOB.4] The (size, chunk hashes) that hash to ``blob``, and who sent it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + patience
        while True:
            peers = self._candidates(blob)
            answers = await asyncio.gather(*(self._ask_manifest(p, blob) for p in peers))
            good = [(p, a) for p, a in zip(peers, answers, strict=True) if a is not None]
            if good:
                first = good[0][1]
                return first.size, list(first.chunk_hashes), {p.address for p, _ in good}
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
        if (answer.blob != blob or len(answer.chunk_hashes) != chunk_count(answer.size)
                or blob_id(answer.size, answer.chunk_hashes) != blob):
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
        self.fd = -1
        self._fd_lock = threading.Lock()
        """Close waits for a write in flight: a cancelled fetch must not write to a reused fd."""
        self.excluded: set[Address] = set()

    def _chunk_len(self, index: int) -> int:
        return min(CHUNK_SIZE, self.size - index * CHUNK_SIZE)

    async def run(self, sources: set[Address], patience: float) -> None:
        if self.progress is not None:
            self.progress(self.received, self.size)
        loop = asyncio.get_running_loop()
        self.fd = os.open(self.part, os.O_RDWR)
        try:
            async with asyncio.TaskGroup() as tg:
                idle_since = loop.time()
                while len(self.done) < len(self.hashes):
                    announced = self.service.announcers.get(self.blob, set())
                    joining = [
                        peer for address in sorted((sources | announced) - set(self.active)
                                                   - self.excluded)
                        if (peer := self.node.peers.get(address)) is not None
                    ]
                    if joining and self.missing:
                        for peer in joining:
                            self.active[peer.address] += self.service.window
                        # round-robin, so the first chunks are spread over every source
                        for _ in range(self.service.window):
                            for peer in joining:
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
            with self._fd_lock:
                os.close(self.fd)
                self.fd = -1

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
                if data is None or not await asyncio.to_thread(self._check_and_write, index, data):
                    if data is not None:
                        self.node.penalize(peer, Offence.BAD_RESPONSE)
                    self.missing.appendleft(index)
                    self.excluded.add(peer.address)
                    self.service._changed.set()
                    return
                self._record(index, peer.address)
        finally:
            self.active[peer.address] -= 1
            if self.active[peer.address] <= 0:
                del self.active[peer.address]
                self.service._changed.set()

    def _check_and_write(self, index: int, data: bytes | memoryview) -> bool:
        """[WIRE-BLOB.5] Checks a chunk's length and hash, then writes it at its offset.

        Runs on a worker thread (hashlib and pwrite release the GIL), so the
        event loop keeps receiving while chunks are hashed and written.
        """
        if len(data) != self._chunk_len(index):
            return False
        if hashlib.sha256(data).digest() != self.hashes[index]:
            return False
        with self._fd_lock:
            if self.fd < 0:
                return False
            os.pwrite(self.fd, data, index * CHUNK_SIZE)
            start_writeback(self.fd, index * CHUNK_SIZE, len(data))
        return True

    def _record(self, index: int, source: Address) -> None:
        self.done.add(index)
        self.service.chunks_from.setdefault(self.blob, Counter())[source] += 1
        self.received += self._chunk_len(index)
        self.service.stats["bytes_fetched"] += self._chunk_len(index)
        if self.progress is not None:
            self.progress(self.received, self.size)
        if len(self.done) == len(self.hashes):
            self.service._changed.set()
