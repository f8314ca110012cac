"""The test framework's own rules: waits scale and say what failed, ports are free and
never handed out twice, seeds re-run the same choices, the host engine check sees a change."""

from __future__ import annotations

import itertools
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.framework import host_engine, seed
from tests.framework.ports import (
    LOWEST_PORT,
    ephemeral_low,
    free_base_port,
    free_port,
    free_ports,
)
from tests.framework.wait import WaitTimeout, scaled, wait_until, wait_until_async

REPO = Path(__file__).resolve().parents[2]


def test_wait_until_returns_the_first_truthy_value() -> None:
    values = iter([None, 0, "", "ready"])
    assert wait_until(lambda: next(values), timeout=5, step=0) == "ready"


def test_wait_until_names_what_it_waited_for_and_the_detail(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LC_TIMEOUT_FACTOR", "0.5")
    started = time.monotonic()
    with pytest.raises(WaitTimeout) as failure:
        wait_until(lambda: False, timeout=0.4, what="the moon", detail=lambda: "still night")
    assert time.monotonic() - started < 0.4  # 0.4 s x 0.5
    assert "waiting for the moon (LC_TIMEOUT_FACTOR=0.5); still night" in str(failure.value)


def test_wait_until_without_what_quotes_the_predicate() -> None:
    with pytest.raises(WaitTimeout, match=r"1 \+ 1 == 3"):
        wait_until(lambda: 1 + 1 == 3, timeout=0.05)


def test_timeout_factor_scales_and_rejects_nonsense(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LC_TIMEOUT_FACTOR", "3")
    assert scaled(10) == 30
    monkeypatch.setenv("LC_TIMEOUT_FACTOR", "-1")
    with pytest.raises(ValueError, match="must be positive"):
        scaled(1)


async def test_wait_until_async_lets_the_loop_run() -> None:
    import asyncio

    done = asyncio.Event()
    asyncio.get_running_loop().call_later(0.05, done.set)
    assert await wait_until_async(done.is_set, timeout=5, what="the timer")


def test_free_ports_are_bindable_and_never_repeated() -> None:
    ports = [*free_ports(20), free_port()]
    assert len(set(ports)) == len(ports)
    for port in ports:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


def test_free_base_port_leaves_room_for_the_devnet_layout() -> None:
    base = free_base_port(4)
    for port in [base + i for i in range(4)] + [base + 100 + i for i in range(4)]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))
    assert free_base_port(4) != base


def test_ports_are_drawn_below_the_ephemeral_range(tmp_path: Path) -> None:
    """Outgoing connections take local ports from the kernel's ephemeral range; a port
    handed to a node started later must not be one of them (two graph runs failed with
    "address already in use" on 46540 and 52128)."""
    low = ephemeral_low()
    assert low > LOWEST_PORT
    assert all(LOWEST_PORT <= p < low for p in free_ports(50))
    base = free_base_port(10)
    assert base >= LOWEST_PORT and base + 100 + 10 <= low
    assert ephemeral_low(tmp_path / "missing") == 32768
    (tmp_path / "range").write_text("40000\t60999\n")
    assert ephemeral_low(tmp_path / "range") == 40000
    (tmp_path / "range").write_text("1024 60999\n")  # a range starting too low: the default
    assert ephemeral_low(tmp_path / "range") == 32768


def test_every_case_has_a_seed_that_reproduces_its_choices(lc_seed: int) -> None:
    assert seed.current_seed() == lc_seed
    first = [random.random(), seed.rng("a").random(), seed.rng("b").random()]
    seed.begin_case(lc_seed)
    assert [random.random(), seed.rng("a").random(), seed.rng("b").random()] == first
    assert first[1] != first[2]  # one generator per label


def test_lc_seed_chooses_the_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LC_SEED", "0x2a")
    assert seed.choose_seed() == 42
    monkeypatch.delenv("LC_SEED")
    assert 0 <= seed.choose_seed() < 2**32


