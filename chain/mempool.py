"""The mempool [MEMPOOL-*]: valid pending transactions, bounded, in arrival order.

Admission runs the transaction's real rules against the committed state as the
next block begins it (``preview_next_block``: windows closed, draws made) plus
the transactions already pending (an ``Overlay``), so only transactions that
would apply in that order are kept, and so gossiped. Signatures are checked
once here and remembered in the ledger's ``SignatureCache``. After each
committed block the pool drops what was included and re-checks the rest.
Transactions refused only for room or order are held aside, bounded, so that a
proposal naming them can still be rebuilt here [MEMPOOL-HOLD.1].
Pure logic: no I/O, time is passed in.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import StrEnum

from chain.context import TxContext
from chain.errors import ChainError, DecodeError, InvalidTransaction
from chain.mempool_recheck import untouched
from chain.state import Overlay, State
from chain.transactions import SignedTransaction
from chain.transition import (
    SignatureCache,
    apply_transaction,
    check_signature,
    preview_next_block,
)
from chain.types import Address, Height, TimeMs


class Admission(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"
    FULL = "full"


@dataclass(frozen=True, slots=True)
class AddResult:
    status: Admission
    code: str = ""
    message: str = ""
    tx: SignedTransaction | None = None

    @property
    def accepted(self) -> bool:
        return self.status == Admission.ACCEPTED


@dataclass(frozen=True, slots=True)
class MempoolLimits:
    max_txs: int = 100_000
    """[MEMPOOL-LIMIT.1] Transactions in the pool at most."""
    max_bytes: int = 64 * 1024 * 1024
    max_per_sender: int = 2_000
    """[MEMPOOL-LIMIT.2] Pending transactions of one sender at most."""


class HeldTransactions:
    """[MEMPOOL-HOLD.1] Validly signed transactions the pool refused for room or order,
    oldest out first past ``max_txs`` or ``max_bytes``: only read, never proposed."""

    def __init__(self, max_txs: int = 16_384, max_bytes: int = 8 * 1024 * 1024) -> None:
        self.max_txs = max_txs
        self.max_bytes = max_bytes
        self._txs: OrderedDict[bytes, SignedTransaction] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._txs)

    def hashes(self) -> list[bytes]:
        return list(self._txs)

    def get(self, tx_hash: bytes) -> SignedTransaction | None:
        return self._txs.get(tx_hash)

    def put(self, tx: SignedTransaction) -> None:
        if tx.hash in self._txs:
            self._txs.move_to_end(tx.hash)
            return
        self._txs[tx.hash] = tx
        self._bytes += len(tx.wire)
        while len(self._txs) > self.max_txs or self._bytes > self.max_bytes:
            _, old = self._txs.popitem(last=False)
            self._bytes -= len(old.wire)

    def discard(self, tx_hash: bytes) -> None:
        tx = self._txs.pop(tx_hash, None)
        if tx is not None:
            self._bytes -= len(tx.wire)


class Mempool:
    def __init__(self, state: State, signatures: SignatureCache,
                 limits: MempoolLimits | None = None) -> None:
        self.state = state
        self.signatures = signatures
        self.limits = limits or MempoolLimits()
        self.held = HeldTransactions()
        """[MEMPOOL-HOLD.1] What was refused for room or order, for ``known``."""
        self._txs: OrderedDict[bytes, SignedTransaction] = OrderedDict()
        self._per_sender: dict[Address, int] = {}
        self._bytes = 0
        self._view: Overlay = preview_next_block(state, state.time_ms + 1)
        self._prefixes: dict[bytes, list[bytes]] | None = None
        """[CONS-MSG.4] ``known_by_prefix``'s index, kept up to date on each arrival once
        built, dropped after each block (``update``) and when stale entries outgrow it."""
        self._prefix_len = 0

    def __len__(self) -> int:
        return len(self._txs)

    def get(self, tx_hash: bytes) -> SignedTransaction | None:
        """The pending transaction with this hash, if any."""
        return self._txs.get(tx_hash)

    def known(self, tx_hash: bytes) -> SignedTransaction | None:
        """[MEMPOOL-HOLD.1] Pending or held: what a proposal by reference may name."""
        tx = self._txs.get(tx_hash)
        return tx if tx is not None else self.held.get(tx_hash)

    def __contains__(self, tx_hash: bytes) -> bool:
        return tx_hash in self._txs

    def known_by_prefix(self, length: int) -> Mapping[bytes, list[bytes]]:
        """[CONS-MSG.4] The hashes of every pending or held transaction by their first
        ``length`` bytes (usually one per prefix): what a proposal by short ids names.

        Built once, then kept: each transaction that becomes pending or held is added as
        it arrives, so a proposal waiting for its last transactions looks them up again
        without a rebuild over the whole pool (on a WAN graph the rebuilds took 2 % of a
        node's CPU). It may also name hashes that have since left the pool, until the next
        block; whoever resolves ids reads the transactions with ``known``, which does not."""
        stale_room = 2 * (len(self._txs) + len(self.held)) + 4096
        if self._prefixes is None or self._prefix_len != length or \
                len(self._prefixes) > stale_room:
            self._prefixes, self._prefix_len = {}, length
            for tx_hash in (*self._txs, *self.held.hashes()):
                self._index_prefix(tx_hash)
        return self._prefixes

    def _index_prefix(self, tx_hash: bytes) -> None:
        """One arrival into ``known_by_prefix``'s index, while there is one."""
        if self._prefixes is None:
            return
        found = self._prefixes.get(tx_hash[:self._prefix_len])
        if found is None:
            self._prefixes[tx_hash[:self._prefix_len]] = [tx_hash]
        elif tx_hash not in found:
            found.append(tx_hash)

    def add_bytes(self, data: bytes, now_ms: int) -> AddResult:
        pending = self._txs.get(hashlib.sha256(data).digest())
        if pending is not None:  # same hash, same bytes: no need to parse them again
            return AddResult(Admission.DUPLICATE, "duplicate", "already pending", pending)
        try:
            tx = SignedTransaction.decode(data)
        except DecodeError as e:
            return AddResult(Admission.REJECTED, e.code, e.message)
        return self.add(tx, now_ms)

    def decode_new(self, wires: list[bytes],
                   limit: int | None = None) -> list[SignedTransaction | None]:
        """Each wire not pending yet, decoded, so a batch's signatures can be checked
        together first [TX-SIG-CACHE.2]; None where it is pending or does not decode
        (``add_bytes`` then answers it as it always has). With ``limit``, it stops before
        the wire that would be the ``limit + 1``-th new one: the answer is then shorter
        than ``wires``, and the rest was not parsed ([API-BATCH.1])."""
        out: list[SignedTransaction | None] = []
        pending = self._txs
        new = 0
        for wire in wires:
            tx = None
            if hashlib.sha256(wire).digest() not in pending:
                if limit is not None and new >= limit:
                    break
                new += 1
                try:  # not contextlib.suppress: a context object per transaction
                    tx = SignedTransaction.decode(wire)
                except DecodeError:
                    tx = None
            out.append(tx)
        return out

    def add(self, tx: SignedTransaction, now_ms: int) -> AddResult:
        """[MEMPOOL-ADMIT.1] Accept a transaction that applies after everything pending."""
        if tx.hash in self._txs:
            return AddResult(Admission.DUPLICATE, "duplicate", "already pending", tx)
        if len(self._txs) >= self.limits.max_txs or \
                self._bytes + len(tx.wire) > self.limits.max_bytes:
            self._hold(tx)
            return AddResult(Admission.FULL, "mempool_full", "the mempool is full; retry later")
        if self._per_sender.get(tx.sender, 0) >= self.limits.max_per_sender:
            self._hold(tx)
            return AddResult(Admission.FULL, "sender_limit",
                             f"at most {self.limits.max_per_sender} pending per sender")
        error = self._try_apply(tx, now_ms)
        if error is not None:
            if error.code == "bad_nonce":  # [MEMPOOL-HOLD.1] order, not the tx itself;
                self.held.put(tx)  # its signature was checked first [TX-APPLY.1]
                self._index_prefix(tx.hash)
            return AddResult(Admission.REJECTED, error.code, error.message, tx)
        self.held.discard(tx.hash)
        self._txs[tx.hash] = tx
        self._index_prefix(tx.hash)
        self._per_sender[tx.sender] = self._per_sender.get(tx.sender, 0) + 1
        self._bytes += len(tx.wire)
        return AddResult(Admission.ACCEPTED, tx=tx)

    def _hold(self, tx: SignedTransaction) -> None:
        """[MEMPOOL-HOLD.1] Held only with a valid signature (usually already checked, in
        a batch, before admission [TX-SIG-CACHE.2])."""
        try:
            check_signature(tx, self.state.chain_id, self.signatures)
        except InvalidTransaction:
            return
        self.held.put(tx)
        self._index_prefix(tx.hash)

    def _try_apply(self, tx: SignedTransaction, now_ms: int) -> ChainError | None:
        time_ms = TimeMs(max(now_ms, self.state.time_ms + 1))
        ctx = TxContext(self.state.chain_id, Height(self.state.height + 1), time_ms,
                        len(self._txs), tx.hash)
        savepoint = self._view.savepoint()
        try:
            apply_transaction(self._view, tx, ctx, self.signatures)
        except InvalidTransaction as e:
            self._view.rollback(savepoint)
            return e
        return None

    def reap(self, max_txs: int) -> list[SignedTransaction]:
        """The oldest pending transactions, for the next proposal."""
        out: list[SignedTransaction] = []
        for tx in self._txs.values():
            if len(out) >= max_txs:
                break
            out.append(tx)
        return out

    def pending_nonce(self, address: Address) -> int:
        """The nonce a new transaction from ``address`` should carry now."""
        return self._view.account(address).nonce

    def update(self, included: list[SignedTransaction], now_ms: int,
               written: Collection[tuple[str, bytes]] | None = None
               ) -> list[SignedTransaction]:
        """[MEMPOOL-RECHECK.1] After a block: drop included, re-check the rest, in order.

        ``written``: the block's (table, key) writes, when known: pending transfers that
        none of them (nor the next block's begin steps) can reach keep their results
        without being applied again [MEMPOOL-RECHECK.2]. Returns the transactions that
        became invalid and were evicted.
        """
        self._prefixes = None  # [CONS-MSG.4] rebuilt for the next proposal, without stale ids
        for tx in included:
            self.held.discard(tx.hash)
            if tx.hash in self._txs:
                self._forget(self._txs[tx.hash])
        remaining = list(self._txs.values())
        old_view = self._view
        self._txs.clear()
        self._per_sender.clear()
        self._bytes = 0
        self._view = preview_next_block(self.state, now_ms)
        keep = self._unchanged(remaining, old_view, written)
        evicted = []
        for tx in remaining:
            if tx.hash in keep or self._try_apply(tx, now_ms) is None:
                self._txs[tx.hash] = tx
                self._per_sender[tx.sender] = self._per_sender.get(tx.sender, 0) + 1
                self._bytes += len(tx.wire)
            else:
                evicted.append(tx)
        return evicted

    def _unchanged(self, remaining: list[SignedTransaction], old_view: Overlay,
                   written: Collection[tuple[str, bytes]] | None) -> frozenset[bytes]:
        """[MEMPOOL-RECHECK.2] The pending transfers whose accounts neither the block nor
        the new view's begin steps wrote: their accounts' values are carried from the old
        view into the new one, and they are not applied again. (The old view's base is
        the state the block has advanced: only the accounts its pending transfers wrote,
        which it holds itself, are read from it.)"""
        if written is None:
            return frozenset()
        found = untouched(remaining, [*written, *self._view.writes])
        if found is None:
            return frozenset()
        for address in found.accounts:
            self._view.put_account(address, old_view.account(address))
        return found.tx_hashes

    def _forget(self, tx: SignedTransaction) -> None:
        del self._txs[tx.hash]
        self._bytes -= len(tx.wire)
        count = self._per_sender.get(tx.sender, 1) - 1
        if count:
            self._per_sender[tx.sender] = count
        else:
            self._per_sender.pop(tx.sender, None)
