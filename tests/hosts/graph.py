"""A graph of node processes on the test bed's hosts: one node per host, real addresses.

Why: the scenarios of issue 31 (§2-§5) are about machines, not loopback ports. This puts
``client/devnet``'s generated network (genesis, keys, configs) onto the emulated hosts:
node i's p2p binds its host's address and bootstraps to the other hosts' addresses, so
every p2p byte crosses the emulated switch and its links; its HTTP API stays on
127.0.0.1 *inside* its host (a loopback API needs no token, and nothing but the test
reaches it: through a ``Forward`` from the test's own loopback).

A NATted host is nobody's bootstrap entry (nobody can dial it); its node dials out.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import Popen, TimeoutExpired
from typing import Any

from chain.crypto import address_from_text
from chain.keyfile import read_key_file
from chain.transactions import SignedTransaction, Transfer
from chain.types import Amount
from client.api.http_client import ApiClient, ApiError
from client.devnet.network import NetworkLayout, NodeLayout, UserLayout, create_network
from tests.framework.wait import wait_until
from tests.hosts.testbed import Host, TestBed

log = logging.getLogger(__name__)
P2P_PORT = 26656
"""Every node listens on the same port numbers: each has a machine (namespace) of its own."""


@dataclass
class HostNode:
    """A node's files, its host, its process and a client for its API."""

    layout: NodeLayout
    host: Host
    api: ApiClient
    proc: Popen[bytes] | None = None

    @property
    def name(self) -> str:
        return self.layout.name

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = (self.layout.directory / "node.log").read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def status(self) -> dict[str, Any] | None:
        """The node's status, or None while it does not answer."""
        try:
            return self.api.status()
        except (ApiError, OSError, ValueError):
            return None

    def height(self) -> int:
        return int((self.status() or {}).get("height") or 0)


