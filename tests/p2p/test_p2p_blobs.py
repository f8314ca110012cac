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
from p2p.blobs import BlobService
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
