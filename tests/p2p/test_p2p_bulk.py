"""The bulk side stream for chunks [WIRE-BLOB.9]: tokens, HTTP range requests, fallbacks."""

from __future__ import annotations

import asyncio
import os
from contextlib import AsyncExitStack
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from p2p_harness import start_node

from chain.content import blob_id_of_bytes
from chain.types import Address
from p2p.blobs import BlobService
from p2p.blobstore import BlobStore
from p2p.bulk import MAX_STREAMS_PER_TOKEN, BulkGrants
from p2p.node import Node
from p2p.wire import CHUNK_SIZE, BulkGrant, GetBulk, NotFound
from tests.framework.wait import wait_until_async

DATA = os.urandom(40 * CHUNK_SIZE + 777)
BLOB = blob_id_of_bytes(DATA)
OTHER = b"\x07" * 32
ALICE = Address(b"\x01" * 20)
BOB = Address(b"\x02" * 20)


# -- token bookkeeping (pure) ------------------------------------------------


def test_grant_admits_only_its_blob_and_lapses_when_idle() -> None:
    grants = BulkGrants(idle_seconds=30.0)
    token = grants.issue(ALICE, BLOB, now=0.0)
    assert token is not None and len(token) == 16
    assert not grants.open_stream(token, OTHER, now=1.0)
    assert not grants.open_stream(os.urandom(16), BLOB, now=1.0)
    assert grants.open_stream(token, BLOB, now=1.0)
    grants.close_stream(token, now=20.0)
    assert grants.open_stream(token, BLOB, now=49.0), "use renews the token"
    grants.close_stream(token, now=49.0)
    assert not grants.open_stream(token, BLOB, now=79.5)
    assert len(grants) == 0


def test_grant_with_an_open_stream_does_not_lapse() -> None:
    grants = BulkGrants(idle_seconds=1.0)
    token = grants.issue(ALICE, BLOB, now=0.0)
    assert token is not None and grants.open_stream(token, BLOB, now=0.0)
    grants.issue(BOB, BLOB, now=100.0)  # runs expiry
    assert len(grants) == 2


def test_grant_limits_streams_tokens_per_peer_and_in_total() -> None:
    grants = BulkGrants(per_peer=2, total=3)
    token = grants.issue(ALICE, BLOB, now=0.0)
    assert token is not None
    for _ in range(MAX_STREAMS_PER_TOKEN):
        assert grants.open_stream(token, BLOB, now=0.0)
    assert not grants.open_stream(token, BLOB, now=0.0)
    grants.close_stream(token, now=0.0)
    assert grants.open_stream(token, BLOB, now=0.0)
    assert grants.issue(ALICE, BLOB, now=0.0) is not None
    assert grants.issue(ALICE, BLOB, now=0.0) is None, "per-peer limit"
    assert grants.issue(BOB, BLOB, now=0.0) is not None
    assert grants.issue(BOB, BLOB, now=0.0) is None, "total limit"


def test_grants_die_with_the_peers_connection() -> None:
    grants = BulkGrants()
    token = grants.issue(ALICE, BLOB, now=0.0)
    kept = grants.issue(BOB, BLOB, now=0.0)
    assert token is not None and kept is not None
    grants.revoke_peer(ALICE)
    assert not grants.open_stream(token, BLOB, now=0.0)
    assert grants.open_stream(kept, BLOB, now=0.0)


# -- on real sockets -----------------------------------------------------------


async def seeded(
    stack: AsyncExitStack, tmp_path: Path, name: str, *, bulk: bool = True
) -> tuple[Node, BlobService]:
    node = await start_node(stack, name)
    service = BlobService(node, BlobStore(tmp_path / name), bulk=bulk)
    service.store.put_bytes(DATA)
    return node, service


