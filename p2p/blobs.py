"""Blob transfer: serve stored blobs, fetch missing ones in checked chunks [WIRE-BLOB.*].

Fetching ``blob`` (its chunk-list id, ``chain.content.blob_id``):

1. Ask peers that announced it (``BlobHave``; else every peer) for its
   manifest: size and the SHA-256 of each 1 MiB chunk. The manifest must
   hash to ``blob`` [WIRE-BLOB.4], so one honest answer is enough and a lying
   peer is caught at once. A size over the store's bound is refused before
   anything is written [WIRE-BLOB.6].
2. Pull chunks from all announcers at once. Each source is asked for a bulk
   token [WIRE-BLOB.9]; with one, a couple of worker threads pull runs of
   consecutive chunks over HTTP range requests (``p2p.bulk``), otherwise a
   few ``getchunk`` requests stay in flight over the WebSocket. Each chunk is
   checked against the manifest on arrival and written at its offset in
   ``partial/<hex>``; a bad chunk costs its sender score and that peer is
   dropped from this fetch [WIRE-BLOB.5].
3. A peer that disconnects or stalls hands its chunks back to the others;
   peers that announce the blob later join in. A fetch that restarts first
   re-checks what the partial file already holds [WIRE-BLOB.8].
4. When every chunk is in, the file is flushed and renamed into the store
   [WIRE-BLOB.7]. Every byte was hashed exactly once, on arrival.

Serving a blob we lack but a peer announced [WIRE-BLOB.10]: we answer ``notfound``,
fetch it ourselves and announce it, so the asker (who retries until its patience runs
out) gets it from us. That is how a blob held only by a node nobody can dial (behind
NAT, [WIRE-PEX.4]) reaches a node it never connected to.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

from aiohttp import web
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from chain.content import blob_id, chunk_count
from chain.types import Address
from p2p.blobstore import BlobError, BlobStore, BlobTooLarge, BlobUnavailable, BlobWriteFailed
from p2p.bulk import (
    BULK_SERVICE,
    RUN_CHUNKS,
    BadChunk,
    BulkError,
    BulkGrants,
    BulkStream,
    Cancelled,
    chunk_range,
    seal_chunk,
    sealed_length,
)
from p2p.node import Node, RequestFailed
from p2p.peer import PeerConnection
from p2p.scoring import Offence
from p2p.wire import (
    CHUNK_SIZE,
    MAX_BLOB_HAVE,
    MAX_MANIFEST_CHUNKS,
    BlobHave,
    BulkGrant,
    Chunk,
    GetBulk,
    GetChunk,
    GetManifest,
    Manifest,
    NotFound,
    chunk_frame_header,
)
from p2p.writeback import start_writeback

log = logging.getLogger(__name__)

RELAY_MAX_BYTES = 64 * 1024 * 1024
"""[WIRE-BLOB.10] The largest blob fetched for another peer's sake."""
RELAY_AT_ONCE = 2
"""[WIRE-BLOB.10] Relay fetches in progress at most."""
RELAY_PATIENCE_S = 30.0

Progress = Callable[[int, int], None]
"""Called with (verified bytes so far, total bytes)."""


