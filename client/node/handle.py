"""What the HTTP API and the worker may ask of a running node (``NodeHandle``).

The node process (``client.node.ledger_node.LedgerNode``) implements this protocol; the
API server and the worker are written against it so that each can be tested
with a small in-process node and neither reaches into the node's wiring.
Everything that changes chain state goes through ``submit`` (a signed
transaction); nothing here mutates ``state`` directly.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from chain.blocks import Block
from chain.crypto import PrivateKey
from chain.genesis import Genesis
from chain.mempool import AddResult
from chain.state import State
from chain.transactions import SignedTransaction
from chain.types import Address, Hash32
from chain.versions import GENESIS_PROTOCOL_VERSION, MAX_PROTOCOL_VERSION


@dataclass(frozen=True, slots=True)
class PeerInfo:
    address: Address
    endpoint: str
    """``host:port`` the peer listens on ('' when it does not)."""
    outbound: bool
    score: float


@dataclass(frozen=True, slots=True)
class NodeStatus:
    chain_id: str
    address: Address
    roles: tuple[str, ...]
    """Subset of ("validator", "full", "worker")."""
    height: int
    last_block_time_ms: int
    last_block_hash: Hash32 | None
    state_root: Hash32 | None
    caught_up: bool
    consensus_round: int
    mempool_txs: int
    peers: tuple[PeerInfo, ...]
    p2p_endpoint: str
    api_endpoint: str
    worker: dict[str, object] = field(default_factory=dict)
    """Worker progress summary (jobs running, attempts, claims) when the role is on."""
    protocol: dict[str, object] = field(default_factory=lambda: {
        "version": GENESIS_PROTOCOL_VERSION, "max_known_version": MAX_PROTOCOL_VERSION,
        "upgrade_plan": None, "upgrade_required": None})
    """[UPGRADE-HALT.1] The version in force, the newest this node runs, a pending plan."""
    storage_problem: str | None = None
    """Why a decided block cannot be stored right now (e.g. the database is locked by
    another process); None when storage is fine [CONS-COMMIT.2]."""
    base_height: int = 1
    """[STORE-PRUNE.5] The oldest block this node stores: older ones were pruned
    (``[storage] retain_blocks``); 1 when it keeps every block."""
    sync_missing: tuple[int, int] | None = None
    """[WIRE-SYNC.8] Heights no connected peer stores any more, while they keep this node
    from catching up (first, last); None otherwise."""


@dataclass(frozen=True, slots=True)
class CommittedBlock:
    """Delivered to block listeners after a block is durably applied."""

    block: Block
    certificate: bytes
    time_ms: int


BlockListener = Callable[[CommittedBlock], Awaitable[None] | None]


class NodeHandle(Protocol):
    """A running node as its API server and worker see it."""

    key: PrivateKey
    """The node's identity; a worker claims and votes with this key."""
    genesis: Genesis
    data_dir: Path

    @property
    def chain_id(self) -> str: ...

    @property
    def state(self) -> State:
        """Committed state (read only!). Replaced in place as blocks commit."""
        ...

    @property
    def height(self) -> int: ...

    def now_ms(self) -> int:
        """Wall-clock milliseconds (block times are in the same unit)."""
        ...

    def status(self) -> NodeStatus: ...

    def next_nonce(self, address: Address) -> int:
        """The nonce a new transaction of ``address`` must carry (counts pending ones)."""
        ...

    def submit(self, tx: SignedTransaction) -> AddResult:
        """Admit ``tx`` to the mempool and gossip it; the result says why not, if not."""
        ...

    @property
    def base_height(self) -> int:
        """[STORE-PRUNE.5] The oldest stored block; older ones were pruned (1: none)."""
        ...

    def block(self, height: int) -> Block | None: ...

    def block_with_certificate(self, height: int) -> tuple[bytes, bytes | None] | None:
        """Raw stored block bytes and its commit certificate bytes."""
        ...

    def tx_location(self, tx_hash: bytes) -> tuple[int, int] | None:
        """(height, index) of a committed transaction."""
        ...

    def add_block_listener(self, listener: BlockListener) -> None:
        """Called (in the node's event loop) after each committed block, in height order."""
        ...

    def add_tick_listener(self, listener: Callable[[], None]) -> None:
        """Called (in the node's event loop) after each second without a committed block:
        a graph at rest commits none for minutes [CONS-PACE.1]."""
        ...

    # -- blobs (job images, models) --------------------------------------

    def blob_path(self, blob: bytes) -> Path | None:
        """Path of a complete local blob, or None."""
        ...

    def remove_blob(self, blob: bytes) -> bool:
        """Deletes a local blob so it is no longer stored or served; whether it was there."""
        ...

    def put_blob_file(self, path: Path) -> bytes:
        """Adds a local file to the blob store (hard link when possible), announces it."""
        ...

    async def fetch_blob(
        self, blob: bytes, progress: Callable[[int, int], None] | None = None
    ) -> Path:
        """Fetches a blob from peers (or returns the local copy); raises ``BlobError``."""
        ...
