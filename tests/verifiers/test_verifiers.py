"""Who verifies [VERIFY-*]: opt-in with a bond, eligibility, no-shows, leaving, genesis.

The case that motivated it (issue 15): a graph of 4 validators of which only 3
run a worker. Before the opt-in, the validator without a worker counted as an
eligible voter that never voted, and every job ended `no_quorum` and was
refunded. Each test drives the real state transition through blocks.
"""

from __future__ import annotations

from typing import Any

import pytest

from chain.crypto import address_to_text
from chain.errors import InvalidGenesis
from chain.genesis import Genesis
from chain.records import JobStatus, Outcome
from chain.train.bodies import PostJob
from chain.verifiers.bodies import VerifierJoin, VerifierLeave
from tests.ledger.harness import Chain, job_spec

BOND = 10  # Params.verifier_bond's default
WORKERS = ("alice", "bob", "carol")


def readme_graph() -> Chain:
    """The README's devnet in ledger form: 4 validators, 3 of them run a worker and
    verify; the submitter does not."""
    return Chain(validators=4, members=("submitter", *WORKERS), verifiers=WORKERS)


def post_and_expire(chain: Chain, claims: dict[str, float]) -> bytes:
    post = chain.tx("submitter", PostJob(job_spec(expiry_ms=chain.now + 10_000)))
    chain.block(post)
    chain.block(*(chain.claim(n, post.hash, loss) for n, loss in claims.items()))
    chain.block(at=chain.job(post.hash).spec.expiry_ms)
    return post.hash


def assert_conserved(chain: Chain) -> None:
    assert chain.state.total_credits() == chain.state.supply


def test_vote_eligible_2_the_readme_graph_pays_a_job() -> None:
    """[VOTE-ELIGIBLE.2] Only verifiers are eligible: the validators that do not compute
    no longer block the quorum, and the README's graph pays its job."""
    chain = readme_graph()
    job_id = post_and_expire(chain, {"alice": 0.2})
    chain.block(chain.reveal("alice", job_id))
    job = chain.job(job_id)
    assert job.eligible_voters == tuple(sorted((chain.addr("bob"), chain.addr("carol"))))
    chain.vote_round(job_id, "alice", {"bob": (True, 0.2), "carol": (True, 0.2)})
    job = chain.job(job_id)
    assert job.status == JobStatus.PAID and job.winner == chain.addr("alice")
    assert job.verdicts[0].eligible == 2 and job.verdicts[0].valid_votes == 2
    assert_conserved(chain)


def test_vote_eligible_2_a_member_that_did_not_opt_in_cannot_vote() -> None:
    """[VOTE-ELIGIBLE.2] A validator that is a member but not a verifier: not_eligible_voter."""
    chain = readme_graph()
    job_id = post_and_expire(chain, {"alice": 0.2})
    chain.block(chain.reveal("alice", job_id))
    assert chain.reject(chain.vote_commit("v3", job_id, "alice", True, 0.2)) == \
        "not_eligible_voter"


def test_verify_join_1_bonds_and_becomes_eligible_at_the_next_reveal() -> None:
    """[VERIFY-JOIN.1] The bond leaves the balance, is held, counts in the supply."""
    chain = readme_graph()
    before = chain.balance("v3")
    chain.block(chain.tx("v3", VerifierJoin()))
    assert chain.balance("v3") == before - BOND
    assert chain.state.verifier_bond(chain.addr("v3")) == BOND
    assert_conserved(chain)
    job_id = post_and_expire(chain, {"alice": 0.2})
    chain.block(chain.reveal("alice", job_id))
    assert chain.addr("v3") in chain.job(job_id).eligible_voters


def test_verify_join_1_rejections() -> None:
    """[VERIFY-JOIN.1] Not a member, already a verifier, balance below the bond."""
    chain = Chain(validators=1, members=("submitter", "alice", "erin"), verifiers=("alice",),
                  balance=1_000)
    assert chain.reject(chain.tx("mallory", VerifierJoin())) == "not_member"
    assert chain.reject(chain.tx("alice", VerifierJoin())) == "already_verifier"
    poor = Chain(validators=1, members=("submitter", "erin"), verifiers=(), balance=BOND - 1)
    assert poor.reject(poor.tx("erin", VerifierJoin())) == "insufficient_balance"


def test_verify_leave_1_returns_the_bond_but_not_during_an_open_vote() -> None:
    """[VERIFY-LEAVE.1] An eligible voter of an open vote cannot leave (it would dodge
    [VOTE-NOSHOW.1]); after the verdict it can, and gets its bond back."""
    chain = readme_graph()
    assert chain.reject(chain.tx("v3", VerifierLeave())) == "not_verifier"
    job_id = post_and_expire(chain, {"alice": 0.2})
    chain.block(chain.reveal("alice", job_id))
    assert chain.reject(chain.tx("bob", VerifierLeave())) == "verifying"
    chain.vote_round(job_id, "alice", {"bob": (True, 0.2), "carol": (True, 0.2)})
    before = chain.balance("bob")
    chain.block(chain.tx("bob", VerifierLeave()))
    assert chain.balance("bob") == before + BOND
    assert chain.state.verifier_bond(chain.addr("bob")) is None
    assert_conserved(chain)


