"""Soak (issue 48 §6): 4 validators and 3 workers on emulated hosts across a WAN, for an hour,
under a steady load, with a validator restarted every 10 minutes and a host cut and healed.

    sudo .venv/bin/python bench/soak.py [--minutes 60] [--restart-every 10] [--cut-seconds 60]
                                        [--tx-per-s 2] [--sample-s 10] [--no-jobs]
                                        [--no-federated]
                                        [--csv test-artifacts/soak.csv] [--svg PATH]
                                        [--seed N] [--quick]

The graph: v0-v3 validators (no engine), w4-w6 worker-only nodes (members and genesis
verifiers) on hosts of their own, all on the machine's Docker engine (no private engines:
they would cost minutes of set-up and measure nothing a soak needs); every link a WAN one
as in bench/hosts.py (50-150 ms round trip, 10 ms jitter, 1 % loss). The genesis keeps the
default pace: blocks only when something is due [CONS-PACE.1], an empty block every
``--empty-block-interval-ms`` (300 s) otherwise.

What runs for ``--minutes`` (``bench/support/soakparts.py``):

- transfers: ``--tx-per-s`` signed transfers a second between 8 funded users, through v0
  (the wallet's node, never restarted nor cut);
- jobs: the template job of ``job init`` (train/v2, a short training: tests/hosts/
  template_job.py), posted through v0 again as soon as the last one settled (while its
  claim window ends within the run); w5 trains, w4 and w6 verify. Its windows come from
  one attempt timed here first (``--attempt-s`` skips the timing);
- predictions (``bench/support/soakpredict.py``): the first paid job's model deployed and
  asked for 20 digits every ``--predict-every`` seconds (``predict --k 3``, through v0): the
  three workers run with ``[worker] predict = true`` and answer each request;
- a federated job (``bench/support/soakfed.py``, ``--federated``, on by default, off in
  ``--quick``): federated/v1 of 5 rounds posted through v0 by its owner early in the soak,
  and once more after it is paid if the run has room for it; four data owners (alice, bob,
  carol, dave) each run ``learningchain federated join`` on a node of their own, on a host
  of their own (WAN links to every host), on their own non-IID shard; the owner publishes
  the holdout's public part once the split is drawn and the hidden part at the end; w4-w6,
  the bonded verifiers, aggregate and vote each round; the end ballot pays. The data
  owners' nodes run only while a job runs, are sampled like the others, and are never
  restarted nor cut;
- v3 stopped (SIGTERM) and started again on its data dir every ``--restart-every`` minutes,
  half a period in (at 5, 15, 25 ... minutes);
- v2's host cut from every other host for ``--cut-seconds`` at 70 % of the run (no restart
  falls inside it: with v3 down too, 2 of 4 validators could not commit), then healed.

Every ``--sample-s`` it reads each node process's RSS and open descriptors (/proc/PID) and
its data directory's size; a thread follows v0's chain block by block (header times, and
when each of our transfers became final). After the run, posting stops and the last job is
given its windows to settle; then every node must hold the same state root and conserve
credits (balances + escrow + bonds + burned = the genesis supply).

Last line (``JSON_KEYS``): ``hours``; ``rss_growth_pct_after_warmup``, the most any node
process grew from its warm-up (the first 10 minutes of its life, or the first sixth of a
shorter run) to its end (medians of 3 samples; v3 restarts, so its lives are counted only
when long enough); ``fd_growth``, the most descriptors gained over the same span;
``disk_mb_per_hour``, the fastest-growing data directory after the warm-up; ``commit_p99_s``
(transfer submit to final); ``stalls``, gaps between blocks over 5 median block intervals
while a transfer of ours had waited that long; ``jobs_posted``, ``jobs_settled``,
``predictions_asked``, ``predictions_agreed``, ``predict_p50_s`` (``predict`` to its agreed
answer), ``fed_jobs_posted``, ``fed_jobs_paid``, ``fed_rounds_accepted`` (null without
``--federated``), ``credits_conserved`` and ``pass`` (RSS growth at most 10 %, descriptors up
by at most ``FD_SLACK``, no stall, every job settled, every prediction agreed, and at least
one in a run of 10 minutes or more, every federated job done and paid, credits conserved,
one state). The samples go to
``--csv`` and a plot of them to ``--svg`` (default: the CSV's name with .svg), for
docs/reliability.md.

``--quick``: 45 s of soak (v3 restarted once, v2 cut for 8 s, one job and, once it is paid,
one prediction, sampled every 2 s, the job's windows from an assumed 8 s attempt, not
timed; no federated job, whose rounds take minutes): under 2 minutes with set-up.
Its figures mean little (the warm-up is 7.5 s); only their presence is checked.

Needs root (namespaces) and the Docker engine with the base image. Cleans up every
namespace and process it made, also on a failure, Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import tempfile
import threading
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.support import soakfed
from bench.support import soakparts as parts
from bench.support.cli import emit, parse_args
from bench.support.hostruns import MADE, WAN_JITTER_MS, WAN_LOSS, WAN_RTT_MS, Signals, _bed
from bench.support.soakpredict import PredictStream
from client.api.http_client import ApiClient, ApiError
from client.devnet.network import EMPTY_BLOCK_INTERVAL_ENV
from sandbox.base_image import ensure_base_image
from sandbox.engine import connect
from tests.framework import seed as seeds
from tests.framework.job_windows import JobWindows, measure_attempt, windows
from tests.hosts.graph import HostGraph, HostNode
from tests.hosts.template_job import CONSENSUS, TRAIN, VERIFY, template_job

JSON_KEYS = ("bench", "quick", "seed", "minutes", "hours", "rss_growth_pct_after_warmup",
             "fd_growth", "disk_mb_per_hour", "commit_p50_s", "commit_p99_s",
             "block_interval_s", "stalls", "transfers_sent", "transfers_final", "restarts",
             "cuts", "jobs_posted", "jobs_settled", "jobs_paid", "predictions_asked",
             "predictions_agreed", "predict_p50_s", "fed_jobs_posted", "fed_jobs_paid",
             "fed_rounds_accepted", "credits_conserved",
             "same_state", "csv", "svg", "left_behind", "failures", "pass")
"""Keys of the last line (tests/test_bench_quick.py)."""
NEEDS_DOCKER = True
"""Starts node processes on emulated hosts (root: namespaces) and trains jobs on the
machine's Docker engine: CI runs it serially, with the Docker and multi-process tests."""
QUICK = {"minutes": 0.75, "restart_every": 0.5, "cut_seconds": 8.0, "sample_s": 2.0,
         "attempt_s": 8.0, "drain_s": 100.0, "predict_every": 10.0, "federated": False}
