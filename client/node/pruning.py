"""``[storage] retain_blocks``: the node keeps its newest blocks only [STORE-PRUNE.*].

Current state is stored as current values (table ``state``), so what grows
with the chain is blocks and their transaction index; this trims them from
below after commits. The work is bounded per commit: one prune every
``PRUNE_EVERY`` heights, and at most one batch of ``PRUNE_BATCH_HEIGHTS`` per
commit while a backlog remains (a node that just turned pruning on over a long
chain catches up a batch per block instead of freezing for minutes).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from chain.storage import PRUNE_BATCH_HEIGHTS, Storage, StorageBusy, StorageError

log = logging.getLogger("learningchain.node")

PRUNE_EVERY = 100
"""[STORE-PRUNE.3] Heights between two prunes once caught up: a hundred blocks per
transaction instead of one (each prune is a write transaction a commit may wait behind)."""


class BlockPruner:
    """Calls ``Storage.prune_blocks`` after commits; a failure is logged, never fatal."""

    def __init__(self, storage: Storage, retain_blocks: int,
                 on_pruned: Callable[[int], None] | None = None) -> None:
        if retain_blocks < 0:
            raise ValueError(f"retain_blocks must be 0 (keep all) or positive, "
                             f"got {retain_blocks}")
        self.storage = storage
        self.retain_blocks = retain_blocks
        self.on_pruned = on_pruned
        """Called with the new base height after a prune (the node tells its peers)."""
        self._last_height = 0

    def after_commit(self, height: int) -> None:
        """[STORE-PRUNE.2-3] Keeps heights ``height - retain_blocks + 1 .. height``."""
        if self.retain_blocks == 0:
            return
        below = height - self.retain_blocks + 1
        base = self.storage.base_height()
        if below <= base:
            return
        backlog = below - base > PRUNE_BATCH_HEIGHTS
        if not backlog and height - self._last_height < PRUNE_EVERY:
            return
        self._last_height = height
        try:
            new_base = self.storage.prune_blocks(below, max_batches=1)
        except StorageBusy as e:
            log.info("pruning deferred to a later block: %s", e)
            return
        except StorageError as e:
            log.warning("pruning below height %d failed (blocks kept): %s", below, e)
            return
        if new_base != base and self.on_pruned is not None:
            self.on_pruned(new_base)
