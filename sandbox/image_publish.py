"""The submitter's side of images by layer: an image split into cached blobs [JOB-IMAGE.6].

``docker save`` is the only way to read an image's layers out of an engine,
and it always writes every layer, the base's gigabyte included (about 10 s
here). So the save is streamed straight into a cache of layer files keyed by
``diff_id`` (no saved tar is written), and an image split once is never
exported again: the next ``job submit`` of the same image reads the cache.
A layer the cache holds already (the base's, after any first submit) is not
written or hashed again (``_stream``: passed over by its size, then proved by
the config's digest of a cached, checked file).

Cache layout under ``root``: ``layers/<diff hex>.tar`` with ``.ref``
(``blob hex size``), ``images/<image hex>.lcimg`` (the manifest blob),
``.config`` and ``.sizes`` (what ``job build`` declares [JOB-IMAGE.5]). Bounded by
``prune`` (``sandbox.image_cache_prune``: LRU by last use, the base's layers kept).

The manifest published is v2 by default [JOB-IMAGE.10]: the config travels inside
it, compressed, and is not a blob of its own. A cached manifest of the other
version is re-encoded from the cached config (nothing is exported again).
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from chain.content import CHUNK_SIZE, blob_id, blob_id_of_bytes
from sandbox.blob_file import BlobFile
from sandbox.errors import ImageBlobError, SandboxError
from sandbox.image_cache_prune import CacheLimits, Removal, prune, touch
from sandbox.image_check import ImageSizes, unpacked_layers
from sandbox.image_layers import (
    MAX_CONFIG_BYTES,
    MAX_MANIFEST_BLOB_BYTES,
    MAX_MANIFEST_BYTES,
    ImageManifest,
    ImageManifestError,
    LayerRef,
    check_config,
    parse_manifest,
)

CACHE_ENV = "LC_IMAGE_CACHE"


def default_cache() -> Path:
    """``LC_IMAGE_CACHE``, or ``~/.cache/learningchain/images``."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured) if configured else Path.home() / ".cache/learningchain/images"


@dataclass(frozen=True, slots=True)
class PublishedImage:
    """An image split into blobs: ``parts`` are uploaded before ``manifest_file`` [JOB-IMAGE.6]."""

    manifest: ImageManifest
    manifest_file: BlobFile
    parts: tuple[BlobFile, ...]
    sizes: ImageSizes
    exported: bool
    """True when this call ran ``docker save`` (the image was not in the cache)."""


