"""The simulator runs the node's driver and block sync, so a broken one fails it [CONS-SIM]
[NODE-CONS.3] [CONS-CATCHUP.1/2]."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import ClassVar

import pytest

from chain.consensus.actions import Action, Broadcast, PersistSigned
from chain.consensus.certificate import Decision
from chain.consensus.codec import decode_message, encode_message
from client.node.consensus_driver import ConsensusDriver, Synced, TimerHandle
from client.node.ledger_app import LedgerApp, NodeHalted
from p2p.gossip_core import Verdict
from p2p.sync import BlockSync, _CatchUp
from tests.consensus.sim import InvariantViolation, Scenario, SimNetwork, lagging_scenario
from tests.consensus.sim_sync import SimSyncTransport


class SendsBeforeWal(ConsensusDriver):
    """A mutant: carries out each Broadcast before the PersistSigned that precedes it."""

    def _execute(self, actions: list[Action], decided_at: float | None = None) -> None:
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
        super()._execute(reordered + held, decided_at)


class IgnoresSync(ConsensusDriver):
    """A mutant: never rebuilds the core after block sync moved the ledger."""

    def jump_after_sync(self) -> None:
        return None


class AppliesNothing(BlockSync):
    """A mutant: fetches batches as the node does but never applies them."""

    def _apply_ready(self, run: _CatchUp) -> None:
        run.results.clear()


class ServesOffByOne(BlockSync):
    """A mutant: answers ``getblocks`` with the blocks after the ones asked for."""

    def serve(self, start: int, count: int) -> list[list[bytes]]:
        return super().serve(start + 1, count)


def test_sim_nodes_run_the_production_driver_ledger_app_and_block_sync() -> None:
    """[NODE-CONS.3] [CONS-CATCHUP.1/2] The simulator runs the very ``ConsensusDriver``,
    ``LedgerApp`` and ``p2p.sync.BlockSync`` of a node, on injected time (only the
    transport under block sync is simulated): the types are checked exactly, and the
    run decides and every node's sync reports it caught up."""
    net = SimNetwork(Scenario(seed=11, n=4, new_blocks_after_gst=3))
    net.run()
    for node in net.nodes:
        assert type(node.driver) is ConsensusDriver
        assert node.driver is not None and isinstance(node.driver.app, LedgerApp)
        assert type(node.sync) is BlockSync and node.sync.source is node.driver.app
        assert isinstance(node.sync.transport, SimSyncTransport)
        assert node.sync.caught_up.is_set()
    assert net.verdicts and net.max_height() >= 3


def test_cons_wal_1_sim_fails_a_driver_that_sends_before_its_wal_write() -> None:
    """[NODE-CONS.3] A driver that carries out a step's actions out of order (a send
    before the WAL append it follows) is caught by the simulator."""
    net = SimNetwork(Scenario(seed=12, n=4))
    net.driver_class = SendsBeforeWal
    with pytest.raises(InvariantViolation, match=r"CONS-WAL\.1"):
        net.run()


def test_cons_catchup_1_sim_fails_a_driver_that_ignores_block_sync() -> None:
    """[NODE-CONS.3] Blocks applied by sync reach the owner as a ``Synced`` event; a
    driver whose dispatch drops it never catches up, and the simulator says so."""
    net = SimNetwork(lagging_scenario(0, 4))
    net.driver_class = IgnoresSync
    with pytest.raises(InvariantViolation, match="no liveness"):
        net.run()


def test_cons_catchup_1_sim_fails_a_block_sync_that_never_applies_what_it_fetched() -> None:
    """[CONS-CATCHUP.2] [WIRE-SYNC.5] The laggard's catch-up is ``BlockSync``'s own: a
    block sync that
    requests and collects batches but drops them leaves it behind, and the run fails."""
    net = SimNetwork(lagging_scenario(0, 4))
    net.sync_class = AppliesNothing
    with pytest.raises(InvariantViolation, match="no liveness"):
        net.run()


def test_wire_sync_6_sim_fails_a_block_sync_that_serves_the_wrong_range() -> None:
    """[WIRE-SYNC.3/6] Honest nodes serve exactly the range asked for: a server that
    answers the wrong range is charged by the asking node's block sync, and the simulator
    fails the run: only a lying block sync may ever be charged."""
    net = SimNetwork(lagging_scenario(0, 4))
    net.sync_class = ServesOffByOne
    with pytest.raises(InvariantViolation, match="whose block sync is honest"):
        net.run()


