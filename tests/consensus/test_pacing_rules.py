"""[CONS-PACE.1] [CONS-PACE.2] [CONS-PACE.3] When an honest validator starts a height.

The policy asks the state machine itself (``chain.pacing.steps_due``), so these tests
drive real ledgers: a graph at rest needs no block, a job's expiry does, at its time and
not before; a train/v3 split is a height-measured step, due two heights after the post.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from chain.blocks import Block
from chain.consensus.messages import PREVOTE
from chain.consensus.round_rules import Step
from chain.genesis import Genesis, InvalidGenesis
from chain.pacing import (
    DEFAULT_EMPTY_BLOCK_INTERVAL_MS,
    REST_CHECK_MS,
    block_due,
    rest_check_ms,
    steps_due,
)
from chain.train.bodies import PostJob
from chain.types import Height
from client.devnet.network import EMPTY_BLOCK_INTERVAL_ENV, create_network
from tests.consensus.helpers import (
    T0,
    FixedApp,
    make_core,
    non_proposer,
    others,
    proposal_for,
    vote,
    vset,
)
from tests.consensus.sim import GENESIS_TIME, SimNetwork
from tests.consensus.sim_scenario import Scenario
from tests.framework.ports import free_base_port
from tests.ledger.harness import Chain, job_spec
from tests.train.holdout.test_holdout import post, v3_spec


def test_cons_pace_1_rest_needs_no_block_until_the_interval() -> None:
    chain = Chain()
    chain.block()
    now = chain.now + 1_000
    assert not steps_due(chain.state, now)
    assert not block_due(chain.state, 0, now, DEFAULT_EMPTY_BLOCK_INTERVAL_MS)
    assert block_due(chain.state, 1, now, DEFAULT_EMPTY_BLOCK_INTERVAL_MS).reason == \
        "transactions"
    late = chain.now + DEFAULT_EMPTY_BLOCK_INTERVAL_MS
    assert block_due(chain.state, 0, late, DEFAULT_EMPTY_BLOCK_INTERVAL_MS).reason == \
        "interval"
    assert not block_due(chain.state, 0, late - 1, DEFAULT_EMPTY_BLOCK_INTERVAL_MS)


def test_cons_pace_1_interval_zero_keeps_the_old_pace() -> None:
    chain = Chain()
    assert block_due(chain.state, 0, chain.now + 1, 0).reason == "always"


def test_cons_pace_1_rest_check_is_never_longer_than_the_interval() -> None:
    assert rest_check_ms(DEFAULT_EMPTY_BLOCK_INTERVAL_MS) == REST_CHECK_MS == 1_000
    assert rest_check_ms(200) == 200
    assert rest_check_ms(0) == REST_CHECK_MS  # no resting at all: the value is unused


def test_cons_pace_1_the_first_block_of_a_graph_is_due_at_once() -> None:
    chain = Chain()
    assert block_due(chain.state, 0, chain.now + 1, 3_600_000).reason == "first"
    chain.block()
    assert not block_due(chain.state, 0, chain.now + 1, 3_600_000)


def test_cons_pace_2_a_job_expiry_is_due_at_its_time_not_before() -> None:
    chain = Chain()
    expiry = chain.now + 60_000
    chain.block(chain.tx("submitter", PostJob(job_spec(expiry_ms=expiry))))
    # the block after the post runs the job's own steps: none is due before expiry
    assert not steps_due(chain.state, expiry - 1)
    assert steps_due(chain.state, expiry)
    assert block_due(chain.state, 0, expiry, DEFAULT_EMPTY_BLOCK_INTERVAL_MS).reason == "steps"
    chain.block(at=expiry)  # the expiry settles the job: at rest again
    assert not steps_due(chain.state, chain.now + 1_000)


def test_cons_pace_2_a_split_due_two_heights_on_keeps_the_pace() -> None:
    """A train/v3 split is drawn at posted_height + 2 [HOLDOUT-SPLIT.1]: right after the
    post the next two heights hold a step, so blocks keep coming; once drawn, rest."""
    chain = Chain()
    job_id = post(chain, v3_spec())
    assert steps_due(chain.state, chain.now + 1)
    chain.block()
    assert steps_due(chain.state, chain.now + 1)
    chain.block()
    holdout = chain.state.holdout(job_id)
    assert holdout is not None and holdout.seed is not None
    assert not steps_due(chain.state, chain.now + 1)


# --------------------------------------------------------------- on the simulated network

def _block_times(net: SimNetwork) -> list[int]:
    node = net.honest()[0]
    return [int(Block.decode(data).header.time_ms) for data, _ in node.storage.blocks]


def test_cons_pace_1_a_graph_at_rest_writes_one_empty_block_per_interval() -> None:
    """[CONS-PACE.1] [CONS-PACE.3] Four real drivers and ledgers, nothing to record for 10
    simulated minutes at a 2-minute interval: the first block at once, then 4 or 5 (not the
    ~1,000 of the old pace), each at least the interval after its parent."""
    interval = 120_000
    net = SimNetwork(Scenario(seed=31, n=4, empty_block_interval_ms=interval,
                              run_until_ms=600_000))
    net.run()
    heights = {node.height for node in net.honest()}
    assert heights <= {5, 6} and heights, heights
    times = _block_times(net)
    assert times[0] - GENESIS_TIME < 2_000
    assert all(b - a >= interval for a, b in itertools.pairwise(times))


def test_cons_pace_1_a_transaction_wakes_the_graph_at_once() -> None:
    """[CONS-PACE.1] At rest with an hour's interval, a transfer submitted at 20 s is final
    within a second and a half (the old pace's latency), and the graph rests again after:
    only the graph's first block before it, at most one empty block after it (a validator
    that saw the transaction late may still have started its height)."""
    net = SimNetwork(Scenario(seed=32, n=4, empty_block_interval_ms=3_600_000,
                              transfers=[(20_000, 2)], run_until_ms=300_000))
    net.run()
    node = net.honest()[0]
    blocks = [Block.decode(data) for data, _ in node.storage.blocks]
    with_tx = [b for b in blocks if b.txs]
    assert len(with_tx) == 1 and 2 <= len(blocks) <= 4, [len(b.txs) for b in blocks]
    committed_at = int(with_tx[0].header.time_ms) - GENESIS_TIME
    assert 20_000 <= committed_at <= 21_500
    assert blocks[1].header.time_ms >= GENESIS_TIME + 20_000  # only the first before it


def test_cons_pace_1_the_old_pace_when_the_interval_is_zero() -> None:
    """Interval 0 keeps a block at every height's timer (the liveness scenarios' pace)."""
    net = SimNetwork(Scenario(seed=33, n=4, run_until_ms=10_000))
    net.run()
    assert min(node.height for node in net.honest()) >= 10


def test_cons_pace_3_the_genesis_names_the_interval(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """[CONS-PACE.3] [GENESIS-TIMING.1] ``network create`` writes the interval into the
    genesis's ``consensus_timing`` (from its option, else ``LC_EMPTY_BLOCK_INTERVAL_MS``,
    else nothing: the default); the genesis refuses one outside 0..3,600,000 ms."""
    monkeypatch.delenv(EMPTY_BLOCK_INTERVAL_ENV, raising=False)
    plain = create_network(tmp_path / "a", validators=1, workers=0, base_port=free_base_port(1))
    genesis = Genesis.load(plain.genesis)
    assert genesis.timing("empty_block_interval_ms", -1) == -1
    named = create_network(tmp_path / "b", validators=1, workers=0, base_port=free_base_port(1),
                           empty_block_interval_ms=60_000)
    assert Genesis.load(named.genesis).timing("empty_block_interval_ms", -1) == 60_000
    monkeypatch.setenv(EMPTY_BLOCK_INTERVAL_ENV, "0")
    env = create_network(tmp_path / "c", validators=1, workers=0, base_port=free_base_port(1))
    assert Genesis.load(env.genesis).timing("empty_block_interval_ms", -1) == 0
    monkeypatch.setenv(EMPTY_BLOCK_INTERVAL_ENV, "soon")
    with pytest.raises(ValueError, match=EMPTY_BLOCK_INTERVAL_ENV):
        create_network(tmp_path / "d", validators=1, workers=0, base_port=free_base_port(1))
    doc = json.loads(plain.genesis.read_text())
    for bad in (-1, 3_600_001, "300000"):
        with pytest.raises(InvalidGenesis, match=r"GENESIS-TIMING.1"):
            Genesis.from_json({**doc, "consensus_timing": {"empty_block_interval_ms": bad}})


class _RestingApp(FixedApp):
    """A toy application that has nothing to record until told (``Pacing``)."""

    def __init__(self) -> None:
        super().__init__(vset())
        self.due = False

    def block_due(self, height: Height, now: int) -> bool:
        return self.due


def test_cons_pace_1_one_vote_does_not_wake_a_resting_core_more_than_f_does() -> None:
    """[CONS-PACE.1] A core at rest stays at rest on one validator's vote (f = 1 of 4: a
    faulty one cannot force a block at every height), starts on a second validator's, and
    on a proposal from its round's proposer; its own ``wake`` starts it once due."""
    me = non_proposer(1, 0)
    core = make_core(me, app=_RestingApp())
    core.start(T0)
    assert core.at_rest and core.step is Step.NEW_HEIGHT
    voters = others(me)
    core.on_message(vote(voters[0], PREVOTE, 1, 0, None), T0 + 10)
    assert core.at_rest
    core.on_message(vote(voters[1], PREVOTE, 1, 0, None), T0 + 20)
    assert not core.at_rest and core.step is not Step.NEW_HEIGHT

    proposed = make_core(me, app=_RestingApp())
    proposed.start(T0)
    proposed.on_message(proposal_for(proposed, 0), T0 + 10)
    assert not proposed.at_rest

    woken = make_core(me, app=(app := _RestingApp()))
    woken.start(T0)
    assert woken.wake(T0 + 5) == [] and woken.at_rest  # nothing due yet: rests on
    app.due = True
    woken.wake(T0 + 10)
    assert not woken.at_rest and woken.step is not Step.NEW_HEIGHT


