"""``learningchain devnet`` as a newcomer drives it (issue 15): the real console script,
real node processes on 127.0.0.1, run from a directory that is not the checkout.

- up / status / down work from any directory, with a relative ``--dir`` (resolved
  against the caller's directory) and with a network.json written before its paths
  were absolute;
- status shows each node's real peer count and ``stopped`` for a stopped node;
- a port that is taken fails ``up`` at once, naming the port and ``--base-port``, and
  nothing is left running or written; a node that dies fails ``up`` with its log lines;
  a port answered by another graph's node is never taken for this graph's.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from client.devnet.network import NetworkLayout
from client.devnet.processes import DevnetError, load_pids, wait_until_committing
from tests.framework.ports import free_base_port
from tests.framework.wait import scaled, wait_until

CLI = str(Path(sys.executable).parent / "learningchain")
CHECKOUT = Path(__file__).resolve().parents[2]


def lc(*args: str, cwd: Path, code: int | None = 0,
       timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """The real ``learningchain`` console script, run in ``cwd``."""
    done = subprocess.run([CLI, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=scaled(timeout), check=False)
    if code is not None:
        assert done.returncode == code, (args, done.returncode, done.stdout, done.stderr)
    return done


@contextlib.contextmanager
def devnet_stopped_after(root: Path) -> Iterator[None]:
    """Whatever the test does, the nodes it started are stopped (by their recorded pids)."""
    try:
        yield
    finally:
        for pid in load_pids(root).values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)


def status_rows(cwd: Path, directory: str) -> dict[str, dict[str, Any]]:
    rows = json.loads(lc("devnet", "status", "--dir", directory, "--json", cwd=cwd).stdout)
    return {r["name"]: r for r in rows}


def test_devnet_up_status_down_from_another_directory_with_a_relative_dir(
        tmp_path: Path) -> None:
    """Issue 15 §1 and §3: nodes found their config although ``devnet up`` ran outside the
    checkout; status counts real peers, and a stopped node reads ``stopped``."""
    home = tmp_path / "elsewhere"
    home.mkdir()
    assert not home.resolve().is_relative_to(CHECKOUT)
    base = free_base_port(2)
    root = home / "net"
    with devnet_stopped_after(root):
        up = lc("devnet", "up", "--dir", "net", "--validators", "2", "--workers", "0",
                "--base-port", str(base), "--timeout", "90", cwd=home)
        assert f"up in {root.resolve()}" in up.stdout
        assert up.stdout.splitlines()[1].split()[:3] == ["node", "roles", "p2p"]  # a header
        doc = json.loads((root / "network.json").read_text())
        paths = [doc["root"], doc["genesis"], *(n[k] for n in doc["nodes"]
                                                for k in ("dir", "config")),
                 *(u[k] for u in doc["users"] for k in ("key_file", "passphrase_file"))]
        assert all(Path(p).is_absolute() for p in paths), paths

        # Peers: each of the two nodes is connected to the other (the API's peer_count).
        def each_sees_one_peer() -> dict[str, dict[str, Any]] | None:
            rows = status_rows(home, "net")
            return rows if all(row["peers"] == 1 for row in rows.values()) else None

        rows = wait_until(each_sees_one_peer, what="both nodes see one peer")
        assert all(r["state"] == "running" and r["height"] >= 1 for r in rows.values())
        table = lc("devnet", "status", "--dir", "net", cwd=home).stdout.splitlines()
        assert table[0].split() == ["node", "state", "height", "peers", "api", "pid"]
        assert table[1].split()[:2] == ["node0", "running"] and table[1].split()[3] == "1"

        # Stop node1: it reads stopped (no height, no peers), node0 loses its peer.
        os.kill(load_pids(root)["node1"], signal.SIGTERM)
        def node1_stopped() -> dict[str, dict[str, Any]] | None:
            rows = status_rows(home, "net")
            done = rows["node1"]["state"] == "stopped" and rows["node0"]["peers"] == 0
            return rows if done else None

        rows = wait_until(node1_stopped, what="node1 stopped and node0 without peers")
        assert rows["node1"]["height"] is None and rows["node1"]["pid"] is None
        line = next(x for x in lc("devnet", "status", "--dir", "net", cwd=home
                                  ).stdout.splitlines() if x.startswith("node1"))
        assert line.split()[1:4] == ["stopped", "-", "-"] and "None" not in line

        # From yet another directory, with the absolute path: down stops what is left.
        down = json.loads(lc("devnet", "down", "--dir", str(root), "--json",
                             cwd=tmp_path).stdout)
        assert down["node0"] == "stopped"
    assert not (root / "devnet.json").exists()
    assert "stopped cleanly" in (root / "node0" / "node.log").read_text()


def test_devnet_up_starts_a_network_whose_file_still_holds_relative_paths(
        tmp_path: Path) -> None:
    """Issue 15 §1, the retry: network.json written by the old code (paths relative to where
    it ran) no longer keeps ``devnet up --dir ABSOLUTE`` from starting it."""
    base = free_base_port(1)
    lc("network", "create", "--out", "old", "--validators", "1", "--workers", "0",
       "--base-port", str(base), cwd=tmp_path)
    root = tmp_path / "old"
    doc = json.loads((root / "network.json").read_text())
    for n in doc["nodes"]:
        n["dir"], n["config"] = f"old/{n['name']}", f"old/{n['name']}/config.toml"
    for u in doc["users"]:
        u["key_file"] = f"old/users/{u['name']}.key"
        u["passphrase_file"] = f"old/users/{u['name']}.passphrase"
    (root / "network.json").write_text(json.dumps(doc))
    with devnet_stopped_after(root):
        lc("devnet", "up", "--dir", str(root), "--timeout", "90", cwd=CHECKOUT.parent)
        layout = NetworkLayout.load(root)
        assert layout.nodes[0].config == root / "node0" / "config.toml"
        assert layout.users[0].key_file == root / "users" / "submitter.key"
        assert status_rows(tmp_path, "old")["node0"]["state"] == "running"
        lc("devnet", "down", "--dir", "old", cwd=tmp_path)


def test_devnet_up_refuses_a_taken_port_and_names_it(tmp_path: Path) -> None:
    """Issue 15 §2: the port is checked before anything starts; exit 1, the port and the way
    out (``--base-port``) in the message, no network written, no process left."""
    base = free_base_port(2)
    taken = base + 101  # node1's API port
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", taken))
        holder.listen(1)
        failed = lc("devnet", "up", "--dir", "net", "--validators", "2", "--workers", "0",
                    "--base-port", str(base), cwd=tmp_path, code=1)
        assert f"port {taken} (node1 api)" in failed.stderr and "--base-port" in failed.stderr
        assert "Traceback" not in failed.stderr and not failed.stdout
        assert not (tmp_path / "net").exists()
        as_json = lc("devnet", "up", "--dir", "net", "--validators", "2", "--workers", "0",
                     "--base-port", str(base), "--json", cwd=tmp_path, code=1)
        error = json.loads(as_json.stderr)["error"]
        assert error["code"] == "port_in_use" and f"port {taken}" in error["message"]


def test_devnet_up_fails_with_the_log_of_a_node_that_died(tmp_path: Path) -> None:
    """Issue 15 §2: a node that exits during start fails ``up`` (exit 1) with its last log
    lines, and the other nodes it started are stopped again."""
    base = free_base_port(2)
    lc("network", "create", "--out", "net", "--validators", "2", "--workers", "0",
       "--base-port", str(base), cwd=tmp_path)
    root = tmp_path / "net"
    (root / "node1" / "node.key").write_text("{not a key file")
    with devnet_stopped_after(root):
        failed = lc("devnet", "up", "--dir", "net", "--timeout", "60", cwd=tmp_path, code=1)
        assert "node1 exited during start" in failed.stderr, failed.stderr
        assert str(root / "node1" / "node.log") in failed.stderr
        log_tail = (root / "node1" / "node.log").read_text().strip().splitlines()[-1]
        assert log_tail.strip() in failed.stderr
        assert load_pids(root) == {}
        rows = status_rows(tmp_path, "net")
        assert {r["state"] for r in rows.values()} == {"stopped"}, rows


def test_devnet_a_port_answered_by_another_graph_is_not_this_graphs_node(
        tmp_path: Path) -> None:
    """Issue 15 §2-3: with graph A running, graph B made on A's ports: status of B says the
    port is taken and shows none of A's numbers; waiting for B's node answered by A's
    process fails at once instead of reporting B up."""
    base = free_base_port(1)
    lc("devnet", "up", "--dir", "a", "--validators", "1", "--workers", "0",
       "--base-port", str(base), "--timeout", "90", cwd=tmp_path)
    with devnet_stopped_after(tmp_path / "a"):
        lc("network", "create", "--out", "b", "--validators", "1", "--workers", "0",
           "--base-port", str(base), cwd=tmp_path)
        a, b = NetworkLayout.load(tmp_path / "a"), NetworkLayout.load(tmp_path / "b")
        [row] = status_rows(tmp_path, "b").values()
        assert row["state"] == "port taken" and row["height"] is None
        assert a.nodes[0].address in row["answered_by"] and a.chain_id in row["answered_by"]
        assert "port taken by node" in lc("devnet", "status", "--dir", "b", cwd=tmp_path).stdout
        refused = lc("devnet", "up", "--dir", "b", cwd=tmp_path, code=1)
        assert f"port {base} (node0 p2p)" in refused.stderr
        with pytest.raises(DevnetError, match=f"answered by node {a.nodes[0].address}"):
            wait_until_committing(b, {"node0": load_pids(tmp_path / "a")["node0"]},
                                  timeout=scaled(30))
        lc("devnet", "down", "--dir", "a", cwd=tmp_path)
