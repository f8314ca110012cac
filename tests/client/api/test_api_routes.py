"""The HTTP API on a real solo node over real 127.0.0.1 sockets [API-*].

Every route is called and its answer checked against the OpenAPI document;
a signed transfer posted to /txs lands in a block; claims rank as the ledger
ranks them; blobs go up and come back byte for byte.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from chain.blocks import Block
from chain.content import blob_id_of_bytes
from chain.crypto import address_to_text
from chain.encoding import decode
from chain.governance.bodies import GovernanceAction, GovernancePropose
from chain.train.bodies import ClaimLoss, PostJob
from chain.transactions import Transfer, sign_transaction
from chain.types import Amount, Hash32
from client.api.openapi import openapi_document
from client.api.server import API_PREFIX
from tests.client.api.test_api_support import (
    Api,
    check_schema,
    future_spec,
    response_schema,
    running_api,
)

DOC = openapi_document()


async def call(session: aiohttp.ClientSession, api: Api, method: str, path: str,
               route: str | None = None, *, expect: int = 200, **kw: Any) -> Any:
    """Requests ``path``; checks the status and the body against ``route``'s schema."""
    async with session.request(method, api.url + path, **kw) as resp:
        body = await resp.read()
        assert resp.status == expect, (path, resp.status, body[:300])
        if resp.content_type != "application/json":
            return body
        doc = await resp.json()
    check_schema(doc, response_schema(DOC, method, route or path.split("?")[0], expect), DOC)
    return doc


def signed(api: Api, name: str, body: Any) -> Any:
    key = api.keys[name]
    return sign_transaction(key, api.genesis.chain_id, api.node.next_nonce(key.address), body)


async def test_openapi_document_lists_exactly_the_served_routes(tmp_path: Path) -> None:
    """[API-DOC.1] Every route in the app is documented, and every documented route served."""
    async with running_api(tmp_path) as api:
        served = set()
        for route in api.server.app.router.routes():
            path = route.resource.canonical if route.resource else ""
            if path.startswith("/api/"):
                served.add((route.method, path.removeprefix(API_PREFIX)))
        documented = {(method.upper(), path)
                      for path, ops in DOC["paths"].items() for method in ops}
        from client.observe.dashboard import API_ROUTES as DASHBOARD_API_ROUTES

        # the dashboard adds its routes on a node (tests/client/dashboard/test_dashboard.py
        # checks those)
        assert served | set(DASHBOARD_API_ROUTES) == documented
        assert DOC["openapi"].startswith("3.1")
        async with aiohttp.ClientSession() as session:
            assert await call(session, api, "GET", "/openapi.json") == DOC


