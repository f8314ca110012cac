"""A state's content digest, followed block by block [STATE-CONTENT.1-2].

``ContentTracker`` holds the LtHash lanes of the state as it was at its last *clean*
height and, for every record changed since, the record's encoding at that height.
Between digest heights a block only notes which keys it changed (a dict insert per
distinct key); at a digest height the lanes move by the changed records alone. A node
builds the tracker from a full scan of its state when it first needs one (at start, or
after state sync), so nothing of it is stored: it is a function of the state.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from chain.state import Change, encode_record
from chain.types import Hash32

from . import lthash

if TYPE_CHECKING:
    from chain.state import Overlay, State

Key = tuple[str, bytes]


class ContentTracker:
    """LtHash of a ``State``'s records, kept up to date with the state's merges."""

    def __init__(self, lanes: lthash.Lanes) -> None:
        self.lanes = lanes
        self.dirty: dict[Key, bytes | None] = {}
        """Each key changed since the clean point -> its encoding then (None: absent)."""

    @classmethod
    def scan(cls, state: State) -> ContentTracker:
        """[STATE-CONTENT.1] The digest of every record of ``state``, from scratch."""
        return cls(lthash.sum_leaves(
            lthash.leaf_bytes(c.table, c.key, c.value) for c in state.records()
            if c.value is not None))

    def note(self, state: State, overlay: Overlay) -> None:
        """Before ``state.merge(overlay)``: remember the clean encoding of new dirty keys."""
        for table, key in overlay.writes:
            if (table, key) not in self.dirty:
                old = state.tables[table].get(key)
                self.dirty[(table, key)] = None if old is None else encode_record(table, old)

    def lanes_after(self, state: State, changes: Iterable[Change]) -> lthash.Lanes:
        """The lanes of ``state`` with ``changes`` (a block's, not merged yet) applied."""
        block = {(c.table, c.key): c.value for c in changes}
        removed: list[bytes] = []
        added: list[bytes] = []
        for key in self.dirty.keys() | block.keys():
            table, record = key
            clean = self.dirty[key] if key in self.dirty else _current(state, key)
            now = block[key] if key in block else _current(state, key)
            if clean == now:
                continue
            if clean is not None:
                removed.append(lthash.leaf_bytes(table, record, clean))
            if now is not None:
                added.append(lthash.leaf_bytes(table, record, now))
        return lthash.combine(self.lanes, lthash.sum_leaves(added), lthash.sum_leaves(removed))

    def digest_after(self, state: State, changes: Iterable[Change]) -> Hash32:
        return lthash.digest(self.lanes_after(state, changes))

    def reset(self, lanes: lthash.Lanes) -> None:
        """After a digest height is merged: its lanes are the new clean point."""
        self.lanes = lanes
        self.dirty = {}


def _current(state: State, key: Key) -> bytes | None:
    table, record = key
    value = state.tables[table].get(record)
    return None if value is None else encode_record(table, value)
