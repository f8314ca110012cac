"""Shared fixtures. Every random choice comes from a logged seed; the host engine is guarded.

- ``lc_seed`` (autouse): each test case runs under one seed, ``LC_SEED`` or a fresh
  one, printed with its output; a failure ends with the line that re-runs it
  (``tests/framework/seed.py``).
- The host's Docker engine is fingerprinted when the session starts and
  compared when it ends (``tests/framework/host_engine.py``): a session that
  stopped the machine's dockerd or touched its owner's containers fails, even
  if every test passed.
- ``private_dockerd``: a Docker engine apart from the machine's, holding only the base
  image (``tests/framework/dockerd.py``), for tests that stop an engine or need a node
  with an engine of its own; one per session, reset for each test.
- The header shows ``LC_TIMEOUT_FACTOR`` (``tests/framework/wait.py``).
- ``make test`` runs the whole suite in 3 processes (pytest-xdist, ``--dist loadfile``;
  ``LC_TEST_PROCESSES`` for another count): a module's tests always run one after another
  in one process. The graph stories (``GRAPH_STORIES``) are one unit, run one after another
  by one process (``pytest_xdist_make_scheduler``); the other
  modules that start engines, graphs of node processes or browsers (marked ``docker``,
  ``postgres`` or ``serial`` here) go to the others, heaviest first (``HEAVIEST_FIRST``),
  and the pure tests fill the end of the run. Each case records its lane (``engine`` or
  ``pure``) for scripts/test_phases.sh's report, and when it started in which process, to
  read a failure against what ran beside it.
- ``LC_WORKER_RUNTIME`` is left as the caller set it, so the nodes, workers and demos the
  suite starts without naming a runtime get the node's own default, ``auto``: gVisor
  wherever runsc is installed, as on a user's machine. Since [JOB-MAPCACHE.1] that costs
  the whole run about 12 % (pytest 18 min 45 s against 16 min 42 s with
  ``LC_WORKER_RUNTIME=runc``, the engine lane's summed time 44 min 16 s against 38 min
  56 s; issue 51). ``LC_WORKER_RUNTIME=runc make test`` keeps every story on plain runc;
  the sandbox suite runs under both runtimes either way, and the stories that name one
  (the claimer on runsc with voters on runc, ``devnet up --runtime``) keep it.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from xdist.remote import Producer

from tests.framework import host_engine
from tests.framework import seed as seeds
from tests.framework.dockerd import PrivateDockerd
from tests.framework.engine_seed import file_lock
from tests.framework.scheduling import StoriesTogetherScheduling
from tests.framework.wait import TIMEOUT_FACTOR_ENV, timeout_factor

# [CONS-PACE.3] Test graphs rest at most 200 ms: their stories keep about the old pace while
# every height still goes through the rest check; the production default (300 s) is tested
# by tests/consensus/test_pacing_rules.py and tests/client/test_pacing_graph.py.
os.environ.setdefault("LC_EMPTY_BLOCK_INTERVAL_MS", "200")

SERIAL_MODULES = frozenset({
    "tests/client/test_devnet_processes.py",      # 4 node processes, SIGKILL and rejoin
    "tests/client/test_devnet_newcomer.py",       # devnet up/down of node processes
    "tests/framework/test_devnet_up.py",          # a node process, ports taken and drawn again
    "tests/client/test_pacing_graph.py",          # 4 node processes resting, then woken
    "tests/client/test_state_sync_graph.py",      # 4 node processes, one restored late
    "tests/client/dashboard/test_dashboard_browser.py",     # Chromium against a live node
    "tests/client/dashboard/test_dashboard_screenshot.py",
    "tests/reliability/test_faults.py",           # fault-injected graphs under load
    "tests/reliability/test_resource_faults.py",  # disk full, locked database
    "tests/ledger/test_storage.py",               # kill -9 during commits
    "tests/p2p/test_p2p_rules.py",                # node processes (p2p_harness)
    "tests/p2p/test_p2p_network.py",
    "tests/p2p/test_p2p_hostile.py",
    "tests/p2p/test_p2p_blob_transfer.py",
})
"""Modules that start node processes or measure behaviour under time: make test's serial
phase runs them one at a time, after the parallel phase."""

ENGINE_FIXTURES = frozenset({"private_dockerd", "shared_private_dockerd"})
"""A test that uses one of these starts a Docker engine of its own: it is a docker test."""

ENGINE_USE = re.compile(r"PrivateDockerd|docker_client|from sandbox\.engine import|"
                        r"private_dockerd|^import docker|^from docker", re.MULTILINE)
"""A module whose source reaches a Docker engine (its own fixtures, a private engine whose
orphans it sweeps, the SDK): its tests run in the serial phase, never beside each other."""

GRAPH_STORIES = (
    "tests/client/test_e2e_demo.py",
    "tests/client/test_readme_use_it.py",
    "tests/hosts/test_job_on_hosts.py",
    "tests/predict/test_predict_graph.py",
    "tests/test_bench_quick.py::test_bench_runs_quick_and_prints_its_keys[predict]",
    "tests/client/test_stalling_binaries_graph.py",
    "tests/client/test_hostile_submitter_graph.py",
    "tests/client/test_hostile_challenge_graph.py",
)
"""Graphs of node processes training a job whose claim window is sized from one attempt
timed at the story's start (``tests/framework/job_windows.py``), in this order. They form
one unit of xdist's work (``tests/framework/scheduling.py``): one process runs them one
after another while the other runs everything else. Two of them side by side stretched each
other's windows: in CI run 7 (4660edf, heaviest first) the demo took 416 s beside the
predict bench, 174 s in run 5."""

HEAVIEST_FIRST = (
    "tests/test_bench_quick.py",
    "tests/client/worker/test_worker.py",
    "tests/reliability/test_faults.py",
    "tests/federated/test_federated_join_node.py",
    "tests/client/worker/test_worker_holdout.py",
    "tests/client/worker/test_worker_resume.py",
    "tests/client/test_image_layers_docker.py",
    "tests/client/dashboard/test_dashboard_screenshot.py",
    "tests/client/test_job_visibility_docker.py",
    "tests/client/dashboard/test_dashboard_progress_browser.py",
    "tests/sandbox/test_template.py",
)
"""The longest modules of the engine lane, longest first (measured: a clean run's
``--durations``). xdist's ``loadfile`` hands units out in collection order, so starting
the long ones first keeps one of them from being the last thing running."""

SEED_KEY = pytest.StashKey[int]()
HOST_KEY = pytest.StashKey[host_engine.HostEngine | None]()


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [f"random seeds: one per test, re-run one with {seeds.SEED_ENV}=N "
            f"(N printed with each failure); {TIMEOUT_FACTOR_ENV}={timeout_factor():g}"]


POSTGRES_LOCK = Path("/tmp/lc-test-postgres.lock")


@pytest.fixture(autouse=True)
def postgres_one_at_a_time(request: pytest.FixtureRequest) -> Iterator[None]:
    """Cases marked ``postgres`` share one database (``lc_test``) and drop its tables, so
    they run one at a time across the xdist processes (a machine-wide lock). Two modules
    (test_storage_prune's and test_predict_ledger's PostgreSQL cases) once ran in the same
    second of a CI run: one's CREATE TABLE hit the other's (duplicate pg_type), the other
    reopened a ledger whose tables had been dropped under it."""
    if request.node.get_closest_marker("postgres") is None:
        yield
        return
    with file_lock(POSTGRES_LOCK):
        yield


@pytest.fixture(autouse=True)
def lc_seed(request: pytest.FixtureRequest) -> Iterator[int]:
    """This case's seed: every random choice of the test and its helpers derives from it.

    Named ``lc_seed`` because several suites parametrize a ``seed`` of their own (fixed
    scenario seeds, shown in the test id); those stay as they are."""
    value = seeds.choose_seed()
    request.node.stash[SEED_KEY] = value
    print(f"seed: {seeds.rerun_hint(value, request.node.nodeid)}")
    seeds.begin_case(value)
    yield value
    seeds.end_case()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item,
                              call: pytest.CallInfo[None]) -> Generator[None, object, object]:
    report = yield
    value = item.stash.get(SEED_KEY, None)
    if value is not None and isinstance(report, pytest.TestReport) and report.failed:
        report.sections.append(("random seed", f"re-run: {seeds.rerun_hint(value, item.nodeid)}"))
    return report


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Each case's JUnit record says when it started and in which process, so a failure
    under load can be read against what ran beside it (LC_TEST_REPORT keeps the XML)."""
    item.user_properties.append(("started", f"{time.time():.1f}"))
    item.user_properties.append(("worker", os.environ.get("PYTEST_XDIST_WORKER", "main")))