async def test_every_route_answers_in_its_documented_shape(tmp_path: Path) -> None:
    """[API-JSON.1] Every route, over a chain with a transfer, a job with claims and a
    pending proposal, answers JSON that matches its route's OpenAPI schema (closed objects),
    with lowercase hex hashes, ``lc1…`` addresses and integer amounts."""
    async with running_api(tmp_path, validators=2) as api, aiohttp.ClientSession() as s:
        node, keys = api.node, api.keys
        # A transfer, a job with two claims, and a governance proposal still pending.
        assert node.submit(signed(api, "alice", Transfer(keys["bob"].address, Amount(5)))).accepted
        post = signed(api, "submitter", PostJob(future_spec(node.now_ms())))
        assert node.submit(post).accepted
        propose = signed(api, "v0", GovernancePropose(
            GovernanceAction("admit_member", keys["mallory"].address)))
        assert node.submit(propose).accepted
        await node.commit_block()
        for name, loss in (("alice", 0.5), ("bob", 0.25)):
            claim = ClaimLoss(Hash32(post.hash), loss, Hash32(os.urandom(32)))
            assert node.submit(signed(api, name, claim)).accepted
        await node.commit_block()
        job_id = post.hash.hex()

        status = await call(s, api, "GET", "/status")
        assert status["height"] == 2 and status["chain_id"] == api.genesis.chain_id
        assert await call(s, api, "GET", "/peers") == []
        assert (await call(s, api, "GET", "/params"))["max_turns"] >= 1
        blocks = await call(s, api, "GET", "/blocks")
        assert [b["height"] for b in blocks["blocks"]] == [2, 1]
        asc = await call(s, api, "GET", "/blocks?from=1&limit=1&order=asc", "/blocks")
        assert [b["height"] for b in asc["blocks"]] == [1]
        block = await call(s, api, "GET", "/blocks/1", "/blocks/{height}")
        assert post.hash.hex() in block["tx_hashes"]
        assert {t["type"] for t in block["txs"]} == {"transfer", "post_job", "gov_propose"}
        raw = await call(s, api, "GET", "/blocks/1/raw", "/blocks/{height}/raw")
        block_bytes, _certificate = decode(raw)
        assert Block.decode(block_bytes).hash.hex() == block["hash"]
        tx = await call(s, api, "GET", f"/txs/{post.hash.hex()}", "/txs/{hash}")
        assert tx["status"] == "committed" and tx["height"] == 1
        assert tx["tx"]["body"]["spec"]["bounty"] == 100
        alice = address_to_text(keys["alice"].address)
        account = await call(s, api, "GET", f"/accounts/{alice}", "/accounts/{address}")
        assert account["balance"] == 995 and account["member"] and account["next_nonce"] == 2
        v0 = await call(s, api, "GET",
                        f"/accounts/{address_to_text(keys['v0'].address)}", "/accounts/{address}")
        assert v0["validator_power"] == 1
        jobs = await call(s, api, "GET", "/jobs?status=open", "/jobs")
        assert [j["job_id"] for j in jobs["jobs"]] == [job_id]
        assert (await call(s, api, "GET", "/jobs?status=settled", "/jobs"))["jobs"] == []
        job = await call(s, api, "GET", f"/jobs/{job_id}", "/jobs/{job_id}")
        assert job["status"] == "open" and job["escrow"] == 100 + 6 * 3
        assert [c["loss"] for c in job["claims"]] == [0.25, 0.5] and job["turn"] is None
        board = await call(s, api, "GET", f"/jobs/{job_id}/leaderboard",
                           "/jobs/{job_id}/leaderboard")
        assert [r["rank"] for r in board["claims"]] == [1, 2]
        assert {r["state"] for r in board["claims"]} == {"waiting"}
        logs = await call(s, api, "GET", f"/jobs/{job_id}/logs?tail=100", "/jobs/{job_id}/logs")
        assert logs == {"job_id": job_id, "node": address_to_text(keys["v0"].address),
                        "worker_role": True, "attempts": [],
                        "progress": None}  # no worker ran here
        validators = await call(s, api, "GET", "/validators")
        assert validators["total_power"] == 2
        members = await call(s, api, "GET", "/members")
        assert alice in {m["address"] for m in members["members"]}
        proposals = await call(s, api, "GET", "/proposals")
        [proposal] = proposals["proposals"]
        assert proposal["proposal_id"] == propose.hash.hex()
        assert proposal["approved_power"] == 1 and proposal["needed_power"] == 2
        waited = await call(s, api, "GET", "/wait?height=1&timeout=1", "/wait")
        assert waited == {"height": 2, "reached": True}
        genesis = await call(s, api, "GET", "/genesis")
        assert genesis["hash"] == status["genesis_hash"] == api.genesis.hash.hex()
        supply = await call(s, api, "GET", "/supply")
        assert supply["conserved"] and supply["escrowed"] == 100 + 6 * 3
        uploaded = await call(s, api, "POST", "/blobs", expect=201, data=b"model bytes",
                              headers={"Content-Type": "application/octet-stream"})
        got = await call(s, api, "GET", f"/blobs/{uploaded['blob']}", "/blobs/{blob}")
        assert got == b"model bytes"


