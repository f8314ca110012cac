"""The worker's runtime, from its config to the node's start [JOB-RUNTIME.1-2].

``[worker] runtime`` takes ``auto``, ``runsc`` or ``runc``; anything else is refused at
load naming the choices. A worker told to use ``runsc`` on an engine that lacks it does
not start: the error says which runtime, what the engine has and how to install it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import pytest

import client.federated.participant.node_loop as fed_node_loop
import client.node.config as config_module
import client.worker.worker as worker_module
from chain.errors import InvalidGenesis
from chain.genesis import Genesis
from client.devnet.network import create_network
from client.node.config import ConfigError, NodeConfig, WorkerPolicy, render_config
from client.node.ledger_node import run_node
from client.worker.worker import Worker
from sandbox.runtime import (
    AUTO,
    DEFAULT,
    DEFAULT_ENV,
    RUNC,
    RUNSC,
    BadRuntime,
    GraphRuntimeUnavailable,
    RuntimeUnavailable,
    choose,
    default,
)
from tests.client.cli.test_cli_chain import run
from tests.framework.ports import free_base_port
from tests.framework.solo import SoloNode
from tests.ledger.harness import job_spec, make_genesis


def config_with(tmp_path: Path, runtime: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(render_config(roles=("validator", "worker"), worker={"runtime": runtime}))
    return path


@pytest.mark.parametrize("value", ["auto", "runsc", "runc"])
def test_job_runtime_1_worker_config_takes_each_runtime(tmp_path: Path, value: str) -> None:
    assert NodeConfig.load(config_with(tmp_path, value)).worker.runtime == value


def test_job_runtime_1_the_default_is_auto_and_a_bad_name_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """[JOB-RUNTIME.1] A config naming no runtime gets ``auto`` (gVisor where installed), as
    does ``init``'s template; ``$LC_WORKER_RUNTIME`` replaces that default (the suite sets
    runc) but never a runtime the config names; a bad name, in either place, is refused."""
    monkeypatch.delenv(DEFAULT_ENV, raising=False)
    assert WorkerPolicy().runtime == AUTO == DEFAULT
    plain = tmp_path / "plain" / "config.toml"
    plain.parent.mkdir()
    plain.write_text(render_config(roles=("validator", "worker")))
    assert NodeConfig.load(plain).worker.runtime == AUTO
    assert 'runtime = "auto"' in str(config_module.__doc__)  # the documented example
    monkeypatch.setenv(DEFAULT_ENV, RUNC)
    assert NodeConfig.load(plain).worker.runtime == RUNC
    assert NodeConfig.load(config_with(tmp_path, RUNSC)).worker.runtime == RUNSC
    monkeypatch.setenv(DEFAULT_ENV, "gvisor")
    with pytest.raises(BadRuntime, match=r"\$LC_WORKER_RUNTIME 'gvisor' is not one of "
                                         r"auto, runsc, runc"):
        WorkerPolicy()
    monkeypatch.delenv(DEFAULT_ENV)
    with pytest.raises(ConfigError, match=r"\[worker\] runtime = 'gvisor' is not a valid "
                                          r"choice \(auto, runsc, runc\)"):
        NodeConfig.load(config_with(tmp_path, "gvisor"))


class _Engine:
    """An engine that answers ``docker info`` and nothing else: the worker must stop there."""

    def __init__(self, runtimes: tuple[str, ...]) -> None:
        self.runtimes = runtimes

    def info(self) -> dict[str, Any]:
        return {"Runtimes": {name: {"path": name} for name in self.runtimes}}


async def test_job_runtime_2_a_worker_told_runsc_refuses_to_start_on_an_engine_without_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker_module, "connect", lambda: _Engine((RUNC,)))
    genesis, keys = make_genesis(validators=1)
    node = SoloNode(genesis, keys["v0"], tmp_path / "node", block_interval=3600.0)
    await node.start()
    try:
        worker = Worker(node, WorkerPolicy(runtime=RUNSC))
        with pytest.raises(RuntimeUnavailable) as caught:
            await worker.start()
    finally:
        await node.stop()
    assert "[worker] runtime = 'runsc' but the Docker engine has no 'runsc' runtime " \
           "(registered: runc)" in str(caught.value)
    assert worker._runner is None  # nothing was started


async def test_job_runtime_1_the_worker_says_at_start_when_jobs_share_the_kernel(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
        ) -> None:
    """``auto`` on an engine without runsc: runc, with a warning; the runner gets runc."""
    class Stop(Exception):
        pass

    def stop_after_runtime(*_args: Any) -> Any:
        raise Stop  # the GPU probe comes right after the runner is made

    monkeypatch.setattr(worker_module, "connect", lambda: _Engine((RUNC,)))
    monkeypatch.setattr(worker_module.gpus, "probe_offer", stop_after_runtime)
    genesis, keys = make_genesis(validators=1)
    node = SoloNode(genesis, keys["v0"], tmp_path / "node", block_interval=3600.0)
    await node.start()
    caplog.set_level(logging.INFO, logger="learningchain.worker")
    try:
        worker = Worker(node, WorkerPolicy(runtime=AUTO))
        with pytest.raises(Stop):
            await worker.start()
    finally:
        await node.stop()
    assert worker.runner.runtime == RUNC
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("jobs run under plain runc and share this host's kernel" in r.getMessage()
               for r in warned)


async def test_job_runtime_2_node_start_exits_1_naming_the_missing_runtime(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
        ) -> None:
    """A whole node (``node start``'s ``run_node``) with ``runtime = "runsc"`` on an engine
    without it: exit code 1 and one error line saying why, not a traceback."""
    monkeypatch.setattr(worker_module, "connect", lambda: _Engine((RUNC,)))
    layout = json.loads(run(["network", "create", "--out", str(tmp_path / "net"),
                             "--validators", "1", "--workers", "1", "--json",
                             "--base-port", str(free_base_port(1))]).stdout)
    path = Path(layout["nodes"][0]["config"])
    text = path.read_text()
    assert "[worker]" not in text, text  # the defaults, so the table is added
    path.write_text(text + '\n[worker]\nruntime = "runsc"\n')
    config = NodeConfig.load(path)
    assert config.is_worker and config.worker.runtime == RUNSC
    caplog.set_level(logging.ERROR, logger="learningchain.node")
    assert await run_node(config) == 1
    [line] = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert line.startswith("node not started: [worker] runtime = 'runsc' but the Docker engine "
                           "has no 'runsc' runtime"), line


async def test_job_runtime_1_federated_local_runs_use_the_configured_runtime(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
        ) -> None:
    """``federated join`` hands the node's ``[worker] runtime`` to its local trainer
    [JOB-FED.1]: ``auto`` on an engine with runsc is runsc (and says so), ``runsc`` on one
    without it is refused before anything runs, as a worker's start is [JOB-RUNTIME.2]."""
    genesis, keys = make_genesis(validators=1)
    node = SoloNode(genesis, keys["v0"], tmp_path / "node", block_interval=3600.0)
    await node.start()
    caplog.set_level(logging.INFO, logger="learningchain.federated")
    try:
        monkeypatch.setattr(fed_node_loop, "connect", lambda: _Engine((RUNC, RUNSC)))
        trainer = fed_node_loop.SandboxTrainer(node, b"\x07" * 32, job_spec(), tmp_path, {},
                                               on_done=lambda: None, runtime=AUTO)
        assert trainer.runner.runtime == RUNSC
        assert any("jobs run under gVisor (runtime runsc" in r.getMessage()
                   for r in caplog.records)
        monkeypatch.setattr(fed_node_loop, "connect", lambda: _Engine((RUNC,)))
        with pytest.raises(RuntimeUnavailable, match="'runsc' but the Docker engine has no"):
            fed_node_loop.SandboxTrainer(node, b"\x07" * 32, job_spec(), tmp_path, {},
                                         on_done=lambda: None, runtime=RUNSC)
    finally:
        await node.stop()


def test_job_runtime_1_a_devnet_writes_the_workers_runtime(tmp_path: Path) -> None:
    """``create_network(worker_runtime=)`` (``network create`` / ``devnet up --runtime``,
    and the demo) writes ``[worker] runtime`` on every worker and nowhere else; a node's own
    ``worker_settings`` win; a name outside the three is refused before anything is written."""
    layout = create_network(tmp_path / "net", validators=3, workers=2, worker_nodes=1,
                            base_port=free_base_port(4), worker_runtime=RUNSC,
                            worker_settings={1: {"runtime": RUNC, "max_attempts": 1}})
    loaded = [NodeConfig.load(node.config) for node in layout.nodes]
    assert [c.is_worker for c in loaded] == [True, True, False, True]
    unwritten = default()  # $LC_WORKER_RUNTIME's, so LC_WORKER_RUNTIME=auto make test holds
    assert [c.worker.runtime for c in loaded] == [RUNSC, RUNC, unwritten, RUNSC]
    assert "runtime" not in layout.nodes[2].config.read_text()  # not a worker: untouched
    assert loaded[1].worker.max_attempts == 1
    with pytest.raises(ValueError, match="runtime 'gvisor' is not one of auto, runsc, runc"):
        create_network(tmp_path / "other", validators=1, worker_runtime="gvisor")
    assert not (tmp_path / "other").exists()


def test_job_runtime_1_network_create_takes_the_runtime(tmp_path: Path) -> None:
    made = json.loads(run(["network", "create", "--out", str(tmp_path / "net"),
                           "--validators", "2", "--workers", "1", "--runtime", AUTO, "--json",
                           "--base-port", str(free_base_port(2))]).stdout)
    runtimes = [NodeConfig.load(Path(n["config"])).worker.runtime for n in made["nodes"]]
    assert runtimes == [AUTO, default()]  # node1 is no worker: the default, unwritten
    refused = run(["network", "create", "--out", str(tmp_path / "bad"), "--runtime", "kata"],
                  code=2)
    assert "'kata' is not one of 'auto', 'runsc', 'runc'" in refused.stderr


@pytest.mark.parametrize("configured, engine, says", [
    (AUTO, (RUNC, RUNSC), "jobs run under gVisor (runtime runsc, platform "),
    (AUTO, (RUNC,), "(the engine has no runsc runtime); install gVisor with `make setup`"),
    (RUNC, (RUNC, RUNSC), '([worker] runtime = "runc"); set it to "auto" to use gVisor'),
])
def test_job_runtime_1_the_start_line_says_why_and_what_to_do(
        configured: str, engine: tuple[str, ...], says: str) -> None:
    """The node's start line [JOB-RUNTIME.1]: plain runc because the config says so is not
    told to install what is installed."""
    assert says in choose(configured, _Engine(engine).info()).describe()


async def _start_on_graph(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, graph: str,
                          engine: tuple[str, ...], configured: str) -> Worker:
    """A worker whose config says ``configured`` on a graph whose genesis names ``graph``,
    started until its runner is made (the GPU probe comes right after)."""
    class Stop(Exception):
        pass

    def stop(*_args: Any) -> Any:
        raise Stop

    monkeypatch.setattr(worker_module, "connect", lambda: _Engine(engine))
    monkeypatch.setattr(worker_module.gpus, "probe_offer", stop)
    genesis, keys = make_genesis(validators=1)
    node = SoloNode(dataclasses.replace(genesis, eval_runtime=graph), keys["v0"],
                    tmp_path / "node", block_interval=3600.0)
    await node.start()
    try:
        worker = Worker(node, WorkerPolicy(runtime=configured))
        with pytest.raises(Stop):
            await worker.start()
    finally:
        await node.stop()
    return worker


@pytest.mark.parametrize("graph, configured", [(RUNSC, RUNC), (RUNSC, AUTO), (RUNC, RUNSC)])
async def test_job_runtime_13_every_evaluation_runs_under_the_graphs_runtime(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, graph: str, configured: str) -> None:
    """[JOB-RUNTIME.13] Training runs under the worker's own runtime; every evaluation
    (self-checks, votes) under the one the genesis names, whatever the worker's config."""
    worker = await _start_on_graph(tmp_path, monkeypatch, graph, (RUNC, RUNSC), configured)
    assert worker.runner.runtime == (RUNSC if configured == AUTO else configured)
    assert worker.runner.eval_runtime == graph


async def test_job_runtime_13_a_worker_whose_engine_lacks_the_graphs_runtime_refuses(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """[JOB-RUNTIME.13] A graph naming runsc, an engine without it: the worker does not start
    (it could neither self-check nor vote as the others do), and says why and what to do."""
    with pytest.raises(GraphRuntimeUnavailable) as caught:
        await _start_on_graph(tmp_path, monkeypatch, RUNSC, (RUNC,), RUNC)
    assert "the graph's genesis names eval_runtime 'runsc'" in str(caught.value)
    assert "(registered: runc) (install gVisor with `make setup`)" in str(caught.value)


async def test_job_runtime_13_a_genesis_naming_no_runtime_keeps_the_nodes_own(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
        ) -> None:
    """[JOB-RUNTIME.13] A genesis made before issue 47 names none: each node evaluates under
    its own runtime, with a warning that members may then measure different losses."""
    caplog.set_level(logging.INFO, logger="learningchain.worker")
    worker = await _start_on_graph(tmp_path, monkeypatch, "", (RUNC, RUNSC), RUNC)
    assert worker.runner.eval_runtime == RUNC
    assert any("names no eval_runtime" in r.getMessage() for r in caplog.records
               if r.levelno == logging.WARNING)


@pytest.mark.parametrize("worker_runtime, named", [(RUNSC, RUNSC), (RUNC, RUNC)])
def test_genesis_runtime_1_a_new_graph_names_its_runtime(
        tmp_path: Path, worker_runtime: str, named: str) -> None:
    """[GENESIS-RUNTIME.1] ``network create`` / ``devnet up`` write the workers' runtime into
    the genesis (``--eval-runtime`` chooses another); it is hashed, and a bad name refused."""
    layout = create_network(tmp_path / "net", validators=1, workers=1,
                            base_port=free_base_port(1), worker_runtime=worker_runtime)
    genesis = Genesis.load(layout.genesis)
    assert genesis.eval_runtime == named
    doc = _runtime_only(genesis)
    genesis = Genesis.from_json(doc)
    other = Genesis.from_json({**doc, "eval_runtime": RUNC if named == RUNSC else RUNSC})
    legacy = Genesis.from_json({k: v for k, v in doc.items() if k != "eval_runtime"})
    assert len({genesis.hash, other.hash, legacy.hash}) == 3
    assert legacy.eval_runtime == "" and legacy.hashed_form() == genesis.hashed_form()[:-1]
    with pytest.raises(InvalidGenesis, match=r"eval_runtime must be one of runsc, runc"):
        Genesis.from_json({**doc, "eval_runtime": "kata"})
    made = json.loads(run(["network", "create", "--out", str(tmp_path / "cli"),
                           "--validators", "1", "--runtime", RUNC, "--eval-runtime", RUNSC,
                           "--json", "--base-port", str(free_base_port(1))]).stdout)
    assert Genesis.load(Path(made["genesis"])).eval_runtime == RUNSC


def _runtime_only(genesis: Genesis) -> dict[str, Any]:
    """The document without what the suite's graphs add beside the runtime (the pacing of
    tests/conftest.py [CONS-PACE.3], the newest protocol version [GENESIS-VERSION.1])."""
    return {k: v for k, v in genesis.to_json().items()
            if k not in ("consensus_timing", "protocol_version")}


def test_genesis_timing_1_the_genesis_sets_the_consensus_time_bounds(tmp_path: Path) -> None:
    """[GENESIS-TIMING.1] [GENESIS-RULES.1] ``consensus_timing`` names [CONS-TIME.2]'s bounds:
    hashed in the node-rules map (with ``eval_runtime``), defaults where unnamed, anything
    else refused; an empty object names none and hashes as a genesis without it."""
    layout = create_network(tmp_path / "net", validators=1, base_port=free_base_port(1),
                            worker_runtime=RUNC, workers=1)
    doc = _runtime_only(Genesis.load(layout.genesis))
    timed = Genesis.from_json({**doc, "consensus_timing": {"clock_precision_ms": 30_000}})
    assert timed.timing("clock_precision_ms", 1) == 30_000
    assert timed.timing("message_delay_ms", 15_000) == 15_000
    assert timed.hashed_form()[-1] == {"eval_runtime": RUNC,
                                       "consensus_timing": {"clock_precision_ms": 30_000}}
    assert Genesis.from_json(timed.to_json()).hash == timed.hash
    plain = Genesis.from_json({**doc, "consensus_timing": {}})
    assert plain.hash == Genesis.from_json(doc).hash != timed.hash
    for bad in ({"precision": 1}, {"message_delay_ms": -1}, {"message_delay_ms": True}, []):
        with pytest.raises(InvalidGenesis, match=r"GENESIS-TIMING.1"):
            Genesis.from_json({**doc, "consensus_timing": bad})
