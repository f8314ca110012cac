"""The snapshots a node takes and serves [SNAP-BODY.1] [SNAP-MANIFEST.1] [WIRE-SNAP.2].

At each digest height that is a multiple of ``[statesync] snapshot_every``, after the
block is committed, the node copies its state's tables (a shallow copy: records are
never changed in place), writes the body in a thread, stores it as a blob (served
chunk by chunk to whoever asks), and keeps ``[manifest, header, certificate]`` as an
offer under ``data/snapshots/``. The newest ``snapshot_keep`` are served; older ones,
with their blobs, are removed. Offers survive a restart.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import Callable
from pathlib import Path

from chain.blocks import Block
from chain.encoding import decode, encode
from chain.errors import ChainError
from chain.ledger import Ledger
from chain.state import State
from chain.statesync.roots import RootParts, is_digest_height
from chain.statesync.snapshot import SnapshotManifest, manifest_of, write_body
from client.node.statesync_policy import StateSyncPolicy
from p2p.blobstore import BlobStore

log = logging.getLogger("learningchain.snapshots")

Offer = list[bytes]
"""``[manifest, header, certificate]`` as served [WIRE-SNAP.2]."""


class SnapshotKeeper:
    """Takes, keeps and serves this node's snapshots (``p2p.snapshots.SnapshotSource``)."""

    def __init__(self, folder: Path, ledger: Ledger, policy: StateSyncPolicy,
                 blobs: BlobStore, announce: Callable[[bytes], None]) -> None:
        self.folder = folder
        self.ledger = ledger
        self.policy = policy
        self.blobs = blobs
        self._announce = announce
        self._offers: dict[int, Offer] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.taken = 0
        """Snapshots taken by this process (a metric)."""

    def load(self) -> None:
        """The offers kept before a restart whose body blob is still stored."""
        self.folder.mkdir(parents=True, exist_ok=True)
        for path in sorted(self.folder.glob("*.offer")):
            try:
                offer = decode(path.read_bytes(), max_size=256 * 1024)
                manifest = SnapshotManifest.decode(offer[0])
            except (ChainError, OSError, IndexError, TypeError) as e:
                log.warning("snapshot offer %s unreadable (%s): removed", path.name, e)
                path.unlink(missing_ok=True)
                continue
            if self.blobs.has(manifest.body_blob):
                self._offers[int(manifest.height)] = list(offer)
            else:
                path.unlink(missing_ok=True)

    # -- p2p.snapshots.SnapshotSource ------------------------------------------------

    def snapshot_offers(self) -> list[Offer]:
        return [self._offers[h] for h in sorted(self._offers, reverse=True)]

    def walk_entries(self, above: int, limit: int) -> list[bytes]:
        return self.ledger.storage.walk_entries(above, limit)

    # -- taking one ------------------------------------------------------------------

    def after_commit(self, block: Block, certificate: bytes) -> None:
        """Called after each committed block; starts a snapshot at its heights."""
        height = int(block.header.height)
        every = self.policy.snapshot_every
        output = self.ledger.last_output
        if (not every or height % every or not is_digest_height(height) or output is None
                or output.parts is None or output.parts.content_digest == bytes(32)):
            return
        state = self.ledger.state
        frozen = State(state.chain_id, state.height, state.block_hash, state.time_ms,
                       state.state_root, {t: dict(rows) for t, rows in state.tables.items()})
        task = asyncio.get_running_loop().create_task(
            self._take(frozen, output.parts, block, certificate), name=f"snapshot-{height}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _take(self, state: State, parts: RootParts, block: Block,
                    certificate: bytes) -> None:
        try:
            blob, size, count = await asyncio.to_thread(self._write, state)
            self._announce(blob)
            manifest = manifest_of(state, parts, blob, size, count)
            offer = [manifest.encode(), block.header.encode(), certificate]
            (self.folder / f"{int(state.height):012d}.offer").write_bytes(encode(offer))
            self._offers[int(state.height)] = offer
            self.taken += 1
            log.info("snapshot of height %d: %d records, %d bytes, blob %s", state.height,
                     count, size, blob.hex()[:16])
            self._forget_old()
        except (OSError, ChainError) as e:  # a full disk: the node goes on without it
            log.error("snapshot of height %d failed: %s", state.height, e)

    def _write(self, state: State) -> tuple[bytes, int, int]:
        """In a thread: the body into a temp file, then into the blob store (linked)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("wb", dir=self.folder, suffix=".body",
                                         delete=False) as f:
            size, count = write_body(state, f)
        path = Path(f.name)
        try:
            try:
                blob = self.blobs.put_file(path, link=True)
            except OSError:
                blob = self.blobs.put_file(path)
        finally:
            path.unlink(missing_ok=True)
        return blob, size, count

    def _forget_old(self) -> None:
        for height in sorted(self._offers)[:-self.policy.snapshot_keep]:
            offer = self._offers.pop(height)
            self.blobs.remove(SnapshotManifest.decode(offer[0]).body_blob)
            (self.folder / f"{height:012d}.offer").unlink(missing_ok=True)

    async def wait_idle(self) -> None:
        """Waits for the snapshots being written (tests, a clean stop)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
