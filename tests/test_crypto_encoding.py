"""Keys, addresses, signatures, key files and canonical encoding [KEY-*] [ENC-*]."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import struct
from pathlib import Path

import ecdsa
import msgpack
import pytest
from ecdsa.util import sigdecode_string
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.crypto import (
    SECP256K1_ORDER,
    PrivateKey,
    address_from_text,
    address_to_text,
    is_low_s,
    sha256,
    verify,
)
from chain.encoding import decode, encode
from chain.errors import DecodeError, InvalidAddress, KeyFileError
from chain.keyfile import read_key_file, write_key_file


def test_signature_verifies_under_independent_ecdsa() -> None:
    key = PrivateKey.from_seed(b"vector")
    digest = sha256(b"hello")
    sig = key.sign(digest)
    vk = ecdsa.VerifyingKey.from_string(key.public_key, curve=ecdsa.SECP256k1)
    assert vk.verify_digest(sig, digest, sigdecode=sigdecode_string)
    assert is_low_s(sig)


def test_invalid_high_s_twin_is_rejected() -> None:
    """[KEY-LOW-S.1] (r, n - s) is valid ECDSA but malleable: we refuse it."""
    key = PrivateKey.from_seed(b"malleable")
    digest = sha256(b"m")
    sig = key.sign(digest)
    r, s = sig[:32], int.from_bytes(sig[32:], "big")
    twin = r + (SECP256K1_ORDER - s).to_bytes(32, "big")
    vk = ecdsa.VerifyingKey.from_string(key.public_key, curve=ecdsa.SECP256k1)
    assert vk.verify_digest(twin, digest, sigdecode=sigdecode_string)  # valid ECDSA...
    assert not verify(key.public_key, digest, twin)  # ...refused here


@pytest.mark.parametrize("bad", [b"", b"\x00" * 64, b"\xff" * 64, b"\x01" * 63])
def test_invalid_signature_bytes(bad: bytes) -> None:
    key = PrivateKey.from_seed(b"x")
    assert not verify(key.public_key, sha256(b"m"), bad)


def test_invalid_public_key_bytes() -> None:
    assert not verify(b"\x02" + b"\xff" * 32, sha256(b"m"), b"\x01" * 64)


def test_address_text_checksum_catches_typos() -> None:
    text = address_to_text(PrivateKey.from_seed(b"addr").address)
    assert address_from_text(text) == PrivateKey.from_seed(b"addr").address
    for i in range(3, len(text)):
        typo = text[:i] + ("0" if text[i] != "0" else "1") + text[i + 1:]
        with pytest.raises(InvalidAddress):
            address_from_text(typo)
    with pytest.raises(InvalidAddress, match="start with"):
        address_from_text("0x" + text[3:])
    with pytest.raises(InvalidAddress, match="length"):
        address_from_text(text[:-1])


def test_key_file_round_trip_mode_0600(tmp_path: Path) -> None:
    """[KEY-FILE.1]"""
    key = PrivateKey.generate()
    path = tmp_path / "node.key"
    write_key_file(path, key, "correct horse", scrypt_n=2**12)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_key_file(path, "correct horse") == key
    with pytest.raises(KeyFileError, match="already exists"):
        write_key_file(path, key, "x", scrypt_n=2**12)


def test_key_file_wrong_passphrase_is_one_line(tmp_path: Path) -> None:
    """[KEY-FILE.1]"""
    path = tmp_path / "k"
    write_key_file(path, PrivateKey.generate(), "right", scrypt_n=2**12)
    with pytest.raises(KeyFileError) as e:
        read_key_file(path, "wrong")
    assert "\n" not in str(e.value) and "passphrase" in str(e.value)


@pytest.mark.parametrize("corrupt", [
    b"not json", b"{}", b'{"version": 1}', b"[1,2]",
    b'{"version":1,"address":"x","kdf":{"name":"scrypt","n":3,"r":8,"p":1,"salt":"00"},'
    b'"cipher":{"name":"aes-256-gcm","nonce":"00","ciphertext":"00"}}',
])
def test_key_file_corrupt_is_one_line(tmp_path: Path, corrupt: bytes) -> None:
    """[KEY-FILE.1]"""
    path = tmp_path / "k"
    path.write_bytes(corrupt)
    with pytest.raises(KeyFileError) as e:
        read_key_file(path, "pw")
    assert "\n" not in str(e.value)


def test_key_file_tampered_address_fails(tmp_path: Path) -> None:
    """[KEY-FILE.1]"""
    path = tmp_path / "k"
    write_key_file(path, PrivateKey.generate(), "pw", scrypt_n=2**12)
    doc = json.loads(path.read_text())
    doc["address"] = address_to_text(PrivateKey.generate().address)
    path.write_text(json.dumps(doc))
    with pytest.raises(KeyFileError):
        read_key_file(path, "pw")


def test_key_file_missing(tmp_path: Path) -> None:
    """[KEY-FILE.1]"""
    with pytest.raises(KeyFileError, match="no key file"):
        read_key_file(tmp_path / "absent", "pw")


# --- canonical encoding -----------------------------------------------------------

values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=5),
    max_leaves=20,
)


def _normal(v: object) -> object:
    if isinstance(v, tuple | list):
        return [_normal(x) for x in v]
    if isinstance(v, dict):
        return {k: _normal(x) for k, x in v.items()}
    return v


@settings(max_examples=300, deadline=None)
@given(values)
def test_encoding_round_trips(value: object) -> None:
    data = encode(value)
    assert decode(data) == _normal(value)
    assert encode(decode(data)) == data


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**31))
def test_non_minimal_integer_rejected(n: int) -> None:
    wide = b"\xcf" + struct.pack(">Q", n)  # uint64 form of a small number
    if wide != encode(n):
        with pytest.raises(DecodeError, match="non-canonical"):
            decode(wide)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=6), st.integers(0, 9), min_size=2,
                       max_size=6))
def test_unsorted_map_rejected(d: dict[str, int]) -> None:
    keys = sorted(d, key=lambda k: k.encode(), reverse=True)
    raw = msgpack.packb({k: d[k] for k in keys})
    with pytest.raises(DecodeError):
        decode(raw)


@settings(max_examples=100, deadline=None)
@given(st.floats(width=32, allow_nan=False, allow_infinity=False))
def test_float32_rejected(f: float) -> None:
    with pytest.raises(DecodeError):
        decode(msgpack.packb(f, use_single_float=True))


@pytest.mark.parametrize(("raw", "code"), [
    (b"\xc1", "malformed"),
    (b"\x92\x01", "malformed"),
    (b"\x01\x01", "trailing_bytes"),
    (msgpack.packb(msgpack.ExtType(5, b"x")), "ext_type"),
    (b"\xcb" + struct.pack(">d", float("nan")), "non_canonical"),
    (b"\xd9\x01a", "non_canonical"),  # str8 for a 1-char string
    (b"\x81\x01\x02", "malformed"),  # int map key
    (b"\x82\xa1a\x01\xa1a\x02", "non_canonical"),  # duplicate key
])
def test_invalid_encodings(raw: bytes, code: str) -> None:
    with pytest.raises(DecodeError) as e:
        decode(raw)
    assert e.value.code == code


def test_oversized_rejected_before_parsing() -> None:
    with pytest.raises(DecodeError) as e:
        decode(encode(b"x" * 100), max_size=50)
    assert e.value.code == "oversized"


def test_random_garbage_never_crashes() -> None:
    for _ in range(2_000):
        blob = os.urandom(int.from_bytes(os.urandom(1), "big") % 40)
        with contextlib.suppress(DecodeError):
            decode(blob)


def test_invalid_field_error_names_the_field_what_was_expected_and_what_came() -> None:
    """[ENC-LIMIT.1] one field-check mechanism: the error carries field, expected, got."""
    import pytest

    from chain import fields
    from chain.errors import DecodeError, FieldError

    with pytest.raises(FieldError) as caught:
        fields.uint(-5, "amount", 1, 10)
    err = caught.value
    assert (err.field, err.expected, err.got, err.code) == ("amount", "int in [1, 10]", "-5",
                                                            "bad_field")
    assert isinstance(err, DecodeError)
    with pytest.raises(FieldError) as caught:
        fields.blob(b"\x00" * 100, "sig", 64)
    assert caught.value.got.startswith("100 bytes 0x0000")  # hostile bytes shown short
    assert len(str(caught.value)) < 200


def test_invalid_wire_frame_says_which_field_and_why() -> None:
    """[WIRE-FRAME.2] p2p frames are checked by the same field readers as the ledger."""
    import pytest

    from chain.encoding import encode
    from p2p.errors import P2PError
    from p2p.wire import MalformedFrame, decode_frame

    with pytest.raises(MalformedFrame) as caught:
        decode_frame(encode(["getblocks", 1, 2, 10**6]))
    assert caught.value.code == "bad_field" and isinstance(caught.value, P2PError)
    assert "getblocks[2]" in str(caught.value) and "1000000" in str(caught.value)


# [ENC-CANON.2] ext type -1 (msgpack's timestamp) in every width, alone and nested.
_TIMESTAMP_FORMS = [
    ("fixext4", "d6ff00000000"),
    ("fixext8", "d7ff0000000000000000"),
    ("ext8_12", "c70cff" + "00" * 12),
    ("ext16_12", "c8000cff" + "00" * 12),
    ("ext32_12", "c90000000cff" + "00" * 12),
    ("fuzz_found_fixext4", "d6ffff2e926a"),
    ("fixext8_nonzero", "d7ff" + "00000004" + "5f5e0ff0"),
    ("ext8_12_nonzero", "c70cff" + "0000000a" + "00000000ffffffff"),
    ("in_array", "92" + "01" + "d6ff00000001"),
    ("in_map_value", "81a161" + "d7ff0000000000000001"),
]
_OTHER_EXT_FORMS = [
    ("fixext1_type5", "d40500"),
    ("fixext16_type0", "d800" + "00" * 16),
    ("ext8_type_neg2", "c702fe0000"),
    ("fixext1_type_neg1", "d4ff00"),
    ("ext8_len0_type_neg1", "c700ff"),
]


@pytest.mark.parametrize(("name", "hexed"), _TIMESTAMP_FORMS, ids=[n for n, _ in _TIMESTAMP_FORMS])
def test_invalid_timestamp_ext_every_width(name: str, hexed: str) -> None:
    """[ENC-CANON.2] msgpack decodes ext -1 into a Timestamp without calling ext_hook and
    re-encodes it to the same bytes; the decoder refuses it by type, on both paths."""
    with pytest.raises(DecodeError) as e:
        decode(bytes.fromhex(hexed))
    assert e.value.code == "ext_type", (name, e.value)


@pytest.mark.parametrize(("name", "hexed"), _OTHER_EXT_FORMS, ids=[n for n, _ in _OTHER_EXT_FORMS])
def test_invalid_other_ext_forms(name: str, hexed: str) -> None:
    """[ENC-CANON.2] every other ext form is refused too (ext_hook, or msgpack's own
    timestamp length check)."""
    with pytest.raises(DecodeError) as e:
        decode(bytes.fromhex(hexed))
    assert e.value.code in {"ext_type", "malformed"}, (name, e.value)


def test_decoded_values_never_hold_library_types() -> None:
    """[ENC-CANON.2] what decode returns is only the canonical value types: the
    library's Timestamp cannot come back out of encode either."""
    with pytest.raises(DecodeError) as e:
        encode([msgpack.Timestamp(1, 0)])
    assert e.value.code == "ext_type"


