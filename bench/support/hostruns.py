"""The measurements of bench/hosts.py, each on the host test bed and on 127.0.0.1 alike.

Why apart from the script: each run below is one graph, built, loaded, measured and torn
down, whether it fails or not; the script only orders them and writes the last line.

- ``tx_loopback`` / ``tx_hosts``: finalized transfers per second of ``n`` validators
  (``bench/support/txload.py``: the same loaders and follower as bench/devnet.py). On
  the hosts, each loader runs *on* a host (its network namespace) and posts to its own
  host's node on that host's loopback, as a wallet on that machine would; on 127.0.0.1
  each posts to one node too. Up to ``LOADERS`` loaders, each with its share of the
  senders; the rest of the nodes get the transactions by gossip.
- ``blob_hosts``: bench/blobs.py's blob fetch and raw TCP copy of the same file, from one
  host to another across one WAN link (sender and serving node on host A, receiver and
  fetching node on host B); ``blob_loopback``: bench/blobs.py's own, on 127.0.0.1.
- ``job_loopback`` / ``job_hosts``: the template job (tests/hosts/template_job.py, the
  scenario of tests/hosts/test_job_on_hosts.py) from ``job submit`` to paid.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from bench.blobs import SENDER, blob_fetch, make_file, raw_tcp_copy, receive, server_argv
from bench.support.consensus_metrics import consensus_counts
from bench.support.txload import LoadRun, follow, loader_config, peak_rss_mib, start_loader
from client.api.http_client import ApiClient
from client.devnet.processes import down, load_pids, up
from tests.framework.devnet_up import up_on_free_ports
from tests.framework.job_windows import JobWindows
from tests.framework.ports import free_base_port
from tests.hosts.graph import HostGraph
from tests.hosts.linkmodel import LinkSpec
from tests.hosts.netns import enter, namespaces
from tests.hosts.template_job import (
    CONSENSUS,
    USERS,
    WORKER_SETTINGS,
    add_job_hosts,
    post_and_settle,
)
from tests.hosts.testbed import ROOT_PREFIX, TestBed

REPO = Path(__file__).resolve().parents[2]
LOADERS = 4
"""Load processes per run (at most one per node)."""
WAN_RTT_MS = (50.0, 150.0)
WAN_JITTER_MS = 10.0
WAN_LOSS = 0.01
"""Every WAN link (issue 31 §6): a round trip drawn from ``WAN_RTT_MS`` per pair, jitter
each way, segment loss; tests/hosts/template_job.py's hosts get the same."""
TX_CONSENSUS = {"commit_ms": 100}
"""bench/devnet.py's: the same consensus timing on hosts and on 127.0.0.1."""


BED_INTERFACE = re.compile(r"^(h\d+|up0|lan0)$")
"""Names of the test bed's veth ends outside a host (tests/hosts/testbed.py): made inside
its own namespaces, they must never show up in the machine's."""


def machine_interfaces() -> set[str]:
    """Interface names of this process's (the machine's) network namespace."""
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True,
                         check=False).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()
            if line.count(":") >= 2}


@dataclass
class Made:
    """What this process's runs made outside their temp dirs: test beds (each a switch,
    hosts and NAT routers as namespaces, their veths and rules inside them, and a root
    directory) and private engines (each a dockerd process and a root directory)."""

    beds: list[str]
    engine_roots: list[Path]
    engine_pids: list[int]
    interfaces_before: set[str]
    """The machine's interfaces before the first run (``begin``)."""

    def begin(self) -> None:
        self.interfaces_before = machine_interfaces()

    def left(self) -> list[str]:
        """Whatever of it is still there (a test bed's ``close()`` raises for its own
        namespaces; this checks them all again at the end, engines and interfaces too)."""
        ours = [n for n in sorted(namespaces()) for b in self.beds
                if n == f"lcsw-{b}" or n.startswith((f"lch-{b}-", f"lcn-{b}-"))]
        dirs = [Path(f"{ROOT_PREFIX}{b}") for b in self.beds] + self.engine_roots
        engines = [f"dockerd pid {pid}" for pid in self.engine_pids
                   if Path(f"/proc/{pid}").exists()]
        interfaces = [f"interface {name}" for name in
                      sorted(machine_interfaces() - self.interfaces_before)
                      if BED_INTERFACE.match(name)]
        return ours + [str(d) for d in dirs if d.exists()] + engines + interfaces


MADE = Made([], [], [], set())


