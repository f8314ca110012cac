"""state.md §7: values and orders the other chapters leave implicit, pinned.

Issue 29: a verifier written from protocol_spec/ alone had to recover these from the
vectors or guess them. Each test drives the real ledger (the harness chain) and checks
exactly what state.md §7 says.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from chain.consensus.messages import PRECOMMIT, PREVOTE, sign_vote
from chain.context import TxContext
from chain.encoding import encode
from chain.governance.bodies import Evidence
from chain.records import JobStatus, Outcome, Params
from chain.state import Overlay
from chain.train.bodies import PostJob
from chain.transition import apply_transaction
from chain.types import Hash32, Height, Round, TimeMs
from tests.ledger.harness import GENESIS_TIME, Chain, job_spec
from tests.train.holdout.test_holdout import v3_spec
from tests.train.test_job_lifecycle import BOUNTY, claims_then_expire

SPEC = Path(__file__).resolve().parents[2] / "protocol_spec"


def _pair(chain: Chain, name: str, kind: str = PREVOTE, height: int = 1) -> Evidence:
    key = chain.keys[name]
    votes = [sign_vote(key, "test-chain", kind, Height(height), Round(0),  # type: ignore[arg-type]
                       Hash32(bytes([i]) * 32)) for i in (1, 2)]
    a, b = sorted(encode(v.to_wire()) for v in votes)
    return Evidence(a, b)


def test_job_turn_1_fields_of_a_turn_tried_and_settlement() -> None:
    """[JOB-TURN.1] [JOB-SETTLE.1] A turn clears model_hash, eligible_voters and votes; the
    claimer joins ``tried`` when its turn ends (a forfeit included); settlement sets
    ``current`` nil and ``phase_deadline_ms`` 0 and keeps the last turn's votes."""
    chain = Chain()
    job_id = claims_then_expire(chain, {"alice": 0.1, "bob": 0.2})
    job = chain.job(job_id)
    assert (job.status, job.current, job.tried) == (JobStatus.REVEAL, chain.addr("alice"), ())
    assert job.phase_deadline_ms == GENESIS_TIME + 10_000 + job.spec.voting.reveal_window_ms
    chain.block(at=job.phase_deadline_ms)  # alice never reveals: forfeit, bob's turn
    job = chain.job(job_id)
    assert job.tried == (chain.addr("alice"),) and job.current == chain.addr("bob")
    assert job.verdicts[-1].outcome == Outcome.FORFEIT
    assert (job.model_hash, job.eligible_voters, job.votes) == (None, (), ())
    chain.block(chain.reveal("bob", job_id))
    chain.vote_round(job_id, "bob", {n: (True, 0.2) for n in ("carol", "dave", "erin", "v0")})
    job = chain.job(job_id)
    assert job.status == JobStatus.PAID and job.tried == (chain.addr("alice"), chain.addr("bob"))
    assert (job.current, job.phase_deadline_ms) == (None, 0)
    assert job.model_hash is not None and len(job.votes) == 4 and job.eligible_voters


def test_job_broken_1_winner_and_paid_of_a_broken_job() -> None:
    """[JOB-BROKEN.1] An inconsistent verdict: winner = the claimer, paid = the bounty."""
    chain = Chain()
    job_id = claims_then_expire(chain, {"bob": 0.2})
    chain.block(chain.reveal("bob", job_id))
    chain.vote_round(job_id, "bob", {"alice": (True, 0.2), "carol": (False, 5.0),
                                     "erin": (False, 2.0), "v0": (True, 0.1)})
    job = chain.job(job_id)
    assert job.verdicts[-1].outcome == Outcome.INCONSISTENT
    assert (job.status, job.winner, job.paid, job.escrow) == (
        JobStatus.BROKEN, chain.addr("bob"), BOUNTY, 0)
    assert (job.current, job.phase_deadline_ms) == (None, 0)


def test_vote_reward_1_a_voter_banned_before_the_verdict_is_not_in_the_divisor() -> None:
    """[VOTE-REWARD.1] v0 opens its vote, is banned by evidence in the same block, then the
    last votes open: the verdict counts v0's vote, and the pool of 8 is split among the four
    unbanned voters (2 each), not five (1 each); v0 gets nothing."""
    chain = Chain()
    post = chain.tx("submitter", PostJob(job_spec(100, voter_reward=8)))
    chain.block(post)
    job_id = post.hash
    chain.block(chain.claim("alice", job_id, 0.1))
    chain.block(at=GENESIS_TIME + 10_000)
    chain.block(chain.reveal("alice", job_id))
    voters = ("bob", "carol", "dave", "erin", "v0")
    chain.block(*(chain.vote_commit(v, job_id, "alice", True, 0.1) for v in voters))
    chain.block(at=chain.job(job_id).phase_deadline_ms)  # alice sends no vote of its own
    chain.block(chain.vote_reveal("v0", job_id, "alice", True, 0.1),
                chain.tx("bob", _pair(chain, "v0")))
    assert chain.state.account(chain.addr("v0")).banned
    before = {v: chain.balance(v) for v in voters}
    chain.block(*(chain.vote_reveal(v, job_id, "alice", True, 0.1) for v in voters[:4]))
    job = chain.job(job_id)
    assert job.status == JobStatus.PAID and job.verdicts[-1].valid_votes == 5
    assert {v: chain.balance(v) - before[v] for v in voters} == {
        "bob": 2, "carol": 2, "dave": 2, "erin": 2, "v0": 0}


