"""The state transition: ``apply_block(state, block)`` as a sequence of named steps.

    validate_header -> begin_block (windows that ended) -> each transaction
    -> end_block (validator-set changes) -> compare the state root

An invalid block raises ``InvalidBlock`` and leaves the committed state as it
was; nothing touches ``State`` until the caller merges the returned overlay
after storage committed it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from chain import registry
from chain.blocks import Block, BlockHeader, tx_root
from chain.context import TxContext
from chain.crypto import address_to_text
from chain.errors import ChainError, InvalidBlock, InvalidTransaction
from chain.records import Account
from chain.state import Change, Overlay, State, compute_state_root
from chain.statesync import lthash
from chain.statesync.content import ContentTracker
from chain.statesync.lthash import Lanes
from chain.statesync.roots import (
    NO_DIGEST,
    STATE_SYNC_VERSION,
    RootParts,
    changes_hash,
    is_digest_height,
    set_hash,
)
from chain.transactions import SignedTransaction
from chain.types import EMPTY_HASH, Address, Hash32, Height, TimeMs


class SignatureCache:
    """Transaction ids whose signatures were already checked [TX-SIG-CACHE.1].

    The mempool verifies at admission; a block re-verifies only what it has not
    seen. A committed transaction's id is forgotten (``forget``): its nonce is spent, so
    it can never apply again, and a node that kept it would grow by every transaction it
    ever saw until the bound (200,000 ids, about 30 MiB; the one-hour soak's creep). What
    stays is what is pending. Bounded, oldest first out.
    """

    def __init__(self, capacity: int = 200_000) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[bytes, None] = OrderedDict()

    def __contains__(self, tx_hash: bytes) -> bool:
        return tx_hash in self._seen

    def add(self, tx_hash: bytes) -> None:
        self._seen[tx_hash] = None
        if len(self._seen) > self.capacity:
            self._seen.popitem(last=False)

    def forget(self, tx_hashes: Iterable[bytes]) -> None:
        """[TX-SIG-CACHE.1] The ids of committed transactions."""
        for tx_hash in tx_hashes:
            self._seen.pop(tx_hash, None)

    def __len__(self) -> int:
        return len(self._seen)


def check_signature(tx: SignedTransaction, chain_id: str, cache: SignatureCache | None) -> None:
    if cache is not None and tx.hash in cache:
        return
    if not tx.signature_valid(chain_id):
        raise InvalidTransaction("bad_signature", "signature does not verify for this chain")
    if cache is not None:
        cache.add(tx.hash)


def apply_transaction(view: Overlay, tx: SignedTransaction, ctx: TxContext,
                      cache: SignatureCache | None = None) -> None:
    """[TX-APPLY.1] Signature, sender not banned, nonce, then the body's own rules."""
    check_signature(tx, ctx.chain_id, cache)
    account = view.account(tx.sender)
    if account.banned:
        raise InvalidTransaction("sender_banned",
                                 f"{address_to_text(tx.sender)} is banned and can send nothing")
    if tx.nonce != account.nonce:
        raise InvalidTransaction("bad_nonce", f"expected nonce {account.nonce}, got {tx.nonce}")
    view.put_account(tx.sender, Account(account.balance, account.nonce + 1, account.banned))
    for handler in registry.HANDLERS[type(tx.body)]:
        handler(view, tx.sender, tx.body, ctx)


# --- blocks ------------------------------------------------------------------------------

def begin_block(view: Overlay, height: Height, time_ms: TimeMs) -> None:
    """[BLOCK-BEGIN.1] The parts' begin steps in ``registry.BEGIN_BLOCK``'s order: a plan due
    at this height switches the protocol version first [UPGRADE-PLAN.4]; windows
    that ended by this block's time are closed first; train/v3 splits due at this height are
    drawn from the parent block's hash [HOLDOUT-SPLIT.1]; then prediction requests draw,
    change window or settle [PRED-DRAW.1] [PRED-WINDOW.1]; then federated jobs step their
    rounds [FED-ROUND.1]."""
    for _, step in registry.BEGIN_BLOCK:
        step(view, height, time_ms, view.base.block_hash)


def preview_next_block(state: State, now_ms: int) -> Overlay:
    """[MEMPOOL-ADMIT.1] The committed state as the next block's transactions will find it:
    ``begin_block`` run at height tip + 1 and time max(now, tip time + 1). The mempool admits
    against it, and the executor decides from it, so a transaction that becomes valid at the
    next block's start (a commit right after a draw [PRED-DRAW.1]) is admitted now instead
    of a block later."""
    view = Overlay(state)
    begin_block(view, Height(state.height + 1), TimeMs(max(now_ms, state.time_ms + 1)))
    return view


def end_block(view: Overlay, height: Height, time_ms: TimeMs) -> None:
    """The parts' end steps in ``registry.END_BLOCK``'s order (validator-set changes)."""
    for _, step in registry.END_BLOCK:
        step(view, height, time_ms, view.base.block_hash)


@dataclass(frozen=True, slots=True)
class BlockOutput:
    """What executing a block produced: the writes, the new root, for storage to commit."""

    overlay: Overlay
    changes: list[Change]
    state_root: Hash32
    parts: RootParts | None = None
    """[STATE-ROOT.2] What a version 3 root hashes (None under versions 1 and 2)."""
    set_changed: bool = False
    """[SNAP-WALK.1] The validator set of height + 1 differs from this height's."""
    lanes: Lanes | None = None
    """[STATE-CONTENT.2] The state's LtHash after the block, at a digest height."""


def validate_header(state: State, header: BlockHeader, tx_count: int) -> None:
    """[BLOCK-APPLY.1] The header's checks, in the spec's order; each has its own code
    ([BLOCK-APPLY.2] checks 1-8: the table of codes in ledger.md §7)."""
    if header.chain_id != state.chain_id:
        raise InvalidBlock("wrong_chain", f"block for chain {header.chain_id!r}")
    if header.height != state.height + 1:
        raise InvalidBlock("wrong_height", f"expected height {state.height + 1}, "
                                           f"got {header.height}")
    expected_version = state.version_at(header.height)
    if header.version != expected_version:  # [BLOCK-VERSION.1]
        raise InvalidBlock("wrong_version", f"block {header.height} must carry protocol "
                                            f"version {expected_version}, got {header.version}")
    if header.prev_hash != state.block_hash:
        raise InvalidBlock("wrong_prev_hash", "block does not extend this chain")
    if header.time_ms <= state.time_ms:
        raise InvalidBlock("time_not_increasing", "block time must exceed the previous block's")
    if header.proposer not in state.validators():
        raise InvalidBlock("unknown_proposer", "proposer is not a validator")
    if tx_count > state.params.max_block_txs:
        raise InvalidBlock("too_many_txs", f"more than {state.params.max_block_txs} transactions")
    if header.last_commit_hash != EMPTY_HASH:
        raise InvalidBlock("bad_last_commit_hash", "v1 blocks carry the empty hash as "
                                                   "last_commit_hash [BLOCK-LAST-COMMIT.1]")


def body_size(txs: Iterable[SignedTransaction]) -> int:
    """[BLOCK-SIZE.1] What ``max_block_bytes`` bounds: the sum of transaction sizes."""
    return sum(len(tx.wire) for tx in txs)


def execute(state: State, height: Height, time_ms: TimeMs, chain_id: str,
            txs: Iterable[SignedTransaction], cache: SignatureCache | None = None,
            *, drop_invalid: bool = False) -> tuple[BlockOutput, list[SignedTransaction],
                                                      list[tuple[SignedTransaction, ChainError]]]:
    """Runs a block's body; with ``drop_invalid`` (the proposer) bad transactions are skipped."""
    view = Overlay(state)
    begin_block(view, height, time_ms)
    included: list[SignedTransaction] = []
    dropped: list[tuple[SignedTransaction, ChainError]] = []
    for tx in txs:
        savepoint = view.savepoint()
        ctx = TxContext(chain_id, height, time_ms, len(included), tx.hash)
        try:
            apply_transaction(view, tx, ctx, cache)
        except InvalidTransaction as e:
            if not drop_invalid:
                raise InvalidBlock("invalid_transaction", f"tx {len(included)}: {e}",
                                   tx_index=len(included)) from e
            view.rollback(savepoint)
            dropped.append((tx, e))
            continue
        included.append(tx)
    end_block(view, height, time_ms)
    changes = view.changes()
    if view.protocol_version >= STATE_SYNC_VERSION:
        return _output_v3(state, view, height, changes), included, dropped
    root = compute_state_root(state.state_root, height, changes)
    return BlockOutput(view, changes, root), included, dropped


def _output_v3(state: State, view: Overlay, height: Height, changes: list[Change]) -> BlockOutput:
    """[STATE-ROOT.2] The root over the changes' hash, the next set and, at a digest height,
    the content digest [STATE-CONTENT.1]."""
    next_set = set_hash(view.validators())
    lanes = None
    digest = NO_DIGEST
    if is_digest_height(height):
        if state.content is None:
            state.content = ContentTracker.scan(state)  # derived data: built on first need
        tracker: ContentTracker = state.content
        lanes = tracker.lanes_after(state, changes)
        digest = lthash.digest(lanes)
    parts = RootParts(state.state_root, changes_hash(changes), next_set, digest)
    return BlockOutput(view, changes, parts.root(height), parts,
                       next_set != set_hash(state.validators()), lanes)


def apply_block(state: State, block: Block, cache: SignatureCache | None = None) -> BlockOutput:
    """[BLOCK-APPLY.1] Validates and executes ``block``; raises ``InvalidBlock`` on any fault.

    [BLOCK-APPLY.2] The codes in check order: the header's (``validate_header``), then
    ``block_too_large``, ``wrong_tx_root``, ``invalid_transaction`` (with ``tx_index``),
    ``state_root_mismatch``; the first failing check decides."""
    header = block.header
    validate_header(state, header, len(block.txs))
    if body_size(block.txs) > state.params.max_block_bytes:
        raise InvalidBlock("block_too_large", f"transactions exceed "
                                              f"{state.params.max_block_bytes} bytes")
    if tx_root(block.txs) != header.tx_root:
        raise InvalidBlock("wrong_tx_root", "transaction root does not match the body")
    output, _, _ = execute(state, header.height, header.time_ms, state.chain_id, block.txs, cache)
    if output.state_root != header.state_root:
        raise InvalidBlock("state_root_mismatch", "state after the block differs from the header")
    return output


def build_block(state: State, txs: Iterable[SignedTransaction], time_ms: TimeMs,
                proposer: Address, cache: SignatureCache | None = None,
                last_commit_hash: Hash32 = EMPTY_HASH,
                ) -> tuple[Block, BlockOutput, list[tuple[SignedTransaction, ChainError]]]:
    """The proposer's side: execute, drop what is invalid, and seal the header."""
    height = Height(state.height + 1)
    candidates: list[SignedTransaction] = []
    size = 0
    for tx in txs:
        if len(candidates) >= state.params.max_block_txs or \
                size + len(tx.wire) > state.params.max_block_bytes:
            break
        candidates.append(tx)
        size += len(tx.wire)
    output, included, dropped = execute(state, height, time_ms, state.chain_id, candidates,
                                        cache, drop_invalid=True)
    header = BlockHeader(state.chain_id, height, time_ms, state.block_hash, proposer,
                         tx_root(included), output.state_root, last_commit_hash,
                         state.version_at(height))
    return Block(header, tuple(included)), output, dropped


def advance(state: State, block: Block, output: BlockOutput) -> None:
    """Makes an executed block the committed state in memory (after storage commit)."""
    if state.content is not None:  # [STATE-CONTENT.2] the keys that moved since clean
        state.content.note(state, output.overlay)
    state.merge(output.overlay)
    if output.lanes is not None and state.content is not None:
        state.content.reset(output.lanes)
    state.height = block.header.height
    state.block_hash = block.hash
    state.time_ms = block.header.time_ms
    state.state_root = output.state_root
