"""A node directory for joining an existing graph [NODE-INIT.1-5] (``learningchain node init``).

Everything a node needs to start is written in one step from what the graph's
validators send a newcomer: where the genesis is (a file, or an http(s) URL:
another node's API serves it), the genesis hash to check it against, and one or
more peers. The hash is the genesis id of [GENESIS-HASH.1] (the same as
``chain genesis`` and ``/status`` print), so a genesis that hashes otherwise is a
different graph, or a forged one, and nothing is written.
"""

from __future__ import annotations

import json
import os
import secrets
import tomllib
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chain.crypto import PrivateKey, address_to_text
from chain.errors import ChainError, InvalidGenesis
from chain.genesis import Genesis
from chain.keyfile import write_key_file
from chain.local_file import LocalFileError, read_local_file
from client.api.fetch import FetchError, fetch
from client.api.token_file import is_loopback_host, write_token_file
from client.node.config import ConfigError, NodeConfig, render_config

GENESIS_API_PATH = "/api/v1/genesis"
"""[NODE-INIT.2] Where a node's API serves its genesis [API-GENESIS.1]: a URL naming only
a node (``http://host:port``) is read there."""
MAX_GENESIS_BYTES = 16 * 1024 * 1024
"""[NODE-INIT.2] [NODE-INIT.6] A larger answer or file is no genesis (a real one is a few
KiB per member): read to this bound + 1 byte at most."""
FETCH_TIMEOUT_S = 30.0
"""[NODE-INIT.6] The most one socket operation of the genesis fetch may wait."""
FETCH_DEADLINE_S = 60.0
"""[NODE-INIT.6] The whole genesis fetch (connect, TLS, headers, body, redirects): a server
that sends a byte now and then is cut here, and nothing is written."""
DEFAULT_LISTEN = "0.0.0.0:26656"
"""[NODE-INIT.4] p2p on every interface: peers on other machines must reach it."""
DEFAULT_API = "127.0.0.1:26657"
"""[NODE-INIT.4] The HTTP API on loopback only: it is this operator's, not the graph's."""
FILES = ("config.toml", "node.key", "passphrase", "genesis.json")
API_TOKEN_FILE = "api_token"
"""[NODE-INIT.4] Written (mode 0600) and named in ``[api] token_file`` when ``--api`` binds
anything but loopback, which needs a write token [API-AUTH.1]: the config works as written."""


class InitError(ChainError):
    """``node init`` cannot write the directory; ``code`` says why (exists, genesis...)."""


class GenesisHashMismatch(InitError):
    """[NODE-INIT.1] The genesis from ``source`` is not the one the operator was told of."""

    def __init__(self, source: str, expected: str, actual: str) -> None:
        super().__init__(
            f"the genesis from {source} hashes to {actual}, not {expected} (--genesis-hash): "
            "it is another graph's genesis, or not the one you were sent; nothing written",
            code="genesis_hash_mismatch")
        self.source = source
        self.expected = expected
        self.actual = actual


@dataclass(frozen=True, slots=True)
class NodeDirectory:
    """What ``init_node_dir`` wrote."""

    directory: Path
    config: Path
    address: str
    """This node's ``lc1…`` address: what the validators admit."""
    chain_id: str
    genesis_hash: str
    roles: tuple[str, ...]
    listen: str
    api: str
    peers: tuple[str, ...]
    api_token: Path | None = None
    """The API write token's file, when the API listens off loopback [API-AUTH.1]."""

    def to_json(self) -> dict[str, Any]:
        files = [*FILES, API_TOKEN_FILE] if self.api_token is not None else FILES
        return {"dir": str(self.directory), "config": str(self.config),
                "address": self.address, "chain_id": self.chain_id,
                "genesis_hash": self.genesis_hash, "roles": list(self.roles),
                "listen": self.listen, "api": self.api, "peers": list(self.peers),
                "api_token": None if self.api_token is None else str(self.api_token),
                "files": [str(self.directory / f) for f in files]}


def write_secret_file(path: Path, text: str) -> None:
    """A new file readable by its owner only (mode 0600 from creation, never wider)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")
    os.chmod(path, 0o600)


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def genesis_url(source: str) -> str:
    """[NODE-INIT.2] ``source`` itself, or a node's genesis route when it names only a node."""
    parts = urllib.parse.urlsplit(source)
    if parts.path in ("", "/"):
        return urllib.parse.urlunsplit(parts._replace(path=GENESIS_API_PATH))
    return source


