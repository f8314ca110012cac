"""Per-client upload bounds [API-UPLOAD.*]: the pure limiter on a hand-moved clock, then the
same bounds through a real ``ApiServer`` (bound to 0.0.0.0 with a token, dialled on
127.0.0.1) and the CLI's HTTP client, which waits out a short ``Retry-After``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import aiohttp
import pytest

from client.api import http_client
from client.api.http_client import ApiClient, ApiError
from client.api.upload_limits import (
    MIB,
    PER_CLIENT_IN_FLIGHT,
    UploadLimiter,
    UploadLimits,
    client_of,
)
from tests.client.api.test_api_errors import expect_error
from tests.client.api.test_api_support import ApiThread, running_api

TOKEN = "u" * 40
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/octet-stream"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limiter(per_minute: int = 3, per_hour: int = 10_000, max_bytes: int = 5_000,
            **kw: int) -> tuple[UploadLimiter, Clock]:
    clock = Clock()
    return UploadLimiter(UploadLimits(max_bytes, per_minute, per_hour), clock, **kw), clock


def admit(lim: UploadLimiter, client: str, size: int | None = 1) -> None:
    assert lim.start(client, size) is None
    lim.finish(client)


def test_api_upload_2_uploads_per_minute_refill_continuously_per_client() -> None:
    """[API-UPLOAD.2] [API-UPLOAD.4] A burst of one minute's worth, then one upload per
    60/rate seconds; a refusal says when (whole seconds, at least 1) and takes nothing;
    another client has its own bucket."""
    lim, clock = limiter(per_minute=3)
    for _ in range(3):
        admit(lim, "198.51.100.7")
    refused = lim.start("198.51.100.7", 1)
    assert refused is not None and refused.code == "upload_rate_limited"
    assert refused.retry_after_s == 20 and "retry in 20 s" in refused.message
    admit(lim, "198.51.100.8")  # someone else
    clock.now += 19.5
    refused = lim.start("198.51.100.7", 1)
    assert refused is not None and refused.retry_after_s == 1  # 0.5 s left, said as 1
    clock.now += 0.5
    admit(lim, "198.51.100.7")
    assert lim.start("198.51.100.7", 1) is not None
    clock.now += 3600  # a long pause refills to the burst, never beyond
    for _ in range(3):
        admit(lim, "198.51.100.7")
    assert lim.start("198.51.100.7", 1) is not None


def test_api_upload_2_bytes_per_hour_charge_declared_and_chunked_bodies() -> None:
    """[API-UPLOAD.2] A declared length is charged whole at admission; a refused upload
    takes neither bytes nor an upload; a chunked body is charged as its pieces come."""
    lim, clock = limiter(per_minute=100, per_hour=10_000, max_bytes=5_000)
    admit(lim, "c", 5_000)
    admit(lim, "c", 4_000)
    refused = lim.start("c", 2_000)  # 1,000 left; 1,000 more come in 360 s
    assert refused is not None and refused.code == "upload_bytes_limited"
    assert refused.retry_after_s == 360
    admit(lim, "c", 1_000)  # what is left still goes
    assert lim.start("c", None) is None  # chunked: admitted, charged piece by piece
    clock.now += 36  # 100 bytes back
    assert lim.charge("c", 100) is None
    refused = lim.charge("c", 1)
    assert refused is not None and refused.code == "upload_bytes_limited"
    lim.finish("c")


def test_api_upload_3_two_uploads_under_way_per_client() -> None:
    """[API-UPLOAD.3] A third upload of one client while two run is refused (retry in 1 s);
    another client is not; once one finishes the next goes."""
    lim, _ = limiter(per_minute=100)
    for _ in range(PER_CLIENT_IN_FLIGHT):
        assert lim.start("a", 1) is None
    refused = lim.start("a", 1)
    assert refused is not None and refused.code == "uploads_in_progress"
    assert refused.retry_after_s == 1
    assert lim.start("b", 1) is None
    lim.finish("a")
    assert lim.start("a", 1) is None


def test_api_upload_2_zero_turns_a_rate_off_and_limits_must_fit_together() -> None:
    """[API-UPLOAD.2] 0 turns a bucket off; an hourly budget below the largest upload, a
    zero size bound or a negative rate are refused."""
    lim, _ = limiter(per_minute=0, per_hour=0)
    for _ in range(1_000):
        admit(lim, "x", 5_000)
    assert UploadLimits(4 * MIB, 1, 3 * MIB).problem() is not None
    assert UploadLimits(0, 1, 0).problem() is not None
    assert UploadLimits(1, -1, 0).problem() is not None
    assert UploadLimits().problem() is None
    with pytest.raises(ValueError, match="below max_upload_mb"):
        UploadLimiter(UploadLimits(4 * MIB, 1, 3 * MIB))


def test_api_upload_2_a_client_is_its_address_and_an_ipv6_one_its_slash_64() -> None:
    """[API-UPLOAD.2] IPv4 as is, an IPv4-mapped address as its IPv4, IPv6 by its /64 (one
    machine can take any address in it); idle clients past the bound are forgotten, busy
    ones kept."""
    assert client_of("203.0.113.9") == "203.0.113.9"
    assert client_of("::ffff:203.0.113.9") == "203.0.113.9"
    assert client_of("2001:db8:1:2:aaaa::1") == client_of("2001:db8:1:2:ffff::9") \
        == "2001:db8:1:2::/64"
    assert client_of("2001:db8:1:3::1") != client_of("2001:db8:1:2::1")
    assert client_of("fe80::1%eth0") == "fe80::/64"
    assert client_of(None) == "unknown" and client_of("") == "unknown"
    lim, clock = limiter(per_minute=3, max_clients=2)
    assert lim.start("busy", 1) is None
    admit(lim, "used")
    clock.now += 600  # "used" is full again: idle
    admit(lim, "new")
    assert lim.clients == 2  # "used" forgotten, "busy" (an upload under way) kept
    lim.finish("busy")


async def test_api_upload_1_4_size_413_and_per_client_rate_429_over_http(
        tmp_path: Path) -> None:
    """[API-UPLOAD.1] [API-UPLOAD.4] Through the server: a declared length over the size
    bound is 413 before the body is read (and counts nothing), a chunked one 413 past it;
    the fourth upload in a minute is 429 ``upload_rate_limited`` with ``Retry-After``."""
    limits = UploadLimits(max_upload_bytes=4096, uploads_per_minute=3, bytes_per_hour=0)
    async with running_api(tmp_path, host="0.0.0.0", token=TOKEN,
                           upload_limits=limits) as api, aiohttp.ClientSession() as s:
        await expect_error(s, api, "POST", "/blobs", 413, "too_large", data=b"x" * 4097,
                           headers=AUTH)

        async def chunked() -> AsyncIterator[bytes]:
            for _ in range(5):
                yield b"y" * 1024

        await expect_error(s, api, "POST", "/blobs", 413, "too_large", data=chunked(),
                           headers=AUTH)  # admitted (upload 1), refused past 4096 bytes
        for body in (b"a" * 4096, b"b"):  # uploads 2 and 3
            async with s.post(api.url + "/blobs", data=body, headers=AUTH) as resp:
                assert resp.status == 201
        doc = await expect_error(s, api, "POST", "/blobs", 429, "upload_rate_limited",
                                 data=b"c", headers=AUTH)
        assert "3 uploads a minute" in doc["error"]["message"]
        async with s.post(api.url + "/blobs", data=b"c", headers=AUTH) as resp:
            assert resp.status == 429 and 1 <= int(resp.headers["Retry-After"]) <= 20


async def test_api_upload_2_hourly_bytes_429_over_http(tmp_path: Path) -> None:
    """[API-UPLOAD.2] [API-UPLOAD.4] An upload past the client's hourly bytes is 429
    ``upload_bytes_limited``, ``Retry-After`` the seconds until its length is back; what is
    left of the budget still goes."""
    limits = UploadLimits(max_upload_bytes=4096, uploads_per_minute=100, bytes_per_hour=6000)
    async with running_api(tmp_path, host="0.0.0.0", token=TOKEN,
                           upload_limits=limits) as api, aiohttp.ClientSession() as s:
        async with s.post(api.url + "/blobs", data=b"c" * 4000, headers=AUTH) as resp:
            assert resp.status == 201
        async with s.post(api.url + "/blobs", data=b"d" * 4000, headers=AUTH) as resp:
            assert resp.status == 429
            doc = await resp.json()
            assert doc["error"]["code"] == "upload_bytes_limited"
            assert 1100 <= int(resp.headers["Retry-After"]) <= 1200  # 2,000 B at 6000/3600 s
        async with s.post(api.url + "/blobs", data=b"e" * 2000, headers=AUTH) as resp:
            assert resp.status == 201


async def test_api_upload_3_a_third_upload_under_way_from_one_client_is_429(
        tmp_path: Path) -> None:
    """[API-UPLOAD.3] Two slow uploads of one client hold its two slots: a third is 429
    ``uploads_in_progress`` at once; when they end, the next is admitted."""
    async with running_api(tmp_path, host="0.0.0.0", token=TOKEN) as api, \
            aiohttp.ClientSession() as s:
        release = asyncio.Event()

        async def slow() -> AsyncIterator[bytes]:
            yield b"first piece "
            await release.wait()
            yield b"the rest"

        async def upload() -> int:
            async with s.post(api.url + "/blobs", data=slow(), headers=AUTH) as resp:
                return resp.status

        held = [asyncio.create_task(upload()) for _ in range(2)]
        deadline = time.monotonic() + 10
        while api.server.blob_routes.uploads < 2:
            assert time.monotonic() < deadline, "the two uploads never started"
            await asyncio.sleep(0.02)
        await expect_error(s, api, "POST", "/blobs", 429, "uploads_in_progress", data=b"z",
                           headers=AUTH)
        release.set()
        assert await asyncio.gather(*held) == [201, 201]
        async with s.post(api.url + "/blobs", data=b"z", headers=AUTH) as resp:
            assert resp.status == 201


def test_api_upload_4_the_cli_client_waits_out_a_short_retry_after(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """[API-UPLOAD.4] [API-AUTH.6] ``ApiClient.upload_blob`` (what ``job submit`` uses) sends
    the token, and when the node answers 429 with a ``Retry-After`` of a second, waits that
    long and sends again; without the token it is told so before a large body goes out.
    The server's limiter runs on a clock the client's wait moves (no refill otherwise)."""
    clock = Clock()
    waits: list[float] = []

    def wait(seconds: float) -> None:
        waits.append(seconds)
        clock.now += seconds

    monkeypatch.setattr(http_client, "time", SimpleNamespace(sleep=wait,
                                                             monotonic=time.monotonic))
    with ApiThread(tmp_path, host="0.0.0.0", token=TOKEN,
                   upload_limits=UploadLimits(uploads_per_minute=60)) as node:
        assert node.server is not None
        node.server.blob_routes.limiter.clock = clock
        client = ApiClient(node.url, token=TOKEN)
        small = tmp_path / "small.bin"
        for i in range(60):
            small.write_bytes(b"%d" % i)
            client.upload_blob(small)
        assert waits == []
        small.write_bytes(b"one too many")
        info = client.upload_blob(small)  # 429, Retry-After: 1, then stored
        assert info["size"] == len(b"one too many") and waits == [1.0]
        large = tmp_path / "large.bin"
        large.write_bytes(b"L" * (2 * MIB))
        with pytest.raises(ApiError) as caught:
            ApiClient(node.url, token="").upload_blob(large)
        assert caught.value.code == "token_required" and "LC_API_TOKEN" in caught.value.message
