"""The sizes a manifest gives for layers the engine already holds [JOB-IMAGE.14].

A worker whose engine holds a job's first layers (the canonical base, [JOB-IMAGE.9])
fetches none of them, so nothing it fetches checks their sizes, and the manifest's
``total_size`` (what ``image_mb`` bounds) could declare the base at 1 MiB: the job then
passes on workers holding the base and is refused by every other one. So the sizes of
held layers are checked too, against what this worker knows of them: sizes it checked
itself (each layer file it assembled passed ``check_layer_file``), remembered in
``layer-sizes.json`` in its image work folder; the host's own layer cache (the one
``job submit`` splits images into, ``image_publish.LayerCache``); or, for a layer it
knows nothing of (its engine got it otherwise), measured once from the engine's own
``docker save`` stream
(each file in it hashed; a ``diff_id`` is the SHA-256 of the plain layer tar, which the
engine's save rebuilds byte for byte) and remembered.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tarfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import docker.errors
import requests.exceptions

from sandbox.engine import BULK_TIMEOUT_S
from sandbox.errors import ImageBlobError, ImageManifestError
from sandbox.image_layers import LayerRef

SIZES_FILE = "layer-sizes.json"
READ_CHUNK = 1024 * 1024


def known_sizes(workdir: Path) -> dict[str, int]:
    """``diff_id`` -> size of the layers this worker has checked; {} when none or unreadable."""
    try:
        doc = json.loads((workdir / SIZES_FILE).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(doc, dict):
        return {}
    return {k: v for k, v in doc.items() if isinstance(k, str) and isinstance(v, int)
            and not isinstance(v, bool)}


def remember_sizes(workdir: Path, sizes: Mapping[str, int]) -> None:
    """Add ``sizes`` to the record (written whole, then renamed: never half a file)."""
    if not sizes:
        return
    merged = {**known_sizes(workdir), **sizes}
    staging = workdir / f".{SIZES_FILE}.{os.getpid()}"
    staging.write_text(json.dumps(merged, sort_keys=True))
    os.replace(staging, workdir / SIZES_FILE)


def check_held_sizes(client: Any, layers: Iterable[LayerRef], engine_images: Iterable[
        tuple[str, list[str]]], workdir: Path) -> None:
    """[JOB-IMAGE.14] Raise ``ImageManifestError`` (permanent) when a held layer's size in
    the manifest differs from its true size. ``layers`` are the held prefix of the
    manifest's layers; ``engine_images`` (id, ``diff_ids``) the engine's images."""
    held = list(layers)
    sizes = known_sizes(workdir)
    unknown = {layer.diff_id for layer in held} - set(sizes)
    if unknown:
        cached = _host_cache_sizes(unknown)
        sizes.update(cached)
        unknown -= set(cached)
    if unknown:
        prefix = [layer.diff_id for layer in held]
        source = next((image for image, ids in engine_images if ids[:len(prefix)] == prefix),
                      None)
        if source is None:
            raise ImageBlobError("no image in the engine holds the layers it was found to hold")
        measured = save_sizes(client, source, unknown)
        missing = unknown - set(measured)
        if missing:
            raise ImageBlobError(f"the engine's save of {source[:19]} lacks layer "
                                 f"{sorted(missing)[0]}")
        remember_sizes(workdir, measured)
        sizes.update(measured)
    for layer in held:
        if sizes[layer.diff_id] != layer.size:
            raise ImageManifestError(f"layer {layer.diff_id} is {sizes[layer.diff_id]} bytes "
                                     f"in the engine, the manifest says {layer.size}")


def _host_cache_sizes(diff_ids: set[str]) -> dict[str, int]:
    """Sizes of layer files the host's own layer cache holds (checked when it split them)."""
    from sandbox.image_publish import LayerCache, default_cache

    cache = LayerCache(default_cache())
    found = {}
    for diff_id in diff_ids:
        try:
            ref = cache.layer_ref(diff_id)
        except (OSError, ValueError):
            continue
        if ref is not None:
            found[diff_id] = ref.size
    return found


def save_sizes(client: Any, image_id: str, wanted: set[str]) -> dict[str, int]:
    """Size of each file of the engine's ``docker save`` of ``image_id`` whose SHA-256 is in
    ``wanted`` (both the ``<id>/layer.tar`` and the OCI ``blobs/sha256/...`` layouts)."""
    api = client.api
    try:
        res = api._get(api._url("/images/{0}/get", image_id), stream=True,
                       timeout=BULK_TIMEOUT_S)
        api._raise_for_status(res)
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as e:
        raise ImageBlobError(f"could not save {image_id[:19]} to measure its layers: {e}"
                             ) from None
    found: dict[str, int] = {}
    try:
        with contextlib.closing(res), tarfile.open(
                fileobj=_Stream(res.iter_content(READ_CHUNK, False)),
                mode="r|") as archive:  # type: ignore[call-overload]
            for member in archive:
                if not member.isreg():
                    continue
                handle = archive.extractfile(member)
                if handle is None:
                    continue
                digest = hashlib.sha256()
                while block := handle.read(READ_CHUNK):
                    digest.update(block)
                diff_id = "sha256:" + digest.hexdigest()
                if diff_id in wanted:
                    found[diff_id] = member.size
    except (tarfile.TarError, OSError, EOFError, ValueError) as e:
        raise ImageBlobError(f"the engine's save of {image_id[:19]} broke: {e}") from None
    return found


class _Stream:
    """A read-only file over chunks; each chunk is copied once, whatever the read sizes."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buffer = b""
        self._pos = 0

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) - self._pos < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer = self._buffer[self._pos:] + chunk
            self._pos = 0
        end = len(self._buffer) if size < 0 else min(len(self._buffer), self._pos + size)
        data = self._buffer[self._pos:end]
        self._pos = end
        return data


def engine_images(client: Any) -> list[tuple[str, list[str]]]:
    """(id, ``rootfs.diff_ids``) of every image in the engine (``docker image inspect``)."""
    out = []
    for summary in client.api.images(all=True):
        layers = client.api.inspect_image(summary["Id"]).get("RootFS", {}).get("Layers")
        if isinstance(layers, list):
            out.append((str(summary["Id"]), [str(x) for x in layers]))
    return out
