"""The API off loopback [API-AUTH.*]: reads open to anyone, every write needs the node's token.

A real solo node and its ``ApiServer`` bound to ``0.0.0.0`` (every address; the
tests dial it on 127.0.0.1, so traffic stays on this machine) with the dashboard
installed as ``LedgerNode`` installs it. The write routes are not listed by hand:
every non-GET route of the running app is tried, so a write route added later
is covered without touching this file.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

import client.api.access as access
from chain.content import blob_id_of_bytes
from chain.encoding import encode
from chain.transactions import Transfer, sign_transaction
from chain.types import Amount
from client.api.access import SAFE_METHODS
from client.api.openapi import openapi_document
from client.api.server import ApiServer
from client.api.token_file import TokenError, is_loopback_host
from client.observe.dashboard import install_dashboard
from p2p.blobstore import BlobWriteFailed
from tests.client.api.test_api_errors import DOC, ERROR
from tests.client.api.test_api_support import Api, check_schema, running_api
from tests.framework.solo import SoloNode
from tests.ledger.harness import make_genesis

TOKEN = "k" * 20 + "0123456789abcdef"
WRONG = TOKEN[:-1] + "X"
NEW_WRITE = "/api/v1/some-future-write"
"""A write route added after this test was written: guarded all the same."""


@contextlib.asynccontextmanager
async def open_node(tmp_path: Path, host: str = "0.0.0.0",
                    token: str | None = TOKEN) -> AsyncIterator[tuple[Api, ApiServer]]:
    genesis, keys = make_genesis(validators=1)
    node = SoloNode(genesis, keys["v0"], tmp_path / "node", block_interval=3600.0)
    await node.start()
    server = ApiServer(node, host, 0, token=token)
    install_dashboard(server.app, node)

    async def future_write(request: web.Request) -> web.Response:
        return web.json_response({"done": True})

    server.app.router.add_post(NEW_WRITE, future_write)
    await server.start()
    try:
        yield Api(node, server, genesis, keys), server
    finally:
        await server.stop()
        await node.stop()


def write_routes(server: ApiServer) -> list[tuple[str, str]]:
    """Every (method, path) of the app that is a write: not GET/HEAD/OPTIONS, not exempt."""
    out = []
    for route in server.app.router.routes():
        path = route.resource.canonical if route.resource else ""
        if route.method in SAFE_METHODS or route.method == "*":
            continue
        sample = path.replace("{token}", "ab" * 16)
        if any(p.match(sample) for p in access.OPEN_WRITES):
            continue
        out.append((route.method, path))
    return sorted(set(out))


def good_request(api: Api, method: str, path: str) -> tuple[dict[str, Any], int]:
    """A body each known write route accepts, and the status it answers; others: empty."""
    alice, bob = api.keys["alice"], api.keys["bob"]
    tx = sign_transaction(alice, api.genesis.chain_id, 0, Transfer(bob.address, Amount(1)))
    octet = {"Content-Type": "application/octet-stream"}
    if path == "/api/v1/txs":
        return {"data": tx.wire, "headers": octet}, 202
    if path == "/api/v1/txs/batch":
        return {"data": encode([tx.wire]), "headers": octet}, 200
    if path == "/api/v1/blobs":
        return {"data": b"a blob only the token holder may store", "headers": octet}, 201
    return {}, 200


async def answer(session: aiohttp.ClientSession, method: str, url: str,
                 **kw: Any) -> tuple[int, dict[str, Any], Any]:
    async with session.request(method, url, **kw) as resp:
        doc = await resp.json() if resp.content_type == "application/json" else None
        return resp.status, dict(resp.headers), doc


def test_api_auth_1_only_a_loopback_bind_may_run_without_a_token() -> None:
    """[API-AUTH.1] Loopback is 127.0.0.0/8, ::1 and localhost; every other bind (every
    address, a LAN or public address, a host name, "") needs a token, and the server says
    so (what to add, where) instead of starting."""
    for host in ("127.0.0.1", "127.0.0.2", "127.255.0.9", "::1", "[::1]", "localhost",
                 "LOCALHOST"):
        assert is_loopback_host(host), host
    for host in ("0.0.0.0", "::", "192.168.1.20", "10.0.0.5", "203.0.113.7", "2001:db8::1",
                 "node.example.org", "", "127.0.0.1.example.org"):
        assert not is_loopback_host(host), host
        with pytest.raises(TokenError) as caught:
            ApiServer(None, host, 0)  # type: ignore[arg-type]
        message = str(caught.value)
        assert "not a loopback address" in message and 'token_file = "api_token"' in message
        assert "learningchain node token" in message and "LC_API_TOKEN" in message
    with pytest.raises(TokenError, match="at least 32"):
        ApiServer(None, "0.0.0.0", 0, token="short")  # type: ignore[arg-type]


async def test_api_auth_2_3_every_write_route_needs_the_token_reads_do_not(
        tmp_path: Path) -> None:
    """[API-AUTH.2] [API-AUTH.3] Bound to 0.0.0.0 with a token: every write route of the
    app (enumerated from its router, a route added after the server was built included)
    answers 401 ``token_required`` without the header, 401 ``bad_token`` with a wrong token
    or another scheme (JSON error shape, ``WWW-Authenticate: Bearer``), and nothing reaches
    the mempool, the blob store or the upload folder; with the token each does its work.
    Reads, the dashboard and its first-render release need no token; a wrong method is
    still 405."""
    async with open_node(tmp_path) as (api, server), aiohttp.ClientSession() as s:
        writes = write_routes(server)
        assert {("POST", "/api/v1/txs"), ("POST", "/api/v1/txs/batch"),
                ("POST", "/api/v1/blobs"), ("POST", NEW_WRITE)} <= set(writes), writes
        base = f"http://127.0.0.1:{server.port}"
        for method, path in writes:
            kw, _ = good_request(api, method, path)
            headers = dict(kw.pop("headers", {}))
            for auth, code in ((None, "token_required"), (f"Bearer {WRONG}", "bad_token"),
                               (f"Bearer {TOKEN[:-2]}", "bad_token"),
                               (f"Basic {TOKEN}", "bad_token"), ("Bearer", "bad_token")):
                sent = {**headers, **({"Authorization": auth} if auth else {})}
                status, got, doc = await answer(s, method, base + path, headers=sent, **kw)
                assert status == 401, (method, path, auth, status, doc)
                check_schema(doc, ERROR, DOC)
                assert doc["error"]["code"] == code, (path, doc)
                assert got["WWW-Authenticate"].startswith("Bearer")
        assert len(api.node.mempool) == 0
        assert api.node.blob_path(blob_id_of_bytes(
            b"a blob only the token holder may store")) is None
        uploads = api.node.data_dir / "api-uploads"
        assert not uploads.exists() or not list(uploads.iterdir())

        for method, path in writes:
            kw, expect = good_request(api, method, path)
            headers = {**kw.pop("headers", {}), "Authorization": f"Bearer {TOKEN}"}
            status, _, doc = await answer(s, method, base + path, headers=headers, **kw)
            if path == "/api/v1/txs/batch":  # the same transaction again: a duplicate
                assert status == 200 and doc["duplicates"] == 1, doc
            else:
                assert status == expect, (path, status, doc)
        assert len(api.node.mempool) == 1

        for path in ("/api/v1/status", "/api/v1/openapi.json", "/api/v1/jobs",
                     "/api/v1/blocks", "/api/v1/genesis", "/api/v1/supply", "/api/v1/wait"
                     "?height=0&timeout=0", "/"):
            status, _, _ = await answer(s, "GET", base + path)
            assert status == 200, path
        status, _, _ = await answer(s, "GET", base + "/api/v1/status",
                                    headers={"Authorization": f"Bearer {WRONG}"})
        assert status == 200  # a token sent with a read is ignored
        status, _, _ = await answer(s, "POST", base + "/dashboard/first-render/" + "ab" * 16)
        assert status == 204  # the dashboard works for anyone [DASH-LOAD.1]
        status, _, doc = await answer(s, "PUT", base + "/api/v1/status")
        assert status == 405 and doc["error"]["code"] == "method_not_allowed"
        status, _, doc = await answer(s, "POST", base + "/api/v1/nowhere")
        assert status == 404


async def test_api_auth_1_a_loopback_node_with_a_token_requires_it_and_without_is_open(
        tmp_path: Path) -> None:
    """[API-AUTH.1] The bound address decides: on 127.0.0.1 with a token configured a write
    still needs it (a reverse proxy makes every client local); without one it is open."""
    octet = {"Content-Type": "application/octet-stream"}
    async with running_api(tmp_path / "a", token=TOKEN) as api, aiohttp.ClientSession() as s:
        status, _, doc = await answer(s, "POST", api.url + "/blobs", data=b"x", headers=octet)
        assert (status, doc["error"]["code"]) == (401, "token_required")
        status, _, _ = await answer(s, "POST", api.url + "/blobs", data=b"x",
                                    headers={**octet, "Authorization": f"Bearer {TOKEN}"})
        assert status == 201
    async with running_api(tmp_path / "b") as api, aiohttp.ClientSession() as s:
        status, _, _ = await answer(s, "POST", api.url + "/blobs", data=b"x", headers=octet)
        assert status == 201


async def test_api_auth_3_the_token_is_compared_in_constant_time(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """[API-AUTH.3] The comparison is ``hmac.compare_digest`` over the token's bytes, for a
    right and for a wrong token alike."""
    seen: list[tuple[bytes, bytes]] = []
    real = access.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(access.hmac, "compare_digest", spy)
    async with open_node(tmp_path) as (api, server), aiohttp.ClientSession() as s:
        url = f"http://127.0.0.1:{server.port}/api/v1/blobs"
        for token, expect in ((WRONG, 401), (TOKEN, 201)):
            status, _, _ = await answer(s, "POST", url, data=b"y", headers={
                "Content-Type": "application/octet-stream", "Authorization": f"Bearer {token}"})
            assert status == expect
    assert seen == [(WRONG.encode(), TOKEN.encode()), (TOKEN.encode(), TOKEN.encode())]


async def test_api_auth_4_a_peer_fetch_of_a_missing_blob_needs_the_token(
        tmp_path: Path) -> None:
    """[API-AUTH.4] A stored blob is served to anyone; for one the node lacks, a request
    without the token gets 401 and the node asks no peer; with it, the peers are asked.
    [WIRE-BLOB.11] A fetch our disk refused is 507 ``storage_full``, not 404 (the fetch's
    failure itself is tested in tests/p2p/test_p2p_blob_disk_full.py)."""
    async with open_node(tmp_path) as (api, server), aiohttp.ClientSession() as s:
        asked: list[bytes] = []
        real_fetch = api.node.fetch_blob

        async def fetch(blob: bytes, progress: Any = None) -> Path:
            asked.append(blob)
            return await real_fetch(blob, progress)

        api.node.fetch_blob = fetch  # type: ignore[method-assign]
        stored = os.urandom(64)
        path = tmp_path / "stored.bin"
        path.write_bytes(stored)
        blob = api.node.put_blob_file(path)
        base = f"http://127.0.0.1:{server.port}/api/v1/blobs/"
        async with s.get(base + blob.hex()) as resp:
            assert resp.status == 200 and await resp.read() == stored
        missing = "cd" * 32
        status, got, doc = await answer(s, "GET", base + missing)
        assert (status, doc["error"]["code"]) == (401, "token_required"), doc
        assert "peers" in doc["error"]["message"] and got["WWW-Authenticate"]
        status, _, doc = await answer(s, "GET", base + missing,
                                      headers={"Authorization": f"Bearer {WRONG}"})
        assert (status, doc["error"]["code"]) == (401, "bad_token")
        assert asked == []
        status, _, doc = await answer(s, "GET", base + missing,
                                      headers={"Authorization": f"Bearer {TOKEN}"})
        assert (status, doc["error"]["code"]) == (404, "blob_unavailable")
        assert asked == [bytes.fromhex(missing)]
        status, _, doc = await answer(s, "GET", base + missing + "/info")
        assert (status, doc["error"]["code"]) == (404, "blob_not_here")

        async def full_disk(blob: bytes, progress: Any = None) -> Path:  # [WIRE-BLOB.11]
            raise BlobWriteFailed(f"cannot write blob {blob.hex()} here: [Errno 28]", 28)

        api.node.fetch_blob = full_disk  # type: ignore[method-assign]
        status, _, doc = await answer(s, "GET", base + missing,
                                      headers={"Authorization": f"Bearer {TOKEN}"})
        assert (status, doc["error"]["code"]) == (507, "storage_full"), doc
        assert "[Errno 28]" in doc["error"]["message"]


def test_api_auth_3_the_openapi_document_declares_the_token_on_every_write() -> None:
    """[API-AUTH.3] The document has the bearer scheme; every non-GET operation requires it
    and documents its 401; the blob download documents its peer-fetch 401."""
    doc = openapi_document()
    assert doc["components"]["securitySchemes"]["apiToken"] == {
        **doc["components"]["securitySchemes"]["apiToken"], "type": "http", "scheme": "bearer"}
    writes = [(path, method, op) for path, ops in doc["paths"].items()
              for method, op in ops.items() if method != "get"]
    assert {(p, m) for p, m, _ in writes} >= {("/txs", "post"), ("/txs/batch", "post"),
                                              ("/blobs", "post")}
    for _, _, op in writes:
        assert op["security"] == [{"apiToken": []}] and "401" in op["responses"]
    download = doc["paths"]["/blobs/{blob}"]["get"]
    assert download["security"] == [{}, {"apiToken": []}] and "401" in download["responses"]