async def test_signed_transfer_posted_to_txs_lands_in_a_block(tmp_path: Path) -> None:
    async with running_api(tmp_path) as api, aiohttp.ClientSession() as s:
        bob = api.keys["bob"].address
        tx = signed(api, "alice", Transfer(bob, Amount(40)))
        answer = await call(s, api, "POST", "/txs", expect=202, data=tx.wire,
                            headers={"Content-Type": "application/octet-stream"})
        assert answer == {"hash": tx.hash.hex(), "status": "accepted"}
        pending = await call(s, api, "GET", f"/txs/{tx.hash.hex()}", "/txs/{hash}")
        assert pending["status"] == "pending"
        again = await call(s, api, "POST", "/txs", expect=202, json={"tx": tx.wire.hex()})
        assert again["status"] == "duplicate"
        # A second transfer in the JSON form, nonce counted from the pending one.
        second = signed(api, "alice", Transfer(bob, Amount(2)))
        assert second.nonce == 1
        await call(s, api, "POST", "/txs", expect=202, json={"tx": second.wire.hex()})
        block = await api.node.commit_block()
        assert [t.hash for t in block.txs] == [tx.hash, second.hash]
        done = await call(s, api, "GET", f"/txs/{tx.hash.hex()}", "/txs/{hash}")
        assert (done["status"], done["height"], done["index"]) == ("committed", 1, 0)
        account = await call(s, api, "GET", f"/accounts/{address_to_text(bob)}",
                             "/accounts/{address}")
        assert account["balance"] == 1_042
        # Replaying the committed transaction is refused with the ledger's reason.
        replay = await call(s, api, "POST", "/txs", "/txs", expect=400, data=tx.wire,
                            headers={"Content-Type": "application/octet-stream"})
        assert replay["error"]["code"] == "bad_nonce"


async def test_leaderboard_ranks_by_loss_then_height_then_position(tmp_path: Path) -> None:
    """[JOB-RANK.1] Lower loss first; on equal loss the earlier block, then the earlier tx."""
    async with running_api(tmp_path) as api, aiohttp.ClientSession() as s:
        node = api.node
        post = signed(api, "submitter", PostJob(future_spec(node.now_ms())))
        assert node.submit(post).accepted
        await node.commit_block()

        def claim(name: str, loss: float) -> None:
            body = ClaimLoss(Hash32(post.hash), loss, Hash32(os.urandom(32)))
            assert node.submit(signed(api, name, body)).accepted

        claim("carol", 0.5)
        await node.commit_block()
        claim("bob", 0.5)      # same loss, later block than carol
        claim("alice", 0.5)    # same loss and block as bob, later position
        claim("dave", 0.125)   # best loss, latest block position
        await node.commit_block()
        board = await call(s, api, "GET", f"/jobs/{post.hash.hex()}/leaderboard",
                           "/jobs/{job_id}/leaderboard")
        names = {address_to_text(k.address): n for n, k in api.keys.items()}
        assert [names[r["claimer"]] for r in board["claims"]] == ["dave", "carol", "bob", "alice"]


async def test_wait_returns_when_the_height_is_reached_or_times_out(tmp_path: Path) -> None:
    async with running_api(tmp_path) as api, aiohttp.ClientSession() as s:
        waiting = asyncio.create_task(call(s, api, "GET", "/wait?height=2&timeout=20", "/wait"))
        await asyncio.sleep(0.05)
        await api.node.commit_block()
        await asyncio.sleep(0.05)
        assert not waiting.done()
        await api.node.commit_block()
        assert await asyncio.wait_for(waiting, 5) == {"height": 2, "reached": True}
        late = await call(s, api, "GET", "/wait?height=50&timeout=0.1", "/wait")
        assert late == {"height": 2, "reached": False}


