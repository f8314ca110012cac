"""API bounds tried at their edge on a real solo node and its HTTP server [API-LIMIT.*]."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp

from chain.transactions import Transfer, sign_transaction
from chain.types import Amount
from client.api.limits import MAX_JSON_BODY, MAX_WAIT_S, MAX_WAITERS
from tests.client.api.test_api_errors import expect_error
from tests.client.api.test_api_support import running_api
from tests.framework.wait import wait_until_async


async def test_api_limit_1_request_bodies_up_to_64_kib_are_read_one_more_byte_is_413(
        tmp_path: Path) -> None:
    """A body of exactly 4 × 16 KiB is read (then refused for what it says, 400), one byte
    more is 413 ``too_large``, as JSON and as a raw transaction; a hex transaction in JSON
    fits and is accepted."""
    assert MAX_JSON_BODY == 4 * 16 * 1024
    async with running_api(tmp_path) as api, aiohttp.ClientSession() as s:
        octet = {"Content-Type": "application/octet-stream"}
        ctype = {"Content-Type": "application/json"}
        padding = MAX_JSON_BODY - len(json.dumps({"tx": ""}))
        exact = json.dumps({"tx": "0" * padding}).encode()
        assert len(exact) == MAX_JSON_BODY
        await expect_error(s, api, "POST", "/txs", 400, data=exact, headers=ctype)
        await expect_error(s, api, "POST", "/txs", 413, "too_large", data=exact + b" ",
                           headers=ctype)
        await expect_error(s, api, "POST", "/txs", 400, data=b"\x00" * MAX_JSON_BODY,
                           headers=octet)
        await expect_error(s, api, "POST", "/txs", 413, "too_large",
                           data=b"\x00" * (MAX_JSON_BODY + 1), headers=octet)
        alice, bob = api.keys["alice"], api.keys["bob"]
        tx = sign_transaction(alice, api.genesis.chain_id, 0, Transfer(bob.address, Amount(1)))
        async with s.post(api.url + "/txs", json={"tx": tx.wire.hex()}) as resp:
            assert resp.status == 202, await resp.text()


async def test_api_limit_3_long_polls_are_bounded_in_number_and_time(tmp_path: Path) -> None:
    """256 long polls are held at once; the 257th gets 503 ``busy``; a timeout above 60 s is
    400; once a block releases them, a new poll is accepted again."""
    async with running_api(tmp_path) as api:
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as s:
            async def poll(timeout: float) -> int:
                url = f"{api.url}/wait?height=2&timeout={timeout}"
                async with s.get(url) as resp:
                    await resp.read()
                    return resp.status

            held = [asyncio.create_task(poll(30)) for _ in range(MAX_WAITERS)]
            await wait_until_async(lambda: api.server._waiters == MAX_WAITERS, timeout=20,
                                   what="every long poll held")
            doc = await expect_error(s, api, "GET", "/wait?height=2&timeout=30", 503, "busy")
            assert "retry" in doc["error"]["message"]
            await expect_error(s, api, "GET", f"/wait?height=2&timeout={MAX_WAIT_S + 1}", 400,
                               "bad_timeout")
            assert not any(task.done() for task in held)
            await api.node.commit_block()
            await api.node.commit_block()
            assert await asyncio.gather(*held) == [200] * MAX_WAITERS
            assert await poll(0.1) == 200
