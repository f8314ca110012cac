"""A local graph of N node processes on 127.0.0.1: start, stop, inspect.

``devnet up`` creates the network (``client.devnet.network``) unless the directory
holds one, starts every node as its own process (``python -m client node
start``), logs to ``<node>/node.log``, records pids in ``devnet.json`` and
waits until every API answers and blocks are being committed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from client.devnet.network import NetworkLayout, NodeLayout, create_network

REPO_ROOT = Path(__file__).resolve().parents[2]
"""The checkout root (this file is client/devnet/processes.py): node processes run there."""


class DevnetError(Exception):
    pass


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
    try:
        result = api_get(f"{node.api_url}/api/v1/status", timeout)
    except (urllib.error.URLError, OSError, ValueError):
        return None
    return result if isinstance(result, dict) else None


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
    base_port: int = 26600,
    worker_settings: dict[int, dict[str, Any]] | None = None,
    consensus: dict[str, int] | None = None,
    users: dict[str, int] | None = None,
    node_balances: dict[int, int] | None = None,
    bootstrap: dict[int, list[str]] | None = None,
    peer_exchange: bool = True,
    timeout: float = 60.0,
    log_level: str = "info",
    node_env: dict[int, dict[str, str]] | None = None,
) -> NetworkLayout:
    """Creates (if needed) and starts the graph; returns when all nodes commit blocks.

    ``node_env`` adds environment variables per node index, e.g. ``DOCKER_HOST`` for a
    node whose worker has a Docker engine of its own, as on a real graph."""
    if (root / "network.json").exists():
        layout = NetworkLayout.load(root)
    else:
        layout = create_network(root, validators=validators, workers=workers,
                                base_port=base_port, worker_settings=worker_settings,
                                consensus=consensus, users=users,
                                node_balances=node_balances, bootstrap=bootstrap,
                                peer_exchange=peer_exchange)
    running = {name: pid for name, pid in load_pids(root).items()
               if NodeProcess(_node(layout, name), pid).alive()}
    pids = dict(running)
    for i, node in enumerate(layout.nodes):
        if node.name not in pids:
            pids[node.name] = start_node_process(node, log_level=log_level,
                                                 env=(node_env or {}).get(i))
    _save_pids(root, pids)
    wait_until_committing(layout, pids, timeout=timeout)
    return layout


def _node(layout: NetworkLayout, name: str) -> NodeLayout:
    for node in layout.nodes:
        if node.name == name:
            return node
    raise DevnetError(f"no node {name} in {layout.root}")


def wait_until_committing(layout: NetworkLayout, pids: dict[str, int], *,
                          timeout: float = 60.0, min_height: int = 1) -> None:
    deadline = time.monotonic() + timeout
    while True:
        heights = {}
        for node in layout.nodes:
            if not NodeProcess(node, pids[node.name]).alive():
                tail = _tail(node.directory / "node.log")
                raise DevnetError(f"{node.name} exited during start; last log lines:\n{tail}")
            status = node_status(node)
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
    pids = load_pids(root)
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
    with contextlib.suppress(FileNotFoundError):
        _state_file(root).unlink()
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
    layout = NetworkLayout.load(root)
    pids = load_pids(root)
    rows = []
    for node in layout.nodes:
        pid = pids.get(node.name)
        st = node_status(node)
        rows.append({
            "name": node.name, "pid": pid, "running": pid is not None and _alive(pid),
            "api": node.api_url, "roles": list(node.roles), "address": node.address,
            "height": st.get("height") if st else None,
            "peers": len(st.get("peers", [])) if st else None,
        })
    return rows
