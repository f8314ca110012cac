"""How many transactions this node puts in a proposal: a time budget, not a fixed count.

A proposal must be executed by its proposer and by every validator inside the propose
timeout ([CONS-TIMEOUT.1], 1 s at round 0 by default), so its size was capped at 4,000
transfers (about 0.2 s on a small machine; 13,000 once livelocked a 2-core devnet). But a
fixed count ties throughput to round trips: on emulated WAN hosts every height waited out
its 1.2-1.5 s of messages with a full 4,000-transfer block, so a graph of 4 validators
finalized 0.51-0.57 of what it did on 127.0.0.1 (issue 51). Since [TX-SIG-CACHE.2] a
validator has checked most signatures before a proposal arrives, so a block costs less
to execute than when the cap was set.

So the node measures what executing a transaction costs it (building its own proposals,
validating others', with at least ``MIN_SAMPLE_TXS`` transactions; an exponentially
weighted mean) and proposes as many as fit ``BUDGET_S``, between ``FLOOR`` and
``CEILING`` and never over the graph's ``max_block_txs`` ([BLOCK-SIZE.1], a consensus
rule; this is the proposer's policy only, not a rule, so nodes may differ). A round past
0 halves the size per round: a height that failed at one size is tried smaller, so a
proposal too big for slower validators cannot hold a height up for long.
"""

from __future__ import annotations

from dataclasses import dataclass

BUDGET_S = 0.2
"""Execution time one proposal may take on this node (the old cap's measured cost)."""
FLOOR = 1_000
CEILING = 12_000
START = 4_000
"""Until the first measurement: the old fixed cap."""
MIN_SAMPLE_TXS = 200
"""Fewer transactions time mostly the block's fixed costs; they are not used."""
WEIGHT = 0.25
"""Of each new measurement in the running mean."""


@dataclass
class ProposalSizer:
    """The running cost of one transaction on this node, and the size it allows."""

    budget_s: float = BUDGET_S
    per_tx_s: float | None = None

    def observe(self, txs: int, seconds: float) -> None:
        """One block of ``txs`` transactions took ``seconds`` to execute here."""
        if txs < MIN_SAMPLE_TXS or seconds <= 0:
            return
        sample = seconds / txs
        self.per_tx_s = sample if self.per_tx_s is None else (
            (1 - WEIGHT) * self.per_tx_s + WEIGHT * sample)

    def limit(self, round_: int, max_block_txs: int) -> int:
        """Transactions to reap for a proposal in round ``round_``."""
        size = START if self.per_tx_s is None else int(self.budget_s / self.per_tx_s)
        size = min(max(size, FLOOR), CEILING) >> min(round_, 16)
        return max(1, min(size, max_block_txs))
