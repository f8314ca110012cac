"""The arithmetic of bench/support/txload.py and the leak check of bench/support/hostruns.py.

bench/devnet.py and bench/hosts.py report finalized tx/s and submit-to-final latencies
from ``LoadRun``; bench/hosts.py refuses to end quietly when a test bed, a private engine
or one of the test bed's interfaces outlived its run (``Made.left``). Both are checked
here on made-up runs, without a node or a namespace.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bench.support.hostruns import BED_INTERFACE, Made, _split
from bench.support.txload import LoadRun, quantile


def test_a_load_run_counts_only_what_it_sent_and_saw_committed() -> None:
    run = LoadRun(start=100.0, ready=5)
    run.sent = {"a": 100.0, "b": 100.5, "c": 101.0, "d": 101.0}
    run.committed = {"a": 101.0, "b": 102.5, "c": 102.0, "z": 103.0}  # z: someone else's
    run.commit_times = [101.0, 102.0, 102.5, 104.0]
    assert run.finalized() == 3
    assert run.window_s() == pytest.approx(2.5)  # the last of ours, not z
    assert run.tx_per_s() == pytest.approx(3 / 2.5)
    assert run.latencies() == [1.0, 1.0, 2.0]
    assert run.latency_s(0.5) == 1.0 and run.latency_s(0.99) == 1.0
    assert run.block_intervals() == [0.5, 1.0, 1.5]


def test_an_empty_run_has_no_rate_and_no_latency() -> None:
    run = LoadRun(start=0.0)
    assert run.tx_per_s() == 0.0 and math.isnan(run.window_s())
    assert math.isnan(run.latency_s(0.5)) and math.isnan(quantile([], 0.99))


def test_senders_are_shared_out_among_loaders_without_empty_ones() -> None:
    assert _split(list(range(7)), 4) == [[0, 4], [1, 5], [2, 6], [3]]
    assert _split([0, 1], 4) == [[0], [1]]


def test_a_leftover_bed_directory_or_engine_root_is_reported(tmp_path: Path) -> None:
    engine_root = tmp_path / "lcd-0123456789"
    engine_root.mkdir()
    made = Made(beds=["zz9999"], engine_roots=[engine_root], engine_pids=[],
                interfaces_before=set())
    assert made.left() == [str(engine_root)]  # no such bed's namespaces or directory
    engine_root.rmdir()
    assert made.left() == []


@pytest.mark.parametrize(("name", "ours"), [("h1", True), ("h16", True), ("up0", True),
                                            ("lan0", True), ("eth0", False), ("ifb0", False),
                                            ("docker0", False)])
def test_only_the_test_beds_veth_names_count_as_leaks(name: str, ours: bool) -> None:
    assert bool(BED_INTERFACE.match(name)) is ours
