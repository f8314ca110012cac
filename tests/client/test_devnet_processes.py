"""A graph of real node processes on loopback: transfers finalize everywhere, a SIGKILLed
validator rejoins and catches up to identical state, shutdown is graceful."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from chain.keyfile import read_key_file
from chain.transactions import Transfer
from chain.types import Amount
from client.api.http_client import ApiClient
from client.devnet.processes import down, load_pids, start_node_process
from tests.framework.devnet_up import up_on_free_ports
from tests.framework.wait import wait_until


def test_devnet_transfer_sigkill_rejoin_and_graceful_stop(tmp_path: Path) -> None:
    """[NODE-RESTART.1] A validator process SIGKILLed while the others commit, restarted on
    its data dir: it syncs what it missed and follows to the same blocks and state."""
    root = tmp_path / "net"
    layout = up_on_free_ports(root, validators=4, workers=0,
                              users={"alice": 1_000, "bob": 0}, consensus={"commit_ms": 100})
    try:
        apis = [ApiClient(n.api_url) for n in layout.nodes]
        alice = next(u for u in layout.users if u.name == "alice")
        bob = next(u for u in layout.users if u.name == "bob")
        key = read_key_file(alice.key_file, alice.passphrase_file.read_text().strip())

        tx = apis[0].sign(key, Transfer(_addr(bob.address), Amount(25)))
        apis[0].submit(tx)
        apis[0].wait_for_tx(tx.hash, timeout=30)
        located = [wait_until(lambda api=api: _committed(api, tx.hash),
                              what=f"the transfer committed on {api.base_url}")
                   for api in apis]
        assert len({(loc["height"], loc["index"]) for loc in located}) == 1
        assert all(api.account(bob.address)["balance"] == 25 for api in apis)

        # SIGKILL one validator; three of four keep committing.
        pids = load_pids(root)
        victim = layout.nodes[3]
        os.kill(pids[victim.name], signal.SIGKILL)
        base = apis[0].status()["height"]
        wait_until(lambda: apis[0].status()["height"] >= base + 5, what="5 blocks without node3")
        tx2 = apis[1].sign(key, Transfer(_addr(bob.address), Amount(5)))
        apis[1].submit(tx2)
        wait_until(lambda: _committed(apis[0], tx2.hash), what="a transfer without node3")

        # Restart it from its data dir: it catches up and follows.
        pids[victim.name] = start_node_process(victim)
        (root / "devnet.json").write_text(
            __import__("json").dumps({"pids": pids}))
        target = apis[0].status()["height"]
        wait_until(lambda: (apis[3].status() if _up(apis[3]) else {}).get("height", 0) > target,
                   timeout=60, what=f"the restarted node3 to pass height {target}")
        common = min(api.status()["height"] for api in apis)
        roots = {api.block(common)["state_root"] for api in apis}
        hashes = {api.block(common)["hash"] for api in apis}
        assert len(roots) == 1 and len(hashes) == 1
        assert apis[3].account(bob.address)["balance"] == 30
    finally:
        outcome = down(root)
    assert set(outcome.values()) == {"stopped"}, outcome
    logs = (root / "node0" / "node.log").read_text()
    assert "stopped cleanly" in logs


def _committed(api: ApiClient, tx_hash: bytes) -> dict | None:
    try:
        info = api.tx(tx_hash)
    except Exception:
        return None
    return info if info.get("status") == "committed" else None


def _addr(text: str) -> bytes:
    from chain.crypto import address_from_text

    return address_from_text(text)


def _up(api: ApiClient) -> bool:
    try:
        api.status()
    except Exception:
        return False
    return True