class BlobService:
    """Serves the local store and fetches blobs from peers."""

    def __init__(
        self,
        node: Node,
        store: BlobStore,
        *,
        window: int = 8,
        bulk: bool = True,
        bulk_streams: int = 2,
    ) -> None:
        self.node = node
        self.store = store
        self.window = window
        """``getchunk`` requests in flight per peer (WebSocket path)."""
        self.bulk = bulk
        """Serve and use the bulk stream [WIRE-BLOB.9]; off, chunks travel only over WebSockets."""
        self.bulk_streams = bulk_streams
        """Concurrent range requests per source: two keep both cores hashing."""
        self.grants = BulkGrants()
        self.executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="lc-bulk")
        """Bulk stream threads, apart from the default executor so they never starve it."""
        self.announcers: dict[bytes, set[Address]] = {}
        self.chunks_from: dict[bytes, Counter[Address]] = {}
        """Per fetched blob, how many verified chunks each peer supplied."""
        self.stats: Counter[str] = Counter()
        """Metrics: fetches started/completed/``failed:<error>``, bytes fetched and served."""
        self._changed = asyncio.Event()
        self._in_flight: set[bytes] = set()
        """Blobs being fetched now (by ``fetch``): never two fetches of one blob at once."""
        self._relays: set[asyncio.Task[None]] = set()
        node.on(BlobHave, self._on_have)
        node.on(GetManifest, self._on_get_manifest)
        node.on(GetChunk, self._on_get_chunk)
        node.on(GetBulk, self._on_get_bulk)
        node.add_get_route(BULK_SERVICE, self._serve_bulk)
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
        self.grants.revoke_peer(peer.address)
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
            self._relay(peer, message.blob)
            await peer.send(NotFound(message.req_id))
            return
        size, hashes = manifest
        await peer.send(Manifest(message.req_id, message.blob, size, hashes))

    def _relay(self, asker: PeerConnection, blob: bytes) -> None:
        """[WIRE-BLOB.10] Fetch ``blob`` for ``asker`` when another connected peer announced
        it: bounded in size and in number, never a second fetch of a blob in flight."""
        holders = self.announcers.get(blob, set()) - {asker.address}
        if (not holders.intersection(self.node.peers) or blob in self._in_flight
                or len(self._relays) >= RELAY_AT_ONCE):
            return

        async def relay() -> None:
            try:
                await self.fetch(blob, patience=RELAY_PATIENCE_S, limit=RELAY_MAX_BYTES)
                self.stats["relayed"] += 1
                log.info("relayed blob %s for %s", blob.hex()[:16], asker.address.hex()[:12])
            except (BlobUnavailable, BlobTooLarge, OSError) as e:
                log.info("relay of blob %s failed: %s", blob.hex()[:16], e)

        task = asyncio.get_running_loop().create_task(relay())
        self._relays.add(task)
        task.add_done_callback(self._relays.discard)

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

    async def _on_get_bulk(self, peer: PeerConnection, message: GetBulk) -> None:
        """[WIRE-BLOB.9] A token for range requests, to peers we would serve chunks to."""
        token = None
        if self.bulk and self.store.has(message.blob):
            token = self.grants.issue(
                peer.address, message.blob, time.monotonic(), peer.session.handshake_hash
            )
        await peer.send(
            BulkGrant(message.req_id, token) if token is not None else NotFound(message.req_id)
        )

    async def _serve_bulk(self, request: web.Request) -> web.StreamResponse:
        """[WIRE-BLOB.9] [WIRE-SECURE.6] ``GET /p2p/blob/<grant id>`` with a chunk-aligned
        ``Range``: those chunks, each sealed under the grant's key. The next chunk is read
        and sealed on a thread while the current one is written."""
        try:
            grant_id = bytes.fromhex(request.match_info["arg"])
        except ValueError:
            raise web.HTTPBadRequest(text="grant id must be hex") from None
        grant = self.grants.open_stream(grant_id, time.monotonic())
        if grant is None:
            raise web.HTTPForbidden(text="no live bulk grant")
        try:
            if not self.store.has(grant.blob):
                raise web.HTTPNotFound(text="blob not stored")
            path = self.store.path(grant.blob)
            size = path.stat().st_size
            span = chunk_range(request.headers.get("Range", ""), size)
            if span is None:
                raise web.HTTPRequestRangeNotSatisfiable(text="ranges must be whole chunks")
            first, count = span
            response = web.StreamResponse(status=206)
            response.content_length = sealed_length(first, count, size)
            response.content_type = "application/octet-stream"
            await response.prepare(request)
            aead = AESGCM(grant.key)
            loop = asyncio.get_running_loop()
            with open(path, "rb", buffering=0) as file:
                fd = file.fileno()

                def sealed(index: int) -> bytes:
                    return seal_chunk(aead, index, os.pread(fd, CHUNK_SIZE, index * CHUNK_SIZE))

                ahead = loop.run_in_executor(None, sealed, first)
                try:
                    for index in range(first, first + count):
                        data = await ahead
                        if index + 1 < first + count:
                            ahead = loop.run_in_executor(None, sealed, index + 1)
                        await response.write(data)
                finally:  # a fetcher gone mid-stream: never close the file under a read
                    await asyncio.wait([ahead])  # in flight (its fd could be reused)
                    if not ahead.cancelled():
                        ahead.exception()  # retrieved, so nothing is logged as lost
            await response.write_eof()
            self.stats["bulk_streams_served"] += 1
            self.stats["bytes_served"] += response.content_length or 0
            return response
        finally:
            self.grants.close_stream(grant_id, time.monotonic())

    # -- fetching ----------------------------------------------------------

    async def fetch(
        self, blob: bytes, *, progress: Progress | None = None, patience: float = 30.0,
        limit: int | None = None,
    ) -> Path:
        """Fetches ``blob`` into the store and returns its path.

        Raises ``BlobTooLarge`` (over the store's bound, or ``limit``), or
        ``BlobUnavailable`` when no peer serves it (a correct manifest and every
        chunk) for ``patience`` seconds. A second fetch of a blob in flight waits
        for the first.
        """
        while blob in self._in_flight:
            await asyncio.sleep(0.1)
        if self.store.has(blob):
            return self.store.path(blob)
        self.stats["fetches_started"] += 1
        self._in_flight.add(blob)
        try:
            path = await self._fetch(blob, progress, patience, limit)
        except BaseException as e:
            self.stats[f"failed:{type(e).__name__}"] += 1
            raise
        finally:
            self._in_flight.discard(blob)
        self.stats["fetches_completed"] += 1
        return path

    async def _fetch(self, blob: bytes, progress: Progress | None, patience: float,
                     limit: int | None) -> Path:
        size, hashes, sources = await self._agree_on_manifest(blob, patience)
        if limit is not None and size > limit:
            raise BlobTooLarge(f"blob {blob.hex()} has {size} bytes, limit {limit}")
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
        self.excluded: set[Address] = set()
        self.tokens: dict[Address, asyncio.Task[bytes | None]] = {}
        self.cancelled = threading.Event()
        """Set when the fetch ends: bulk threads stop at their next chunk."""
        self.fd = -1
        self._writers = 0
        self._closing = threading.Condition()
        """Close waits for writes in flight: a finished fetch must not write to a reused fd."""

    def _chunk_len(self, index: int) -> int:
        return min(CHUNK_SIZE, self.size - index * CHUNK_SIZE)

    async def run(self, sources: set[Address], patience: float) -> None:
        if self.progress is not None:
            self.progress(self.received, self.size)
        loop = asyncio.get_running_loop()
        self.fd = os.open(self.part, os.O_RDWR)
        try:
            await self._run(sources, patience, loop)
        except BaseExceptionGroup as group:  # the TaskGroup's: one error, as callers expect
            raise _first_blob_error(group) from None
        finally:
            self.cancelled.set()
            for task in self.tokens.values():
                task.cancel()
            with self._closing:
                self._closing.wait_for(lambda: self._writers == 0)
                os.close(self.fd)
                self.fd = -1

    async def _run(self, sources: set[Address], patience: float,
                   loop: asyncio.AbstractEventLoop) -> None:
        per_peer = self.service.bulk_streams if self.service.bulk else self.service.window
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
                        self.active[peer.address] += per_peer
                    # round-robin, so the first chunks are spread over every source
                    for _ in range(per_peer):
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

    async def _worker(self, peer: PeerConnection) -> None:
        """Pulls chunks from one peer until none are missing or the peer fails."""
        try:
            if self.service.bulk:
                if await self._bulk_loop(peer):
                    return
                # no bulk stream with this peer: this worker's share of getchunk requests
                share = max(1, self.service.window // self.service.bulk_streams)
                await asyncio.gather(*(self._chunk_loop(peer) for _ in range(share)))
            else:
                await self._chunk_loop(peer)
        finally:
            self.active[peer.address] -= 1
            if self.active[peer.address] <= 0:
                del self.active[peer.address]
                self.service._changed.set()

    async def _chunk_loop(self, peer: PeerConnection) -> None:
        """[WIRE-BLOB.5] ``getchunk`` one at a time over the WebSocket."""
        while self.missing and peer.address not in self.excluded:
            index = self.missing.popleft()
            try:
                answer = await self.node.request(
                    peer, GetChunk(self.node.next_req_id(), self.blob, index)
                )
            except RequestFailed as e:
                self._give_back([index])
                log.info("chunk %d from %r failed: %s", index, peer, e)
                self.excluded.add(peer.address)
                return
            data = answer.data if isinstance(answer, Chunk) else None
            if data is None or not await asyncio.to_thread(self._check_and_write, index, data):
                if data is not None:
                    self.node.penalize(peer, Offence.BAD_RESPONSE)
                self._give_back([index])
                self.excluded.add(peer.address)
                return
            self._record(index, peer.address)

    async def _bulk_loop(self, peer: PeerConnection) -> bool:
        """[WIRE-BLOB.9] Runs of chunks over the bulk stream; False: use getchunk instead."""
        token = await self._token(peer)
        endpoint = self.node.reach.endpoint(peer)  # [WIRE-PEX.4] unproven: getchunk
        if token is None or endpoint is None:
            return False
        stream = BulkStream(
            endpoint[0], endpoint[1], self.blob, token, self.size,
            handshake_hash=peer.session.handshake_hash, timeout=self.node.config.request_timeout,
        )  # fmt: skip
        loop = asyncio.get_running_loop()
        while self.missing and peer.address not in self.excluded:
            run = self._claim_run()
            verified: list[int] = []

            def on_verified(index: int, verified: list[int] = verified) -> None:
                verified.append(index)
                if not self.cancelled.is_set():
                    with contextlib.suppress(RuntimeError):  # the loop closed under us
                        loop.call_soon_threadsafe(self._record, index, peer.address)

            try:
                await loop.run_in_executor(
                    self.service.executor, stream.fetch_run, run[0], len(run),
                    self._check_and_write, on_verified, self.cancelled,
                )  # fmt: skip
            except BadChunk as e:
                log.info("bulk stream from %r: %s", peer, e)
                self.node.penalize(peer, Offence.BAD_RECORD if e.sealed else Offence.BAD_RESPONSE)
                self.excluded.add(peer.address)
                return True
            except BulkError as e:
                log.info("bulk stream from %r unusable, falling back to getchunk: %s", peer, e)
                return False
            except Cancelled:
                return True
            finally:
                self._give_back([i for i in run if i not in set(verified)])
        await loop.run_in_executor(self.service.executor, stream.close)
        return True

    async def _token(self, peer: PeerConnection) -> bytes | None:
        """One bulk token per source and fetch, shared by that source's streams."""
        task = self.tokens.get(peer.address)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._ask_token(peer))
            self.tokens[peer.address] = task
        return await asyncio.shield(task)

    async def _ask_token(self, peer: PeerConnection) -> bytes | None:
        try:
            answer = await self.node.request(peer, GetBulk(self.node.next_req_id(), self.blob))
        except RequestFailed:
            return None
        return answer.token if isinstance(answer, BulkGrant) else None

    def _claim_run(self) -> list[int]:
        """Up to ``RUN_CHUNKS`` consecutive missing chunks, from the front of the queue."""
        run = [self.missing.popleft()]
        while len(run) < RUN_CHUNKS and self.missing and self.missing[0] == run[-1] + 1:
            run.append(self.missing.popleft())
        return run

    def _give_back(self, indices: list[int]) -> None:
        if indices:
            self.missing.extendleft(reversed(indices))
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
        with self._closing:
            if self.fd < 0:
                return False
            self._writers += 1
        try:
            offset = index * CHUNK_SIZE
            _pwrite_all(self.fd, data, offset)
            start_writeback(self.fd, offset, len(data))
            return True
        except OSError as e:  # [WIRE-BLOB.11] our disk, not the sender's chunk
            raise BlobWriteFailed(f"cannot write blob {self.blob.hex()} here: {e}",
                                  e.errno) from e
        finally:
            with self._closing:
                self._writers -= 1
                self._closing.notify_all()

    def _record(self, index: int, source: Address) -> None:
        if index in self.done:
            return
        self.done.add(index)
        self.service.chunks_from.setdefault(self.blob, Counter())[source] += 1
        self.received += self._chunk_len(index)
        self.service.stats["bytes_fetched"] += self._chunk_len(index)
        if self.progress is not None:
            self.progress(self.received, self.size)
        if len(self.done) == len(self.hashes):
            self.service._changed.set()


def _first_blob_error(group: BaseExceptionGroup) -> BaseException:
    """[WIRE-BLOB.11] The fetch's one error out of its TaskGroup's group: a blob error
    (this node's write refused, every source gone) as itself; anything else, the group."""
    for e in group.exceptions:
        found = _first_blob_error(e) if isinstance(e, BaseExceptionGroup) else e
        if isinstance(found, BlobError):
            return found
    return group


def _pwrite_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        if written <= 0:
            raise OSError(f"pwrite wrote {written} bytes")
        view = view[written:]
        offset += written

