"""Create a new graph on disk: genesis, and one directory per node with key, passphrase, config.

Layout of ``out``::

    genesis.json
    node0/ config.toml node.key passphrase data/    (validator [+ worker])
    node1/ ...
    nodeV/ ...                                      (``worker_nodes``: worker only)
    users/ submitter.key submitter.passphrase ...   (funded member accounts)

Every node bootstraps to every other, on 127.0.0.1 ports from ``base_port``
(p2p) and ``base_port + 100`` (HTTP API). Used by ``network create`` and
``devnet up``.

Every path in ``network.json`` is absolute: node processes and later commands
run from other directories than the one ``out`` was given relative to.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chain.crypto import PrivateKey, address_to_text
from chain.genesis import Genesis
from chain.keyfile import write_key_file
from chain.versions import MAX_PROTOCOL_VERSION
from client.node.config import render_config
from client.node.join import write_secret_file
from sandbox.runtime import check_name as check_runtime
from sandbox.runtime import graph_default

API_PORT_OFFSET = 100
DEFAULT_BASE_PORT = 26600
"""``devnet up``'s first p2p port when ``--base-port`` is not given."""
FAST_SCRYPT_N = 2**14
"""Key files of generated local graphs: still scrypt, cheaper to open for many processes."""


@dataclass(frozen=True, slots=True)
class NodeLayout:
    name: str
    directory: Path
    config: Path
    address: str
    p2p_port: int
    api_port: int
    roles: tuple[str, ...]

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def ports(self) -> dict[int, str]:
        """The ports this node listens on -> what for (``node0 p2p``)."""
        return {self.p2p_port: f"{self.name} p2p", self.api_port: f"{self.name} api"}


@dataclass(frozen=True, slots=True)
class UserLayout:
    name: str
    key_file: Path
    passphrase_file: Path
    address: str
    balance: int


