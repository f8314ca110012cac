"""Blob store and fetch rules between in-process nodes on real sockets [WIRE-BLOB.*]."""

from __future__ import annotations

import hashlib
import os
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from p2p_harness import start_node

from chain.content import blob_id_of_bytes
from chain.encoding import encode
from p2p.blobs import RELAY_MAX_BYTES, BlobService
from p2p.blobstore import BlobStore, BlobTooLarge, BlobUnavailable
from p2p.node import Node
from p2p.wire import CHUNK_SIZE
from tests.framework.wait import wait_until_async

DATA = os.urandom(5 * CHUNK_SIZE + 1234)
BLOB = blob_id_of_bytes(DATA)


def test_wire_blob_7_store_names_by_hash_and_refuses_oversize(tmp_path: Path) -> None:
    store = BlobStore(tmp_path, max_blob_size=len(DATA))
    assert store.put_bytes(DATA) == BLOB
    assert store.path(BLOB).read_bytes() == DATA
    size, hashes = store.manifest(BLOB) or (0, [])
    assert size == len(DATA) and len(hashes) == 6
    assert store.read_chunk(BLOB, 5) == DATA[5 * CHUNK_SIZE :]
    assert store.read_chunk(BLOB, 6) is None
    with pytest.raises(BlobTooLarge):
        store.put_bytes(DATA + b"x")


async def seeded(stack: AsyncExitStack, tmp_path: Path, name: str) -> tuple[Node, BlobService]:
    node = await start_node(stack, name)
    service = BlobService(node, BlobStore(tmp_path / name))
    service.store.put_bytes(DATA)
    return node, service


async def test_wire_blob_6_oversized_blob_refused_before_writing(tmp_path: Path) -> None:
    async with AsyncExitStack() as stack:
        seed, _ = await seeded(stack, tmp_path, "seed")
        node = await start_node(stack, "fetcher", bootstrap=(seed.endpoint,))
        service = BlobService(node, BlobStore(tmp_path / "f", max_blob_size=CHUNK_SIZE))
        await wait_until_async(lambda: BLOB in service.announcers)
        with pytest.raises(BlobTooLarge):
            await service.fetch(BLOB)
        assert not any((tmp_path / "f" / "partial").iterdir())


async def test_wire_blob_5_corrupt_chunks_cost_the_sender_and_come_from_elsewhere(
    tmp_path: Path,
) -> None:
    async with AsyncExitStack() as stack:
        good, _ = await seeded(stack, tmp_path, "good")
        bad, bad_service = await seeded(stack, tmp_path, "bad")
        path = bad_service.store.path(BLOB)
        corrupted = bytearray(path.read_bytes())
        for i in range(0, len(corrupted), CHUNK_SIZE):
            corrupted[i] ^= 0xFF
        path.write_bytes(bytes(corrupted))  # manifest still claims the true hashes
        node = await start_node(stack, "fetcher", bootstrap=(good.endpoint, bad.endpoint))
        service = BlobService(node, BlobStore(tmp_path / "f"))
        await wait_until_async(lambda: len(service.announcers.get(BLOB, ())) == 2)
        out = await service.fetch(BLOB)
        assert out.read_bytes() == DATA
        bad_peer = node.peers.get(bad.address)
        assert bad_peer is None or bad_peer.score.value < 0
        assert service.chunks_from[BLOB][bad.address] == 0


async def test_wire_blob_4_lying_manifest_is_refused_and_keeps_no_byte(tmp_path: Path) -> None:
    async with AsyncExitStack() as stack:
        liar = await start_node(stack, "liar")
        store = BlobStore(tmp_path / "liar")
        other = os.urandom(2 * CHUNK_SIZE)
        store.put_bytes(other)
        fake_hashes = [hashlib.sha256(other[i : i + CHUNK_SIZE]).digest() for i in (0, CHUNK_SIZE)]
        store.path(BLOB).write_bytes(other)  # serves other bytes under BLOB's name
        (tmp_path / "liar" / "manifests" / BLOB.hex()).write_bytes(
            encode([len(other), fake_hashes])
        )
        BlobService(liar, store)
        node = await start_node(stack, "fetcher", bootstrap=(liar.endpoint,))
        service = BlobService(node, BlobStore(tmp_path / "f"))
        await wait_until_async(lambda: bool(node.peers))
        with pytest.raises(BlobUnavailable):
            await service.fetch(BLOB, patience=0.5)
        liar_peer = node.peers.get(liar.address)
        assert liar_peer is None or liar_peer.score.value < 0
        assert not service.store.has(BLOB)
        assert not service.store.partial_path(BLOB).exists()