def test_cons_pace_2_a_validator_whose_clock_is_behind_still_proposes_at_rest() -> None:
    """[CONS-PACE.2] [CONS-TIME.3] Clocks 0, -10, +4 and +10 s off, at rest with a 2 s
    interval, on the simulator with real drivers and ledgers. Block times follow the
    fastest clock ([CONS-TIME.1] stamps max(now, parent + 1)), so measured on its own clock
    against the tip's time the -10 s validator found the interval passed 20 s after the
    +10 s one: at each of its turns the others had started the height long before and
    timed its proposal out (the flake of tests/hosts/test_clock_drift.py). Measured from
    when each node committed the tip, the interval passes within a message delay on every
    node, so each one's proposals are committed, the slowest clock's about a quarter."""
    def run(skew: dict[int, int]) -> tuple[int, dict[int, int], list[int]]:
        net = SimNetwork(Scenario(seed=34, n=4, empty_block_interval_ms=200, skew=skew,
                                  clock_precision_ms=20_500, message_delay_ms=15_000,
                                  run_until_ms=240_000))
        net.run()
        blocks = [Block.decode(data) for data, _ in net.honest()[0].storage.blocks]
        by_address = {k.address: i for i, k in enumerate(net.keys)}
        proposers = [by_address[b.header.proposer] for b in blocks[1:]]
        return (len(blocks), {i: proposers.count(i) for i in range(4)},
                [int(b.header.time_ms) for b in blocks])

    same, _, _ = run({})
    skewed, counts, times = run({0: 0, 1: -10_000, 2: 4_000, 3: 10_000})
    # before: 77 blocks against 226, proposers 3 / 10 / 30 / 33
    assert skewed >= same * 3 // 4, (skewed, same)
    assert min(counts.values()) >= (skewed - 1) // 6, counts
    assert all(a < b for a, b in itertools.pairwise(times))
