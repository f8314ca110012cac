"""The simulator runs the node's driver, so a broken dispatch fails it [CONS-SIM] [NODE-CONS.3]."""

from __future__ import annotations

import pytest

from chain.consensus.actions import Action, Broadcast, PersistSigned
from client.node.consensus_driver import ConsensusDriver, Synced
from client.node.ledger_app import LedgerApp
from tests.consensus.sim import InvariantViolation, Scenario, SimNetwork, lagging_scenario


class SendsBeforeWal(ConsensusDriver):
    """A mutant: carries out each Broadcast before the PersistSigned that precedes it."""

    def _execute(self, actions: list[Action]) -> None:
        reordered: list[Action] = []
        held: list[Action] = []
        for action in actions:
            if isinstance(action, PersistSigned):
                held.append(action)
            elif isinstance(action, Broadcast):
                reordered.append(action)
                reordered.extend(held)
                held.clear()
            else:
                reordered.append(action)
        super()._execute(reordered + held)


class IgnoresSync(ConsensusDriver):
    """A mutant: never rebuilds the core after block sync moved the ledger."""

    def dispatch(self, event: object) -> None:
        if not isinstance(event, Synced):
            super().dispatch(event)  # type: ignore[arg-type]


def test_sim_nodes_run_the_production_driver_and_ledger_app() -> None:
    net = SimNetwork(Scenario(seed=11, n=4, new_blocks_after_gst=3))
    net.run()
    for node in net.nodes:
        assert type(node.driver) is ConsensusDriver
        assert node.driver is not None and isinstance(node.driver.app, LedgerApp)
    assert net.verdicts and net.max_height() >= 3


def test_cons_wal_1_sim_fails_a_driver_that_sends_before_its_wal_write() -> None:
    net = SimNetwork(Scenario(seed=12, n=4))
    net.driver_class = SendsBeforeWal
    with pytest.raises(InvariantViolation, match=r"CONS-WAL\.1"):
        net.run()


def test_cons_catchup_1_sim_fails_a_driver_that_ignores_block_sync() -> None:
    net = SimNetwork(lagging_scenario(0, 4))
    net.driver_class = IgnoresSync
    with pytest.raises(InvariantViolation, match="no liveness"):
        net.run()