@dataclass
class HostGraph:
    """``HostGraph.create(bed, root, hosts, ...)`` then ``start()``; ``stop()`` at the end."""

    bed: TestBed
    layout: NetworkLayout
    nodes: list[HostNode]
    log_level: str = "info"
    users: dict[str, UserLayout] = field(default_factory=dict)

    @classmethod
    def create(cls, bed: TestBed, root: Path, hosts: list[Host], *, workers: int = 0,
               users: dict[str, int] | None = None, consensus: dict[str, int] | None = None,
               worker_settings: dict[int, dict[str, Any]] | None = None,
               peer_exchange: bool = True, log_level: str = "info",
               validators: int | None = None,
               protocol_version: int | None = None) -> HostGraph:
        """Writes the network (node i on ``hosts[i]``) under ``root``: the first
        ``validators`` hosts (default: all) run validators, the rest worker-only nodes
        (members and genesis verifiers that take no part in consensus).
        ``protocol_version``: the genesis's [GENESIS-VERSION.1] (default: create_network's)."""
        validators = len(hosts) if validators is None else validators
        ports = [P2P_PORT + i for i in range(len(hosts))]
        genesis_version: dict[str, Any] = ({} if protocol_version is None
                                           else {"protocol_version": protocol_version})
        bootstrap = {i: [f"{h.public_address}:{ports[j]}" for j, h in enumerate(hosts)
                         if j != i and not h.nat] for i in range(len(hosts))}
        layout = create_network(root, validators=validators, workers=workers,
                                worker_nodes=len(hosts) - validators,
                                base_port=P2P_PORT, users=users, consensus=consensus,
                                worker_settings=worker_settings, bootstrap=bootstrap,
                                peer_exchange=peer_exchange,
                                **genesis_version)
        nodes = []
        for node, host in zip(layout.nodes, hosts, strict=True):
            _bind_p2p(node.config, host.address)
            api = ApiClient(host.forward(node.api_port).url, timeout=10)
            nodes.append(HostNode(node, host, api))
        return cls(bed, layout, nodes, log_level, {u.name: u for u in layout.users})

    # -- processes ---------------------------------------------------------------------

    def start(self, node: HostNode, *, env: dict[str, str] | None = None) -> None:
        """Starts ``node``'s process on its host (its clock offset and engine included);
        ``env``: variables set for this process on top of the test's environment."""
        node.proc = node.host.popen(
            [sys.executable, "-m", "client", "node", "start", "--config",
             str(node.layout.config), "--log-level", self.log_level],
            env={**os.environ, **env} if env else None, log=node.layout.directory / "node.log")

    def start_all(self, *, timeout: float = 90.0, env: dict[str, str] | None = None) -> None:
        for node in self.nodes:
            self.start(node, env=env)
        self.wait_height(1, timeout=timeout, what="every node to commit a block")

    def stop(self, node: HostNode, timeout: float = 20.0) -> int | None:
        """SIGTERM, then SIGKILL; the exit code."""
        if node.proc is None:
            return None
        node.proc.terminate()
        try:
            return node.proc.wait(timeout=timeout)
        except TimeoutExpired:
            node.proc.kill()
            return node.proc.wait(timeout=10)

    def stop_all(self) -> dict[str, int | None]:
        return {node.name: self.stop(node) for node in self.nodes}

    def _check_alive(self) -> None:
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is not None:
                raise AssertionError(f"{node.name} on {node.host.name} exited with "
                                     f"{node.proc.returncode}:\n{node.log_tail()}")

    # -- observation -------------------------------------------------------------------

    def heights(self) -> dict[str, int]:
        return {node.name: node.height() for node in self.nodes}

    def wait_height(self, height: int, *, timeout: float = 60.0, what: str = "",
                    nodes: list[HostNode] | None = None) -> None:
        """Until every node of ``nodes`` (default: all) reports ``height``."""
        watched = nodes or self.nodes

        def reached() -> bool:
            self._check_alive()
            return all(n.height() >= height for n in watched)

        wait_until(reached, timeout=timeout, step=0.5,
                   what=what or f"height {height} on {[n.name for n in watched]}",
                   detail=lambda: f"heights {self.heights()}")

    def same_state(self) -> tuple[int, str]:
        """The highest height every node has, and its state root: the block hash and the
        state root there are the same on every host (AssertionError otherwise)."""
        common = min(self.heights().values())
        blocks = {node.name: node.api.block(common) for node in self.nodes}
        roots = {name: b["state_root"] for name, b in blocks.items()}
        hashes = {name: b["hash"] for name, b in blocks.items()}
        assert len(set(roots.values())) == 1, f"state roots differ at {common}: {roots}"
        assert len(set(hashes.values())) == 1, f"block hashes differ at {common}: {hashes}"
        return common, next(iter(roots.values()))

    # -- transactions ------------------------------------------------------------------

    def transfer(self, via: HostNode, sender: str, to: str, amount: int, *,
                 memo: bytes = b"") -> bytes:
        """Signs and submits a transfer between two users through ``via``; its hash.
        ``memo``: the sender's reference, from protocol version 2 on [TX-TRANSFER.2]."""
        return self.submit_transfer(via, sender, to, amount, memo=memo).hash

    def submit_transfer(self, via: HostNode, sender: str, to: str, amount: int, *,
                        memo: bytes = b"") -> SignedTransaction:
        """``transfer``, returning the signed transaction itself (its bytes, signature)."""
        tx = via.api.sign(self.user_key(sender), Transfer(
            address_from_text(self.users[to].address), Amount(amount), memo))
        via.api.submit(tx)
        return tx

    def user_key(self, name: str) -> Any:
        """The private key of user ``name`` (read from its key file)."""
        user = self.users[name]
        return read_key_file(user.key_file, user.passphrase_file.read_text().strip())

    def wait_committed(self, tx_hash: bytes, *, timeout: float = 60.0) -> dict[str, Any]:
        """Until every node reports the transaction committed, at one height and index."""
        found: dict[str, tuple[int, int]] = {}
        for node in self.nodes:
            info: dict[str, Any] = wait_until(_committed(node, tx_hash), timeout=timeout,
                                              what=f"the transaction on {node.name}",
                                              detail=lambda: f"heights {self.heights()}")
            found[node.name] = (int(info["height"]), int(info["index"]))
        assert len(set(found.values())) == 1, f"committed at different places: {found}"
        return {"height": next(iter(found.values()))[0], "where": found}

    def balance(self, node: HostNode, user: str) -> int:
        return int(node.api.account(self.users[user].address)["balance"])


def _committed(node: HostNode, tx_hash: bytes) -> Callable[[], dict[str, Any] | None]:
    def check() -> dict[str, Any] | None:
        try:
            info = node.api.tx(tx_hash)
        except (ApiError, OSError, ValueError):
            return None
        return info if info.get("status") == "committed" else None
    return check


def _bind_p2p(config: Path, address: str) -> None:
    """Makes the node's p2p listen on its host's address (the API stays on loopback)."""
    text, count = re.subn(r'(?m)(^\[p2p\]\n(?:(?!\[).*\n)*?host = )"[^"]*"',
                          lambda m: f'{m.group(1)}"{address}"', config.read_text(), count=1)
    if count != 1:
        raise ValueError(f"{config}: no [p2p] host line to rewrite")
    config.write_text(text)


def set_bootstrap(config: Path, endpoints: list[str]) -> None:
    """Replaces the node's ``[p2p] bootstrap`` list (the peers its operator named)."""
    listed = ", ".join(f'"{e}"' for e in endpoints)
    text, count = re.subn(r"(?m)^bootstrap = \[.*\]$", f"bootstrap = [{listed}]",
                          config.read_text(), count=1)
    if count != 1:
        raise ValueError(f"{config}: no bootstrap line to rewrite")
    config.write_text(text)
