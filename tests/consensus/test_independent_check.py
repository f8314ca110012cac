"""[CONS-SIGN.1] Consensus signatures check out under an independent implementation.

The digest is rebuilt with plain ``msgpack`` + ``hashlib`` and the signature
verified with the pure-Python ``ecdsa`` package, so neither our encoder nor
libsecp256k1 is trusted by this test.
"""

from __future__ import annotations

import hashlib

import msgpack
import pytest

from chain.consensus.certificate import certificate_from_precommits
from chain.consensus.messages import PRECOMMIT, PREVOTE, sign_proposal
from chain.crypto import PrivateKey
from chain.types import Hash32, Height, Round, TimeMs
from tests.consensus.helpers import CHAIN, vote

ecdsa = pytest.importorskip("ecdsa")

KEY = PrivateKey.from_seed(b"consensus-vector")
HASH = Hash32(hashlib.sha256(b"block").digest())


def independent_verify(signed_list: list[object], signature: bytes) -> bool:
    digest = hashlib.sha256(msgpack.packb(signed_list, use_bin_type=True)).digest()
    vk = ecdsa.VerifyingKey.from_string(KEY.public_key, curve=ecdsa.SECP256k1)
    try:
        return bool(vk.verify_digest(signature, digest, sigdecode=ecdsa.util.sigdecode_string))
    except ecdsa.BadSignatureError:
        return False


@pytest.mark.parametrize("kind", [PREVOTE, PRECOMMIT])
@pytest.mark.parametrize("value", [HASH, None])
def test_cons_sign_1_vote_verifies_independently(kind: str, value: Hash32 | None) -> None:
    v = vote(KEY, kind, 7, 2, value)  # type: ignore[arg-type]
    assert independent_verify(["learningchain/v1", CHAIN, kind, 7, 2, value], v.signature)
    assert not independent_verify(["learningchain/v1", CHAIN, kind, 7, 3, value], v.signature)


def test_cons_sign_1_proposal_verifies_independently() -> None:
    p = sign_proposal(
        KEY, CHAIN, Height(7), Round(2), Round(-1), HASH, TimeMs(1_700_000_000_123), b"b"
    )
    signed = ["learningchain/v1", CHAIN, "proposal", 7, 2, -1, HASH, 1_700_000_000_123]
    assert independent_verify(signed, p.signature)


def test_cons_cert_1_certificate_signature_verifies_independently() -> None:
    cert = certificate_from_precommits([vote(KEY, PRECOMMIT, 7, 1, HASH)])
    ((_, sig),) = cert.signatures
    assert independent_verify(["learningchain/v1", CHAIN, "precommit", 7, 1, HASH], sig)
