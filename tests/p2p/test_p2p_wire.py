"""Frames [WIRE-FRAME.*], scores and bans [WIRE-SCORE.*], dial backoff [WIRE-PEX.3]."""

from __future__ import annotations

import random

import msgpack
import pytest

from chain.encoding import encode
from p2p.addrbook import AddressBook
from p2p.scoring import BanList, Offence, PeerScore, TokenBucket
from p2p.wire import (
    CHUNK_SIZE,
    MAX_FRAME_SIZE,
    MAX_IDS,
    MESSAGE_TYPES,
    Blocks,
    Chunk,
    GetSnapshots,
    GetWalk,
    Identify,
    IHave,
    MalformedFrame,
    Manifest,
    Peers,
    Publish,
    Reject,
    Snapshots,
    Status,
    Walk,
    decode_frame,
    encode_frame,
)

H = b"\x11" * 32
SAMPLES = [
    Identify(2, "lc-test", b"\x02" + b"\x01" * 32, 9000, ["tx"], "agent", b"\x03" * 64),
    Reject("chain_id", "wrong chain"),
    Publish("tx", b"payload"),
    IHave("tx", [H, H]),
    Peers([[b"\x01" * 20, "127.0.0.1", 9000]]),
    Status(7),
    Status(70, 41),
    Blocks(3, 10, [[b"block", b"cert"]]),
    Manifest(4, H, 5, [H]),
    Chunk(5, b"data"),
    GetSnapshots(6),
    Snapshots(6, [[b"manifest", b"header", b"cert"]]),
    GetWalk(7, 0),
    Walk(7, [b"entry"]),
]


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: m.TAG)
def test_wire_frame_1_round_trip(message: object) -> None:
    frame = encode_frame(message)  # type: ignore[arg-type]
    assert decode_frame(frame) == message


def test_wire_sync_8_status_carries_a_base_only_above_1() -> None:
    """[WIRE-SYNC.8] An unpruned node's status is the old two-element frame, so old peers
    read it; a pruned node's appends its base; a frame without one means base 1."""
    assert encode_frame(Status(7)) == encode(["status", 7]) == encode_frame(Status(7, 1))
    assert encode_frame(Status(70, 41)) == encode(["status", 70, 41])
    assert decode_frame(encode(["status", 70, 41])) == Status(70, 41)
    assert decode_frame(encode(["status", 7])).base == 1  # type: ignore[attr-defined]


def test_wire_snap_2_4_bounds_are_enforced_before_a_message_exists() -> None:
    """[WIRE-SNAP.2] at most 4 offers, a manifest of 4 KiB; [WIRE-SNAP.4] at most 64 walk
    entries: a frame beyond either is malformed."""
    offer = [b"m", b"h", b"c"]
    assert decode_frame(encode(["snapshots", 1, [offer] * 4])) == Snapshots(1, [offer] * 4)
    for frame in (encode(["snapshots", 1, [offer] * 5]),
                  encode(["snapshots", 1, [[b"m" * 4097, b"h", b"c"]]]),
                  encode(["walk", 1, [b"e"] * 65]), encode(["getwalk", 1])):
        with pytest.raises(MalformedFrame):
            decode_frame(frame)


def test_wire_frame_1_every_type_has_a_unique_tag() -> None:
    assert len({cls.TAG for cls in MESSAGE_TYPES.values()}) == len(MESSAGE_TYPES)


@pytest.mark.parametrize(
    "frame, code",
    [
        (encode(["nope"]), "unknown_tag"),
        (encode(["status"]), "malformed"),
        (encode(["status", 1, 2, 3]), "malformed"),
        (encode(["status", 5, 1]), "bad_field"),  # base 1 is left out [WIRE-SYNC.8]
        (encode(["status", -1]), "bad_field"),
        (encode(["status", "7"]), "bad_field"),
        (encode(["ihave", "tx", [b"short"]]), "bad_field"),
        (encode(["ihave", "tx", [H] * (MAX_IDS + 1)]), "bad_field"),
        (encode({"tag": "status"}), "malformed"),
        (msgpack.packb(["status", 7]) + b"\x00", "trailing_bytes"),
        (b"\xc1garbage", "malformed"),
        (b"\x00" * (MAX_FRAME_SIZE + 1), "oversized"),
    ],
)
def test_wire_frame_2_invalid_frames_raise_with_a_code(frame: bytes, code: str) -> None:
    with pytest.raises(MalformedFrame) as info:
        decode_frame(frame)
    assert info.value.code == code


def test_wire_frame_2_non_canonical_integer_is_refused() -> None:
    frame = b"\x92\xa6status\xcd\x00\x07"  # 7 encoded as uint16
    with pytest.raises(MalformedFrame):
        decode_frame(frame)


def test_wire_score_3_ban_after_threshold_and_recovery() -> None:
    score = PeerScore()
    for _ in range(5):
        score.charge(Offence.REJECTED_MESSAGE, 0.0, 1.0)
    assert score.value == -100
    assert score.current(50.0, 1.0) == -50
    assert score.current(1000.0, 1.0) == 0
    bans = BanList()
    bans.ban(b"a" * 20, now=0.0, seconds=10)  # type: ignore[arg-type]
    assert bans.is_banned(b"a" * 20, 5.0)  # type: ignore[arg-type]
    assert not bans.is_banned(b"a" * 20, 10.0)  # type: ignore[arg-type]


