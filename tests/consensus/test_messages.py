"""[CONS-MSG.*] encodings, [CONS-SIGN.1] digests, [CONS-VALSET.1] and [CONS-PROPOSER.1]."""

from __future__ import annotations

import contextlib
from collections import Counter

import pytest

from chain.consensus.codec import decode_message, encode_message
from chain.consensus.errors import InvalidMessage
from chain.consensus.messages import PRECOMMIT, PREVOTE, proposal_digest, vote_digest
from chain.consensus.validators import Validator, ValidatorSet
from chain.crypto import sha256, verify
from chain.encoding import encode
from chain.errors import DecodeError
from chain.types import Height, Round
from tests.consensus.helpers import CHAIN, KEYS, block, make_core, proposal_for, vote, vset


def test_cons_msg_1_roundtrip_of_every_message() -> None:
    core = make_core(KEYS[0])
    p = proposal_for(core, 0)
    v = vote(KEYS[1], PREVOTE, 1, 0, None)
    w = vote(KEYS[2], PRECOMMIT, 9, 3, p.block_hash)
    for m in (p, v, w):
        assert decode_message(encode_message(m)) == m


def test_cons_sign_1_digest_is_domain_separated() -> None:
    h = sha256(b"x")
    assert vote_digest(CHAIN, PREVOTE, 1, 0, h) == sha256(
        encode(["learningchain/v1", CHAIN, "prevote", 1, 0, h])
    )
    assert vote_digest(CHAIN, PREVOTE, 1, 0, h) != vote_digest(CHAIN, PRECOMMIT, 1, 0, h)
    assert vote_digest(CHAIN, PREVOTE, 1, 0, h) != vote_digest("other", PREVOTE, 1, 0, h)
    assert proposal_digest(CHAIN, 1, 0, -1, h, 5) == sha256(
        encode(["learningchain/v1", CHAIN, "proposal", 1, 0, -1, h, 5])
    )
    v = vote(KEYS[0], PREVOTE, 1, 0, h)
    assert verify(KEYS[0].public_key, vote_digest(CHAIN, PREVOTE, 1, 0, h), v.signature)


@pytest.mark.parametrize(
    "wire",
    [
        ["prevote", 0, 0, None, b"a" * 20, b"s" * 64],  # height 0
        ["prevote", 1, -1, None, b"a" * 20, b"s" * 64],  # negative round
        ["prevote", 1, 0, b"short", b"a" * 20, b"s" * 64],  # bad hash
        ["prevote", 1, 0, None, b"a" * 19, b"s" * 64],  # bad address
        ["prevote", 1, 0, None, b"a" * 20, b"s" * 63],  # bad signature length
        ["prevote", 1, 0, None, b"a" * 20],  # missing field
        ["vote", 1, 0, None, b"a" * 20, b"s" * 64],  # unknown tag
        ["prevote", True, 0, None, b"a" * 20, b"s" * 64],  # bool is not an int
        ["proposal", 1, 2, 2, b"h" * 32, 5, b"", b"a" * 20, b"s" * 64],  # pol_round >= round
        ["proposal", 1, 2, -2, b"h" * 32, 5, b"", b"a" * 20, b"s" * 64],  # pol_round < -1
        ["decision", 1, b"h" * 32, 5, b"", [1, 0, b"h" * 32, []]],  # not a message any more
        [],
    ],
)
def test_cons_msg_1_invalid_fields_are_rejected(wire: list[object]) -> None:
    with pytest.raises(InvalidMessage):
        decode_message(encode(wire))


def test_cons_msg_1_non_canonical_bytes_are_rejected() -> None:
    data = encode_message(vote(KEYS[1], PREVOTE, 1, 0, None))
    with pytest.raises(DecodeError):
        decode_message(data + b"\x00")
    with pytest.raises(DecodeError):
        decode_message(b"\x96\xa7prevote\xcd\x00\x01" + data[10:])  # non-minimal int


