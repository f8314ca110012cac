"""[TX-SIG.1] ``SignedTransaction.digest`` hashes the wire's own bytes instead of encoding the
body again; it must give ``signing_digest``'s value for every transaction that exists.

Also the decoder's one-pass scan for the heads that leave the fast path [ENC-CANON.1]
[ENC-CANON.2]: a value with one of them still takes the full check and its answer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.crypto import PrivateKey
from chain.encoding import _NON_FINITE, _SLOW, _TIMESTAMP_HEADS, _decode_fast, decode
from chain.errors import DecodeError
from chain.transactions import SignedTransaction, Transfer, sign_transaction, signing_digest
from chain.types import Address, Amount
from tests.ledger.vector_files import VECTORS_DIR

KEY = PrivateKey.from_seed(b"digest-sender")


def _by_encoding(tx: SignedTransaction, chain_id: str) -> bytes:
    return signing_digest(chain_id, tx.body.TAG, tx.sender_pubkey, tx.nonce, tx.body.to_wire())


def _wires(value: Any) -> Iterator[bytes]:
    """Every hex string of the vector files that is a transaction's wire."""
    if isinstance(value, dict):
        for item in value.values():
            yield from _wires(item)
    elif isinstance(value, list):
        for item in value:
            yield from _wires(item)
    elif isinstance(value, str) and len(value) >= 200 and len(value) % 2 == 0:
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            return
        try:
            SignedTransaction.decode(raw)
        except DecodeError:
            return
        yield raw


def test_tx_sig_1_every_vector_transaction_digests_alike() -> None:
    """Every transaction in protocol_spec/vectors (every kind the vectors hold)."""
    seen: set[str] = set()
    count = 0
    for path in sorted(VECTORS_DIR.glob("*.json")):
        for wire in _wires(json.loads(path.read_text())):
            tx = SignedTransaction.decode(wire)
            seen.add(tx.body.TAG)
            count += 1
            for chain_id in ("vector-chain", "lc-local-71d61f", "x" * 300):
                assert tx.digest(chain_id) == _by_encoding(tx, chain_id), (path.name, tx)
    assert count >= 20 and len(seen) >= 8, (count, sorted(seen))


@settings(max_examples=300, deadline=None)
@given(chain_id=st.text(min_size=0, max_size=300),
       nonce=st.integers(0, 2**63 - 1),
       amount=st.integers(1, 2**63 - 1),
       to=st.binary(min_size=20, max_size=20),
       memo=st.binary(min_size=0, max_size=64))
def test_tx_sig_1_random_transfers_digest_alike(chain_id: str, nonce: int, amount: int,
                                                to: bytes, memo: bytes) -> None:
    tx = sign_transaction(KEY, chain_id, nonce, Transfer(Address(to), Amount(amount), memo))
    assert tx.digest(chain_id) == _by_encoding(tx, chain_id)
    again = SignedTransaction.decode(tx.wire)
    assert again == tx and again.sender == tx.sender and again.hash == tx.hash
    assert again.digest(chain_id) == _by_encoding(tx, chain_id)
    assert again.signature_valid(chain_id)


@pytest.mark.parametrize("head", [*_NON_FINITE, *_TIMESTAMP_HEADS])
def test_enc_canon_a_head_anywhere_leaves_the_fast_path(head: bytes) -> None:
    """Inside a bin value the bytes are harmless: the full check accepts it, the fast path
    declines it; the same bytes as a real timestamp are refused by type."""
    data = msgpack.packb([b"xx" + head + b"yy", 7], use_bin_type=True)
    assert head in data
    assert _decode_fast(data) is _SLOW
    assert decode(data) == [b"xx" + head + b"yy", 7]
    plain = msgpack.packb([b"plain", 7], use_bin_type=True)
    assert _decode_fast(plain) == [b"plain", 7]
    stamp = msgpack.packb(msgpack.Timestamp(1, 0))
    with pytest.raises(DecodeError):
        decode(stamp)
