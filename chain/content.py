"""Content addresses for large blobs (job images, models) [WIRE-BLOB.0].

A blob is cut into 1 MiB chunks; its id is the SHA-256 of a domain tag, its
size and the concatenated SHA-256 of every chunk (the BitTorrent v2 / IPFS
idea, one level deep). Why not the SHA-256 of the bytes: a fetcher then has
to hash every byte twice (once per chunk as it arrives, once for the whole),
which capped transfers near 1/5 of loopback speed. With a chunk-list id the
manifest is checked against the id once, each chunk against the manifest on
arrival, and no byte is hashed twice.

Pure functions; the ledger uses the same id for revealed models
(``RevealModel.model_hash``) and job image blobs (``JobSpec.image_blob``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

CHUNK_SIZE = 1024 * 1024
"""[WIRE-BLOB.2] Blobs are cut into 1 MiB chunks; the last may be shorter."""

_DOMAIN = b"learningchain/blob/v1\x00"


def chunk_count(size: int) -> int:
    return (size + CHUNK_SIZE - 1) // CHUNK_SIZE


def blob_id(size: int, chunk_hashes: Iterable[bytes]) -> bytes:
    """[WIRE-BLOB.0] SHA-256(domain || u64be size || chunk_hash_0 || chunk_hash_1 || ...)."""
    h = hashlib.sha256(_DOMAIN)
    h.update(size.to_bytes(8, "big"))
    for chunk_hash in chunk_hashes:
        h.update(chunk_hash)
    return h.digest()


def chunk_hashes_of(data: bytes) -> list[bytes]:
    view = memoryview(data)
    return [hashlib.sha256(view[i : i + CHUNK_SIZE]).digest()
            for i in range(0, len(data), CHUNK_SIZE)]


def blob_id_of_bytes(data: bytes) -> bytes:
    return blob_id(len(data), chunk_hashes_of(data))


def hash_file(path: Path) -> tuple[bytes, int, list[bytes]]:
    """``(blob id, size, chunk hashes)`` of a file, in one read."""
    hashes: list[bytes] = []
    size = 0
    with path.open("rb") as f:
        while data := f.read(CHUNK_SIZE):
            hashes.append(hashlib.sha256(data).digest())
            size += len(data)
    return blob_id(size, hashes), size, hashes


def blob_id_of_file(path: Path) -> bytes:
    return hash_file(path)[0]
