"""The demo's and graph tests' job windows sized from a measured attempt
(``client.devnet.windows``): pure arithmetic, checked against the run that needed it."""

from __future__ import annotations

import pytest

from client.devnet.windows import (
    ATTEMPT_MARGIN,
    LOAD_MARGIN,
    PICKUP_S,
    claim_window_s,
    contention,
    vote_window_s,
)

TWO_CORES = 2_000_000_000


def test_one_worker_alone_is_not_contended() -> None:
    assert contention(1, TWO_CORES, cpus=2) == 1.0
    assert contention(1, TWO_CORES, cpus=8) == 1.0
    assert contention(0, TWO_CORES, cpus=2) == 1.0


@pytest.mark.parametrize(("trainers", "nano_cpus", "cpus", "expected"), [
    (3, TWO_CORES, 2, 3.0),          # make demo on this machine: three 2-core jobs, 2 cores
    (3, TWO_CORES, 8, 1.0),          # enough cores: no slower than alone
    (3, 500_000_000, 2, 1.0),        # three half-core jobs fit in 2 cores
    (4, 1_000_000_000, 2, 2.0),
    (3, 4_000_000_000, 2, 3.0),      # a job cannot use more cores than the machine has
])
def test_contention_is_the_cores_asked_for_over_the_cores_there(
        trainers: int, nano_cpus: int, cpus: int, expected: float) -> None:
    assert contention(trainers, nano_cpus, cpus=cpus) == pytest.approx(expected)


def test_a_lone_worker_keeps_three_attempts() -> None:
    assert claim_window_s(10.0) == PICKUP_S + ATTEMPT_MARGIN * 10.0
    assert claim_window_s(10.0, contended=1.0) == claim_window_s(10.0)
    assert claim_window_s(1.0) == 30  # the minimum
    assert claim_window_s(10.0, factor=2.0) == 2 * (PICKUP_S + ATTEMPT_MARGIN * 10.0)


def test_the_demo_window_holds_the_attempts_a_repeat_run_measured() -> None:
    """make test-repeat, run 1 of 2026-11-25: the probe took 17.5 s alone; beside each other
    (and the other test process loading images) the three demo workers' attempts took 68, 80
    and 87 s from the job's pickup, and the 75 s window (3 attempts, at least 75 s) closed
    before two of them claimed. Sized for three contended workers it holds all three."""
    old = claim_window_s(17.5, minimum_s=75.0)
    assert old == 75 < 87 + 1.3  # the honest worker's attempt began 1.3 s after the post
    new = claim_window_s(17.5, minimum_s=75.0, contended=contention(3, TWO_CORES, cpus=2))
    assert new == PICKUP_S + LOAD_MARGIN * 3.0 * 17.5 == 115
    assert new > 87 + 1.3


def test_turn_windows_hold_four_attempts_and_a_minimum() -> None:
    assert vote_window_s(17.5, minimum_s=60.0) == 70
    assert vote_window_s(5.0, minimum_s=60.0) == 60
    assert vote_window_s(5.0) == 20
    # four members evaluating at once on 2 cores with 2-core containers: LOAD_MARGIN
    # attempts slowed 4 times (a CI run's four evaluations missed a window sized for one)
    assert vote_window_s(5.0, contended=contention(4, TWO_CORES, cpus=2)) == 40


def test_the_federated_demo_commit_window_holds_six_contended_rounds() -> None:
    """``client.devnet.federated.round_window``: six owners of one core each on 2 cores run
    3 times slower than the probe alone; the window holds the pickup and 2 such rounds,
    never under the 30 s that held on a quiet machine, and round 1 adds the image check.
    The run that needed it (2026-11-28): rounds of 50-56 s side by side, a 30 s window, every
    round void."""
    from chain.jobspec import ResourceLimits
    from client.devnet.federated.round_window import (
        IMAGE_CHECK_MS,
        MIN_COMMIT_MS,
        ROUND_MARGIN,
        round_windows,
    )

    one_core = ResourceLimits(memory_mb=1024, cpu_millis=1000, time_s=180, disk_mb=64)
    slow = round_windows(17.0, 6, one_core, cpus=2)
    assert slow.commit_ms == 1000 * (PICKUP_S + ROUND_MARGIN * 3.0 * 17.0) == 112_000
    assert slow.commit_ms > 56_000  # the contended rounds of the failing run fit
    assert slow.first_commit_ms == slow.commit_ms + IMAGE_CHECK_MS
    quick = round_windows(3.0, 6, one_core, cpus=16)
    assert quick.commit_ms == MIN_COMMIT_MS  # enough cores: the old window
    assert round_windows(17.0, 1, one_core, cpus=2).commit_ms == 44_000  # alone, no contention
