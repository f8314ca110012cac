"""Bound glibc's malloc arenas in a node process [TX-SIG-CACHE.2].

glibc gives a thread that finds the main arena busy an arena of its own (up to 8 per
core), and memory freed in one arena is not reused by another. A node's event loop
allocates all the time, so once the signature-verify threads ran beside it each node held
about 36 MiB more (bench/devnet.py, 4 validators: peak RSS 172-178 MiB against 137-139 MiB
with one verify thread) for no gain: with the arenas bounded to 2 the same run peaked at
137-138 MiB, at 4,817 tx/s and p50 0.655 s (one thread: 4,515 tx/s, p50 0.773 s). The
well-known fix is ``MALLOC_ARENA_MAX``; an operator who set it keeps their value.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

log = logging.getLogger(__name__)

M_ARENA_MAX = -8
"""``mallopt``'s parameter number (glibc ``malloc.h``)."""
NODE_ARENAS = 2


def limit_malloc_arenas(arenas: int = NODE_ARENAS) -> bool:
    """``mallopt(M_ARENA_MAX, arenas)`` on glibc unless ``MALLOC_ARENA_MAX`` is set; whether
    it applied. Elsewhere (musl, macOS) a no-op."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    applied = bool(mallopt(M_ARENA_MAX, arenas))
    if not applied:
        log.debug("mallopt(M_ARENA_MAX, %d) refused", arenas)
    return applied
