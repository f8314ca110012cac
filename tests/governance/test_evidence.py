"""[TX-EVIDENCE.1] Equivocation evidence as a transaction: checked, recorded, punished."""

from __future__ import annotations

from chain.consensus.messages import PRECOMMIT, PREVOTE, sign_vote
from chain.encoding import encode
from chain.governance.bodies import Evidence
from chain.types import Hash32, Height, Round
from tests.ledger.harness import Chain


def _pair(chain: Chain, name: str, kind: str = PREVOTE) -> Evidence:
    key = chain.keys[name]
    one = sign_vote(key, "test-chain", kind, Height(1), Round(0), Hash32(b"\x01" * 32))  # type: ignore[arg-type]
    two = sign_vote(key, "test-chain", kind, Height(1), Round(0), Hash32(b"\x02" * 32))  # type: ignore[arg-type]
    a, b = sorted([encode(one.to_wire()), encode(two.to_wire())])
    return Evidence(a, b)


def test_equivocating_validator_is_recorded_and_banned() -> None:
    """[TX-EVIDENCE.1] [JOB-BAN.1] Recorded once; offender banned, burned, removed later."""
    chain = Chain(validators=4)
    chain.block()
    chain.block(chain.tx("alice", _pair(chain, "v3")))
    offender = chain.state.account(chain.addr("v3"))
    assert offender.banned and offender.balance == 0
    delay = chain.state.params.validator_change_delay
    for _ in range(delay):
        chain.block()
    assert chain.addr("v3") not in chain.state.validators()
    assert chain.reject(chain.tx("bob", _pair(chain, "v3"))) == "duplicate_evidence"


def test_invalid_evidence_same_vote_twice_or_forged() -> None:
    """[TX-EVIDENCE.1] [CONS-EVIDENCE.1] Same vote twice, wrong order, not a validator, garbage."""
    chain = Chain(validators=4)
    chain.block()
    pair = _pair(chain, "v1")
    assert chain.reject(chain.tx("alice", Evidence(pair.vote_a, pair.vote_a))) \
        == "invalid_evidence"
    assert chain.reject(chain.tx("alice", Evidence(pair.vote_b, pair.vote_a))) \
        == "invalid_evidence"  # not in canonical order
    not_validator = _pair(chain, "alice", PRECOMMIT)
    assert chain.reject(chain.tx("bob", not_validator)) == "invalid_evidence"
    assert chain.reject(chain.tx("alice", Evidence(b"\x00", b"\x01"))) == "invalid_evidence"
