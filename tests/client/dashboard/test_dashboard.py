"""The dashboard's server side on a real solo node [DASH-*]: page, assets, claim history.

The page itself is exercised in a real browser by ``test_dashboard_browser.py``;
here: what the node serves (offline, versioned, under a strict CSP), the
``/api/v1/jobs/{job_id}/history`` route against its OpenAPI schema, and the
claim index that feeds it (live, backfilled from stored blocks, and bounded).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from chain.blocks import Block
from chain.crypto import PrivateKey, address_to_text
from chain.genesis import Genesis
from chain.train.bodies import ClaimLoss, PostJob
from chain.transactions import Body, Transfer, sign_transaction
from chain.types import Amount, Hash32
from client.api.openapi import openapi_document
from client.api.server import API_PREFIX, ApiServer
from client.observe.dashboard import (
    API_ROUTES,
    ASSETS,
    CONTENT_SECURITY_POLICY,
    STATIC_DIR,
    WORKER_ASSETS,
    Dashboard,
    install_dashboard,
)
from client.observe.dashboard.history import (
    CLAIM_PREFIX,
    ClaimHistory,
    claim_points,
    claim_points_raw,
)
from tests.client.api.test_api_support import check_schema, future_spec, response_schema
from tests.framework.solo import SoloNode
from tests.ledger.harness import make_genesis

DOC = openapi_document()


@dataclass
class Site:
    node: SoloNode
    server: ApiServer
    dashboard: Dashboard
    genesis: Genesis
    keys: dict[str, PrivateKey]

    @property
    def url(self) -> str:
        return self.server.url

    def tx(self, name: str, body: Body) -> Any:
        key = self.keys[name]
        return sign_transaction(key, self.genesis.chain_id, self.node.next_nonce(key.address),
                                body)

    async def commit(self, *txs: Any) -> Block:
        for tx in txs:
            assert self.node.submit(tx).accepted, tx.body
        return await self.node.commit_block()

    async def post_job(self) -> bytes:
        post = self.tx("submitter", PostJob(future_spec(self.node.now_ms())))
        await self.commit(post)
        return post.hash

    async def claim(self, name: str, job_id: bytes, loss: float) -> Block:
        return await self.commit(self.tx(name, ClaimLoss(Hash32(job_id), loss,
                                                         Hash32(os.urandom(32)))))


@contextlib.asynccontextmanager
async def solo_node(tmp_path: Path) -> AsyncIterator[tuple[SoloNode, Genesis,
                                                             dict[str, PrivateKey]]]:
    genesis, keys = make_genesis()
    node = SoloNode(genesis, keys["v0"], tmp_path / "node", block_interval=3600.0)
    await node.start()
    try:
        yield node, genesis, keys
    finally:
        await node.stop()


@contextlib.asynccontextmanager
async def site_of(node: SoloNode, genesis: Genesis,
                  keys: dict[str, PrivateKey]) -> AsyncIterator[Site]:
    """The node's API server with the dashboard installed before it starts (as LedgerNode)."""
    server = ApiServer(node, "127.0.0.1", 0)
    dashboard = install_dashboard(server.app, node)
    await server.start()
    try:
        yield Site(node, server, dashboard, genesis, keys)
    finally:
        await server.stop()


@contextlib.asynccontextmanager
async def running_site(tmp_path: Path) -> AsyncIterator[Site]:
    async with solo_node(tmp_path) as (node, genesis, keys), \
            site_of(node, genesis, keys) as site:
        yield site


async def get_json(session: aiohttp.ClientSession, url: str, route: str,
                   expect: int = 200) -> Any:
    async with session.get(url) as resp:
        assert resp.status == expect, (url, resp.status, await resp.text())
        doc = await resp.json()
    check_schema(doc, response_schema(DOC, "GET", route, expect), DOC)
    return doc


# --- routes and documentation ------------------------------------------------------------

async def test_with_the_dashboard_every_served_api_route_is_documented(tmp_path: Path) -> None:
    """[API-DOC.1] The dashboard's /api/ routes are in the OpenAPI document, and no others."""
    async with running_site(tmp_path) as site:
        served = set()
        for route in site.server.app.router.routes():
            path = route.resource.canonical if route.resource else ""
            if path.startswith("/api/"):
                served.add((route.method, path.removeprefix(API_PREFIX)))
    documented = {(method.upper(), path) for path, ops in DOC["paths"].items() for method in ops}
    assert set(API_ROUTES) <= served
    assert served == documented
    assert DOC["paths"]["/jobs/{job_id}/history"]["get"]["responses"]["200"]


