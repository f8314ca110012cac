"""Bounded zlib for image manifest v2 [JOB-IMAGE.10-11]: the config travels compressed.

A v2 manifest blob is ``LCIMG/2\\n`` and one zlib stream (RFC 1950) of the
manifest body and the image config. zlib is in every language's standard
library and ``zlib.compress`` at one level is deterministic for one zlib, so
the reference writer's blob is reproducible; readers accept any valid stream
(the id that matters is the image id, computed over the decompressed config).

Decompression is bounded *while* it runs (``decompressobj`` with
``max_length``): a stream that would inflate past ``limit`` is refused after at
most ``limit + 1`` bytes of output were made, so a small hostile blob cannot
make a worker allocate gigabytes. Pure functions, no I/O.
"""

from __future__ import annotations

import zlib

from sandbox.errors import ImageBlobError

LEVEL = 9
"""The reference writer's level: the smallest output of the stdlib's deflate."""


class InflateError(ImageBlobError):
    """A compressed manifest is not exactly one complete zlib stream within the bound
    [JOB-IMAGE.11]; carries why and the first bytes of the stream."""


def deflate(payload: bytes) -> bytes:
    """[JOB-IMAGE.10] The reference compression of a v2 payload: ``zlib.compress`` level 9."""
    return zlib.compress(payload, LEVEL)


def inflate_bounded(stream: bytes, limit: int) -> bytes:
    """[JOB-IMAGE.11] The payload of ``stream``, at most ``limit`` bytes, or ``InflateError``.

    Refused: a corrupt stream, one that would inflate past ``limit`` (checked while
    inflating), one that ends before its end marker (truncated), and bytes after
    the end of the stream (so a blob cannot carry anything its digest-checked
    payload does not say).
    """
    head = stream[:16].hex()
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(stream, limit + 1)
    except zlib.error as e:
        raise InflateError(f"manifest stream is not valid zlib ({e}); starts {head}") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise InflateError(f"manifest stream inflates past {limit} bytes (stopped there); "
                           f"{len(stream)} compressed bytes, starts {head}")
    if not inflater.eof:
        raise InflateError(f"manifest stream is truncated: no end of stream after "
                           f"{len(stream)} bytes ({len(out)} inflated); starts {head}")
    if inflater.unused_data:
        raise InflateError(f"{len(inflater.unused_data)} bytes after the end of the manifest "
                           f"stream: {inflater.unused_data[:16].hex()}")
    return out
