"""The simulator's ledgers: the real ``chain.Ledger`` over a storage kept in memory [CONS-SIM].

``MemoryStorage`` implements the part of ``chain.storage.Storage`` a ledger,
``LedgerApp`` and block sync use, with the same rules: a block must follow
the stored tip ([STORE-ATOMIC.1]: all or nothing), and a "busy" window
raises ``StorageBusy`` (nothing stored), as a SQLite file locked by another
process does. Opening a SQLite database per simulated node costs ~10 ms,
which over the CI's ~3,000 simulated nodes would be most of the run; every
rule the scenarios exercise lives above storage, in ``chain.transition`` and
``LedgerApp``, and runs for real.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from chain.blocks import Block
from chain.crypto import PrivateKey, address_to_text
from chain.genesis import Genesis, genesis_state
from chain.ledger import Ledger
from chain.state import Change
from chain.storage import Storage, StorageBusy, StorageError
from chain.types import Hash32


class MemoryStorage:
    """Blocks and certificates in lists; the state itself lives in the ``Ledger``."""

    def __init__(self) -> None:
        self.blocks: list[tuple[bytes, bytes | None]] = []
        self.hashes: list[Hash32] = []
        self.walk: list[bytes] = []
        self.busy: Callable[[], bool] = lambda: False
        """True while the "database" is locked: commits raise ``StorageBusy``."""
        self.before_write: Callable[[], None] = lambda: None
        """Fault-injection point of the simulator (a crash before the write)."""

    def commit_block(self, block: Block, changes: list[Change], state_root: Hash32,
                     certificate: bytes | None = None, walk_entry: bytes | None = None) -> None:
        self.before_write()
        if self.busy():
            raise StorageBusy("database is locked (simulated)")
        if block.header.height != len(self.blocks) + 1:
            raise StorageError(f"block {block.header.height} does not follow {len(self.blocks)}")
        self.blocks.append((block.encode(), certificate))
        self.hashes.append(block.hash)
        if walk_entry is not None:  # [SNAP-WALK.3]
            self.walk.append(walk_entry)

    def walk_entries(self, above: int, limit: int) -> list[bytes]:
        return self.walk[:limit] if above == 0 else []  # the simulator's sets never change

    def blocks_range(self, start: int, count: int) -> list[tuple[bytes, bytes | None]]:
        return self.blocks[max(start, 1) - 1 : max(start, 1) - 1 + count]

    def block_data(self, height: int) -> tuple[bytes, bytes | None] | None:
        return self.blocks[height - 1] if 1 <= height <= len(self.blocks) else None

    def height(self) -> int:
        return len(self.blocks)

    def base_height(self) -> int:
        """Nothing is pruned in the simulator [STORE-PRUNE.2]."""
        return 1

    def close(self) -> None:
        pass


def sim_genesis(chain_id: str, time_ms: int, keys: list[PrivateKey],
                powers: dict[int, int]) -> Genesis:
    doc: dict[str, Any] = {
        "chain_id": chain_id,
        "genesis_time_ms": time_ms,
        "validators": [{"pubkey": k.public_key.hex(), "power": powers.get(i, 1), "name": f"v{i}"}
                       for i, k in enumerate(keys)],
        "members": [],
        "balances": {address_to_text(k.address): 1_000_000 for k in keys},
    }
    return Genesis.from_json(doc)


def memory_ledger(genesis: Genesis) -> tuple[Ledger, MemoryStorage]:
    storage = MemoryStorage()
    ledger = Ledger(cast(Storage, storage), genesis_state(genesis), genesis)
    return ledger, storage