def _receiver_of_a_proposal() -> tuple[ConsensusDriver, bytes, list[str], list[bytes]]:
    """Four booted sim nodes; a validator that has not seen round 0's proposal yet, the
    proposal's gossip payload and its proposer's address, and what the receiver's core and
    ledger app are asked (``calls``) and what it sends (``sent``)."""
    net = SimNetwork(Scenario(seed=13, n=4, fast=False))
    for node in net.nodes:
        net._boot(node)
    drivers = [node.driver for node in net.nodes]
    assert all(d is not None for d in drivers)
    proposer = next(d for d in drivers if d is not None and d.core is not None
                    and 0 in d.core.first_proposal and d.core.me is not None
                    and d.core.vset.proposer(d.core.height, d.core.round) == d.core.me)
    assert proposer.core is not None and proposer.key is not None
    proposal = proposer.core.proposals[0][proposer.core.first_proposal[0]]
    receiver = next(d for d in drivers if d is not None and d is not proposer)
    core = receiver.core
    assert core is not None and 0 not in core.first_proposal
    calls: list[str] = []
    validate, on_message = receiver.app.validate, core.on_message
    receiver.app.validate = lambda *a: calls.append("validate") or validate(*a)  # type: ignore[method-assign]
    core.on_message = lambda *a, **k: calls.append("core") or on_message(*a, **k)  # type: ignore[method-assign]
    sent: list[bytes] = []
    receiver.publish = sent.append
    assert receiver.on_gossip(encode_message(proposal), proposer.key.address) is Verdict.ACCEPT
    return receiver, proposal.block_hash, calls, sent


def test_node_cons_3_gossip_check_only_queues_and_the_owner_alone_runs_the_core() -> None:
    """[NODE-CONS.3] On the gossip read path the driver checks a valid proposal and
    answers ACCEPT without touching the core or executing the block; only ``drain``
    (the owner) hands it to the core, which validates the block and prevotes there."""
    receiver, block_hash, calls, sent = _receiver_of_a_proposal()
    core = receiver.core
    assert core is not None
    assert calls == [] and sent == [] and 0 not in core.first_proposal
    receiver.drain()
    assert calls[:2] == ["core", "validate"]
    assert core.first_proposal.get(0) == block_hash
    assert [decode_message(d).block_hash for d in sent] == [block_hash]  # its prevote


def test_node_cons_3_drain_now_runs_the_queue_at_once_only_while_the_owner_runs() -> None:
    """[NODE-CONS.3] ``drain_now`` (what the gossip layer calls once it forwarded a
    consensus message, and a timer as it fires) hands the queue to the core in that very
    callback, but only while the owner task runs (its wake event exists) and never inside
    a drain; a step that fails there halts the driver, with the error, instead of raising
    into the gossip read loop."""
    receiver, block_hash, calls, sent = _receiver_of_a_proposal()
    receiver.drain_now()  # no owner task (a node not started, the simulator): queued
    assert calls == [] and sent == []
    receiver._wake = asyncio.Event()  # as ``run`` makes it
    receiver._draining = True
    receiver.drain_now()
    assert calls == []
    receiver._draining = False
    receiver.drain_now()
    assert calls[:2] == ["core", "validate"]
    assert [decode_message(d).block_hash for d in sent] == [block_hash]

    failing, _, _, _ = _receiver_of_a_proposal()
    failing._wake = asyncio.Event()

    def broken(event: object) -> None:
        raise RuntimeError("a bug in a step")

    failing.dispatch = broken  # type: ignore[method-assign]
    failing.drain_now()
    assert isinstance(failing.halted, NodeHalted) and "a bug in a step" in str(failing.halted)


class _StaleGuardApp:
    """A ledger app reduced to what the driver asks: its height, and ``propose`` refusing a
    height not next to it as ``LedgerApp.propose`` does."""

    def __init__(self, height: int) -> None:
        self.stored = height
        self.ledger = type("L", (), {"state": type("S", (), {"time_ms": 0})()})()

    def height(self) -> int:
        return self.stored

    def propose(self, height: int, round_: int, time_ms: int) -> None:
        from client.node.ledger_app import NodeHalted

        if height != self.stored + 1:
            raise NodeHalted(f"asked to propose height {height} at committed height "
                             f"{self.stored}")


class _ProposingCore:
    """A core that proposes on every step, recording the heights it was built at."""

    built: ClassVar[list[int]] = []

    def __init__(self, config: object, app: _StaleGuardApp, key: object, height: int,
                 time_ms: int, **_: object) -> None:
        self.app, self.height, self.round, self.step, self.at_rest = app, height, 0, "", True
        _ProposingCore.built.append(int(height))

    def start(self, now: int) -> list[Action]:
        self.app.propose(self.height, 0, now)
        return []

    wake = start


def test_cons_catchup_1_a_core_behind_block_sync_jumps_before_it_steps() -> None:
    """[CONS-CATCHUP.1] Block sync stored heights 6 and 7 while the core was at 6 and the
    Synced event still queued behind a Wake: the driver rebuilds the core at 8 before
    stepping it, instead of having it propose height 6 at committed height 7 and halting
    (a restarted validator did so in the one-hour soak)."""
    from chain.consensus.config import ConsensusConfig
    from client.node.consensus_driver import Wake

    _ProposingCore.built = []
    app = _StaleGuardApp(5)
    driver = ConsensusDriver(app, None, ConsensusConfig(chain_id="t"),  # type: ignore[arg-type]
                             _NullWal(), [], lambda data: None,
                             core_class=_ProposingCore)  # type: ignore[arg-type]
    driver.start()
    assert _ProposingCore.built == [6] and driver.halted is None
    app.stored = 7
    driver.submit(Wake())
    driver.submit(Synced())
    driver.drain()
    assert driver.halted is None, driver.halted
    assert _ProposingCore.built == [6, 8] and driver.core is not None
    assert driver.core.height == 8


