"""A plain transfer read straight from its bytes (``chain.transactions._plain_transfer``)
must accept only what the general decoder accepts, and build the same transaction.

The general path is canonical msgpack [ENC-CANON.1] then each field's own check
([TX-SIZE.1], [TX-TRANSFER.1], [TX-TRANSFER.2], [KEY-ADDR.1]); the shortcut declines
(None) whatever it does not fully check, and ``SignedTransaction.decode`` then takes the
general path, so every error keeps its code. Compared here on random transfers, on every
transaction of the vectors, on hand-made near misses and on random damage to real wires.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.crypto import PrivateKey
from chain.errors import DecodeError
from chain.transactions import SignedTransaction, Transfer, _plain_transfer, sign_transaction
from chain.types import Address, Amount
from tests.ledger.test_tx_digest import _wires
from tests.ledger.vector_files import VECTORS_DIR

KEY = PrivateKey.from_seed(b"plain-transfer-sender")
TO = Address(bytes(range(20)))
SIGNATURE = bytes(range(64))


def _fields(tx: SignedTransaction) -> tuple[object, ...]:
    """Everything a transaction holds, the cached fields too (``==`` skips those)."""
    return (tx.body, type(tx.body), tx.sender_pubkey, tx.nonce, tx.signature, tx.wire,
            tx.hash, tx.sender)


def _general(data: bytes) -> SignedTransaction | str:
    """The general path's transaction, or its error code."""
    try:
        return SignedTransaction.decode_general(data)
    except DecodeError as e:
        return f"error:{e.code}"


def _agrees(data: bytes) -> bool:
    """The shortcut declined, or built what the general path builds; ``decode`` answers as
    the general path does either way. Returns whether the shortcut took it."""
    fast = _plain_transfer(data)
    general = _general(data)
    if fast is not None:
        assert not isinstance(general, str), (data.hex(), general)
        assert _fields(fast) == _fields(general), data.hex()
    try:
        decoded: SignedTransaction | str = SignedTransaction.decode(data)
    except DecodeError as e:
        decoded = f"error:{e.code}"
    if isinstance(general, str):
        assert decoded == general, (data.hex(), decoded, general)
    else:
        assert not isinstance(decoded, str) and _fields(decoded) == _fields(general)
    return fast is not None


@settings(max_examples=400, deadline=None)
@given(nonce=st.one_of(st.integers(0, 300), st.integers(0, 2**63 - 1)),
       amount=st.one_of(st.integers(1, 70_000), st.integers(1, 2**63 - 1)),
       to=st.binary(min_size=20, max_size=20))
def test_tx_transfer_1_every_plain_transfer_takes_the_shortcut_and_decodes_alike(
        nonce: int, amount: int, to: bytes) -> None:
    tx = sign_transaction(KEY, "lc-plain", nonce, Transfer(Address(to), Amount(amount)))
    assert _agrees(tx.wire)
    assert _fields(SignedTransaction.decode(tx.wire)) == _fields(tx)


@pytest.mark.parametrize("value", [0, 127, 128, 255, 256, 65_535, 65_536, 2**32 - 1, 2**32,
                                   2**63 - 1])
def test_tx_transfer_1_each_integer_width_at_its_edges(value: int) -> None:
    """Every msgpack width on both sides of its edge, as nonce and (from 1) as amount."""
    tx = sign_transaction(KEY, "lc-plain", value, Transfer(TO, Amount(max(1, value))))
    assert _agrees(tx.wire)


@settings(max_examples=200, deadline=None)
@given(memo=st.binary(min_size=1, max_size=64), nonce=st.integers(0, 2**63 - 1))
def test_tx_transfer_2_a_transfer_with_a_memo_takes_the_general_path(memo: bytes,
                                                                     nonce: int) -> None:
    tx = sign_transaction(KEY, "lc-plain", nonce, Transfer(TO, Amount(5), memo))
    assert _plain_transfer(tx.wire) is None
    assert not _agrees(tx.wire) and _fields(SignedTransaction.decode(tx.wire)) == _fields(tx)


def test_tx_size_1_every_vector_transaction_decodes_alike_on_both_paths() -> None:
    """Every transaction the vectors hold: the plain transfers among them take the shortcut,
    the other kinds do not, and all decode as the general path decodes them."""
    taken = total = 0
    for path in sorted(VECTORS_DIR.glob("*.json")):
        for wire in _wires(json.loads(path.read_text())):
            total += 1
            taken += _agrees(wire)
    assert total >= 20 and 0 < taken < total, (taken, total)


