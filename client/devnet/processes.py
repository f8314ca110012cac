"""A local graph of N node processes on 127.0.0.1: start, stop, inspect.

``devnet up`` creates the network (``client.devnet.network``) unless the directory
holds one, checks that the ports of the nodes it starts are free, starts every
node as its own process (``python -m client node start``), logs to
``<node>/node.log``, records pids in ``devnet.json`` and waits until every API
answers *as that node* (its address and chain id: a port held by another graph
answers too) and blocks are being committed. A failed ``up`` stops the nodes it
started and says why, with the dead node's last log lines.

Every function takes ``root`` relative to the caller's working directory and
resolves it first; node processes get absolute paths only.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chain.versions import MAX_PROTOCOL_VERSION
from client.devnet.network import (
    API_PORT_OFFSET,
    DEFAULT_BASE_PORT,
    NetworkLayout,
    NodeLayout,
    create_network,
    planned_ports,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
"""The checkout root (this file is client/devnet/processes.py): node processes run there."""
HOST = "127.0.0.1"


class DevnetError(Exception):
    pass


class PortInUse(DevnetError):
    """A port a node must listen on is held by another process: the node would die on it."""

    def __init__(self, port: int, what: str, hint: str) -> None:
        super().__init__(f"port {port} ({what}) on {HOST} is already in use by another "
                         f"process (another devnet?); {hint}")
        self.port, self.what = port, what


def port_free(port: int) -> bool:
    """Whether a node could listen on ``port`` now (SO_REUSEADDR as the node's servers set
    it, so a socket in TIME_WAIT from a graph just stopped does not count as taken)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
            sock.listen(1)
        except OSError:
            return False
    return True


def check_ports(ports: dict[int, str], hint: str) -> None:
    """Raises ``PortInUse`` for the first taken port of ``ports`` (port -> who needs it)."""
    for port, what in sorted(ports.items()):
        if not port_free(port):
            raise PortInUse(port, what, hint)


def suggest_base_port(validators: int, avoid: int) -> int | None:
    """A base port whose every devnet port is free now, for the error message."""
    for step in range(1, 40):
        base = avoid + step * (API_PORT_OFFSET + 100)
        if base + API_PORT_OFFSET + validators > 65535:
            return None
        if all(port_free(p) for p in planned_ports(validators, base)):
            return base
    return None


