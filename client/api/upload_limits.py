"""Per-client bounds on blob uploads [API-UPLOAD.1-4]: pure, the clock injected.

A *client* is the remote address the node sees (an IPv6 client by its /64: one
machine gets a whole /64 and can pick any address in it; an IPv4-mapped address is
its IPv4 address). No forwarding header is believed: behind a reverse proxy every
client is the proxy, so limit there.

Each client has two token buckets, both full at first and refilled continuously:
``uploads_per_minute`` uploads (the burst is one minute's worth) and
``upload_mb_per_hour`` MiB (the burst is one hour's worth), and at most
``PER_CLIENT_IN_FLIGHT`` uploads under way at once. An upload is admitted only if
every bound allows it, and then takes from both buckets; a refusal takes nothing
and says how long to wait (``Retry-After``). A declared ``Content-Length`` is charged
whole before a byte is read; a chunked body is charged chunk by chunk as it arrives.
``0`` turns a bucket off. The server owns one ``UploadLimiter`` and calls it from
its event loop only (no locking).
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from client.api.limits import MAX_UPLOAD_BYTES

MIB = 1024 * 1024
UPLOADS_PER_MINUTE = 60
"""[API-UPLOAD.2] Default: a job's image layers, data and hidden-set parts go up at once."""
UPLOAD_MB_PER_HOUR = 16 * 1024
"""[API-UPLOAD.2] Default MiB per client per hour: four blobs of the largest size."""
PER_CLIENT_IN_FLIGHT = 2
"""[API-UPLOAD.3] Uploads one client has under way at once (the node takes 4 in all)."""
MAX_CLIENTS = 10_000
"""Clients remembered; past it the least recently seen idle ones are forgotten."""


@dataclass(frozen=True, slots=True)
class UploadLimits:
    """What one client may upload; ``0`` turns a rate off (never the size bound)."""

    max_upload_bytes: int = MAX_UPLOAD_BYTES
    uploads_per_minute: int = UPLOADS_PER_MINUTE
    bytes_per_hour: int = UPLOAD_MB_PER_HOUR * MIB

    def problem(self) -> str | None:
        """Why these limits cannot work together, or None."""
        if self.max_upload_bytes < 1:
            return "max_upload_mb must be at least 1"
        if self.uploads_per_minute < 0 or self.bytes_per_hour < 0:
            return "upload rates cannot be negative"
        if 0 < self.bytes_per_hour < self.max_upload_bytes:
            return (f"upload_mb_per_hour ({self.bytes_per_hour // MIB}) is below "
                    f"max_upload_mb ({self.max_upload_bytes // MIB}): the largest blob "
                    "could never be uploaded")
        return None


@dataclass(frozen=True, slots=True)
class Refused:
    """An upload not admitted now: the 429's code and message, and when to retry."""

    code: str
    message: str
    retry_after_s: int


class Bucket:
    """A token bucket: ``capacity`` tokens, refilled at ``capacity / period_s`` per second."""

    __slots__ = ("capacity", "level", "rate", "stamp")

    def __init__(self, capacity: int, period_s: float, now: float) -> None:
        self.capacity = capacity
        self.rate = capacity / period_s
        self.level = float(capacity)
        self.stamp = now

    def refill(self, now: float) -> None:
        if now > self.stamp:
            self.level = min(float(self.capacity), self.level + (now - self.stamp) * self.rate)
        self.stamp = max(self.stamp, now)

    def wait_for(self, amount: int, now: float) -> float:
        """Seconds until ``amount`` tokens are there (0: now); takes nothing."""
        self.refill(now)
        missing = amount - self.level
        return 0.0 if missing <= 0 else missing / self.rate

    @property
    def full(self) -> bool:
        return self.level >= self.capacity


