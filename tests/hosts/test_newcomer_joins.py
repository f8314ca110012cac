"""A newcomer on a home connection joins from outside (issue 31 §4, §6 "a newcomer").

Three validators run on hosts of their own, 60-120 ms apart. A fourth machine sits
behind a NAT router with its clock 2 s ahead. Its operator has only what the validators
sent: the genesis hash, a validator's API address for the genesis, and one p2p
address. Everything happens through the CLI, as README "Join an existing graph" says:

1. `node init` writes the node directory; its node starts on its own host and says,
   in words, that it is not a member yet.
2. The validators admit its address by governance (`member admit`, then
   `governance approve` until it is executed).
3. Without a restart, the newcomer connects through the connections it dials out,
   syncs, and follows: the same block hash and state root as every validator. Nobody
   hands its (unreachable) address on [WIRE-PEX.4].
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.hosts.graph import P2P_PORT, HostGraph
from tests.hosts.join import admit, init_and_start, wait_synced
from tests.hosts.linkmodel import LinkSpec
from tests.hosts.testbed import TestBed

pytestmark = pytest.mark.serial
log = logging.getLogger(__name__)


def test_node_join_1_a_newcomer_behind_nat_is_admitted_and_syncs_without_restart(
        lc_seed: int, tmp_path: Path) -> None:
    log.info("seed %d", lc_seed)
    with TestBed(seed=lc_seed, default_link=LinkSpec.from_rtt(60, jitter_ms=20)) as bed:
        hosts = [bed.add_host(f"v{i}") for i in range(3)]
        home = bed.add_host("home", nat=True, clock_offset_s=2.0)
        graph = HostGraph.create(bed, tmp_path / "net", hosts)
        graph.start_all(timeout=120)

        log.info("1. node init, reading the genesis from %s's API", graph.nodes[0].name)
        newcomer = init_and_start(graph, home, tmp_path / "mynode",
                                  peer=f"{hosts[1].public_address}:{P2P_PORT + 1}")
        address = newcomer.address
        log.info("   it says it is not a member: %s", address)

        log.info("2. the validators admit it by governance")
        admit(graph, address, tmp_path)

        log.info("3. it connects, syncs and follows, with no restart")
        height = wait_synced(graph, newcomer)
        log.info("   in sync at height %d with every validator", height)
        graph.wait_height(height + 2, timeout=60)
        assert wait_synced(graph, newcomer, timeout=10) >= height, "it keeps following"
        text = newcomer.log_text()
        assert text.count("is not a member of graph") == 1, "said once, not at every retry"
        for node in graph.nodes:
            listed = [p for p in node.api.peers() if p["address"] == address]
            assert all(not p["outbound"] for p in listed), "nobody could dial it"
        outcome = graph.stop_all()
    assert set(outcome.values()) == {0}, outcome