VALIDATORS = 4
RESTARTED = 3
"""v3: the validator restarted every period."""
CUT = 2
"""v2: the host cut and healed once."""
WORKER_SETTINGS: dict[int, dict[str, Any]] = {4: {**VERIFY, "predict": True},
                                              5: {**TRAIN, "predict": True},
                                              6: {**VERIFY, "predict": True}}
USERS = {"submitter": 1_000_000, **{f"u{i}": 10**9 for i in range(8)}, **soakfed.USERS}
RSS_LIMIT_PCT = 10.0
FD_SLACK = 4
"""Descriptors a node may hold more at the end than after its warm-up and still count as
flat: a peer connection being re-dialled, a database journal open at that instant."""
WARMUP_S = 600.0
"""The warm-up: the first 10 minutes, or the first sixth of a shorter run."""
CUT_AT = 0.7
"""Where in the run the cut begins (a fraction of it)."""


def _r(value: float | None, digits: int = 3) -> float | None:
    if value is None or math.isnan(value):
        return None
    return round(value, digits)


class Schedule:
    """When v3 restarts and when v2's host is cut and healed, seconds into the soak."""

    def __init__(self, duration_s: float, restart_every_s: float, cut_s: float) -> None:
        count = int(duration_s / restart_every_s) + 1 if restart_every_s > 0 else 0
        self.restarts = [(k + 0.5) * restart_every_s for k in range(count)
                         if (k + 0.5) * restart_every_s < duration_s]
        self.cut_from = CUT_AT * duration_s if cut_s else math.inf
        self.cut_to = self.cut_from + cut_s


