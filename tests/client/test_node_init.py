"""``learningchain node init`` through the real console script [NODE-INIT.1-5].

The genesis comes from a file and from a real HTTP server on 127.0.0.1 (the API's
``{"hash", "genesis"}`` answer at ``/api/v1/genesis``); what is written is opened
the way the node opens it. A node reading the genesis from a running graph is
``test_readme_join.py``.
"""

from __future__ import annotations

import http.server
import json
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from chain.crypto import address_to_text
from chain.genesis import Genesis
from chain.keyfile import read_key_file
from client.devnet.network import create_network
from client.node.config import NodeConfig
from client.node.join import GENESIS_API_PATH
from tests.framework.wait import scaled

CLI = str(Path(sys.executable).parent / "learningchain")


def lc(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=scaled(120), check=False)


def a_graph(tmp_path: Path) -> Genesis:
    layout = create_network(tmp_path / "graph", validators=1, workers=0, base_port=20000)
    return Genesis.load(layout.genesis)


@contextmanager
def serving(body: bytes) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 that answers ``body`` at the genesis route only."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            found = self.path == GENESIS_API_PATH
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body if found else b"{}")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_node_init_1_3_4_5_writes_key_passphrase_genesis_and_config(tmp_path: Path) -> None:
    """[NODE-INIT.1/3/4/5] A checked genesis: the key and its passphrase are owner-only
    from creation, the key opens with the passphrase as the printed address, the genesis
    hashes as given, the config loads with the defaults of a machine on the internet."""
    genesis = a_graph(tmp_path)
    done = lc("node", "init", "mynode", "--genesis", str(tmp_path / "graph" / "genesis.json"),
              "--genesis-hash", genesis.hash.hex().upper(), "--peer", "127.0.0.1:20000",
              "--peer", "127.0.0.1:20000", "--role", "worker", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    node = tmp_path / "mynode"
    for secret in ("node.key", "passphrase"):
        assert stat.S_IMODE((node / secret).stat().st_mode) == 0o600, secret
    assert stat.S_IMODE(node.stat().st_mode) == 0o700
    config = NodeConfig.load(node / "config.toml")
    key = read_key_file(config.key_file, config.passphrase())
    address = address_to_text(key.address)
    assert f"address   {address}" in done.stdout
    assert f"learningchain member admit {address}" in done.stdout
    assert "learningchain node start --config mynode/config.toml" in done.stdout
    assert Genesis.load(config.genesis).hash == genesis.hash
    assert config.roles == ("worker",) and config.bootstrap == ("127.0.0.1:20000",)
    assert (config.p2p_host, config.p2p_port) == ("0.0.0.0", 26656)
    assert (config.api_host, config.api_port) == ("127.0.0.1", 26657)
    again = lc("node", "init", "mynode", "--genesis", str(config.genesis), "--genesis-hash",
               genesis.hash.hex(), "--peer", "127.0.0.1:20000", cwd=tmp_path)
    assert again.returncode == 1 and "already holds a node" in again.stderr
    assert read_key_file(config.key_file, config.passphrase()).address == key.address


def test_node_init_1_a_genesis_of_another_hash_is_refused_and_nothing_written(
        tmp_path: Path) -> None:
    """[NODE-INIT.1] The message names both hashes; no file, not even the directory."""
    genesis = a_graph(tmp_path)
    wrong = "ab" * 32
    done = lc("node", "init", "mynode", "--genesis", str(tmp_path / "graph" / "genesis.json"),
              "--genesis-hash", wrong, "--peer", "127.0.0.1:20000", "--json", cwd=tmp_path)
    assert done.returncode == 1
    error = json.loads(done.stdout or done.stderr)
    assert error["error"]["code"] == "genesis_hash_mismatch", error
    assert genesis.hash.hex() in error["error"]["message"] and wrong in error["error"]["message"]
    assert not (tmp_path / "mynode").exists()


def test_node_init_2_reads_a_nodes_genesis_over_http_and_trusts_only_the_given_hash(
        tmp_path: Path) -> None:
    """[NODE-INIT.2] A URL naming only a node is read at its genesis route; the answer's
    own ``hash`` field decides nothing: a server claiming the hash the operator gave for
    another genesis is refused."""
    genesis = a_graph(tmp_path)
    answer = json.dumps({"hash": genesis.hash.hex(), "genesis": genesis.to_json()}).encode()
    with serving(answer) as url:
        done = lc("node", "init", "n1", "--genesis", url, "--genesis-hash", genesis.hash.hex(),
                  "--peer", "127.0.0.1:20000", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert Genesis.load(tmp_path / "n1" / "genesis.json").hash == genesis.hash
    forged = genesis.to_json() | {"chain_id": "lc-forged"}
    with serving(json.dumps({"hash": genesis.hash.hex(), "genesis": forged}).encode()) as url:
        done = lc("node", "init", "n2", "--genesis", url + "/", "--genesis-hash",
                  genesis.hash.hex(), "--peer", "127.0.0.1:20000", cwd=tmp_path)
        assert done.returncode == 1 and "not " + genesis.hash.hex() in done.stderr
        assert not (tmp_path / "n2").exists()
        missing = lc("node", "init", "n3", "--genesis", url + "/elsewhere", "--genesis-hash",
                     genesis.hash.hex(), "--peer", "127.0.0.1:20000", cwd=tmp_path)
        assert missing.returncode == 1 and "cannot fetch the genesis" in missing.stderr
        assert not (tmp_path / "n3").exists()


def test_node_init_4_an_api_off_loopback_gets_its_write_token(tmp_path: Path) -> None:
    """[NODE-INIT.4] [API-AUTH.1] ``--api 0.0.0.0:…`` needs a write token: init writes one
    (mode 0600), names it in ``[api] token_file``, and the config loads and reads it as
    written; a loopback API gets none."""
    genesis = a_graph(tmp_path)
    source = str(tmp_path / "graph" / "genesis.json")
    done = lc("node", "init", "public", "--genesis", source, "--genesis-hash",
              genesis.hash.hex(), "--peer", "127.0.0.1:20000", "--api", "0.0.0.0:26657",
              "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    made = json.loads(done.stdout.splitlines()[-1])
    token_file = tmp_path / "public" / "api_token"
    assert made["api_token"] == str(token_file)
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    config = NodeConfig.load(tmp_path / "public" / "config.toml")
    assert config.api_host == "0.0.0.0" and config.api_token_file == token_file
    assert config.api_token() == token_file.read_text().strip()
    local = lc("node", "init", "local", "--genesis", source, "--genesis-hash",
               genesis.hash.hex(), "--peer", "127.0.0.1:20000", cwd=tmp_path)
    assert local.returncode == 0, local.stderr
    assert not (tmp_path / "local" / "api_token").exists()
    assert NodeConfig.load(tmp_path / "local" / "config.toml").api_token_file is None
