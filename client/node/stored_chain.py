"""The read side of ``NodeHandle`` that any node with a ``Ledger`` and a ``BlobStore`` shares.

``LedgerNode`` (the real node) and ``SoloNode`` (the one-process test node)
differ in how blocks are decided and blobs travel, not in how stored blocks,
transactions and blobs are read; that part lives here once.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from chain.blocks import Block
from chain.genesis import Genesis
from chain.ledger import Ledger
from chain.mempool import Mempool
from chain.state import State
from chain.types import Address
from client.node.handle import BlockListener
from p2p.blobstore import BlobStore


class StoredChainReads:
    """Mixin: needs ``genesis``, ``ledger``, ``mempool``, ``blob_store`` and ``_listeners``."""

    genesis: Genesis
    ledger: Ledger
    mempool: Mempool
    blob_store: BlobStore
    _listeners: list[BlockListener]
    _tick_listeners: list[Callable[[], None]]

    @property
    def chain_id(self) -> str:
        return self.genesis.chain_id

    @property
    def state(self) -> State:
        return self.ledger.state

    @property
    def height(self) -> int:
        return int(self.ledger.state.height)

    @property
    def base_height(self) -> int:
        """[STORE-PRUNE.5] The oldest stored block (1 unless ``retain_blocks`` pruned)."""
        return self.ledger.storage.base_height()

    def next_nonce(self, address: Address) -> int:
        return self.mempool.pending_nonce(address)

    def block(self, height: int) -> Block | None:
        return self.ledger.storage.block(height)

    def block_with_certificate(self, height: int) -> tuple[bytes, bytes | None] | None:
        return self.ledger.storage.block_data(height)

    def tx_location(self, tx_hash: bytes) -> tuple[int, int] | None:
        return self.ledger.storage.tx_location(tx_hash)

    def add_block_listener(self, listener: BlockListener) -> None:
        self._listeners.append(listener)

    def add_tick_listener(self, listener: Callable[[], None]) -> None:
        self._tick_listeners.append(listener)

    def blob_path(self, blob: bytes) -> Path | None:
        return self.blob_store.path(blob) if self.blob_store.has(blob) else None

    def remove_blob(self, blob: bytes) -> bool:
        return self.blob_store.remove(blob)

    def _store_blob_file(self, path: Path) -> bytes:
        """Hard-links ``path`` into the blob store when it can (same file system), else copies."""
        try:
            return self.blob_store.put_file(path, link=True)
        except OSError:
            return self.blob_store.put_file(path)
