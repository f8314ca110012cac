"""Bad input to the HTTP API gets a clean 4xx JSON error, never a 500; the node goes on."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from chain.crypto import address_to_text
from chain.encoding import encode
from chain.transactions import SignedTransaction, Transfer, sign_transaction
from chain.types import Amount, Signature
from client.api.openapi import openapi_document
from client.api.server import MAX_JSON_BODY
from tests.client.api.test_api_support import Api, check_schema, running_api

DOC = openapi_document()
ERROR = {"$ref": "#/components/schemas/Error"}
UNKNOWN = "ab" * 32


async def expect_error(session: aiohttp.ClientSession, api: Api, method: str, path: str,
                       status: int, code: str | None = None, **kw: Any) -> dict[str, Any]:
    async with session.request(method, api.url + path, **kw) as resp:
        assert resp.status == status, (method, path, resp.status, await resp.text())
        assert resp.content_type == "application/json"
        doc = await resp.json()
    check_schema(doc, ERROR, DOC)
    if code is not None:
        assert doc["error"]["code"] == code, (path, doc)
    assert doc["error"]["message"]
    return dict(doc)


async def still_healthy(session: aiohttp.ClientSession, api: Api) -> None:
    async with session.get(api.url + "/status") as resp:
        assert resp.status == 200


@pytest.mark.parametrize(("path", "status", "code"), [
    ("/txs/zz", 400, "bad_hash"),
    ("/txs/" + "g" * 64, 400, "bad_hash"),
    (f"/txs/{UNKNOWN}", 404, "unknown_tx"),
    ("/jobs/12345", 400, "bad_job_id"),
    ("/jobs/" + "x" * 64, 400, "bad_job_id"),
    (f"/jobs/{UNKNOWN}", 404, "unknown_job"),
    (f"/jobs/{UNKNOWN}/leaderboard", 404, "unknown_job"),
    ("/jobs?status=bogus", 400, "bad_status"),
    ("/jobs?limit=x", 400, "bad_limit"),
    ("/jobs?limit=0", 400, "bad_limit"),
    ("/jobs?submitter=lc1nope", 400, "bad_address"),
    ("/accounts/alice", 400, "bad_address"),
    ("/accounts/lc1" + "0" * 48, 400, "bad_address"),
    ("/blocks/abc", 400, "bad_height"),
    ("/blocks/0", 400, "bad_height"),
    ("/blocks/-1", 400, "bad_height"),
    ("/blocks/" + "9" * 40, 400, "bad_height"),
    ("/blocks/5", 404, "unknown_block"),
    ("/blocks/5/raw", 404, "unknown_block"),
    ("/blocks?limit=0", 400, "bad_limit"),
    ("/blocks?limit=1000", 400, "bad_limit"),
    ("/blocks?order=sideways", 400, "bad_order"),
    ("/blocks?from=-3", 400, "bad_from"),
    ("/wait", 400, "bad_height"),
    ("/wait?height=1&timeout=1000", 400, "bad_timeout"),
    ("/wait?height=1&timeout=nan", 400, "bad_timeout"),
    ("/wait?height=1&timeout=abc", 400, "bad_timeout"),
    ("/blobs/zz", 400, "bad_blob"),
    (f"/blobs/{UNKNOWN}", 404, "blob_unavailable"),
    ("/nope", 404, "not_found"),
])
async def test_bad_reads_get_clean_errors(tmp_path: Path, path: str, status: int,
                                          code: str) -> None:
    """[API-ERR.1] Each bad read is a 4xx ``{"error": {"code", "message"}}`` (the Error
    schema) with its stable code, never a 500, and the node goes on."""
    async with running_api(tmp_path) as api, aiohttp.ClientSession() as s:
        await api.node.commit_block()
        await expect_error(s, api, "GET", path, status, code)
        await still_healthy(s, api)


async def test_wrong_method_is_a_json_405(tmp_path: Path) -> None:
    """[API-ERR.1] A wrong method is a JSON 405 with a code, not aiohttp's text page."""
    async with running_api(tmp_path) as api, aiohttp.ClientSession() as s:
        await expect_error(s, api, "DELETE", "/status", 405, "method_not_allowed")
        await expect_error(s, api, "PUT", "/txs", 405, "method_not_allowed")


