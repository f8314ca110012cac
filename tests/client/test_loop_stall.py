"""The loop-stall watchdog names the code that blocks a node's event loop, on a real loop
and a real thread (client/observe/loop_stall.py)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from client.observe.loop_stall import (
    DEFAULT_STALL_S,
    STALL_ENV,
    LoopStallWatch,
    stall_threshold,
)


def block_the_loop_for(seconds: float) -> None:
    time.sleep(seconds)  # stands for a synchronous engine call or a long write


async def blocked_then_free(watch: LoopStallWatch) -> None:
    await asyncio.sleep(0.3)
    block_the_loop_for(1.2)
    await asyncio.sleep(0.8)  # the loop turns again: the watchdog says how long it lasted
    watch.stop()


def watched(story: Callable[[LoopStallWatch], Coroutine[Any, Any, None]], stall_s: float,
            caplog: pytest.LogCaptureFixture) -> LoopStallWatch:
    """Runs ``story`` on a fresh loop under a watchdog started on that loop; the watchdog."""
    loop = asyncio.new_event_loop()
    try:
        watch = LoopStallWatch(loop, stall_s=stall_s)
        with caplog.at_level(logging.WARNING, logger="client.observe.loop_stall"):
            loop.call_soon(watch.start)
            loop.run_until_complete(story(watch))
    finally:
        loop.close()
    return watch


def test_a_blocked_loop_is_reported_with_the_line_that_blocks_it(
        caplog: pytest.LogCaptureFixture) -> None:
    watch = watched(blocked_then_free, 0.5, caplog)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, messages
    assert "has not turned for" in messages[0]
    assert "block_the_loop_for" in messages[0] and "time.sleep" in messages[0], messages[0]
    assert "turned again after a" in messages[1]
    assert watch.record.stalls == 1
    assert 1.0 <= watch.record.longest_s < 5.0, watch.record


def test_a_loop_that_keeps_turning_is_never_reported(caplog: pytest.LogCaptureFixture) -> None:
    async def busy_but_cooperative(watch: LoopStallWatch) -> None:
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            time.sleep(0.05)  # short slices, each far shorter than the threshold
            await asyncio.sleep(0)
        watch.stop()

    watch = watched(busy_but_cooperative, 1.5, caplog)
    assert not caplog.records
    assert watch.record.stalls == 0


@pytest.mark.parametrize(("text", "expected"), [
    ("", DEFAULT_STALL_S), ("2.5", 2.5), ("0", None), ("-1", None),
    ("soon", DEFAULT_STALL_S)])
def test_the_threshold_comes_from_the_environment(text: str, expected: float | None) -> None:
    assert stall_threshold({STALL_ENV: text}) == expected