async def test_fetch_uses_the_bulk_stream_not_websocket_chunks(tmp_path: Path) -> None:
    """[WIRE-BLOB.9] A real fetch goes over range requests (no ``getchunk`` served), with
    progress after each verified chunk."""
    async with AsyncExitStack() as stack:
        seed, seed_service = await seeded(stack, tmp_path, "seed")
        node = await start_node(stack, "fetcher", bootstrap=(seed.endpoint,))
        service = BlobService(node, BlobStore(tmp_path / "f"))
        await wait_until_async(lambda: BLOB in service.announcers)
        progress: list[int] = []
        out = await service.fetch(BLOB, progress=lambda done, total: progress.append(done))
        assert out.read_bytes() == DATA
        assert seed_service.stats["bulk_streams_served"] >= 2
        assert seed_service.stats["chunks_served"] == 0
        assert progress == sorted(progress) and progress[-1] == len(DATA)
        assert len(progress) == 1 + 41, "progress after every verified chunk"


async def http_get(
    node: Node, blob_hex: str, auth: str | None, range_: str = "bytes=0-99"
) -> tuple[int, bytes]:
    headers = {"Range": range_}
    if auth is not None:
        headers["Authorization"] = auth
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://{node.endpoint}/p2p/blob/{blob_hex}", headers=headers) as response,
    ):
        return response.status, await response.read()


async def test_bulk_route_serves_only_to_live_tokens_for_their_blob(tmp_path: Path) -> None:
    """[WIRE-BLOB.9] Over HTTP: no token, a wrong one or another blob's gets 403, bad hex 400,
    a granted token 206 with exactly the asked range; no grant for a blob the server lacks
    (``notfound``); the token dies with the connection."""
    async with AsyncExitStack() as stack:
        seed, seed_service = await seeded(stack, tmp_path, "seed")
        node = await start_node(stack, "fetcher", bootstrap=(seed.endpoint,))
        await wait_until_async(lambda: seed.address in node.peers)
        peer = node.peers[seed.address]
        answer = await node.request(peer, GetBulk(node.next_req_id(), BLOB))
        assert isinstance(answer, BulkGrant)
        auth = f"LC-Bulk {answer.token.hex()}"
        second_chunk = f"bytes={CHUNK_SIZE}-{CHUNK_SIZE + 9}"
        status, body = await http_get(seed, BLOB.hex(), auth, second_chunk)
        assert (status, body) == (206, DATA[CHUNK_SIZE : CHUNK_SIZE + 10])
        assert (await http_get(seed, BLOB.hex(), None))[0] == 403
        assert (await http_get(seed, BLOB.hex(), f"LC-Bulk {os.urandom(16).hex()}"))[0] == 403
        assert (await http_get(seed, BLOB.hex(), f"Bearer {answer.token.hex()}"))[0] == 403
        assert (await http_get(seed, OTHER.hex(), auth))[0] == 403
        assert (await http_get(seed, "zz", auth))[0] == 400
        assert (await http_get(seed, BLOB.hex(), "LC-Bulk nothex"))[0] == 400
        missing = await node.request(peer, GetBulk(node.next_req_id(), OTHER))
        assert isinstance(missing, NotFound), "no token for a blob the server does not hold"
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://{seed.endpoint}/p2p/nosuch/x") as response,
        ):
            assert response.status == 404
        await peer.close()
        await wait_until_async(lambda: len(seed_service.grants) == 0)
        assert (await http_get(seed, BLOB.hex(), auth))[0] == 403, "revoked with the connection"


async def test_peer_without_bulk_is_fetched_from_over_websocket(tmp_path: Path) -> None:
    async with AsyncExitStack() as stack:
        seed, seed_service = await seeded(stack, tmp_path, "seed", bulk=False)
        node = await start_node(stack, "fetcher", bootstrap=(seed.endpoint,))
        service = BlobService(node, BlobStore(tmp_path / "f"))
        await wait_until_async(lambda: BLOB in service.announcers)
        assert (await service.fetch(BLOB)).read_bytes() == DATA
        assert seed_service.stats["bulk_streams_served"] == 0
        assert seed_service.stats["chunks_served"] == 41