class Soak:
    """One soak on a built graph: the threads, the schedule, the samples."""

    def __init__(self, args: argparse.Namespace, graph: HostGraph, job_dir: Path | None,
                 job_windows: JobWindows | None,
                 fed: tuple[soakfed.FedPrep, list[soakfed.DataOwner]] | None = None) -> None:
        self.args, self.graph = args, graph
        self.begin = time.monotonic()
        self.begin_wall = time.time()
        self.stop_load = threading.Event()
        self.stop_watch = threading.Event()
        self.stop_posting = threading.Event()
        self.abort = threading.Event()
        url = graph.nodes[0].api.base_url
        users = [graph.users[f"u{i}"] for i in range(8)]
        self.stream = parts.TransferStream(ApiClient(url, timeout=10), users, args.tx_per_s,
                                           self.stop_load)
        self.watcher = parts.BlockWatcher(ApiClient(url, timeout=10), self.stream,
                                          self.stop_watch)
        self.jobs = None if job_dir is None or job_windows is None else parts.JobStream(
            ApiClient(url, timeout=30), graph.users["submitter"], job_dir, job_windows,
            self.stop_posting, self.abort, self.elapsed, args.minutes * 60.0)
        self.predictions = None if job_dir is None or self.jobs is None \
            or not args.predict_every else PredictStream(
            ApiClient(url, timeout=30), graph.users["submitter"],
            [graph.nodes[i].api for i in WORKER_SETTINGS], job_dir, job_dir.parent,
            args.predict_every, self._paid_job, self.stop_posting, self.abort, self.elapsed)
        self.federated = None if fed is None else soakfed.FedStream(
            ApiClient(url, timeout=30), graph.users, fed[1], fed[0], fed[0].job_dir.parent,
            self.stop_posting, self.abort, self.elapsed, args.minutes * 60.0, self.log,
            {n.layout.address: n.host.name for n in graph.nodes})
        self.samples: list[parts.Sample] = []
        self.failures: list[str] = []
        self.restarts = self.cuts = 0
        self.end_s, self.end_wall = math.nan, math.nan

    def elapsed(self) -> float:
        return time.monotonic() - self.begin

    def _paid_job(self) -> str | None:
        """The first job of the soak that was paid: the model the predictions ask."""
        jobs = self.jobs.jobs if self.jobs is not None else []
        return next((j.job_id for j in list(jobs) if j.status == "paid"), None)

    def log(self, text: str) -> None:
        print(f"[{self.elapsed() / 60:6.2f} min] {text}", flush=True)

    def sample(self) -> None:
        t = round(self.elapsed(), 2)
        for node in self.graph.nodes:
            pid = node.proc.pid if node.proc is not None and node.proc.poll() is None else None
            rss, fds, disk = parts.sample_process(pid, node.layout.directory / "data")
            self.samples.append(parts.Sample(t, node.host.name, pid, rss, fds, disk))
        for name, pid, data_dir in self.federated.processes() if self.federated else []:
            rss, fds, disk = parts.sample_process(pid, data_dir)
            self.samples.append(parts.Sample(t, name, pid, rss, fds, disk))

    def check_alive(self) -> None:
        """A node that exited by itself is a failure; it is started again so the soak goes
        on (and its restart is logged)."""
        for node in self.graph.nodes:
            if node.proc is not None and node.proc.poll() is not None:
                self.failures.append(f"{node.host.name} exited with {node.proc.returncode} at "
                                     f"{self.elapsed():.0f} s:\n{node.log_tail(20)}")
                self.log(f"{node.host.name} exited by itself ({node.proc.returncode}): "
                         "starting it again")
                self.graph.start(node)

    def restart(self, node: HostNode) -> None:
        code = self.graph.stop(node)
        self.graph.start(node)
        self.restarts += 1
        self.log(f"restarted {node.host.name} (stopped with {code}); v0 at height "
                 f"{self.watcher.height()}")

    def run(self) -> None:
        args, graph = self.args, self.graph
        duration = args.minutes * 60.0
        plan = Schedule(duration, args.restart_every * 60.0, args.cut_seconds)
        restarts = list(plan.restarts)
        cut_state = "before"
        self.watcher.start_at(graph.nodes[0].height())
        self.watcher.start()
        self.stream.start()
        if self.jobs is not None:
            self.jobs.start()
        if self.predictions is not None:
            self.predictions.start()
        if self.federated is not None:
            self.federated.start()
        next_sample = 0.0
        cut_host = graph.nodes[CUT].host
        while self.elapsed() < duration:
            now = self.elapsed()
            if cut_state == "before" and now >= plan.cut_from:
                graph.bed.isolate(cut_host)
                cut_state, self.cuts = "cut", self.cuts + 1
                self.log(f"cut {cut_host.name} from every other host for "
                         f"{args.cut_seconds:g} s")
            elif cut_state == "cut" and now >= plan.cut_to:
                graph.bed.heal_all()
                cut_state = "healed"
                self.log(f"healed {cut_host.name}")
            if restarts and now >= restarts[0] and cut_state != "cut":
                restarts.pop(0)
                self.restart(graph.nodes[RESTARTED])
            self.check_alive()
            if now >= next_sample:
                self.sample()
                next_sample += args.sample_s
                if len(self.samples) // len(graph.nodes) % max(1, int(60 / args.sample_s)) == 0:
                    self.log(f"height {self.watcher.height()}, {len(self.stream.sent)} transfers"
                             f" ({self.stream.waiting()} waiting), jobs "
                             f"{self._jobs_line()}")
            time.sleep(min(0.5, max(0.05, next_sample - self.elapsed())))
        if cut_state == "cut":
            graph.bed.heal_all()
        self.end_s = self.elapsed()
        self.end_wall = time.time()
        self.stop_load.set()
        self.stop_posting.set()
        self.log(f"soak over; load stopped, no more jobs posted ({self._jobs_line()})")
        self.drain()

    def drain(self) -> None:
        """The last job, prediction and federated job get up to ``--drain-s`` to settle
        (sampling goes on); the last transfers 30 s to become final."""
        deadline = time.monotonic() + (self.args.drain_s or math.inf)
        while any(t is not None and t.is_alive()
                  for t in (self.jobs, self.predictions, self.federated)) \
                and time.monotonic() < deadline:
            self.check_alive()
            self.sample()
            time.sleep(self.args.sample_s)
        self.abort.set()
        until = time.monotonic() + 30
        while self.stream.waiting() and time.monotonic() < until:
            time.sleep(0.5)
        self.stop_watch.set()
        self.sample()

    def _jobs_line(self) -> str:
        line = "off" if self.jobs is None else \
            f"{len(self.jobs.settled())}/{len(self.jobs.jobs)} settled"
        if self.predictions is not None:
            line += (f", predictions {len(self.predictions.answered())}/"
                     f"{len(self.predictions.predictions)} agreed")
        if self.federated is not None:
            line += f", {self.federated.line()}"
        return line


