"""Every message on the wire: frozen dataclasses, one canonical msgpack frame each.

A frame is the canonical encoding of ``[tag, field1, field2, ...]`` [WIRE-FRAME.1].
``decode_frame`` checks the frame size, the tag, the number of fields and every
field's type and bounds before a message object exists [WIRE-FRAME.2]; anything
else raises ``MalformedFrame``. The limits below are part of the protocol
(protocol_spec/wire.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from chain import fields as fields_
from chain.content import CHUNK_SIZE
from chain.encoding import decode, encode
from chain.errors import DecodeError, FieldError
from p2p.errors import P2PError

PROTOCOL_VERSION = 2
"""2: the secure channel [WIRE-SECURE.*] (1 was the open transport, never spoken now)."""
DOMAIN = "learningchain/v1"

MAX_FRAME_SIZE = 4 * 1024 * 1024
"""[WIRE-FRAME.3] No frame may exceed 4 MiB; a larger one costs the sender its connection."""
_FIELD_ROOM = MAX_FRAME_SIZE - 1024
MAX_GOSSIP_DATA = _FIELD_ROOM
"""[WIRE-GOSSIP.6] A gossip payload fits one frame; topics set tighter limits (GossipParams)."""
MAX_TOPIC_LEN = 32
MAX_TOPICS = 16
MAX_IDS = 256
"""[WIRE-GOSSIP.7] An IHAVE or IWANT carries at most 256 message ids."""
MAX_PEERS_ENTRIES = 32
MAX_BLOCKS_PER_REQUEST = 128
MAX_SYNC_ITEM = _FIELD_ROOM
"""[WIRE-SYNC.3] A block or certificate fits one frame (consensus caps blocks at 2 MiB)."""
MAX_MANIFEST_CHUNKS = 16384
"""[WIRE-BLOB.3] A manifest lists at most 16384 chunks (16 GiB)."""
MAX_BLOB_HAVE = 64
MAX_SNAPSHOT_OFFERS = 4
MAX_WALK_ENTRIES = 64
MAX_SNAP_ITEM = 64 * 1024
"""[WIRE-SNAP.2/4] A header, a certificate or a walk entry: 64 KiB at most."""
MAX_REASON_LEN = 256
MAX_AGENT_LEN = 64
MAX_CHAIN_ID_LEN = 64
MAX_U64 = 2**64 - 1


class MalformedFrame(P2PError):
    """A frame that is not exactly one well-formed protocol message."""

    def __init__(self, message: str, *, code: str = "malformed") -> None:
        super().__init__(message, code=code)


Check = Callable[[Any, str], None]
"""Checks one field of a frame, raising ``chain.errors.FieldError`` (field, expected, got):
the wire schemas are built from the same readers as every ledger decoder."""


def _bin(exact: int | None = None, max_len: int | None = None) -> Check:
    limit = max_len if max_len is not None else MAX_FRAME_SIZE

    def check(v: Any, name: str) -> None:
        fields_.blob(v, name, exact, limit)

    return check


def _uint(max_value: int = MAX_U64) -> Check:
    def check(v: Any, name: str) -> None:
        fields_.uint(v, name, 0, max_value)

    return check


def _uint_from(low: int, max_value: int = MAX_U64) -> Check:
    def check(v: Any, name: str) -> None:
        fields_.uint(v, name, low, max_value)

    return check


def _str(max_len: int) -> Check:
    """A UTF-8 string of at most ``max_len`` encoded bytes."""

    def check(v: Any, name: str) -> None:
        fields_.text(v, name, max_len)
        if len(v.encode()) > max_len:
            raise FieldError(name, f"str of at most {max_len} UTF-8 bytes", v)

    return check


def _list(item: Check, max_items: int) -> Check:
    def check(v: Any, name: str) -> None:
        for i, x in enumerate(fields_.array(v, name, max_len=max_items)):
            item(x, f"{name}[{i}]")

    return check


def _tuple(*items: Check) -> Check:
    def check(v: Any, name: str) -> None:
        for i, (c, x) in enumerate(zip(items, fields_.array(v, name, len(items)), strict=True)):
            c(x, f"{name}[{i}]")

    return check


_HASH = _bin(exact=32)
_TOPIC = _str(MAX_TOPIC_LEN)


class Message:
    """Base of all wire messages; subclasses are frozen slotted dataclasses."""

    TAG: ClassVar[str]
    SCHEMA: ClassVar[tuple[Check, ...]]
    OPTIONAL_TAIL: ClassVar[int] = 0
    """How many of the last fields a frame may leave out (added fields old peers omit)."""

    def to_fields(self) -> list[Any]:
        return [getattr(self, f.name) for f in fields(self)]  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Identify(Message):
    """[WIRE-SECURE.3] The first record each side sends inside the secure channel."""

    TAG: ClassVar[str] = "identify"
    version: int
    """Protocol version; must equal the receiver's ``PROTOCOL_VERSION``."""
    chain_id: str
    """The chain this node follows; must equal the receiver's."""
    pubkey: bytes
    """33-byte compressed secp256k1 node key."""
    listen_port: int
    """Port this node accepts connections on (0: does not listen)."""
    topics: list[str]
    """Gossip topics this node subscribes to."""
    agent: str
    """Free-form software name, for logs only."""
    signature: bytes
    """64-byte signature by ``pubkey`` of ``p2p.secure.identify_digest``: this channel's
    handshake hash, the signer's role and every field above."""
    SCHEMA: ClassVar[tuple[Check, ...]] = (
        _uint(),
        _str(MAX_CHAIN_ID_LEN),
        _bin(exact=33),
        _uint(65535),
        _list(_TOPIC, MAX_TOPICS),
        _str(MAX_AGENT_LEN),
        _bin(exact=64),
    )


