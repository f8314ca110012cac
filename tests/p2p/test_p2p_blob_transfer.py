"""A 200 MiB blob reaches a node from three peer processes while one is killed [WIRE-BLOB.*]."""

from __future__ import annotations

import asyncio
import hashlib
import os
from contextlib import AsyncExitStack
from pathlib import Path

from p2p_harness import ProcNode, start_node

from chain.content import CHUNK_SIZE, blob_id
from p2p.blobs import BlobService
from p2p.blobstore import BlobStore
from tests.framework.wait import wait_until_async

SIZE = 200 * 1024 * 1024


def write_random_file(path: Path, size: int) -> tuple[bytes, bytes]:
    """Writes ``size`` random bytes; returns (blob id, plain SHA-256), computed independently."""
    digest = hashlib.sha256()
    chunk_hashes = []
    with path.open("wb") as f:
        for _ in range(size // CHUNK_SIZE):
            block = os.urandom(CHUNK_SIZE)
            digest.update(block)
            chunk_hashes.append(hashlib.sha256(block).digest())
            f.write(block)
    return blob_id(size, chunk_hashes), digest.digest()


async def test_wire_blob_200mib_from_three_peers_one_killed_midway(tmp_path: Path) -> None:
    source = tmp_path / "blob.bin"
    blob, sha256 = await asyncio.to_thread(write_random_file, source, SIZE)
    seeds: list[ProcNode] = []
    try:
        seeds = list(
            await asyncio.gather(
                *(
                    ProcNode.spawn(
                        f"seed{i}",
                        "--blob-dir",
                        str(tmp_path / f"seed{i}"),
                        "--serve-blob",
                        str(source),
                    )
                    for i in range(3)
                )
            )
        )
        async with AsyncExitStack() as stack:
            node = await start_node(stack, "fetcher", bootstrap=tuple(s.endpoint for s in seeds))
            service = BlobService(node, BlobStore(tmp_path / "fetcher", max_blob_size=SIZE))
            await wait_until_async(lambda: len(service.announcers.get(blob, ())) == 3, timeout=30)

            seen: list[int] = []
            killed_at: list[int] = []
            victim = seeds[1]
            victim_address = bytes.fromhex(victim.address)

            def progress(done: int, total: int) -> None:
                seen.append(done)
                if done >= total * 0.3 and not killed_at:
                    victim.kill()
                    killed_at.append(done)

            path = await service.fetch(blob, progress=progress)
            assert killed_at and killed_at[0] < SIZE  # killed mid-transfer
            assert await victim.proc.wait() != 0
            assert seen[-1] == SIZE and min(seen) < SIZE * 0.3
            supplied = service.chunks_from[blob]
            assert len(supplied) == 3 and supplied[victim_address] < SIZE // (1 << 20)
            assert (
                await asyncio.to_thread(lambda: hashlib.sha256(path.read_bytes()).digest())
                == sha256
            )
            assert not service.store.partial_path(blob).exists()
    finally:
        await asyncio.gather(*(s.stop() for s in seeds))
