"""[NODE-MEMPOOL.2] How many pending transactions this node lets its own clients add: a
window that follows what the graph commits, not a fixed 1,500.

Why. By Little's law a graph where a transaction waits ``T`` seconds from submission to
commit moves at most ``W / T`` transactions a second while ``W`` may be pending. On one
machine's loopback ``T`` is mostly CPU work, so a bigger window only lengthens the queue:
a window of two recent blocks left 4 validators at 5,483 tx/s but took the submit-to-final
p50 from 0.57 to 1.37 s. Across a WAN ``T`` is mostly round trips, and the same window
carried 3,757 tx/s against 2,902 with the fixed 1,500 (issue 51). No fixed number is
right for both, so the node probes, as a congestion window probes for bandwidth:

- it measures what the graph commits a second over ``MEASURE_BLOCKS`` blocks, after
  ``SETTLE_BLOCKS`` that let the queue follow a change of the window;
- while its window was what refused clients (``refused``), it tries a window ``UP``
  times larger and keeps it only if the graph then committed at least ``GAIN`` times as
  much; otherwise it goes back, tries ``DOWN`` times smaller (kept when that costs less
  than ``1 - KEEP_DOWN``: a shorter queue at the same rate), and waits twice as many
  measurements before the next try up (up to ``MAX_BACKOFF``); at the ceiling it tries
  down instead, so a window that stopped paying comes back;
- a pause of more than ``IDLE_GAP_S`` between commits is idleness, not load: the
  measurement starts over.

Between ``FLOOR`` (the old fixed window, so a CPU-bound graph keeps its latency) and
``CEILING`` (which leaves a quarter of [NODE-MEMPOOL.1]'s 8,000 to what peers gossip).
A node's policy, not a consensus rule: nodes may differ. Pure: the node passes its clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

FLOOR = 1_500
CEILING = 6_000
SETTLE_BLOCKS = 1
MEASURE_BLOCKS = 4
UP = 1.5
DOWN = 0.8
GAIN = 1.08
KEEP_DOWN = 0.95
MAX_BACKOFF = 8
IDLE_GAP_S = 10.0


class Phase(Enum):
    HOLD = "hold"
    """Measuring the rate at the kept window."""
    UP = "up"
    DOWN = "down"


@dataclass
class SubmitWindow:
    """The local submission window and the probe it is in."""

    limit: int = FLOOR
    phase: Phase = Phase.HOLD
    kept: int = FLOOR
    """The window before the probe in flight (``limit`` while holding)."""
    base_rate: float | None = None
    """Transactions a second the graph committed at ``kept``."""
    backoff: int = 1
    """Measurements at the kept window before the next probe up."""
    _held: int = 0
    _blocks: int = 0
    _txs: int = 0
    _since_s: float | None = None
    _last_s: float | None = None
    _refused: bool = False

    def refused(self) -> None:
        """A local submission was refused because ``limit`` were pending."""
        self._refused = True

    def committed(self, txs: int, now_s: float) -> None:
        """A block of ``txs`` transactions was committed at ``now_s`` (monotonic)."""
        if self._last_s is not None and now_s - self._last_s > IDLE_GAP_S:
            self._restart()
        self._last_s = now_s
        self._blocks += 1
        if self._blocks <= SETTLE_BLOCKS:
            self._since_s = now_s
            return
        self._txs += txs
        if self._blocks < SETTLE_BLOCKS + MEASURE_BLOCKS:
            return
        assert self._since_s is not None
        rate = self._txs / max(now_s - self._since_s, 1e-6)
        refused = self._refused
        self._blocks = self._txs = 0
        self._refused = False
        self._decide(rate, refused)

    def _decide(self, rate: float, refused: bool) -> None:
        base = self.base_rate
        if self.phase is Phase.UP and base is not None:
            if rate >= base * GAIN:
                self._keep(rate)
                self.backoff = 1
                self._hold()
                self._probe(refused)  # still gaining: the next try at once
                return
            self.backoff = min(MAX_BACKOFF, self.backoff * 2)
            if self.kept > FLOOR:
                self.phase, self.limit = Phase.DOWN, max(FLOOR, int(self.kept * DOWN))
            else:
                self._hold()
            return
        if self.phase is Phase.DOWN and base is not None:
            if rate >= base * KEEP_DOWN:
                self._keep(rate)
            self._hold()
            return
        self.base_rate = rate
        self._held += 1
        if self._held >= self.backoff:
            self._probe(refused)

    def _probe(self, refused: bool) -> None:
        """Up while below the ceiling, else down; only while the window refused clients."""
        if not refused:
            return
        if self.kept < CEILING:
            self.phase, self.limit = Phase.UP, min(CEILING, int(self.kept * UP))
        elif self.kept > FLOOR:
            self.phase, self.limit = Phase.DOWN, max(FLOOR, int(self.kept * DOWN))
        self._held = 0

    def _keep(self, rate: float) -> None:
        self.kept, self.base_rate = self.limit, rate

    def _hold(self) -> None:
        self.phase, self.limit, self._held = Phase.HOLD, self.kept, 0

    def _restart(self) -> None:
        """After idleness: the kept window stays, the probe in flight and the count go."""
        self._blocks = self._txs = 0
        self._refused = False
        self._hold()
