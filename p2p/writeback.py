"""Start writing a file range to disk early, so the final fsync has little left.

A fetched blob is fsynced before it is renamed into the store [WIRE-BLOB.7].
Left to the end, that flush of hundreds of MiB costs as much as the transfer
itself; asking Linux to start writeback as each chunk lands
(``sync_file_range(SYNC_FILE_RANGE_WRITE)``, which does not wait) overlaps it
with receiving. Elsewhere, or if the call is unavailable, this does nothing
and the final fsync does all the work: same safety, less speed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_SYNC_FILE_RANGE_WRITE = 2


def _load() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    fn.restype = ctypes.c_int
    return fn


_sync_file_range = _load()


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Asks the kernel to begin writing ``[offset, offset+length)`` of ``fd`` to disk."""
    if _sync_file_range is not None:
        _sync_file_range(fd, offset, length, _SYNC_FILE_RANGE_WRITE)
