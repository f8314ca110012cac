"""When a graph needs a block [CONS-PACE.*]: a proposer's policy, not a validity rule.

A graph at rest must not grow (issue 48 §1). Block validity is unchanged: any block
that applies is valid whenever it comes. What changes is when an honest validator
starts a height's first round: only when the next block has something to record.

Windows of every job kind are measured in block *time* (``expiry_ms``,
``phase_deadline_ms``, prediction and federated windows): a deadline takes effect in
the first block whose time reaches it. A few steps are measured in *heights*
(a train/v3 or federated split drawn at ``posted_height + 2`` [HOLDOUT-SPLIT.1], a
prediction's draw at ``included_height + 1`` [PRED-DRAW.1], validator changes at
``height + validator_change_delay`` [GOV-VALSET.1]). ``block_due`` asks the state
machine itself, so that no kind can be forgotten: it runs the begin and end steps of
the next two heights at time ``now`` on a throw-away overlay; any write means a step is
due, and a block is proposed at the normal pace.

Pure: no clock, no I/O; the node passes ``now`` and its mempool's size.
"""

from __future__ import annotations

from dataclasses import dataclass

from chain.state import Overlay, State
from chain.transition import begin_block, end_block
from chain.types import Height, TimeMs

DEFAULT_EMPTY_BLOCK_INTERVAL_MS = 300_000
"""[CONS-PACE.3] At most one empty block per 5 minutes on a graph at rest: 288 a day, about
0.4 MB a day per node at the measured 1.4 kB an empty block costs on disk (4 validators)."""

REST_CHECK_MS = 1_000
"""[CONS-PACE.1] How often a validator at rest asks again, unless the interval is shorter."""

PREVIEW_HEIGHTS = 2
"""[CONS-PACE.2] Height-measured steps are due at most 2 heights after what schedules them
(split draws at ``posted_height + 2``, prediction draws at ``included_height + 1``)."""


@dataclass(frozen=True, slots=True)
class Due:
    """Why a block is due now (``reason``), or not (``reason`` is empty)."""

    reason: str = ""

    def __bool__(self) -> bool:
        return bool(self.reason)


def steps_due(state: State, now_ms: int) -> bool:
    """[CONS-PACE.2] The begin or end steps of height tip + 1 or tip + 2, run at ``now``,
    would change the state: a window closed, a draw, a round, a settlement is due."""
    if state.tables["valset_change"]:
        return True  # changes wait for their height: keep the pace until they apply
    view = Overlay(state)
    time_ms = TimeMs(max(now_ms, state.time_ms + 1))
    for offset in range(1, PREVIEW_HEIGHTS + 1):
        height = Height(state.height + offset)
        begin_block(view, height, time_ms)
        end_block(view, height, time_ms)
        if view.writes:
            return True
    return False


def rest_check_ms(empty_interval_ms: int) -> int:
    """[CONS-PACE.1] ``min(REST_CHECK_MS, EMPTY_INTERVAL)``: a graph with a short interval
    keeps its pace (the test suite's 200 ms graphs), a graph at rest asks once a second."""
    return min(REST_CHECK_MS, empty_interval_ms) if empty_interval_ms > 0 else REST_CHECK_MS


def block_due(state: State, pending_txs: int, now_ms: int, empty_interval_ms: int) -> Due:
    """[CONS-PACE.1] Whether an honest validator starts the next height's round now.

    ``empty_interval_ms`` = 0 keeps the old pace (a block at every height's timer)."""
    if empty_interval_ms == 0:
        return Due("always")
    if state.height == 0:
        return Due("first")  # a new graph shows it is live (``devnet up`` waits for it)
    if pending_txs:
        return Due("transactions")
    if steps_due(state, now_ms):
        return Due("steps")
    if now_ms - state.time_ms >= empty_interval_ms:
        return Due("interval")
    return Due()
