"""One HTTP(S) fetch with a whole deadline and a size bound [NODE-INIT.6] [NODE-READ.2].

``urlopen(url, timeout=T)`` bounds each socket operation, not the fetch: a server that sends
a byte every ``T - 1`` seconds (in the status line, the headers or the body) holds the caller
for as long as it likes. Here every connection of the fetch (redirects included) is watched:
at the deadline a timer shuts it down (``shutdown(SHUT_RDWR)`` on a duplicate of its socket,
so even a read blocked inside ``http.client`` or a TLS handshake returns at once), and the
fetch is refused as late whatever it had read by then. The body is read to ``max_bytes + 1``
at most (a larger ``Content-Length`` is refused before the body is read).

Not covered by the deadline: the system resolver's name lookup (``getaddrinfo`` cannot be
interrupted; it has the resolver's own timeouts).
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

from chain.errors import ChainError

READ_TIMEOUT_S = 30.0
"""The most one socket operation may wait, inside the whole deadline."""
READ_CHUNK = 64 * 1024


class FetchError(ChainError):
    """[NODE-READ.2] A fetch that failed, ran past its deadline (``fetch_deadline``) or
    answered more than its bound (``fetch_too_large``): names the URL, the bytes read, and
    the deadline or bound."""

    code = "fetch_failed"

    def __init__(self, url: str, message: str, *, code: str, read: int = 0,
                 reason: str = "") -> None:
        super().__init__(f"{url}: {message}", code=code)
        self.url, self.read = url, read
        self.reason = reason or message
        """Why, without the URL: the socket's or the resolver's error for ``fetch_failed``."""


@dataclass(frozen=True, slots=True)
class Fetched:
    """A whole answer: its HTTP status (an error status is an answer too), headers, body."""

    url: str
    status: int
    reason: str
    headers: Message
    body: bytes


class _Watch:
    """Shuts every connection of one fetch down at its deadline."""

    def __init__(self, seconds: float) -> None:
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._done = False
        self.expired = False
        self._timer = threading.Timer(max(seconds, 0.0), self._expire)
        self._timer.daemon = True
        self._timer.start()

    def add(self, sock: socket.socket) -> None:
        """Watches ``sock`` through a duplicate: a TLS wrap detaches the original object,
        the duplicate still names the connection."""
        dup = sock.dup()
        with self._lock:
            self._sockets.append(dup)
            if self.expired:
                _shut(dup)

    def _expire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.expired = True
            for sock in self._sockets:
                _shut(sock)

    def stop(self) -> bool:
        """Ends the watch; True when the deadline came first."""
        self._timer.cancel()
        with self._lock:
            self._done = True
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()
            return self.expired


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed by the fetch: nothing to cut
        sock.shutdown(socket.SHUT_RDWR)


class _WatchedHTTP(http.client.HTTPConnection):
    def __init__(self, *args: Any, watch: _Watch, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._create_connection = functools.partial(_watched_connection, watch)


class _WatchedHTTPS(http.client.HTTPSConnection):
    def __init__(self, *args: Any, watch: _Watch, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._create_connection = functools.partial(_watched_connection, watch)


def _watched_connection(watch: _Watch, address: tuple[str, int], timeout: Any = None,
                        source_address: Any = None) -> socket.socket:
    sock = socket.create_connection(address, timeout, source_address)
    watch.add(sock)
    return sock


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, watch: _Watch) -> None:
        super().__init__()
        self._watch = watch

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(functools.partial(_WatchedHTTP, watch=self._watch), req)


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """The default verifying context, made once (loading the CA store costs ~20 ms)."""
    return ssl.create_default_context()


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, watch: _Watch) -> None:
        super().__init__()
        self._watch = watch

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(functools.partial(_WatchedHTTPS, watch=self._watch), req,
                            context=_tls_context())


def fetch(request: str | urllib.request.Request, *, deadline_s: float, max_bytes: int,
          read_timeout_s: float = READ_TIMEOUT_S, sink: Callable[[bytes], None] | None = None,
          on_headers: Callable[[Message], None] | None = None,
          clock: Callable[[], float] = time.monotonic) -> Fetched:
    """[NODE-READ.2] The whole answer to ``request`` within ``deadline_s`` seconds from now
    (connections, TLS, status line, headers and body), with a body of at most ``max_bytes``;
    else ``FetchError`` naming the URL, the bytes read and the deadline or bound. With a
    ``sink``, the body goes to it chunk by chunk (a download to disk) and ``body`` is empty;
    ``on_headers`` sees the headers before the body."""
    url = request if isinstance(request, str) else request.full_url
    watch = _Watch(deadline_s)
    body = _Body(url, max_bytes, clock() + deadline_s, deadline_s, clock, sink)
    opener = urllib.request.build_opener(_HTTPHandler(watch), _HTTPSHandler(watch))
    try:
        try:
            resp = opener.open(request, timeout=min(read_timeout_s, deadline_s))
        except urllib.error.HTTPError as e:  # an error status is an answer: read it bounded
            resp = e
        with resp:
            status = int(resp.status if resp.status is not None else 0)
            reason = str(getattr(resp, "reason", "") or "")
            _refuse_length(url, resp.headers, max_bytes)
            if on_headers is not None:
                on_headers(resp.headers)
            body.read_from(resp)
    except FetchError:
        if watch.stop():
            raise body.late() from None
        raise
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
        if watch.stop():
            raise body.late() from None
        why = e.reason if isinstance(e, urllib.error.URLError) else e
        raise FetchError(url, f"cannot fetch: {why}", code="fetch_failed",
                         read=body.read, reason=str(why)) from None
    if watch.stop():  # shut down mid-body: what was read may be cut short
        raise body.late()
    return Fetched(url, status, reason, resp.headers, b"".join(body.chunks))


def _refuse_length(url: str, headers: Message, max_bytes: int) -> None:
    length = headers.get("Content-Length", "")
    if length.strip().isdigit() and int(length) > max_bytes:
        raise FetchError(url, f"announces {int(length)} bytes (Content-Length), more than "
                              f"the bound of {max_bytes} bytes: refused before reading",
                         code="fetch_too_large")


@dataclass(slots=True)
class _Body:
    """The body of one answer as it is read: bounded, and checked against the deadline."""

    url: str
    max_bytes: int
    deadline: float
    deadline_s: float
    clock: Callable[[], float]
    sink: Callable[[bytes], None] | None
    chunks: list[bytes] = field(default_factory=list)
    read: int = 0

    def read_from(self, resp: Any) -> None:
        take = getattr(resp, "read1", resp.read)
        while self.read <= self.max_bytes:
            if self.clock() >= self.deadline:
                raise self.late()
            chunk = take(min(READ_CHUNK, self.max_bytes + 1 - self.read))
            if not chunk:
                return
            self.read += len(chunk)
            if self.read > self.max_bytes:
                break
            if self.sink is None:
                self.chunks.append(chunk)
            else:
                self.sink(chunk)
        raise FetchError(self.url, f"answered more than the bound of {self.max_bytes} bytes "
                                   f"({self.read} read before stopping)",
                         code="fetch_too_large", read=self.read)

    def late(self) -> FetchError:
        return FetchError(self.url, f"did not answer in full within the deadline of "
                                    f"{self.deadline_s:g} s ({self.read} bytes of the body "
                                    "read): refused", code="fetch_deadline", read=self.read)
