"""The bulk side stream for blob chunks [WIRE-BLOB.9].

Chunks over the WebSocket cost the fetcher two copies per frame (aiohttp's
reader) plus msgpack framing, and aiohttp pauses the socket after every
512 KiB queued; the server copies each chunk into a frame. The bulk stream
moves the same bytes over a plain HTTP/1.1 range request on the peer's
listening port instead: the server answers with ``sendfile`` (no copy in
Python), the fetcher ``recv_into``s a reused buffer on a worker thread, checks the
chunk against the manifest and writes it. (``O_DIRECT`` writes were tried and
were slower here: the write then waits for the disk inside the pipeline.)

Who may read is decided over the secure WebSocket: ``getbulk`` returns a
random secret token bound to that peer and blob (``BulkGrants``). The token
never travels in clear: the range request names the grant by a hash of it,
and every chunk travels sealed (AES-256-GCM) under a key derived from the
token and the channel's handshake hash [WIRE-SECURE.6], so an observer of
the stream sees neither the blob, nor its bytes, nor the token. The bytes
are then checked exactly as in [WIRE-BLOB.5]. (Sealing costs the server
its ``sendfile``: each chunk is read, sealed and written.)

This module holds the pure token bookkeeping and the blocking client; the
wiring is in ``p2p.blobs``.
"""

from __future__ import annotations

import http.client
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from chain.content import CHUNK_SIZE
from chain.types import Address
from p2p.errors import P2PError
from p2p.secure import TAG_LEN, bulk_grant_id, bulk_key, bulk_nonce

BULK_SERVICE = "blob"
BULK_PATH = "/p2p/blob/{grant}"
"""[WIRE-SECURE.6] The grant's public id (``bulk_grant_id(token)``), never the token or blob."""
SEALED_CHUNK = CHUNK_SIZE + TAG_LEN
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
class Grant:
    """A live grant: whose, for which blob, and the key its chunks are sealed with."""

    peer: Address
    blob: bytes
    key: bytes
    expires: float
    streams: int = 0


@dataclass(slots=True)
class BulkGrants:
    """Server side: which tokens are live, for whom and for which blob. No I/O."""

    idle_seconds: float = TOKEN_IDLE_SECONDS
    per_peer: int = MAX_TOKENS_PER_PEER
    total: int = MAX_TOKENS
    _grants: dict[bytes, Grant] = field(default_factory=dict)
    """By grant id (``bulk_grant_id(token)``); the token itself is not kept."""

    def issue(
        self, peer: Address, blob: bytes, now: float, handshake_hash: bytes
    ) -> bytes | None:
        """A fresh token for ``peer`` to read ``blob`` over the channel whose handshake
        hash is ``handshake_hash``; None when over a limit."""
        self._expire(now)
        if len(self._grants) >= self.total:
            return None
        if sum(1 for g in self._grants.values() if g.peer == peer) >= self.per_peer:
            return None
        token = secrets.token_bytes(TOKEN_BYTES)
        key = bulk_key(handshake_hash, token, blob)
        self._grants[bulk_grant_id(token)] = Grant(peer, blob, key, now + self.idle_seconds)
        return token

    def open_stream(self, grant_id: bytes, now: float) -> Grant | None:
        """Admits one range request naming ``grant_id``; renews the grant."""
        self._expire(now)
        grant = self._grants.get(grant_id)
        if grant is None or grant.streams >= MAX_STREAMS_PER_TOKEN:
            return None
        grant.streams += 1
        grant.expires = now + self.idle_seconds
        return grant

    def close_stream(self, grant_id: bytes, now: float) -> None:
        grant = self._grants.get(grant_id)
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
    """A chunk from the bulk stream did not match the manifest, or (``sealed``) did not
    even open [WIRE-SECURE.6]."""

    def __init__(self, index: int, *, sealed: bool = False) -> None:
        what = "does not authenticate" if sealed else "does not match the manifest"
        super().__init__(f"chunk {index} {what}")
        self.index = index
        self.sealed = sealed


def seal_chunk(aead: AESGCM, index: int, chunk: bytes | bytearray | memoryview) -> bytes:
    """[WIRE-SECURE.6] Chunk ``index`` as it travels: AES-256-GCM, nonce = the index."""
    return aead.encrypt(bulk_nonce(index), chunk, None)


def chunk_range(header: str, size: int) -> tuple[int, int] | None:
    """``bytes=<first>-<last>`` on chunk boundaries -> (first chunk, chunk count); None if not."""
    unit, _, spec = header.partition("=")
    first_s, dash, last_s = spec.partition("-")
    if unit.strip() != "bytes" or not dash or not first_s.isdigit() or not last_s.isdigit():
        return None
    first, last = int(first_s), int(last_s)
    end = last + 1
    if first % CHUNK_SIZE or first >= end or end > size or (end % CHUNK_SIZE and end != size):
        return None
    return first // CHUNK_SIZE, -(-end // CHUNK_SIZE) - first // CHUNK_SIZE


def sealed_length(first: int, count: int, size: int) -> int:
    """Bytes of chunks ``first … first+count-1`` once sealed."""
    end = min(size, (first + count) * CHUNK_SIZE)
    return end - first * CHUNK_SIZE + count * TAG_LEN


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
        self,
        host: str,
        port: int,
        blob: bytes,
        token: bytes,
        size: int,
        *,
        handshake_hash: bytes,
        timeout: float,
    ) -> None:
        self.host = host
        self.port = port
        self.path = BULK_PATH.format(grant=bulk_grant_id(token).hex())
        self.size = size
        self.timeout = timeout
        self._aead = AESGCM(bulk_key(handshake_hash, token, blob))
        self._conn: http.client.HTTPConnection | None = None
        self._sealed = memoryview(bytearray(SEALED_CHUNK))
        self._plain = bytearray(CHUNK_SIZE)

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
        response = self._request(start, end, sealed_length(first, count, self.size))
        plain = memoryview(self._plain)
        try:
            for index in range(first, first + count):
                if cancelled.is_set():
                    raise Cancelled()
                length = min(CHUNK_SIZE, self.size - index * CHUNK_SIZE)
                view = self._sealed[: length + TAG_LEN]
                self._read_exactly(response, view)
                try:
                    self._aead.decrypt_into(bulk_nonce(index), view, None, plain[:length])
                except InvalidTag:
                    raise BadChunk(index, sealed=True) from None
                if not check_and_write(index, plain[:length]):
                    raise BadChunk(index)
                on_verified(index)
        except BaseException:
            self.close()
            raise

    def _request(self, start: int, end: int, length: int) -> http.client.HTTPResponse:
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            self._conn.request("GET", self.path, headers={"Range": f"bytes={start}-{end - 1}"})
            response = self._conn.getresponse()
        except (OSError, http.client.HTTPException) as e:
            self.close()
            raise BulkError(f"bulk request to {self.host}:{self.port} failed: {e}") from e
        if response.status != 206 or response.length != length:
            self.close()
            raise BulkError(
                f"bulk request to {self.host}:{self.port} answered {response.status} "
                f"with {response.length} bytes, wanted 206 with {length}"
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