def final_checks(graph: HostGraph, supply_at_start: int) -> tuple[bool, bool, list[str]]:
    """Every node caught up to v0 with the same state, and credits conserved on each: its
    terms add up and its supply is the genesis's."""
    problems: list[str] = []
    top = graph.nodes[0].height()
    try:
        graph.wait_height(top, timeout=120, what="every node to catch up after the soak")
        graph.same_state()
        same = True
    except AssertionError as e:
        same = False
        problems.append(f"state: {str(e)[:500]}")
    conserved = True
    for node in graph.nodes:
        try:
            supply = node.api.supply()
        except (ApiError, OSError, ValueError) as e:
            conserved = False
            problems.append(f"{node.host.name}: supply unreadable: {e}")
            continue
        if not supply["conserved"] or int(supply["supply"]) != supply_at_start:
            conserved = False
            problems.append(f"{node.host.name}: credits not conserved: {supply}")
    return same, conserved, problems


def warmup_s(minutes: float) -> float:
    return min(WARMUP_S, minutes * 60.0 / 6)


def title(minutes: float, header: list[str]) -> str:
    """The chart's title; the data owners named when the record has their columns."""
    owners = sum(1 for o in soakfed.OWNERS if f"rss_mib.{o}" in header)
    return (f"bench/soak.py --minutes {minutes:g}: 4 validators, 3 workers"
            f"{f', {owners} data owners' if owners else ''}, WAN links")


