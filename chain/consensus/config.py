"""Settings of one consensus engine; every node of a network should use the same timeouts."""

from __future__ import annotations

from dataclasses import dataclass

from .timeouts import TimeoutConfig


@dataclass(frozen=True, slots=True)
class ConsensusConfig:
    chain_id: str
    timeouts: TimeoutConfig = TimeoutConfig()
    clock_precision_ms: int = 500
    """[CONS-TIME.2] Bound on the clock difference between honest validators."""
    message_delay_ms: int = 2000
    """[CONS-TIME.2] Bound on a fresh proposal's delay to count as timely."""
    round_lookahead: int = 64
    """Messages of rounds beyond current + lookahead only count for [CONS-SKIP.1]."""
    future_buffer: int = 256
    """Messages of the next height kept until it starts."""
