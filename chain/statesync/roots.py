"""The state root of protocol version 3 [STATE-ROOT.2]: one that a snapshot can be checked
against.

Version 1's root chains the changes of every block [STATE-ROOT.1]: it commits to the
history, so only a replay from genesis can check a state against it. From version 3
the root of block h hashes, besides the parent's root and height, the hash of the
block's changes, the hash of the validator set of h + 1, and, at every digest height
(h a multiple of ``DIGEST_INTERVAL``), the LtHash digest of the whole state after h
[STATE-CONTENT.1]. A certified header then vouches for a state's content (state sync)
and for the next validator set (the light-client walk), and each part is given to a
checker by the 32-byte values that precede it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from chain import fields as F
from chain.encoding import encode
from chain.records import Validator
from chain.state import Change
from chain.types import Address, Hash32

STATE_SYNC_VERSION = 3
"""[STATE-ROOT.2] The first protocol version whose roots commit to content."""
DIGEST_INTERVAL = 100
"""[STATE-ROOT.2] Content digests at heights that are multiples of 100: a snapshot's
possible heights. Between them a block pays only for noting its changed keys."""
NO_DIGEST = Hash32(bytes(32))


@dataclass(frozen=True, slots=True)
class RootParts:
    """[STATE-ROOT.2] What the version 3 root of a block hashes, besides its height."""

    prev_root: Hash32
    changes_hash: Hash32
    next_set_hash: Hash32
    content_digest: Hash32
    """The LtHash digest at a digest height; 32 zero bytes at any other height."""

    def root(self, height: int) -> Hash32:
        return state_root_v3(self, height)

    def to_wire(self) -> list[Any]:
        return [self.prev_root, self.changes_hash, self.next_set_hash, self.content_digest]

    @classmethod
    def from_wire(cls, value: Any) -> RootParts:
        p = F.array(value, "parts", 4)
        return cls(F.hash32(p[0], "prev_root"), F.hash32(p[1], "changes_hash"),
                   F.hash32(p[2], "next_set_hash"), F.hash32(p[3], "content_digest"))


def is_digest_height(height: int) -> bool:
    return height > 0 and height % DIGEST_INTERVAL == 0


def changes_hash(changes: Iterable[Change]) -> Hash32:
    """SHA-256 of ``encode([[table, key, value or nil], ...])`` in the sorted change order."""
    return Hash32(hashlib.sha256(encode([c.to_wire() for c in changes])).digest())


def set_members(validators: dict[Address, Validator]) -> list[list[Any]]:
    """``[[pubkey, power], ...]`` sorted by address: how a set is hashed and sent."""
    return [[validators[a].pubkey, validators[a].power] for a in sorted(validators)]


def set_hash(validators: dict[Address, Validator]) -> Hash32:
    """[STATE-ROOT.2] SHA-256 of ``encode(["learningchain/v1", "validator-set", members])``."""
    return members_hash(set_members(validators))


def members_hash(members: list[list[Any]]) -> Hash32:
    payload = encode(["learningchain/v1", "validator-set", members])
    return Hash32(hashlib.sha256(payload).digest())


def state_root_v3(parts: RootParts, height: int) -> Hash32:
    """[STATE-ROOT.2] SHA-256 of ``encode(["learningchain/v1", "state-root/3", prev_root,
    height, changes_hash, next_set_hash, content_digest])``."""
    payload = encode(["learningchain/v1", "state-root/3", parts.prev_root, height,
                      parts.changes_hash, parts.next_set_hash, parts.content_digest])
    return Hash32(hashlib.sha256(payload).digest())
