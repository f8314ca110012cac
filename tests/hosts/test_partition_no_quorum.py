"""A 2|2 split of four validators on four hosts: neither side has a quorum, so no host
commits a block while it lasts (safety over liveness); healed, the chain goes on and
every host has the same blocks and state root."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from tests.hosts.graph import HostGraph
from tests.hosts.linkmodel import LinkSpec
from tests.hosts.testbed import TestBed

pytestmark = pytest.mark.serial
log = logging.getLogger(__name__)
SPLIT_S = 15.0


def test_a_two_two_split_stops_every_host_until_healed(lc_seed: int, tmp_path: Path) -> None:
    log.info("seed %d", lc_seed)
    with TestBed(seed=lc_seed, default_link=LinkSpec.from_rtt(80, jitter_ms=10)) as bed:
        hosts = [bed.add_host(f"v{i}") for i in range(4)]
        graph = HostGraph.create(bed, tmp_path / "net", hosts,
                                 users={"alice": 1_000, "bob": 0})
        graph.start_all(timeout=120)
        graph.wait_height(3, timeout=60)

        bed.split(hosts[:2])
        log.info("split {v0, v1} | {v2, v3} at heights %s", graph.heights())
        time.sleep(2.0)  # a block already voted on may still land
        during = graph.heights()
        time.sleep(SPLIT_S)
        after = graph.heights()
        log.info("after %.0f s of split: heights %s (then %s)", SPLIT_S, after, during)
        assert after == during, "a block was committed without a quorum"

        bed.heal_all()
        healed = time.monotonic()
        graph.wait_height(max(after.values()) + 2, timeout=120,
                          what="every host to commit again after the heal")
        log.info("committing again %.1f s after the heal: %s", time.monotonic() - healed,
                 graph.heights())
        graph.wait_committed(graph.transfer(graph.nodes[3], "alice", "bob", 4), timeout=60)
        height, root = graph.same_state()
        log.info("height %d: state root %s on all 4", height, root[:16])
        outcome = graph.stop_all()
    assert set(outcome.values()) == {0}, outcome
