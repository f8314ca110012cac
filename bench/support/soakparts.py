"""What bench/soak.py runs beside the graph, and the figures it draws from what they saw.

Why apart from the script: the script orders a soak (hosts, graph, schedule, last line); the
parts here each do one thing for the whole run, on a thread of their own, and only record:

- ``TransferStream``: signed transfers at a steady rate through one node's API, between
  funded users in a ring (every submit's time kept, failures counted);
- ``BlockWatcher``: follows one node's chain, block by block (header time, our
  transactions in it, and when we first saw it: a transfer's submit-to-final time);
- ``JobStream``: the template job posted again as soon as the last one settled;
- ``sample_process``: one node process's RSS, open descriptors and data-directory size,
  read from /proc and the file system;
- ``figures``: growth after the warm-up, descriptors, disk per hour, commit p99 and stalls,
  all from those records (``Figures``), and ``write_csv`` / ``plot`` of the samples.
"""

from __future__ import annotations

import csv
import os
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

from bench.support.svgplot import Panel, line_chart
from chain.crypto import address_from_text
from chain.keyfile import read_key_file
from chain.transactions import Transfer
from chain.types import Amount
from client.api.http_client import ApiClient, ApiError
from client.devnet.network import UserLayout
from tests.framework.job_windows import JobWindows
from tests.hosts.template_job import post_job

NEIGHBOURS = 3
"""Samples taken together (a median) for a value at one point in time: one sample is noise."""
STALL_INTERVALS = 5
"""A gap between two blocks longer than this many median block intervals, while one of our
transfers waited, is a stall."""


# -- one node process ------------------------------------------------------------------

