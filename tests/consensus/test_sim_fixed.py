"""Hand-picked simulator scenarios (every one checks all invariants after the run)."""

from __future__ import annotations

from pathlib import Path

from tests.consensus.sim import Scenario, SimNetwork


def test_sim_single_validator_is_a_network() -> None:
    sim = SimNetwork(Scenario(seed=1, n=1, fast=False, new_blocks_after_gst=20))
    sim.run()
    assert sim.max_height() >= 20


def test_sim_n4_all_honest_perfect_network_full_signatures() -> None:
    sim = SimNetwork(Scenario(seed=2, n=4, fast=False, new_blocks_after_gst=30))
    sim.run()
    assert sim.max_height() >= 30 and sim.misbehaviour == 0


def test_sim_n4_double_voter_is_evidenced() -> None:
    sim = SimNetwork(Scenario(seed=3, n=4, fast=False, behaviours={2: "double_vote"}))
    sim.run()
    assert sim.evidence and all(e == sim.nodes[2].key.address for e in sim.evidence)


def test_sim_n4_forger_is_rejected_with_real_signatures() -> None:
    sim = SimNetwork(Scenario(seed=4, n=4, fast=False, behaviours={1: "forger"}))
    sim.run()
    assert sim.misbehaviour > 0


def test_sim_n7_two_crashes_restart_from_real_wal_files(tmp_path: Path) -> None:
    crashes = [(0, 300, 2000), (3, 900, 1500), (0, 2500, 2600)]
    sc = Scenario(seed=5, n=7, fast=False, crashes=crashes, p_dup=0.1, wal_dir=str(tmp_path))
    sim = SimNetwork(sc)
    sim.run()
    assert sim.nodes[0].incarnation == 3 and sim.nodes[3].incarnation == 2
    assert (tmp_path / "node0.wal").stat().st_size > 0


def test_sim_n4_equivocating_proposer_and_partition() -> None:
    sc = Scenario(
        seed=6,
        n=4,
        behaviours={0: "equivocate"},
        partition=(frozenset({1}), 100, 4000),
        chaos_until=3000,
        delay_range=(1, 800),
        p_drop=0.2,
    )
    SimNetwork(sc).run()


def test_sim_n16_all_honest() -> None:
    sim = SimNetwork(Scenario(seed=7, n=16, delta=20, new_blocks_after_gst=5))
    sim.run()
    assert sim.max_height() >= 5
