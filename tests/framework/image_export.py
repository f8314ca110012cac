"""A job image saved to a tar once per machine, not once per test module.

``docker save`` writes every layer, the base's gigabyte included: about 12 s of dockerd's
CPU and 5 s of the caller's (writing and hashing the tar) on the 2-core CI machine. The
worker stories' ``template`` fixture is session-scoped, but each module that imports it
(``test_worker_holdout``, ``_resume``, ``_data``, ``_gpu``) defines it again, so one CI run
saved the same template image six times (dockerd's debug log, 2026-11-28). The tar is kept
under ``cache_dir()`` (``LC_TEST_CACHE``) by image id, written by whichever test process
comes first while the others wait on a file lock, with a sidecar that records the size,
modification time and blob id it had; a tar that no longer matches its sidecar (a test
changed a hard link of it in a node's blob store) is saved again.
"""

from __future__ import annotations

import json
from pathlib import Path

import docker

from sandbox.errors import ImageBlobError
from sandbox.image_blob import ImageBlob, blob_image_id, export_image, normalize_image_id
from tests.framework.dockerd import cache_dir
from tests.framework.engine_seed import file_lock


def cached_export(client: docker.DockerClient, image_id: str) -> ImageBlob:
    """``sandbox.image_blob.export_image`` of ``image_id``, from the cache when it holds it."""
    image_id = normalize_image_id(image_id)
    hex_id = image_id.removeprefix("sha256:")
    path = cache_dir() / f"export-{hex_id}.tar"
    sidecar = path.with_name(path.name + ".json")
    with file_lock(path.with_name(path.name + ".lock")):
        found = _checked(path, sidecar, image_id)
        if found is not None:
            return found
        saved = export_image(client, image_id, path)
        stat = path.stat()
        sidecar.write_text(json.dumps({"size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                                       "blob_id": saved.blob_id.hex()}))
        return saved


def _checked(path: Path, sidecar: Path, image_id: str) -> ImageBlob | None:
    """The cached tar if it is still what its sidecar recorded, else None."""
    try:
        recorded = json.loads(sidecar.read_text())
        stat = path.stat()
    except (OSError, ValueError):
        return None
    if (stat.st_size, stat.st_mtime_ns) != (recorded.get("size"), recorded.get("mtime_ns")):
        return None
    try:
        if blob_image_id(path) != image_id:
            return None
        return ImageBlob(path, image_id, bytes.fromhex(recorded["blob_id"]), stat.st_size)
    except (ImageBlobError, KeyError, ValueError, TypeError, OSError):
        return None  # not a saved image any more, or a sidecar of another form