class _Client:
    __slots__ = ("bytes", "count", "in_flight")

    def __init__(self, count: Bucket | None, size: Bucket | None) -> None:
        self.count = count
        self.bytes = size
        self.in_flight = 0

    def idle(self, now: float) -> bool:
        """Nothing under way and both buckets full: forgetting it changes nothing."""
        for bucket in (self.count, self.bytes):
            if bucket is not None:
                bucket.refill(now)
                if not bucket.full:
                    return False
        return self.in_flight == 0


def _retry(seconds: float) -> int:
    return max(1, math.ceil(seconds))


class UploadLimiter:
    """The per-client upload bounds of one API server; ``clock`` is monotonic seconds."""

    def __init__(self, limits: UploadLimits, clock: Callable[[], float] = time.monotonic, *,
                 max_clients: int = MAX_CLIENTS) -> None:
        problem = limits.problem()
        if problem is not None:
            raise ValueError(problem)
        self.limits = limits
        self.clock = clock
        self.max_clients = max_clients
        self._clients: OrderedDict[str, _Client] = OrderedDict()

    def _client(self, client: str, now: float) -> _Client:
        state = self._clients.get(client)
        if state is None:
            per_min, per_hour = self.limits.uploads_per_minute, self.limits.bytes_per_hour
            state = _Client(Bucket(per_min, 60.0, now) if per_min else None,
                            Bucket(per_hour, 3600.0, now) if per_hour else None)
            self._clients[client] = state
            self._forget_idle(now)
        self._clients.move_to_end(client)
        return state

    def _forget_idle(self, now: float) -> None:
        if len(self._clients) <= self.max_clients:
            return
        for name in list(self._clients):
            if len(self._clients) <= self.max_clients:
                break
            if self._clients[name].idle(now):
                del self._clients[name]

    @property
    def clients(self) -> int:
        return len(self._clients)

    def start(self, client: str, declared: int | None) -> Refused | None:
        """[API-UPLOAD.2-3] Admit one upload (then ``finish`` it), or say why not now.

        ``declared`` is the body's Content-Length (None when chunked: ``charge`` each
        piece instead); it must already be within ``max_upload_bytes`` (413 first)."""
        now = self.clock()
        state = self._client(client, now)
        if state.in_flight >= PER_CLIENT_IN_FLIGHT:
            return Refused("uploads_in_progress",
                           f"{state.in_flight} uploads of yours are under way; at most "
                           f"{PER_CLIENT_IN_FLIGHT} at once", 1)
        if state.count is not None:
            wait = state.count.wait_for(1, now)
            if wait > 0:
                return Refused("upload_rate_limited",
                               f"more than {self.limits.uploads_per_minute} uploads a minute "
                               f"from {client}; retry in {_retry(wait)} s", _retry(wait))
        if declared and state.bytes is not None:
            wait = state.bytes.wait_for(declared, now)
            if wait > 0:
                return self._over_budget(client, wait)
            state.bytes.level -= declared
        if state.count is not None:
            state.count.level -= 1
        state.in_flight += 1
        return None

    def charge(self, client: str, size: int) -> Refused | None:
        """A piece of a chunked upload under way: take ``size`` bytes, or refuse it."""
        now = self.clock()
        state = self._client(client, now)
        if state.bytes is None:
            return None
        wait = state.bytes.wait_for(size, now)
        if wait > 0:
            return self._over_budget(client, wait)
        state.bytes.level -= size
        return None

    def finish(self, client: str) -> None:
        state = self._clients.get(client)
        if state is not None and state.in_flight > 0:
            state.in_flight -= 1

    def _over_budget(self, client: str, wait: float) -> Refused:
        return Refused("upload_bytes_limited",
                       f"{client} has used its {self.limits.bytes_per_hour // MIB} MiB an hour "
                       f"of uploads; retry in {_retry(wait)} s", _retry(wait))


def client_of(remote: str | None) -> str:
    """The key a request's remote address is limited under (an IPv6 one by its /64)."""
    if not remote:
        return "unknown"
    try:
        ip = ipaddress.ip_address(remote.split("%", 1)[0])
    except ValueError:
        return remote
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)
