"""``learningchain network create``: a new graph on disk (genesis, node dirs, a funded user).

The layout itself is ``client.devnet.network.create_network`` (shared with ``devnet
up``); this command checks the arguments and prints what it wrote.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from client.cli.inert import out as say
from client.devnet.network import API_PORT_OFFSET, create_network


@click.group("network")
def network() -> None:
    """Create the files of a new graph (genesis, one directory per node)."""


@network.command("create")
@click.option("--out", "out", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Directory to write (must not already hold a network).")
@click.option("--validators", type=click.IntRange(1, 64), default=4, show_default=True,
              help="Validator nodes.")
@click.option("--workers", type=click.IntRange(0, 64), default=None,
              help="How many of the validators also run the worker  [default: all]")
@click.option("--chain-id", default=None, help="Chain id (default: lc-local-<random>).")
@click.option("--base-port", type=click.IntRange(1024, 65000), default=26600,
              show_default=True,
              help=f"P2P port of node0; node i uses +i, its API +{API_PORT_OFFSET}+i.")
@click.option("--validator-balance", type=click.IntRange(0, 2**62), default=1_000,
              show_default=True, help="Initial credits of each validator.")
@click.option("--submitter-balance", type=click.IntRange(0, 2**62), default=10_000,
              show_default=True, help="Initial credits of the submitter user.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def network_create(out: Path, validators: int, workers: int | None, chain_id: str | None,
                   base_port: int, validator_balance: int, submitter_balance: int,
                   as_json: bool) -> None:
    """Write genesis.json, node0..nodeN-1 (key, passphrase, config.toml) and users/ to --out."""
    workers = validators if workers is None else workers
    if workers > validators:
        raise click.UsageError("--workers counts validators that also work: at most "
                               f"--validators ({validators})")
    if chain_id is not None and not 1 <= len(chain_id) <= 64:
        raise click.BadParameter("1..64 characters", param_hint="--chain-id")
    if base_port + API_PORT_OFFSET + validators > 65535:
        raise click.BadParameter("ports would exceed 65535", param_hint="--base-port")
    try:
        layout = create_network(out, validators=validators, workers=workers,
                                base_port=base_port, chain_id=chain_id,
                                validator_balance=validator_balance,
                                users={"submitter": submitter_balance})
    except (FileExistsError, ValueError, OSError) as e:
        raise click.ClickException(str(e)) from e
    if as_json:
        say(json.dumps(layout.to_json()))
        return
    say(f"network {layout.chain_id}: genesis {layout.genesis}")
    for n in layout.nodes:
        say(f"  {n.name}  {'+'.join(n.roles):16s} p2p {n.p2p_port}  api {n.api_url}  "
                   f"{n.address}")
    for u in layout.users:
        say(f"  user {u.name}: {u.address} ({u.balance} credits), key {u.key_file}, "
                   f"passphrase {u.passphrase_file}")
    first = layout.nodes[0]
    say("start each node:  learningchain node start --config <node>/config.toml")
    say(f"then:  export LC_NODE={first.api_url}")
    if layout.users:
        u = layout.users[0]
        say(f"       learningchain balance --key {u.key_file} "
                   f"--passphrase-file {u.passphrase_file}")