class Signals:
    """SIGINT, SIGTERM and SIGHUP unwind like an exception (``KeyboardInterrupt``), so every
    test bed and graph is torn down; not while a teardown runs (``shielded``): there the
    signal waits until the teardown is done. After the first, further signals are ignored,
    so a second Ctrl-C cannot cut a cleanup short."""

    CAUGHT = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    depth = 0
    pending: int | None = None

    @classmethod
    def install(cls) -> None:
        for sig in cls.CAUGHT:
            signal.signal(sig, cls._handle)

    @classmethod
    def _handle(cls, signum: int, _frame: FrameType | None) -> None:
        for sig in cls.CAUGHT:
            signal.signal(sig, signal.SIG_IGN)
        if cls.depth:
            cls.pending = signum
            return
        raise KeyboardInterrupt(f"signal {signum}: cleaning up")

    @classmethod
    @contextmanager
    def shielded(cls) -> Iterator[None]:
        cls.depth += 1
        try:
            yield
        finally:
            cls.depth -= 1
            if not cls.depth and cls.pending is not None:
                signum, cls.pending = cls.pending, None
                raise KeyboardInterrupt(f"signal {signum} during a teardown: stopping")


@contextmanager
def _bed(seed: int) -> Iterator[TestBed]:
    """A test bed (torn down shielded from signals), recorded in ``MADE`` with the engines
    its hosts got."""
    bed = TestBed(seed=seed)  # a failure while it is built closes it
    MADE.beds.append(bed.id)
    try:
        yield bed
    finally:
        with Signals.shielded():
            engines = [h.engine for h in bed.hosts if h.engine is not None]
            MADE.engine_roots.extend(e.root for e in engines)
            MADE.engine_pids.extend(e.pid for e in engines if e.pid is not None)
            bed.close()


def _down(root: Path) -> None:
    """``client.devnet.processes.down``, shielded from signals."""
    with Signals.shielded():
        down(root)


@dataclass(frozen=True)
class Load:
    """How hard and how long the transfer load runs."""

    seconds: float
    senders: int
    batch: int
    rate_cap: int
    drain_s: float = 15.0
    """How long after the load the chain is followed for its last transactions."""

    def users(self) -> dict[str, int]:
        return {f"u{i}": 10**12 for i in range(self.senders)}

    def per_sender(self) -> int:
        return min(1900, int(self.rate_cap * self.seconds / self.senders) + 1)


@dataclass(frozen=True)
class TxFigures:
    """One load run's figures."""

    validators: int
    run: LoadRun
    peak_rss_mib: dict[str, float]
    start_s: float
    """Seconds from starting the node processes to every node at height 1."""
    step_mean_ms: dict[str, float]
    """The mean ms a node spent in each consensus step under the load (rest left out)."""

    def summary(self) -> str:
        intervals = self.run.block_intervals()
        return (f"{self.validators} validators: {self.run.describe()}; block interval p50 "
                f"{_median(intervals):.3f} s; mean ms in each consensus step "
                f"{self.step_mean_ms}; peak RSS MiB per node "
                f"{_spread(self.peak_rss_mib)}; started in {self.start_s:.0f} s")


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _spread(rss: dict[str, float]) -> str:
    values = sorted(rss.values())
    if not values:
        return "none"
    return f"{values[0]:.0f}..{values[-1]:.0f} (median {statistics.median(values):.0f})"


def _split(users: Sequence[Any], parts: int) -> list[list[Any]]:
    return [list(users[k::parts]) for k in range(parts) if users[k::parts]]


@contextmanager
def _killing(procs: list[subprocess.Popen[str]]) -> Iterator[list[subprocess.Popen[str]]]:
    """Kills whichever of ``procs`` still runs when the block ends (a failure, Ctrl-C)."""
    try:
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


def tx_loopback(validators: int, load: Load, work: Path) -> TxFigures:
    """``validators`` node processes on 127.0.0.1 (``client.devnet.processes``) under load."""
    root = work / f"loopback-{validators}"
    started = time.monotonic()
    try:  # up() records each pid as it starts it: down() stops them even if up() fails
        layout = up(root, validators=validators, workers=0,
                    base_port=free_base_port(validators), users=load.users(),
                    consensus=TX_CONSENSUS, log_level="warning", timeout=60 + 10 * validators)
        start_s = time.monotonic() - started
        groups = _split(layout.users, min(LOADERS, validators))
        apis = [node.api_url for node in layout.nodes]
        at_go: dict[str, Any] = {}
        with _killing([]) as loaders:
            for node, users in zip(layout.nodes, groups, strict=False):
                cfg = loader_config(layout.chain_id, users, [node.api_url],
                                    seconds=load.seconds, per_sender=load.per_sender(),
                                    batch=load.batch)
                loaders.append(start_loader(cfg))
            run = follow(layout.nodes[0].api_url, loaders, load.seconds, drain_s=load.drain_s,
                         on_go=lambda: at_go.update(consensus_counts(apis)))
        steps = consensus_counts(apis, since=at_go)["step_mean_ms"]
        rss = {name: peak_rss_mib(pid) for name, pid in load_pids(root).items()}
    finally:
        _down(root)
    return TxFigures(validators, run, rss, start_s, steps)