async def test_bulk_stream_cut_short_falls_back_and_keeps_no_bad_byte(tmp_path: Path) -> None:
    """[WIRE-BLOB.9] A server whose range responses stop half way: no offence, the fetch
    finishes over getchunk."""
    async with AsyncExitStack() as stack:
        seed, seed_service = await seeded(stack, tmp_path, "seed")
        cut: list[int] = []

        async def cut_short(request: web.Request) -> web.StreamResponse:
            first, _, last = request.headers["Range"].removeprefix("bytes=").partition("-")
            start, end = int(first), int(last) + 1
            response = web.StreamResponse(status=206)
            response.content_length = end - start
            response.headers["Content-Range"] = f"bytes {start}-{end - 1}/{len(DATA)}"
            await response.prepare(request)
            await response.write(DATA[start : start + (end - start) // 2])
            cut.append(start)
            assert request.transport is not None
            request.transport.close()
            return response

        seed.add_get_route("blob", cut_short)
        node = await start_node(stack, "fetcher", bootstrap=(seed.endpoint,))
        service = BlobService(node, BlobStore(tmp_path / "f"))
        await wait_until_async(lambda: BLOB in service.announcers)
        assert (await service.fetch(BLOB)).read_bytes() == DATA
        assert cut, "the bulk stream was tried"
        assert seed_service.stats["chunks_served"] > 0
        assert node.peers[seed.address].score.value >= 0, "a cut stream is no offence"


async def test_wrong_bytes_on_the_bulk_stream_cost_the_sender(tmp_path: Path) -> None:
    """[WIRE-BLOB.9] A source serving wrong bytes on its stream supplies no chunk of the
    fetch; the blob still arrives intact from the other source."""
    async with AsyncExitStack() as stack:
        good, _ = await seeded(stack, tmp_path, "good")
        bad, _ = await seeded(stack, tmp_path, "bad")

        async def garbage(request: web.Request) -> web.StreamResponse:
            first, _, last = request.headers["Range"].removeprefix("bytes=").partition("-")
            length = int(last) + 1 - int(first)
            return web.Response(
                status=206, body=os.urandom(length),
                headers={"Content-Range": f"bytes {first}-{last}/{len(DATA)}"},
            )  # fmt: skip

        bad.add_get_route("blob", garbage)
        node = await start_node(stack, "fetcher", bootstrap=(good.endpoint, bad.endpoint))
        service = BlobService(node, BlobStore(tmp_path / "f"))
        await wait_until_async(lambda: len(service.announcers.get(BLOB, ())) == 2)
        assert (await service.fetch(BLOB)).read_bytes() == DATA
        assert service.chunks_from[BLOB][bad.address] == 0
        bad_peer = node.peers.get(bad.address)
        assert bad_peer is None or bad_peer.score.value < 0


async def test_cancelled_fetch_stops_its_threads_and_resumes_later(tmp_path: Path) -> None:
    async with AsyncExitStack() as stack:
        seed, _ = await seeded(stack, tmp_path, "seed")
        node = await start_node(stack, "fetcher", bootstrap=(seed.endpoint,))
        service = BlobService(node, BlobStore(tmp_path / "f"))
        await wait_until_async(lambda: BLOB in service.announcers)
        started = asyncio.Event()

        def progress(done: int, total: int) -> None:
            if done:
                started.set()

        task = asyncio.create_task(service.fetch(BLOB, progress=progress))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not service.store.has(BLOB)
        assert (await service.fetch(BLOB)).read_bytes() == DATA


async def test_hostile_range_headers_get_a_clear_answer_never_a_500(tmp_path: Path) -> None:
    async with AsyncExitStack() as stack:
        seed, _ = await seeded(stack, tmp_path, "seed")
        node = await start_node(stack, "fetcher", bootstrap=(seed.endpoint,))
        await wait_until_async(lambda: seed.address in node.peers)
        answer = await node.request(node.peers[seed.address], GetBulk(node.next_req_id(), BLOB))
        assert isinstance(answer, BulkGrant)
        auth = f"LC-Bulk {answer.token.hex()}"
        expected = {
            "bytes=abc": 416, "bytes=5-1": 416, "bytes=0-1,5-6": 416, "items=0-5": 416,
            "bytes=99999999999-": 416, "bytes=" + "9" * 5000: 416,
            "bytes=0-99999999999": 206, "bytes=-5": 206,
        }  # fmt: skip
        for range_, status in expected.items():
            got, body = await http_get(seed, BLOB.hex(), auth, range_)
            assert got == status, range_
            if range_ == "bytes=-5":
                assert body == DATA[-5:]
