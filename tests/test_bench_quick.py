"""Every bench runs to its end in quick mode and prints its documented last line (issue 29).

``make bench`` runs each ``bench/*.py``; a bench that only runs there rots (bench/consensus.py
crashed for weeks after the simulator changed). So each one found by the glob, a new one
included, runs here as a subprocess with ``--quick`` (small sizes, few repetitions) and must

- exit 0;
- print a human-readable line or more, then as its last line one JSON object whose keys
  are exactly the script's ``JSON_KEYS`` (a module-level tuple of strings; the script's
  ``bench.support.cli.emit`` checks the same keys in a full run).

Each script also says ``NEEDS_DOCKER``: ``True`` when it uses the Docker engine, starts
node processes or the host test bed (root, namespaces: bench/hosts.py); those cases are
marked ``docker`` (CI runs them in the engine lane, never beside the pure tests), and
must leave no test bed or private engine behind (``left_by``). The others run
in one process with ports the kernel picks and files in their own temp dirs, so they may
run in parallel under pytest-xdist. Nothing here asserts a timing: quick figures mean
little, only their presence and shape are checked. The subprocess timeouts only bound a
hang (times ``LC_TIMEOUT_FACTOR``).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.support.cli import QUICK_ENV, KeysMismatch, emit, parse_args, quick_requested
from tests.framework.wait import scaled

REPO = Path(__file__).resolve().parents[1]
BENCH_DIR = REPO / "bench"
SCRIPTS = sorted(BENCH_DIR.glob("*.py"))
PURE_TIMEOUT_S = 180.0
DOCKER_TIMEOUT_S = 1200.0


def declarations(path: Path) -> dict[str, Any]:
    """The module-level ``JSON_KEYS`` and ``NEEDS_DOCKER`` of a bench, read without importing
    it: literals, and tuples that unpack earlier module-level tuples (``*CKKS_KEYS``)."""
    try:
        tree = ast.parse(path.read_text(), filename=str(path))
    except SyntaxError:
        return {}
    names: dict[str, Any] = {}
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)):
            continue
        try:
            names[node.targets[0].id] = _value(node.value, names)
        except ValueError:
            continue
    return {key: names[key] for key in ("JSON_KEYS", "NEEDS_DOCKER") if key in names}


def _value(node: ast.expr, names: dict[str, Any]) -> Any:
    if isinstance(node, ast.Tuple):
        out: list[Any] = []
        for element in node.elts:
            if isinstance(element, ast.Starred) and isinstance(element.value, ast.Name):
                if element.value.id not in names:
                    raise ValueError(element.value.id)
                out.extend(names[element.value.id])
            else:
                out.append(_value(element, names))
        return tuple(out)
    return ast.literal_eval(node)


def left_by(pid: int) -> list[str]:
    """Test beds (tests/hosts/testbed.py: ``/tmp/lctb-<id>``, whose namespaces go with them)
    and private Docker engines (tests/framework/dockerd.py: ``/tmp/lcd-<hex>``) that the
    process ``pid`` made and did not remove: each records its owner's pid and is removed
    by its owner's cleanup, so one found after the bench exited is a leak. (Not imported
    from those modules: this module's pure tests must not look like engine users.)"""
    found = []
    for pattern in ("lctb-*", "lcd-*"):
        for root in Path("/tmp").glob(pattern):
            with contextlib.suppress(OSError):
                if (root / "owner.pid").read_text().strip() == str(pid):
                    found.append(str(root))
    return found


def _param(path: Path) -> Any:
    marks = [pytest.mark.docker] if declarations(path).get("NEEDS_DOCKER") is True else []
    return pytest.param(path, id=path.stem, marks=marks)


def test_the_glob_finds_the_benches() -> None:
    """The parametrization below is not empty, and the benches' helpers are not in it."""
    stems = {path.stem for path in SCRIPTS}
    assert {"consensus", "ledger", "devnet"} <= stems, stems
    assert not stems & {"federated_private", "predict_jobs", "__init__"}, stems


