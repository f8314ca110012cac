"""``learningchain node start`` and ``learningchain devnet up|down|status``."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import click

from client.cli.inert import out
from client.node.config import ConfigError, NodeConfig
from client.observe.logs import LEVELS, setup_logging

DEFAULT_DEVNET = Path(".devnet")


@click.group()
def node() -> None:
    """Run a node of a graph."""


@node.command("start")
@click.option("--config", "config_path", type=click.Path(path_type=Path), required=True,
              help="The node's TOML config (see `network create`).")
@click.option("--log-level", type=click.Choice(LEVELS), default="info", show_default=True)
@click.option("--log-json", is_flag=True, help="One JSON object per log line.")
def node_start(config_path: Path, log_level: str, log_json: bool) -> None:
    """Start a node and run until SIGTERM/SIGINT (graceful; a restart resumes)."""
    from client.node.ledger_node import run_node

    try:
        config = NodeConfig.load(config_path)
    except ConfigError as e:
        raise click.ClickException(str(e)) from e
    setup_logging(log_level, json_lines=log_json, name=config.path.parent.name)
    code = asyncio.run(run_node(config))
    sys.exit(code)


@click.group()
def devnet() -> None:
    """A local graph of node processes on 127.0.0.1, one command."""


@devnet.command("up")
@click.option("--dir", "root", type=click.Path(path_type=Path), default=DEFAULT_DEVNET,
              show_default=True, help="Where the network lives (created if empty).")
@click.option("--validators", type=click.IntRange(1, 64), default=4, show_default=True)
@click.option("--workers", type=click.IntRange(0, 64), default=3, show_default=True,
              help="How many of the validators also run the worker.")
@click.option("--base-port", type=click.IntRange(1024, 65000), default=26600, show_default=True)
@click.option("--timeout", type=float, default=60.0, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def devnet_up(root: Path, validators: int, workers: int, base_port: int, timeout: float,
              as_json: bool) -> None:
    """Create (if needed) and start the graph; return once blocks are committed."""
    from client.devnet.processes import DevnetError, up

    if workers > validators:
        raise click.UsageError("--workers cannot exceed --validators")
    try:
        layout = up(root, validators=validators, workers=workers, base_port=base_port,
                    timeout=timeout)
    except (DevnetError, FileExistsError, ValueError) as e:
        raise click.ClickException(str(e)) from e
    if as_json:
        out(json.dumps(layout.to_json()))
        return
    out(f"devnet {layout.chain_id} up in {layout.root}")
    for n in layout.nodes:
        out(f"  {n.name}  {n.api_url}  {'+'.join(n.roles):18s} {n.address}")
    for u in layout.users:
        out(f"  user {u.name}: key {u.key_file} (passphrase in {u.passphrase_file})")


@devnet.command("down")
@click.option("--dir", "root", type=click.Path(path_type=Path), default=DEFAULT_DEVNET,
              show_default=True)
@click.option("--json", "as_json", is_flag=True)
def devnet_down(root: Path, as_json: bool) -> None:
    """Stop every node of the graph (SIGTERM, then SIGKILL after 20 s)."""
    from client.devnet.processes import down

    outcome = down(root)
    if as_json:
        out(json.dumps(outcome))
    elif not outcome:
        out("no devnet processes recorded")
    else:
        for name, what in outcome.items():
            out(f"  {name}: {what}")


@devnet.command("status")
@click.option("--dir", "root", type=click.Path(path_type=Path), default=DEFAULT_DEVNET,
              show_default=True)
@click.option("--json", "as_json", is_flag=True)
def devnet_status(root: Path, as_json: bool) -> None:
    """Each node: running, height, peers."""
    from client.devnet.processes import status

    if not (root / "network.json").exists():
        raise click.ClickException(f"no devnet in {root} (run `learningchain devnet up`)")
    rows = status(root)
    if as_json:
        out(json.dumps(rows))
        return
    for r in rows:
        state = "up" if r["running"] else "down"
        out(f"  {r['name']}  {state:4s} height {r['height']}  peers {r['peers']}  "
                   f"{r['api']}")
