"""A newcomer's way in, as README "Join an existing graph" tells an operator: ``node init``
on its own host, admission by the validators' governance, and the wait until it follows.

Why a module: tests/hosts/test_newcomer_joins.py tells that story on its own, and
tests/hosts/test_seven_hosts.py makes the joined machine a verifier that earns; both type
the same commands.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from chain.genesis import Genesis
from client.api.http_client import ApiClient, ApiError
from tests.framework.wait import wait_until
from tests.hosts.graph import P2P_PORT, HostGraph, HostNode
from tests.hosts.testbed import Host

CLI = str(Path(sys.executable).parent / "learningchain")
NEWCOMER_API_PORT = 26657
NOT_A_MEMBER = r"this node \((lc1[0-9a-f]+)\) is not a member of graph \S+ yet"


def lc(*args: str, env: dict[str, str] | None = None, cwd: Path) -> str:
    """A CLI command in the test's namespace (what an operator types); its stdout."""
    done = subprocess.run([CLI, *args], cwd=cwd, env=os.environ | (env or {}),
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"{args}: {done.stdout}{done.stderr}"
    return done.stdout


def as_validator(node: HostNode) -> dict[str, str]:
    """The environment that makes the CLI act with ``node``'s key through its API."""
    directory = node.layout.directory
    return {"LC_NODE": node.api.base_url, "LC_KEY": str(directory / "node.key"),
            "LC_PASSPHRASE": (directory / "passphrase").read_text().strip()}


@dataclass
class Newcomer:
    """A node started from ``node init`` on ``host``: its directory, address and API."""

    host: Host
    directory: Path
    address: str
    api: ApiClient

    @property
    def log(self) -> Path:
        return self.directory / "node.log"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def as_member(self) -> dict[str, str]:
        """The environment that makes the CLI act with the newcomer's own key."""
        return {"LC_NODE": self.api.base_url, "LC_KEY": str(self.directory / "node.key"),
                "LC_PASSPHRASE": (self.directory / "passphrase").read_text().strip()}


def init_and_start(graph: HostGraph, home: Host, directory: Path, *, peer: str,
                   roles: tuple[str, ...] = (), worker: str = "") -> Newcomer:
    """``node init`` (the genesis read from node0's API, its hash as the validators sent
    it), then ``node start`` on ``home``; returns once it says it is not a member yet.
    ``worker`` is a ``[worker]`` table the operator appends to the written config."""
    node0 = graph.nodes[0]
    genesis_hash = Genesis.load(graph.layout.genesis).hash.hex()
    role_args = [arg for role in roles for arg in ("--role", role)]
    lc("node", "init", directory.name, "--genesis", node0.api.base_url, "--genesis-hash",
       genesis_hash, "--peer", peer, "--listen", f"{home.address}:{P2P_PORT}",
       "--api", f"127.0.0.1:{NEWCOMER_API_PORT}", *role_args, cwd=directory.parent)
    config = directory / "config.toml"
    if worker:
        config.write_text(config.read_text() + "\n[worker]\n" + worker)
    log = directory / "node.log"
    home.popen([sys.executable, "-m", "client", "node", "start", "--config", str(config)],
               log=log)
    words = wait_until(lambda: re.search(NOT_A_MEMBER, log.read_text()), timeout=60,
                       what="the newcomer's 'not a member' notice",
                       detail=lambda: log.read_text()[-1500:])
    api = ApiClient(home.forward(NEWCOMER_API_PORT).url, timeout=10)
    return Newcomer(home, directory, words.group(1), api)


def admit(graph: HostGraph, address: str, cwd: Path) -> None:
    """``member admit`` by node0, then ``governance approve`` by the next validators until
    the proposal is executed (> 2/3 of them) [GOV-THRESHOLD.1]."""
    propose_and_approve(graph, ["member", "admit", address], cwd)


def propose_and_approve(graph: HostGraph, proposal: list[str], cwd: Path) -> None:
    """The CLI command ``proposal`` (a governance proposal: ``member admit ADDR``,
    ``governance upgrade NAME ...``) by the first validator, then ``governance approve`` by
    the next ones until it is executed (> 2/3 of them) [GOV-THRESHOLD.1]."""
    validators = [n for n in graph.nodes if "validator" in n.layout.roles]
    said = lc(*proposal, env=as_validator(validators[0]), cwd=cwd)
    pending = re.search(r"^proposal ([0-9a-f]{64}) pending", said, re.MULTILINE)
    for node in validators[1:]:
        if pending is None:
            break
        said = lc("governance", "approve", pending.group(1), env=as_validator(node), cwd=cwd)
        if "executed" in said:
            pending = None
    assert pending is None, said


def wait_synced(graph: HostGraph, newcomer: Newcomer, *, timeout: float = 120.0) -> int:
    """Until the newcomer has the block and state root every node has at their common
    height; that height."""
    node0 = graph.nodes[0]

    def synced() -> int | None:
        try:
            height = int(newcomer.api.status()["height"])
            target = min(graph.heights().values())  # 0 while a node does not answer
            if height < target or target == 0:
                return None
            ours, theirs = newcomer.api.block(target), node0.api.block(target)
        except (ApiError, OSError, ValueError):
            return None
        same = (ours["hash"], ours["state_root"]) == (theirs["hash"], theirs["state_root"])
        return target if same else None

    height: int = wait_until(synced, timeout=timeout, step=1.0, what="the newcomer in sync",
                             detail=lambda: newcomer.log_text()[-1500:])
    return height
