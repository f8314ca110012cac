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
import os
from collections.abc import Callable
from typing import cast

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
NODE_ARENAS = 2
_applied = False


def _mallopt() -> Callable[[int, int], int] | None:
    """glibc's ``mallopt``, or None where there is none (musl, macOS)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return None
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return cast(Callable[[int, int], int], mallopt)


def tune_allocator(
    mmap_threshold: int = 32 * 1024 * 1024, trim_threshold: int = 128 * 1024 * 1024
) -> bool:
    """Applies glibc ``mallopt`` settings once per process; False where unsupported."""
    global _applied
    if _applied:
        return True
    mallopt = _mallopt()
    if mallopt is None:
        return False
    ok = bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(
        mallopt(_M_TRIM_THRESHOLD, trim_threshold)
    )
    _applied = ok
    if not ok:
        log.info("mallopt not supported; large frames use mmap'd buffers")
    return ok


def limit_arenas(arenas: int = NODE_ARENAS) -> bool:
    """[TX-SIG-CACHE.2] ``mallopt(M_ARENA_MAX, arenas)`` unless ``MALLOC_ARENA_MAX`` is set;
    whether it applied.

    glibc gives a thread that finds the main arena busy an arena of its own (up to 8 per
    core), and memory freed in one arena is not reused by another. A node's event loop
    allocates all the time, so once the signature-verify threads ran beside it each node
    held about 36 MiB more (bench/devnet.py, 4 validators: peak RSS 172-178 MiB against
    137-139 MiB with one verify thread) for no gain; with 2 arenas the same run peaked at
    137-138 MiB. An operator who set ``MALLOC_ARENA_MAX`` keeps their value."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    mallopt = _mallopt()
    return mallopt is not None and bool(mallopt(_M_ARENA_MAX, arenas))
