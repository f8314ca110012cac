"""The bulk side stream for chunks [WIRE-BLOB.9]: tokens, HTTP range requests, fallbacks."""

from __future__ import annotations

import asyncio
import os
from contextlib import AsyncExitStack
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from p2p_harness import start_node

from chain.content import blob_id_of_bytes
from chain.types import Address
from p2p.blobs import BlobService
from p2p.blobstore import BlobStore
from p2p.bulk import (
    MAX_STREAMS_PER_TOKEN,
    BulkGrants,
    chunk_range,
    seal_chunk,
    sealed_length,
)
from p2p.node import Node
from p2p.secure import bulk_grant_id, bulk_key, bulk_nonce
from p2p.wire import CHUNK_SIZE, BulkGrant, GetBulk, NotFound
from tests.framework.wait import wait_until_async

DATA = os.urandom(40 * CHUNK_SIZE + 777)
BLOB = blob_id_of_bytes(DATA)
OTHER = b"\x07" * 32
ALICE = Address(b"\x01" * 20)
BOB = Address(b"\x02" * 20)


# -- token bookkeeping (pure) ------------------------------------------------


H = b"\x05" * 32


def issue(grants: BulkGrants, peer: Address, now: float = 0.0) -> bytes | None:
    """A grant's id (what a range request names), or None when refused."""
    token = grants.issue(peer, BLOB, now, H)
    return None if token is None else bulk_grant_id(token)


def test_grant_admits_only_its_id_and_lapses_when_idle() -> None:
    grants = BulkGrants(idle_seconds=30.0)
    token = grants.issue(ALICE, BLOB, 0.0, H)
    assert token is not None and len(token) == 16
    grant_id = bulk_grant_id(token)
    assert grants.open_stream(token, now=1.0) is None, "the token itself is no grant id"
    assert grants.open_stream(os.urandom(16), now=1.0) is None
    grant = grants.open_stream(grant_id, now=1.0)
    assert grant is not None and grant.blob == BLOB and grant.key == bulk_key(H, token, BLOB)
    grants.close_stream(grant_id, now=20.0)
    assert grants.open_stream(grant_id, now=49.0), "use renews the grant"
    grants.close_stream(grant_id, now=49.0)
    assert grants.open_stream(grant_id, now=79.5) is None
    assert len(grants) == 0


def test_grant_with_an_open_stream_does_not_lapse() -> None:
    grants = BulkGrants(idle_seconds=1.0)
    grant_id = issue(grants, ALICE)
    assert grant_id is not None and grants.open_stream(grant_id, now=0.0)
    grants.issue(BOB, BLOB, 100.0, H)  # runs expiry
    assert len(grants) == 2


def test_grant_limits_streams_tokens_per_peer_and_in_total() -> None:
    grants = BulkGrants(per_peer=2, total=3)
    grant_id = issue(grants, ALICE)
    assert grant_id is not None
    for _ in range(MAX_STREAMS_PER_TOKEN):
        assert grants.open_stream(grant_id, now=0.0)
    assert grants.open_stream(grant_id, now=0.0) is None
    grants.close_stream(grant_id, now=0.0)
    assert grants.open_stream(grant_id, now=0.0)
    assert issue(grants, ALICE) is not None
    assert issue(grants, ALICE) is None, "per-peer limit"
    assert issue(grants, BOB) is not None
    assert issue(grants, BOB) is None, "total limit"


def test_grants_die_with_the_peers_connection() -> None:
    grants = BulkGrants()
    grant_id = issue(grants, ALICE)
    kept = issue(grants, BOB)
    assert grant_id is not None and kept is not None
    grants.revoke_peer(ALICE)
    assert grants.open_stream(grant_id, now=0.0) is None
    assert grants.open_stream(kept, now=0.0)


def test_wire_secure_6_ranges_are_whole_chunks() -> None:
    size = 3 * CHUNK_SIZE + 10
    assert chunk_range(f"bytes=0-{size - 1}", size) == (0, 4)
    assert chunk_range(f"bytes={CHUNK_SIZE}-{2 * CHUNK_SIZE - 1}", size) == (1, 1)
    assert sealed_length(3, 1, size) == 10 + 16
    for bad in ("bytes=0-99", f"bytes=1-{CHUNK_SIZE}", f"bytes=0-{size}", "bytes=5-",
                "chunks=0-1", "", f"bytes={CHUNK_SIZE}-0"):
        assert chunk_range(bad, size) is None, bad


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


async def http_get(node: Node, grant_hex: str, range_: str = "bytes=0-1048575"
                   ) -> tuple[int, bytes]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://{node.endpoint}/p2p/blob/{grant_hex}",
                    headers={"Range": range_}) as response,
    ):
        return response.status, await response.read()


