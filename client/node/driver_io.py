"""What the consensus driver is given rather than reaching for: time, timers and its WAL
(``consensus_driver``), so that the simulator runs the very driver on a virtual clock."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol

from chain.consensus.wal import SignedRecord


class Clock(Protocol):
    def now_ms(self) -> int:
        """Wall-clock milliseconds since the Unix epoch (block times, [CONS-TIME.2])."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (latencies)."""
        ...


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Scheduler(Protocol):
    def call_later(self, delay_s: float, callback: Callable[[], None]) -> TimerHandle:
        """Runs ``callback`` once after ``delay_s`` seconds of the clock's time."""
        ...


class SignedLog(Protocol):
    """The write-ahead log [CONS-WAL.1]: ``chain.consensus.wal.WriteAheadLog`` in a node."""

    def append(self, record: SignedRecord) -> None: ...

    def prune(self, keep_from_height: int) -> None: ...

    def close(self) -> None: ...


class SystemClock:
    def now_ms(self) -> int:
        return int(time.time() * 1000)

    def monotonic(self) -> float:
        return time.monotonic()


class LoopScheduler:
    """Timers on the running asyncio loop."""

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> TimerHandle:
        return asyncio.get_running_loop().call_later(delay_s, callback)
