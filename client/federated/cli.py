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
from typing import TYPE_CHECKING, Any

import click

from client.cli.common import (
    UserError,
    client_for,
    emit,
    json_option,
    key_option,
    load_key,
    node_option,
    out,
    passphrase_option,
    user_errors,
)
from client.node.config import ConfigError, NodeConfig
from client.observe.logs import LEVELS, setup_logging
from sandbox.errors import SandboxError

if TYPE_CHECKING:  # the node's interface pulls in the ledger (numpy): not for --help
    from client.node.handle import CommittedBlock, NodeHandle

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
              help="JSON object handed to the job's federate entry. Local DP "
                   "[JOB-FED.6]: '{\"dp_clip\": 1.0, \"dp_noise\": 0.5}' (noise on the "
                   "whole update), or DP-SGD with Opacus when the job's image lists it "
                   "under [python] packages: '{\"dp_sgd\": 1, \"dp_noise_multiplier\": "
                   "1.0, \"dp_max_grad_norm\": 1.0}' (optional dp_delta, default 1e-5); "
                   "each round's epsilon and the job-so-far epsilon are logged [JOB-FED.7].")
@click.option("--log-level", type=click.Choice(LEVELS), default="info", show_default=True)
@click.option("--log-json", is_flag=True, help="One JSON object per log line.")
def join(job: str, data_dir: Path, config_path: Path, hyperparameters: str,
         log_level: str, log_json: bool) -> None:
    """Run this node and take part in federated job JOB (hex id) with the data in DIR."""
    from client.federated.participant.node_loop import FederatedJoin
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
            loop = FederatedJoin(node, job_id, data_dir, params,
                                 runtime=config.worker.runtime)  # [JOB-RUNTIME.1]
        except (ValueError, SandboxError) as e:  # no such job; a runtime the engine lacks
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


def _pct(ppm: int | None) -> str:
    return "-" if ppm is None else f"{ppm / 1e4:.1f}%"


def show_lines(fed: dict[str, Any]) -> list[str]:
    """[API-FED.2] [API-FED.3] ``federated show``'s lines from the node's ``/federated/{id}``
    (chain.federated.open.reads's readers): terms, each round's participants with their trust
    weights, aggregator and verdict, the end ballot and the rewards (a banned address's
    marked burned)."""
    spec = fed["spec"]
    param = {"trimmed_mean": "k", "multi_krum": "f"}.get(spec["rule"])
    rule = spec["rule"] + (f" {param}={spec['trim']}" if param else "")
    lines = [f"job {fed['job_id']}: {fed['status']}, phase {fed['phase']}, round "
             f"{fed['round']} of {spec['rounds']} ({fed['rounds_done']} recorded)",
             f"terms: {rule}, {spec['min_participants']}..{spec['max_participants']} "
             f"participants, privacy {spec['privacy']}, bounty {fed['bounty']}, "
             f"leave-one-out {spec['loo_permille']}‰, target "
             f"{_pct(spec['target_accuracy_ppm'])}, holdout deposit "
             f"{spec['holdout']['deposit']}",
             f"owner {fed['owner']}; model {fed['model_hash'] or '(initial)'}"]
    cohort = spec.get("cohort") or []
    if cohort:  # [FED-SPEC.4]
        lines.append(f"cohort: only these {len(cohort)} addresses may commit: "
                     + ", ".join(cohort))
    else:
        lines.append("cohort: none; any admitted member may commit, and one member may join "
                     "through several addresses [FED-SPEC.4]")
    for r in fed["rounds"]:
        verdict = r["verdict"] or f"running ({r['phase']})"
        lines.append(f"round {r['round']}: {verdict}, aggregator {r['aggregator'] or '-'}, "
                     f"accuracy {_pct(r['accuracy_ppm'])}, model {r['model_hash'] or '-'}")
        for a in r["slashed"]:
            lines.append(f"  slashed: {a} (its aggregate was voted invalid)")
        for p in r["participants"]:
            role = " (owner's reference)" if p["owner_reference"] else ""
            weight = "-" if p["weight"] is None else f"{p['weight'] / 65536:.3f}"
            lines.append(f"  {p['address']}{role}: {'revealed' if p['revealed'] else 'committed'}"
                         f", trust weight {weight}")
    end = fed["end"]
    if end["participants"]:
        lines.append(f"end ballot: {len(end['participants'])} participants, deposit "
                     f"{end['deposit']}")
    payout = fed["payout"]
    if payout is not None:
        for p in payout["paid"]:
            # [FED-END.4] a banned participant's share is burned, never credited
            gone = "" if not p.get("burned") else \
                " (burned: banned)" if int(p["amount"]) else " (banned)"
            lines.append(f"reward {p['address']}: {p['amount']}{gone}")
        burned = sum(int(p["amount"]) for p in payout["paid"] if p.get("burned"))
        lines.append(f"paid {sum(int(p['amount']) for p in payout['paid'])}"
                     f"{f' ({burned} of it burned)' if burned else ''}, refund "
                     f"{payout['refund']}")
    return lines


@federated.command("show")
@click.argument("job")
@node_option
@json_option
def show(job: str, node_url: str, as_json: bool) -> None:
    """Show federated job JOB: rounds, participants, trust weights, rewards."""
    client = client_for(node_url)
    with user_errors():
        fed: dict[str, Any] = client.federated_job(job.removeprefix("0x"))
    def text() -> None:
        for line in show_lines(fed):
            out(line)

    emit(fed, as_json, text)


@federated.command("part")
@click.argument("job")
@click.argument("which", type=click.Choice(("public", "hidden")))
@click.option("--job-dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=Path("."), show_default=True,
              help="The job folder 'job submit --federated' posted (its pool and secret).")
@key_option(help="The job owner's key file.")
@passphrase_option
@node_option
@json_option
def part(job: str, which: str, job_dir: Path, key_path: Path, passphrase_file: Path | None,
         node_url: str, as_json: bool) -> None:
    """Name the holdout's public or hidden part of federated job JOB [TX-FED.7]."""
    from client.cli.job.federated import name_part

    client = client_for(node_url)
    key = load_key(key_path, passphrase_file)
    with user_errors():
        fed: dict[str, Any] = client.federated_job(job.removeprefix("0x"))
    if fed["seed"] is None:
        raise UserError(f"the split of job {fed['job_id']} is not drawn yet", code="wrong_phase")
    done = name_part(client, key, fed, job_dir, which)
    emit(done, as_json, lambda: out(f"{which} part: blob {done['blob']} ({done['size']} "
                                    f"bytes) named in block {done['height']}"))
