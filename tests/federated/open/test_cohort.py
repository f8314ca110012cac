"""A federated job's cohort [FED-SPEC.4]: the submitter names the only addresses that may
commit updates, so one data owner cannot join through several addresses.

Decoding (a 14th element, one encoding per set), the ledger's refusal of every other
address through real blocks [TX-FED.2], and the version gate [TX-FED.12].
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from chain.encoding import decode, encode
from chain.errors import DecodeError
from chain.federated.open.reads import update_bodies
from chain.federated.open.records import FedPhase
from chain.federated.rounds import Aggregation
from chain.federated.spec import WIRE_LENGTH, FederatedSpec
from chain.jobspec import JobSpec
from chain.train.bodies import PostJob
from chain.types import Address
from chain.versions import COHORT_VERSION
from tests.federated.fed_ledger_story import (
    FedStory,
    conserved,
    fed_job_spec,
    fed_spec,
    salt_of,
)
from tests.ledger.harness import Chain


def addresses(chain: Chain, *names: str) -> tuple[Address, ...]:
    return tuple(sorted(chain.addr(n) for n in names))


A = tuple(Address(bytes([i]) * 20) for i in (1, 2, 3))


def refused(wire: Any) -> str:
    with pytest.raises(DecodeError) as e:
        FederatedSpec.from_wire(decode(encode(wire)))
    assert e.value.code == "bad_field"
    assert "cohort" in str(e.value), e.value
    return str(e.value)


def test_a_cohort_is_a_14th_element_and_round_trips() -> None:
    """[FED-SPEC.1] [FED-SPEC.4] Without a cohort the wire keeps its 13 elements (the bytes
    of every spec posted before version 6); with one, a 14th: the ascending addresses. Both
    decode to the same spec and re-encode to the same bytes, inside a whole job spec too."""
    plain = fed_spec()
    assert len(plain.to_wire()) == WIRE_LENGTH == 13
    named = fed_spec(cohort=A)
    wire = named.to_wire()
    assert len(wire) == 14 and wire[13] == list(A)
    for s in (plain, named):
        raw = encode(s.to_wire())
        again = FederatedSpec.from_wire(decode(raw))
        assert again == s and encode(again.to_wire()) == raw
    job = fed_job_spec(cohort=A)
    assert JobSpec.from_wire(decode(encode(job.to_wire()))) == job


@pytest.mark.parametrize(("cohort", "why"), [
    ([], "empty cohort is written by leaving the element out"),
    ([A[1], A[0]], "strictly ascending"),
    ([A[0], A[0]], "strictly ascending"),
    ([A[0]], "cannot fill a round of min_participants 2"),
    ([A[0][:19], A[1]], "cohort[0]"),
    ([A[0], "alice"], "cohort[1]"),
    ([bytes([i // 256, i % 256]) * 10 for i in range(257)], "at most 256"),
    (b"\x01" * 20, "cohort"),
])
def test_a_bad_cohort_is_refused_naming_it(cohort: Any, why: str) -> None:
    """[FED-SPEC.4] Empty (its absence is the encoding), unsorted, repeated, fewer than
    ``min_participants``, an address of the wrong length or type, more than 256, not an
    array: ``bad_field`` naming ``federated.cohort``."""
    wire = fed_spec().to_wire()
    wire.append(cohort)
    assert why in refused(wire)


def test_a_15th_element_is_refused() -> None:
    """[FED-SPEC.1] Strict length: 13 or 14, nothing after the cohort."""
    wire = [*fed_spec(cohort=A).to_wire(), 0]
    with pytest.raises(DecodeError) as e:
        FederatedSpec.from_wire(decode(encode(wire)))
    assert e.value.code == "bad_field"


def test_only_the_cohort_commits() -> None:
    """[TX-FED.2] [FED-SPEC.4] With alice and bob named, carol (an admitted member) is
    refused ``not_in_cohort`` before any deposit moves; alice and bob commit and reveal,
    and the round is theirs alone. The checks before it keep their order: a non-member is
    still ``not_member``, the owner still ``owner_cannot_participate``."""
    s = FedStory(Chain(protocol_version=COHORT_VERSION))
    s.post(fed_job_spec(cohort=addresses(s.chain, "alice", "bob")))
    s.publish()
    tx = s.chain.tx
    carol = s.chain.balance("carol")
    assert s.chain.reject(tx("carol", s.bodies("carol", 1).commit)) == "not_in_cohort"
    assert s.chain.balance("carol") == carol
    assert s.chain.reject(tx("mallory", s.bodies("alice", 1).commit)) == "not_member"
    assert s.chain.reject(tx("submitter", s.bodies("alice", 1).commit)) == \
        "owner_cannot_participate"
    s.chain.block(tx("alice", s.bodies("alice", 1).commit),
                  tx("bob", s.bodies("bob", 1).commit))
    assert [s.name(u.participant) for u in s.fed.updates] == sorted(["alice", "bob"])
    assert s.fed.phase == FedPhase.COMMIT
    conserved(s.chain)


def test_fltrust_owner_sends_its_reference_outside_the_cohort() -> None:
    """[FED-SPEC.4] [TX-FED.2] The cohort names data owners; the job's owner is never in
    it and still commits its FLTrust reference."""
    s = FedStory(Chain(protocol_version=COHORT_VERSION))
    s.post(fed_job_spec(aggregation=Aggregation("fltrust", 0), min_participants=1,
                        cohort=addresses(s.chain, "alice")))
    s.publish()
    reference = update_bodies(s.job_id, 1, s.chain.addr("submitter"),
                              s.update_blob("alice", 1), salt_of("ref"))
    s.chain.block(s.chain.tx("submitter", reference.commit))
    assert [s.name(u.participant) for u in s.fed.updates] == ["submitter"]
    assert s.chain.reject(s.chain.tx("bob", s.bodies("bob", 1).commit)) == "not_in_cohort"
    conserved(s.chain)


def test_a_cohort_needs_protocol_version_6() -> None:
    """[TX-FED.12] A spec naming a cohort is refused while version 5 is in force
    (``needs_protocol_version``), and posted under version 6; a spec without one is posted
    under either."""
    old = FedStory(Chain(protocol_version=COHORT_VERSION - 1))
    named = fed_job_spec(cohort=addresses(old.chain, "alice", "bob"))
    assert old.chain.reject(old.chain.tx("submitter", PostJob(named))) == \
        "needs_protocol_version"
    old.post(fed_job_spec())
    assert old.fed.round == 1
    new = FedStory(Chain(protocol_version=COHORT_VERSION))
    new.post(replace(named))
    assert new.fed.round == 1
    conserved(old.chain)
    conserved(new.chain)