ENCODING_VECTORS = (Path(__file__).resolve().parents[1] / "protocol_spec" / "vectors"
                    / "encodings.json")


def build_encoding_vectors() -> dict[str, object]:
    """[ENC-CANON.1] [ENC-CANON.2] refused encodings, each with the code this decoder gives."""
    refused: list[dict[str, str]] = []
    cases = [(n, h) for n, h in _TIMESTAMP_FORMS + _OTHER_EXT_FORMS] + [
        ("reserved_c1", "c1"),
        ("truncated_array", "9201"),
        ("trailing_bytes", "0101"),
        ("nan_float64", "cb7ff8000000000000"),
        ("float32", "ca3fc00000"),
        ("str8_for_short_string", "d90161"),
        ("uint64_for_small_int", "cf0000000000000001"),
        ("int_map_key", "810102"),
        ("duplicate_map_key", "82a16101a16102"),
        ("unsorted_map_keys", "82a16201a16102"),
    ]
    for name, hexed in cases:
        try:
            decode(bytes.fromhex(hexed))
        except DecodeError as e:
            refused.append({"name": name, "hex": hexed, "error": e.code})
        else:
            raise AssertionError(f"vector {name} decoded")
    return {"about": "Encodings every decoder must refuse [ENC-CANON.1] [ENC-CANON.2]; "
                     "error is this implementation's DecodeError code.",
            "refused": refused}


def test_encoding_vectors_match_committed_file() -> None:
    """[ENC-CANON.2] regenerate with LC_WRITE_VECTORS=1."""
    text = json.dumps(build_encoding_vectors(), indent=1, sort_keys=True) + "\n"
    if os.environ.get("LC_WRITE_VECTORS") == "1":
        ENCODING_VECTORS.write_text(text)
    assert ENCODING_VECTORS.read_text() == text, "decoder drifted from vectors/encodings.json"