async def test_the_page_and_its_assets_come_from_the_package(tmp_path: Path) -> None:
    """[DASH-OFFLINE.1] One page and its files, nothing from elsewhere; a strict CSP on all."""
    async with running_site(tmp_path) as site, aiohttp.ClientSession() as s:
        async with s.get(site.url + "/") as resp:
            assert resp.status == 200 and resp.content_type == "text/html"
            assert resp.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
            assert resp.headers["Cache-Control"] == "no-cache"
            page = await resp.text()
        version = site.dashboard.version
        referenced = re.findall(r'(?:src|href)="/dashboard/([\w.]+)\?v=([0-9a-f]+)"', page)
        assert {name for name, _ in referenced} == set(ASSETS)
        assert {v for _, v in referenced} == {version}
        types = {"js": "javascript", "css": "text/css", "svg": "image/svg+xml"}
        assert '"/dashboard/follow.js" + new URL(document.currentScript.src).search' in \
            (STATIC_DIR / "app.js").read_text()  # the worker gets the page's version
        for name in (*ASSETS, *WORKER_ASSETS):
            async with s.get(f"{site.url}/dashboard/{name}?v={version}") as resp:
                assert resp.status == 200, name
                assert types[name.rsplit(".", 1)[1]] in resp.content_type, resp.content_type
                assert resp.headers["X-Content-Type-Options"] == "nosniff"
                assert await resp.read() == (STATIC_DIR / name).read_bytes()
        for path in ("/dashboard/missing.js", "/dashboard/../__init__.py",
                     "/dashboard/%2e%2e/__init__.py"):
            async with s.get(site.url + path) as resp:
                assert resp.status == 404, path
    for file in STATIC_DIR.iterdir():
        text = file.read_text(encoding="utf-8")
        external = set(re.findall(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}[^\s\"')]*", text))
        assert external <= {"http://www.w3.org/2000/svg"}, (file.name, external)
        assert "@import" not in text and "eval(" not in text and "innerHTML" not in text


# --- the claim history route ---------------------------------------------------------------

async def test_history_has_every_claim_in_chain_order_and_the_best_steps(tmp_path: Path) -> None:
    """[DASH-HISTORY.2] ``/jobs/{id}/history`` answers the ``ClaimHistory`` schema (checked
    against the OpenAPI document): ``job_id``, ``complete``, every claim point, ``best``."""
    async with running_site(tmp_path) as site, aiohttp.ClientSession() as s:
        job = await site.post_job()
        for name, loss in (("alice", 0.5), ("bob", 0.4), ("carol", 0.45), ("alice", 0.3)):
            await site.claim(name, job, loss)
        record = site.node.state.job(job)
        assert record is not None and len(record.claims) == 3  # alice's first claim replaced
        route = "/jobs/{job_id}/history"
        url = f"{site.url}{API_PREFIX}/jobs/{job.hex()}/history"
        doc = await get_json(s, url, route)
        who = {address_to_text(k.address): n for n, k in site.keys.items()}
        assert doc["job_id"] == job.hex() and doc["complete"] is True
        assert [(who[c["claimer"]], c["loss"]) for c in doc["claims"]] == [
            ("alice", 0.5), ("bob", 0.4), ("carol", 0.45), ("alice", 0.3)]
        assert [c["height"] for c in doc["claims"]] == [2, 3, 4, 5]
        assert [c["loss"] for c in doc["best"]] == [0.5, 0.4, 0.3]
        block = site.node.block(2)
        assert block is not None
        assert doc["claims"][0]["tx_hash"] == block.txs[0].hash.hex()
        assert doc["claims"][0]["time_ms"] == block.header.time_ms
        await get_json(s, f"{site.url}{API_PREFIX}/jobs/{'ab' * 32}/history", route, 404)
        await get_json(s, f"{site.url}{API_PREFIX}/jobs/xyz/history", route, 400)
        fresh = await site.post_job()
        empty = await get_json(s, f"{site.url}{API_PREFIX}/jobs/{fresh.hex()}/history", route)
        assert empty == {"job_id": fresh.hex(), "complete": True, "claims": [], "best": []}