@dataclass(frozen=True, slots=True)
class NetworkLayout:
    root: Path
    chain_id: str
    genesis: Path
    nodes: tuple[NodeLayout, ...]
    users: tuple[UserLayout, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {
            "root": str(self.root), "chain_id": self.chain_id, "genesis": str(self.genesis),
            "nodes": [{"name": n.name, "dir": str(n.directory), "config": str(n.config),
                       "address": n.address, "p2p_port": n.p2p_port, "api_port": n.api_port,
                       "api_url": n.api_url, "roles": list(n.roles)} for n in self.nodes],
            "users": [{"name": u.name, "key_file": str(u.key_file),
                       "passphrase_file": str(u.passphrase_file), "address": u.address,
                       "balance": u.balance} for u in self.users],
        }

    @classmethod
    def load(cls, root: Path) -> NetworkLayout:
        """The network in ``root`` (any form of the path: it is resolved here).

        A relative path in the file (written before paths were made absolute, and
        relative to wherever that command ran) is rebuilt from the fixed layout
        under ``root``, so such a network still starts from any directory.
        """
        root = root.resolve()
        doc = json.loads((root / "network.json").read_text())

        def at(stored: str, *fixed: str) -> Path:
            path = Path(stored)
            return path if path.is_absolute() else root.joinpath(*fixed)

        return cls(
            root=root, chain_id=doc["chain_id"], genesis=at(doc["genesis"], "genesis.json"),
            nodes=tuple(NodeLayout(n["name"], at(n["dir"], n["name"]),
                                   at(n["config"], n["name"], "config.toml"), n["address"],
                                   n["p2p_port"], n["api_port"], tuple(n["roles"]))
                        for n in doc["nodes"]),
            users=tuple(UserLayout(u["name"], at(u["key_file"], "users", f"{u['name']}.key"),
                                   at(u["passphrase_file"], "users",
                                      f"{u['name']}.passphrase"),
                                   u["address"], u["balance"]) for u in doc["users"]),
        )

    def ports(self) -> dict[int, str]:
        """Every port the graph listens on -> what listens there (``node0 p2p``)."""
        return {port: what for n in self.nodes for port, what in n.ports().items()}


def planned_ports(validators: int, base_port: int) -> dict[int, str]:
    """The ports ``create_network`` will give ``validators`` nodes from ``base_port``."""
    return {port: f"node{i} {what}" for i in range(validators)
            for port, what in ((base_port + i, "p2p"),
                               (base_port + API_PORT_OFFSET + i, "api"))}


def create_network(
    out: Path,
    *,
    validators: int = 4,
    workers: int = 3,
    base_port: int = DEFAULT_BASE_PORT,
    chain_id: str | None = None,
    validator_balance: int = 1_000,
    node_balances: dict[int, int] | None = None,
    users: dict[str, int] | None = None,
    worker_settings: dict[int, dict[str, Any]] | None = None,
    consensus: dict[str, int] | None = None,
    params: dict[str, Any] | None = None,
    bootstrap: dict[int, list[str]] | None = None,
    peer_exchange: bool = True,
    worker_nodes: int = 0,
    worker_runtime: str | None = None,
    eval_runtime: str | None = None,
    empty_block_interval_ms: int | None = None,
    protocol_version: int = MAX_PROTOCOL_VERSION,
) -> NetworkLayout:
    """Writes a new graph under ``out`` (which must not hold one) and returns its layout.

    The first ``workers`` validators also run the worker role and are the genesis
    verifiers (each bonded with ``params.verifier_bond``). ``users`` maps
    a name to an initial balance (each gets a member key under ``users/``);
    ``worker_settings`` adds ``[worker]`` keys per node index (e.g. the demo's
    cheater); ``node_balances`` overrides ``validator_balance`` per node index.
    ``worker_nodes`` adds machines that are members, workers and genesis verifiers but
    not validators (nodes ``validators … validators+worker_nodes-1``): a graph where the
    computing happens apart from consensus, as on a real network.
    ``worker_runtime`` (``auto``, ``runsc`` or ``runc``) is written as every worker's
    ``[worker] runtime`` [JOB-RUNTIME.1] unless its ``worker_settings`` name one; None
    leaves the node's default. ``eval_runtime`` is the runtime the genesis names for every
    evaluation [GENESIS-RUNTIME.1] (None: ``sandbox.runtime.graph_default(worker_runtime)``).
    ``empty_block_interval_ms`` is the genesis's [CONS-PACE.3] interval (None: the
    environment's ``LC_EMPTY_BLOCK_INTERVAL_MS`` if set, else the genesis default).
    ``protocol_version`` is the genesis's [GENESIS-VERSION.1]: by default the newest this
    software knows, so a new graph has every rule, state sync's roots included.
    """
    if worker_runtime is not None:
        check_runtime(worker_runtime)
    if not 1 <= validators <= 64:
        raise ValueError("a network has 1..64 validators")
    if not 0 <= workers <= validators:
        raise ValueError("workers are chosen among the validators: 0..validators")
    if not 0 <= worker_nodes <= 64:
        raise ValueError("a network has 0..64 worker-only nodes")
    out = out.resolve()  # every path below, and so network.json, is absolute
    if (out / "genesis.json").exists():
        raise FileExistsError(f"{out} already holds a network (genesis.json exists)")
    out.mkdir(parents=True, exist_ok=True)
    chain_id = chain_id or f"lc-local-{secrets.token_hex(3)}"
    users = {"submitter": 10_000} if users is None else users
    keys = [PrivateKey.generate() for _ in range(validators + worker_nodes)]
    verifiers = [*keys[:workers], *keys[validators:]]
    user_keys = {name: PrivateKey.generate() for name in users}
    genesis = Genesis.from_json({
        "chain_id": chain_id,
        "genesis_time_ms": int(time.time() * 1000),
        "validators": [{"pubkey": k.public_key.hex(), "power": 1, "name": f"node{i}"}
                       for i, k in enumerate(keys[:validators])],
        "members": [address_to_text(k.address) for k in (*keys, *user_keys.values())],
        "balances": {
            **{address_to_text(k.address): (node_balances or {}).get(i, validator_balance)
               for i, k in enumerate(keys)},
            **{address_to_text(user_keys[n].address): b for n, b in users.items() if b > 0},
        },
        "params": params or {},
        # The worker nodes verify from height 0 [GENESIS-VERIFIERS.1]: only verifiers vote
        # [VOTE-ELIGIBLE.2], so a validator without a worker cannot block a quorum.
        "verifiers": [address_to_text(k.address) for k in verifiers],
        # [JOB-RUNTIME.13] every member evaluates under one runtime: none changes a verdict
        "eval_runtime": eval_runtime or graph_default(worker_runtime),
        **_pacing(empty_block_interval_ms),
        **({"protocol_version": protocol_version} if protocol_version != 1 else {}),
    })
    genesis_path = out / "genesis.json"
    genesis.save(genesis_path)
    p2p_ports = [base_port + i for i in range(len(keys))]
    nodes = []
    for i, key in enumerate(keys):
        directory = out / f"node{i}"
        directory.mkdir(exist_ok=True)
        passphrase = secrets.token_urlsafe(18)
        write_secret_file(directory / "passphrase", passphrase)
        write_key_file(directory / "node.key", key, passphrase, scrypt_n=FAST_SCRYPT_N)
        roles = (("worker",) if i >= validators else
                 ("validator", "worker") if i < workers else ("validator",))
        config = directory / "config.toml"
        config.write_text(render_config(
            genesis="../genesis.json", roles=roles, p2p_port=p2p_ports[i],
            api_port=p2p_ports[i] + API_PORT_OFFSET,
            bootstrap=tuple((bootstrap or {}).get(
                i, [f"127.0.0.1:{p}" for j, p in enumerate(p2p_ports) if j != i])),
            peer_exchange=peer_exchange,
            worker=_worker_table(roles, (worker_settings or {}).get(i), worker_runtime),
            consensus=consensus,
        ))
        nodes.append(NodeLayout(f"node{i}", directory, config, address_to_text(key.address),
                                p2p_ports[i], p2p_ports[i] + API_PORT_OFFSET, roles))
    user_dir = out / "users"
    user_dir.mkdir(exist_ok=True)
    user_layouts = []
    for name, key in user_keys.items():
        passphrase = secrets.token_urlsafe(18)
        write_secret_file(user_dir / f"{name}.passphrase", passphrase)
        write_key_file(user_dir / f"{name}.key", key, passphrase, scrypt_n=FAST_SCRYPT_N)
        user_layouts.append(UserLayout(name, user_dir / f"{name}.key",
                                       user_dir / f"{name}.passphrase",
                                       address_to_text(key.address), users[name]))
    layout = NetworkLayout(out, chain_id, genesis_path, tuple(nodes),
                           tuple(user_layouts))
    (out / "network.json").write_text(json.dumps(layout.to_json(), indent=2) + "\n")
    return layout


def _worker_table(roles: tuple[str, ...], settings: dict[str, Any] | None,
                  runtime: str | None) -> dict[str, Any] | None:
    """A node's ``[worker]`` keys: its own settings, with ``runtime`` under them."""
    if runtime is None or "worker" not in roles:
        return settings
    return {"runtime": runtime, **(settings or {})}


EMPTY_BLOCK_INTERVAL_ENV = "LC_EMPTY_BLOCK_INTERVAL_MS"
"""Default of ``network create --empty-block-interval-ms`` (the test suite sets 200 ms, so
its idle graphs keep about the old pace while every height goes through [CONS-PACE.1])."""


def _pacing(interval_ms: int | None) -> dict[str, Any]:
    """The genesis's ``consensus_timing`` naming the [CONS-PACE.3] interval, if one is set."""
    if interval_ms is None:
        text = os.environ.get(EMPTY_BLOCK_INTERVAL_ENV, "").strip()
        if not text:
            return {}
        try:
            interval_ms = int(text)
        except ValueError:
            raise ValueError(f"{EMPTY_BLOCK_INTERVAL_ENV} must be an integer number of ms, "
                             f"got {text!r}") from None
    return {"consensus_timing": {"empty_block_interval_ms": interval_ms}}
