"""A stop that comes while a node starts is a clean stop, not a start-up fault.

Found in a CI run of ``tests/client/test_readme_join.py``: the test's SIGTERM to the
node's process group, sent the moment the newcomer had synced, also killed the C compiler
building the job launcher (a fresh HOME has none cached), and the node exited 1 with
"building the job launcher failed ... (static libc: apt-get install libc6-dev)". A user's
Ctrl-C reaches the whole foreground group the same way. Now the compiler runs in a session
of its own, and ``run_node`` exits 0 when a start-up step failed after a stop signal.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import client.worker.worker as worker_module
from client.node.config import NodeConfig
from client.node.ledger_node import run_node
from sandbox import launcher
from sandbox.runtime import RUNC, RUNSC
from tests.client.cli.test_cli_chain import run
from tests.client.worker.test_worker_runtime import _Engine
from tests.framework.ports import free_base_port


def _worker_config(tmp_path: Path) -> NodeConfig:
    layout = json.loads(run(["network", "create", "--out", str(tmp_path / "net"),
                             "--validators", "1", "--workers", "1", "--json",
                             "--base-port", str(free_base_port(1))]).stdout)
    path = Path(layout["nodes"][0]["config"])
    path.write_text(path.read_text() + '\n[worker]\nruntime = "runc"\n')
    config = NodeConfig.load(path)
    assert config.is_worker
    return config


def _launcher_killed(signalled: bool) -> Any:
    """``launcher.folder`` as it fails when its compiler is killed, after (``signalled``)
    the node's own process got SIGTERM, as a group signal delivers both."""
    def folder() -> Path:
        if signalled:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.5)  # this runs in a thread: the node's loop takes the signal
        raise launcher.LauncherUnavailable("building the job launcher failed: killed")
    return folder


@pytest.mark.parametrize("signalled", [True, False])
async def test_a_start_cut_short_by_sigterm_exits_0_and_a_real_fault_exits_1(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        signalled: bool) -> None:
    monkeypatch.setattr(worker_module, "connect", lambda: _Engine((RUNC, RUNSC)))
    monkeypatch.setattr(launcher, "folder", _launcher_killed(signalled))
    caplog.set_level(logging.INFO, logger="learningchain.node")
    code = await run_node(_worker_config(tmp_path))
    lines = [(r.levelno, r.getMessage()) for r in caplog.records
             if r.name == "learningchain.node"]
    if signalled:
        assert code == 0
        assert any(text.startswith("node stopped while starting (a stop signal cut short: "
                                   "building the job launcher failed")
                   for _, text in lines), lines
        assert not [text for level, text in lines if level >= logging.ERROR], lines
    else:
        assert code == 1
        errors = [text for level, text in lines if level >= logging.ERROR]
        assert errors == ["node not started: building the job launcher failed: killed"], lines


def test_the_launcher_compiler_runs_in_a_session_of_its_own(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A signal to the node's process group does not reach the compiler."""
    seen = tmp_path / "sid"
    compiler = tmp_path / "cc"
    compiler.write_text(f"#!{sys.executable}\nimport os\n"
                        f"open({str(seen)!r}, 'w').write(str(os.getsid(0)))\n")
    compiler.chmod(0o755)
    monkeypatch.setattr(launcher.shutil, "which", lambda _name: str(compiler))
    launcher._compile(["-o", str(tmp_path / "out")])
    assert int(seen.read_text()) != os.getsid(0)
