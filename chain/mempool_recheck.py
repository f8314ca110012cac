"""Which pending transfers a committed block cannot have changed [MEMPOOL-RECHECK.2].

After a block the pool re-admits every pending transaction against the new state
[MEMPOOL-RECHECK.1]. For a plain transfer that is wasted work when the block wrote
neither its sender's nor its recipient's account, nor any account that a transfer
linked to them touches: re-applying it in the same order would write the same
values. ``untouched`` finds those transfers, and the accounts whose values the
pool's view may keep as they are.

Accounts linked by pending transfers form groups (union-find over sender and
recipient). A group is *touched* when the block, or the next block's begin steps
(the new view's own writes), wrote one of its accounts; every other group's
transfers keep their results. Anything but a transfer, or a write of the protocol
version (a transfer's one other input, [TX-TRANSFER.2]), makes the caller re-check
everything. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from chain.state import META_PROTOCOL_VERSION
from chain.transactions import SignedTransaction, Transfer
from chain.types import Address

ACCOUNT = "account"
META = "meta"


@dataclass(frozen=True, slots=True)
class Untouched:
    """What a re-check may skip: these transactions stay pending as they are, and these
    accounts keep the values the pool's view gave them."""

    tx_hashes: frozenset[bytes]
    accounts: frozenset[Address]


def untouched(pending: Sequence[SignedTransaction],
              written: Collection[tuple[str, bytes]]) -> Untouched | None:
    """[MEMPOOL-RECHECK.2] The pending transfers no write in ``written`` can reach;
    None when some pending transaction is not a plain transfer, or ``written`` changes
    the protocol version (re-check all)."""
    if (META, META_PROTOCOL_VERSION) in written:
        return None
    parent: dict[bytes, bytes] = {}

    def find(a: bytes) -> bytes:
        root = a
        while parent.get(root, root) != root:
            root = parent[root]
        while a != root:  # path compression
            parent[a], a = root, parent[a]
        return root

    for tx in pending:
        body = tx.body
        if type(body) is not Transfer:
            return None
        a, b = find(tx.sender), find(body.to)
        parent.setdefault(a, a)
        parent.setdefault(b, b)
        if a != b:
            parent[a] = b
    touched = {find(key) for table, key in written if table == ACCOUNT and key in parent}
    accounts = frozenset(Address(a) for a in parent if find(a) not in touched)
    tx_hashes = frozenset(tx.hash for tx in pending if find(tx.sender) not in touched)
    return Untouched(tx_hashes, accounts)