def test_host_engine_check_sees_a_restart_and_a_removed_container() -> None:
    before = host_engine.HostEngine(host_engine.Process(100, 5),
                                    {"c1": ("running", "t1"), "c2": ("exited", "t0")})
    same = host_engine.HostEngine(host_engine.Process(100, 5),
                                  {"c1": ("running", "t1"), "c2": ("exited", "t0"),
                                   "new": ("running", "t9")})
    assert host_engine.changes(before, same) == []
    restarted = host_engine.HostEngine(host_engine.Process(100, 7), {"c1": ("running", "t2")})
    found = host_engine.changes(before, restarted)
    assert any("dockerd changed" in f for f in found)
    assert any("c1 changed" in f for f in found) and any("c2 was removed" in f for f in found)
    assert host_engine.changes(before, None) == ["the host dockerd (pid 100) is gone"]


def test_each_xdist_worker_draws_ports_from_its_own_share(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """make test's processes (3 by default, LC_TEST_PROCESSES) each keep their own record of
    ports handed out: their shares of the range must not overlap, or one could hand out a
    port another just checked."""
    from tests.framework.ports import _worker_slice

    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    assert _worker_slice(10_000, 32_768) == (10_000, 32_768)
    for count in (2, 3, 4):
        monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", str(count))
        shares = []
        for index in range(count):
            monkeypatch.setenv("PYTEST_XDIST_WORKER", f"gw{index}")
            shares.append(_worker_slice(10_000, 32_768))
        assert shares[0][0] == 10_000 and shares[-1][1] <= 32_768, shares
        for (_, high), (next_low, _) in itertools.pairwise(shares):
            assert high <= next_low, shares
        assert all(high - low > 5_000 for low, high in shares), shares
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")
    low1, high1 = shares[1]
    ports = free_ports(20)
    assert all(low1 <= port < high1 for port in ports), ports


def repeat_tests_module() -> Any:
    """scripts/repeat_tests.py, loaded as a module (scripts/ is no package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "repeat_tests", Path(__file__).parents[2] / "scripts" / "repeat_tests.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_repeat_report_names_each_failure_with_the_line_that_reruns_it(
        tmp_path: Path) -> None:
    """scripts/repeat_tests.py reads pytest's junit report: a failure carries its seed line."""
    module = repeat_tests_module()
    junit = tmp_path / "run.xml"
    junit.write_text(
        '<testsuites><testsuite name="pytest" tests="2">'
        '<testcase classname="tests.a" name="test_ok" time="0.1"/>'
        '<testcase classname="tests.b" name="test_bad" time="0.2">'
        '<failure message="AssertionError: 1 == 2&#10;more">trace</failure>'
        "<system-out>seed: LC_SEED=42 pytest 'tests/b.py::test_bad'</system-out>"
        "</testcase></testsuite></testsuites>")
    assert module.failures_in(junit) == [{
        "test": "tests.b::test_bad", "error": "AssertionError: 1 == 2",
        "rerun": "LC_SEED=42 pytest 'tests/b.py::test_bad'"}]
    assert module.failures_in(tmp_path / "missing.xml")[0]["test"] == "(no report)"


def test_repeat_report_says_what_ran_beside_a_failure(tmp_path: Path) -> None:
    """A failure's report names the modules another xdist process ran while it ran, with
    the seconds they overlapped it (tests/conftest.py records each case's start and
    process); its own process and cases that ended before it are left out."""
    module = repeat_tests_module()

    def case(classname: str, started: float, seconds: float, worker: str,
             failed: bool = False) -> str:
        props = (f'<properties><property name="started" value="{started}"/>'
                 f'<property name="worker" value="{worker}"/></properties>')
        failure = '<failure message="AssertionError: late">trace</failure>' if failed else ""
        return (f'<testcase classname="{classname}" name="t" time="{seconds}">{props}'
                f"{failure}</testcase>")

    junit = tmp_path / "run.xml"
    junit.write_text(
        "<testsuites><testsuite>"
        + case("tests.demo", 100.0, 200.0, "gw0", failed=True)
        + case("tests.mine", 310.0, 5.0, "gw0")           # its own process: not beside it
        + case("tests.early", 10.0, 50.0, "gw1")          # ended before it began
        + case("tests.bench", 50.0, 100.0, "gw1")         # 50 s of overlap
        + case("tests.worker", 150.0, 30.0, "gw1")        # 30 s
        + case("tests.worker", 250.0, 100.0, "gw1")       # 50 s more: 80 s in all
        + "</testsuite></testsuites>")
    [failure] = module.failures_in(junit)
    assert failure["beside"] == "tests.worker 80 s, tests.bench 50 s"


def test_repeat_report_gives_each_run_its_time_per_phase(tmp_path: Path) -> None:
    """The graph stories' summed time (cases tests/conftest.py marks ``unit``
    ``graph-stories``), the rest's, and when each process ended after the run's start."""
    module = repeat_tests_module()

    def case(started: float, seconds: float, worker: str, story: bool) -> str:
        unit = '<property name="unit" value="graph-stories"/>' if story else ""
        return (f'<testcase classname="tests.x" name="t" time="{seconds}"><properties>'
                f'<property name="started" value="{started}"/>'
                f'<property name="worker" value="{worker}"/>{unit}</properties></testcase>')

    junit = tmp_path / "run.xml"
    junit.write_text("<testsuites><testsuite>"
                     + case(1000.0, 150.0, "gw0", story=True)
                     + case(1150.0, 100.0, "gw0", story=True)
                     + case(1000.5, 40.0, "gw1", story=False)
                     + case(1041.0, 200.0, "gw1", story=False)
                     + "</testsuite></testsuites>")
    assert module.phases(junit) == {"graph_stories_s": 250, "rest_s": 240,
                                    "process_end_s": {"gw0": 250, "gw1": 241}}
    assert module.phases(tmp_path / "missing.xml") == {}
    text = module._phase_text(module.phases(junit))
    assert "graph stories 250 s, the rest 240 s" in text and "gw1 241 s" in text


def test_graph_story_cases_say_so_in_their_report(tmp_path: Path) -> None:
    """tests/conftest.py gives the cases of a GRAPH_STORIES entry the ``unit`` property,
    and no other case, which the repeat's time per phase reads (a real collection of a
    story module, a module with one story case, and a module with none)."""
    (tmp_path / "show_units.py").write_text(
        "def pytest_collection_finish(session):\n"
        "    for item in session.items:\n"
        "        print('UNIT', item.nodeid, dict(item.user_properties).get('unit'))\n")
    repo = Path(__file__).parents[2]
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "-p", "show_units", "-m", "", "tests/client/test_e2e_demo.py",
         "tests/test_bench_quick.py"],
        cwd=repo, env={**os.environ, "PYTHONPATH": str(tmp_path)}, capture_output=True,
        text=True, timeout=120, check=False).stdout
    units = dict(line.split()[1:3] for line in out.splitlines() if line.startswith("UNIT "))
    predict = "tests/test_bench_quick.py::test_bench_runs_quick_and_prints_its_keys[predict]"
    demo = [nodeid for nodeid in units if nodeid.startswith("tests/client/test_e2e_demo.py")]
    assert demo and all(units[nodeid] == "graph-stories" for nodeid in demo), out
    assert units.get(predict) == "graph-stories", out
    others = [n for n in units if n.startswith("tests/test_bench_quick.py") and n != predict]
    assert others and all(units[n] == "None" for n in others), out


