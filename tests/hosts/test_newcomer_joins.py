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
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from chain.genesis import Genesis
from client.api.http_client import ApiClient, ApiError
from tests.framework.wait import wait_until
from tests.hosts.graph import P2P_PORT, HostGraph, HostNode
from tests.hosts.linkmodel import LinkSpec
from tests.hosts.testbed import TestBed

pytestmark = pytest.mark.serial
log = logging.getLogger(__name__)
CLI = str(Path(sys.executable).parent / "learningchain")
NEWCOMER_API_PORT = 26657


def lc(*args: str, env: dict[str, str] | None = None, cwd: Path) -> str:
    """A CLI command in the test's namespace (what an operator types); its stdout."""
    done = subprocess.run([CLI, *args], cwd=cwd, env=os.environ | (env or {}),
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"{args}: {done.stdout}{done.stderr}"
    return done.stdout


def as_validator(node: HostNode) -> dict[str, str]:
    directory = node.layout.directory
    return {"LC_NODE": node.api.base_url, "LC_KEY": str(directory / "node.key"),
            "LC_PASSPHRASE": (directory / "passphrase").read_text().strip()}


def test_node_join_1_a_newcomer_behind_nat_is_admitted_and_syncs_without_restart(
        lc_seed: int, tmp_path: Path) -> None:
    log.info("seed %d", lc_seed)
    with TestBed(seed=lc_seed, default_link=LinkSpec.from_rtt(60, jitter_ms=20)) as bed:
        hosts = [bed.add_host(f"v{i}") for i in range(3)]
        home = bed.add_host("home", nat=True, clock_offset_s=2.0)
        graph = HostGraph.create(bed, tmp_path / "net", hosts)
        graph.start_all(timeout=120)
        node0 = graph.nodes[0]
        genesis_hash = Genesis.load(graph.layout.genesis).hash.hex()

        log.info("1. node init, reading the genesis from %s's API", node0.name)
        peer = f"{hosts[1].public_address}:{P2P_PORT + 1}"
        lc("node", "init", "mynode", "--genesis", node0.api.base_url, "--genesis-hash",
           genesis_hash, "--peer", peer, "--listen", f"{home.address}:{P2P_PORT}",
           "--api", f"127.0.0.1:{NEWCOMER_API_PORT}", cwd=tmp_path)
        config = tmp_path / "mynode" / "config.toml"
        node_log = tmp_path / "mynode" / "node.log"
        home.popen([sys.executable, "-m", "client", "node", "start", "--config", str(config)],
                   log=node_log)
        words = wait_until(lambda: re.search(
            r"this node \((lc1[0-9a-f]+)\) is not a member of graph \S+ yet", node_log.read_text()),
            timeout=60, what="the newcomer's 'not a member' notice",
            detail=lambda: node_log.read_text()[-1500:])
        address = words.group(1)
        log.info("   it says it is not a member: %s", address)

        log.info("2. the validators admit it by governance")
        said = lc("member", "admit", address, env=as_validator(node0), cwd=tmp_path)
        pending = re.search(r"^proposal ([0-9a-f]{64}) pending", said, re.MULTILINE)
        for node in graph.nodes[1:]:
            if pending is None:
                break
            said = lc("governance", "approve", pending.group(1), env=as_validator(node),
                      cwd=tmp_path)
            if "executed" in said:
                pending = None
        assert pending is None, said

        log.info("3. it connects, syncs and follows, with no restart")
        newcomer = ApiClient(home.forward(NEWCOMER_API_PORT).url, timeout=10)

        def synced() -> int | None:
            try:
                height = int(newcomer.status()["height"])
            except (ApiError, OSError, ValueError):
                return None
            target = min(graph.heights().values())
            if height < target or height == 0:
                return None
            ours, theirs = newcomer.block(target), node0.api.block(target)
            same = (ours["hash"], ours["state_root"]) == (theirs["hash"], theirs["state_root"])
            return target if same else None

        height = wait_until(synced, timeout=120, step=1.0, what="the newcomer in sync",
                            detail=lambda: node_log.read_text()[-1500:])
        log.info("   in sync at height %d with every validator", height)
        graph.wait_height(height + 2, timeout=60)
        assert synced(), "it keeps following"
        text = node_log.read_text()
        assert text.count("is not a member of graph") == 1, "said once, not at every retry"
        for node in graph.nodes:
            listed = [p for p in node.api.peers() if p["address"] == address]
            assert all(not p["outbound"] for p in listed), "nobody could dial it"
        outcome = graph.stop_all()
    assert set(outcome.values()) == {0}, outcome
