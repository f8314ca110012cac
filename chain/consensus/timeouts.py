"""Timeouts that grow with the round [CONS-TIMEOUT.1].

[CONS-TIMEOUT.1] ``timeout_step(r) = step_base_ms + r * step_delta_ms`` for
each of propose, prevote and precommit. Growth guarantees that after the
network stabilises some round's timeouts exceed the real message delay, so
an honest proposer's block gets decided (liveness after GST).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from chain.types import Height, Round


class TimeoutKind(Enum):
    PROPOSE = "propose"
    PREVOTE = "prevote"
    PRECOMMIT = "precommit"
    NEW_HEIGHT = "new_height"
    """Pacing between a commit and the next height's round 0 [CONS-TIMEOUT.2]."""
    REBROADCAST = "rebroadcast"
    """Re-send own messages of the current round, for lossy links [CONS-GOSSIP.1]."""


@dataclass(frozen=True, slots=True)
class Timeout:
    """A timer the driver must fire back into the core as ``on_timeout``."""

    kind: TimeoutKind
    height: Height
    round: Round


@dataclass(frozen=True, slots=True)
class TimeoutConfig:
    propose_base_ms: int = 1000
    propose_delta_ms: int = 500
    prevote_base_ms: int = 500
    prevote_delta_ms: int = 250
    precommit_base_ms: int = 500
    precommit_delta_ms: int = 250
    commit_ms: int = 1000
    """[CONS-TIMEOUT.2] Wait after a commit before round 0 of the next height; 0 = none."""
    rebroadcast_ms: int = 2000
    """[CONS-GOSSIP.1] Period of re-sending own current-round messages."""

    def __post_init__(self) -> None:
        for name in self.__slots__:
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.rebroadcast_ms == 0:
            raise ValueError("rebroadcast_ms must be positive")

    def duration_ms(self, kind: TimeoutKind, round_: Round) -> int:
        if kind is TimeoutKind.PROPOSE:
            return self.propose_base_ms + round_ * self.propose_delta_ms
        if kind is TimeoutKind.PREVOTE:
            return self.prevote_base_ms + round_ * self.prevote_delta_ms
        if kind is TimeoutKind.PRECOMMIT:
            return self.precommit_base_ms + round_ * self.precommit_delta_ms
        if kind is TimeoutKind.NEW_HEIGHT:
            return self.commit_ms
        return self.rebroadcast_ms
