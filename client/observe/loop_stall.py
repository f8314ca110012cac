"""Says when a node's event loop stops turning, and where it stood.

Everything a node does (consensus, gossip, the HTTP API, the worker's bookkeeping) runs
on one asyncio loop, so code that blocks it (a synchronous engine call, a long SQLite
write, a large decode) freezes all of them at once: peers see a silent validator and
``job watch`` an unreachable node. asyncio's own debug mode finds such callbacks but
slows every one; this watchdog costs one timer on the loop and one sleeping thread.

The loop stamps a heartbeat every ``BEAT_S``. A daemon thread checks it; when the beat is
older than ``LC_LOOP_STALL_S`` (default ``DEFAULT_STALL_S``) it logs one warning with the
loop thread's stack at that moment (so the blocking line is named), and when the loop
turns again, how long the stall lasted. On a machine short of CPU the stack shows the
loop in ``select``: not blocked by code, starved. The count of stalls and the longest
is kept in ``record``. ``LC_LOOP_STALL_S=0`` turns the watchdog off.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
import traceback
from dataclasses import dataclass

log = logging.getLogger(__name__)

STALL_ENV = "LC_LOOP_STALL_S"
DEFAULT_STALL_S = 5.0
BEAT_S = 0.25
STACK_FRAMES = 12
"""Innermost frames logged: enough to name the blocking call and who made it."""


@dataclass
class StallRecord:
    """What the watchdog saw (written by its thread, read by any)."""

    stalls: int = 0
    longest_s: float = 0.0


class LoopStallWatch:
    """A heartbeat on ``loop`` and a thread that reports when it stops."""

    def __init__(self, loop: asyncio.AbstractEventLoop, stall_s: float) -> None:
        self.loop = loop
        self.stall_s = stall_s
        self.record = StallRecord()
        self._beat = time.monotonic()
        self._loop_thread = threading.get_ident()
        self._stop = threading.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._thread = threading.Thread(target=self._watch, name="loop-stall-watch",
                                        daemon=True)

    def start(self) -> None:
        self._tick()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._timer is not None:
            self._timer.cancel()
        self._thread.join(timeout=2 * BEAT_S + 1)

    def _tick(self) -> None:
        self._beat = time.monotonic()
        self._timer = self.loop.call_later(BEAT_S, self._tick)

    def _watch(self) -> None:
        stalled_since: float | None = None
        while not self._stop.wait(BEAT_S):
            beat = self._beat
            late = time.monotonic() - beat
            if stalled_since is None and late > self.stall_s:
                stalled_since = beat
                self.record.stalls += 1
                log.warning("the event loop has not turned for %.1f s (consensus, gossip and "
                            "the API wait on it); the loop thread is at:\n%s", late,
                            self._loop_stack())
            elif stalled_since is not None and beat > stalled_since:
                lasted = beat - stalled_since
                self.record.longest_s = max(self.record.longest_s, lasted)
                log.warning("the event loop turned again after a %.1f s stall", lasted)
                stalled_since = None

    def _loop_stack(self) -> str:
        frame = sys._current_frames().get(self._loop_thread)
        if frame is None:
            return "  (the loop thread is gone)"
        return "".join(traceback.format_stack(frame)[-STACK_FRAMES:]).rstrip()


def stall_threshold(environ: dict[str, str] | None = None) -> float | None:
    """Seconds from ``LC_LOOP_STALL_S`` (default ``DEFAULT_STALL_S``); None when off (0)."""
    text = (os.environ if environ is None else environ).get(STALL_ENV, "")
    if not text.strip():
        return DEFAULT_STALL_S
    try:
        value = float(text)
    except ValueError:  # a diagnosis switch never stops a node
        log.warning("%s=%r is not a number of seconds; using %.0f", STALL_ENV, text,
                    DEFAULT_STALL_S)
        return DEFAULT_STALL_S
    return value if value > 0 else None


def start_loop_stall_watch() -> LoopStallWatch | None:
    """Starts the watchdog on the running loop unless ``LC_LOOP_STALL_S=0``."""
    threshold = stall_threshold()
    if threshold is None:
        return None
    watch = LoopStallWatch(asyncio.get_running_loop(), threshold)
    watch.start()
    return watch