def test_holdout_post_1_codes_come_before_insufficient_balance() -> None:
    """[HOLDOUT-POST.1] [JOB-POST.1] A train/v3 post that is both underfunded and breaks a
    holdout bound answers the holdout code; funded otherwise, insufficient_balance."""
    chain = Chain()  # every balance 1,000
    poor = dataclasses.replace(v3_spec(), bounty=5_000)
    assert chain.reject(chain.tx("submitter", PostJob(
        dataclasses.replace(poor, holdout=dataclasses.replace(poor.holdout, deposit=1))))) \
        == "deposit_too_small"
    assert chain.reject(chain.tx("submitter", PostJob(
        dataclasses.replace(poor, holdout=dataclasses.replace(poor.holdout, finalists=4))))) \
        == "too_many_finalists"
    assert chain.reject(chain.tx("submitter", PostJob(poor))) == "insufficient_balance"


def test_tx_evidence_1_check_order() -> None:
    """[TX-EVIDENCE.1] decode, then duplicate (before the signatures), then validity against
    the current set, then age (a height above the chain's too)."""
    chain = Chain(validators=4)
    chain.block()
    chain.block(chain.tx("alice", _pair(chain, "v3")))
    recorded = _pair(chain, "v3")
    forged = Evidence(recorded.vote_a, recorded.vote_a)  # same slot, not a valid pair
    assert chain.reject(chain.tx("bob", forged)) == "duplicate_evidence"
    assert chain.reject(chain.tx("bob", Evidence(b"\x00", b"\x01"))) == "invalid_evidence"
    future = _pair(chain, "v1", height=10_000)
    assert chain.reject(chain.tx("bob", future)) == "evidence_too_old"
    bad_and_future = _pair(chain, "alice", height=10_000)  # not a validator
    assert chain.reject(chain.tx("bob", bad_and_future)) == "invalid_evidence"


def test_job_ban_1_a_re_ban_writes_account_burned_and_a_second_removal() -> None:
    """[JOB-BAN.1] [TX-EVIDENCE.1] Evidence of a second slot against a validator already
    banned (its removal pending): the writes are the slot, the account, meta burned and one
    more ``remove`` change; no verifier write; the removal happens once."""
    chain = Chain(validators=4)
    chain.block()
    chain.block(chain.tx("alice", _pair(chain, "v3")))
    v3 = chain.addr("v3")
    assert chain.state.account(v3).banned and chain.state.get("verifier", v3) is None
    assert v3 in chain.state.validators()  # removal pending
    tx = chain.tx("bob", _pair(chain, "v3", PRECOMMIT))
    view = Overlay(chain.state)  # what the transaction writes, on the state before it
    ctx = TxContext(chain.state.chain_id, Height(chain.state.height + 1),
                    TimeMs(chain.state.time_ms + 1_000), 0, tx.hash)
    apply_transaction(view, tx, ctx, None)
    written = sorted({c.table for c in view.changes()
                      if c.table != "account" or c.key != chain.addr("bob")})
    assert written == ["account", "evidence", "meta", "valset_change"], written
    burned = chain.state.burned
    chain.block(tx)
    assert chain.state.burned == burned  # its balance was 0 since the first ban
    scheduled = [c for key in chain.state.keys("valset_change")
                 for c in chain.state.get("valset_change", key) if c.address == v3]
    assert len(scheduled) == 1  # the second removal; the first took effect at this block's end
    assert v3 not in chain.state.validators() and len(chain.state.validators()) == 3
    for _ in range(chain.state.params.validator_change_delay + 1):
        chain.block()
    assert v3 not in chain.state.validators() and len(chain.state.validators()) == 3


def test_default_verifier_bond_is_stated_in_ledger_md_section_8() -> None:
    """[GENESIS-VERIFIERS.1] [VERIFY-JOIN.1] ledger.md §8 lists every parameter; its
    verifier_bond default is Params' and what a genesis without the override bonds."""
    text = (SPEC / "ledger.md").read_text()
    table = text[text.index("## 8. Genesis"):text.index("## 9. Storage")]
    rows = {line.split("|")[1].strip(): line.split("|")[2].strip()
            for line in table.splitlines() if line.startswith("| ") and "---" not in line}
    for name in Params.__dataclass_fields__:
        assert any(name in key or name.replace("max_", "min_") + " / max" == key
                   for key in rows), name
    assert rows["verifier_bond"] == f"{Params().verifier_bond} credits"
    chain = Chain()
    assert chain.state.get("verifier", chain.addr("alice")) == Params().verifier_bond == 10