@dataclass(frozen=True, slots=True)
class Reject(Message):
    """[WIRE-HANDSHAKE.4] Refusal with a reason the other side can log; then close."""

    TAG: ClassVar[str] = "reject"
    code: str
    """Machine-readable reason: version, chain_id, not_admitted, bad_signature, ..."""
    reason: str
    """Human-readable explanation."""
    SCHEMA: ClassVar[tuple[Check, ...]] = (_str(32), _str(MAX_REASON_LEN))


@dataclass(frozen=True, slots=True)
class Publish(Message):
    """[WIRE-GOSSIP.1] A full gossip message; its id is SHA-256(data)."""

    TAG: ClassVar[str] = "pub"
    topic: str
    data: bytes
    SCHEMA: ClassVar[tuple[Check, ...]] = (_TOPIC, _bin(max_len=MAX_GOSSIP_DATA))


@dataclass(frozen=True, slots=True)
class IHave(Message):
    """[WIRE-GOSSIP.3] Lazy announcement: ids of messages the sender holds."""

    TAG: ClassVar[str] = "ihave"
    topic: str
    ids: list[bytes]
    SCHEMA: ClassVar[tuple[Check, ...]] = (_TOPIC, _list(_HASH, MAX_IDS))


@dataclass(frozen=True, slots=True)
class IWant(Message):
    """[WIRE-GOSSIP.4] Request for full messages announced by IHAVE."""

    TAG: ClassVar[str] = "iwant"
    ids: list[bytes]
    SCHEMA: ClassVar[tuple[Check, ...]] = (_list(_HASH, MAX_IDS),)


@dataclass(frozen=True, slots=True)
class Graft(Message):
    """[WIRE-GOSSIP.2] Ask to join the receiver's mesh for a topic."""

    TAG: ClassVar[str] = "graft"
    topic: str
    SCHEMA: ClassVar[tuple[Check, ...]] = (_TOPIC,)


@dataclass(frozen=True, slots=True)
class Prune(Message):
    """[WIRE-GOSSIP.2] Leave (or refuse) the mesh for a topic."""

    TAG: ClassVar[str] = "prune"
    topic: str
    SCHEMA: ClassVar[tuple[Check, ...]] = (_TOPIC,)


