"""Frames between the executor host and its prediction sandbox [PRED-EXEC.2].

The channel is the container's own stdin and stdout (attached, no network, no file the
container could write on the host). Both sides import this module, so the framing is
written once:

- host → sandbox: ``u32 rows | u32 length | payload`` (big-endian). The first frame after
  start is the configuration (``rows`` 0, payload ``encode([mode, model record])``); every
  later one is one request, its payload the input blob.
- sandbox → host: ``u8 kind | u32 length | payload``: ``READY`` (payload empty) once the model
  loaded, ``ANSWER`` with the answer bytes, or ``ERROR`` with a UTF-8 message (the model was
  refused, or the server broke), after which the server exits.

Every length is bounded by the reader before it reads the payload, so neither side can be
made to buffer more than its stated cap.
"""

from __future__ import annotations

import os
import select
import struct
from typing import BinaryIO

READY, ANSWER, ERROR = 1, 2, 3
KINDS = (READY, ANSWER, ERROR)
REQUEST_HEAD = struct.Struct(">II")
REPLY_HEAD = struct.Struct(">BI")
MAX_REQUEST_BYTES = 64 * 1024 * 1024
"""The largest input blob ([PRED-IO.1]: 64 MiB; a CKKS batch likewise)."""
MAX_REPLY_BYTES = 8 * 1024 * 1024
"""The largest reply: a CKKS scores blob is at most 4 MiB, a labels answer ~12 KB."""
MAX_ERROR_BYTES = 4096
EXECUTOR_FAULT = "executor: "
"""How an ``ERROR`` message at start begins when the fault is the executor's own sandbox
(its image lacks TenSEAL, the host sent a bad configuration), not the deployed model: the
executor must not answer "does not load" [PRED-UNLOADABLE.1] for its own fault."""
MODEL_FAULT = "model: "
"""How an ``ERROR`` message *after* ``READY`` begins when the deployed model itself failed on
a request (ONNX Runtime reported an error, e.g. an allocation over the sandbox's limit,
[PRED-EXEC.6]): deterministic, so the executor answers "does not load" as at start."""


def request_frame(rows: int, payload: bytes) -> bytes:
    """One host → sandbox frame."""
    if not 0 <= rows < 2**32 or len(payload) > MAX_REQUEST_BYTES:
        raise ValueError(f"frame out of bounds: rows {rows}, {len(payload)} bytes")
    return REQUEST_HEAD.pack(rows, len(payload)) + payload


def reply_frame(kind: int, payload: bytes) -> bytes:
    """One sandbox → host frame; an error message is cut to ``MAX_ERROR_BYTES``."""
    if kind == ERROR:
        payload = payload[:MAX_ERROR_BYTES]
    return REPLY_HEAD.pack(kind, len(payload)) + payload


def write_whole(out: BinaryIO, data: bytes) -> None:
    """[JOB-RUNTIME.11] Write ``data`` to ``out`` whole, then return.

    Under gVisor a write to the container's stdout (a host pipe) takes at most 64 KiB and
    returns a short count, and Python's buffered stdout then stalls or drops the rest
    (measured with runsc 20221219 and 20240729: ``docker run --runtime=runsc`` passed
    65,536 of 235,000 bytes). So the bytes go to the file descriptor directly, in a loop
    over short writes, waiting for the pipe when it is full. A stream without a descriptor
    (a test's buffer) gets one ordinary write."""
    out.flush()
    try:
        fd = out.fileno()
    except (OSError, ValueError):
        out.write(data)
        out.flush()
        return
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            select.select([], [fd], [])


def read_request(stream: BinaryIO) -> tuple[int, bytes] | None:
    """The next request frame from ``stream``; None at a clean end of input.

    Raises ``ValueError`` on a truncated frame or a length over ``MAX_REQUEST_BYTES``."""
    head = stream.read(REQUEST_HEAD.size)
    if not head:
        return None
    if len(head) != REQUEST_HEAD.size:
        raise ValueError(f"truncated frame head ({len(head)} bytes)")
    rows, length = REQUEST_HEAD.unpack(head)
    if length > MAX_REQUEST_BYTES:
        raise ValueError(f"request of {length} bytes over {MAX_REQUEST_BYTES}")
    payload = stream.read(length)
    if len(payload) != length:
        raise ValueError(f"truncated frame: {len(payload)} of {length} bytes")
    return rows, payload


def parse_reply_head(head: bytes, cap: int) -> tuple[int, int]:
    """(kind, length) of a reply head, refusing an unknown kind or a length over ``cap``."""
    kind, length = REPLY_HEAD.unpack(head)
    if kind not in KINDS:
        raise ValueError(f"unknown reply kind {kind}")
    if length > (MAX_ERROR_BYTES if kind == ERROR else cap):
        raise ValueError(f"reply of {length} bytes over its cap")
    return kind, length