class _NullWal:
    def append(self, record: object) -> None:
        return None

    def prune(self, keep_from_height: int) -> None:
        return None

    def close(self) -> None:
        return None


class StepTimed(ConsensusDriver):
    """The production driver with its ``step_times`` hook recording (step, seconds)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.recorded: list[tuple[str, float]] = []
        self.step_times.on_time = lambda step, seconds: self.recorded.append((step, seconds))


@pytest.mark.parametrize("scenario", [
    Scenario(seed=5, n=4, new_blocks_after_gst=6, delay_range=(5, 40), delta=40, commit_ms=30),
    Scenario(seed=9, n=7, new_blocks_after_gst=5, delay_range=(5, 120), delta=120,
             p_drop=0.05, commit_ms=0),
    Scenario(seed=32, n=4, empty_block_interval_ms=3_600_000, transfers=[(20_000, 2)],
             run_until_ms=60_000, new_blocks_after_gst=1),  # rests, wakes, rests again
])
def test_step_times_add_up_to_each_nodes_commit_latency(scenario: Scenario) -> None:
    """``learningchain_consensus_step_duration_seconds`` (the driver's ``step_times``):
    between two decisions the steps a node left add up to its commit latency, rounds above
    0 and their timeouts included, so the histogram says where a height's time went; on
    simulated time the sums are exact."""
    net = SimNetwork(scenario)
    net.driver_class = StepTimed
    net.run()
    assert net.max_height() >= scenario.new_blocks_after_gst
    resting = scenario.empty_block_interval_ms > 0
    for node in net.nodes:
        driver = node.driver
        assert isinstance(driver, StepTimed) and node.synced_blocks == 0
        steps = {step for step, _ in driver.recorded}
        assert {"prevote", "precommit", "commit"} <= steps, steps  # a step left at once
        # (a proposer, a proposal already here) is not one the node waited in
        assert ("rest" in steps) is resting
        assert all(seconds >= 0 for _, seconds in driver.recorded)
        decided = [i for i, (step, _) in enumerate(driver.recorded) if step == "commit"]
        assert len(decided) == len(driver.commit_latencies_ms) >= scenario.new_blocks_after_gst
        start = 0
        for end, latency_ms in zip(decided, driver.commit_latencies_ms, strict=True):
            spent = sum(s for step, s in driver.recorded[start:end + 1] if step != "rest")
            assert spent * 1000 == pytest.approx(latency_ms, abs=1e-6), (node.index, end)
            start = end + 1


class SlowStore(ConsensusDriver):
    """The production driver whose ledger takes ``STORE_S`` of its (monotonic) clock to
    store each decided block; records every timer delay it asks for."""

    STORE_S = 0.06

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.spent = 0.0
        self.delays: list[float] = []
        clock, scheduler, decided = self.clock, self.scheduler, self.app.decided
        driver = self

        class StoringClock:
            def now_ms(self) -> int:
                return clock.now_ms()

            def monotonic(self) -> float:
                return clock.monotonic() + driver.spent

        class RecordingScheduler:
            def call_later(self, delay_s: float, callback: Callable[[], None]) -> TimerHandle:
                driver.delays.append(delay_s)
                return scheduler.call_later(delay_s, callback)

        def slow_decided(decision: Decision) -> None:
            decided(decision)
            driver.spent += self.STORE_S

        self.clock, self.scheduler = StoringClock(), RecordingScheduler()
        self.app.decided = slow_decided  # type: ignore[method-assign]


@pytest.mark.parametrize("store_s", [0.06, 0.15])
def test_cons_timeout_2_the_pause_after_a_commit_counts_from_the_decision(
        store_s: float) -> None:
    """[CONS-TIMEOUT.2] The pause after a commit (``COMMIT_MS``, 100 ms here) counts from
    the step that decided, as CometBFT's timeout_commit counts from its CommitTime: a
    ledger that takes 60 ms to store the block leaves 40 ms of timer, one that takes 150 ms
    a timer of 0 (still a timer). No other timer is shortened."""
    SlowStore.STORE_S = store_s
    net = SimNetwork(Scenario(seed=5, n=4, new_blocks_after_gst=4, commit_ms=100))
    net.driver_class = SlowStore
    net.run()
    expected = max(0.0, 0.1 - store_s)
    for node in net.nodes:
        driver = node.driver
        assert isinstance(driver, SlowStore)
        decisions = len(driver.commit_latencies_ms)
        assert decisions >= 4
        pauses = [d for d in driver.delays if d == pytest.approx(expected, abs=1e-9)]
        assert len(pauses) == decisions, (node.index, driver.delays)
        assert not any(d == pytest.approx(0.1) for d in driver.delays), driver.delays
        # every other timer is one of SIM_TIMEOUTS' (200 ms and more), whole
        assert all(d >= 0.2 or d == pytest.approx(expected, abs=1e-9)
                   for d in driver.delays), driver.delays
