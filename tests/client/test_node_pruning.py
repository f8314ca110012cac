"""``[storage] retain_blocks`` on real nodes in one process, real sockets on 127.0.0.1
[STORE-PRUNE.*], [WIRE-SYNC.8].

The tests set ``retain_blocks`` on the loaded config (10 blocks, a prune every 5 heights)
instead of writing it in the file: the file's minimum (1,000 blocks for a full node,
100,000 for a validator, [STORE-PRUNE.1]) is checked at load, tested on its own here,
and would take minutes of blocks to reach.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import client.node.pruning as pruning
from chain.crypto import address_from_text
from chain.keyfile import read_key_file
from chain.transactions import Transfer, sign_transaction
from chain.types import Amount
from client.devnet.network import NetworkLayout, create_network
from client.node.config import ConfigError, NodeConfig
from client.node.ledger_node import LedgerNode
from tests.framework.ports import free_base_port
from tests.framework.wait import wait_until_async

RETAIN = 10


@pytest.fixture(autouse=True)
def _prune_often(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pruning, "PRUNE_EVERY", 5)


def _graph(tmp_path: Path, full_nodes: int) -> tuple[NetworkLayout, int]:
    base = free_base_port(2 + full_nodes)
    users = {"alice": 1_000_000, "bob": 0, **{f"full{i}": 0 for i in range(full_nodes)}}
    layout = create_network(tmp_path / "net", validators=1, workers=0, base_port=base,
                            users=users, consensus={"commit_ms": 50})
    return layout, base


def _full_config(layout: NetworkLayout, base: int, i: int, bootstrap: list[int],
                 retain: int = 0, roles: str = '["full"]') -> NodeConfig:
    """A full (non-validator) node keyed by the member ``full{i}``; ``bootstrap`` lists the
    p2p ports it dials."""
    user = next(u for u in layout.users if u.name == f"full{i}")
    home = layout.nodes[0].config.parent.parent / f"full{i}"
    home.mkdir(exist_ok=True)
    genesis = layout.nodes[0].config.parent.parent / "genesis.json"
    peers = ", ".join(f'"127.0.0.1:{p}"' for p in bootstrap)
    path = home / "config.toml"
    path.write_text(
        f'[node]\nkey_file = "{user.key_file}"\npassphrase_file = "{user.passphrase_file}"\n'
        f'genesis = "{genesis}"\ndata_dir = "data"\nroles = {roles}\n'
        f'[p2p]\nport = {base + 1 + i}\nbootstrap = [{peers}]\npeer_exchange = false\n'
        f'[api]\nport = {base + 101 + i}\n')
    return dataclasses.replace(NodeConfig.load(path), retain_blocks=retain)


def _running(config: NodeConfig) -> contextlib.AbstractAsyncContextManager[LedgerNode]:
    return _started(LedgerNode(config))


@contextlib.asynccontextmanager
async def _started(node: LedgerNode) -> AsyncIterator[LedgerNode]:
    """``node`` (built, its store open, not started) running until the block ends."""
    await node.start()
    try:
        yield node
    finally:
        await node.stop()


@contextlib.asynccontextmanager
async def _transfers(layout: NetworkLayout, node: LedgerNode) -> AsyncIterator[list[bytes]]:
    """Submits a transfer every 50 ms (so blocks come whatever the empty-block pacing);
    yields the hashes submitted so far."""
    alice = next(u for u in layout.users if u.name == "alice")
    key = read_key_file(alice.key_file, alice.passphrase_file.read_text().strip())
    bob = address_from_text(next(u.address for u in layout.users if u.name == "bob"))
    hashes: list[bytes] = []

    async def pump() -> None:
        while True:
            tx = sign_transaction(key, layout.chain_id, node.next_nonce(key.address),
                                  Transfer(bob, Amount(1)))
            if node.submit(tx).accepted:
                hashes.append(tx.hash)
            await asyncio.sleep(0.05)

    task = asyncio.create_task(pump())
    try:
        yield hashes
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _get(node: LedgerNode, path: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, \
            session.get(f"http://{node.api_endpoint}/api/v1{path}") as response:
        body = await response.json()
        return response.status, body.get("error", body) if isinstance(body, dict) else body


def _stored(node: LedgerNode) -> list[int]:
    return [h for h in range(1, node.height + 1) if node.block(h) is not None]


def test_store_prune_1_retain_blocks_below_the_roles_minimum_is_refused(tmp_path: Path) -> None:
    """[STORE-PRUNE.1] 0 keeps everything; a value below the roles' minimum (or negative, or
    not an integer) is refused at load, naming the value, the minimum and why."""
    layout, base = _graph(tmp_path, 1)
    path = layout.nodes[0].config  # a validator
    text = path.read_text()

    def load(value: str) -> NodeConfig:
        path.write_text(text + f"\n[storage]\nretain_blocks = {value}\n")
        return NodeConfig.load(path)

    assert load("0").retain_blocks == 0
    assert load("100000").retain_blocks == 100_000
    with pytest.raises(ConfigError, match=r"at least 100000 for roles validator, got 99999: "
                                          r"a validator keeps the blocks of the evidence"):
        load("99999")
    with pytest.raises(ConfigError, match=r"got -1"):
        load("-1")
    with pytest.raises(ConfigError, match=r"retain_blocks must be int, got '5000'"):
        load('"5000"')
    full = _full_config(layout, base, 0, []).path
    full_text = full.read_text()
    full.write_text(full_text + "[storage]\nretain_blocks = 999\n")
    with pytest.raises(ConfigError, match=r"at least 1000 for roles full, got 999"):
        NodeConfig.load(full)
    full.write_text(full_text + "[storage]\nretain_blocks = 1000\n")
    assert NodeConfig.load(full).retain_blocks == 1_000


async def test_store_prune_3_a_pruning_validator_keeps_committing_serves_and_restarts(
        tmp_path: Path) -> None:
    """[STORE-PRUNE.3] [STORE-PRUNE.5] A validator keeping 10 blocks: pruning runs every 5
    heights, exactly the blocks below its base are gone, it keeps committing; the API says
    410 ``pruned_block`` below the base, 200 from it, and status shows the base; after a
    restart the base is the same and it commits on."""
    layout, _ = _graph(tmp_path, 0)
    config = dataclasses.replace(NodeConfig.load(layout.nodes[0].config), retain_blocks=RETAIN)
    async with _running(config) as node, _transfers(layout, node) as submitted:
        await wait_until_async(lambda: node.base_height > 20, timeout=60,
                               what="the validator pruned past height 20")
        tip, base = node.height, node.base_height
        assert base >= tip - RETAIN - pruning.PRUNE_EVERY + 1  # pruned on schedule
        assert _stored(node) == list(range(base, node.height + 1))
        assert (await _get(node, f"/blocks/{tip}"))[0] == 200  # kept for 10 more heights
        status, body = await _get(node, f"/blocks/{base - 1}")
        assert (status, body["code"]) == (410, "pruned_block")
        assert f"block {base - 1} was pruned here" in body["message"]
        assert (await _get(node, f"/blocks/{base - 1}/raw"))[0] == 410
        status, body = await _get(node, f"/txs/{submitted[0].hex()}")
        assert (status, body["code"]) == (404, "unknown_tx")
        assert f"blocks below {node.base_height} were pruned here" in body["message"]
        _, info = await _get(node, "/status")  # blocks keep coming: the base only rises
        assert base <= info["base_height"] <= node.base_height
        _, listing = await _get(node, "/blocks?order=asc&from=1&limit=5")
        assert base <= listing["base_height"] <= node.base_height
        assert [b["height"] for b in listing["blocks"]][:1] == [listing["base_height"]]
    # Both read from the store while no node commits: read before the stop, a commit on
    # the way out (the transfers still flowing) pruned on (22 read, 25 after the restart);
    # read after the start, the restarted node's first commit, its first prune, can come
    # first under load (25 against 22 in a CI run of four processes on 2 cores).
    stopped_base = node.base_height
    restarted = LedgerNode(config)
    assert restarted.base_height == stopped_base
    async with _started(restarted) as node, _transfers(layout, node):
        height = node.height
        await wait_until_async(lambda: node.base_height > stopped_base, timeout=60,
                               what="the restarted validator commits and prunes on")
        # its first commit can prune before ``height`` is read (a CI run: 33 and 33)
        await wait_until_async(lambda: node.height > height, timeout=60,
                               what="the restarted validator commits again")
        assert _stored(node) == list(range(node.base_height, node.height + 1))


async def test_wire_sync_8_a_new_node_syncs_from_a_pruned_and_an_unpruned_peer(
        tmp_path: Path) -> None:
    """[WIRE-SYNC.8] A new node dialling a pruned full node (base > 1) and the unpruned
    validator gets the old blocks from the validator only, and catches up."""
    layout, base = _graph(tmp_path, 2)
    validator_port = base
    validator = NodeConfig.load(layout.nodes[0].config)
    async with _running(validator) as v, _transfers(layout, v):
        pruned_config = _full_config(layout, base, 0, [validator_port], retain=RETAIN)
        async with _running(pruned_config) as pruned:
            await wait_until_async(lambda: pruned.base_height > 20, timeout=60,
                                   what="the full node pruned past height 20")
            newcomer_config = _full_config(layout, base, 1, [base + 1, validator_port])
            async with _running(newcomer_config) as newcomer:
                await wait_until_async(
                    lambda: newcomer.sync.caught_up.is_set() and newcomer.height >= v.height - 2,
                    timeout=60, what="the newcomer caught up")
                assert newcomer.sync.peer_bases[pruned.key.address] > 1
                assert newcomer.block(1) is not None and newcomer.base_height == 1
                assert newcomer.sync.missing is None


async def test_wire_sync_8_only_pruned_peers_fail_clearly_without_retrying(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """[WIRE-SYNC.8] With only a pruned peer, a new node does not crash or hammer it: it
    logs once which heights are missing, asks for nothing, shows them in its status, and
    is not caught up."""
    layout, base = _graph(tmp_path, 2)
    async with _running(NodeConfig.load(layout.nodes[0].config)) as v, _transfers(layout, v):
        pruned_config = _full_config(layout, base, 0, [base], retain=RETAIN)
        async with _running(pruned_config) as pruned:
            await wait_until_async(lambda: pruned.base_height > 20, timeout=60,
                                   what="the full node pruned past height 20")
    async with _running(pruned_config) as pruned:  # the validator is gone: the base stays
        pruned_base = pruned.base_height
        caplog.set_level(logging.INFO, logger="p2p.sync")
        newcomer_config = _full_config(layout, base, 1, [base + 1])
        async with _running(newcomer_config) as newcomer:
            await wait_until_async(lambda: newcomer.sync.missing is not None, timeout=30,
                                   what="the newcomer saw the missing heights")
            await asyncio.sleep(3)  # three sync ticks: nothing more may happen
            assert newcomer.sync.missing == (1, pruned_base - 1)
            assert newcomer.height == 0 and not newcomer.sync.fetching
            assert not newcomer.sync.caught_up.is_set()
            assert newcomer.status().sync_missing == (1, pruned_base - 1)
            _, info = await _get(newcomer, "/status")
            assert info["sync_missing"] == [1, pruned_base - 1] and not info["caught_up"]
            errors = [r.getMessage() for r in caplog.records
                      if "block sync stopped" in r.getMessage()]
            assert errors == [f"block sync stopped: blocks 1..{pruned_base - 1} are pruned on "
                              f"every connected peer (oldest stored: "
                              f"{bytes(pruned.key.address).hex()[:8]} from {pruned_base}); "
                              "connect a peer that keeps them (retain_blocks = 0)"]
            asked = [r.getMessage() for r in caplog.records if "blocks 1+" in r.getMessage()]
            assert asked == []
