"""What a rule may know about where it runs: the block and the transaction's place in it."""

from __future__ import annotations

from dataclasses import dataclass

from chain.types import Hash32, Height, TimeMs


@dataclass(frozen=True, slots=True)
class TxContext:
    chain_id: str
    height: Height
    time_ms: TimeMs
    """The block's time: every window of the job lifecycle is measured in it."""
    index: int
    """Position of the transaction in its block."""
    tx_hash: Hash32