def test_cons_valset_1_rejects_bad_sets() -> None:
    v = vset()
    with pytest.raises(ValueError):
        ValidatorSet(())
    with pytest.raises(ValueError):
        ValidatorSet(tuple(reversed(v.validators)))
    with pytest.raises(ValueError):
        ValidatorSet((v.validators[0], v.validators[0]))
    first = v.validators[0]
    with pytest.raises(ValueError):
        ValidatorSet((Validator(first.address, first.public_key, 0),))
    with pytest.raises(ValueError):
        ValidatorSet((Validator(v.validators[1].address, first.public_key, 1),))


def test_cons_quorum_1_and_2() -> None:
    v = vset()
    assert not v.is_quorum(2) and v.is_quorum(3)
    assert not v.exceeds_faulty(1) and v.exceeds_faulty(2)
    assert v.power_of([KEYS[0].address, KEYS[0].address, b"x" * 20]) == 1


def test_cons_proposer_1_deterministic_and_weighted() -> None:
    v = vset((1, 2, 3, 4))
    again = vset((1, 2, 3, 4))
    assert [v.proposer(Height(h), Round(0)) for h in range(1, 50)] == [
        again.proposer(Height(h), Round(0)) for h in range(1, 50)
    ]
    firsts = Counter(v.proposer(Height(h), Round(0)).power for h in range(1, 4001))
    for power in (1, 2, 3, 4):  # round 0 of 4000 heights: share within 3 points of power/10
        assert abs(firsts[power] / 4000 - power / 10) < 0.03


def test_cons_proposer_1_every_validator_proposes_once_in_n_rounds() -> None:
    v = vset((1, 2, 3, 100))
    for h in range(1, 200):
        for start in (0, 3, 17):
            rounds = [v.proposer(Height(h), Round(start + i)).address for i in range(4)]
            assert len(set(rounds)) == 4


def test_set_hash_commits_to_members_and_power() -> None:
    assert vset().set_hash == vset().set_hash
    assert vset().set_hash != vset((1, 1, 1, 2)).set_hash


def test_block_helper_is_deterministic() -> None:
    assert block(1, 0, 5) == block(1, 0, 5) and block(1, 0, 5) != block(1, 0, 6)


def test_cons_msg_1_random_input_never_crashes_the_decoder() -> None:
    """Peer bytes either decode or raise a ChainError; never anything else."""
    import random

    from chain.errors import ChainError

    rng = random.Random(11)
    core = make_core(KEYS[0])
    samples = [
        encode_message(proposal_for(core, 0)),
        encode_message(vote(KEYS[1], PREVOTE, 1, 0, None)),
    ]
    for _ in range(3000):
        data = bytearray(rng.choice(samples))
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        with contextlib.suppress(ChainError):
            decode_message(bytes(data))


def test_cons_msg_2_block_at_most_2_mib_plus_framing_message_256_kib_more() -> None:
    """[CONS-MSG.2] A proposal whose block is exactly 2 MiB + 64 KiB round-trips (and its
    message is within 256 KiB more); one byte more of block is refused, and any payload
    longer than the message bound is refused before it is parsed."""
    from chain.consensus.messages import MAX_BLOCK_BYTES, MAX_MESSAGE_BYTES, sign_proposal
    from chain.types import Hash32, TimeMs

    assert (MAX_BLOCK_BYTES, MAX_MESSAGE_BYTES) == (2 * 1024**2 + 64 * 1024,
                                                    2 * 1024**2 + 320 * 1024)
    big = b"\x07" * MAX_BLOCK_BYTES
    p = sign_proposal(KEYS[0], CHAIN, Height(1), Round(0), Round(-1), Hash32(sha256(big)),
                      TimeMs(5), big)
    data = encode_message(p)
    assert len(data) <= MAX_MESSAGE_BYTES
    assert decode_message(data) == p
    wire = p.to_wire()
    wire[6] = big + b"\x07"
    with pytest.raises(InvalidMessage, match="block"):
        decode_message(encode(wire))
    vote_wire = vote(KEYS[1], PREVOTE, 1, 0, None).to_wire()
    padded = encode([*vote_wire[:-1], vote_wire[-1] + b"\x00" * MAX_MESSAGE_BYTES])
    with pytest.raises(DecodeError, match="exceeds limit"):
        decode_message(padded)