def tx_hosts(validators: int, load: Load, work: Path, seed: int, links: random.Random,
             loss: float = WAN_LOSS) -> tuple[TxFigures, dict[tuple[str, str], float]]:
    """``validators`` nodes, each on a host of its own, every link a WAN one (segment loss
    ``loss``), under load; also each link's drawn round trip."""
    with _bed(seed) as bed:
        hosts = [bed.add_host(f"v{i}") for i in range(validators)]
        rtts = bed.set_wan_links(hosts, links, rtt_ms=WAN_RTT_MS, jitter_ms=WAN_JITTER_MS,
                                 loss=loss)
        graph = HostGraph.create(bed, work / f"hosts-{validators}", hosts, users=load.users(),
                                 consensus=TX_CONSENSUS, log_level="warning")
        started = time.monotonic()
        graph.start_all(timeout=60 + 15 * validators)
        start_s = time.monotonic() - started
        groups = _split(graph.layout.users, min(LOADERS, validators))
        apis = [node.api.base_url for node in graph.nodes]
        at_go: dict[str, Any] = {}
        with _killing([]) as loaders:
            for node, users in zip(graph.nodes, groups, strict=False):
                cfg = loader_config(graph.layout.chain_id, users, [node.layout.api_url],
                                    seconds=load.seconds, per_sender=load.per_sender(),
                                    batch=load.batch)  # the node's API on its own host
                loaders.append(start_loader(cfg, prefix=enter(node.host.ns)))
            run = follow(graph.nodes[0].api.base_url, loaders, load.seconds,
                         drain_s=load.drain_s, on_go=lambda: at_go.update(consensus_counts(apis)))
        steps = consensus_counts(apis, since=at_go)["step_mean_ms"]
        rss = {node.name: peak_rss_mib(node.proc.pid) for node in graph.nodes
               if node.proc is not None}
        graph.same_state()
        graph.stop_all()
    return TxFigures(validators, run, rss, start_s, steps), rtts


@dataclass(frozen=True)
class BlobFigures:
    """Median seconds of each way of moving ``mib`` MiB, and the ratio of throughputs."""

    mib: int
    raw_tcp_s: float
    blob_s: float

    @property
    def raw_mib_per_s(self) -> float:
        return self.mib / self.raw_tcp_s

    @property
    def blob_mib_per_s(self) -> float:
        return self.mib / self.blob_s

    @property
    def ratio(self) -> float:
        return self.blob_mib_per_s / self.raw_mib_per_s

    def summary(self) -> str:
        return (f"{self.mib} MiB: raw TCP {self.raw_mib_per_s:.1f} MiB/s, encrypted blob "
                f"fetch {self.blob_mib_per_s:.1f} MiB/s, ratio {self.ratio:.3f}")


def blob_loopback(mib: int, rounds: int) -> BlobFigures:
    """bench/blobs.py on 127.0.0.1: its raw TCP copy and blob fetch, alternated."""
    with tempfile.TemporaryDirectory(prefix="lc-bench-hosts-blob-") as tmp:
        work = Path(tmp)
        source = work / "blob.bin"
        blob = make_file(source, mib)
        raw, fetched = [], []
        for r in range(rounds):
            copy = work / "tcp-copy.bin"
            raw.append(raw_tcp_copy(source, copy))
            copy.unlink()
            fetched.append(asyncio.run(blob_fetch(source, blob, work / f"round{r}")))
            shutil.rmtree(work / f"round{r}")
    return BlobFigures(mib, statistics.median(raw), statistics.median(fetched))


