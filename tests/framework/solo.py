"""A one-process ``NodeHandle``: a real ledger, mempool and blob store, no network.

It commits a block every ``block_interval`` seconds (empty ones too, so job
windows that are measured in block time pass), as a lone validator would.
Tests of the HTTP API and the worker use it to run fast against real
storage and real rules; the multi-process graph tests use ``LedgerNode``.
It is not a mock: every transaction goes through ``Mempool`` admission and
``Ledger.apply`` exactly as on a full node.

Its clock is the wall clock, which a test may move forward (``skip_to``) once
nothing is left to happen before a deadline: a job's expiry after every worker
has claimed and stopped training, a commit window after every voter has voted.
The blocks that follow carry the later time, as if the test had slept; the
windows stay what they are, bounds for the work a loaded machine must fit in.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Callable
from pathlib import Path

from chain.blocks import Block
from chain.crypto import PrivateKey
from chain.genesis import Genesis
from chain.ledger import Ledger
from chain.mempool import AddResult, Mempool
from chain.storage import sqlite_url
from chain.transactions import SignedTransaction
from chain.types import TimeMs
from chain.versions import MAX_PROTOCOL_VERSION
from client.node.handle import BlockListener, CommittedBlock, NodeStatus
from client.node.stored_chain import StoredChainReads
from p2p.blobstore import BlobStore, BlobUnavailable

log = logging.getLogger(__name__)


class SoloNode(StoredChainReads):
    """Implements ``client.node.handle.NodeHandle`` for one validator key, without peers."""

    def __init__(
        self,
        genesis: Genesis,
        key: PrivateKey,
        data_dir: Path,
        *,
        block_interval: float = 0.2,
        clock: Callable[[], int] | None = None,
    ) -> None:
        self.genesis = genesis
        self.key = key
        self.data_dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        self.ledger = Ledger.open(sqlite_url(data_dir), genesis)
        self.mempool = Mempool(self.ledger.state, self.ledger.signatures)
        self.blob_store = BlobStore(data_dir / "blobs")
        self.blobs = self.blob_store
        """The store (this node has no blob service); kept under the name tests use."""
        self.block_interval = block_interval
        self._clock = clock or (lambda: int(time.time() * 1000))
        self._skipped_ms = 0
        """How far ``skip_to`` moved this node's clock ahead of ``clock``."""
        self._listeners: list[BlockListener] = []
        self._tick_listeners: list[Callable[[], None]] = []
        self._task: asyncio.Task[None] | None = None
        self.roles: tuple[str, ...] = ("validator", "worker")

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="solo-blocks")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.ledger.close()

    async def __aenter__(self) -> SoloNode:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.block_interval)
            await self.commit_block()

    async def commit_block(self) -> Block:
        """Proposes and applies one block of pending transactions; tells listeners."""
        time_ms = TimeMs(max(self.now_ms(), self.ledger.state.time_ms + 1))
        block = self.ledger.propose(self.mempool.reap(5_000), time_ms, self.key.address)
        self.ledger.apply(block, b"")
        self.mempool.update(list(block.txs), time_ms)
        event = CommittedBlock(block, b"", time_ms)
        for listener in list(self._listeners):
            try:
                result = listener(event)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("block listener failed")
        return block

    # -- NodeHandle ----------------------------------------------------------

    def now_ms(self) -> int:
        return self._clock() + self._skipped_ms

    def skip_to(self, time_ms: int) -> None:
        """Moves this node's clock forward to ``time_ms`` (never back): the next block is
        stamped then, and every window ending by then closes in it, as after a sleep."""
        self._skipped_ms += max(0, time_ms - self.now_ms())

    def status(self) -> NodeStatus:
        height = self.height
        return NodeStatus(
            chain_id=self.chain_id, address=self.key.address, roles=self.roles,
            height=height, last_block_time_ms=self.state.time_ms,
            last_block_hash=self.state.block_hash if height else None,
            state_root=self.state.state_root, caught_up=True, consensus_round=0,
            mempool_txs=len(self.mempool), peers=(), p2p_endpoint="", api_endpoint="",
            protocol={"version": self.state.protocol_version,
                      "max_known_version": MAX_PROTOCOL_VERSION, "upgrade_plan": None,
                      "upgrade_required": None},
        )

    def submit(self, tx: SignedTransaction) -> AddResult:
        return self.mempool.add(tx, self.now_ms())

    def put_blob_file(self, path: Path) -> bytes:
        return self._store_blob_file(path)

    async def fetch_blob(
        self, blob: bytes, progress: Callable[[int, int], None] | None = None
    ) -> Path:
        path = self.blob_path(blob)
        if path is None:
            raise BlobUnavailable(f"blob {blob.hex()} is not stored here and there are no peers")
        if progress is not None:
            size = path.stat().st_size
            progress(size, size)
        return path
