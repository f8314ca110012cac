"""``LC_TRACEMALLOC_DIR``: a node's memory reports (client/observe/memory_trace.py), the
operator's switch for telling a cache that fills up from a leak on a long-running node."""

from __future__ import annotations

import asyncio
import sqlite3
import tracemalloc
from pathlib import Path

import pytest

from client.observe.memory_trace import (
    DIR_ENV,
    EVERY_ENV,
    native_memory,
    start_memory_trace,
    stop_memory_trace,
)

KEPT: list[bytes] = []


def _keep_allocating() -> None:
    """What a leak looks like: 2,000 objects of 1 KiB kept from this line on."""
    KEPT.extend(bytes(1024) + i.to_bytes(4, "big") for i in range(2000))


def test_reports_name_the_line_that_grew_and_the_native_accounts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DIR_ENV, str(tmp_path / "memory"))
    monkeypatch.setenv(EVERY_ENV, "0.2")
    db = sqlite3.connect(tmp_path / "x.sqlite3")  # SQLite loaded: its account is reported
    db.execute("create table t (v blob)")

    async def run() -> None:
        task = start_memory_trace()
        assert task is not None and tracemalloc.is_tracing()
        await asyncio.sleep(0.1)  # the baseline report
        _keep_allocating()
        await asyncio.sleep(0.3)  # a report after the growth
        await stop_memory_trace(task)

    try:
        asyncio.run(run())
    finally:
        KEPT.clear()
        db.close()
    assert not tracemalloc.is_tracing()
    reports = sorted((tmp_path / "memory").glob("memory-*.txt"))
    assert len(reports) >= 2, reports
    first, last = reports[0].read_text(), reports[-1].read_text()
    assert "baseline" in first and "grown most since the baseline" in last
    assert "sqlite:" in last and "malloc:" in last, last
    grown = last.split("by lineno:")[1].split("by traceback:")[0]
    top_site = grown.splitlines()[2].strip()  # the size line, then its file:line
    assert top_site.startswith(f"{__file__}:"), grown[:600]
    assert int(top_site.rsplit(":", 1)[1]) == _keep_allocating.__code__.co_firstlineno + 2


def test_off_unless_the_folder_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DIR_ENV, raising=False)

    async def run() -> None:
        assert start_memory_trace() is None

    asyncio.run(run())
    assert not tracemalloc.is_tracing()


def test_a_bad_interval_leaves_tracing_off(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The switch is read after the node started: a typo must not stop a running node."""
    monkeypatch.setenv(DIR_ENV, str(tmp_path / "memory"))
    monkeypatch.setenv(EVERY_ENV, "five minutes")

    async def run() -> None:
        assert start_memory_trace() is None

    asyncio.run(run())
    assert not tracemalloc.is_tracing() and not (tmp_path / "memory").exists()


def test_native_memory_reads_malloc_without_tracing() -> None:
    lines = native_memory()
    assert any(line.startswith("malloc: ") and "MiB in use" in line for line in lines), lines