class LayerCache:
    """Layer files and image manifests, by digest, on the submitter's disk."""

    def __init__(self, root: Path, version: int = 2) -> None:
        if version not in (1, 2):
            raise ValueError(f"image manifest version must be 1 or 2, got {version!r}")
        self.root = root
        self.version = version
        """The manifest version ``publish`` writes: 2 [JOB-IMAGE.10], or 1 [JOB-IMAGE.6]."""
        self.layers = root / "layers"
        self.images = root / "images"

    def layer_path(self, diff_id: str) -> Path:
        return self.layers / (diff_id.removeprefix("sha256:") + ".tar")

    def layer_ref(self, diff_id: str) -> LayerRef | None:
        path, ref = self.layer_path(diff_id), self.layer_path(diff_id).with_suffix(".ref")
        if not path.is_file() or not ref.is_file():
            return None
        blob_hex, size = ref.read_text().split()
        if path.stat().st_size != int(size):
            return None
        return LayerRef(diff_id, bytes.fromhex(blob_hex), int(size))

    def published(self, image_id: str) -> PublishedImage | None:
        """The cached split of ``image_id``, if every part of it is still on disk."""
        stem = self.images / image_id.removeprefix("sha256:")
        try:
            data = stem.with_suffix(".lcimg").read_bytes()
            config = stem.with_suffix(".config").read_bytes()
            blob_bytes, unpacked = json.loads(stem.with_suffix(".sizes").read_text())
        except (OSError, ValueError):
            return None
        try:
            manifest = parse_manifest(data)
        except ImageManifestError:
            return None  # a damaged cache entry: split again
        if manifest.image_id != image_id or any(
                self.layer_ref(layer.diff_id) != layer for layer in manifest.layers):
            return None
        check_config(manifest, config)
        if manifest.version != self.version:  # re-encoded from the cached config
            manifest = manifest.as_version(self.version, config)
            _write(stem.with_suffix(".lcimg"), manifest.to_bytes())
        touch(stem.with_suffix(".lcimg"))  # its last use, for the cache's LRU bound
        return self._published(manifest, ImageSizes(blob_bytes, unpacked), exported=False)

    def prune(self, limits: CacheLimits, *, keep_images: Iterable[str] = (),
              protected: Iterable[str] = (), now: float | None = None) -> Removal:
        """Bounds the cache (``sandbox.image_cache_prune``): least recently used images
        first, never ``keep_images`` or the ``protected`` layers (the canonical base's)."""
        return prune(self.root, limits, keep_images=keep_images, protected=protected, now=now)

    def _published(self, manifest: ImageManifest, sizes: ImageSizes, *,
                   exported: bool) -> PublishedImage:
        stem = self.images / manifest.image_id.removeprefix("sha256:")
        data = manifest.to_bytes()
        parts = [] if manifest.config is not None else [  # v2: the config is in the manifest
            BlobFile(stem.with_suffix(".config"), manifest.config_blob, manifest.config_size,
                     "config")]
        seen = set()
        for i, layer in enumerate(manifest.layers):
            if layer.blob not in seen:
                seen.add(layer.blob)
                parts.append(BlobFile(self.layer_path(layer.diff_id), layer.blob, layer.size,
                                      f"layer {i}"))
        return PublishedImage(manifest, BlobFile(stem.with_suffix(".lcimg"),
                                                 blob_id_of_bytes(data), len(data), "manifest"),
                              tuple(parts), sizes, exported)

    def publish(self, client: Any, image_id: str) -> PublishedImage:
        """The image's blobs: from the cache, or streamed out of the engine once."""
        found = self.published(image_id)
        if found is not None:
            return found
        self.layers.mkdir(parents=True, exist_ok=True)
        self.images.mkdir(parents=True, exist_ok=True)
        for skip in (True, False):
            try:
                chunks = client.images.get(image_id).save(chunk_size=CHUNK_SIZE, named=False)
                small, big = self._stream(chunks, skip)
            except ImageManifestError:
                raise
            except Exception as e:  # docker errors, a cut stream, a full disk
                raise ImageBlobError(f"could not export {image_id}: {type(e).__name__}: {e}"
                                     ) from e
            try:
                manifest, config = self._index(image_id, small, big)
                break
            except _Skipped:  # a skipped file was not a cached layer after all: read all
                continue
        sizes = ImageSizes(manifest.total_size,
                           sum(self._unpacked(x.diff_id) for x in manifest.layers))
        size = client.api.inspect_image(image_id).get("Size")
        sizes = ImageSizes(sizes.blob_bytes, max(sizes.unpacked_bytes,
                                                 size if isinstance(size, int) else 0))
        stem = self.images / image_id.removeprefix("sha256:")
        _write(stem.with_suffix(".config"), config)
        _write(stem.with_suffix(".sizes"), json.dumps([sizes.blob_bytes,
                                                       sizes.unpacked_bytes]).encode())
        _write(stem.with_suffix(".lcimg"), manifest.to_bytes())
        return self._published(manifest, sizes, exported=True)

    def _unpacked(self, diff_id: str) -> int:
        """[JOB-IMAGE.5] A cached layer's unpacked size, measured once (the measure adds up)."""
        side = self.layer_path(diff_id).with_suffix(".unpacked")
        try:
            return int(side.read_text())
        except (OSError, ValueError):
            value = unpacked_layers([self.layer_path(diff_id)], None)
            _write(side, f"{value}\n".encode())
            return value

    def _stream(self, chunks: Iterator[bytes], skip: bool
                ) -> tuple[dict[str, bytes], dict[str, str]]:
        """Reads the save stream: small files kept in memory, every file over 1 MiB hashed
        into the layer cache. Returns (name -> bytes, name -> diff_id).

        With ``skip``, a large file of the same size as a cached layer is passed over
        unread (``"skipped <size>"``): the base's gigabyte is not hashed or written
        again. ``_index`` accepts it only if the config's layer at that place is a cached
        layer of that size; the file published is then the cached one, checked when it
        was written, so a wrong guess can only cost a second, full read.
        """
        cached = {int(ref.read_text().split()[1]) for ref in self.layers.glob("*.ref")} \
            if skip else set()
        small: dict[str, bytes] = {}
        big: dict[str, str] = {}
        with tarfile.open(fileobj=_ChunkReader(chunks), mode="r|",  # type: ignore[call-overload]
                          bufsize=CHUNK_SIZE) as archive:
            for member in archive:
                if not member.isreg():
                    continue
                name = member.name.lstrip("/")
                if member.size > CHUNK_SIZE and member.size in cached:
                    big[name] = f"skipped {member.size}"
                    continue
                handle = archive.extractfile(member)
                assert handle is not None
                if member.size <= CHUNK_SIZE:
                    small[name] = handle.read()
                else:
                    big[name] = self._store_layer(handle)
        return small, big

    def _store_layer(self, handle: IO[bytes]) -> str:
        partial = self.layers / f"incoming-{os.getpid()}.partial"
        digest = hashlib.sha256()
        hashes = []
        size = 0
        with open(partial, "wb") as out:
            while data := handle.read(CHUNK_SIZE):
                digest.update(data)
                hashes.append(hashlib.sha256(data).digest())
                size += len(data)
                out.write(data)
        diff_id = "sha256:" + digest.hexdigest()
        if self.layer_ref(diff_id) is None:
            os.replace(partial, self.layer_path(diff_id))
            self.layer_path(diff_id).with_suffix(".ref").write_text(
                f"{blob_id(size, hashes).hex()} {size}\n")
        else:
            partial.unlink()
        return diff_id

    def _index(self, image_id: str, small: dict[str, bytes], big: dict[str, str]
               ) -> tuple[ImageManifest, bytes]:
        """The manifest of the saved image, every layer in the cache and checked."""
        try:
            entry = json.loads(small["manifest.json"])[0]
            config = small[str(entry["Config"]).lstrip("/")]
            names = [str(x).lstrip("/") for x in entry["Layers"]]
        except (KeyError, IndexError, TypeError, ValueError) as e:
            raise ImageBlobError(f"{image_id}: the engine's save has no usable manifest.json: "
                                 f"{e}") from None
        if len(config) > MAX_CONFIG_BYTES:
            raise ImageBlobError(f"{image_id}: config of {len(config)} bytes")
        diff_ids = json.loads(config)["rootfs"]["diff_ids"]
        layers = []
        for name, diff_id in zip(names, diff_ids, strict=False):
            if name in small:  # a layer under 1 MiB: into the cache now
                data = small[name]
                found = "sha256:" + hashlib.sha256(data).hexdigest()
                if found == diff_id and self.layer_ref(diff_id) is None:
                    _write(self.layer_path(diff_id), data)
                    self.layer_path(diff_id).with_suffix(".ref").write_text(
                        f"{blob_id_of_bytes(data).hex()} {len(data)}\n")
            else:
                found = big.get(name, "")
            ref = self.layer_ref(diff_id)
            if found.startswith("skipped "):
                if ref is None or ref.size != int(found.split()[1]):
                    raise _Skipped(name)
                found = diff_id
            if found != diff_id or ref is None:
                raise ImageManifestError(f"{image_id}: layer {name} has digest {found or '?'}, "
                                         f"the config says {diff_id}")
            layers.append(ref)
        manifest = ImageManifest(image_id, blob_id_of_bytes(config), len(config), tuple(layers))
        check_config(manifest, config)
        manifest = manifest.as_version(self.version, config)
        limit = MAX_MANIFEST_BYTES if self.version == 1 else MAX_MANIFEST_BLOB_BYTES
        if len(manifest.body()) > MAX_MANIFEST_BYTES or len(manifest.to_bytes()) > limit:
            raise ImageBlobError(f"{image_id}: too many layers ({len(layers)}) for a manifest")
        return manifest, config


class _Skipped(SandboxError):
    """A file passed over unread was not the cached layer its size suggested (caught
    inside this module: the split then reads every file)."""


class _ChunkReader:
    """A file-like reader over an iterator of byte chunks (the engine's save stream)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = iter(chunks)
        self._cur = b""
        self._pos = 0

    def read(self, size: int = -1) -> bytes:
        out = bytearray()
        while size < 0 or len(out) < size:
            if self._pos >= len(self._cur):
                try:
                    self._cur, self._pos = next(self._chunks), 0
                except StopIteration:
                    break
                continue
            end = len(self._cur) if size < 0 else min(len(self._cur),
                                                       self._pos + size - len(out))
            out += self._cur[self._pos:end]
            self._pos = end
        return bytes(out)


def _write(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + f".{os.getpid()}.partial")
    partial.write_bytes(data)
    os.replace(partial, path)
