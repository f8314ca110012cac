"""[NODE-MEMPOOL.2] The local submission window (client/node/submit_window.py): pure but for
the probe, which runs on a real event loop here."""

from __future__ import annotations

import asyncio
import contextlib
import time

from client.node import submit_window
from client.node.submit_window import (
    CEILING,
    FLOOR,
    LAG_HIGH_S,
    LAG_LOW_S,
    SAMPLES,
    SubmitWindow,
    probe_lag,
)


def _second_of(window: SubmitWindow, lag_s: float) -> None:
    for _ in range(SAMPLES):
        window.lag(lag_s)


def test_node_mempool_2_a_window_refuses_at_its_size_and_notes_it() -> None:
    window = SubmitWindow()
    assert window.size == FLOOR
    assert window.admits(FLOOR - 1) and not window.refused_since_commit
    assert not window.admits(FLOOR) and window.refused_since_commit
    assert SubmitWindow(floor=2).size == 2 and SubmitWindow(floor=2).ceiling == CEILING
    assert SubmitWindow(floor=5_000).ceiling == 5_000  # a ceiling never below the floor


def test_node_mempool_2_an_idle_loop_that_refused_clients_grows_the_window_to_its_ceiling(
        ) -> None:
    window = SubmitWindow()
    sizes = []
    for _ in range(20):
        _second_of(window, LAG_LOW_S / 2)
        window.admits(window.size)  # a client refused this height
        window.committed()
        sizes.append(window.size)
    assert sizes[0] == int(FLOOR * submit_window.GROW)
    assert sizes == sorted(sizes) and sizes[-1] == CEILING
    assert not window.refused_since_commit  # each commit starts the count again


def test_node_mempool_2_no_refusal_or_a_middling_lag_holds_the_window() -> None:
    window = SubmitWindow(size=2_000)
    _second_of(window, LAG_LOW_S / 2)
    window.committed()  # idle, but nobody was refused: nothing to grow for
    assert window.size == 2_000
    _second_of(window, (LAG_LOW_S + LAG_HIGH_S) / 2)
    window.admits(10**6)
    window.committed()
    assert window.size == 2_000


def test_node_mempool_2_a_busy_loop_shrinks_the_window_to_its_floor_not_below() -> None:
    window = SubmitWindow(size=CEILING)
    for _ in range(20):
        _second_of(window, LAG_HIGH_S * 2)
        window.admits(10**6)
        window.committed()
    assert window.size == FLOOR


def test_node_mempool_2_too_few_probes_decide_nothing() -> None:
    window = SubmitWindow()
    for _ in range(SAMPLES // 2 - 1):
        window.lag(0.0)
    window.admits(10**6)
    window.committed()
    assert window.size == FLOOR


async def test_node_mempool_2_the_probe_reads_a_busy_loop_as_lag() -> None:
    window = SubmitWindow()
    task = asyncio.create_task(probe_lag(window, period_s=0.01))
    try:
        await asyncio.sleep(0.1)
        quiet = len(window.lags)
        time.sleep(0.2)  # the loop held: the probe wakes at least 0.19 s late
        await asyncio.sleep(0.05)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert quiet >= 3 and all(lag >= 0 for lag in window.lags)
    assert max(window.lags) >= 0.19