def _plain(nonce: bytes = b"\x03", to: bytes = b"\xc4\x14" + TO, amount: bytes = b"\x05",
           pubkey: bytes = b"\xc4\x21" + KEY.public_key, tag: bytes = b"\xa8transfer",
           signature: bytes = b"\xc4\x40" + SIGNATURE, body: bytes = b"\x92") -> bytes:
    """A transfer's bytes put together item by item, for near misses ``encode`` refuses."""
    return b"\x95" + tag + pubkey + nonce + body + to + amount + signature


@pytest.mark.parametrize(("name", "data"), [
    ("the plain transfer itself, as a check of the builder", _plain()),
    ("nonce in a wider form than it needs", _plain(nonce=b"\xcc\x05")),
    ("nonce 200 in uint 16", _plain(nonce=b"\xcd\x00\xc8")),
    ("negative nonce", _plain(nonce=b"\xff")),
    ("nonce as a signed int", _plain(nonce=b"\xd1\x01\x00")),
    ("nonce above 2**63 - 1", _plain(nonce=b"\xcf" + (2**63).to_bytes(8, "big"))),
    ("nil nonce", _plain(nonce=b"\xc0")),
    ("zero amount", _plain(amount=b"\x00")),
    ("amount in a wider form than it needs", _plain(amount=b"\xcd\x00\x07")),
    ("amount above 2**63 - 1", _plain(amount=b"\xcf" + (2**64 - 1).to_bytes(8, "big"))),
    ("uncompressed key prefix", _plain(pubkey=b"\xc4\x21\x04" + KEY.public_key[1:])),
    ("short key", _plain(pubkey=b"\xc4\x20" + KEY.public_key[:32])),
    ("key in bin 16", _plain(pubkey=b"\xc5\x00\x21" + KEY.public_key)),
    ("19-byte recipient", _plain(to=b"\xc4\x13" + TO[:19])),
    ("recipient in bin 16", _plain(to=b"\xc5\x00\x14" + TO)),
    ("63-byte signature", _plain(signature=b"\xc4\x3f" + SIGNATURE[:63])),
    ("signature as a string", _plain(signature=b"\xd9\x40" + b"s" * 64)),
    ("empty memo", _plain(body=b"\x93", amount=b"\x05\xc4\x00")),
    ("body of one item", _plain(body=b"\x91", amount=b"")),
    ("trailing byte", _plain() + b"\x00"),
    ("other tag", _plain(tag=b"\xa8transfeR")),
    ("tag in str 8", _plain(tag=b"\xd9\x08transfer")),
])
def test_tx_transfer_1_near_misses_are_declined_and_keep_the_general_error(
        name: str, data: bytes) -> None:
    """Bytes one step from a plain transfer: the shortcut declines each, and ``decode``
    refuses it with the general path's code (the first, unbroken, is taken by both)."""
    if name.startswith("the plain transfer itself"):
        assert _agrees(data) and _plain_transfer(data) is not None
        return
    assert _plain_transfer(data) is None, name
    general = _general(data)
    assert isinstance(general, str), (name, general)
    assert not _agrees(data)


@settings(max_examples=600, deadline=None)
@given(nonce=st.integers(0, 2**63 - 1), amount=st.integers(1, 2**63 - 1),
       edits=st.lists(st.tuples(st.sampled_from(["set", "insert", "delete"]),
                                st.integers(0, 200), st.integers(0, 255)),
                      min_size=1, max_size=3))
def test_tx_transfer_1_damaged_wires_decode_alike_on_both_paths(
        nonce: int, amount: int, edits: list[tuple[str, int, int]]) -> None:
    """Random damage to a real transfer (set, insert or delete a byte anywhere): whatever
    the shortcut still accepts, the general path accepts with the same transaction."""
    data = bytearray(sign_transaction(KEY, "lc-plain", nonce,
                                      Transfer(TO, Amount(amount))).wire)
    for op, at, byte in edits:
        at %= len(data) + (op == "insert")
        if op == "set":
            data[at] = byte
        elif op == "insert":
            data.insert(at, byte)
        elif len(data) > 1:
            del data[at]
    _agrees(bytes(data))
