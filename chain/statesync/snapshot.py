"""Snapshots of the state [SNAP-MANIFEST.1] [SNAP-BODY.1] [SNAP-CHECK.1-3]: made, checked,
restored. Pure: bytes and files in, records and errors out.

A snapshot of height h is a *body*, every record of the state after h as a stream of
canonical ``[table, key, value]`` arrays sorted by (table, key), travelling as one blob
(content-addressed, fetched and checked chunk by chunk like any blob [WIRE-BLOB.*]),
and a *manifest* that names the body's blob id and the root parts of h. A joining node
checks the manifest against a certified header of h (the root recomputed from the
parts [STATE-ROOT.2]), the body's chunks against the blob id, and the records against
the content digest and the next set's hash in the parts: nothing unverified is applied.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import msgpack

from chain import fields as F
from chain.blocks import BlockHeader
from chain.encoding import decode, encode
from chain.errors import ChainError
from chain.state import TABLE_CODECS, State, decode_record, encode_record
from chain.types import Hash32, Height, TimeMs

from . import lthash
from .roots import RootParts, members_hash, set_members

SNAPSHOT_FORMAT = 1
MAX_MANIFEST_BYTES = 4096
MAX_RECORD_BYTES = 4 * 1024 * 1024
"""[SNAP-BODY.1] No record of the body is larger (the largest state record is a few KiB)."""


class SnapshotInvalid(ChainError):
    """A manifest, a header or a body that does not prove the state it claims."""

    code = "snapshot_invalid"


@dataclass(frozen=True, slots=True)
class SnapshotManifest:
    """[SNAP-MANIFEST.1] What a snapshot of ``height`` is, 4 KiB at most on the wire."""

    chain_id: str
    height: Height
    block_hash: Hash32
    time_ms: TimeMs
    state_root: Hash32
    parts: RootParts
    body_blob: Hash32
    body_bytes: int
    record_count: int

    def to_wire(self) -> list[Any]:
        return ["learningchain/v1", "snapshot", SNAPSHOT_FORMAT, self.chain_id, self.height,
                self.block_hash, self.time_ms, self.state_root, self.parts.to_wire(),
                self.body_blob, self.body_bytes, self.record_count]

    def encode(self) -> bytes:
        return encode(self.to_wire())

    @property
    def id(self) -> Hash32:
        return Hash32(hashlib.sha256(self.encode()).digest())

    @classmethod
    def decode(cls, data: bytes) -> SnapshotManifest:
        a = F.array(decode(data, max_size=MAX_MANIFEST_BYTES), "manifest", 12)
        if a[0] != "learningchain/v1" or a[1] != "snapshot" or a[2] != SNAPSHOT_FORMAT:
            raise SnapshotInvalid(f"not a snapshot manifest of format {SNAPSHOT_FORMAT}")
        parts = RootParts.from_wire(a[8])
        return cls(F.text(a[3], "chain_id", 64, 1), Height(F.uint(a[4], "height", 1)),
                   F.hash32(a[5], "block_hash"), TimeMs(F.uint(a[6], "time_ms")),
                   F.hash32(a[7], "state_root"), parts, F.hash32(a[9], "body_blob"),
                   F.uint(a[10], "body_bytes"), F.uint(a[11], "record_count"))


# ---------------------------------------------------------------- making one

def write_body(state: State, out: IO[bytes]) -> tuple[int, int]:
    """[SNAP-BODY.1] Writes every record, sorted by (table, key); returns (bytes, records)."""
    size = count = 0
    for table in sorted(state.tables):
        rows = state.tables[table]
        for key in sorted(rows):
            record = encode([table, key, encode_record(table, rows[key])])
            out.write(record)
            size += len(record)
            count += 1
    return size, count


def manifest_of(state: State, parts: RootParts, body_blob: bytes, body_bytes: int,
                record_count: int) -> SnapshotManifest:
    """The manifest of ``state`` (committed at a digest height, ``parts`` its root's)."""
    return SnapshotManifest(state.chain_id, state.height, state.block_hash, state.time_ms,
                            state.state_root, parts, Hash32(body_blob), body_bytes,
                            record_count)


# ---------------------------------------------------------------- checking one

def check_header(manifest: SnapshotManifest, header: BlockHeader, chain_id: str) -> None:
    """[SNAP-CHECK.1] The manifest names the header (a certified one: the caller checked
    its certificate against the set of its height) and the header's root is the one its
    parts hash to [STATE-ROOT.2]."""
    if manifest.chain_id != chain_id or header.chain_id != chain_id:
        raise SnapshotInvalid(f"snapshot of chain {manifest.chain_id!r}, not {chain_id!r}")
    if (header.height, header.hash, header.time_ms, header.state_root) != (
            manifest.height, manifest.block_hash, manifest.time_ms, manifest.state_root):
        raise SnapshotInvalid(f"manifest of height {manifest.height} does not name the header "
                              f"of height {header.height} ({header.hash.hex()[:16]})")
    if manifest.parts.root(manifest.height) != header.state_root:
        raise SnapshotInvalid(f"root parts of height {manifest.height} do not hash to the "
                              "header's state root [STATE-ROOT.2]")
    if manifest.parts.content_digest == bytes(32):
        raise SnapshotInvalid(f"height {manifest.height} is not a digest height")


def read_body(manifest: SnapshotManifest, path: Path) -> State:
    """[SNAP-CHECK.2] The state a verified blob holds, if its records are canonical, in
    strict (table, key) order, known tables and records, exactly ``record_count`` of
    them, and their LtHash is the manifest's content digest and their validators hash to
    its next set [SNAP-CHECK.3]. The state comes back with its content tracker."""
    state = State(manifest.chain_id, manifest.height, manifest.block_hash, manifest.time_ms,
                  manifest.state_root)
    leaves: list[bytes] = []
    lanes = lthash.zero()
    last: tuple[str, bytes] | None = None
    count = 0
    for table, key, value in _records(path):
        if last is not None and (table, key) <= last:
            raise SnapshotInvalid(f"record {count} ({table}, {key.hex()[:16]}) is out of order")
        last = (table, key)
        if table not in TABLE_CODECS:
            raise SnapshotInvalid(f"record {count} is in unknown table {table!r}")
        try:
            record = decode_record(table, value)
            canonical = encode_record(table, record) == value
        except (ChainError, ValueError, TypeError, KeyError, IndexError) as e:
            raise SnapshotInvalid(f"record {count} ({table}) does not decode: {e}") from e
        if not canonical:
            raise SnapshotInvalid(f"record {count} ({table}) is not canonical")
        state.tables[table][key] = record
        leaves.append(lthash.leaf_bytes(table, key, value))
        if len(leaves) >= 4096:
            lanes = lthash.combine(lanes, lthash.sum_leaves(leaves), lthash.zero())
            leaves = []
        count += 1
    lanes = lthash.combine(lanes, lthash.sum_leaves(leaves), lthash.zero())
    if count != manifest.record_count:
        raise SnapshotInvalid(f"{count} records, the manifest says {manifest.record_count}")
    if lthash.digest(lanes) != manifest.parts.content_digest:
        raise SnapshotInvalid("the records' LtHash is not the content digest [STATE-CONTENT.1]")
    if members_hash(set_members(state.validators())) != manifest.parts.next_set_hash:
        raise SnapshotInvalid("the records' validators are not the next set the root names")
    from .content import ContentTracker  # content imports chain.state, as this module does

    state.content = ContentTracker(lanes)
    return state


def _records(path: Path) -> Iterator[tuple[str, bytes, bytes]]:
    """Each ``[table, key, value]`` of the body, checked canonical byte for byte."""
    with path.open("rb") as f:
        data = f.read()
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=True, max_buffer_size=len(data) + 1,
                                max_bin_len=MAX_RECORD_BYTES, max_str_len=64,
                                max_array_len=3, max_map_len=0, max_ext_len=0)
    unpacker.feed(data)
    offset = 0
    for index, item in enumerate(unpacker):
        end = unpacker.tell()
        raw = data[offset:end]
        offset = end
        if (not isinstance(item, list) or len(item) != 3 or not isinstance(item[0], str)
                or not isinstance(item[1], bytes) or not isinstance(item[2], bytes)):
            raise SnapshotInvalid(f"record {index} is not [table, key, value]")
        if encode(item) != raw:
            raise SnapshotInvalid(f"record {index} is not canonically encoded")
        yield item[0], item[1], item[2]
    if offset != len(data):
        raise SnapshotInvalid(f"the body ends inside a record (byte {offset} of {len(data)})")
