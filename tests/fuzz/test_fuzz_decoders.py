"""Fuzzing every decoder that reads bytes from the network or disk [issue 8].

Random bytes, and valid encodings mutated (bit flips, truncation, splicing),
must give the decoder's own error type and nothing else: no other exception,
no hang, no crash. Seeds are hypothesis's (printed on failure; the database
in .hypothesis/ replays them).
"""

from __future__ import annotations

import contextlib
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chain.blocks import Block
from chain.consensus.certificate import certificate_from_precommits, decode_certificate
from chain.consensus.codec import decode_message
from chain.consensus.errors import ConsensusError
from chain.consensus.messages import PRECOMMIT, PREVOTE, sign_proposal, sign_vote
from chain.crypto import PrivateKey
from chain.encoding import decode, encode
from chain.errors import ChainError, DecodeError
from chain.genesis import Genesis
from chain.jobspec import JobSpec
from chain.train.bodies import ClaimLoss, PostJob
from chain.transactions import SignedTransaction, Transfer, sign_transaction
from chain.types import Amount, Hash32, Height, Round, TimeMs
from p2p.handshake import make_identify
from p2p.wire import Chunk, MalformedFrame, Publish, decode_frame, encode_frame
from tests.ledger.harness import job_spec

FUZZ = settings(max_examples=int(os.environ.get("LC_FUZZ_EXAMPLES", "300")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow])
KEY = PrivateKey.from_seed(b"fuzz")
CHAIN = "fuzz-chain"


def _samples() -> list[bytes]:
    """Valid encodings of every kind of object, to mutate."""
    tx = sign_transaction(KEY, CHAIN, 3, Transfer(PrivateKey.from_seed(b"b").address, Amount(5)))
    post = sign_transaction(KEY, CHAIN, 4, PostJob(job_spec()))
    claim = sign_transaction(KEY, CHAIN, 5, ClaimLoss(Hash32(b"\x01" * 32), 0.25,
                                                      Hash32(b"\x02" * 32)))
    from chain.blocks import BlockHeader, tx_root

    header = BlockHeader(CHAIN, Height(1), TimeMs(1), Hash32(b"\x00" * 32), KEY.address,
                         tx_root([tx, post]), Hash32(b"\x03" * 32), Hash32(b"\x00" * 32))
    block = Block(header, (tx, post))
    vote = sign_vote(KEY, CHAIN, PREVOTE, Height(2), Round(0), Hash32(b"\x04" * 32))
    proposal = sign_proposal(KEY, CHAIN, Height(2), Round(0), Round(-1), block.hash,
                             TimeMs(5), block.encode())
    cert = certificate_from_precommits(
        [sign_vote(KEY, CHAIN, PRECOMMIT, Height(2), Round(0), block.hash)])
    hello = make_identify(KEY, CHAIN, initiator=True, handshake_hash=os.urandom(32),
                          listen_port=26656, topics=("tx", "consensus"), agent="fuzz")
    return [tx.wire, post.wire, claim.wire, block.encode(), encode(vote.to_wire()),
            encode(proposal.to_wire()), cert.encode(), encode_frame(hello),
            encode_frame(Publish("tx", encode([tx.wire]))), encode_frame(Chunk(7, b"x" * 70_000))]


SAMPLES = _samples()


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SAMPLES)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "cut", "splice", "insert"]))
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "cut":
            del data[i:]
        elif op == "splice":
            del data[i : i + draw(st.integers(1, 16))]
        else:
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
    return bytes(data)


INPUTS = st.one_of(st.binary(max_size=512), mutated())


@FUZZ
@given(INPUTS)
def test_canonical_decoder_only_raises_decode_error(data: bytes) -> None:
    try:
        value = decode(data)
    except DecodeError:
        return
    assert encode(value) == data  # anything accepted is canonical


@FUZZ
@given(INPUTS)
def test_transaction_decoder(data: bytes) -> None:
    try:
        tx = SignedTransaction.decode(data)
    except DecodeError:
        return
    assert tx.wire == data
    tx.signature_valid(CHAIN)  # must not raise on any accepted input


@FUZZ
@given(INPUTS)
def test_block_decoder(data: bytes) -> None:
    try:
        block = Block.decode(data)
    except DecodeError:
        return
    assert block.encode() == data


@FUZZ
@given(INPUTS)
def test_consensus_message_and_certificate_decoders(data: bytes) -> None:
    for fn in (decode_message, decode_certificate):
        with contextlib.suppress(ConsensusError, DecodeError):
            fn(data)


@FUZZ
@given(INPUTS)
def test_p2p_frame_parser_and_handshake_messages(data: bytes) -> None:
    try:
        message = decode_frame(data)
    except MalformedFrame:
        return
    assert encode_frame(message) == data or type(message).__name__ == "Chunk"


@FUZZ
@given(st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False)
    | st.text(max_size=20) | st.binary(max_size=40),
    lambda children: st.lists(children, max_size=14) | st.dictionaries(st.text(max_size=8),
                                                                       children, max_size=5),
    max_leaves=40,
))
def test_jobspec_from_arbitrary_structures(value: object) -> None:
    try:
        spec = JobSpec.from_wire(value)
    except DecodeError:
        return
    assert JobSpec.from_wire(spec.to_wire()) == spec


@FUZZ
@given(st.dictionaries(
    st.sampled_from(["chain_id", "genesis_time_ms", "validators", "members", "balances",
                     "params", "junk"]),
    st.recursive(st.none() | st.integers() | st.text(max_size=70) | st.booleans(),
                 lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c,
                                                                     max_size=4),
                 max_leaves=12)))
def test_genesis_loader_gives_one_clear_error(doc: dict) -> None:
    with contextlib.suppress(ChainError):
        Genesis.from_json(doc)
