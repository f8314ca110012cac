"""Coverage-guided fuzzing of the decoders with atheris (libFuzzer) [issue 8].

Hypothesis (``test_fuzz_decoders.py``) draws inputs from strategies; atheris
instruments ``chain`` and ``p2p`` and mutates towards new branches, so it
finds inputs nobody thought to describe. The properties are the same: a
decoder raises its own error type or returns something that re-encodes to
exactly its input; anything else is a crash (libFuzzer then writes the input
to ``crash-*`` and exits non-zero).

    python -m tests.fuzz.atheris_fuzz <target> [libFuzzer flags, e.g. -runs=100000]

Targets: canonical, transaction, block, consensus, frame.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable

import atheris

with atheris.instrument_imports(include=["chain", "p2p"]):
    from chain.blocks import Block
    from chain.consensus.certificate import decode_certificate
    from chain.consensus.codec import decode_message
    from chain.consensus.errors import ConsensusError
    from chain.encoding import decode, encode
    from chain.errors import DecodeError
    from chain.transactions import SignedTransaction
    from p2p.wire import Chunk, MalformedFrame, decode_frame, encode_frame

CHAIN = "fuzz-chain"


def canonical(data: bytes) -> None:
    try:
        value = decode(data)
    except DecodeError:
        return
    if encode(value) != data:
        raise AssertionError("accepted a non-canonical encoding")


def transaction(data: bytes) -> None:
    try:
        tx = SignedTransaction.decode(data)
    except DecodeError:
        return
    if tx.wire != data:
        raise AssertionError("transaction does not re-encode to its input")
    tx.signature_valid(CHAIN)


def block(data: bytes) -> None:
    try:
        decoded = Block.decode(data)
    except DecodeError:
        return
    if decoded.encode() != data:
        raise AssertionError("block does not re-encode to its input")


def consensus(data: bytes) -> None:
    for fn in (decode_message, decode_certificate):
        with contextlib.suppress(ConsensusError, DecodeError):
            fn(data)


def frame(data: bytes) -> None:
    try:
        message = decode_frame(data)
    except MalformedFrame:
        return
    if not isinstance(message, Chunk) and encode_frame(message) != data:
        raise AssertionError("frame does not re-encode to its input")


TARGETS: dict[str, Callable[[bytes], None]] = {
    "canonical": canonical,
    "transaction": transaction,
    "block": block,
    "consensus": consensus,
    "frame": frame,
}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: python -m tests.fuzz.atheris_fuzz {{{','.join(TARGETS)}}} [flags]")
    target = TARGETS[sys.argv[1]]
    atheris.Setup([sys.argv[0], *sys.argv[2:]], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