def load_genesis(source: str, *, deadline_s: float | None = None) -> Genesis:
    """[NODE-INIT.2] The genesis at a path or an http(s) URL. A URL may answer with the
    document or with the API's ``{"hash", "genesis"}`` (its ``hash`` is not trusted: the
    caller compares the recomputed one).

    [NODE-INIT.6] A URL is fetched whole within ``deadline_s`` (default
    ``FETCH_DEADLINE_S``) and a body of at most ``MAX_GENESIS_BYTES``; a path is read as
    [NODE-READ.1] reads a user's file (a regular file only, to the same bound)."""
    if not is_url(source):
        try:
            body = read_local_file(source, MAX_GENESIS_BYTES, what="genesis file")
        except LocalFileError as e:
            raise InitError(str(e), code="bad_genesis") from None
        return _genesis_of(source, body)
    url = genesis_url(source)
    limit = FETCH_DEADLINE_S if deadline_s is None else deadline_s
    try:
        answer = fetch(url, deadline_s=limit, max_bytes=MAX_GENESIS_BYTES,
                       read_timeout_s=FETCH_TIMEOUT_S)
    except FetchError as e:
        code = "bad_genesis" if e.code == "fetch_too_large" else "genesis_fetch"
        raise InitError(f"cannot fetch the genesis from {e}; nothing written",
                        code=code) from None
    if answer.status != 200:
        raise InitError(f"cannot fetch the genesis from {url}: HTTP {answer.status}",
                        code="genesis_fetch")
    return _genesis_of(url, answer.body)


def _genesis_of(where: str, body: bytes) -> Genesis:
    """The genesis in ``body``: the document, or the API's ``{"hash", "genesis"}``."""
    try:
        doc = json.loads(body)
    except ValueError as e:
        raise InitError(f"{where} is not JSON: {e}", code="bad_genesis") from e
    if isinstance(doc, dict) and "chain_id" not in doc and isinstance(doc.get("genesis"), dict):
        doc = doc["genesis"]
    try:
        return Genesis.from_json(doc)
    except InvalidGenesis as e:
        raise InitError(f"{where}: {e}", code="bad_genesis") from e


def parse_hash(text: str) -> str:
    """A genesis hash as 64 lower-case hex characters (``0x`` and case tolerated)."""
    value = text.strip().lower().removeprefix("0x")
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise InitError(f"--genesis-hash must be 64 hex characters, got {text!r}",
                        code="bad_hash")
    return value


def split_endpoint(text: str, what: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise InitError(f"{what} must be HOST:PORT, got {text!r}", code="bad_endpoint")
    return host.strip("[]"), int(port)


def init_node_dir(directory: Path, *, source: str, genesis_hash: str, peers: tuple[str, ...],
                  roles: tuple[str, ...], listen: str = DEFAULT_LISTEN,
                  api: str = DEFAULT_API) -> NodeDirectory:
    """[NODE-INIT.1-5] Checks everything, then writes key, passphrase, genesis and config.

    Nothing is written when a check fails: a bad hash, an unreadable genesis, a bad
    endpoint, or a directory that already holds one of the files."""
    expected = parse_hash(genesis_hash)
    if not peers:
        raise InitError("name at least one --peer HOST:PORT of the graph", code="no_peer")
    for peer in peers:
        if split_endpoint(peer, "--peer")[1] == 0:
            raise InitError(f"--peer {peer}: port 0 is no peer", code="bad_endpoint")
    listen_host, listen_port = split_endpoint(listen, "--listen")
    api_host, api_port = split_endpoint(api, "--api")
    directory = directory.resolve()
    taken = [f for f in (*FILES, API_TOKEN_FILE) if (directory / f).exists()]
    if taken or (directory / "data").exists():
        raise InitError(f"{directory} already holds a node ({', '.join(taken) or 'data/'}): "
                        "nothing written; choose a new directory", code="exists")
    genesis = load_genesis(source)
    actual = genesis.hash.hex()
    if actual != expected:
        raise GenesisHashMismatch(source, expected, actual)
    config = directory / "config.toml"
    token_file = None if is_loopback_host(api_host) else API_TOKEN_FILE
    text = render_config(roles=roles, p2p_port=listen_port, bootstrap=peers, host=listen_host,
                         api_host=api_host, api_port=api_port, api_token_file=token_file)
    try:  # the node's own loader judges the config before anything is written
        NodeConfig.from_dict(tomllib.loads(text), config)
    except ConfigError as e:
        raise InitError(str(e), code="bad_config") from e
    key = PrivateKey.generate()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    passphrase = secrets.token_urlsafe(24)
    write_secret_file(directory / "passphrase", passphrase)
    write_key_file(directory / "node.key", key, passphrase)
    genesis.save(directory / "genesis.json")
    if token_file is not None:
        write_token_file(directory / token_file)
    config.write_text(text)
    return NodeDirectory(directory, config, address_to_text(key.address), genesis.chain_id,
                         actual, roles, f"{listen_host}:{listen_port}",
                         f"{api_host}:{api_port}", peers,
                         None if token_file is None else directory / token_file)
