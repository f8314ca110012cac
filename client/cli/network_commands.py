"""``learningchain network create`` and ``learningchain devnet up|down|status``.

``network create`` writes a new graph on disk (genesis, node dirs, a funded
user); ``devnet`` also starts and stops it as local processes. The layout is
``client.devnet.network.create_network``, the processes
``client.devnet.processes``; this module checks arguments and prints. Every
``--dir``/``--out`` is taken relative to the caller's working directory and
made absolute before anything is written or started, so the commands work
from any directory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from client.cli.common import UserError, json_option, table
from client.cli.inert import out as say
from client.devnet.network import API_PORT_OFFSET, DEFAULT_BASE_PORT, NetworkLayout, create_network
from sandbox.runtime import CHOICES as RUNTIME_CHOICES

DEFAULT_DEVNET = Path(".devnet")

runtime_option = click.option(
    "--runtime", type=click.Choice(RUNTIME_CHOICES), default=None,
    help="Every worker's [worker] runtime [JOB-RUNTIME.1]: runsc (gVisor), runc, or auto "
         "(runsc where the engine has it)  [default: the node's default]")


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
@click.option("--base-port", type=click.IntRange(1024, 65000), default=DEFAULT_BASE_PORT,
              show_default=True,
              help=f"P2P port of node0; node i uses +i, its API +{API_PORT_OFFSET}+i.")
@click.option("--validator-balance", type=click.IntRange(0, 2**62), default=1_000,
              show_default=True, help="Initial credits of each validator.")
@click.option("--submitter-balance", type=click.IntRange(0, 2**62), default=10_000,
              show_default=True, help="Initial credits of the submitter user.")
@runtime_option
@click.option("--eval-runtime", type=click.Choice(["runsc", "runc"]), default=None,
              help="The runtime every member evaluates claims under, named in the genesis "
                   "[GENESIS-RUNTIME.1]  [default: --runtime's, auto being runsc where "
                   "gVisor is installed]")
@click.option("--empty-block-interval-ms", type=click.IntRange(0, 3_600_000), default=None,
              envvar="LC_EMPTY_BLOCK_INTERVAL_MS",
              help="At most one empty block per this many ms while the graph has nothing to "
                   "record; 0 = a block at every height [CONS-PACE.3]  [default: 300000]")
@json_option
def network_create(out: Path, validators: int, workers: int | None, chain_id: str | None,
                   base_port: int, validator_balance: int, submitter_balance: int,
                   runtime: str | None, eval_runtime: str | None,
                   empty_block_interval_ms: int | None, as_json: bool) -> None:
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
                                users={"submitter": submitter_balance},
                                worker_runtime=runtime, eval_runtime=eval_runtime,
                                empty_block_interval_ms=empty_block_interval_ms)
    except FileExistsError as e:
        raise UserError(str(e), code="exists") from e
    except (ValueError, OSError) as e:
        raise UserError(str(e)) from e
    if as_json:
        say(json.dumps(layout.to_json()))
        return
    say(f"network {layout.chain_id}: genesis {layout.genesis}")
    _describe(layout)
    first = layout.nodes[0]
    say("start each node:  learningchain node start --config <node>/config.toml")
    say(f"then:  export LC_NODE={first.api_url}")
    if layout.users:
        u = layout.users[0]
        say(f"       learningchain balance --key {u.key_file} "
            f"--passphrase-file {u.passphrase_file}")


def _describe(layout: NetworkLayout) -> None:
    table(("node", "roles", "p2p", "api", "address"),
          [(n.name, "+".join(n.roles), n.p2p_port, n.api_url, n.address) for n in layout.nodes])
    if layout.users:
        table(("user", "credits", "key", "passphrase", "address"),
              [(u.name, u.balance, u.key_file, u.passphrase_file, u.address)
               for u in layout.users], right=(1,))


# --- devnet --------------------------------------------------------------------------------

dir_option = click.option(
    "--dir", "root", type=click.Path(path_type=Path, file_okay=False), default=DEFAULT_DEVNET,
    show_default=True, help="Where the network lives (relative to the current directory).")


def _existing(root: Path) -> Path:
    root = root.resolve()
    if not (root / "network.json").exists():
        raise UserError(f"no devnet in {root} (run `learningchain devnet up --dir {root}`)",
                        code="no_devnet")
    return root


@click.group()
def devnet() -> None:
    """A local graph of node processes on 127.0.0.1, one command."""


@devnet.command("up")
@dir_option
@click.option("--validators", type=click.IntRange(1, 64), default=4, show_default=True)
@click.option("--workers", type=click.IntRange(0, 64), default=3, show_default=True,
              help="How many of the validators also run the worker.")
@click.option("--base-port", type=click.IntRange(1024, 65000), default=DEFAULT_BASE_PORT,
              show_default=True,
              help=f"P2P port of node0 of a new network; node i uses +i, its API "
                   f"+{API_PORT_OFFSET}+i.")
@click.option("--timeout", type=click.FloatRange(min=1), default=60.0, show_default=True,
              help="Seconds to wait for every node to commit a block.")
@click.option("--predict", "predict", metavar="NODES", default=None,
              help="Worker nodes that offer prediction service ([worker] predict = true: "
                   "each locks the executor bond and answers the requests it is drawn for), "
                   "as indices: 1,2,3 or 'all'. Only when the network is created.")
@runtime_option
@json_option
def devnet_up(root: Path, validators: int, workers: int, base_port: int, timeout: float,
              predict: str | None, runtime: str | None, as_json: bool) -> None:
    """Create (if needed) and start the graph; return once every node commits blocks.

    Fails (exit 1, nothing left running) when a port is taken or a node dies."""
    from client.devnet.processes import DevnetError, PortInUse, up

    if workers > validators:
        raise click.UsageError("--workers cannot exceed --validators")
    if base_port + API_PORT_OFFSET + validators > 65535:
        raise click.BadParameter("ports would exceed 65535", param_hint="--base-port")
    executors = predict_nodes(predict, workers) if predict is not None else ()
    if (executors or runtime) and (root.resolve() / "network.json").exists():
        raise UserError(f"--predict and --runtime apply when the network is created, and "
                        f"{root.resolve()} already holds one: set them under [worker] in the "
                        "nodes' config.toml, or use a new --dir", code="exists")
    try:
        layout = up(root.resolve(), validators=validators, workers=workers,
                    base_port=base_port, timeout=timeout,
                    worker_settings={i: {"predict": True} for i in executors} or None,
                    worker_runtime=runtime)
    except PortInUse as e:
        raise UserError(str(e), code="port_in_use") from e
    except DevnetError as e:
        raise UserError(str(e), code="devnet_failed") from e
    except (FileExistsError, ValueError, OSError) as e:
        raise UserError(str(e)) from e
    if as_json:
        say(json.dumps(layout.to_json()))
        return
    say(f"devnet {layout.chain_id} up in {layout.root}")
    _describe(layout)
    if executors:
        say("prediction service ([worker] predict = true): "
            + ", ".join(f"node{i}" for i in executors))
    say(f"then:  export LC_NODE={layout.nodes[0].api_url}")


def predict_nodes(text: str, workers: int) -> tuple[int, ...]:
    """The node indices of ``--predict`` ("1,2,3" or "all"); each must run the worker, since
    the executor is part of it [PRED-OFFER.1]."""
    if text.strip().lower() == "all":
        if workers == 0:
            raise click.BadParameter("no node runs the worker (--workers 0)",
                                     param_hint="--predict")
        return tuple(range(workers))
    picked: set[int] = set()
    for part in text.split(","):
        try:
            i = int(part.strip().removeprefix("node"))
        except ValueError:
            raise click.BadParameter(f"{part.strip()!r} is not a node index (use e.g. 1,2,3 "
                                     "or all)", param_hint="--predict") from None
        if not 0 <= i < workers:
            raise click.BadParameter(f"node{i} does not run the worker: workers are node0.."
                                     f"node{workers - 1}" if workers else
                                     f"node{i} does not run the worker (--workers 0)",
                                     param_hint="--predict")
        picked.add(i)
    return tuple(sorted(picked))


@devnet.command("down")
@dir_option
@json_option
def devnet_down(root: Path, as_json: bool) -> None:
    """Stop every node of the graph (SIGTERM, then SIGKILL after 20 s)."""
    from client.devnet.processes import down

    outcome = down(_existing(root))
    if as_json:
        say(json.dumps(outcome))
    elif not outcome:
        say("no devnet processes recorded")
    else:
        table(("node", "outcome"), sorted(outcome.items()))


@devnet.command("status")
@dir_option
@json_option
def devnet_status(root: Path, as_json: bool) -> None:
    """Each node: running or stopped, height, peers it is connected to."""
    from client.devnet.processes import status

    rows = status(_existing(root))
    if as_json:
        say(json.dumps(rows))
        return
    table(("node", "state", "height", "peers", "api", "pid"),
          [(r["name"], _state(r), _dash(r["height"]), _dash(r["peers"]), r["api"],
            _dash(r["pid"])) for r in rows], right=(2, 3))


def _state(row: dict[str, Any]) -> str:
    if row["answered_by"]:
        return f"port taken by {row['answered_by']}"
    return str(row["state"])


def _dash(value: object) -> str:
    return "-" if value is None else str(value)