async def test_blob_upload_and_download_round_trip(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    async with running_api(tmp_path) as api, aiohttp.ClientSession() as s:
        info = await call(s, api, "POST", "/blobs", expect=201, data=data)
        assert info == {"blob": blob_id_of_bytes(data).hex(), "size": len(data)}
        assert api.node.blob_path(bytes.fromhex(info["blob"])) is not None
        got = await call(s, api, "GET", f"/blobs/{info['blob']}", "/blobs/{blob}")
        assert got == data
        assert not list((api.node.data_dir / "api-uploads").iterdir()), "temp file left"


async def test_status_counts_pending_transactions(tmp_path: Path) -> None:
    async with running_api(tmp_path) as api, aiohttp.ClientSession() as s:
        tx = signed(api, "alice", Transfer(api.keys["bob"].address, Amount(1)))
        assert api.node.submit(tx).accepted
        status = await call(s, api, "GET", "/status")
        assert status["mempool_txs"] == 1 and status["height"] == 0
        assert status["last_block_hash"] is None


def test_schema_checker_catches_undocumented_and_missing_fields() -> None:
    """The checker the tests above rely on does fail on a wrong shape."""
    schema = {"$ref": "#/components/schemas/WaitResult"}
    check_schema({"height": 1, "reached": True}, schema, DOC)
    for bad in ({"height": 1}, {"height": 1, "reached": True, "extra": 0},
                {"height": "1", "reached": True}):
        with pytest.raises(AssertionError):
            check_schema(bad, schema, DOC)


def test_openapi_document_is_self_consistent() -> None:
    """Path templates and path parameters agree; every $ref resolves; operation ids unique."""
    import re

    refs: list[str] = []

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                refs.append(node["$ref"])
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    collect(DOC)
    schemas = DOC["components"]["schemas"]
    assert refs and all(r.removeprefix("#/components/schemas/") in schemas for r in refs)
    ids = []
    for path, ops in DOC["paths"].items():
        templated = set(re.findall(r"{(\w+)}", path))
        for method, op in ops.items():
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == templated, (method, path)
            assert all(p["required"] for p in op.get("parameters", []) if p["in"] == "path")
            assert op["responses"] and op["summary"]
            ids.append(op["operationId"])
            if method == "post":
                assert op["requestBody"]["content"]
    assert len(ids) == len(set(ids))


async def test_batch_of_transactions_is_admitted_in_order_with_reasons(tmp_path: Path) -> None:
    from chain.encoding import encode
    from chain.transactions import sign_transaction

    async with running_api(tmp_path) as api, aiohttp.ClientSession() as s:
        alice, bob = api.keys["alice"], api.keys["bob"]
        chain_id = api.genesis.chain_id
        txs = [sign_transaction(alice, chain_id, n, Transfer(bob.address, Amount(1)))
               for n in range(5)]
        gap = sign_transaction(alice, chain_id, 9, Transfer(bob.address, Amount(1)))
        body = encode([tx.wire for tx in txs] + [txs[0].wire, gap.wire, b"\x00junk"])
        answer = await call(s, api, "POST", "/txs/batch", expect=200, data=body,
                            headers={"Content-Type": "application/octet-stream"})
        assert answer["accepted"] == 5 and answer["duplicates"] == 1
        first = answer["rejected"][0]
        assert (first["index"], first["code"]) == (6, "bad_nonce")
        assert answer["rejected"][1]["index"] == 7
        block = await api.node.commit_block()
        assert [t.hash for t in block.txs] == [t.hash for t in txs]
        for bad, code in ((b"\x01\x02", "bad_batch"), (encode([1, 2]), "bad_batch")):
            problem = await call(s, api, "POST", "/txs/batch", "/txs/batch", expect=400,
                                 data=bad, headers={"Content-Type": "application/octet-stream"})
            assert problem["error"]["code"] == code



async def test_batch_answers_the_rest_full_from_hashes_once_the_pool_is_full(
        tmp_path: Path) -> None:
    """After the first 'mempool_full' nothing can leave the pool while the batch runs: the
    rest is answered from each transaction's hash, pending ones as duplicates, without
    parsing them (a load generator re-sends the same batch tail many times)."""
    from chain.encoding import encode
    from chain.mempool import MempoolLimits
    from chain.transactions import sign_transaction

    async with running_api(tmp_path) as api, aiohttp.ClientSession() as s:
        api.node.mempool.limits = MempoolLimits(max_txs=3)
        alice, bob = api.keys["alice"], api.keys["bob"]
        chain_id = api.genesis.chain_id
        txs = [sign_transaction(alice, chain_id, n, Transfer(bob.address, Amount(1)))
               for n in range(5)]
        body = encode([tx.wire for tx in txs] + [txs[1].wire, b"\x00junk"])
        answer = await call(s, api, "POST", "/txs/batch", expect=200, data=body,
                            headers={"Content-Type": "application/octet-stream"})
        assert answer["accepted"] == 3 and answer["duplicates"] == 1
        assert [(r["index"], r["status"], r["code"]) for r in answer["rejected"]] == [
            (3, "full", "mempool_full"), (4, "full", "mempool_full"),
            (6, "full", "mempool_full")]
        block = await api.node.commit_block()
        assert [t.hash for t in block.txs] == [t.hash for t in txs[:3]]


def genesis_supply(api: Api) -> int:
    """Balances plus the genesis verifiers' bonds [GENESIS-VERIFIERS.1]."""
    bonds = len(api.genesis.verifiers) * api.genesis.params.verifier_bond
    return sum(amount for _, amount in api.genesis.balances) + bonds


async def test_api_genesis_1_document_recomputes_to_its_hash_and_block_1s_prev_hash(
        tmp_path: Path) -> None:
    """[API-GENESIS.1] The served document re-parses to the served hash, the chain's genesis."""
    from chain.genesis import Genesis

    async with running_api(tmp_path, validators=2) as api, aiohttp.ClientSession() as s:
        block = await api.node.commit_block()
        doc = await call(s, api, "GET", "/genesis")
        assert Genesis.from_json(doc["genesis"]) == api.genesis
        assert Genesis.from_json(doc["genesis"]).hash.hex() == doc["hash"]
        assert block.header.prev_hash.hex() == doc["hash"]
        bonds = len(doc["genesis"]["verifiers"]) * doc["genesis"]["params"]["verifier_bond"]
        assert sum(doc["genesis"]["balances"].values()) + bonds == genesis_supply(api)


async def test_api_supply_1_totals_follow_transfers_and_escrow_at_each_height(
        tmp_path: Path) -> None:
    """[API-SUPPLY.1] balances + escrowed + burned == supply, read at the committed height.

    (Burns through a real ban: ``tests/client/api/test_api_totals.py``.)
    """
    async with running_api(tmp_path) as api, aiohttp.ClientSession() as s:
        node = api.node
        start = await call(s, api, "GET", "/supply")
        assert start["supply"] == genesis_supply(api) == start["balances"] + start["bonded"]
        assert (start["escrowed"], start["burned"], start["height"]) == (0, 0, 0)
        assert start["conserved"]
        assert node.submit(signed(api, "alice", Transfer(api.keys["bob"].address,
                                                          Amount(7)))).accepted
        spec = future_spec(node.now_ms(), bounty=50)
        assert node.submit(signed(api, "submitter", PostJob(spec))).accepted
        pending = await call(s, api, "GET", "/supply")
        assert pending == start, "pending transactions do not move the committed totals"
        await node.commit_block()
        after = await call(s, api, "GET", "/supply")
        assert after["height"] == 1 and after["conserved"]
        assert after["escrowed"] == spec.escrow and after["jobs_holding_escrow"] == 1
        assert after["balances"] == start["supply"] - start["bonded"] - spec.escrow
        assert after["state_root"] == node.state.state_root.hex()
