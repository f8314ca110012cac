"""The ``federated/v1`` kind's own fields, decoded strictly [FED-SPEC.*].

Every valid spec re-encodes to its own bytes; every field out of bounds, every
broken cross-field constraint and every wrong shape is refused with
``bad_field`` naming the field.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.encoding import decode, encode
from chain.errors import DecodeError
from chain.federated.errors import FederatedError
from chain.federated.rounds import FLTRUST, MEDIAN, TRIMMED_MEAN, Aggregation
from chain.federated.spec import OPEN, PRIVATE, FederatedSpec
from chain.jobspec import Holdout
from chain.types import Amount, Hash32

HOLDOUT = Holdout(Hash32(b"\x07" * 32), 100, 300, 1, Amount(50), 60_000, 0.0)


def spec(**changes: Any) -> FederatedSpec:
    base = dict(initial_model=Hash32(b"\x01" * 32), dims=650, scale_bits=16, rounds=10,
                min_participants=4, max_participants=6,
                aggregation=Aggregation(TRIMMED_MEAN, 1), target_accuracy_ppm=950_000,
                holdout=HOLDOUT, privacy=OPEN, dp_clip=0, dp_noise_permille=0,
                commit_window_ms=60_000, reveal_window_ms=60_000, aggregate_window_ms=30_000,
                loo_permille=600)
    base.update(changes)
    return FederatedSpec(**base)  # type: ignore[arg-type]


def refused(wire: Any) -> DecodeError:
    with pytest.raises(DecodeError) as e:
        FederatedSpec.from_wire(decode(encode(wire)))
    assert e.value.code == "bad_field"
    return e.value


def test_a_spec_round_trips_through_its_bytes() -> None:
    """[FED-SPEC.1] 13 elements; decoding the canonical bytes gives the same spec and the
    same bytes; nil target accuracy and a private spec too."""
    for s in (spec(), spec(target_accuracy_ppm=None),
              spec(privacy=PRIVATE, dp_clip=1 << 20, dp_noise_permille=800,
                   aggregation=Aggregation(TRIMMED_MEAN, 0), loo_permille=0),
              spec(aggregation=Aggregation(FLTRUST), min_participants=1),
              spec(aggregation=Aggregation(MEDIAN))):
        wire = s.to_wire()
        assert len(wire) == 13
        raw = encode(wire)
        again = FederatedSpec.from_wire(decode(raw))
        assert again == s and encode(again.to_wire()) == raw
    assert spec().round_window_ms == 150_000


@pytest.mark.parametrize(("index", "value", "field"), [
    (0, b"\x01" * 31, "initial_model"), (1, 0, "dims"), (1, (1 << 24) + 1, "dims"),
    (2, 7, "scale_bits"), (2, 25, "scale_bits"), (3, 0, "rounds"), (3, 1001, "rounds"),
    (4, 0, "min_participants"), (4, 257, "min_participants"), (5, 3, "max_participants"),
    (5, 257, "max_participants"), (6, ["mean", 0], "aggregation.rule"),
    (6, ["median", 1], "aggregation.trim"), (6, ["trimmed_mean", 128], "aggregation.trim"),
    (6, ["trimmed_mean"], "aggregation"), (7, 0, "target_accuracy_ppm"),
    (7, 1_000_001, "target_accuracy_ppm"), (7, 0.95, "target_accuracy_ppm"),
    (9, "secret", "privacy"), (10, [0], "dp"), (10, [1, 0], "dp"), (11, [1, 1], "windows"),
    (11, [0, 1, 1], "commit_window_ms"), (11, [1, 86_400_001, 1], "reveal_window_ms"),
    (12, 1001, "loo_permille"), (1, True, "dims"), (3, -1, "rounds"),
])
def test_each_field_out_of_bounds_is_refused(index: int, value: Any, field: str) -> None:
    """[FED-SPEC.1] [FED-SPEC.2] [FED-SPEC.3] One field out of type or bounds: bad_field,
    and the message names the field."""
    wire = spec().to_wire()
    wire[index] = value
    assert field in str(refused(wire))


def test_the_array_shape_is_strict() -> None:
    """[FED-SPEC.1] 12 or 14 elements, or not an array at all, are refused."""
    wire = spec().to_wire()
    for bad in (wire[:12], [*wire, 0], {"dims": 5}, None):
        refused(bad)


def test_trimmed_mean_needs_two_k_plus_two_participants() -> None:
    """[FED-SPEC.2] With trim k the minimum is 2k + 2, so leaving any one participant out
    still leaves 2k + 1; the plain mean (k = 0) needs one; other rules take no trim."""
    spec(aggregation=Aggregation(TRIMMED_MEAN, 2), min_participants=6)
    with pytest.raises(DecodeError) as e:
        spec(aggregation=Aggregation(TRIMMED_MEAN, 2), min_participants=5)
    assert "min_participants" in str(e.value)
    spec(aggregation=Aggregation(TRIMMED_MEAN, 0), min_participants=1, max_participants=1)
    with pytest.raises(FederatedError):
        Aggregation(MEDIAN, 1)
    with pytest.raises(FederatedError):
        Aggregation("mean")


def test_privacy_modes_constrain_the_rest() -> None:
    """[FED-SPEC.3] Open mode adds no noise; private mode needs a clip, runs the plain mean
    only and pays no leave-one-out share."""
    with pytest.raises(DecodeError, match="dp"):
        spec(dp_clip=5)
    private = dict(privacy=PRIVATE, dp_clip=1000, dp_noise_permille=500,
                   aggregation=Aggregation(TRIMMED_MEAN, 0), loo_permille=0)
    spec(**private)
    for bad in ({"dp_clip": 0}, {"aggregation": Aggregation(FLTRUST)},
                {"aggregation": Aggregation(TRIMMED_MEAN, 1)}, {"loo_permille": 1},
                {"dp_noise_permille": 10_001}):
        with pytest.raises(DecodeError):
            spec(**{**private, **bad})


def test_the_holdout_has_no_finalists_or_tie_tolerance() -> None:
    """[FED-SPEC.1] The evaluation commitment is train/v3's Holdout, with finalists 1 and
    tie_tolerance 0.0 (not -0.0): a federated job ranks no claims."""
    for bad in (dataclasses.replace(HOLDOUT, finalists=2),
                dataclasses.replace(HOLDOUT, tie_tolerance=0.01),
                dataclasses.replace(HOLDOUT, tie_tolerance=-0.0)):
        with pytest.raises(DecodeError, match="holdout"):
            spec(holdout=bad)
    wire = spec().to_wire()
    wire[8] = [*HOLDOUT.to_wire()[:2], 0, *HOLDOUT.to_wire()[3:]]
    refused(wire)


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 1 << 24), st.integers(8, 24), st.integers(1, 1000), st.integers(0, 20),
       st.integers(0, 40), st.one_of(st.none(), st.integers(1, 10**6)),
       st.integers(0, 1000), st.sampled_from([TRIMMED_MEAN, MEDIAN, FLTRUST]))
def test_every_valid_spec_re_encodes_to_its_bytes(dims: int, bits: int, rounds: int,
                                                  trim: int, extra: int, target: int | None,
                                                  loo: int, rule: str) -> None:
    """[FED-SPEC.1] [FED-SPEC.2] Any spec within the bounds decodes from its canonical
    bytes to itself."""
    k = trim if rule == TRIMMED_MEAN else 0
    lo = max(1, 2 * k + 2) if k else 1
    s = spec(dims=dims, scale_bits=bits, rounds=rounds, aggregation=Aggregation(rule, k),
             min_participants=lo, max_participants=min(256, lo + extra),
             target_accuracy_ppm=target, loo_permille=loo)
    raw = encode(s.to_wire())
    assert FederatedSpec.from_wire(decode(raw)) == s
