"""``learningchain node start`` (the devnet commands are in ``network_commands``)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from client.node.config import ConfigError, NodeConfig
from client.observe.logs import LEVELS, setup_logging


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