@dataclass(frozen=True, slots=True)
class GetPeers(Message):
    """[WIRE-PEX.1] Ask for addresses of other nodes."""

    TAG: ClassVar[str] = "getpeers"
    SCHEMA: ClassVar[tuple[Check, ...]] = ()


@dataclass(frozen=True, slots=True)
class Peers(Message):
    """[WIRE-PEX.2] Up to 32 ``[address, host, port]`` entries."""

    TAG: ClassVar[str] = "peers"
    entries: list[list[Any]]
    SCHEMA: ClassVar[tuple[Check, ...]] = (
        _list(_tuple(_bin(exact=20), _str(255), _uint(65535)), MAX_PEERS_ENTRIES),
    )


@dataclass(frozen=True, slots=True)
class Status(Message):
    """[WIRE-SYNC.1] The sender's latest block height; sent on connect and on every change.

    [WIRE-SYNC.8] ``base``: the oldest height the sender still stores (it pruned below,
    [STORE-PRUNE.*]). Sent only when above 1, so an unpruned node's frame is the old
    ``["status", height]`` and one encoding stays one message."""

    TAG: ClassVar[str] = "status"
    height: int
    base: int = 1
    SCHEMA: ClassVar[tuple[Check, ...]] = (_uint(), _uint_from(2))
    OPTIONAL_TAIL: ClassVar[int] = 1

    def to_fields(self) -> list[Any]:
        return [self.height] if self.base <= 1 else [self.height, self.base]


@dataclass(frozen=True, slots=True)
class GetBlocks(Message):
    """[WIRE-SYNC.2] Ask for ``count`` blocks from ``start`` (at most 128)."""

    TAG: ClassVar[str] = "getblocks"
    req_id: int
    start: int
    count: int
    SCHEMA: ClassVar[tuple[Check, ...]] = (_uint(), _uint(), _uint(MAX_BLOCKS_PER_REQUEST))


@dataclass(frozen=True, slots=True)
class Blocks(Message):
    """[WIRE-SYNC.3] Consecutive ``[block, certificate]`` pairs starting at ``start``."""

    TAG: ClassVar[str] = "blocks"
    req_id: int
    start: int
    items: list[list[bytes]]
    SCHEMA: ClassVar[tuple[Check, ...]] = (
        _uint(),
        _uint(),
        _list(
            _tuple(_bin(max_len=MAX_SYNC_ITEM), _bin(max_len=MAX_SYNC_ITEM)),
            MAX_BLOCKS_PER_REQUEST,
        ),
    )


@dataclass(frozen=True, slots=True)
class GetSnapshots(Message):
    """[WIRE-SNAP.1] Ask which snapshots the peer serves."""

    TAG: ClassVar[str] = "getsnapshots"
    req_id: int
    SCHEMA: ClassVar[tuple[Check, ...]] = (_uint(),)


@dataclass(frozen=True, slots=True)
class Snapshots(Message):
    """[WIRE-SNAP.2] Up to 4 offers ``[manifest, header, certificate]``, newest first."""

    TAG: ClassVar[str] = "snapshots"
    req_id: int
    offers: list[list[bytes]]
    SCHEMA: ClassVar[tuple[Check, ...]] = (
        _uint(),
        _list(_tuple(_bin(max_len=4096), _bin(max_len=MAX_SNAP_ITEM),
                     _bin(max_len=MAX_SNAP_ITEM)), MAX_SNAPSHOT_OFFERS),
    )


@dataclass(frozen=True, slots=True)
class GetWalk(Message):
    """[WIRE-SNAP.3] Ask for the walk entries of heights above ``above``."""

    TAG: ClassVar[str] = "getwalk"
    req_id: int
    above: int
    SCHEMA: ClassVar[tuple[Check, ...]] = (_uint(), _uint())


@dataclass(frozen=True, slots=True)
class Walk(Message):
    """[WIRE-SNAP.4] Up to 64 walk entries, ascending; fewer: there are no more."""

    TAG: ClassVar[str] = "walk"
    req_id: int
    entries: list[bytes]
    SCHEMA: ClassVar[tuple[Check, ...]] = (_uint(), _list(_bin(max_len=MAX_SNAP_ITEM),
                                                          MAX_WALK_ENTRIES))


