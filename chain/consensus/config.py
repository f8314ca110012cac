"""Settings of one consensus engine; every node of a network should use the same timeouts."""

from __future__ import annotations

from dataclasses import dataclass

from .timeouts import TimeoutConfig

DEFAULT_CLOCK_PRECISION_MS = 20_500
"""[CONS-TIME.3] Two honest clocks, each up to 10 s off true time, differ by up to 20 s; plus
0.5 s (CometBFT's default precision, an NTP-synchronised pair). Was 500 ms: a validator 4 s
ahead prevoted nil on every proposal (issue 48 §5)."""
DEFAULT_MESSAGE_DELAY_MS = 15_000
"""[CONS-TIME.3] CometBFT's default ``message_delay`` for proposer-based timestamps (was
2,000 ms): a fresh proposal delayed by a slow link or a busy peer still counts as timely."""


@dataclass(frozen=True, slots=True)
class ConsensusConfig:
    chain_id: str
    timeouts: TimeoutConfig = TimeoutConfig()
    clock_precision_ms: int = DEFAULT_CLOCK_PRECISION_MS
    """[CONS-TIME.2] Bound on the clock difference between honest validators."""
    message_delay_ms: int = DEFAULT_MESSAGE_DELAY_MS
    """[CONS-TIME.2] Bound on a fresh proposal's delay to count as timely."""
    round_lookahead: int = 64
    """Messages of rounds beyond current + lookahead only count for [CONS-SKIP.1]."""
    future_buffer: int = 256
    """Messages of the next height kept until it starts."""
    rest_check_ms: int = 1000
    """[CONS-PACE.1] How often a validator at rest asks again whether a block is due (a
    transaction reaching its mempool, or any message of the height, wakes it at once)."""