@dataclass
class NodeProcess:
    layout: NodeLayout
    pid: int

    def alive(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        # a zombie child still answers kill(0); check its state
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{self.pid}/stat").read_text()
            if stat.split(")")[-1].split()[0] == "Z":
                return False
        return True


def api_get(url: str, timeout: float = 2.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def node_status(node: NodeLayout, timeout: float = 2.0) -> dict[str, Any] | None:
    """``/api/v1/status`` of whatever answers on the node's API port (None: nothing)."""
    try:
        result = api_get(f"{node.api_url}/api/v1/status", timeout)
    except (urllib.error.URLError, OSError, ValueError):
        return None
    return result if isinstance(result, dict) else None


def stranger(node: NodeLayout, chain_id: str, status: dict[str, Any]) -> str | None:
    """Who answered instead of ``node``, or None when it is the node itself."""
    if status.get("address") == node.address and status.get("chain_id") == chain_id:
        return None
    return f"node {status.get('address')} of chain {status.get('chain_id')}"


def start_node_process(node: NodeLayout, *, log_level: str = "info",
                       env: dict[str, str] | None = None) -> int:
    """Starts one node process (detached into its own session); returns its pid."""
    log = open(node.directory / "node.log", "ab")  # noqa: SIM115 - handed to the child
    cmd = [sys.executable, "-m", "client", "node", "start", "--config", str(node.config),
           "--log-level", log_level]
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        cwd=REPO_ROOT, start_new_session=True, env={**os.environ, **(env or {})},
    )
    log.close()
    return proc.pid


def _state_file(root: Path) -> Path:
    return root / "devnet.json"


def _save_pids(root: Path, pids: dict[str, int]) -> None:
    _state_file(root).write_text(json.dumps({"pids": pids}, indent=2) + "\n")


def load_pids(root: Path) -> dict[str, int]:
    try:
        return {k: int(v) for k, v in json.loads(_state_file(root).read_text())["pids"].items()}
    except (OSError, ValueError, KeyError):
        return {}


def up(
    root: Path,
    *,
    validators: int = 4,
    workers: int = 3,
    base_port: int = DEFAULT_BASE_PORT,
    worker_settings: dict[int, dict[str, Any]] | None = None,
    consensus: dict[str, int] | None = None,
    users: dict[str, int] | None = None,
    node_balances: dict[int, int] | None = None,
    bootstrap: dict[int, list[str]] | None = None,
    peer_exchange: bool = True,
    timeout: float = 60.0,
    log_level: str = "info",
    node_env: dict[int, dict[str, str]] | None = None,
    worker_runtime: str | None = None,
    eval_runtime: str | None = None,
    empty_block_interval_ms: int | None = None,
    protocol_version: int | None = None,
) -> NetworkLayout:
    """Creates (if needed) and starts the graph; returns when all nodes commit blocks.

    Raises ``PortInUse`` before starting anything when a port is taken, and
    ``DevnetError`` (after stopping the nodes it started) when a node dies or
    another process answers on its API port. ``node_env`` adds environment
    variables per node index, e.g. ``DOCKER_HOST`` for a node whose worker has a
    Docker engine of its own, as on a real graph. ``worker_runtime``: every worker's
    ``[worker] runtime``, ``eval_runtime`` the genesis's [GENESIS-RUNTIME.1], when the
    network is created (``create_network``)."""
    root = root.resolve()
    if (root / "network.json").exists():
        layout = NetworkLayout.load(root)
    else:
        suggestion = None
        ports = planned_ports(validators, base_port)
        if not all(port_free(p) for p in ports):
            suggestion = suggest_base_port(validators, base_port)
        check_ports(ports, "choose other ports with --base-port"
                    + (f", e.g. --base-port {suggestion}" if suggestion else ""))
        layout = create_network(root, validators=validators, workers=workers,
                                base_port=base_port, worker_settings=worker_settings,
                                consensus=consensus, users=users,
                                node_balances=node_balances, bootstrap=bootstrap,
                                peer_exchange=peer_exchange,
                                worker_runtime=worker_runtime, eval_runtime=eval_runtime,
                                empty_block_interval_ms=empty_block_interval_ms,
                                protocol_version=(MAX_PROTOCOL_VERSION if protocol_version is None
                                                  else protocol_version))
    running = {name: pid for name, pid in load_pids(root).items()
               if NodeProcess(_node(layout, name), pid).alive()}
    to_start = [(i, n) for i, n in enumerate(layout.nodes) if n.name not in running]
    check_ports({port: what for _, n in to_start for port, what in n.ports().items()},
                f"this network's ports are fixed in {root / 'network.json'}: stop what "
                "holds the port, or make a new network with --dir OTHER --base-port N")
    pids = dict(running)
    for i, node in to_start:
        pids[node.name] = start_node_process(node, log_level=log_level,
                                             env=(node_env or {}).get(i))
    _save_pids(root, pids)
    try:
        wait_until_committing(layout, pids, timeout=timeout)
    except DevnetError:
        started = {node.name: pids[node.name] for _, node in to_start}
        _stop(started, timeout=10.0)
        _save_pids(root, running)
        raise
    return layout


def _node(layout: NetworkLayout, name: str) -> NodeLayout:
    for node in layout.nodes:
        if node.name == name:
            return node
    raise DevnetError(f"no node {name} in {layout.root}")


def wait_until_committing(layout: NetworkLayout, pids: dict[str, int], *,
                          timeout: float = 60.0, min_height: int = 1) -> None:
    """Until every node's process is alive and its own API (not another graph's on the
    same port) reports ``min_height``; a dead node or a stranger raises at once."""
    deadline = time.monotonic() + timeout
    while True:
        heights = {}
        for node in layout.nodes:
            if not NodeProcess(node, pids[node.name]).alive():
                tail = _tail(node.directory / "node.log")
                raise DevnetError(f"{node.name} exited during start; last log lines of "
                                  f"{node.directory / 'node.log'}:\n{tail}")
            status = node_status(node)
            other = stranger(node, layout.chain_id, status) if status else None
            if other is not None:
                raise DevnetError(f"{node.name}: {node.api_url} is answered by {other}, not "
                                  f"by {node.address} of this network: its port is taken; "
                                  f"last log lines of {node.name}:\n"
                                  f"{_tail(node.directory / 'node.log')}")
            heights[node.name] = status.get("height", 0) if status else None
        if all(h is not None and h >= min_height for h in heights.values()):
            return
        if time.monotonic() > deadline:
            raise DevnetError(f"graph not committing after {timeout:.0f}s: heights {heights}")
        time.sleep(0.25)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def down(root: Path, *, timeout: float = 20.0) -> dict[str, str]:
    """SIGTERM every node, SIGKILL what is left after ``timeout``; returns name -> outcome."""
    root = root.resolve()
    outcome = _stop(load_pids(root), timeout=timeout)
    with contextlib.suppress(FileNotFoundError):
        _state_file(root).unlink()
    return outcome


def _stop(pids: dict[str, int], *, timeout: float) -> dict[str, str]:
    for pid in pids.values():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    outcome: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    for name, pid in pids.items():
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            outcome[name] = "killed"
        else:
            outcome[name] = "stopped"
        _reap(pid)
    return outcome


def _alive(pid: int) -> bool:
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z":
            return False
    return True


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def status(root: Path) -> list[dict[str, Any]]:
    """One row per node. ``state``: ``running`` (its own API answers), ``stopped`` (no
    process), ``starting`` (a process, no answer yet) or ``port taken`` (another node
    answers on its API port: its numbers are not shown as this node's)."""
    layout = NetworkLayout.load(root)
    pids = load_pids(layout.root)
    rows = []
    for node in layout.nodes:
        pid = pids.get(node.name)
        st = node_status(node)
        other = stranger(node, layout.chain_id, st) if st else None
        ours = st if st is not None and other is None else None
        running = ours is not None or (pid is not None and _alive(pid))
        state = ("running" if ours else "port taken" if other else
                 "starting" if running else "stopped")
        rows.append({
            "name": node.name, "pid": pid if pid is not None and _alive(pid) else None,
            "state": state,
            "running": running, "api": node.api_url, "roles": list(node.roles),
            "address": node.address, "answered_by": other,
            "height": ours.get("height") if ours else None,
            "peers": ours.get("peer_count") if ours else None,
        })
    return rows
