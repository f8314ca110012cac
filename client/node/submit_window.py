"""How many pending transactions this node's clients may fill its pool to [NODE-MEMPOOL.2]:
1,500, grown up to 3,000 while this node's event loop is idle enough.

Why a window at all: every mempool holds every node's transactions, so a node that
refuses its own clients at 1,500 pending keeps the graph's queue, and with it the
submit-to-final latency, about one block long, and leaves the rest of the pool to what
peers gossip. By Little's law the graph then finalizes at most the window per height: on
127.0.0.1, where the CPUs are the bound, a larger window only lengthens the queue (a window
of 3,000 on the 4-validator devnet: 5,009 against 5,114 tx/s, p50 0.89 against 0.62 s);
over a WAN, where a height waits on round trips, it is what bounds the graph (3,717
against 3,212 tx/s, `bench/hosts.py`, 2026-11-26).

Which of the two a node is in shows in its own event loop: a 50 ms sleep there overshot
by 40-64 ms at the median on the CPU-bound graph and by 1-9 ms on the WAN (same machine,
same load, same minutes). So the window grows by a tenth after each committed block
while the loop's median lag over the last second stays under ``LAG_LOW_S`` and the window
refused a client since the last block, and shrinks by a fifth while that median is over
``LAG_HIGH_S``; between the two it holds. (Growing by a quarter, or shrinking only above
30 ms, let the CPU-bound devnet's windows reach 2,200-3,000 in the first seconds of load,
before its loops were busy, and its p50 rose from 0.63 to 0.69-0.74 s.) It stays within
``[floor, ceiling]``. The ceiling: a window of 4,500 collapsed the same WAN graph (5 s
heights) in a trial, and 3,000 leaves more than half of the 8,000-transaction pool
[NODE-MEMPOOL.1] to gossip.

A node's policy, not a consensus rule: nodes may differ, and nothing here is I/O but the
probe, which only feeds measured lags in.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import deque
from dataclasses import dataclass, field

FLOOR = 1_500
CEILING = 3_000
GROW = 1.1
SHRINK = 0.8
LAG_LOW_S = 0.008
LAG_HIGH_S = 0.015
SAMPLES = 20
"""Lags kept: the last second of the probe's 50 ms sleeps."""
PROBE_S = 0.05


@dataclass
class SubmitWindow:
    """The local submission window and what moves it."""

    floor: int = FLOOR
    ceiling: int = CEILING
    size: int = 0
    lags: deque[float] = field(default_factory=lambda: deque(maxlen=SAMPLES))
    refused_since_commit: bool = False

    def __post_init__(self) -> None:
        self.ceiling = max(self.ceiling, self.floor)
        self.size = min(max(self.size or self.floor, self.floor), self.ceiling)

    def admits(self, pending: int) -> bool:
        """Whether a client's new transaction may join ``pending`` ones; a refusal is noted."""
        if pending < self.size:
            return True
        self.refused_since_commit = True
        return False

    def lag(self, seconds: float) -> None:
        """One probe: how much later than asked the event loop woke it."""
        self.lags.append(max(0.0, seconds))

    def committed(self) -> None:
        """A block was committed: grow, shrink or hold, from the lags of the last second."""
        refused, self.refused_since_commit = self.refused_since_commit, False
        if len(self.lags) < SAMPLES // 2:
            return
        median = statistics.median(self.lags)
        if median > LAG_HIGH_S:
            self.size = max(self.floor, int(self.size * SHRINK))
        elif median < LAG_LOW_S and refused:
            self.size = min(self.ceiling, int(self.size * GROW))


async def probe_lag(window: SubmitWindow, period_s: float = PROBE_S) -> None:
    """Feed ``window`` the event loop's lag: how late a ``period_s`` sleep wakes, forever."""
    while True:
        asked = time.monotonic()
        await asyncio.sleep(period_s)
        window.lag(time.monotonic() - asked - period_s)
