"""``learningchain federated join JOB --data DIR --config NODE.toml``.

The data owner's node runs with the participant loop attached (``run_node``'s ``ready``
hook): the data never leaves this machine, only each round's update blob does
[JOB-FED.1]. It runs until the job is done (exit 0) or SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path

import click

from client.node.config import ConfigError, NodeConfig
from client.node.handle import CommittedBlock, NodeHandle
from client.observe.logs import LEVELS, setup_logging

log = logging.getLogger("learningchain.federated")


CATCH_UP_MS = 30_000
"""A node whose last block is this recent has caught up: a job still unknown does not exist."""


def when_job_known(node: NodeHandle, job_id: bytes, attach: Callable[[], None],
                   give_up: Callable[[str], None]) -> None:
    """Calls ``attach`` once ``job_id`` is in the node's state: at once, or after the blocks
    that bring it (a fresh data owner's node starts at height 0 and syncs first). Calls
    ``give_up`` when the node has caught up (its last block is recent) without the job."""
    if node.state.job(job_id) is not None:
        attach()
        return
    log.info("federated join: job %s not in this node's state yet; syncing", job_id.hex()[:16])
    done = [False]

    def on_block(event: CommittedBlock) -> None:
        if done[0]:
            return
        if node.state.job(job_id) is not None:
            done[0] = True
            attach()
        elif event.time_ms >= node.now_ms() - CATCH_UP_MS:
            done[0] = True
            give_up(f"no job {job_id.hex()} on this chain (the node has caught up, "
                    f"height {node.height})")

    node.add_block_listener(on_block)


@click.group()
def federated() -> None:
    """Take part in federated jobs with data that stays on this machine."""


@federated.command("join")
@click.argument("job")
@click.option("--data", "data_dir", type=click.Path(path_type=Path, exists=True,
                                                    file_okay=False), required=True,
              help="Your data folder (CSV files for the template), mounted read-only.")
@click.option("--config", "config_path", type=click.Path(path_type=Path), required=True,
              help="Your node's TOML config; the node runs with the participant attached.")
@click.option("--hyperparameters", default="{}", show_default=True,
              help="JSON object handed to the job's federate entry (e.g. "
                   '\'{"dp_clip": 1.0, "dp_noise": 0.5}\' for local DP [JOB-FED.6]).')
@click.option("--log-level", type=click.Choice(LEVELS), default="info", show_default=True)
@click.option("--log-json", is_flag=True, help="One JSON object per log line.")
def join(job: str, data_dir: Path, config_path: Path, hyperparameters: str,
         log_level: str, log_json: bool) -> None:
    """Run this node and take part in federated job JOB (hex id) with the data in DIR."""
    from client.federated.node_loop import FederatedJoin
    from client.node.ledger_node import LedgerNode, run_node

    try:
        job_id = bytes.fromhex(job.removeprefix("0x"))
        params = json.loads(hyperparameters)
    except ValueError as e:
        raise click.ClickException(f"bad argument: {e}") from e
    if len(job_id) != 32 or not isinstance(params, dict):
        raise click.ClickException("JOB is a 32-byte hex id; --hyperparameters a JSON object")
    try:
        config = NodeConfig.load(config_path)
    except ConfigError as e:
        raise click.ClickException(str(e)) from e
    setup_logging(log_level, json_lines=log_json, name=config.path.parent.name)
    joined: list[FederatedJoin] = []

    def attach(node: LedgerNode) -> None:
        try:
            loop = FederatedJoin(node, job_id, data_dir, params)
        except ValueError as e:
            click.echo(f"error: {e}", err=True)
            node.request_stop()
            return
        joined.append(loop)
        loop.start()

        async def stop_when_done() -> None:
            await loop.finished.wait()
            node.request_stop()

        asyncio.get_running_loop().create_task(stop_when_done())

    def ready(node: LedgerNode) -> None:
        def give_up(why: str) -> None:
            click.echo(f"error: {why}", err=True)
            node.request_stop()

        when_job_known(node, job_id, lambda: attach(node), give_up)

    code = asyncio.run(run_node(config, ready=ready))
    if not joined:
        sys.exit(code or 1)
    sys.exit(code)