async def test_wire_blob_8_fetch_resumes_from_a_partial_file(tmp_path: Path) -> None:
    async with AsyncExitStack() as stack:
        seed, _ = await seeded(stack, tmp_path, "seed")
        node = await start_node(stack, "fetcher", bootstrap=(seed.endpoint,))
        store = BlobStore(tmp_path / "f")
        partial = bytearray(len(DATA))
        partial[: 3 * CHUNK_SIZE] = DATA[: 3 * CHUNK_SIZE]
        store.partial_path(BLOB).write_bytes(bytes(partial))
        service = BlobService(node, store)
        await wait_until_async(lambda: BLOB in service.announcers)
        progress: list[int] = []
        out = await service.fetch(BLOB, progress=lambda done, total: progress.append(done))
        assert out.read_bytes() == DATA
        assert progress[0] == 3 * CHUNK_SIZE
        assert sum(service.chunks_from[BLOB].values()) == 3


async def test_wire_blob_unavailable_blob_times_out_cleanly(tmp_path: Path) -> None:
    async with AsyncExitStack() as stack:
        seed, _ = await seeded(stack, tmp_path, "seed")
        node = await start_node(stack, "fetcher", bootstrap=(seed.endpoint,))
        service = BlobService(node, BlobStore(tmp_path / "f"))
        await wait_until_async(lambda: bool(node.peers))
        with pytest.raises(BlobUnavailable):
            await service.fetch(b"\x01" * 32, patience=0.5)


async def test_wire_blob_removed_blob_is_no_longer_served(tmp_path: Path) -> None:
    """A blob the seed removes (a worker's disk budget) is refused, not half-served: the
    fetcher gets ``BlobUnavailable`` and the seed keeps running."""
    async with AsyncExitStack() as stack:
        seed, seed_service = await seeded(stack, tmp_path, "seed")
        seed_store = seed_service.store
        node = await start_node(stack, "fetcher", bootstrap=(seed.endpoint,))
        service = BlobService(node, BlobStore(tmp_path / "f"))
        await wait_until_async(lambda: bool(node.peers))
        assert seed_store.remove(BLOB) and not seed_store.has(BLOB)
        assert seed_store.manifest(BLOB) is None and seed_store.read_chunk(BLOB, 0) is None
        assert not seed_store.remove(BLOB)
        with pytest.raises(BlobUnavailable):
            await service.fetch(BLOB, patience=0.5)
        assert seed.peers  # the seed is still up and connected


async def relay_line(stack: AsyncExitStack, tmp_path: Path
                     ) -> tuple[Node, BlobService, Node, BlobService]:
    """fetcher - relay - holder in a line, no peer exchange (the fetcher never connects to
    the holder); returns once the relay heard the holder announce ``BLOB``."""
    relay = await start_node(stack, "relay", peer_exchange=False)
    relay_service = BlobService(relay, BlobStore(tmp_path / "relay"))
    holder = await start_node(stack, "holder", bootstrap=(relay.endpoint,), peer_exchange=False)
    BlobService(holder, BlobStore(tmp_path / "holder")).store.put_bytes(DATA)
    node = await start_node(stack, "fetcher", bootstrap=(relay.endpoint,), peer_exchange=False)
    service = BlobService(node, BlobStore(tmp_path / "f"))
    await wait_until_async(lambda: BLOB in relay_service.announcers and bool(node.peers))
    return relay, relay_service, node, service


async def test_wire_blob_10_a_peer_relays_a_blob_from_a_holder_the_fetcher_cannot_reach(
    tmp_path: Path,
) -> None:
    """[WIRE-BLOB.10] fetcher - relay - holder in a line (no peer exchange: the fetcher can
    never connect to the holder, as with a holder behind NAT). The relay, asked for a blob
    it lacks but the holder announced, fetches it and announces it; the fetcher's own
    fetch, still waiting, then gets every byte from the relay."""
    async with AsyncExitStack() as stack:
        relay, relay_service, node, service = await relay_line(stack, tmp_path)
        assert set(node.peers) == {relay.address}  # never the holder
        out = await service.fetch(BLOB, patience=20)
        assert out.read_bytes() == DATA
        assert set(service.chunks_from[BLOB]) == {relay.address}
        assert relay_service.stats["relayed"] == 1 and relay_service.store.has(BLOB)


async def test_wire_blob_10_no_relay_without_an_announcer_or_over_the_bound(
    tmp_path: Path,
) -> None:
    """[WIRE-BLOB.10] Nothing is fetched for a blob no other peer announced, and a relay
    fetch carries ``RELAY_MAX_BYTES`` (here a smaller bound: refused before a byte)."""
    async with AsyncExitStack() as stack:
        relay, relay_service, node, service = await relay_line(stack, tmp_path)
        with pytest.raises(BlobUnavailable):
            await service.fetch(b"\x02" * 32, patience=0.5)  # announced by nobody
        assert relay_service.stats["fetches_started"] == 0
        with pytest.raises(BlobTooLarge):
            await relay_service.fetch(BLOB, patience=5, limit=CHUNK_SIZE)
        assert not relay_service.store.has(BLOB)
        assert RELAY_MAX_BYTES >= 64 * CHUNK_SIZE  # a model or a data set fits
