"""[NODE-MEMPOOL.2] The local submission window (client/node/submit_window.py): pure, no node.

The graph is modelled as issue 51 measured it: under a load that keeps the window full,
each block carries the window's worth and takes ``T0 + n * c`` seconds, with ``c`` about
0.17 ms a transaction on this 2-core machine and ``T0`` about 0.036 s on 127.0.0.1 (the
CPU is the bound) against 0.36 s across emulated WAN hosts (round trips are)."""

from __future__ import annotations

import random
from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from client.node.submit_window import (
    CEILING,
    FLOOR,
    IDLE_GAP_S,
    MEASURE_BLOCKS,
    SETTLE_BLOCKS,
    Phase,
    SubmitWindow,
)

PER_TX_S = 0.00017
LOOPBACK_T0_S = 0.036
WAN_T0_S = 0.36
EPOCH = SETTLE_BLOCKS + MEASURE_BLOCKS


def run(window: SubmitWindow, blocks: int, interval: Callable[[int], float], *,
        saturated: bool = True, noise: float = 0.0, seed: int = 1,
        start_s: float = 0.0) -> tuple[list[int], float]:
    """Commits ``blocks`` blocks; returns the window before each and the clock at the end."""
    rng = random.Random(seed)
    now = start_s
    limits = []
    for _ in range(blocks):
        limits.append(window.limit)
        txs = window.limit if saturated else 300
        if saturated:
            window.refused()
        now += interval(txs) * (1 + rng.uniform(-noise, noise))
        window.committed(txs, now)
    return limits, now


def graph(t0_s: float) -> Callable[[int], float]:
    return lambda txs: t0_s + txs * PER_TX_S


def rate(t0_s: float, txs: int) -> float:
    return txs / graph(t0_s)(txs)


def test_on_a_wan_the_window_grows_to_what_pays() -> None:
    window = SubmitWindow()
    limits, _ = run(window, 40 * EPOCH, graph(WAN_T0_S))
    late = limits[-10 * EPOCH:]
    assert min(late) >= 3_000, late
    assert window.kept >= 5_000, window
    assert rate(WAN_T0_S, window.kept) > 1.6 * rate(WAN_T0_S, FLOOR)  # what it was for


def test_where_the_cpu_is_the_bound_the_window_stays_at_the_floor_mostly() -> None:
    window = SubmitWindow()
    limits, _ = run(window, 60 * EPOCH, graph(LOOPBACK_T0_S))
    assert window.kept == FLOOR, window
    probing = [limit for limit in limits[-30 * EPOCH:] if limit != FLOOR]
    assert len(probing) <= 30 * EPOCH // 4, probing  # backed off: tries up now and then


def test_noise_of_five_percent_does_not_lift_a_cpu_bound_window_for_long() -> None:
    for seed in range(20):
        window = SubmitWindow()
        limits, _ = run(window, 80 * EPOCH, graph(LOOPBACK_T0_S), noise=0.05, seed=seed)
        late = limits[-40 * EPOCH:]
        assert sum(late) / len(late) < 1.3 * FLOOR, (seed, sorted(set(late)))


def test_when_the_wan_turns_cpu_bound_the_window_comes_back_down() -> None:
    window = SubmitWindow()
    _, now = run(window, 40 * EPOCH, graph(WAN_T0_S))
    assert window.kept >= 5_000
    run(window, 80 * EPOCH, graph(LOOPBACK_T0_S), start_s=now)
    assert window.kept <= 2_000, window


def test_without_refusals_the_window_never_probes() -> None:
    window = SubmitWindow()
    limits, _ = run(window, 30 * EPOCH, graph(WAN_T0_S), saturated=False)
    assert set(limits) == {FLOOR}
    assert window.phase is Phase.HOLD


def test_idleness_ends_the_probe_in_flight() -> None:
    window = SubmitWindow()
    run(window, EPOCH, graph(WAN_T0_S))
    assert window.phase is Phase.UP and window.limit > FLOOR
    window.committed(0, 1_000.0 + IDLE_GAP_S)  # minutes later: no load measured meanwhile
    assert (window.phase, window.limit) == (Phase.HOLD, FLOOR)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 20_000), st.floats(0.001, 30.0), st.booleans()),
                max_size=300))
def test_the_window_stays_between_floor_and_ceiling(
        blocks: list[tuple[int, float, bool]]) -> None:
    window = SubmitWindow()
    now = 0.0
    for txs, gap, refused in blocks:
        if refused:
            window.refused()
        now += gap
        window.committed(txs, now)
        assert FLOOR <= window.limit <= CEILING and FLOOR <= window.kept <= CEILING