def test_vote_noshow_1_a_missed_vote_burns_the_bond_and_leaves_the_set() -> None:
    """[VOTE-NOSHOW.1] [VERIFY-FORFEIT.1] Carol is eligible and silent: bond burned, out of
    the set; the next job does not count her, so she can block at most once per bond."""
    chain = readme_graph()
    job_id = post_and_expire(chain, {"alice": 0.2})
    chain.block(chain.reveal("alice", job_id))
    burned = chain.state.burned
    chain.vote_round(job_id, "alice", {"bob": (True, 0.2)})
    job = chain.job(job_id)
    # 1 of 2 eligible opened: below the 667‰ quorum, so the job is refunded this time.
    assert job.verdicts[0].outcome == Outcome.NO_QUORUM and job.status == JobStatus.REFUNDED
    assert chain.state.verifier_bond(chain.addr("carol")) is None
    assert chain.state.burned - burned == BOND
    assert_conserved(chain)
    second = post_and_expire(chain, {"bob": 0.3})
    chain.block(chain.reveal("bob", second))
    assert chain.job(second).eligible_voters == (chain.addr("alice"),)


def test_vote_noshow_1_no_forfeit_when_no_vote_was_taken() -> None:
    """[VOTE-NOSHOW.1] A claimer that never reveals forfeits its turn; no vote was taken,
    so no verifier loses anything."""
    chain = readme_graph()
    job_id = post_and_expire(chain, {"alice": 0.2})
    chain.block(at=chain.job(job_id).phase_deadline_ms)
    assert chain.job(job_id).verdicts[0].outcome == Outcome.FORFEIT
    assert all(chain.state.verifier_bond(chain.addr(n)) == BOND for n in WORKERS)


def test_job_ban_1_a_banned_verifier_loses_its_bond() -> None:
    """[JOB-BAN.1] The cheater's bond is burned with its balance and it leaves the set."""
    chain = readme_graph()
    job_id = post_and_expire(chain, {"alice": 0.01})
    chain.block(chain.reveal("alice", job_id))
    balance = chain.balance("alice")
    burned = chain.state.burned
    chain.vote_round(job_id, "alice", {"bob": (False, 0.9), "carol": (False, 0.9)})
    assert chain.job(job_id).verdicts[0].outcome == Outcome.CHEAT
    assert chain.state.burned - burned == balance + BOND
    assert chain.state.verifier_bond(chain.addr("alice")) is None
    assert_conserved(chain)


def _genesis_doc(**extra: Any) -> dict[str, Any]:
    chain = readme_graph()
    doc = chain.genesis.to_json()
    doc.update(extra)
    return doc


def test_genesis_verifiers_1_bonds_are_created_beside_the_balances() -> None:
    """[GENESIS-VERIFIERS.1] Supply = balances + one bond per verifier; the list is hashed."""
    chain = readme_graph()
    balances = sum(b for _, b in chain.genesis.balances)
    assert chain.state.supply == balances + len(WORKERS) * BOND
    assert_conserved(chain)
    fewer = Genesis.from_json(_genesis_doc(verifiers=[address_to_text(chain.addr("alice"))]))
    assert fewer.hash != chain.genesis.hash
    assert Genesis.from_json(chain.genesis.to_json()).hash == chain.genesis.hash


@pytest.mark.parametrize(("verifiers", "params", "message"), [
    (["mallory"], {}, "not a member"),
    (["alice", "alice"], {}, "duplicate verifier"),
    ("alice", {}, "must be a list"),
    ([], {"verifier_bond": -1}, "verifier_bond"),
    ([], {"verifier_bond": True}, "verifier_bond"),
])
def test_genesis_verifiers_1_invalid_lists_are_refused(verifiers: Any, params: dict[str, Any],
                                                       message: str) -> None:
    """[GENESIS-VERIFIERS.1] Members only, once each; the bond a non-negative integer."""
    chain = readme_graph()
    names = {n: address_to_text(chain.addr(n)) for n in ("alice", "mallory")}
    listed = names.get(verifiers, verifiers) if isinstance(verifiers, str) else \
        [names[n] for n in verifiers]
    doc = _genesis_doc(verifiers=listed, params={**chain.genesis.to_json()["params"], **params})
    with pytest.raises(InvalidGenesis, match=message):
        Genesis.from_json(doc)

