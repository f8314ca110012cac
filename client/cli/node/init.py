"""``learningchain node init``: a node directory for joining an existing graph [NODE-INIT.*].

Adds ``init`` to the ``node`` group of ``client.cli.node.commands``; the writing is
``client.node.join``. What it prints ends with the two things the operator does next:
send the address to a validator, start the node.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from client.cli.common import UserError, emit, json_option, out
from client.cli.node.commands import node
from client.node.config import ROLES
from client.node.join import DEFAULT_API, DEFAULT_LISTEN, InitError, init_node_dir


@node.command("init")
@click.argument("directory", type=click.Path(path_type=Path, dir_okay=True, file_okay=False))
@click.option("--genesis", "source", required=True, metavar="FILE|URL",
              help="The graph's genesis.json, or an http(s) URL serving it (a node's API "
                   "address, e.g. http://HOST:PORT, is read at /api/v1/genesis).")
@click.option("--genesis-hash", required=True, metavar="HEX",
              help="The genesis hash the validators sent you (`learningchain chain genesis` "
                   "prints it); any other genesis is refused and nothing is written.")
@click.option("--peer", "peers", multiple=True, required=True, metavar="HOST:PORT",
              help="A node of the graph to connect to (p2p port); repeat for more.")
@click.option("--role", "roles", multiple=True, type=click.Choice(ROLES),
              help="What the node does; repeat for more  [default: full]")
@click.option("--listen", default=DEFAULT_LISTEN, show_default=True, metavar="HOST:PORT",
              help="Where the node accepts peers (open this port to let others in).")
@click.option("--api", default=DEFAULT_API, show_default=True, metavar="HOST:PORT",
              help="Where the node's HTTP API and dashboard listen (yours, keep it local).")
@json_option
def node_init(directory: Path, source: str, genesis_hash: str, peers: tuple[str, ...],
              roles: tuple[str, ...], listen: str, api: str, as_json: bool) -> None:
    """Write DIRECTORY: a new key (node.key, its passphrase in `passphrase`, both mode
    0600), genesis.json checked against --genesis-hash, and config.toml."""
    try:
        made = init_node_dir(directory, source=source, genesis_hash=genesis_hash,
                             peers=tuple(dict.fromkeys(peers)),
                             roles=tuple(dict.fromkeys(roles)) or ("full",),
                             listen=listen, api=api)
    except InitError as e:
        raise UserError(str(e), code=e.code) from e
    config = shlex.quote(str(directory / "config.toml"))

    def text() -> None:
        out(f"node directory {made.directory} for graph {made.chain_id}")
        out(f"genesis   {made.genesis_hash} (checked)")
        out(f"address   {made.address}")
        out(f"roles     {', '.join(made.roles)}")
        out(f"p2p       {made.listen}, peers {', '.join(made.peers)}")
        out(f"api       http://{made.api}")
        out("wrote     config.toml, node.key and passphrase (mode 0600), genesis.json")
        if made.api_token is not None:
            out(f"api token {made.api_token} (mode 0600): the API listens off loopback, so "
                f"writes need it: export LC_API_TOKEN=$(cat {shlex.quote(str(made.api_token))})")
        out(f"next: send your address {made.address} to a validator of the graph; "
            f"they run `learningchain member admit {made.address}`")
        out(f"      start the node now (it connects once admitted): "
            f"learningchain node start --config {config}")

    emit(made.to_json(), as_json, text)
