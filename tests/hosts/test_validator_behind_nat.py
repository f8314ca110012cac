"""A validator behind a NAT router: it can only dial out, nobody can dial it. It still
takes part in consensus over the connections it opened: it commits the same blocks,
and a transfer submitted through it is finalized everywhere."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.hosts.graph import HostGraph
from tests.hosts.linkmodel import LinkSpec
from tests.hosts.probes import dial_works
from tests.hosts.testbed import TestBed

pytestmark = pytest.mark.serial
log = logging.getLogger(__name__)


def test_a_validator_behind_nat_dials_out_and_takes_part(lc_seed: int,
                                                         tmp_path: Path) -> None:
    log.info("seed %d", lc_seed)
    with TestBed(seed=lc_seed, default_link=LinkSpec.from_rtt(60, jitter_ms=10)) as bed:
        hosts = [bed.add_host(f"v{i}", nat=i == 3) for i in range(4)]
        natted = hosts[3]
        log.info("%s is behind NAT: %s inside, %s outside", natted.name, natted.address,
                 natted.public_address)
        graph = HostGraph.create(bed, tmp_path / "net", hosts,
                                 users={"alice": 1_000, "bob": 0})
        graph.start_all(timeout=120)
        node = graph.nodes[3]
        port = node.layout.p2p_port
        assert not dial_works(hosts[0], (natted.address, port))
        assert not dial_works(hosts[0], (natted.public_address, port))

        tx = graph.transfer(node, "alice", "bob", 7)
        committed = graph.wait_committed(tx, timeout=60)
        log.info("a transfer through the NATted validator finalized at height %d",
                 committed["height"])
        graph.wait_height(committed["height"] + 3, timeout=60)
        height, root = graph.same_state()
        peers = node.api.peers()
        log.info("height %d: state root %s on all 4; %s's peers: %s", height, root[:16],
                 node.name, peers)
        assert len(peers) == 3 and all(p["outbound"] for p in peers)  # it dialled them all
        seen_as = [p for p in graph.nodes[0].api.peers() if p["address"] == node.layout.address]
        assert [p["outbound"] for p in seen_as] == [False]  # node0 never dialled it
        outcome = graph.stop_all()
    assert set(outcome.values()) == {0}, outcome
