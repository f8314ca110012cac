"""``learningchain node start`` and ``node token`` (the devnet commands are in
``network_commands``)."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from pathlib import Path

import click

from client.api.token_file import TOKEN_ENV, write_token_file
from client.cli.common import UserError, emit, json_option, node_option, out
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
@click.option("--state-sync", is_flag=True,
              help="Start from the newest snapshot peers offer, checked against the genesis "
                   "alone (the database must be new); fail rather than replay every block. "
                   "Without it, [statesync] mode decides (auto: when far behind) [SNAP-*].")
def node_start(config_path: Path, log_level: str, log_json: bool, state_sync: bool) -> None:
    """Start a node and run until SIGTERM/SIGINT (graceful; a restart resumes)."""
    from client.node.ledger_node import run_node

    try:
        config = NodeConfig.load(config_path)
        if state_sync:
            config = dataclasses.replace(
                config, statesync=dataclasses.replace(config.statesync, mode="always"))
        config.api_token()  # [API-AUTH.5] a bad token file is one line here, not a log
    except ConfigError as e:
        raise click.ClickException(str(e)) from e
    setup_logging(log_level, json_lines=log_json, name=config.path.parent.name)
    code = asyncio.run(run_node(config))
    sys.exit(code)


@node.command("status")
@node_option
@json_option
@click.pass_context
def node_status(ctx: click.Context, node_url: str, as_json: bool) -> None:
    """The node's view (as `chain status`): height, peers, the protocol version in force and a
    pending upgrade plan, with whether this node's software is ready for it [UPGRADE-HALT.1]."""
    from client.cli.chain_commands import chain_status

    ctx.invoke(chain_status, node_url=node_url, as_json=as_json)


@node.command("token")
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False))
@json_option
def node_token(path: Path, as_json: bool) -> None:
    """Write a new random API token to PATH (mode 0600) for [api] token_file.

    Writes through the node's API then need it: clients send it from $LC_API_TOKEN.
    An existing file is never overwritten (remove it first to change the token).
    """
    try:
        write_token_file(path)
    except FileExistsError:
        raise UserError(f"{path} already exists: remove it first to make a new token",
                        code="exists") from None
    except OSError as e:
        raise UserError(f"cannot write {path}: {e}", code="os_error") from None
    emit({"token_file": str(path)}, as_json, lambda: out(
        f"wrote a new API token to {path} (mode 0600); set [api] token_file to it and give "
        f"clients the token: export {TOKEN_ENV}=$(cat {path})"))
