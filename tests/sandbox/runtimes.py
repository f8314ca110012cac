"""Which runtimes the sandbox's doubled tests run under [JOB-RUNTIME.6].

Both ``runc`` and ``runsc`` wherever gVisor is installed (``make setup`` installs it and
registers it with the engine); there, an engine without ``runsc`` fails the tests, never
skips them: a runtime the node would use that was not tested is not known to contain
anything. ``LC_TEST_RUNTIMES=runc`` (comma-separated) narrows the list by hand.
"""

from __future__ import annotations

import os
from pathlib import Path

from sandbox.runtime import RUNC, RUNSC, RUNSC_PATH

RUNTIMES_ENV = "LC_TEST_RUNTIMES"


def runtimes_under_test() -> tuple[str, ...]:
    """``(runc, runsc)`` where runsc is installed, else ``(runc,)``; or the environment's."""
    chosen = os.environ.get(RUNTIMES_ENV, "")
    if chosen:
        names = tuple(name.strip() for name in chosen.split(",") if name.strip())
        unknown = set(names) - {RUNC, RUNSC}
        if unknown or not names:
            raise ValueError(f"{RUNTIMES_ENV}={chosen!r}: runtimes are {RUNC} and {RUNSC}")
        return names
    return (RUNC, RUNSC) if Path(RUNSC_PATH).exists() else (RUNC,)


RUNTIMES = runtimes_under_test()