def test_wire_score_4_token_bucket_limits_rate() -> None:
    bucket = TokenBucket(rate=10, burst=20)
    assert sum(bucket.take(1, 0.0) for _ in range(30)) == 20
    assert sum(bucket.take(1, 1.0) for _ in range(30)) == 10


def test_wire_pex_3_backoff_grows_and_resets() -> None:
    book = AddressBook(backoff_base=1.0, backoff_max=8.0, rng=random.Random(1))
    ep = ("127.0.0.1", 9000)
    book.add(ep, bootstrap=True)
    own = b"\x00" * 20
    assert book.candidates(0.0, set(), own, set()) == [ep]  # type: ignore[arg-type]
    delays = []
    for _ in range(6):
        book.failed(ep, 0.0)
        delays.append(book.entries[ep].next_try)
    assert delays == sorted(delays) or delays[-1] <= 8.0
    assert max(delays) <= 8.0
    assert book.candidates(0.0, set(), own, set()) == []  # type: ignore[arg-type]
    book.succeeded(ep, b"\x01" * 20, 0.0)  # type: ignore[arg-type]
    assert book.entries[ep].failures == 0


def _general_decode(frame: bytes) -> object:
    import p2p.wire as wire

    saved = wire._FAST_CHUNK_MIN
    wire._FAST_CHUNK_MIN = 1 << 40
    try:
        return decode_frame(frame)
    except MalformedFrame as e:
        return ("malformed", e.code)
    finally:
        wire._FAST_CHUNK_MIN = saved


def _fast_decode(frame: bytes) -> object:
    try:
        return decode_frame(frame)
    except MalformedFrame as e:
        return ("malformed", e.code)


BIG = CHUNK_SIZE + 1


@pytest.mark.parametrize(
    "frame",
    [
        encode_frame(Chunk(0, b"\x01" * 70_000)),
        encode_frame(Chunk(200, b"\x02" * 100_000)),
        encode_frame(Chunk(70_000, b"\x03" * (1 << 20))),
        encode_frame(Chunk(2**40, b"\x04" * 65_536)),
        # Non-canonical twins: non-minimal req_id, non-minimal bin header, trailing byte.
        b"\x93\xa5chunk\xcd\x00\x07" + b"\xc6" + (70_000).to_bytes(4, "big") + b"\x05" * 70_000,
        b"\x93\xa5chunk\x07" + b"\xc6" + (65_000).to_bytes(4, "big") + b"\x05" * 65_000,
        b"\x93\xa5chunk\x07" + b"\xc6" + (70_000).to_bytes(4, "big") + b"\x05" * 70_001,
        b"\x93\xa5chunk\x07"
        + b"\xc6"
        + (CHUNK_SIZE + 1).to_bytes(4, "big")
        + b"\x05" * (CHUNK_SIZE + 1),
        b"\x93\xa5chunk\xa1x" + b"\xc6" + (70_000).to_bytes(4, "big") + b"\x05" * 70_000,
    ],
)
def test_wire_frame_2_chunk_fast_path_agrees_with_the_general_path(frame: bytes) -> None:
    assert _fast_decode(frame) == _general_decode(frame)


def test_wire_frame_2_chunk_fast_path_takes_canonical_chunks() -> None:
    from p2p.wire import _decode_chunk_fast

    frame = encode_frame(Chunk(70_000, b"\x03" * CHUNK_SIZE))
    assert _decode_chunk_fast(frame) == Chunk(70_000, b"\x03" * CHUNK_SIZE)


@pytest.mark.parametrize("req_id", [0, 127, 128, 70_000, 2**40])
@pytest.mark.parametrize("length", [1, 255, 256, 65_536, CHUNK_SIZE])
def test_wire_blob_5_server_chunk_frame_is_canonical(req_id: int, length: int) -> None:
    from p2p.wire import chunk_frame_header

    data = bytes([length % 251]) * length
    assert chunk_frame_header(req_id, length) + data == encode_frame(Chunk(req_id, data))


def test_wire_blob_5_store_builds_chunk_frames_from_disk(tmp_path) -> None:
    import os

    from p2p.blobstore import BlobStore
    from p2p.wire import chunk_frame_header

    data = os.urandom(2 * CHUNK_SIZE + 17)
    store = BlobStore(tmp_path)
    blob = store.put_bytes(data)
    for index in range(3):
        frame = store.read_chunk_frame(blob, index, lambda n, i=index: chunk_frame_header(i, n))
        piece = data[index * CHUNK_SIZE : (index + 1) * CHUNK_SIZE]
        assert frame == encode_frame(Chunk(index, piece))
        assert decode_frame(bytes(frame)) == Chunk(index, piece)
    assert store.read_chunk_frame(blob, 3, lambda n: chunk_frame_header(0, n)) is None
