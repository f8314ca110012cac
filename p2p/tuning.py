"""Process-level tuning for moving megabyte frames.

Every blob chunk and sync batch allocates a few short-lived buffers of about
1 MiB (decoded value, canonical re-encoding). glibc serves allocations that
large with fresh ``mmap`` pages and returns them at once, so each frame pays
hundreds of page faults: decoding a 1 MiB chunk frame took ~1.5 ms instead of
~0.1 ms on the reference machine. Raising the mmap and trim thresholds keeps
such buffers in the heap for reuse. The cost is that up to ``trim_threshold``
bytes of freed heap stay mapped to the process.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_applied = False


def tune_allocator(
    mmap_threshold: int = 32 * 1024 * 1024, trim_threshold: int = 128 * 1024 * 1024
) -> bool:
    """Applies glibc ``mallopt`` settings once per process; False where unsupported."""
    global _applied
    if _applied:
        return True
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok = bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(
        mallopt(_M_TRIM_THRESHOLD, trim_threshold)
    )
    _applied = ok
    if not ok:
        log.info("mallopt not supported; large frames use mmap'd buffers")
    return ok
