"""Four validators whose clocks are 0, -10, +4 and +10 s off true time [CONS-TIME.3].

Issue 48 §5: with the old bounds (0.5 s precision + 2 s message delay) a validator 4 s ahead
prevoted nil on every proposal, so each drifting clock counted against f; with three of four
off here, no proposal would have gathered a quorum. With the defaults of [CONS-TIME.3] every
validator's proposals are accepted (each proposes committed blocks), a transfer sent through
the slowest clock is finalized, block times rise strictly and stay within the stated bound
of true time, and every host ends on one state root.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from itertools import pairwise
from pathlib import Path

import pytest

from tests.hosts.graph import HostGraph
from tests.hosts.linkmodel import LinkSpec
from tests.hosts.testbed import TestBed

pytestmark = pytest.mark.serial
log = logging.getLogger(__name__)
OFFSETS_S = {"v0": 0.0, "v1": -10.0, "v2": 4.0, "v3": 10.0}


def test_cons_time_3_validators_10_s_off_keep_proposing_and_voting(lc_seed: int,
                                                                   tmp_path: Path) -> None:
    with TestBed(seed=lc_seed) as bed:
        hosts = [bed.add_host(name, clock_offset_s=offset) for name, offset in OFFSETS_S.items()]
        for i, a in enumerate(hosts):
            for b in hosts[i + 1:]:
                bed.set_link(a, b, LinkSpec.from_rtt(40, jitter_ms=5, loss=0.0))
        # a long propose timeout: a proposer slowed by the machine's load keeps its turn,
        # so what decides whether its proposal is taken is its time alone [CONS-TIME.2]
        graph = HostGraph.create(bed, tmp_path / "net", hosts, consensus={"propose_ms": 4000},
                                 users={"alice": 1_000, "bob": 0})
        log.info("starting 4 validators, clocks off by %s s", list(OFFSETS_S.values()))
        graph.start_all(timeout=120)
        tx = graph.transfer(graph.nodes[1], "alice", "bob", 25)  # through the -10 s clock
        committed = graph.wait_committed(tx, timeout=90)
        log.info("transfer finalized at height %d", committed["height"])
        by_address = {node.layout.address: node.name for node in graph.nodes}
        target = max(graph.heights().values()) + 12
        deadline = time.monotonic() + 240
        while True:  # until every validator has proposed a committed block, or 240 s
            graph.wait_height(target, timeout=180, what=f"height {target} on every host")
            height, root = graph.same_state()
            headers = [graph.nodes[0].api.block(h) for h in range(1, height + 1)]
            proposers = Counter(by_address[h["proposer"]] for h in headers)
            if len(proposers) == len(graph.nodes) or time.monotonic() > deadline:
                break
            target = height + 4
        true_now_ms = time.time() * 1000
        log.info("height %d, root %s; proposers %s", height, root[:16], dict(proposers))
        assert all(graph.balance(node, "bob") == 25 for node in graph.nodes)
        outcome = graph.stop_all()
    assert set(outcome.values()) == {0}, outcome
    # [CONS-TIME.3] each validator's proposals were accepted by a quorum: none is shut out
    assert set(proposers) == {node.name for node in graph.nodes}, proposers
    times = [h["time_ms"] for h in headers]
    assert all(a < b for a, b in pairwise(times))  # [CONS-TIME.1]
    # no block ahead of the fastest clock; the newest no further behind than the slowest
    # clock and the few seconds since it was committed
    assert max(times) <= true_now_ms + 10_000
    assert times[-1] >= true_now_ms - 10_000 - 30_000