def _module(item: pytest.Item, root: Path) -> str:
    return item.path.relative_to(root).as_posix() if item.path.is_relative_to(root) else ""


def _in_engine_lane(item: pytest.Item) -> bool:
    return any(item.get_closest_marker(name) for name in ("docker", "postgres", "serial"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = config.rootpath
    reaches_engine: dict[Path, bool] = {}
    for item in items:
        module = _module(item, root)
        if item.path not in reaches_engine:
            reaches_engine[item.path] = bool(ENGINE_USE.search(item.path.read_text()))
        if module in SERIAL_MODULES or reaches_engine[item.path]:
            item.add_marker(pytest.mark.serial)
        if ENGINE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.docker)
        item.user_properties.append(("lane", "engine" if _in_engine_lane(item) else "pure"))
        if _graph_story(item) is not None:  # scripts/repeat_tests.py's time per phase
            item.user_properties.append(("unit", "graph-stories"))
    rank = {module: place for place, module in enumerate(HEAVIEST_FIRST)}
    story_rank = {story: place for place, story in enumerate(GRAPH_STORIES)}
    engine_modules = {item.path for item in items if _in_engine_lane(item)}

    def order(indexed: tuple[int, pytest.Item]) -> tuple[int, int, int]:
        """The graph stories first, in their order; then the other engine modules, heaviest
        first; the pure modules last. A module's tests keep their own order."""
        position, item = indexed
        story = _graph_story(item)
        if story is not None:
            return (0, story_rank[story], position)
        engine = item.path in engine_modules
        return (1 if engine else 2, rank.get(_module(item, root), len(rank)), position)

    items[:] = [item for _, item in sorted(enumerate(items), key=order)]


def pytest_xdist_make_scheduler(config: pytest.Config, log: Producer) -> object | None:
    """``--dist loadfile`` with the graph stories as one unit (tests/framework/scheduling.py)."""
    if config.getvalue("dist") != "loadfile":
        return None
    return StoriesTogetherScheduling(config, log, GRAPH_STORIES)


def _graph_story(item: pytest.Item) -> str | None:
    """The ``GRAPH_STORIES`` entry ``item`` belongs to (its own id, or its module), if any."""
    for story in (item.nodeid, item.nodeid.split("::", 1)[0]):
        if story in GRAPH_STORIES:
            return story
    return None


def _is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_sessionstart(session: pytest.Session) -> None:
    """The host engine is fingerprinted by the controlling process only: under xdist a
    worker starting late would see the other worker's job containers as the host's."""
    if _is_xdist_worker(session.config):
        return
    session.stash[HOST_KEY] = host_engine.fingerprint()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    before = session.stash.get(HOST_KEY, None)
    if before is None:
        return
    changed = host_engine.changes(before, host_engine.fingerprint())
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if changed:
        if reporter is not None:
            reporter.write_line("HOST DOCKER ENGINE TOUCHED: " + "; ".join(changed), red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    elif reporter is not None:
        reporter.write_line(f"host Docker engine untouched: {before.describe()}")


@pytest.fixture(scope="session")
def shared_private_dockerd(
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PrivateDockerd, str]]:
    """One private engine per session with the base image loaded, and the base image's id.

    Starting an engine and loading the gigabyte base image into it takes 10-20 s; the
    tests that need one share it through ``private_dockerd``, which resets it first.
    """
    from sandbox.base_image import BASE_TAG, ensure_base_image
    from sandbox.engine import connect

    if os.geteuid() != 0:
        if os.environ.get("CI"):
            raise RuntimeError("CI runs as root: a private dockerd must be tested there")
        pytest.skip("a private dockerd needs root")
    PrivateDockerd.sweep_orphans()
    log_file = tmp_path_factory.mktemp("private-dockerd") / "private-dockerd.log"
    with PrivateDockerd(log_file=log_file) as engine:
        host = connect()
        try:
            ensure_base_image(host, log=lambda _m: None)
            base = engine.load_from_host(host, BASE_TAG)
        finally:
            host.close()
        yield engine, base


@pytest.fixture
def private_dockerd(shared_private_dockerd: tuple[PrivateDockerd, str]) -> PrivateDockerd:
    """A private engine holding only the base image, as a new one would: the session's
    engine (``shared_private_dockerd``), started if a test left it stopped, its containers
    and every other image removed. It is stopped and removed completely when the session
    ends; its log is ``private-dockerd.log`` in the session's temporary directory.
    """
    engine, base = shared_private_dockerd
    engine.reset(keep_images={base})
    return engine