def test_repeat_stopped_by_kill_in_the_background_reports_and_leaves_no_pytest(
        tmp_path: Path) -> None:
    """``pkill -f repeat_tests.py`` (SIGTERM) on a run started with SIGINT ignored (as
    ``nohup make test-repeat &`` starts it) ends in the report, after the run's pytest got
    its own Ctrl-C and exited (its fixtures tear down), not in a next run: it did once,
    and left a bench's node processes and test bed behind."""
    import signal
    import subprocess
    import sys
    import time

    (tmp_path / "test_sleeps.py").write_text(
        "import pathlib, time\n"
        "def test_sleeps():\n"
        f"    pathlib.Path({str(tmp_path / 'started')!r}).write_text('x')\n"
        "    time.sleep(120)\n")
    script = Path(__file__).parents[2] / "scripts" / "repeat_tests.py"
    proc = subprocess.Popen(
        [sys.executable, str(script), "--runs", "3", "-m", "not nothing", "--",
         "-p", "no:cacheprovider", "--rootdir", str(tmp_path), str(tmp_path)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "started").exists():
            assert time.monotonic() < deadline and proc.poll() is None, "the test never ran"
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "== stopped during run 1" in out, out
    assert "== run 2 of 3" not in out, out
    assert out.strip().splitlines()[-1] == \
        '{"runs": 0, "failures": 0, "seconds_per_run": [], "phases_per_run": []}', out
    leftover = subprocess.run(["pgrep", "-f", f"pytest.*{tmp_path}"], capture_output=True,
                              text=True, check=False).stdout
    assert not leftover.strip(), leftover


def test_xdist_keeps_the_collection_order_heaviest_first(request: pytest.FixtureRequest) -> None:
    """pyproject's addopts turn off pytest-xdist's reordering of work units by test count,
    so ``--dist loadgroup`` hands them out in tests/conftest.py's order. With it on, CI run
    6 of 2026-11-25 started the one-test graph stories last, side by side, after the 2,300
    pure tests."""
    assert request.config.getoption("loadscopereorder") is False


def test_graph_stories_are_one_unit_of_xdist_work(tmp_path: Path) -> None:
    """tests/framework/scheduling.py under a real ``pytest -n 2 --dist loadfile``: the
    stories (a module, and one case of another module) run in one process, one after
    another, each other module whole in one process. Run in a folder of its own whose
    conftest names its stories, as tests/conftest.py names ours."""
    from tests.framework.scheduling import GRAPH_GROUP, unit_of

    assert unit_of("tests/a.py::test_x[1]", {"tests/a.py"}) == GRAPH_GROUP
    assert unit_of("tests/b.py::test_y[k]", {"tests/b.py::test_y[k]"}) == GRAPH_GROUP
    assert unit_of("tests/b.py::test_y[j]", {"tests/b.py::test_y[k]"}) == "tests/b.py"
    (tmp_path / "conftest.py").write_text(
        "from tests.framework.scheduling import StoriesTogetherScheduling\n"
        "STORIES = ('test_story.py', 'test_mixed.py::test_case[3]')\n"
        "def pytest_xdist_make_scheduler(config, log):\n"
        "    return StoriesTogetherScheduling(config, log, STORIES)\n")
    case = ("import time, pytest\n@pytest.mark.parametrize('i', range(6))\n"
            "def test_case(i):\n    time.sleep(0.05)\n")
    for name in ("story", "mixed", "plain", "other"):
        (tmp_path / f"test_{name}.py").write_text(case)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "2", "--dist",
         "loadfile", "-v", "--rootdir", str(tmp_path), "-c", "/dev/null", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "scheduling tests via StoriesTogetherScheduling" in done.stdout, done.stdout
    ran = [line.split() for line in done.stdout.splitlines() if line.startswith("[gw")]
    worker = {words[-1]: words[0] for words in ran}
    assert len(worker) == 24, done.stdout
    stories = {worker["test_mixed.py::test_case[3]"]} | {
        worker[f"test_story.py::test_case[{i}]"] for i in range(6)}
    assert len(stories) == 1, done.stdout
    for name in ("plain", "other"):
        assert len({worker[f"test_{name}.py::test_case[{i}]"] for i in range(6)}) == 1
    assert len({worker[f"test_mixed.py::test_case[{i}]"] for i in (0, 1, 2, 4, 5)}) == 1


def test_the_readme_graphs_ports_are_never_handed_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's ``devnet up`` (run as written, on its default ports, by
    tests/client/test_readme_use_it.py) takes ports no draw of any test process may hand out:
    with 3 processes a draw of another process's share took 26600 in make test-repeat."""
    import re

    from client.devnet.network import API_PORT_OFFSET, DEFAULT_BASE_PORT
    from tests.framework import ports

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    line = re.search(r"^learningchain devnet up (.*)$", readme, re.MULTILINE)
    assert line is not None and "--base-port" not in line.group(1), "README: no devnet up line"
    counts = {flag: int(n) for flag, n in re.findall(r"--(validators|workers) (\d+)",
                                                       line.group(1))}
    nodes = counts["validators"] + counts["workers"]
    taken = {DEFAULT_BASE_PORT + offset + node
             for offset in (0, API_PORT_OFFSET) for node in range(nodes)}
    assert taken <= ports.README_PORTS, sorted(taken - ports.README_PORTS)
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "1")
    monkeypatch.setattr(ports, "_worker_slice", lambda low, high: (26_500, 26_900))
    monkeypatch.setattr(ports, "_handed_out", set(ports.README_PORTS))
    drawn = {port for _ in range(5) for port in ports.free_ports(20)}
    drawn.update(ports.free_base_port(1) for _ in range(10))
    assert len(drawn) == 110, len(drawn)
    assert not drawn & taken, sorted(drawn & taken)