async def test_wire_secure_6_bulk_route_serves_sealed_chunks_to_live_grants(
        tmp_path: Path) -> None:
    """[WIRE-BLOB.9] [WIRE-SECURE.6] Over HTTP: the grant id (never the token, never the blob)
    names the grant; a live one gets 206 with exactly the asked chunks, each sealed under
    the key both ends derive from the token and the channel's handshake hash (the clear
    bytes appear nowhere in the body); an unknown id or the token itself 403, bad hex 400,
    a range off chunk boundaries 416; no grant for a blob the server lacks (``notfound``);
    the grant dies with the connection."""
    async with AsyncExitStack() as stack:
        seed, seed_service = await seeded(stack, tmp_path, "seed")
        node = await start_node(stack, "fetcher", bootstrap=(seed.endpoint,))
        await wait_until_async(lambda: seed.address in node.peers)
        peer = node.peers[seed.address]
        answer = await node.request(peer, GetBulk(node.next_req_id(), BLOB))
        assert isinstance(answer, BulkGrant)
        grant = bulk_grant_id(answer.token).hex()
        second_chunk = f"bytes={CHUNK_SIZE}-{2 * CHUNK_SIZE - 1}"
        status, body = await http_get(seed, grant, second_chunk)
        assert status == 206 and len(body) == CHUNK_SIZE + 16
        assert DATA[CHUNK_SIZE : CHUNK_SIZE + 64] not in body
        key_ = bulk_key(peer.session.handshake_hash, answer.token, BLOB)
        assert AESGCM(key_).decrypt(bulk_nonce(1), body, None) == DATA[CHUNK_SIZE:2 * CHUNK_SIZE]
        assert (await http_get(seed, os.urandom(16).hex()))[0] == 403
        assert (await http_get(seed, answer.token.hex()))[0] == 403
        assert (await http_get(seed, "zz"))[0] == 400
        assert (await http_get(seed, grant, "bytes=0-99"))[0] == 416
        missing = await node.request(peer, GetBulk(node.next_req_id(), OTHER))
        assert isinstance(missing, NotFound), "no token for a blob the server does not hold"
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://{seed.endpoint}/p2p/nosuch/x") as response,
        ):
            assert response.status == 404
        await peer.close()
        await wait_until_async(lambda: len(seed_service.grants) == 0)
        assert (await http_get(seed, grant))[0] == 403, "revoked with the connection"


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
            count = -(-(end - start) // CHUNK_SIZE)
            length = sealed_length(start // CHUNK_SIZE, count, len(DATA))
            grant = seed_service.grants.open_stream(bytes.fromhex(request.match_info["arg"]), 0)
            assert grant is not None
            response = web.StreamResponse(status=206)
            response.content_length = length
            await response.prepare(request)
            index = start // CHUNK_SIZE  # one good sealed chunk, then half of the next
            sealed = [seal_chunk(AESGCM(grant.key), i, DATA[i * CHUNK_SIZE:(i + 1) * CHUNK_SIZE])
                      for i in (index, index + 1)]
            await response.write(sealed[0] + sealed[1][: CHUNK_SIZE // 2])
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
    """[WIRE-BLOB.9] [WIRE-SECURE.6] A source serving wrong bytes on its stream (records
    that do not open) supplies no chunk of the fetch and is charged BAD_RECORD; the blob
    still arrives intact from the other source."""
    async with AsyncExitStack() as stack:
        good, _ = await seeded(stack, tmp_path, "good")
        bad, _ = await seeded(stack, tmp_path, "bad")

        async def garbage(request: web.Request) -> web.StreamResponse:
            first, _, last = request.headers["Range"].removeprefix("bytes=").partition("-")
            count = -(-(int(last) + 1 - int(first)) // CHUNK_SIZE)
            length = sealed_length(int(first) // CHUNK_SIZE, count, len(DATA))
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
        assert node.stats["penalty:BAD_RECORD"] >= 1


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
        grant = bulk_grant_id(answer.token).hex()
        expected = {
            "bytes=abc": 416, "bytes=5-1": 416, "bytes=0-1,5-6": 416, "items=0-5": 416,
            "bytes=99999999999-": 416, "bytes=" + "9" * 5000: 416,
            "bytes=0-99999999999": 416, "bytes=-5": 416, "bytes=0-99": 416,
            f"bytes={40 * CHUNK_SIZE}-{len(DATA) - 1}": 206,
        }  # fmt: skip
        for range_, status in expected.items():
            got, body = await http_get(seed, grant, range_)
            assert got == status, range_
            if status == 206:
                assert len(body) == 777 + 16
