"""[JOB-POST.1] The quorum and the supermajority are bounded from above ([THREAT-QUORUM.1]).

A job asking for more than 667 permille of either would let fewer than a third of the
voters block every verdict: one withholding verifier refunds a unanimous-quorum job
after its model is revealed, one colluding vote makes a unanimous-supermajority job
inconsistent. These tests try every way around the bound.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from chain.jobspec import JobSpec
from chain.train.bodies import PostJob
from chain.train.rules import MAX_QUORUM_PERMILLE, MAX_SUPERMAJORITY_PERMILLE
from tests.ledger.harness import Chain, job_spec


def test_job_post_1_the_largest_allowed_quorum_and_supermajority_post() -> None:
    """[JOB-POST.1] 667 permille of both is accepted, and the escrow leaves the balance."""
    chain = Chain()
    before = chain.state.account(chain.addr("alice")).balance
    tx = chain.tx("alice", PostJob(job_spec(quorum=667, supermajority=667)))
    chain.block(tx)
    job = chain.state.job(tx.hash)
    assert job is not None and job.spec.voting.quorum_permille == MAX_QUORUM_PERMILLE
    assert chain.state.account(chain.addr("alice")).balance == before - job.escrow


def test_job_post_1_a_unanimous_quorum_is_rejected_and_nothing_moves() -> None:
    """[JOB-POST.1] [THREAT-QUORUM.1] The withholding submitter's post (quorum 1000) is
    rejected with quorum_too_high; its balance and the job table are untouched."""
    chain = Chain()
    before = chain.state.account(chain.addr("alice")).balance
    tx = chain.tx("alice", PostJob(job_spec(quorum=1000)))
    assert chain.reject(tx) == "quorum_too_high"
    assert chain.state.account(chain.addr("alice")).balance == before
    assert chain.state.job(tx.hash) is None


def test_job_post_1_a_unanimous_supermajority_is_rejected() -> None:
    """[JOB-POST.1] A supermajority of 1000 (one colluding vote breaks every turn) is
    rejected with supermajority_too_high, also when the quorum is in bounds."""
    chain = Chain()
    assert chain.reject(chain.tx("alice", PostJob(job_spec(supermajority=1000)))) \
        == "supermajority_too_high"


def test_job_post_1_a_spec_above_the_bound_still_decodes() -> None:
    """[JOB-POST.1] [JOB-VOTE-PARAMS.1] The bound applies at posting, not at decoding: a
    spec with 1000 permille (as jobs posted before the bound may hold) decodes and
    re-encodes to its own bytes."""
    spec = job_spec(quorum=1000, supermajority=1000)
    assert JobSpec.from_wire(spec.to_wire()) == spec


@settings(max_examples=60, deadline=None)
@given(quorum=st.integers(500, 1000), supermajority=st.integers(667, 1000))
def test_job_post_1_no_quorum_or_supermajority_above_667_is_ever_posted(
        quorum: int, supermajority: int) -> None:
    """[JOB-POST.1] Whatever pair a submitter picks in the decodable range, the post is
    accepted exactly when both are at most 667; the first failing bound names the code."""
    chain = Chain()
    tx = chain.tx("alice", PostJob(job_spec(quorum=quorum, supermajority=supermajority)))
    if quorum > MAX_QUORUM_PERMILLE:
        assert chain.reject(tx) == "quorum_too_high"
    elif supermajority > MAX_SUPERMAJORITY_PERMILLE:
        assert chain.reject(tx) == "supermajority_too_high"
    else:
        chain.block(tx)
        assert chain.state.job(tx.hash) is not None
