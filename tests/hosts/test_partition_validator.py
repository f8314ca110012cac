"""One validator of four cut off from the others for 30 s, then healed: the three commit on
without it (a transfer is finalized meanwhile), it catches up, and all four hosts have the
same blocks and state root. The cut drops packets silently, as a real one: the cut-off
node's connections stall rather than close."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from tests.framework.seed import rng
from tests.hosts.graph import HostGraph
from tests.hosts.linkmodel import LinkSpec
from tests.hosts.testbed import TestBed

pytestmark = pytest.mark.serial
log = logging.getLogger(__name__)
PARTITION_S = 30.0


def test_a_validator_cut_off_for_30_s_catches_up_to_the_same_state(lc_seed: int,
                                                                  tmp_path: Path) -> None:
    log.info("seed %d", lc_seed)
    links = rng("links")
    with TestBed(seed=lc_seed) as bed:
        hosts = [bed.add_host(f"v{i}") for i in range(4)]
        for i, a in enumerate(hosts):
            for b in hosts[i + 1:]:
                bed.set_link(a, b, LinkSpec.from_rtt(links.uniform(50, 150), jitter_ms=10))
        graph = HostGraph.create(bed, tmp_path / "net", hosts,
                                 users={"alice": 1_000, "bob": 0})
        graph.start_all(timeout=120)
        majority, cut_off = graph.nodes[:3], graph.nodes[3]

        bed.isolate(cut_off.host)
        started = time.monotonic()
        # Its height once the cut is in place: read before it, a block or two that the
        # graph finished meanwhile (heights of 0.2-0.4 s here) counted as "after the cut".
        before = cut_off.height()
        log.info("cut %s (%s) off from every other host for %.0f s at height %d",
                 cut_off.name, cut_off.host.name, PARTITION_S, before)
        tx = graph.transfer(graph.nodes[0], "alice", "bob", 10)
        graph.wait_height(before + 3, nodes=majority, timeout=60,
                          what="the three connected validators to commit on")
        stuck = cut_off.height()
        log.info("meanwhile: majority at %s, %s stuck at %d", graph.heights(), cut_off.name,
                 stuck)
        assert stuck <= before + 1  # no quorum alone: at most the block under way
        time.sleep(max(0.0, PARTITION_S - (time.monotonic() - started)))

        log.info("healing after %.0f s", time.monotonic() - started)
        bed.heal_all()
        healed = time.monotonic()
        target = max(n.height() for n in majority)
        graph.wait_height(target + 1, timeout=120,
                          what=f"{cut_off.name} to catch up past height {target}")
        log.info("%s caught up past %d %.1f s after the heal", cut_off.name, target,
                 time.monotonic() - healed)
        committed = graph.wait_committed(tx, timeout=30)
        assert all(graph.balance(node, "bob") == 10 for node in graph.nodes)

        tx2 = graph.transfer(cut_off, "alice", "bob", 5)  # it takes part again
        graph.wait_committed(tx2, timeout=60)
        height, root = graph.same_state()
        log.info("transfer during the cut at height %d; height %d: state root %s on all 4",
                 committed["height"], height, root[:16])
        outcome = graph.stop_all()
    assert set(outcome.values()) == {0}, outcome
