"""A toy ``Application`` for unit tests of single consensus rules (not the simulator's:
that runs the real ``LedgerApp``). A block is ``encode([height, round, time, author, payload])``."""

from __future__ import annotations

from collections.abc import Callable

from chain.consensus.actions import CommitDeferred
from chain.consensus.certificate import Decision
from chain.consensus.validators import ValidatorSet
from chain.crypto import sha256
from chain.encoding import decode, encode
from chain.types import Hash32, Height, Round, TimeMs


class SimApp:
    """A toy application: a block is ``encode([height, round, time, author, payload])``."""

    def __init__(self, author: int, schedule: Callable[[int], ValidatorSet]) -> None:
        self.author = author
        self.schedule = schedule

    def validators_at(self, height: Height) -> ValidatorSet:
        return self.schedule(height)

    def propose(self, height: Height, round_: Round, time_ms: TimeMs) -> tuple[Hash32, bytes]:
        return self.make(height, round_, time_ms, b"")

    def make(self, height: int, round_: int, time_ms: int, payload: bytes) -> tuple[Hash32, bytes]:
        block = encode([height, round_, time_ms, self.author, payload])
        return sha256(block), block

    busy: Callable[[], bool] = staticmethod(lambda: False)
    """True while this node's storage is "locked": ``decided`` defers [CONS-COMMIT.2]."""

    def decided(self, decision: Decision) -> None:
        """The simulator records decisions from the ``Commit`` action instead."""
        if self.busy():
            raise CommitDeferred("storage busy (simulated)")

    def validate(self, height: Height, block_hash: Hash32, block: bytes, time_ms: TimeMs) -> bool:
        if sha256(block) != block_hash:
            return False
        fields = decode(block)
        return bool(fields[0] == height and fields[2] == time_ms)
