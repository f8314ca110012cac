"""[CONS-EVIDENCE.1] Duplicate-vote evidence names exactly the equivocating validator."""

from __future__ import annotations

import pytest

from chain.consensus.errors import InvalidEvidence
from chain.consensus.evidence import DuplicateVoteEvidence, check_evidence, decode_evidence
from chain.consensus.messages import PRECOMMIT, PREVOTE, Vote
from chain.crypto import PrivateKey, sha256
from tests.consensus.helpers import CHAIN, KEYS, vote, vset

A, B = sha256(b"a"), sha256(b"b")


def code(ev: DuplicateVoteEvidence, chain: str = CHAIN) -> str:
    with pytest.raises(InvalidEvidence) as e:
        check_evidence(ev, vset(), chain)
    return e.value.code


def test_cons_evidence_1_conflicting_prevotes_name_the_offender() -> None:
    ev = DuplicateVoteEvidence.of(vote(KEYS[1], PREVOTE, 3, 2, A), vote(KEYS[1], PREVOTE, 3, 2, B))
    assert check_evidence(ev, vset(), CHAIN) == KEYS[1].address


def test_cons_evidence_1_nil_against_block_counts() -> None:
    ev = DuplicateVoteEvidence.of(
        vote(KEYS[2], PRECOMMIT, 3, 0, None), vote(KEYS[2], PRECOMMIT, 3, 0, A)
    )
    assert check_evidence(ev, vset(), CHAIN) == KEYS[2].address


def test_cons_evidence_1_invalid_same_value() -> None:
    v = vote(KEYS[1], PREVOTE, 3, 2, A)
    assert code(DuplicateVoteEvidence(v, v)) == "not_conflicting"


@pytest.mark.parametrize(
    "other",
    [
        lambda: vote(KEYS[1], PREVOTE, 3, 3, B),  # another round
        lambda: vote(KEYS[1], PREVOTE, 4, 2, B),  # another height
        lambda: vote(KEYS[1], PRECOMMIT, 3, 2, B),  # another kind
        lambda: vote(KEYS[2], PREVOTE, 3, 2, B),  # another validator
    ],
)
def test_cons_evidence_1_invalid_different_slot(other: object) -> None:
    ev = DuplicateVoteEvidence.of(vote(KEYS[1], PREVOTE, 3, 2, A), other())  # type: ignore[operator]
    assert code(ev) == "not_same_slot"


def test_cons_evidence_1_invalid_non_canonical_order() -> None:
    ev = DuplicateVoteEvidence.of(vote(KEYS[1], PREVOTE, 3, 2, A), vote(KEYS[1], PREVOTE, 3, 2, B))
    assert code(DuplicateVoteEvidence(ev.vote_b, ev.vote_a)) == "not_canonical"


def test_cons_evidence_1_invalid_bad_signature() -> None:
    good = vote(KEYS[1], PREVOTE, 3, 2, A)
    forged = Vote(PREVOTE, good.height, good.round, B, good.validator, good.signature)
    assert code(DuplicateVoteEvidence.of(good, forged)) == "bad_signature"


def test_cons_evidence_1_invalid_other_chain() -> None:
    ev = DuplicateVoteEvidence.of(vote(KEYS[1], PREVOTE, 3, 2, A), vote(KEYS[1], PREVOTE, 3, 2, B))
    assert code(ev, "another-chain") == "bad_signature"


def test_cons_evidence_1_invalid_not_a_validator() -> None:
    x = PrivateKey.from_seed(b"outsider")
    ev = DuplicateVoteEvidence.of(vote(x, PREVOTE, 3, 2, A), vote(x, PREVOTE, 3, 2, B))
    assert code(ev) == "unknown_validator"


def test_evidence_roundtrip() -> None:
    ev = DuplicateVoteEvidence.of(
        vote(KEYS[1], PREVOTE, 3, 2, A), vote(KEYS[1], PREVOTE, 3, 2, None)
    )
    assert decode_evidence(ev.encode()) == ev
    with pytest.raises(InvalidEvidence):
        decode_evidence(b"\x91\xa1x")
