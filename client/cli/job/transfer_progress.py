"""Progress of the blobs ``job submit`` uploads: a ``rich`` bar per blob on a terminal, plain
lines otherwise.

Why both: a person at a terminal wants a live bar (bytes, rate, time left) for the
first upload of a layer that may be large; a CI log or a pipe wants a few lines it
can read afterwards, not carriage returns. Plain lines come at most every
``EVERY_S`` seconds per blob, plus one when the blob is complete; ``quiet`` (the
``--json`` form) shows only the complete lines. A blob the node holds already is
one line saying so (``held``): nothing is sent for it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import IO

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

EVERY_S = 2.0
"""Seconds between two plain progress lines of one blob."""

Callback = Callable[[int, int], None]
"""``progress(done, total)``, as ``ApiClient.upload_blob`` calls it."""


def percent(done: int, total: int) -> str:
    return f"{100.0 * done / total:.0f}%" if total else "100%"


class TransferProgress:
    """``with TransferProgress(quiet) as bars: client.upload_blob(path, bars.blob(what, size))``."""

    def __init__(self, quiet: bool, *, stream: IO[str] | None = None,
                 terminal: bool | None = None, every_s: float = EVERY_S) -> None:
        self.quiet = quiet
        self.console = Console(file=stream or sys.stderr, highlight=False,
                               force_terminal=terminal)
        self.every_s = every_s
        self.live = not quiet and self.console.is_terminal
        self._bars: Progress | None = None

    def __enter__(self) -> TransferProgress:
        if self.live:
            self._bars = Progress(TextColumn("{task.description}"), BarColumn(),
                                  DownloadColumn(), TransferSpeedColumn(),
                                  TimeRemainingColumn(), console=self.console)
            self._bars.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._bars is not None:
            self._bars.stop()
            self._bars = None

    def line(self, text: str) -> None:
        """One plain line, above the bars when they are live."""
        if self._bars is not None:
            self._bars.console.print(text, markup=False, highlight=False)
        else:
            self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def held(self, what: str, blob: bytes, size: int) -> None:
        self.line(f"{what}: blob {blob.hex()[:16]} ({size:,} bytes) already on the node, "
                  f"not sent")

    def blob(self, what: str, size: int) -> Callback:
        """The progress callback of one upload of ``size`` bytes."""
        label = f"uploading {what}"
        if self._bars is not None:
            bars = self._bars
            task = bars.add_task(label, total=max(size, 1))

            def update(done: int, _total: int) -> None:
                bars.update(task, completed=done)

            return update
        started = time.monotonic()
        last = [started, -1]

        def plain(done: int, _total: int) -> None:
            now = time.monotonic()
            complete = done >= size
            if complete and last[1] >= size:
                return  # said already
            if complete or (not self.quiet and now - last[0] >= self.every_s):
                last[0], last[1] = now, done
                rate = done / max(now - started, 1e-3)
                self.line(f"{label}: {done:,} / {size:,} bytes ({percent(done, size)})"
                          f"{f', {rate / 1e6:.1f} MB/s' if complete else ''}")

        return plain
