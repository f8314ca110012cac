"""[WIRE-BLOB.11] A blob fetch onto a full disk: this node's fault, said as such, and
resumed once there is room.

The fetcher's store is on a tmpfs of the test's own, filled to two chunks short of the
blob (tests/framework/disk_fill.py). Before: the fetch raised an ``ExceptionGroup`` out of
its TaskGroup wrapping the ``OSError``, which none of the callers' ``except BlobError``
caught (a worker's image fetch, a voter's model fetch, the API's blob route and the
prediction executor all let it escape); and the seed, whose bulk stream the fetcher had
dropped, closed the blob file under its read-ahead thread (``Bad file descriptor``, and a
descriptor that could have been reused). Needs root (the mount), as CI runs.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import os
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from p2p_harness import start_node

from chain.content import CHUNK_SIZE, blob_id_of_bytes
from p2p.blobs import BlobService, _first_blob_error
from p2p.blobstore import BlobStore, BlobUnavailable, BlobWriteFailed
from tests.framework.disk_fill import fill, tmpfs
from tests.framework.wait import wait_until_async

if os.geteuid() != 0:
    if os.environ.get("CI"):
        raise RuntimeError("tests/p2p/test_p2p_blob_disk_full.py needs root in CI")
    pytestmark = pytest.mark.skip(reason="mounting a tmpfs needs root")

CHUNKS = 5
DATA = os.urandom((CHUNKS - 1) * CHUNK_SIZE + 4321)
BLOB = blob_id_of_bytes(DATA)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "small", "8m") as folder:
        yield folder


@pytest.mark.parametrize("bulk", [True, False], ids=["bulk", "getchunk"])
async def test_wire_blob_11_a_full_disk_is_our_fault_and_the_fetch_resumes(
        tmp_path: Path, small_disk: Path, bulk: bool) -> None:
    """The fetch fails with ``BlobWriteFailed`` (ENOSPC), charges the seed nothing and keeps
    the checked chunks; once the filler is gone the same fetch completes, asking for no
    chunk twice. The seed, cut off mid-stream, leaves no failed read behind."""
    lost: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: lost.append(ctx))
    async with AsyncExitStack() as stack:
        seed = await start_node(stack, "seed")
        seed_service = BlobService(seed, BlobStore(tmp_path / "seed"), bulk=bulk)
        seed_service.store.put_bytes(DATA)
        node = await start_node(stack, "fetcher", bootstrap=(seed.endpoint,))
        service = BlobService(node, BlobStore(small_disk / "store"), bulk=bulk)
        await wait_until_async(lambda: BLOB in service.announcers)
        filler = fill(small_disk)
        os.truncate(filler, filler.stat().st_size - 2 * CHUNK_SIZE)
        with pytest.raises(BlobWriteFailed) as failed:
            await service.fetch(BLOB, patience=5)
        assert failed.value.errno == errno.ENOSPC and BLOB.hex() in str(failed.value)
        assert failed.value.code == "blob_write_failed"
        peer = node.peers.get(seed.address)
        assert peer is not None and peer.score.value >= 0, "the seed was blamed for our disk"
        got = sum(service.chunks_from.get(BLOB, {}).values())
        assert 0 < got < CHUNKS
        filler.unlink()
        out = await service.fetch(BLOB, patience=5)
        assert out.read_bytes() == DATA
        assert sum(service.chunks_from[BLOB].values()) == CHUNKS, "a chunk was fetched twice"
        await asyncio.sleep(0.2)
        gc.collect()
        await asyncio.sleep(0)
    assert not [c for c in lost if "Bad file descriptor" in repr(c.get("exception"))], lost


def test_wire_blob_11_a_task_groups_error_comes_out_as_the_blob_error() -> None:
    """The fetch's TaskGroup wraps what its body or workers raise; the caller gets the
    blob error itself, nested or not, and any other failure as the group it was."""
    write = BlobWriteFailed("cannot write", errno.ENOSPC)
    gone = BlobUnavailable("every source is gone")
    assert _first_blob_error(ExceptionGroup("g", [gone])) is gone
    assert _first_blob_error(ExceptionGroup("g", [ValueError("x"),
                                                  ExceptionGroup("h", [write])])) is write
    other = ExceptionGroup("g", [ValueError("x")])
    assert _first_blob_error(other) is other