@dataclass(frozen=True, slots=True)
class BlobHave(Message):
    """[WIRE-BLOB.1] Announces blobs the sender can serve."""

    TAG: ClassVar[str] = "blobhave"
    hashes: list[bytes]
    SCHEMA: ClassVar[tuple[Check, ...]] = (_list(_HASH, MAX_BLOB_HAVE),)


@dataclass(frozen=True, slots=True)
class GetManifest(Message):
    """[WIRE-BLOB.4] Ask for a blob's chunk manifest."""

    TAG: ClassVar[str] = "getmanifest"
    req_id: int
    blob: bytes
    SCHEMA: ClassVar[tuple[Check, ...]] = (_uint(), _HASH)


@dataclass(frozen=True, slots=True)
class Manifest(Message):
    """[WIRE-BLOB.4] Size and the SHA-256 of every chunk of a blob."""

    TAG: ClassVar[str] = "manifest"
    req_id: int
    blob: bytes
    size: int
    chunk_hashes: list[bytes]
    SCHEMA: ClassVar[tuple[Check, ...]] = (
        _uint(),
        _HASH,
        _uint(),
        _list(_HASH, MAX_MANIFEST_CHUNKS),
    )


@dataclass(frozen=True, slots=True)
class GetChunk(Message):
    """[WIRE-BLOB.5] Ask for chunk ``index`` of a blob."""

    TAG: ClassVar[str] = "getchunk"
    req_id: int
    blob: bytes
    index: int
    SCHEMA: ClassVar[tuple[Check, ...]] = (_uint(), _HASH, _uint(MAX_MANIFEST_CHUNKS))


@dataclass(frozen=True, slots=True)
class Chunk(Message):
    """[WIRE-BLOB.5] The bytes of one chunk."""

    TAG: ClassVar[str] = "chunk"
    req_id: int
    data: bytes | memoryview
    """A memoryview into the received frame on the fast decode path (no copy)."""
    SCHEMA: ClassVar[tuple[Check, ...]] = (_uint(), _bin(max_len=CHUNK_SIZE))


@dataclass(frozen=True, slots=True)
class GetBulk(Message):
    """[WIRE-BLOB.9] Ask for a token to read ``blob`` over the bulk stream."""

    TAG: ClassVar[str] = "getbulk"
    req_id: int
    blob: bytes
    SCHEMA: ClassVar[tuple[Check, ...]] = (_uint(), _HASH)


@dataclass(frozen=True, slots=True)
class BulkGrant(Message):
    """[WIRE-BLOB.9] A token for HTTP range requests of one blob on the sender's port."""

    TAG: ClassVar[str] = "bulkgrant"
    req_id: int
    token: bytes
    SCHEMA: ClassVar[tuple[Check, ...]] = (_uint(), _bin(exact=16))


@dataclass(frozen=True, slots=True)
class NotFound(Message):
    """[WIRE-REQ.2] The responder cannot serve the request ``req_id``."""

    TAG: ClassVar[str] = "notfound"
    req_id: int
    SCHEMA: ClassVar[tuple[Check, ...]] = (_uint(),)


MESSAGE_TYPES: dict[str, type[Message]] = {
    cls.TAG: cls
    for cls in (
        Identify,
        Reject,
        Publish,
        IHave,
        IWant,
        Graft,
        Prune,
        GetPeers,
        Peers,
        Status,
        GetBlocks,
        Blocks,
        GetSnapshots,
        Snapshots,
        GetWalk,
        Walk,
        BlobHave,
        GetManifest,
        Manifest,
        GetChunk,
        Chunk,
        GetBulk,
        BulkGrant,
        NotFound,
    )
}

RESPONSE_TYPES = (Blocks, Snapshots, Walk, Manifest, Chunk, BulkGrant, NotFound)
"""[WIRE-REQ.1] Messages that answer a request and carry its ``req_id`` first."""


_CHUNK_PREFIX = b"\x93\xa5chunk"
_FAST_CHUNK_MIN = 64 * 1024


