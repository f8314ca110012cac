"""Blob ids [WIRE-BLOB.0]: computed independently, stable, and sensitive to every byte."""

from __future__ import annotations

import hashlib
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from chain.content import CHUNK_SIZE, blob_id, blob_id_of_bytes, chunk_count, hash_file


def reference_blob_id(data: bytes) -> bytes:
    """The definition in protocol_spec/wire.md, written out by hand."""
    chunks = [data[i : i + CHUNK_SIZE] for i in range(0, len(data), CHUNK_SIZE)]
    return hashlib.sha256(
        b"learningchain/blob/v1\x00"
        + len(data).to_bytes(8, "big")
        + b"".join(hashlib.sha256(c).digest() for c in chunks)
    ).digest()


def test_empty_blob_has_a_fixed_id() -> None:
    """[WIRE-BLOB.0] The empty blob: the domain and a zero size, no chunk hashes."""
    assert blob_id_of_bytes(b"") == hashlib.sha256(b"learningchain/blob/v1\x00" + bytes(8)).digest()
    assert chunk_count(0) == 0


def test_vector_two_and_a_bit_chunks() -> None:
    """[WIRE-BLOB.0] Against the hand-written definition, and a pinned id."""
    data = bytes(range(256)) * (2 * CHUNK_SIZE // 256) + b"tail"
    assert chunk_count(len(data)) == 3
    assert blob_id_of_bytes(data) == reference_blob_id(data)
    # pinned: a change to the definition breaks every stored blob name
    assert blob_id_of_bytes(data).hex() == (
        "17a16ce9a06438f8df324031ebed5d19490eefcbf375f819ff76f3717f592fc7"
    )


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=3 * 1024), st.integers(min_value=0, max_value=2))
def test_matches_reference_and_file_hashing(tmp_path_factory, tail: bytes, whole: int) -> None:
    data = b"\x5a" * (whole * CHUNK_SIZE) + tail
    path: Path = tmp_path_factory.mktemp("blob") / "f"
    path.write_bytes(data)
    found, size, hashes = hash_file(path)
    assert found == blob_id_of_bytes(data) == reference_blob_id(data)
    assert size == len(data) and len(hashes) == chunk_count(len(data))


def test_size_is_bound_so_trailing_zero_chunks_change_the_id() -> None:
    """[WIRE-BLOB.0] The 8-byte size is part of the id: one more zero byte, another id."""
    data = b"x" * 10
    assert blob_id_of_bytes(data) != blob_id_of_bytes(data + b"\x00")
    hashes = [hashlib.sha256(data).digest()]
    assert blob_id(10, hashes) != blob_id(11, hashes)