def figures(soak: Soak, args: argparse.Namespace) -> dict[str, Any]:
    warmup = warmup_s(args.minutes)
    grown = parts.growths(soak.samples, warmup)
    for g in grown:
        print(f"  {g.node} pid {g.pid}: RSS {g.rss_from:.1f} -> {g.rss_to:.1f} MiB "
              f"({g.rss_pct:+.1f} %), descriptors {g.fds_from:.0f} -> {g.fds_to:.0f} "
              f"({g.from_s / 60:.1f}-{g.to_s / 60:.1f} min)", flush=True)
    disk = parts.disk_mb_per_hour(soak.samples, warmup)
    print(f"  data dir MB/hour after the warm-up: "
          f"{ {n: round(v, 2) for n, v in sorted(disk.items())} }", flush=True)
    sent = list(soak.stream.sent.values())
    latencies = [s.final - s.submitted for s in sent if s.final is not None]
    interval, gaps = parts.stalls(soak.watcher.blocks, sent, soak.begin_wall, soak.end_wall)
    inside = [b for b in soak.watcher.blocks if b.time_ms / 1000 <= soak.end_wall]
    longest = sorted(b.time_ms - a.time_ms for a, b in pairwise(inside))[-3:]
    print(f"  {len(inside)} blocks in the soak, median interval {interval:.3f} s, longest "
          f"gaps {[round(g / 1000, 2) for g in longest]} s; stalls: "
          f"{[(g.after_height, round(g.seconds, 2), round(g.at_s)) for g in gaps]}", flush=True)
    jobs = soak.jobs.jobs if soak.jobs is not None else []
    asked = soak.predictions.predictions if soak.predictions is not None else []
    answer_s = [p.seconds for p in asked if p.status == "agreed" and p.seconds is not None]
    fed = soak.federated.jobs if soak.federated is not None else None
    return {
        "hours": round(soak.end_s / 3600, 4),
        "rss_growth_pct_after_warmup": _r(max((g.rss_pct for g in grown), default=math.nan), 2),
        "fd_growth": _r(max((g.fds for g in grown), default=math.nan), 1),
        "disk_mb_per_hour": _r(max(disk.values(), default=math.nan), 2),
        "commit_p50_s": _r(parts.quantile(latencies, 0.5)),
        "commit_p99_s": _r(parts.quantile(latencies, 0.99)),
        "block_interval_s": _r(interval),
        "stalls": len(gaps),
        "transfers_sent": len(sent),
        "transfers_final": len(latencies),
        "jobs_posted": len(jobs),
        "jobs_settled": sum(1 for j in jobs if j.settled_s is not None),
        "jobs_paid": sum(1 for j in jobs if j.status == "paid"),
        "predictions_asked": len(asked),
        "predictions_agreed": len(answer_s),
        "predict_p50_s": _r(parts.quantile(answer_s, 0.5)),
        "fed_jobs_posted": None if fed is None else len(fed),
        "fed_jobs_paid": None if fed is None else sum(1 for j in fed if j.is_paid),
        "fed_rounds_accepted": None if fed is None else sum(j.rounds_accepted for j in fed),
    }


