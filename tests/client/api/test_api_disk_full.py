"""[API-UPLOAD.5] An upload onto a full disk: 507 ``storage_full``, and nothing left of it.

The node's data folder is a tmpfs of this test's own, filled to 64 KiB short; the upload
is 1 MiB. Before: the write's ``OSError`` came out as a 500 ``internal`` error, and when the
blob store's own step failed (its manifest), the hard link it had made in ``blobs/tmp``
kept the whole upload's bytes on the disk for good. Needs root (the mount), as CI runs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.client.api.test_api_access import TOKEN, answer, open_node
from tests.framework.disk_fill import fill, tmpfs

if os.geteuid() != 0:
    if os.environ.get("CI"):
        raise RuntimeError("tests/client/api/test_api_disk_full.py needs root in CI")
    pytestmark = pytest.mark.skip(reason="mounting a tmpfs needs root")

ROOM = 64 * 1024


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "small", "32m") as folder:
        yield folder


def _left(folder: Path) -> list[str]:
    """Files an upload may leave: its temporary file, the store's hard link."""
    return sorted(str(p.relative_to(folder)) for sub in ("node/api-uploads", "node/blobs/tmp")
                  if (folder / sub).is_dir() for p in (folder / sub).iterdir())


async def test_api_upload_5_a_full_disk_is_507_and_leaves_nothing(small_disk: Path) -> None:
    data = os.urandom(1 << 20)
    headers = {"Content-Type": "application/octet-stream", "Authorization": f"Bearer {TOKEN}"}
    async with open_node(small_disk) as (api, server), aiohttp.ClientSession() as s:
        url = f"http://127.0.0.1:{server.port}/api/v1/blobs"
        filler = fill(small_disk)
        os.truncate(filler, filler.stat().st_size - ROOM)
        status, _, doc = await answer(s, "POST", url, data=data, headers=headers)
        assert (status, doc["error"]["code"]) == (507, "storage_full"), doc
        assert "No space left on device" in doc["error"]["message"]
        assert _left(small_disk) == []
        # room for the upload, not for the store's manifest after it
        os.truncate(filler, filler.stat().st_size - (len(data) - ROOM))
        status, _, doc = await answer(s, "POST", url, data=data, headers=headers)
        assert (status, doc["error"]["code"]) == (507, "storage_full"), doc
        assert _left(small_disk) == [], "the failed upload's bytes are still on the disk"
        filler.unlink()
        status, _, doc = await answer(s, "POST", url, data=data, headers=headers)
        assert status == 201 and doc["size"] == len(data), doc
        assert _left(small_disk) == []
