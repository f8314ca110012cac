"""[CONS-CERT.1] Certificate verification accepts exactly the >2/3 signed precommits."""

from __future__ import annotations

import pytest

from chain.consensus.certificate import (
    CommitCertificate,
    certificate_from_precommits,
    decode_certificate,
    verify_certificate,
)
from chain.consensus.errors import InvalidCertificate
from chain.consensus.messages import PRECOMMIT, PREVOTE
from chain.crypto import PrivateKey, sha256
from chain.errors import DecodeError
from chain.types import Hash32
from tests.consensus.helpers import CHAIN, KEYS, vote, vset

H = Hash32(sha256(b"block"))


def cert_of(keys: list[PrivateKey], *, value: Hash32 = H, round_: int = 0) -> CommitCertificate:
    return certificate_from_precommits(vote(k, PRECOMMIT, 1, round_, value) for k in keys)


def code(cert: CommitCertificate, **kw: object) -> str:
    with pytest.raises(InvalidCertificate) as e:
        verify_certificate(cert, kw.get("vs", vset()), kw.get("chain", CHAIN))  # type: ignore[arg-type]
    return e.value.code


def test_cons_cert_1_three_of_four_is_valid() -> None:
    verify_certificate(cert_of(KEYS[:3]), vset(), CHAIN)
    verify_certificate(cert_of(KEYS), vset(), CHAIN)


def test_cons_cert_1_invalid_insufficient_power() -> None:
    assert code(cert_of(KEYS[:2])) == "insufficient_power"


def test_cons_cert_1_power_is_weighted() -> None:
    verify_certificate(cert_of(KEYS[:1]), vset((7, 1, 1, 1)), CHAIN)  # 7 of 10 > 2/3
    assert code(cert_of(KEYS[:1]), vs=vset((5, 1, 1, 1))) == "insufficient_power"  # 5 of 8
    assert code(cert_of(KEYS[1:]), vs=vset((5, 1, 1, 1))) == "insufficient_power"  # 3 of 8


def test_cons_cert_1_invalid_duplicate_signer() -> None:
    c = cert_of(KEYS[:2])
    dup = CommitCertificate(c.height, c.round, c.block_hash, (c.signatures[0], *c.signatures))
    assert code(dup) == "unsorted_or_duplicate"


def test_cons_cert_1_invalid_unsorted_signers() -> None:
    c = cert_of(KEYS[:3])
    rev = CommitCertificate(c.height, c.round, c.block_hash, tuple(reversed(c.signatures)))
    assert code(rev) == "unsorted_or_duplicate"


def test_cons_cert_1_invalid_unknown_signer() -> None:
    stranger = PrivateKey.from_seed(b"stranger")
    assert code(cert_of([*KEYS[:2], stranger])) == "unknown_signer"


def test_cons_cert_1_invalid_bad_signature() -> None:
    c = cert_of(KEYS[:3])
    sigs = list(c.signatures)
    sigs[1] = (sigs[1][0], bytes(64))
    assert code(CommitCertificate(c.height, c.round, c.block_hash, tuple(sigs))) == "bad_signature"


def test_cons_cert_1_invalid_signatures_of_another_block_round_or_chain() -> None:
    c = cert_of(KEYS[:3])
    assert code(CommitCertificate(c.height, c.round, sha256(b"x"), c.signatures)) == "bad_signature"
    assert code(CommitCertificate(c.height, 1, c.block_hash, c.signatures)) == "bad_signature"  # type: ignore[arg-type]
    assert code(c, chain="other-chain") == "bad_signature"


def test_cons_cert_1_prevotes_are_not_precommits() -> None:
    prevotes = [vote(k, PREVOTE, 1, 0, H) for k in KEYS[:3]]
    c = CommitCertificate(1, 0, H, tuple(sorted((v.validator, v.signature) for v in prevotes)))  # type: ignore[arg-type]
    assert code(c) == "bad_signature"


def test_certificate_roundtrip_and_rejects_garbage() -> None:
    c = cert_of(KEYS[:3])
    assert decode_certificate(c.encode()) == c
    with pytest.raises(DecodeError):
        decode_certificate(b"\xc1")
    with pytest.raises(DecodeError):
        decode_certificate(c.encode()[:-1])


def test_certificate_from_precommits_refuses_mixed_votes() -> None:
    with pytest.raises(ValueError):
        certificate_from_precommits(
            [vote(KEYS[0], PRECOMMIT, 1, 0, H), vote(KEYS[1], PRECOMMIT, 1, 1, H)]
        )
    with pytest.raises(ValueError):
        certificate_from_precommits([vote(KEYS[0], PRECOMMIT, 1, 0, None)])