def verdict(result: dict[str, Any], jobs_on: bool, predictions_on: bool,
            federated_on: bool = False) -> bool:
    def at_most(key: str, limit: float) -> bool:
        return result[key] is not None and result[key] <= limit

    return (at_most("rss_growth_pct_after_warmup", RSS_LIMIT_PCT)
            and at_most("fd_growth", FD_SLACK) and result["stalls"] == 0
            and result["transfers_final"] == result["transfers_sent"] > 0
            and (not jobs_on or result["jobs_settled"] == result["jobs_posted"] > 0)
            and result["predictions_agreed"] == result["predictions_asked"]
            and (not predictions_on or result["predictions_asked"] > 0)
            and (not federated_on
                 or (result["fed_jobs_paid"] or 0) == (result["fed_jobs_posted"] or 0) > 0)
            and bool(result["credits_conserved"]) and bool(result["same_state"])
            and not result["failures"] and not result["left_behind"])


def prepare_job(args: argparse.Namespace, work: Path) -> tuple[Path | None, JobWindows | None]:
    """The template job built on the machine's engine, and its windows."""
    if not args.jobs:
        return None, None
    machine = connect()
    try:
        ensure_base_image(machine, log=lambda _m: None)
    finally:
        machine.close()
    job_dir = work / "digits"
    template_job(job_dir)
    attempt = args.attempt_s if args.attempt_s else measure_attempt(job_dir)
    job_windows = windows(attempt)
    print(f"job windows: {job_windows}", flush=True)
    return job_dir, job_windows


