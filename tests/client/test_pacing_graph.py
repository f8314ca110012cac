"""[CONS-PACE.1] [CONS-PACE.3] A graph of 4 real validator processes on loopback with the
production interval (300 s): at rest it writes nothing, a transfer wakes it and is final
everywhere, and it rests again after; the data directory does not grow while it rests.

No timing is asserted: "at rest" is counted in heights over a rest period, the transfer
in committed state on every node."""

from __future__ import annotations

import time
from pathlib import Path

from chain.crypto import address_from_text
from chain.keyfile import read_key_file
from chain.pacing import DEFAULT_EMPTY_BLOCK_INTERVAL_MS
from chain.transactions import Transfer
from chain.types import Amount
from client.api.http_client import ApiClient
from client.devnet.processes import down
from tests.framework.devnet_up import up_on_free_ports
from tests.framework.wait import wait_until

REST_S = 8.0


def _data_bytes(root: Path) -> int:
    """What the chain and the consensus WAL hold (logs are the operator's, not the chain's)."""
    total = 0
    for node in sorted(root.glob("node*")):
        for path in node.rglob("*"):
            if path.is_file() and (path.name.startswith("chain.sqlite3")
                                   or path.name.startswith("consensus.wal")):
                total += path.stat().st_size
    return total


def _heights(apis: list[ApiClient]) -> list[int]:
    return [int(api.status()["height"]) for api in apis]


def test_cons_pace_1_real_graph_rests_wakes_on_a_transfer_and_rests_again(
        tmp_path: Path) -> None:
    root = tmp_path / "net"
    layout = up_on_free_ports(root, validators=4, workers=0,
                              users={"alice": 1_000, "bob": 0}, consensus={"commit_ms": 100},
                              empty_block_interval_ms=DEFAULT_EMPTY_BLOCK_INTERVAL_MS)
    try:
        apis = [ApiClient(n.api_url) for n in layout.nodes]
        wait_until(lambda: min(_heights(apis)) >= 1, what="the graph's first block")
        before, size_before = _heights(apis), _data_bytes(root)
        time.sleep(REST_S)
        assert _heights(apis) == before, "a graph at rest committed blocks"
        assert _data_bytes(root) == size_before, "a graph at rest wrote to its chain"

        alice = next(u for u in layout.users if u.name == "alice")
        bob = next(u for u in layout.users if u.name == "bob")
        key = read_key_file(alice.key_file, alice.passphrase_file.read_text().strip())
        tx = apis[2].sign(key, Transfer(address_from_text(bob.address), Amount(7)))
        apis[2].submit(tx)
        wait_until(lambda: all(api.account(bob.address)["balance"] == 7 for api in apis),
                   timeout=60, what="the transfer final on every node")
        woke = _heights(apis)
        assert max(woke) - max(before) <= 3, (before, woke)  # the block it needed, not a run
        wait_until(lambda: len(set(_heights(apis))) == 1, what="every node at one height")
        settled = _heights(apis)
        time.sleep(REST_S)
        assert _heights(apis) == settled, "the graph did not rest again"
    finally:
        outcome = down(root)
    assert set(outcome.values()) == {"stopped"}, outcome
