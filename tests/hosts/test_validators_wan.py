"""Four validators on four hosts across a wide-area network: 50-150 ms round trips with
jitter, 1 % segment loss, one host's clock 4 s ahead. The chain commits, a transfer is
finalized at the same place everywhere, and every host has the same state root."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import pytest

from tests.framework.seed import rng
from tests.hosts.graph import HostGraph
from tests.hosts.linkmodel import LinkSpec
from tests.hosts.testbed import TestBed

pytestmark = pytest.mark.serial
log = logging.getLogger(__name__)


def test_four_validators_on_a_lossy_wan_with_a_clock_ahead(lc_seed: int,
                                                           tmp_path: Path) -> None:
    log.info("seed %d", lc_seed)
    links = rng("links")
    with TestBed(seed=lc_seed) as bed:
        hosts = [bed.add_host(f"v{i}", clock_offset_s=4.0 if i == 3 else 0.0)
                 for i in range(4)]
        for i, a in enumerate(hosts):
            for b in hosts[i + 1:]:
                rtt = links.uniform(50, 150)
                bed.set_link(a, b, LinkSpec.from_rtt(rtt, jitter_ms=10, loss=0.01))
                log.info("link %s-%s: %.0f ms round trip, +0..20 ms jitter, 1 %% loss",
                         a.name, b.name, rtt)

        graph = HostGraph.create(bed, tmp_path / "net", hosts,
                                 users={"alice": 1_000, "bob": 0})
        log.info("starting 4 validators; %s's clock is 4 s ahead", hosts[3].name)
        graph.start_all(timeout=120)
        first = graph.heights()
        log.info("committing: heights %s", first)

        log.info("alice sends bob 25 credits through %s", graph.nodes[1].name)
        tx = graph.transfer(graph.nodes[1], "alice", "bob", 25)
        committed = graph.wait_committed(tx, timeout=90)
        log.info("finalized at height %d on every host", committed["height"])
        assert all(graph.balance(node, "bob") == 25 for node in graph.nodes)

        graph.wait_height(max(first.values()) + 5, timeout=120,
                          what="five more blocks on every host")
        height, root = graph.same_state()
        log.info("height %d: state root %s on all 4 hosts; relay %s", height, root[:16],
                 bed.relay_stats())
        by_address = {node.layout.address: node.name for node in graph.nodes}
        proposers = Counter(by_address[graph.nodes[0].api.block(h)["proposer"]]
                            for h in range(1, height + 1))
        log.info("proposers of heights 1..%d: %s (node3's clock is ahead)", height,
                 dict(proposers))
        outcome = graph.stop_all()
    assert set(outcome.values()) == {0}, outcome
