"""The bulk side stream for blob chunks [WIRE-BLOB.9].

Chunks over the WebSocket cost the fetcher two copies per frame (aiohttp's
reader) plus msgpack framing, and aiohttp pauses the socket after every
512 KiB queued; the server copies each chunk into a frame. The bulk stream
moves the same bytes over a plain HTTP/1.1 range request on the peer's
listening port instead: the server answers with ``sendfile`` (no copy in
Python), the fetcher ``recv_into``s a reused buffer on a worker thread, checks the
chunk against the manifest and writes it. (``O_DIRECT`` writes were tried and
were slower here: the write then waits for the disk inside the pipeline.)

Who may read is decided over the authenticated WebSocket: ``getbulk``
returns a random token bound to that peer and blob (``BulkGrants``); the
HTTP request presents it. The bytes themselves need no trust: every chunk
is checked exactly as in [WIRE-BLOB.5].

This module holds the pure token bookkeeping and the blocking client; the
wiring is in ``p2p.blobs``.
"""

from __future__ import annotations

import http.client
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from chain.content import CHUNK_SIZE
from chain.types import Address
from p2p.errors import P2PError

BULK_SERVICE = "blob"
BULK_PATH = "/p2p/blob/{blob}"
AUTH_SCHEME = "LC-Bulk"
TOKEN_BYTES = 16
TOKEN_IDLE_SECONDS = 30.0
"""[WIRE-BLOB.9] A token lapses this long after it was issued or last used."""
MAX_TOKENS_PER_PEER = 8
MAX_TOKENS = 256
MAX_STREAMS_PER_TOKEN = 4
"""[WIRE-BLOB.9] Concurrent range requests one token may have open."""
RUN_CHUNKS = 32
"""Chunks asked for in one range request: big enough to amortise the request
(16 measured slower), small enough that a dead source gives little work back."""


@dataclass(slots=True)
class _Grant:
    peer: Address
    blob: bytes
    expires: float
    streams: int = 0


@dataclass(slots=True)
class BulkGrants:
    """Server side: which tokens are live, for whom and for which blob. No I/O."""

    idle_seconds: float = TOKEN_IDLE_SECONDS
    per_peer: int = MAX_TOKENS_PER_PEER
    total: int = MAX_TOKENS
    _grants: dict[bytes, _Grant] = field(default_factory=dict)

    def issue(self, peer: Address, blob: bytes, now: float) -> bytes | None:
        """A fresh token for ``peer`` to read ``blob``; None when over a limit."""
        self._expire(now)
        if len(self._grants) >= self.total:
            return None
        if sum(1 for g in self._grants.values() if g.peer == peer) >= self.per_peer:
            return None
        token = secrets.token_bytes(TOKEN_BYTES)
        self._grants[token] = _Grant(peer, blob, now + self.idle_seconds)
        return token

    def open_stream(self, token: bytes, blob: bytes, now: float) -> bool:
        """Admits one range request presenting ``token`` for ``blob``; renews the token."""
        self._expire(now)
        grant = self._grants.get(token)
        if grant is None or grant.blob != blob or grant.streams >= MAX_STREAMS_PER_TOKEN:
            return False
        grant.streams += 1
        grant.expires = now + self.idle_seconds
        return True

    def close_stream(self, token: bytes, now: float) -> None:
        grant = self._grants.get(token)
        if grant is not None:
            grant.streams -= 1
            grant.expires = now + self.idle_seconds

    def revoke_peer(self, peer: Address) -> None:
        """A disconnected peer's tokens die with its connection."""
        for token in [t for t, g in self._grants.items() if g.peer == peer]:
            del self._grants[token]

    def __len__(self) -> int:
        return len(self._grants)

    def _expire(self, now: float) -> None:
        for token in [t for t, g in self._grants.items() if g.expires <= now and not g.streams]:
            del self._grants[token]


class BulkError(P2PError):
    """The bulk stream cannot be used with this peer (refused, unreachable, cut short)."""


class BadChunk(P2PError):
    """A chunk from the bulk stream did not match the manifest."""

    def __init__(self, index: int) -> None:
        super().__init__(f"chunk {index} does not match the manifest")
        self.index = index


class Cancelled(P2PError):
    """The fetch this stream belonged to has ended."""


CheckAndWrite = Callable[[int, memoryview], bool]
"""(index, data) -> the chunk matched the manifest and was written."""


class BulkStream:
    """One keep-alive HTTP connection to one peer, used from one worker thread.

    ``fetch_run`` pulls consecutive chunks with one range request; every chunk
    goes through ``check_and_write`` before the next is read, and
    ``on_verified`` hears of each at once (progress). One buffer is reused
    for every chunk.
    """

    def __init__(
        self, host: str, port: int, blob: bytes, token: bytes, size: int, *, timeout: float
    ) -> None:
        self.host = host
        self.port = port
        self.path = BULK_PATH.format(blob=blob.hex())
        self.token = token
        self.size = size
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None
        self._view = memoryview(bytearray(CHUNK_SIZE))

    def fetch_run(
        self,
        first: int,
        count: int,
        check_and_write: CheckAndWrite,
        on_verified: Callable[[int], None],
        cancelled: threading.Event,
    ) -> None:
        """Fetches chunks ``first … first+count-1``. Raises on the first problem.

        ``BulkError`` when the peer refuses or the connection fails, ``BadChunk``
        when a chunk is wrong, ``Cancelled`` when the fetch is over.
        """
        start = first * CHUNK_SIZE
        end = min(self.size, (first + count) * CHUNK_SIZE)
        response = self._request(start, end)
        try:
            for index in range(first, first + count):
                if cancelled.is_set():
                    raise Cancelled()
                length = min(CHUNK_SIZE, self.size - index * CHUNK_SIZE)
                view = self._view[:length]
                self._read_exactly(response, view)
                if not check_and_write(index, view):
                    raise BadChunk(index)
                on_verified(index)
        except BaseException:
            self.close()
            raise

    def _request(self, start: int, end: int) -> http.client.HTTPResponse:
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            self._conn.request(
                "GET",
                self.path,
                headers={
                    "Authorization": f"{AUTH_SCHEME} {self.token.hex()}",
                    "Range": f"bytes={start}-{end - 1}",
                },
            )
            response = self._conn.getresponse()
        except (OSError, http.client.HTTPException) as e:
            self.close()
            raise BulkError(f"bulk request to {self.host}:{self.port} failed: {e}") from e
        if response.status != 206 or response.length != end - start:
            self.close()
            raise BulkError(
                f"bulk request to {self.host}:{self.port} answered {response.status} "
                f"with {response.length} bytes, wanted 206 with {end - start}"
            )
        return response

    @staticmethod
    def _read_exactly(response: http.client.HTTPResponse, view: memoryview) -> None:
        got = 0
        try:
            while got < len(view):
                n = response.readinto(view[got:])
                if not n:
                    raise BulkError(f"bulk stream ended after {got} of {len(view)} bytes")
                got += n
        except (OSError, http.client.HTTPException) as e:
            raise BulkError(f"bulk stream failed: {e}") from e

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

