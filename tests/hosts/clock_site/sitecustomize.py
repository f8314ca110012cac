"""Run at start-up by every Python process on a test-bed host whose clock is offset.

Why: the host's clock is libfaketime (``FAKETIME=+4s``, ``DONT_FAKE_MONOTONIC=1``), and
Debian 12's libfaketime 0.9.10 mistranslates ``clock_nanosleep(CLOCK_MONOTONIC,
TIMER_ABSTIME)``, which Python 3.11's ``time.sleep`` calls: every ``time.sleep`` (and so
``Popen.wait(timeout=...)``) raised ``OSError: [Errno 22] Invalid argument``
(libfaketime issue #426). A +4 s node's sandbox runner failed its evaluations that way.
Faking the monotonic clock too is no way out: ``threading.Event.wait`` then hangs (issue
#469). So on such a host ``time.sleep`` waits in ``select`` (a relative timeout, which
libfaketime passes through), against the real monotonic clock.
"""

import operator
import os
import select
import time
from typing import SupportsIndex

if "faketime" in os.environ.get("LD_PRELOAD", ""):
    _monotonic = time.monotonic

    def _sleep(secs: float | SupportsIndex) -> None:
        seconds = secs if isinstance(secs, float) else float(operator.index(secs))
        if seconds < 0:
            raise ValueError("sleep length must be non-negative")
        deadline = _monotonic() + seconds
        while (left := deadline - _monotonic()) > 0:
            select.select([], [], [], left)

    time.sleep = _sleep
