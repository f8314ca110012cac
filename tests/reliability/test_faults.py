"""Fault injection on real node processes with a concurrent bank workload [issue 8].

CI runs a bounded subset (``LC_FAULT_SEEDS``, default one seed of 40 s);
``make faults`` runs the long version. Re-run one scenario:
``LC_FAULT_SEEDS=7 pytest tests/reliability/test_faults.py``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.reliability.harness import run_scenario

SEEDS = [int(s) for s in os.environ.get("LC_FAULT_SEEDS", "1").split(",")]
SECONDS = float(os.environ.get("LC_FAULT_SECONDS", "40"))
ARTIFACTS = Path(os.environ.get("LC_ARTIFACTS", "test-artifacts"))


@pytest.mark.parametrize("seed", SEEDS, ids=lambda s: f"seed_{s}")
def test_bank_workload_under_faults(seed: int, tmp_path: Path) -> None:
    report = run_scenario(tmp_path / "graph", seed, seconds=SECONDS)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"faults-seed-{seed}.json").write_text(json.dumps(report.to_json(), indent=2))
    injected = sum(v for k, v in report.faults.items() if k not in ("heal", "restart", "sigcont"))
    assert injected >= 3, report.faults
    assert report.acknowledged > 50 and report.committed_transfers >= report.acknowledged
    assert report.recovery_s < 30


CRASH_KILLS = int(os.environ.get("LC_CRASH_KILLS", "12"))


def test_kill_9_during_commits_many_times_storage_stays_consistent(tmp_path: Path) -> None:
    """Crash safety of storage: ``LC_CRASH_KILLS`` SIGKILLs of validators while they commit
    under the bank workload; each restart recovers, every invariant holds, and each node's
    database equals a replay of its own blocks from genesis, the same blocks on every node."""
    seed = SEEDS[0]
    report = run_scenario(tmp_path / "graph", seed, crash_kills=CRASH_KILLS)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"crash-loop-seed-{seed}.json").write_text(
        json.dumps(report.to_json(), indent=2))
    assert report.faults.get("kill9") == CRASH_KILLS
    assert report.acknowledged > 20 and report.committed_transfers >= report.acknowledged