def dir_mb(path: Path) -> float:
    """Bytes under ``path`` (files only, no links followed), in MB (10^6)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue  # a file removed while we walked (SQLite's journal, a temp blob)
    return total / 1e6


def sample_process(pid: int | None, data_dir: Path) -> tuple[float, int, float]:
    """The process's resident set (``VmRSS``, MiB), its open descriptors (entries of
    ``/proc/PID/fd``) and its data directory's size (MB); NaN and -1 when it is not running."""
    rss, fds = float("nan"), -1
    if pid is not None:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) / 1024
            fds = len(os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            rss, fds = float("nan"), -1
    return rss, fds, dir_mb(data_dir)


@dataclass(frozen=True)
class Sample:
    """One node at one time of the soak."""

    t_s: float
    """Seconds since the soak began."""
    node: str
    pid: int | None
    rss_mib: float
    fds: int
    disk_mb: float


# -- load ------------------------------------------------------------------------------

@dataclass
class Sent:
    """One transfer we submitted: when, and where it landed."""

    tx_hash: str
    submitted: float
    """Wall-clock seconds at submit."""
    final: float | None = None
    """Wall-clock seconds when the watcher first saw it in a block."""
    height: int | None = None


class TransferStream(threading.Thread):
    """``rate`` transfers per second, user i to user i+1 (1 credit each), through ``api``,
    until ``stop`` is set. Every submit is kept in ``sent``; refusals are counted."""

    def __init__(self, api: ApiClient, users: Sequence[UserLayout], rate: float,
                 stop: threading.Event) -> None:
        super().__init__(name="transfers", daemon=True)
        self.api, self.rate, self.stop = api, rate, stop
        self.keys = [read_key_file(u.key_file, u.passphrase_file.read_text().strip())
                     for u in users]
        self.addresses = [address_from_text(u.address) for u in users]
        self.sent: dict[str, Sent] = {}
        self.refused = 0
        self.lock = threading.Lock()

    def run(self) -> None:
        period, turn = 1.0 / self.rate, 0
        next_at = time.monotonic()
        while not self.stop.is_set():
            i = turn % len(self.keys)
            to = self.addresses[(i + 1) % len(self.keys)]
            try:
                tx = self.api.sign(self.keys[i], Transfer(to, Amount(1)))
                submitted = time.time()
                self.api.submit(tx)
                with self.lock:
                    self.sent[tx.hash.hex()] = Sent(tx.hash.hex(), submitted)
            except (ApiError, OSError, ValueError):
                self.refused += 1
            turn += 1
            next_at = max(next_at + period, time.monotonic() - period)
            self.stop.wait(max(0.0, next_at - time.monotonic()))

    def waiting(self) -> int:
        with self.lock:
            return sum(1 for s in self.sent.values() if s.final is None)

    def mark(self, hashes: Sequence[str], height: int, seen: float) -> None:
        with self.lock:
            for h in hashes:
                sent = self.sent.get(h)
                if sent is not None and sent.final is None:
                    sent.final, sent.height = seen, height


@dataclass(frozen=True)
class BlockSeen:
    height: int
    time_ms: int
    """The header's time."""
    seen: float
    """Wall-clock seconds when the watcher first saw it."""
    txs: int


class BlockWatcher(threading.Thread):
    """Follows ``api``'s chain every ``poll_s``: each new block's header time, and the
    transfers of ``stream`` it holds (their final time)."""

    def __init__(self, api: ApiClient, stream: TransferStream, stop: threading.Event,
                 poll_s: float = 0.2) -> None:
        super().__init__(name="blocks", daemon=True)
        self.api, self.stream, self.stop, self.poll_s = api, stream, stop, poll_s
        self.blocks: list[BlockSeen] = []
        self.errors = 0
        self.next_height = 0

    def start_at(self, height: int) -> None:
        self.next_height = height + 1

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                top = int(self.api.status()["height"])
                while self.next_height <= top and not self.stop.is_set():
                    block = self.api.block(self.next_height)
                    seen = time.time()
                    self.stream.mark(block["tx_hashes"], self.next_height, seen)
                    self.blocks.append(BlockSeen(self.next_height, int(block["time_ms"]), seen,
                                                 int(block["tx_count"])))
                    self.next_height += 1
            except (ApiError, OSError, ValueError, KeyError):
                self.errors += 1
            self.stop.wait(self.poll_s)

    def height(self) -> int:
        return self.next_height - 1


@dataclass
class JobRecord:
    job_id: str
    posted_s: float
    status: str = "posted"
    settled_s: float | None = None


class JobStream(threading.Thread):
    """The built template job in ``job_dir``, posted through ``api`` as ``submitter`` with
    ``windows``; the next one as soon as the last settled, as long as its claim window ends
    before ``post_until`` (``clock`` time; the first is posted whatever its windows) and
    ``stop_posting`` is not set. A job that has not
    settled ``windows.settle_s()`` after its post is given up (not settled)."""

    def __init__(self, api: ApiClient, submitter: UserLayout, job_dir: Path,
                 windows: JobWindows, stop_posting: threading.Event, abort: threading.Event,
                 clock: Callable[[], float], post_until: float) -> None:
        super().__init__(name="jobs", daemon=True)
        self.api, self.submitter, self.job_dir, self.windows = api, submitter, job_dir, windows
        self.stop_posting, self.abort, self.clock = stop_posting, abort, clock
        self.post_until = post_until
        self.jobs: list[JobRecord] = []
        self.errors: list[str] = []

    def run(self) -> None:
        while not self.stop_posting.is_set() and not self.abort.is_set() and (
                not self.jobs or self.clock() + self.windows.expires_s < self.post_until):
            try:
                posted = post_job(self.api, self.submitter, self.job_dir, self.windows)
            except (AssertionError, OSError, ValueError, KeyError,
                    subprocess.SubprocessError) as e:
                self.errors.append(f"{self.clock():.0f} s: post failed: {str(e)[-300:]}")
                self.abort.wait(5.0)
                continue
            record = JobRecord(str(posted["job_id"]), self.clock())
            self.jobs.append(record)
            self._settle(record)

    def _settle(self, record: JobRecord) -> None:
        deadline = time.monotonic() + self.windows.settle_s()
        while time.monotonic() < deadline and not self.abort.is_set():
            try:
                job = self.api.job(record.job_id)
                record.status = str(job["status"])
                if job["settled"]:
                    record.settled_s = self.clock()
                    return
            except (ApiError, OSError, ValueError, KeyError):
                pass
            self.abort.wait(1.0)
        if not self.abort.is_set():
            self.errors.append(f"job {record.job_id[:12]} not settled "
                               f"{self.windows.settle_s():.0f} s after its post: "
                               f"{record.status}")

    def settled(self) -> list[JobRecord]:
        return [j for j in self.jobs if j.settled_s is not None]


# -- figures ---------------------------------------------------------------------------

def _median(values: Sequence[float]) -> float:
    values = [v for v in values if v == v]  # NaN: not running
    return statistics.median(values) if values else float("nan")


def quantile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass(frozen=True)
class Growth:
    """One node process's values after the warm-up and at the end (medians of
    ``NEIGHBOURS`` samples), and the data directory's over the same span."""

    node: str
    pid: int | None
    from_s: float
    to_s: float
    rss_from: float
    rss_to: float
    fds_from: float
    fds_to: float

    @property
    def rss_pct(self) -> float:
        return (self.rss_to - self.rss_from) / self.rss_from * 100.0

    @property
    def fds(self) -> float:
        return self.fds_to - self.fds_from


def growths(samples: Sequence[Sample], warmup_s: float) -> list[Growth]:
    """Per node process (a restart begins a new one) that lived past its own warm-up by
    at least ``2 * NEIGHBOURS`` samples: its growth from the warm-up to its last samples."""
    lives: dict[tuple[str, int | None], list[Sample]] = {}
    for s in samples:
        if s.pid is not None and s.fds >= 0:
            lives.setdefault((s.node, s.pid), []).append(s)
    out = []
    for (node, pid), life in lives.items():
        after = [s for s in life if s.t_s >= life[0].t_s + warmup_s]
        if len(after) < 2 * NEIGHBOURS:
            continue
        first, last = after[:NEIGHBOURS], after[-NEIGHBOURS:]
        out.append(Growth(node, pid, first[0].t_s, last[-1].t_s,
                          _median([s.rss_mib for s in first]), _median([s.rss_mib for s in last]),
                          _median([s.fds for s in first]), _median([s.fds for s in last])))
    return out


def disk_mb_per_hour(samples: Sequence[Sample], warmup_s: float) -> dict[str, float]:
    """Per node: its data directory's growth from the warm-up to the end, per hour (a
    restart does not reset it)."""
    per: dict[str, list[Sample]] = {}
    for s in samples:
        per.setdefault(s.node, []).append(s)
    out = {}
    for node, rows in per.items():
        after = [s for s in rows if s.t_s >= warmup_s]
        if len(after) < 2 * NEIGHBOURS or after[-1].t_s <= after[0].t_s:
            continue
        hours = (after[-1].t_s - after[0].t_s) / 3600.0
        grown = _median([s.disk_mb for s in after[-NEIGHBOURS:]]) - _median(
            [s.disk_mb for s in after[:NEIGHBOURS]])
        out[node] = grown / hours
    return out


@dataclass(frozen=True)
class Gap:
    after_height: int
    seconds: float
    at_s: float
    """When the gap began, seconds since the soak began."""


def stalls(blocks: Sequence[BlockSeen], sent: Sequence[Sent], begin_wall: float,
           end_wall: float) -> tuple[float, list[Gap]]:
    """The median block interval (header times) of the blocks of the soak, and every gap
    between consecutive ones longer than ``STALL_INTERVALS`` of it during which one of our
    transfers had waited that long already (submitted, not in a block before the gap's
    end)."""
    inside = [b for b in blocks if begin_wall <= b.time_ms / 1000 <= end_wall]
    gaps = [(a, (b.time_ms - a.time_ms) / 1000) for a, b in pairwise(inside)]
    if not gaps:
        return float("nan"), []
    interval = statistics.median(g for _, g in gaps)
    limit = STALL_INTERVALS * interval
    found = []
    for a, seconds in gaps:
        if seconds <= limit:
            continue
        end = a.time_ms / 1000 + seconds
        if any(s.submitted <= end - limit and (s.height is None or s.height > a.height)
               for s in sent):
            found.append(Gap(a.height, seconds, a.time_ms / 1000 - begin_wall))
    return interval, found


# -- the record over time --------------------------------------------------------------

MEASURES = (("rss_mib", "RSS (MiB)"), ("fds", "open descriptors"), ("disk_mb", "data dir (MB)"))


def rows(samples: Sequence[Sample], sent: Sequence[Sent], begin_wall: float,
         sample_s: float) -> tuple[list[str], list[dict[str, Any]]]:
    """The samples as one row per sampling time: the commit latency of the transfers that
    became final since the row before (p50 and max), then every node's measures."""
    nodes = sorted({s.node for s in samples})
    header = ["t_min", "finals", "commit_p50_s", "commit_max_s",
              *[f"{m}.{n}" for m, _ in MEASURES for n in nodes]]
    by_time: dict[float, dict[str, Any]] = {}
    for s in samples:
        row = by_time.setdefault(s.t_s, {"t_min": round(s.t_s / 60, 3)})
        for m, _ in MEASURES:
            value = getattr(s, m)
            row[f"{m}.{s.node}"] = "" if value != value or value == -1 else round(value, 2)
    finals = sorted((s.final - begin_wall, s.final - s.submitted) for s in sent
                    if s.final is not None)
    previous = -sample_s
    for t in sorted(by_time):
        window = [lat for at, lat in finals if previous < at <= t]
        by_time[t].update({"finals": len(window),
                           "commit_p50_s": round(_median(window), 3) if window else "",
                           "commit_max_s": round(max(window), 3) if window else ""})
        previous = t
    return header, [by_time[t] for t in sorted(by_time)]


def write_csv(path: Path, header: list[str], table: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header)
        writer.writeheader()
        writer.writerows(table)


def read_csv(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    """What ``write_csv`` wrote (values as text; an empty cell is no value)."""
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def plot(path: Path, header: list[str], table: list[dict[str, Any]], title: str,
         warmup_s: float) -> None:
    """Four panels over minutes: RSS and descriptors per node, each data directory's growth
    since the warm-up (its size would hide the rest: the submitter's node holds the job's
    image), and the transfers' submit-to-final time per sample."""
    def series(column: str, since_min: float = -1.0) -> list[tuple[float, float]]:
        return [(float(r["t_min"]), float(r[column])) for r in table
                if r.get(column) not in ("", None) and float(r["t_min"]) >= since_min]

    def started(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
        """Without samples of a process not yet exec'd (a restart's first instant: the
        ``nsenter`` before the node, a few hundred KiB), which would flatten the rest."""
        typical = statistics.median(v for _, v in points) if points else 0.0
        return [(t, v) for t, v in points if v >= typical / 2]

    panels = [Panel("RSS (MiB; a restart's first instant left out)",
                    {c.split(".", 1)[1]: started(series(c)) for c in header
                     if c.startswith("rss_mib.")}),
              Panel("open descriptors", {c.split(".", 1)[1]: series(c) for c in header
                                         if c.startswith("fds.")})]
    grown = {}
    for column in (c for c in header if c.startswith("disk_mb.")):
        points = series(column, warmup_s / 60)
        if points:
            grown[column.split(".", 1)[1]] = [(t, v - points[0][1]) for t, v in points]
    panels.append(Panel("data dir growth since the warm-up (MB)", grown))
    panels.append(Panel("transfer submit to final (s), per sample",
                        {"p50": series("commit_p50_s"), "max": series("commit_max_s")}))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(line_chart(panels, x_label="minutes", title=title))
