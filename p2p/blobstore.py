"""Content-addressed blob store on disk [WIRE-BLOB.*].

A blob is named by its chunk-list id (``chain.content.blob_id``).
``<root>/blobs/<hex>`` holds only complete, verified blobs: every write goes
to a temporary file first, is hashed, flushed and renamed into place, so a
crash or a bad peer never leaves a corrupt byte under a blob's name
[WIRE-BLOB.7]. ``<root>/manifests/<hex>`` caches each blob's chunk hashes;
``<root>/partial/<hex>`` holds downloads in progress (see ``p2p.blobs``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from chain.content import CHUNK_SIZE, blob_id, chunk_count, hash_file
from chain.encoding import decode, encode
from p2p.errors import P2PError

__all__ = [
    "BlobCorrupt", "BlobError", "BlobStore", "BlobTooLarge", "BlobUnavailable",
    "BlobWriteFailed",
    "blob_id", "chunk_count",
]


class BlobError(P2PError):
    code = "blob_error"


class BlobTooLarge(BlobError):
    """[WIRE-BLOB.6] A blob over the configured bound is refused before any byte is stored."""

    code = "blob_too_large"


class BlobCorrupt(BlobError):
    """The bytes (or a manifest) do not hash to the blob's name."""

    code = "blob_corrupt"


class BlobUnavailable(BlobError):
    """No peer could serve the blob."""

    code = "blob_unavailable"


class BlobWriteFailed(BlobError):
    """[WIRE-BLOB.11] This node could not write a checked chunk (a full disk): the fault is
    ours, not the sender's. ``errno`` is the file system's."""

    code = "blob_write_failed"

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