def test_graph_benches_draw_their_ports_as_the_tests_do() -> None:
    """A bench that starts nodes takes its ports from ``tests.framework.ports`` (below the
    ephemeral range, and in its xdist process's share when ``make test`` runs it beside
    graph tests of the other process): bench/predict.py drew a base anywhere in 20000-40000
    and lost port 30250 to the other process's graph in a ``make test-repeat`` run."""
    drawing_their_own = [path.name for path in [*SCRIPTS, *BENCH_DIR.glob("support/*.py")]
                         if "suggest_base_port" in path.read_text()]
    assert not drawing_their_own, drawing_their_own


@pytest.mark.parametrize("script", [_param(path) for path in SCRIPTS])
def test_bench_runs_quick_and_prints_its_keys(script: Path, tmp_path: Path) -> None:
    found = declarations(script)
    keys = found.get("JSON_KEYS")
    assert isinstance(keys, tuple) and keys and all(isinstance(k, str) for k in keys), (
        f"{script.relative_to(REPO)}: no module-level JSON_KEYS (a tuple of the last line's "
        f"keys); found {found}")
    assert isinstance(found.get("NEEDS_DOCKER"), bool), (
        f"{script.relative_to(REPO)}: no module-level NEEDS_DOCKER = True/False")
    limit = scaled(DOCKER_TIMEOUT_S if found["NEEDS_DOCKER"] else PURE_TIMEOUT_S)
    env = {key: value for key, value in os.environ.items() if key != QUICK_ENV}
    proc = subprocess.Popen([sys.executable, str(script), "--quick"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
        raise AssertionError(f"{script.relative_to(REPO)} --quick still ran after {limit:.0f} "
                             f"s\nstdout tail:\n{stdout[-3000:]}\nstderr tail:\n"
                             f"{stderr[-8000:]}") from None
    where = (f"{script.relative_to(REPO)} --quick exited {proc.returncode}\n"
             f"stdout tail:\n{stdout[-3000:]}\nstderr tail:\n{stderr[-8000:]}")
    assert proc.returncode == 0, where
    assert not left_by(proc.pid), f"left behind: {left_by(proc.pid)}\n{where}"
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert len(lines) >= 2, f"no figures printed before the last line\n{where}"
    try:
        last = json.loads(lines[-1])
    except json.JSONDecodeError as e:
        raise AssertionError(f"last line is not JSON: {e}\n{where}") from None
    assert isinstance(last, dict), f"last line is not a JSON object: {lines[-1][:300]}"
    assert set(last) == set(keys), (
        f"{script.name}: keys missing {sorted(set(keys) - set(last))}, "
        f"not documented {sorted(set(last) - set(keys))}")
    assert len(keys) == len(set(keys)), f"{script.name}: JSON_KEYS repeats a key"


# -- bench/support/cli.py: the quick switch and the last line ---------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    return parser


def test_quick_flag_sets_quick_defaults_and_explicit_options_win(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(QUICK_ENV, raising=False)
    full = parse_args(_parser(), {"size": 10, "rounds": 1}, [])
    assert (full.size, full.rounds, full.quick) == (1000, 3, False)
    quick = parse_args(_parser(), {"size": 10, "rounds": 1}, ["--quick", "--rounds", "2"])
    assert (quick.size, quick.rounds, quick.quick) == (10, 2, True)


@pytest.mark.parametrize(("value", "quick"), [("1", True), ("yes", True), ("0", False),
                                              ("", False)])
def test_quick_env_switches_quick_mode(monkeypatch: pytest.MonkeyPatch, value: str,
                                       quick: bool) -> None:
    monkeypatch.setenv(QUICK_ENV, value)
    assert quick_requested([]) is quick
    assert parse_args(_parser(), {"size": 10}, []).size == (10 if quick else 1000)


def test_emit_prints_the_documented_keys_and_refuses_others(
        capsys: pytest.CaptureFixture[str]) -> None:
    emit({"b": 2, "a": 1}, ("a", "b"), sort_keys=True)
    assert capsys.readouterr().out == '{"a": 1, "b": 2}\n'
    with pytest.raises(KeysMismatch, match=r"missing \['b'\], not documented \['c'\]"):
        emit({"a": 1, "c": 3}, ("a", "b"))
    assert capsys.readouterr().out == ""