def blob_hosts(mib: int, rounds: int, seed: int, links: random.Random, work: Path,
               losses: Sequence[float]) -> tuple[dict[float, BlobFigures], float]:
    """bench/blobs.py's two copies from host A to host B across one WAN link, once per
    segment loss of ``losses`` (the link's round trip, drawn once, and jitter unchanged;
    the round trip is returned too): the raw copy's receiver is a socket on B, the
    fetching node a process on B (``bench.support.blobfetch``)."""
    source = work / "blob.bin"
    blob = make_file(source, mib)
    figures: dict[float, BlobFigures] = {}
    with _bed(seed) as bed:
        a, b = bed.add_host("a"), bed.add_host("b")
        (rtt,) = bed.set_wan_links([a, b], links, rtt_ms=WAN_RTT_MS).values()
        for loss in losses:
            bed.set_link(a, b, LinkSpec.from_rtt(rtt, jitter_ms=WAN_JITTER_MS, loss=loss))
            raw, fetched = [], []
            for r in range(rounds):
                sender = subprocess.Popen([*enter(a.ns), sys.executable, "-c", SENDER,
                                           str(source), a.address], stdout=subprocess.PIPE,
                                          cwd=REPO)
                bed.processes.append(sender)
                assert sender.stdout is not None
                port = int(sender.stdout.readline())
                start = time.perf_counter()
                with b.connect((a.address, port), timeout=60) as sock:
                    raw.append(receive(sock, work / "tcp-copy.bin", start))
                sender.wait(timeout=30)
                (work / "tcp-copy.bin").unlink()
                fetched.append(_fetch_across(bed, a.ns, a.address, b.ns, b.address, source,
                                             blob, work / f"round{r}"))
                shutil.rmtree(work / f"round{r}")
            figures[loss] = BlobFigures(mib, statistics.median(raw), statistics.median(fetched))
    return figures, rtt


def _fetch_across(bed: TestBed, ns_a: str, addr_a: str, ns_b: str, addr_b: str,
                  source: Path, blob: bytes, work: Path) -> float:
    server = subprocess.Popen([*enter(ns_a), *server_argv(source, work, host=addr_a)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=REPO)
    bed.processes.append(server)
    assert server.stdin is not None and server.stdout is not None
    try:
        ready = json.loads(server.stdout.readline())
        done = subprocess.run(
            [*enter(ns_b), sys.executable, "-m", "bench.support.blobfetch", addr_b,
             f"{addr_a}:{ready['port']}", blob.hex(), str(work)],
            capture_output=True, text=True, cwd=REPO, timeout=600, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"the fetch on host B failed ({done.returncode}): "
                               f"{done.stderr[-2000:]}")
        return float(json.loads(done.stdout.strip().splitlines()[-1])["seconds"])
    finally:
        with contextlib.suppress(OSError):
            server.stdin.write(b'{"cmd": "stop"}\n')
            server.stdin.close()
        server.wait(timeout=30)


def job_loopback(job_dir: Path, image_id: str, job_windows: JobWindows, work: Path) -> float:
    """The template job on 4 node processes on 127.0.0.1, all on the machine's engine (the
    workers as on the hosts: node2 trains, the others verify): submit to paid, seconds."""
    root = work / "job-loopback"
    try:
        layout = up_on_free_ports(root, validators=4, workers=4, users=USERS,
                                  worker_settings=WORKER_SETTINGS, consensus=CONSENSUS, timeout=120)
        submitter = next(u for u in layout.users if u.name == "submitter")
        _job_id, _job, seconds = post_and_settle(ApiClient(layout.nodes[0].api_url, timeout=10),
                                                 submitter, layout, job_dir, image_id,
                                                 job_windows)
    finally:
        _down(root)
    return seconds


def job_hosts(job_dir: Path, image_id: str, job_windows: JobWindows, work: Path, seed: int,
              links: random.Random, machine: Any) -> tuple[float, float]:
    """The template job on 4 hosts (tests/hosts/template_job.py: three of them with engines
    of their own, one behind NAT, one clock 4 s ahead): submit to paid, and the seconds
    spent before it (hosts, engines loaded with the base image, nodes at height 1)."""
    started = time.monotonic()
    with _bed(seed) as bed:
        hosts = add_job_hosts(bed, machine, links)
        graph = HostGraph.create(bed, work / "job-hosts", hosts, workers=4, users=USERS,
                                 consensus=CONSENSUS, worker_settings=WORKER_SETTINGS)
        graph.start_all(timeout=120)
        setup_s = time.monotonic() - started
        try:
            _job_id, _job, seconds = post_and_settle(graph.nodes[0].api,
                                                     graph.users["submitter"], graph.layout,
                                                     job_dir, image_id, job_windows)
        except BaseException:
            for node in graph.nodes:
                print(f"--- {node.name} on {node.host.name} ---\n{node.log_tail(40)}",
                      file=sys.stderr)
            raise
        graph.stop_all()
    return seconds, setup_s