async def test_bad_transactions_are_refused_with_the_reason(tmp_path: Path) -> None:
    """[API-ERR.1] Undecodable, forged, wrong-chain, wrong-nonce and unaffordable
    transactions get 400 with the decoder's or the ledger rule's code (``bad_nonce``,
    ``insufficient_balance``), 413 ``too_large``, 415; none reaches the mempool."""
    async with running_api(tmp_path) as api, aiohttp.ClientSession() as s:
        alice, bob = api.keys["alice"], api.keys["bob"]
        octet = {"Content-Type": "application/octet-stream"}
        good = sign_transaction(alice, api.genesis.chain_id, 0, Transfer(bob.address, Amount(1)))

        async def post_raw(data: bytes, status: int, code: str | None = None) -> None:
            await expect_error(s, api, "POST", "/txs", status, code, data=data, headers=octet)

        await post_raw(b"\xc1garbage", 400, "malformed")
        await post_raw(b"", 400)
        await post_raw(encode(["transfer", 1, 2]), 400, "bad_field")
        await post_raw(encode(["mint", alice.public_key, 0, [], b"\0" * 64]), 400,
                       "unknown_type")
        await post_raw(good.wire + b"\x00", 400, "trailing_bytes")
        await post_raw(b"\x00" * (MAX_JSON_BODY + 1), 413, "too_large")
        sig = good.signature
        forged = SignedTransaction.create(good.body, good.sender_pubkey, good.nonce,
                                          Signature(sig[:40] + bytes([sig[40] ^ 1]) + sig[41:]))
        await post_raw(forged.wire, 400, "bad_signature")
        other_chain = sign_transaction(alice, "another-chain", 0,
                                       Transfer(bob.address, Amount(1)))
        await post_raw(other_chain.wire, 400, "bad_signature")
        wrong_nonce = sign_transaction(alice, api.genesis.chain_id, 7,
                                       Transfer(bob.address, Amount(1)))
        await post_raw(wrong_nonce.wire, 400, "bad_nonce")
        too_much = sign_transaction(alice, api.genesis.chain_id, 0,
                                    Transfer(bob.address, Amount(10**9)))
        doc = await expect_error(s, api, "POST", "/txs", 400, "insufficient_balance",
                                 data=too_much.wire, headers=octet)
        assert "balance 1000" in doc["error"]["message"]
        await expect_error(s, api, "POST", "/txs", 400, "bad_json", data=b"{not json",
                           headers={"Content-Type": "application/json"})
        await expect_error(s, api, "POST", "/txs", 400, "bad_json", json={"tx": 5})
        await expect_error(s, api, "POST", "/txs", 400, "bad_json", json=["tx"])
        await expect_error(s, api, "POST", "/txs", 400, "bad_hex", json={"tx": "zz"})
        await expect_error(s, api, "POST", "/txs", 415, "unsupported_media_type",
                           data=good.wire, headers={"Content-Type": "text/plain"})
        # None of it reached the mempool; the good transaction still goes through.
        assert len(api.node.mempool) == 0
        async with s.post(api.url + "/txs", data=good.wire, headers=octet) as resp:
            assert resp.status == 202
        await api.node.commit_block()
        assert api.node.state.account(bob.address).balance == 1_001


async def test_oversize_and_empty_blob_uploads_are_refused(tmp_path: Path) -> None:
    """[API-LIMIT.2] With a 4 KiB bound, a larger upload is 413 whether it declares its
    length or streams chunked (counted as it comes), no temp file is left, and an upload
    of exactly the bound is stored."""
    async with running_api(tmp_path, max_upload_bytes=4096) as api, \
            aiohttp.ClientSession() as s:
        await expect_error(s, api, "POST", "/blobs", 413, "too_large", data=b"x" * 5000)

        async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
            for _ in range(5):
                yield b"y" * 1024

        await expect_error(s, api, "POST", "/blobs", 413, "too_large", data=chunked())
        await expect_error(s, api, "POST", "/blobs", 400, "empty_blob", data=b"")
        await expect_error(s, api, "POST", "/blobs", 415, "unsupported_media_type",
                           data=b"abc", headers={"Content-Type": "text/plain"})
        async with s.post(api.url + "/blobs", data=os.urandom(4096)) as resp:
            assert resp.status == 201
        assert not list((api.node.data_dir / "api-uploads").iterdir()), "temp files left"
        await still_healthy(s, api)


async def test_address_and_job_paths_accept_exactly_their_forms(tmp_path: Path) -> None:
    """Upper-case hex ids are accepted; an address with a wrong checksum is not."""
    async with running_api(tmp_path) as api, aiohttp.ClientSession() as s:
        text = address_to_text(api.keys["alice"].address)
        async with s.get(api.url + f"/accounts/{text.upper().replace('LC1', 'lc1')}") as resp:
            assert resp.status == 200
        typo = text[:-1] + ("0" if text[-1] != "0" else "1")
        doc = await expect_error(s, api, "GET", f"/accounts/{typo}", 400, "bad_address")
        assert "checksum" in doc["error"]["message"]
        await expect_error(s, api, "GET", f"/jobs/{UNKNOWN.upper()}", 404, "unknown_job")


async def test_random_path_and_query_values_never_cause_a_500(tmp_path: Path) -> None:
    """A seeded sweep of odd values through every parameter of every read route."""
    import random
    from urllib.parse import quote

    rng = random.Random(1234)
    odd = ["", "0", "-1", "1e9", "nan", "inf", " ", "%00", "é" * 64, "0x" + "a" * 62,
           "A" * 64, "9" * 25, "lc1", "../../etc/passwd", "1.5", "true", "null", "[]"]
    odd += ["".join(rng.choice("0123456789abcdefxyzé%/.-") for _ in range(rng.randint(1, 80)))
            for _ in range(20)]
    templates = ["/txs/{v}", "/jobs/{v}", "/jobs/{v}/leaderboard", "/accounts/{v}",
                 "/blocks/{v}", "/blocks/{v}/raw", "/blobs/{v}", "/blocks?from={v}",
                 "/blocks?limit={v}", "/blocks?order={v}", "/jobs?status={v}",
                 "/jobs?limit={v}", "/jobs?submitter={v}", "/wait?height={v}&timeout=0",
                 "/wait?height=0&timeout={v}"]
    async with running_api(tmp_path) as api, aiohttp.ClientSession() as s:
        for template in templates:
            for value in odd:
                url = api.url + template.format(v=quote(value, safe=""))
                async with s.get(url) as resp:
                    assert resp.status < 500, (url, resp.status, await resp.text())
                    if resp.status >= 400:
                        check_schema(await resp.json(), ERROR, DOC)
        await still_healthy(s, api)