async def test_claims_committed_before_the_dashboard_started_are_backfilled(
        tmp_path: Path) -> None:
    """[DASH-HISTORY.1] Stored blocks are read once, only from a job's post to its last claim."""
    async with solo_node(tmp_path) as (node, genesis, keys):
        early = Site(node, None, None, genesis, keys)  # type: ignore[arg-type]
        await early.commit(early.tx("alice", Transfer(keys["bob"].address, Amount(1))))
        job = await early.post_job()                                  # height 2
        await early.claim("alice", job, 0.5)                           # 3
        await early.commit(early.tx("bob", Transfer(keys["carol"].address, Amount(1))))
        await early.claim("bob", job, 0.4)                             # 5
        await early.claim("alice", job, 0.35)                          # 6
        for _ in range(3):
            await node.commit_block()                                  # 7..9: no claims
        async with site_of(node, genesis, keys) as site:
            history = site.dashboard.history
            assert history.start_height == 9
            await asyncio.wait_for(history.backfilled.wait(), 10)
            assert history.blocks_scanned == 5  # heights 2..6, nothing before or after
            await site.claim("carol", job, 0.2)                        # 10: live
            record = node.state.job(job)
            assert record is not None
            view = history.history(record)
            assert view.complete
            assert [(p.height, p.loss) for p in view.claims] == [
                (3, 0.5), (5, 0.4), (6, 0.35), (10, 0.2)]
            assert [p.loss for p in view.best_steps()] == [0.5, 0.4, 0.35, 0.2]


async def test_a_claimer_that_claimed_again_since_does_not_hide_its_earlier_claim(
        tmp_path: Path) -> None:
    """The record then shows only the new claim: the backfill reads up to the start height."""
    async with solo_node(tmp_path) as (node, genesis, keys):
        site = Site(node, None, None, genesis, keys)  # type: ignore[arg-type]
        job = await site.post_job()                                   # 1
        await site.claim("bob", job, 0.6)                             # 2
        await site.claim("alice", job, 0.5)                           # 3
        await node.commit_block()                                     # 4
        history = ClaimHistory(node)
        history.attach()
        await site.claim("alice", job, 0.3)                           # 5: live
        record = node.state.job(job)
        assert record is not None
        assert [p.loss for p in history.history(record).claims] == [0.6, 0.3]
        assert not history.history(record).complete
        await history.backfill()
        assert history.blocks_scanned == 4  # 1..4: the last claim before the start is unknown
        view = history.history(record)
        assert view.complete and [p.loss for p in view.claims] == [0.6, 0.5, 0.3]


async def test_a_backfill_over_budget_says_the_history_is_incomplete(tmp_path: Path) -> None:
    async with solo_node(tmp_path) as (node, genesis, keys):
        early = Site(node, None, None, genesis, keys)  # type: ignore[arg-type]
        job = await early.post_job()
        await early.claim("alice", job, 0.5)
        await early.claim("bob", job, 0.4)
        await early.claim("alice", job, 0.3)  # replaces alice's 0.5 in the job record
        history = ClaimHistory(node, max_backfill_blocks=2)
        history.attach()
        record = node.state.job(job)
        assert record is not None
        assert not history.history(record).complete  # backfill not run yet
        await history.backfill()
        view = history.history(record)
        assert not view.complete
        # The newest two blocks were read; the job record's live claims are always there.
        assert [p.loss for p in view.claims] == [0.4, 0.3]


# --- the index's bounds ---------------------------------------------------------------------

async def test_points_per_job_are_bounded_and_the_best_line_stays_exact(tmp_path: Path) -> None:
    async with solo_node(tmp_path) as (node, genesis, keys):
        site = Site(node, None, None, genesis, keys)  # type: ignore[arg-type]
        history = ClaimHistory(node, max_points=2)
        history.attach()
        job = await site.post_job()
        for name, loss in (("alice", 0.5), ("bob", 0.6), ("carol", 0.7), ("dave", 0.1)):
            await site.claim(name, job, loss)
        record = node.state.job(job)
        assert record is not None
        view = history.history(record)
        assert not view.complete
        # carol's 0.7 was over the bound and not an improvement; the job record still has it.
        assert [p.loss for p in view.claims] == [0.5, 0.6, 0.7, 0.1]
        assert [p.loss for p in view.best_steps()] == [0.5, 0.1]
        assert len(history._jobs[job].points) == 3


