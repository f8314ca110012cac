"""The federated transactions' bodies under hostile wire forms: every malformed body is a
``DecodeError`` with its code (never another exception), and every body that decodes
re-encodes to its own bytes (one encoding per body [ENC-CANON.1])."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from chain.encoding import decode, encode
from chain.errors import DecodeError
from chain.federated.open.bodies import FED_BODIES
from chain.federated.open.reads import aggregate_body, part_body, update_bodies, vote_bodies

JOB, ADDR = b"\x05" * 32, b"\x06" * 20
SAMPLES = {
    "fed_commit": update_bodies(JOB, 1, ADDR, b"blob", b"\x01" * 32).commit,
    "fed_reveal": update_bodies(JOB, 1, ADDR, b"blob", b"\x01" * 32).reveal,
    "fed_aggregate": aggregate_body(JOB, 2, 1, b"model", {ADDR: 65536, b"\x07" * 20: 0}),
    "fed_vote_commit": vote_bodies(JOB, 2, 1, ADDR, True, accuracy_ppm=1).commit,
    "fed_vote_reveal": vote_bodies(JOB, 0, 0, ADDR, True, losses=[1, 2, 3]).reveal,
    "fed_part": part_body(JOB, "hidden", b"\x08" * 32, 9),
}
TYPES = {t.TAG: t for t in FED_BODIES}
VALUES = st.one_of(st.none(), st.booleans(), st.integers(-(2**64), 2**64),
                   st.floats(allow_nan=False), st.binary(max_size=40), st.text(max_size=8),
                   st.lists(st.integers(0, 2**41), max_size=3),
                   st.lists(st.lists(st.one_of(st.binary(max_size=21), st.integers(-1, 2**17)),
                                     max_size=3), max_size=3))


def _decoded(tag: str, wire: Any) -> Any:
    try:
        return TYPES[tag].from_wire(decode(encode(wire)))
    except DecodeError as e:
        assert e.code, e
        return None


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(SAMPLES)), st.data())
def test_mutated_bodies_decode_or_fail_with_a_code(tag: str, data: st.DataObject) -> None:
    """[TX-FED.2] [TX-FED.3] [TX-FED.4] [TX-FED.5] [TX-FED.6] [TX-FED.7] Replace, drop or
    add one element of a valid body: a ``DecodeError`` with a code, or a body whose wire is
    exactly the mutated one."""
    wire = SAMPLES[tag].to_wire()
    how = data.draw(st.sampled_from(("replace", "drop", "add")))
    i = data.draw(st.integers(0, len(wire) - 1))
    if how == "replace":
        wire[i] = data.draw(VALUES)
    elif how == "drop":
        del wire[i]
    else:
        wire.insert(i, data.draw(VALUES))
    body = _decoded(tag, wire)
    if body is not None:
        assert encode(body.to_wire()) == encode(wire)


def test_samples_round_trip() -> None:
    """[TX-FED.4] [TX-FED.6] The valid bodies (weights at 2**16, an end vote's losses) decode
    to themselves."""
    for tag, body in SAMPLES.items():
        assert _decoded(tag, body.to_wire()) == body
