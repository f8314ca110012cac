"""Where a long-running node's memory goes: tracemalloc reports written to a folder.

An operator (or a soak) who sees a node's RSS creep sets ``LC_TRACEMALLOC_DIR=DIR``
before ``node start``. The node then traces Python allocations (``LC_TRACEMALLOC_FRAMES``
frames each, default 6) and every ``LC_TRACEMALLOC_EVERY_S`` seconds (default 300) writes
``DIR/memory-PID-N-SECONDSs.txt`` (N counts the reports) with:

- the traced total;
- what lies outside Python's allocations: SQLite's page caches (``sqlite3_memory_used``)
  and glibc's heap in use and free (``mallinfo2``). A creep there is a cache filling up
  or fragmentation, not a Python object kept;
- the allocation sites that grew most since the first report, by line and by call chain.

Text, never a pickle: the reports are read by people and nothing loads them back.
Tracing roughly doubles the cost of an allocation: a diagnosis switch, off by default.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import time
import tracemalloc
from pathlib import Path

log = logging.getLogger(__name__)

DIR_ENV = "LC_TRACEMALLOC_DIR"
FRAMES_ENV = "LC_TRACEMALLOC_FRAMES"
EVERY_ENV = "LC_TRACEMALLOC_EVERY_S"
TOP = 25
"""Sites listed per report, by line and by call chain."""
IGNORED = (tracemalloc.Filter(False, tracemalloc.__file__),
           tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
           tracemalloc.Filter(False, "<frozen importlib._bootstrap_external>"),
           tracemalloc.Filter(False, "<unknown>"),
           tracemalloc.Filter(False, "*/linecache.py"))


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def _loaded_library(fragment: str) -> ctypes.CDLL | None:
    """The shared library this process already mapped whose path holds ``fragment``."""
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.split()[-1]
                if fragment in path and path.startswith("/"):
                    return ctypes.CDLL(path)
    except OSError:
        return None
    return None


def native_memory() -> list[str]:
    """SQLite's and glibc malloc's own accounts, where this process has them."""
    lines = []
    sqlite = _loaded_library("libsqlite3")
    if sqlite is not None:
        sqlite.sqlite3_memory_used.restype = ctypes.c_int64
        sqlite.sqlite3_memory_highwater.restype = ctypes.c_int64
        sqlite.sqlite3_memory_highwater.argtypes = [ctypes.c_int]
        lines.append(f"sqlite: {sqlite.sqlite3_memory_used() / 2**20:.2f} MiB in use "
                     f"(high water {sqlite.sqlite3_memory_highwater(0) / 2**20:.2f} MiB)")
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
        info = libc.mallinfo2()
    except (OSError, AttributeError):
        return lines
    lines.append(f"malloc: {info.uordblks / 2**20:.2f} MiB in use, {info.fordblks / 2**20:.2f} "
                 f"MiB free in the heap ({info.arena / 2**20:.2f} MiB arena), "
                 f"{info.hblkhd / 2**20:.2f} MiB in {info.hblks} mmap blocks")
    return lines


class MemoryTrace:
    """The first snapshot, kept as the baseline each later report is compared with."""

    def __init__(self, folder: Path, every_s: float) -> None:
        self.folder, self.every_s = folder, every_s
        self.started = time.monotonic()
        self.baseline: tracemalloc.Snapshot | None = None
        self.reports = 0

    def report(self) -> Path:
        """Writes one report; the first one becomes the baseline."""
        snapshot = tracemalloc.take_snapshot().filter_traces(IGNORED)
        elapsed = int(time.monotonic() - self.started)
        current, peak = tracemalloc.get_traced_memory()
        lines = [f"pid {os.getpid()} at {elapsed} s: traced {current / 2**20:.2f} MiB "
                 f"(peak {peak / 2**20:.2f} MiB)", *native_memory()]
        if self.baseline is None:
            self.baseline = snapshot
            lines.append("baseline; largest sites by line:")
            lines += [f"  {stat}" for stat in snapshot.statistics("lineno")[:TOP]]
        else:
            for key in ("lineno", "traceback"):
                lines.append(f"grown most since the baseline, by {key}:")
                for diff in snapshot.compare_to(self.baseline, key)[:TOP]:
                    lines.append(f"  {diff.size_diff / 1024:+.1f} KiB "
                                 f"({diff.count_diff:+d} blocks), now {diff.size / 1024:.1f} KiB")
                    frames = diff.traceback if key == "traceback" else diff.traceback[:1]
                    lines += [f"    {frame.filename}:{frame.lineno}" for frame in frames]
        path = self.folder / f"memory-{os.getpid()}-{self.reports:04d}-{elapsed}s.txt"
        self.reports += 1
        path.write_text("\n".join(lines) + "\n")
        return path

    async def run(self) -> None:
        while True:
            try:
                self.report()
            except OSError as e:  # a full or removed folder: the node carries on
                log.warning("memory trace report not written: %s", e)
            await asyncio.sleep(self.every_s)


def start_memory_trace() -> asyncio.Task[None] | None:
    """Starts tracing and its report task when ``LC_TRACEMALLOC_DIR`` is set."""
    folder = os.environ.get(DIR_ENV)
    if not folder:
        return None
    try:
        frames = int(os.environ.get(FRAMES_ENV, "6"))
        every_s = float(os.environ.get(EVERY_ENV, "300"))
    except ValueError as e:  # a diagnosis switch never stops a running node
        log.warning("memory trace off: %s / %s: %s", FRAMES_ENV, EVERY_ENV, e)
        return None
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    tracemalloc.start(max(1, frames))
    log.info("tracing memory: a report every %.0f s in %s", every_s, path)
    return asyncio.get_running_loop().create_task(MemoryTrace(path, every_s).run())


async def stop_memory_trace(task: asyncio.Task[None] | None) -> None:
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    tracemalloc.stop()
