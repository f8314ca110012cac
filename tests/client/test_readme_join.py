"""The README's "Join an existing graph", run as written against a real local graph.

Issue 31 §4: joining took reading our code. The newcomer's block and the validators'
block are read from README.md and each line runs in bash exactly as written, with
only the placeholders filled in from the graph the test started (2 validators on
127.0.0.1, so the admission needs a second validator's approval). ``node start``
runs in the background as a newcomer leaves it; it must say, in words, that it is
not a member and which address to send, keep running, and after the admission
connect, sync and follow the chain without a restart. The newcomer's own ports are
the README's defaults (26656, 26657).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

from client.api.http_client import ApiClient, ApiError
from client.devnet.network import NetworkLayout
from tests.client.test_devnet_newcomer import devnet_stopped_after, lc
from tests.framework.ports import free_base_port
from tests.framework.wait import scaled, wait_until

CHECKOUT = Path(__file__).resolve().parents[2]
NEWCOMER_API = "http://127.0.0.1:26657"


def join_blocks() -> tuple[list[str], list[str]]:
    """The command lines of the two ``sh`` blocks under "### Join an existing graph"."""
    text = (CHECKOUT / "README.md").read_text()
    section = text.split("\n### Join an existing graph\n", 1)[1].split("\n### ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.DOTALL)
    assert len(blocks) == 2, "README.md: Join an existing graph needs two ```sh blocks"
    newcomer, validator = ([line for line in b.splitlines() if line.strip()] for b in blocks)
    return newcomer, validator


def fill(line: str, values: dict[str, str]) -> str:
    for placeholder, value in values.items():
        line = line.replace(placeholder, value)
    assert not re.search(r"<[a-z:-]+>", line), f"unfilled placeholder in {line!r}"
    return line


def bash(line: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", f"set -e\n{line}"], cwd=cwd, env=env, text=True,
                          capture_output=True, timeout=scaled(120), check=False)


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the node binds
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_node_join_1_2_readme_join_runs_as_written(tmp_path: Path) -> None:
    """[NODE-INIT.1-5] [NODE-JOIN.1] [NODE-JOIN.2] [WIRE-HANDSHAKE.7]: init from a node's
    API URL with the genesis hash; a non-member node says so once with its address and
    keeps trying; admit + approval; it connects, reaches the validators' height with the
    same state root, and follows, in the same process."""
    newcomer, validator = join_blocks()
    assert newcomer[0].startswith("learningchain node init mynode ")
    assert newcomer[1].startswith("learningchain node start --config mynode/config.toml")
    assert validator[0].startswith("learningchain member admit <address>")
    assert validator[1].startswith("learningchain governance approve <proposal-id>")
    assert port_free(26656) and port_free(26657), "the README's ports 26656/26657 are taken"
    base = free_base_port(2)
    root = tmp_path / "graph"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LC_")}
    env.update({"HOME": str(tmp_path), "TMPDIR": str(tmp_path),
                "PATH": str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")})
    home = tmp_path / "newcomer"
    home.mkdir()
    with devnet_stopped_after(root):
        lc("devnet", "up", "--dir", str(root), "--validators", "2", "--workers", "0",
           "--base-port", str(base), "--timeout", "90", cwd=tmp_path)
        graph = NetworkLayout.load(root)
        node0 = ApiClient(graph.nodes[0].api_url)
        values = {"<genesis-url>": graph.nodes[0].api_url,
                  "<genesis-hash>": node0.genesis()["hash"],
                  "<host:port>": f"127.0.0.1:{graph.nodes[0].p2p_port}"}
        init = bash(fill(newcomer[0], values), home, env)
        assert init.returncode == 0, init.stdout + init.stderr
        address = re.search(r"^address\s+(lc1[0-9a-f]+)$", init.stdout, re.MULTILINE)
        assert address, init.stdout
        values["<address>"] = address.group(1)
        log_path = tmp_path / "newcomer.log"
        with open(log_path, "w") as log:
            start = subprocess.Popen(["bash", "-c", f"exec {fill(newcomer[1], values)}"],
                                     cwd=home, env=env, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        try:
            words = (f"this node ({values['<address>']}) is not a member of graph "
                     f"{graph.chain_id} yet: send this address to a validator, who runs "
                     f"`learningchain member admit {values['<address>']}`")
            wait_until(lambda: words in log_path.read_text() or start.poll() is not None,
                       timeout=60)
            assert words in log_path.read_text(), log_path.read_text()
            assert start.poll() is None, log_path.read_text()

            def as_validator(i: int) -> dict[str, str]:
                node = graph.nodes[i]
                return env | {"LC_NODE": node.api_url,
                              "LC_KEY": str(node.directory / "node.key"),
                              "LC_PASSPHRASE": (node.directory / "passphrase").read_text()
                              .strip()}

            admit = bash(fill(validator[0], values), tmp_path, as_validator(0))
            assert admit.returncode == 0, admit.stdout + admit.stderr
            pending = re.search(r"^proposal ([0-9a-f]{64}) pending", admit.stdout, re.MULTILINE)
            assert pending, admit.stdout
            values["<proposal-id>"] = pending.group(1)
            approve = bash(fill(validator[1], values), tmp_path, as_validator(1))
            assert approve.returncode == 0 and "executed" in approve.stdout, approve.stdout
            assert start.poll() is None, log_path.read_text()
            newcomer_api = ApiClient(NEWCOMER_API)

            def synced() -> int | None:
                with contextlib.suppress(ApiError, OSError):  # not listening yet
                    mine = newcomer_api.status()
                    h = int(mine["height"])
                    if h > 0 and int(node0.status()["height"]) >= h and mine["peer_count"]:
                        ours, theirs = newcomer_api.block(h), node0.block(h)
                        return h if ours["state_root"] == theirs["state_root"] and \
                            ours["hash"] == theirs["hash"] else None
                return None

            target = int(node0.status()["height"])  # the admission is in by now
            joined = wait_until(lambda: (synced() or 0) >= target and synced(), timeout=120,
                                what="the newcomer at the validators' height and state root")
            assert f"is now a member of graph {graph.chain_id}" in log_path.read_text()
            assert log_path.read_text().count("is not a member of graph") == 1
            status = bash(fill(newcomer[2], values), home, env)
            assert status.returncode == 0 and "caught up: yes" in status.stdout, status.stdout
            wait_until(lambda: (synced() or 0) > joined, timeout=60)  # it follows
            assert start.poll() is None  # the same process throughout
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(start.pid, signal.SIGTERM)
            start.wait(timeout=scaled(30))
        assert start.returncode == 0, log_path.read_text()[-2000:]