class BlobStore:
    """Blobs on disk under ``root``, at most ``max_blob_size`` bytes each."""

    def __init__(self, root: Path, *, max_blob_size: int = 4 * 1024**3) -> None:
        self.root = root
        self.max_blob_size = max_blob_size
        for sub in ("blobs", "manifests", "partial", "tmp"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        self._manifests: dict[bytes, tuple[int, list[bytes]]] = {}

    def path(self, blob: bytes) -> Path:
        return self.root / "blobs" / blob.hex()

    def partial_path(self, blob: bytes) -> Path:
        return self.root / "partial" / blob.hex()

    def has(self, blob: bytes) -> bool:
        return self.path(blob).is_file()

    def blobs(self) -> list[bytes]:
        """Stored blobs, newest first."""
        files = sorted((self.root / "blobs").iterdir(), key=lambda p: -p.stat().st_mtime)
        return [bytes.fromhex(p.name) for p in files if len(p.name) == 64]

    def manifest(self, blob: bytes) -> tuple[int, list[bytes]] | None:
        """``(size, chunk hashes)`` of a stored blob, or None."""
        cached = self._manifests.get(blob)
        if cached is not None:
            return cached
        if not self.has(blob):
            return None
        side = self.root / "manifests" / blob.hex()
        try:
            size, hashes = decode(side.read_bytes(), max_size=64 * 1024 * 1024)
            if blob_id(int(size), hashes) != blob:
                raise ValueError("manifest does not match the blob id")
        except (OSError, ValueError, TypeError, Exception):
            _, size, hashes = hash_file(self.path(blob))
            side.write_bytes(encode([size, hashes]))
        self._manifests[blob] = (int(size), list(hashes))
        return self._manifests[blob]

    def remove(self, blob: bytes) -> bool:
        """Deletes a stored blob and its manifest (the cached one too), so the store stops
        serving it at once: a later request gets ``notfound``, never a half-gone file.
        Returns whether the blob was there."""
        self._manifests.pop(blob, None)
        existed = self.has(blob)
        for path in (self.path(blob), self.root / "manifests" / blob.hex()):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        return existed

    def read_chunk(self, blob: bytes, index: int) -> bytes | None:
        manifest = self.manifest(blob)
        if manifest is None or not 0 <= index < len(manifest[1]):
            return None
        try:
            with self.path(blob).open("rb") as f:
                f.seek(index * CHUNK_SIZE)
                return f.read(CHUNK_SIZE)
        except FileNotFoundError:  # removed meanwhile (disk budget)
            return None

    def read_chunk_frame(
        self, blob: bytes, index: int, header: Callable[[int], bytes]
    ) -> bytearray | None:
        """``header(length) + chunk`` in one buffer, the chunk read straight into it.

        The serving path: one copy from the page cache instead of three.
        """
        manifest = self.manifest(blob)
        if manifest is None or not 0 <= index < len(manifest[1]):
            return None
        size = manifest[0]
        length = min(CHUNK_SIZE, size - index * CHUNK_SIZE)
        head = header(length)
        out = bytearray(len(head) + length)
        out[: len(head)] = head
        with self.path(blob).open("rb", buffering=0) as f:
            f.seek(index * CHUNK_SIZE)
            view = memoryview(out)[len(head) :]
            got = 0
            while got < length:
                n = f.readinto(view[got:])
                if not n:
                    return None  # the file shrank under us: serve nothing rather than garbage
                got += n
        return out

    def put_bytes(self, data: bytes) -> bytes:
        """Stores ``data``; returns its name (``chain.content.blob_id``)."""
        if len(data) > self.max_blob_size:
            raise BlobTooLarge(f"{len(data)} bytes exceeds {self.max_blob_size}")
        tmp = self.root / "tmp" / f"put-{os.getpid()}-{id(data)}"
        tmp.write_bytes(data)
        return self.adopt(tmp)

    def put_file(self, source: Path, *, link: bool = False) -> bytes:
        """Copies (or hard-links) a file into the store; returns its name."""
        if source.stat().st_size > self.max_blob_size:
            raise BlobTooLarge(f"{source} exceeds {self.max_blob_size} bytes")
        tmp = self.root / "tmp" / f"put-{os.getpid()}-{source.name}"
        tmp.unlink(missing_ok=True)
        try:
            if link:
                os.link(source, tmp)
            else:
                shutil.copyfile(source, tmp)
        except BaseException:  # a copy cut short (a full disk) is not left to hold its bytes
            tmp.unlink(missing_ok=True)
            raise
        return self.adopt(tmp)

    def adopt(self, tmp: Path, *, expected: bytes | None = None) -> bytes:
        """[WIRE-BLOB.7] Hash a finished temp file, then rename it under its name (or delete
        it: also when a step fails, a full disk's manifest, so that no temp file keeps the
        blob's bytes)."""
        try:
            blob, size, hashes = hash_file(tmp)
            if expected is not None and blob != expected:
                raise BlobCorrupt(f"content hashes to {blob.hex()}, expected {expected.hex()}")
            with tmp.open("rb+") as f:
                os.fsync(f.fileno())
            (self.root / "manifests" / blob.hex()).write_bytes(encode([size, hashes]))
            os.replace(tmp, self.path(blob))
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self._manifests[blob] = (size, hashes)
        return blob

    def commit_verified(self, blob: bytes, part: Path, size: int, hashes: list[bytes]) -> None:
        """[WIRE-BLOB.7] Flush and rename a download whose every chunk was checked.

        ``hashes`` must hash to ``blob`` (checked when the manifest arrived), so
        a file whose chunks all match them is the blob.
        """
        if blob_id(size, hashes) != blob:
            raise BlobCorrupt(f"manifest does not hash to {blob.hex()}")
        with part.open("rb+") as f:
            os.fsync(f.fileno())
        (self.root / "manifests" / blob.hex()).write_bytes(encode([size, hashes]))
        os.replace(part, self.path(blob))
        self._manifests[blob] = (size, list(hashes))

    def partial_chunks(self, blob: bytes, hashes: list[bytes], size: int) -> list[int]:
        """[WIRE-BLOB.8] Indices of chunks already present and correct in a partial download."""
        part = self.partial_path(blob)
        if not part.is_file() or part.stat().st_size != size:
            return []
        present: list[int] = []
        with part.open("rb") as f:
            for index, expected in enumerate(hashes):
                f.seek(index * CHUNK_SIZE)
                if hashlib.sha256(f.read(CHUNK_SIZE)).digest() == expected:
                    present.append(index)
        return present
