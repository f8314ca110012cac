"""The ledger: committed state in memory, durable in storage, advanced one block at a time."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from chain.blocks import Block
from chain.errors import ChainError
from chain.genesis import Genesis, genesis_state
from chain.state import State
from chain.statesync.walk import WalkEntry
from chain.storage import Storage, StorageError
from chain.transactions import SignedTransaction
from chain.transition import BlockOutput, SignatureCache, advance, apply_block, build_block
from chain.types import EMPTY_HASH, Address, Hash32, TimeMs

Prefill = Callable[[Sequence[SignedTransaction], str, SignatureCache], int]
"""[TX-SIG-CACHE.2] (transactions, chain id, cache) -> how many valid signatures it added."""


class GenesisMismatch(ChainError):
    code = "genesis_mismatch"


class Ledger:
    """Owns the committed ``State`` and its ``Storage``; applies decided blocks."""

    def __init__(self, storage: Storage, state: State, genesis: Genesis) -> None:
        self.storage = storage
        self.state = state
        self.genesis = genesis
        self.signatures = SignatureCache()
        self.prefill: Prefill | None = None
        """[TX-SIG-CACHE.2] Set by a node: verifies a block's unchecked signatures in
        parallel into ``signatures`` before the serial apply (which then finds them)."""
        self.last_output: BlockOutput | None = None
        """The committed tip's execution output (its root parts make a snapshot's manifest)."""

    @classmethod
    def open(cls, url: str, genesis: Genesis) -> Ledger:
        """Opens (or initialises from genesis) the chain stored at ``url``."""
        storage = Storage(url)
        if storage.is_empty():
            state = genesis_state(genesis)
            storage.init_genesis(genesis.hash, state)
        else:
            if storage.meta("genesis_hash") != genesis.hash:
                raise GenesisMismatch("the database holds a different chain than this genesis "
                                      f"({storage.meta('chain_id')!r})")
            state = storage.load_state()
        return cls(storage, state, genesis)

    @classmethod
    def restore(cls, url: str, genesis: Genesis, state: State,
                walk: list[tuple[int, bytes]]) -> Ledger:
        """[SNAP-RESTORE.1] A ledger on an empty database, from a verified snapshot's state."""
        storage = Storage(url)
        storage.init_snapshot(genesis.hash, state, walk)
        return cls(storage, state, genesis)

    def apply(self, block: Block, certificate: bytes | None = None) -> BlockOutput:
        """Validate, execute, commit durably, then update memory; any failure changes nothing."""
        self.prefill_signatures(block.txs)
        output = apply_block(self.state, block, self.signatures)
        self.commit_executed(block, output, certificate)
        return output

    def prefill_signatures(self, txs: Sequence[SignedTransaction]) -> None:
        """[TX-SIG-CACHE.2] Hand ``txs`` to the node's parallel verifier, if it has one."""
        if self.prefill is not None:
            self.prefill(txs, self.state.chain_id, self.signatures)

    def commit_executed(self, block: Block, output: BlockOutput,
                        certificate: bytes | None = None) -> None:
        """Commits a block already executed against the current state (by ``apply_block``).

        Consensus validates a proposal by executing it; committing that output
        avoids executing the block twice. ``output`` must come from this state.
        """
        if block.header.height != self.state.height + 1 or \
                block.header.prev_hash != self.state.block_hash:
            raise ValueError("the executed block does not extend the committed state")
        self.storage.commit_block(block, output.changes, output.state_root, certificate,
                                  walk_entry(block, output, certificate))
        advance(self.state, block, output)
        self.signatures.forget(tx.hash for tx in block.txs)  # [TX-SIG-CACHE.1] spent nonces
        self.last_output = output

    def adopt_snapshot(self, state: State, walk: list[tuple[int, bytes]]) -> None:
        """[SNAP-RESTORE.1] Replaces a ledger still at its genesis by a verified snapshot's
        state, durably, then in memory (the same ``State`` object: the mempool and the
        consensus app hold it)."""
        if self.state.height != 0:
            raise ChainError(f"state sync needs a database at genesis; this one is at height "
                             f"{self.state.height}")
        self.storage.init_snapshot(self.genesis.hash, state, walk, replace_genesis=True)
        target = self.state
        target.height, target.block_hash = state.height, state.block_hash
        target.time_ms, target.state_root = state.time_ms, state.state_root
        target.tables, target.content = state.tables, state.content
        self.last_output = None

    def propose(self, txs: Iterable[SignedTransaction], time_ms: TimeMs, proposer: Address,
                last_commit_hash: Hash32 = EMPTY_HASH) -> Block:
        block, _, _ = build_block(self.state, txs, time_ms, proposer, self.signatures,
                                  last_commit_hash)
        return block

    def close(self) -> None:
        self.storage.close()


def walk_entry(block: Block, output: BlockOutput, certificate: bytes | None) -> bytes | None:
    """[SNAP-WALK.3] The entry a block whose next set changed leaves for the walk."""
    if not output.set_changed or output.parts is None or certificate is None:
        return None
    members = tuple((v.pubkey, v.power) for _, v in sorted(output.overlay.validators().items()))
    return WalkEntry(block.header.height, block.header.encode(), certificate, output.parts,
                     members).encode()


__all__ = ["GenesisMismatch", "Ledger", "StorageError"]