async def test_jobs_beyond_the_bound_are_dropped_and_reported_incomplete(tmp_path: Path) -> None:
    async with solo_node(tmp_path) as (node, genesis, keys):
        site = Site(node, None, None, genesis, keys)  # type: ignore[arg-type]
        history = ClaimHistory(node, max_jobs=1)
        history.attach()
        first, second = await site.post_job(), await site.post_job()
        await site.claim("alice", first, 0.5)
        await site.claim("alice", first, 0.4)
        await site.claim("bob", second, 0.3)  # evicts the first job's entry
        jobs = {j: node.state.job(j) for j in (first, second)}
        assert history.history(jobs[second]).complete  # type: ignore[arg-type]
        dropped = history.history(jobs[first])  # type: ignore[arg-type]
        assert not dropped.complete
        assert [p.loss for p in dropped.claims] == [0.4]  # from the job record
        await site.claim("carol", first, 0.2)  # a new claim does not make it whole again
        assert not history.history(node.state.job(first)).complete  # type: ignore[arg-type]


async def test_only_claim_transactions_are_decoded_when_scanning(tmp_path: Path) -> None:
    async with solo_node(tmp_path) as (node, genesis, keys):
        site = Site(node, None, None, genesis, keys)  # type: ignore[arg-type]
        job = await site.post_job()
        claim = site.tx("alice", ClaimLoss(Hash32(job), 0.5, Hash32(os.urandom(32))))
        transfer = site.tx("bob", Transfer(keys["carol"].address, Amount(2)))
        assert claim.wire.startswith(CLAIM_PREFIX)
        assert not transfer.wire.startswith(CLAIM_PREFIX)
        block = await site.commit(transfer, claim)
        stored = node.block_with_certificate(block.header.height)
        assert stored is not None
        assert claim_points_raw(stored[0]) == claim_points(block)
        [(job_id, point)] = claim_points(block)
        assert job_id == job and point.claimer == keys["alice"].address and point.loss == 0.5


# --- [DASH-LOAD.1] the page's load event waits for its first view ---------------------------

async def _hold(s: aiohttp.ClientSession, url: str) -> tuple[int, str, float]:
    started = time.monotonic()
    async with s.get(url) as resp:
        return resp.status, resp.content_type, time.monotonic() - started


async def test_first_render_image_is_held_until_the_page_releases_it(tmp_path: Path) -> None:
    """The hidden image that holds ``load`` answers only once the page POSTs its token,
    and a release that arrives before the image request (both race for connections)
    counts too."""
    token, early = "ab" * 16, "cd" * 16
    async with running_site(tmp_path) as site, aiohttp.ClientSession() as s:
        url = f"{site.url}/dashboard/first-render/{token}"
        held = asyncio.create_task(_hold(s, url))
        await asyncio.sleep(0.5)
        assert not held.done() and site.dashboard.first_render.held == 1
        async with s.post(url) as resp:
            assert resp.status == 204
        status, content_type, _ = await asyncio.wait_for(held, 5)
        assert (status, content_type) == (200, "image/svg+xml")
        async with s.post(f"{site.url}/dashboard/first-render/{early}") as resp:
            assert resp.status == 204
        status, _, took = await _hold(s, f"{site.url}/dashboard/first-render/{early}")
        assert status == 200 and took < 1.0
        assert site.dashboard.first_render.held == 0


async def test_first_render_hold_is_bounded_in_time_count_and_shutdown(tmp_path: Path) -> None:
    """A page that never releases (its API calls fail) still loads after ``hold_s``; past
    ``max_holds`` held requests the next is answered at once; a bad token is refused,
    naming it; stopping the server does not wait for held requests."""
    async with running_site(tmp_path) as site, aiohttp.ClientSession() as s:
        holds = site.dashboard.first_render
        holds.hold_s, holds.max_holds = 0.5, 2
        base = f"{site.url}/dashboard/first-render/"
        status, _, took = await _hold(s, base + "01" * 16)
        assert status == 200 and 0.4 < took < 3.0
        holds.hold_s = 60.0
        waiting = [asyncio.create_task(_hold(s, base + t * 16)) for t in ("02", "03")]
        await asyncio.sleep(0.5)
        assert holds.held == 2
        status, _, took = await _hold(s, base + "04" * 16)
        assert status == 200 and took < 1.0
        async with s.get(base + "NOT-A-TOKEN") as resp:
            assert resp.status == 400 and "NOT-A-TOKEN" in await resp.text()
        started = time.monotonic()
        await site.server.stop()  # held requests answered at once, not cut at its 2 s timeout
        assert time.monotonic() - started < 1.5
        assert [(await asyncio.wait_for(t, 5))[0] for t in waiting] == [200, 200]
