"""Fixed-point numbers and blobs, tried at their edges [FED-QUANT.*] [FED-MODEL.1-2]
[FED-COMMIT.1].

numpy appears only here, as the float reference the exact rules must agree with.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.errors import ChainError, DecodeError
from chain.federated.blobs import (
    MODEL_HEADER,
    UPDATE_HEADER,
    ModelBlob,
    UpdateBlob,
    update_commitment,
)
from chain.federated.errors import BlobError, FederatedError
from chain.federated.fixed import (
    MAX_DIMS,
    MAX_ROUND_PARTICIPANTS,
    Q_MAX,
    WIDTHS,
    check_vector,
    clamp,
    dequantise,
    quantise,
    rdiv,
)
from chain.federated.fltrust import NORM_BITS, TRUST_BITS
from chain.federated.rewards import MAX_WEIGHT
from chain.types import MAX_AMOUNT

JOB = bytes(range(32))
WHO = bytes(range(100, 120))
ints = st.integers(-(1 << 70), 1 << 70)
coords = st.integers(-Q_MAX, Q_MAX)


@settings(max_examples=300, deadline=None)
@given(ints, st.integers(1, 1 << 40))
def test_rdiv_is_nearest_with_ties_to_even(n: int, d: int) -> None:
    """[FED-QUANT.2] rdiv(n, d) equals exact rational rounding, half to even (Python's
    ``round(Fraction)``), and is odd-symmetric, for numbers far past 64 bits."""
    assert rdiv(n, d) == round(Fraction(n, d))
    assert rdiv(-n, d) == -rdiv(n, d)
    assert abs(Fraction(n, d) - rdiv(n, d)) <= Fraction(1, 2)


def test_rdiv_ties_and_bad_divisor() -> None:
    """[FED-QUANT.2] The tie cases by hand, and a divisor <= 0 refused with the value."""
    assert [rdiv(n, 2) for n in (-5, -3, -1, 1, 3, 5)] == [-2, -2, 0, 0, 2, 2]
    assert [rdiv(n, 4) for n in (2, 6, -2, -6, 7)] == [0, 2, 0, -2, 2]
    with pytest.raises(FederatedError) as e:
        rdiv(1, 0)
    assert e.value.code == "bad_divisor" and e.value.data["d"] == 0
    assert isinstance(e.value, ChainError)


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False), st.integers(8, 24))
def test_quantise_matches_numpy_rint(x: float, bits: int) -> None:
    """[FED-QUANT.2] The exact rule equals ``clip(rint(x · 2**s))`` in float64 for every
    finite float (the fast path a participant uses), and the error before clamping is at
    most half a step."""
    q = quantise(x, bits)
    with np.errstate(over="ignore"):  # x · 2**s beyond float64 is inf, then clipped
        ref = np.clip(np.rint(np.float64(x) * np.float64(2.0 ** bits)), -Q_MAX, Q_MAX)
    assert q == int(ref)
    if abs(q) < Q_MAX:
        assert abs(dequantise(q, bits) - Fraction(x)) <= Fraction(1, 1 << (bits + 1))


def test_quantise_refuses_what_is_not_a_number() -> None:
    """[FED-QUANT.1] [FED-QUANT.2] NaN, infinities, bools and a scale out of 8..24 are
    refused, each error naming the value."""
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(FederatedError) as e:
            quantise(bad, 16)
        assert e.value.code == "not_finite"
    with pytest.raises(FederatedError):
        quantise(True, 16)
    for bits in (7, 25, -1):
        with pytest.raises(FederatedError) as e:
            quantise(1.0, bits)
        assert e.value.data["scale_bits"] == bits


def test_range_is_symmetric_and_clamped() -> None:
    """[FED-QUANT.3] -2**31 is no coordinate: clamping and checking keep [-Q, Q], so a sign
    flip of any valid vector is valid."""
    assert clamp(-(1 << 31)) == -Q_MAX and clamp(1 << 40) == Q_MAX and clamp(5) == 5
    assert quantise(-1e30, 16) == -Q_MAX and quantise(1e30, 16) == Q_MAX
    assert check_vector([Q_MAX, -Q_MAX], "v") == (Q_MAX, -Q_MAX)
    for bad in ([-(1 << 31)], [Q_MAX + 1], [True], [1.0], []):
        with pytest.raises(FederatedError):
            check_vector(bad, "v")
    with pytest.raises(FederatedError) as e:
        check_vector([1, 2], "v", dims=3)
    assert e.value.code == "bad_dims" and e.value.data["dims"] == 2


def test_stated_widths_hold_at_the_bounds() -> None:
    """[FED-QUANT.4] [FED-AGG.9] Each intermediate at its worst case (MAX_DIMS coordinates
    of ±Q, MAX_ROUND_PARTICIPANTS updates; Multi-Krum's distances and scores included) fits
    the width the spec tells a C implementation."""
    d, n, q = MAX_DIMS, MAX_ROUND_PARTICIPANTS, Q_MAX
    sq = d * q * q
    worst = {
        "coordinate": q, "coordinate_sum": n * q, "square_norm": sq, "dot": sq,
        "norm_product": sq * sq,
        "trust_quotient": sq * sq << (2 * TRUST_BITS),
        "norm_factor_quotient": sq << (2 * NORM_BITS),
        "norm_factor": math.isqrt(sq << (2 * NORM_BITS)),
        "scaled_coordinate": q * math.isqrt(sq << (2 * NORM_BITS)),
        "weighted_sum": n * (1 << TRUST_BITS) * q, "reward_product": MAX_AMOUNT * MAX_WEIGHT,
        "krum_distance": d * (2 * q) ** 2,  # updates of +Q and -Q everywhere
        "krum_score": (n - 2) * d * (2 * q) ** 2,  # f = 0: n - 2 nearest others
    }
    signed = {"coordinate", "coordinate_sum", "dot", "scaled_coordinate", "weighted_sum"}
    assert set(worst) == set(WIDTHS)
    for name, value in worst.items():
        bits = value.bit_length() + (1 if name in signed else 0)
        assert bits <= WIDTHS[name], (name, bits, WIDTHS[name])
        assert bits >= WIDTHS[name] - 1, f"{name}: the stated width is loose"


@settings(max_examples=60, deadline=None)
@given(st.lists(coords, min_size=1, max_size=40), st.integers(1, 1000), st.integers(8, 24))
def test_update_blob_round_trips(values: list[int], rnd: int, bits: int) -> None:
    """[FED-QUANT.5] An update blob decodes to what was encoded, 68 + 4·dims bytes."""
    blob = UpdateBlob(JOB, rnd, WHO, bits, tuple(values))
    raw = blob.to_bytes()
    assert len(raw) == UPDATE_HEADER.size + 4 * len(values) == 68 + 4 * len(values)
    assert UpdateBlob.from_bytes(raw) == blob
    assert blob.check_for(JOB, rnd, WHO, len(values), bits) is blob


def _update_raw() -> bytes:
    return UpdateBlob(JOB, 3, WHO, 16, (1, -1, 7)).to_bytes()


@pytest.mark.parametrize(("offset", "byte", "code"), [
    (0, ord("X"), "bad_magic"), (4, 2, "bad_version"), (5, 7, "bad_scale"),
    (5, 25, "bad_scale"), (6, 1, "bad_reserved"), (40, 0, "bad_round"),
    (64, 4, "bad_length"), (64, 0, "bad_dims"),
])
def test_update_blob_header_is_strict(offset: int, byte: int, code: str) -> None:
    """[FED-QUANT.5] One wrong header byte is refused with its code and offset."""
    raw = bytearray(_update_raw())
    raw[offset] = byte
    if code == "bad_round":
        raw[40:44] = (0).to_bytes(4, "little")
    with pytest.raises(BlobError) as e:
        UpdateBlob.from_bytes(bytes(raw))
    assert e.value.code == code and isinstance(e.value, DecodeError)


def test_update_blob_length_and_coordinates_are_strict() -> None:
    """[FED-QUANT.5] [FED-QUANT.3] A missing or extra byte, a short header, and the one
    int32 value outside the range (-2**31) are refused; the error holds its offset."""
    raw = _update_raw()
    for bad in (raw[:-1], raw + b"\x00", raw[:10], b""):
        with pytest.raises(BlobError) as e:
            UpdateBlob.from_bytes(bad)
        assert e.value.code in ("bad_length", "truncated")
    poisoned = raw[:72] + (-(1 << 31)).to_bytes(4, "little", signed=True) + raw[76:]
    with pytest.raises(BlobError) as e:
        UpdateBlob.from_bytes(poisoned)
    assert e.value.code == "bad_coordinate" and e.value.offset == 72
    with pytest.raises(BlobError):
        UpdateBlob(JOB, 1, WHO, 16, (Q_MAX + 1,)).to_bytes()


def test_update_blob_names_its_slot() -> None:
    """[FED-QUANT.5] A blob revealed for another job, round, address, size or scale is
    refused by ``check_for`` with what it holds."""
    blob = UpdateBlob.from_bytes(_update_raw())
    other = bytes(32)
    for args, code in (((other, 3, WHO, 3, 16), "wrong_job"), ((JOB, 4, WHO, 3, 16),
                       "wrong_round"), ((JOB, 3, bytes(20), 3, 16), "wrong_participant"),
                       ((JOB, 3, WHO, 4, 16), "wrong_dims"), ((JOB, 3, WHO, 3, 20),
                                                              "wrong_scale")):
        with pytest.raises(BlobError) as e:
            blob.check_for(*args)
        assert e.value.code == code


def test_model_blob_is_strict_and_its_hash_is_sha256() -> None:
    """[FED-MODEL.1] [FED-MODEL.2] 12 + 4·dims bytes, strict like an update; the hash is
    SHA-256 of the bytes, so one changed coordinate changes it."""
    import hashlib

    model = ModelBlob(20, (0, Q_MAX, -Q_MAX))
    raw = model.to_bytes()
    assert len(raw) == MODEL_HEADER.size + 12 == 24
    assert ModelBlob.from_bytes(raw) == model
    assert model.hash() == hashlib.sha256(raw).digest()
    assert ModelBlob(20, (1, Q_MAX, -Q_MAX)).hash() != model.hash()
    for bad, code in ((b"LCFU" + raw[4:], "bad_magic"), (raw + b"\x00", "bad_length"),
                      (raw[:11], "truncated")):
        with pytest.raises(BlobError) as e:
            ModelBlob.from_bytes(bad)
        assert e.value.code == code
    with pytest.raises(BlobError) as e:
        UpdateBlob.from_bytes(raw)
    assert e.value.code in ("truncated", "bad_magic")


def test_update_commitment_binds_every_input() -> None:
    """[FED-COMMIT.1] Changing the job, round, participant, blob hash or salt changes the
    commitment; a salt of the wrong length is refused."""
    salt = bytes(32)
    base = update_commitment(JOB, 1, WHO, bytes(32), salt)
    others = [update_commitment(bytes(32), 1, WHO, bytes(32), salt),
              update_commitment(JOB, 2, WHO, bytes(32), salt),
              update_commitment(JOB, 1, bytes(20), bytes(32), salt),
              update_commitment(JOB, 1, WHO, b"\x01" * 32, salt),
              update_commitment(JOB, 1, WHO, bytes(32), b"\x01" * 32)]
    assert len({base, *others}) == 6
    with pytest.raises(BlobError):
        update_commitment(JOB, 1, WHO, bytes(32), b"short")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120), st.sampled_from([b"", b"LCFU\x01\x10\x00\x00",
                                                 b"LCFM\x01\x10\x00\x00"]))
def test_any_bytes_decode_canonically_or_fail_cleanly(tail: bytes, head: bytes) -> None:
    """[FED-QUANT.5] [FED-MODEL.1] Arbitrary bytes (often behind a valid prefix) either
    decode to a blob that re-encodes to exactly those bytes, or fail with BlobError: one
    byte string per value, nothing else raised."""
    raw = head + tail
    for kind in (UpdateBlob, ModelBlob):
        try:
            blob = kind.from_bytes(raw)
        except BlobError:
            continue
        assert blob.to_bytes() == raw