def _bin_header(length: int) -> bytes:
    """msgpack's minimal (canonical) header for ``length`` bytes of bin."""
    if length < 1 << 8:
        return b"\xc4" + length.to_bytes(1, "big")
    if length < 1 << 16:
        return b"\xc5" + length.to_bytes(2, "big")
    return b"\xc6" + length.to_bytes(4, "big")


def _decode_chunk_fast(frame: bytes) -> Chunk | None:
    """The ``chunk`` frame without decoding and re-encoding a megabyte of data.

    Accepts exactly the frames ``decode_frame``'s general path accepts: the
    prefix up to the data must equal the canonical encoding of
    ``["chunk", req_id]`` with the minimal bin header for the data's length.
    Returns None (general path decides) for anything else.
    """
    head = frame[len(_CHUNK_PREFIX) : len(_CHUNK_PREFIX) + 9]
    marker = head[0]
    if marker <= 0x7F:
        id_len = 1
    elif marker in (0xCC, 0xCD, 0xCE, 0xCF):
        id_len = 1 + (1 << (marker - 0xCC))
    else:
        return None
    try:
        req_id = decode(head[:id_len])
    except DecodeError:
        return None
    if not isinstance(req_id, int) or req_id < 0:
        return None
    start = len(_CHUNK_PREFIX) + id_len
    kind = frame[start]
    size_len = {0xC4: 1, 0xC5: 2, 0xC6: 4}.get(kind)
    if size_len is None:
        return None
    length = int.from_bytes(frame[start + 1 : start + 1 + size_len], "big")
    data_start = start + 1 + size_len
    if (
        data_start + length != len(frame)
        or length > CHUNK_SIZE
        or frame[start:data_start] != _bin_header(length)
    ):
        return None
    return Chunk(req_id, memoryview(frame)[data_start:])


def chunk_frame_header(req_id: int, length: int) -> bytes:
    """The bytes of ``encode_frame(Chunk(req_id, data))`` before ``data`` (``len(data) == length``).

    Lets a server read a chunk from disk straight into its outgoing frame
    instead of reading, then copying it once more in msgpack.
    """
    return _CHUNK_PREFIX + encode(req_id) + _bin_header(length)


def encode_frame(message: Message) -> bytes:
    """[WIRE-FRAME.1] The canonical frame of one message."""
    return encode([message.TAG, *message.to_fields()])


def decode_frame(frame: bytes, *, max_size: int = MAX_FRAME_SIZE) -> Message:
    """[WIRE-FRAME.2] Parses and checks one frame, raising ``MalformedFrame``."""
    if len(frame) > max_size:
        raise MalformedFrame(f"frame of {len(frame)} bytes exceeds {max_size}", code="oversized")
    if len(frame) >= _FAST_CHUNK_MIN and frame.startswith(_CHUNK_PREFIX):
        chunk = _decode_chunk_fast(frame)
        if chunk is not None:
            return chunk
    try:
        value = decode(frame, max_size=max_size)
    except DecodeError as e:
        raise MalformedFrame(f"not canonical msgpack: {e}", code=e.code) from e
    if not isinstance(value, list) or not value or not isinstance(value[0], str):
        raise MalformedFrame("frame is not [tag, ...]")
    cls = MESSAGE_TYPES.get(value[0])
    if cls is None:
        raise MalformedFrame(f"unknown message tag {value[0][:32]!r}", code="unknown_tag")
    args = value[1:]
    least = len(cls.SCHEMA) - cls.OPTIONAL_TAIL
    if not least <= len(args) <= len(cls.SCHEMA):
        expected = (f"{least} to {len(cls.SCHEMA)}" if cls.OPTIONAL_TAIL
                    else str(len(cls.SCHEMA)))
        raise MalformedFrame(f"{cls.TAG}: expected {expected} fields, got {len(args)}")
    for i, (check, arg) in enumerate(zip(cls.SCHEMA[:len(args)], args, strict=True)):
        try:
            check(arg, f"{cls.TAG}[{i}]")
        except FieldError as e:
            raise MalformedFrame(str(e), code="bad_field") from e
    return cls(*args)