def soak_on_hosts(args: argparse.Namespace, work: Path, result: dict[str, Any]) -> None:
    started = time.monotonic()
    job_dir, job_windows = prepare_job(args, work)
    fed_prep = soakfed.prepare(work / "federated") if args.federated else None
    print(f"jobs built and timed in {time.monotonic() - started:.0f} s", flush=True)
    os.environ[EMPTY_BLOCK_INTERVAL_ENV] = str(args.empty_block_interval_ms)
    with _bed(args.seed) as bed:
        hosts = [bed.add_host(f"v{i}") for i in range(VALIDATORS)]
        hosts += [bed.add_host(f"w{i}") for i in range(VALIDATORS, VALIDATORS + 3)]
        owner_hosts = soakfed.add_owner_hosts(bed) if fed_prep is not None else []
        links = bed.set_wan_links(hosts, seeds.rng("links"), rtt_ms=WAN_RTT_MS,
                                  jitter_ms=WAN_JITTER_MS, loss=WAN_LOSS)
        soakfed.link_owner_hosts(bed, owner_hosts, hosts, seeds.rng("fed-links"),
                                 rtt_ms=WAN_RTT_MS, jitter_ms=WAN_JITTER_MS, loss=WAN_LOSS)
        print(f"links (ms RTT): { {f'{a}-{b}': round(v) for (a, b), v in links.items()} }; "
              f"{len(owner_hosts)} data owners' hosts", flush=True)
        graph = HostGraph.create(bed, work / "net", hosts, validators=VALIDATORS, users=USERS,
                                 consensus=CONSENSUS, worker_settings=WORKER_SETTINGS)
        fed = None if fed_prep is None else (fed_prep, soakfed.data_owners(
            fed_prep, owner_hosts, graph.layout.genesis, graph.users,
            [f"{n.host.public_address}:{n.layout.p2p_port}" for n in graph.nodes]))
        started = time.monotonic()
        graph.start_all(timeout=180)
        supply_at_start = int(graph.nodes[0].api.supply()["supply"])
        print(f"7 hosts at height 1 after {time.monotonic() - started:.0f} s; supply "
              f"{supply_at_start}", flush=True)
        soak = Soak(args, graph, job_dir, job_windows, fed)
        try:
            soak.run()
            same, conserved, problems = final_checks(graph, supply_at_start)
        except BaseException:
            for node in graph.nodes:
                print(f"--- {node.host.name} ---\n{node.log_tail(30)}", file=sys.stderr)
            raise
        finally:
            soak.abort.set()
            soak.stop_load.set()
            soak.stop_watch.set()
        failures = soak.failures + problems + (soak.jobs.errors if soak.jobs else []) + (
            soak.predictions.errors if soak.predictions else []) + (
            soak.federated.errors if soak.federated else [])
        result.update(figures(soak, args))
        result.update({"restarts": soak.restarts, "cuts": soak.cuts, "same_state": same,
                       "credits_conserved": conserved, "failures": failures})
        header, table = parts.rows(soak.samples, list(soak.stream.sent.values()),
                                   soak.begin_wall, args.sample_s)
        parts.write_csv(args.csv, header, table)
        parts.plot(args.svg, header, table, title(args.minutes, header),
                   warmup_s(args.minutes))
        graph.stop_all()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=60.0, help="length of the soak")
    p.add_argument("--restart-every", type=float, default=10.0,
                   help="minutes between restarts of v3 (0: none)")
    p.add_argument("--cut-seconds", type=float, default=60.0,
                   help="how long v2's host is cut, at 70 %% of the run (0: no cut)")
    p.add_argument("--tx-per-s", type=float, default=2.0, help="transfers a second")
    p.add_argument("--sample-s", type=float, default=10.0, help="seconds between samples")
    p.add_argument("--jobs", action=argparse.BooleanOptionalAction, default=True,
                   help="post the template job again and again (needs Docker)")
    p.add_argument("--predict-every", type=float, default=60.0,
                   help="seconds between prediction requests to the first paid job's model "
                        "(0: none; needs --jobs)")
    p.add_argument("--federated", action=argparse.BooleanOptionalAction, default=True,
                   help="post a federated job early (and again after it, if the run has "
                        "room) with four data owners on hosts of their own (needs Docker)")
    p.add_argument("--attempt-s", type=float, default=None,
                   help="assume one job attempt takes this long (default: time one here)")
    p.add_argument("--drain-s", type=float, default=None,
                   help="after the soak, how long the last job may take to settle "
                        "(default: its windows)")
    p.add_argument("--empty-block-interval-ms", type=int, default=300_000,
                   help="the genesis's [CONS-PACE.3] interval")
    p.add_argument("--csv", type=Path, default=Path("test-artifacts/soak.csv"))
    p.add_argument("--svg", type=Path, default=None, help="default: the CSV's name, .svg")
    p.add_argument("--seed", type=int, default=None, help="links' random draws (LC_SEED)")
    p.add_argument("--replot", action="store_true",
                   help="only draw --svg from the --csv of an earlier run of --minutes, and exit")
    args = parse_args(p, QUICK)
    args.svg = args.svg or args.csv.with_suffix(".svg")
    if args.replot:
        header, table = parts.read_csv(args.csv)
        parts.plot(args.svg, header, table, title(args.minutes, header),
                   warmup_s(args.minutes))
        return
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(name)s: %(message)s")
    if args.seed is None:
        args.seed = seeds.choose_seed()
    seeds.begin_case(args.seed)
    Signals.install()
    MADE.begin()
    print(f"seed {args.seed} (re-run with --seed {args.seed}); {args.minutes:g} minutes; "
          f"links {WAN_RTT_MS[0]:.0f}-{WAN_RTT_MS[1]:.0f} ms RTT, {WAN_JITTER_MS:.0f} ms "
          f"jitter, {WAN_LOSS:.0%} loss", flush=True)
    result: dict[str, Any] = {key: None for key in JSON_KEYS}
    result.update({"bench": "soak", "quick": args.quick, "seed": args.seed,
                   "minutes": args.minutes, "csv": str(args.csv), "svg": str(args.svg),
                   "failures": []})
    with tempfile.TemporaryDirectory(prefix="lc-bench-soak-") as tmp:
        try:
            soak_on_hosts(args, Path(tmp), result)
        finally:
            result["left_behind"] = MADE.left()
    result["pass"] = verdict(result, args.jobs,
                             args.jobs and bool(args.predict_every) and args.minutes >= 10,
                             args.federated)
    for failure in result["failures"]:
        print(f"failure: {failure}", flush=True)
    emit(result, JSON_KEYS)


if __name__ == "__main__":
    main()
