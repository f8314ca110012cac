"""Hidden test sets (train/v3) in the ledger: each rule of ledger.md §5b, and its attacks.

The story every test starts from: the submitter posts a train/v3 job; alice
overfits the public part (best public loss, poor hidden loss), bob generalises.
"""

from __future__ import annotations

import dataclasses
import os

import pytest

from chain.errors import DecodeError
from chain.jobspec import TRAIN_V3, DataRef, Holdout, JobSpec
from chain.records import JobStatus, Outcome
from chain.train.bodies import PostJob, VoteCommit
from chain.train.holdout.bodies import (
    HoldoutPublish,
    HoldoutReveal,
    HoldoutVoteReveal,
    holdout_vote_commitment,
)
from chain.train.holdout.records import HoldoutStatus
from chain.train.holdout.rules import min_deposit
from chain.train.holdout.split import split_seed
from chain.types import Amount, Hash32, TimeMs
from tests.ledger.harness import GENESIS_TIME, Chain, job_spec

PUBLIC = DataRef(Hash32(b"\x21" * 32), 1000)
HIDDEN = DataRef(Hash32(b"\x22" * 32), 1000)
VOTERS = ("v0", "carol", "dave", "erin")
DEPOSIT = 50


def v3_spec(*, finalists: int = 2, deposit: int = DEPOSIT, tie: float = 0.02,
            max_turns: int = 3, reveal_window_ms: int = 5_000) -> JobSpec:
    base = job_spec(max_turns=max_turns, expiry_ms=GENESIS_TIME + 20_000)
    return dataclasses.replace(
        base, kind=TRAIN_V3, data=(("train", DataRef(Hash32(b"\x20" * 32), 500)),),
        holdout=Holdout(Hash32(b"\x23" * 32), 10, 500, finalists, Amount(deposit),
                        reveal_window_ms, tie))


def post(chain: Chain, spec: JobSpec | None = None) -> bytes:
    tx = chain.tx("submitter", PostJob(spec or v3_spec()))
    chain.block(tx)
    return tx.hash


def publish(chain: Chain, job_id: bytes) -> None:
    chain.block()  # the block at posted_height + 1 whose hash draws the split
    chain.block(chain.tx("submitter", HoldoutPublish(Hash32(job_id), PUBLIC)))


def to_holdout_window(chain: Chain, job_id: bytes) -> None:
    chain.block(at=chain.job(job_id).spec.expiry_ms)
    assert chain.job(job_id).status == JobStatus.HOLDOUT


Vote = tuple[bool, float | None, bool, float | None]


def holdout_round(chain: Chain, job_id: bytes, claimer: str,
                  votes: dict[str, Vote] | Vote) -> None:
    """Every listed voter (or, given one vote, every eligible voter) commits a holdout vote,
    then opens it [HOLDOUT-VOTE.1]."""
    if isinstance(votes, tuple):
        names = {chain.addr(n): n for n in chain.keys}
        votes = {names[a]: votes for a in chain.job(job_id).eligible_voters}
    salts = {v: os.urandom(32) for v in votes}
    commits = []
    for voter, (valid, measured, ok, hidden) in votes.items():
        c = holdout_vote_commitment(job_id, chain.addr(claimer), chain.addr(voter), valid,
                                    measured, ok, hidden, salts[voter])
        commits.append(chain.tx(voter, VoteCommit(Hash32(job_id), chain.addr(claimer), c)))
    chain.block(*commits)
    job = chain.job(job_id)
    if job.status == JobStatus.VOTE_COMMIT:
        chain.block(at=job.phase_deadline_ms)
    chain.block(*(chain.tx(v, HoldoutVoteReveal(Hash32(job_id), chain.addr(claimer), valid,
                                                 measured, ok, hidden, salts[v]))
                  for v, (valid, measured, ok, hidden) in votes.items()))


def race(chain: Chain) -> bytes:
    """Posted, split, published; alice claims 0.10 public (overfit), bob 0.20, then expiry."""
    job_id = post(chain)
    publish(chain, job_id)
    chain.block(chain.claim("alice", job_id, 0.10), chain.claim("bob", job_id, 0.20))
    to_holdout_window(chain, job_id)
    return job_id


def honest(hidden: float, public: float) -> Vote:
    return (True, public, True, hidden)


def reward_paid(voters: int = 5) -> int:
    """What one turn pays its voters: the reward split evenly; the rest stays [VOTE-REWARD.1]."""
    return 6 // voters * voters


def test_post_escrows_the_deposit_and_creates_the_holdout_record() -> None:
    """[HOLDOUT-DEPOSIT.1] [HOLDOUT-STATE.1] [HOLDOUT-POST.1] The deposit is escrowed with
    the bounty; the record starts committed with no seed."""
    chain = Chain()
    before = chain.balance("submitter")
    job_id = post(chain)
    spec = v3_spec()
    assert spec.escrow == spec.bounty + 6 * 3 + DEPOSIT
    assert chain.balance("submitter") == before - spec.escrow
    state = chain.state.holdout(job_id)
    assert state is not None and state.seed is None and state.status == HoldoutStatus.COMMITTED
    assert chain.state.total_credits() == chain.state.supply  # [BANK.1]


def test_post_refuses_more_finalists_than_turns_and_short_windows() -> None:
    """[HOLDOUT-POST.1] finalists <= max_turns; the reveal window obeys min_window_ms."""
    chain = Chain()
    assert chain.reject(chain.tx("submitter", PostJob(v3_spec(finalists=4)))) == \
        "too_many_finalists"
    assert chain.reject(chain.tx("submitter", PostJob(v3_spec(reveal_window_ms=10)))) == \
        "window_too_short"


def test_post_refuses_a_deposit_a_forfeit_could_pay_for() -> None:
    """[HOLDOUT-POST.1] [THREAT-HOLDOUT-DEPOSIT.1] The deposit must exceed every voter
    reward the job can pay (voter_reward x max_turns + 1), the most a forfeit can save the
    submitter: one credit less is deposit_too_small, the bound itself is posted."""
    chain = Chain()
    least = 6 * 3 + 1
    assert min_deposit(6, 3) == least
    assert chain.reject(chain.tx("submitter", PostJob(v3_spec(deposit=least - 1)))) == \
        "deposit_too_small"
    base = v3_spec(deposit=36 * 3)  # one short of 36 x 3 + 1
    richer = dataclasses.replace(base, voting=dataclasses.replace(base.voting,
                                                                  voter_reward=Amount(36)))
    assert chain.reject(chain.tx("submitter", PostJob(richer))) == "deposit_too_small"
    job_id = post(chain, v3_spec(deposit=least, finalists=3))
    assert chain.state.holdout(job_id) is not None


def test_spec_bounds_on_the_wire() -> None:
    """[HOLDOUT-SPEC.1] Both parts non-empty; no 'valid' role; tie tolerance >= 0."""
    wire = v3_spec().to_wire()
    assert JobSpec.from_wire(wire) == v3_spec()
    for bad_holdout in ([b"\x23" * 32, 10, 50, 2, 50, 5000, 0.02],   # 0 public samples
                        [b"\x23" * 32, 10, 1000, 2, 50, 5000, 0.02],  # all public
                        [b"\x23" * 32, 1, 500, 2, 50, 5000, 0.02],   # pool of 1
                        [b"\x23" * 32, 10, 500, 2, 0, 5000, 0.02],   # no deposit
                        [b"\x23" * 32, 10, 500, 2, 50, 5000, -0.1]):
        with pytest.raises(DecodeError):
            JobSpec.from_wire([*wire[:13], bad_holdout])
    with pytest.raises(DecodeError, match="no 'valid'"):
        JobSpec.from_wire([*wire[:12], {**wire[12], "valid": [b"\x01" * 32, 5]}, wire[13]])
    with pytest.raises(DecodeError):
        JobSpec.from_wire(wire[:13])  # a train/v3 spec without its holdout


def test_split_is_drawn_from_the_block_after_the_post() -> None:
    """[HOLDOUT-SPLIT.1] The seed appears at posted_height + 2, from block posted+1's hash."""
    chain = Chain()
    job_id = post(chain)
    after_post = chain.block()
    state = chain.state.holdout(job_id)
    assert state is not None and state.seed is None
    chain.block()
    state = chain.state.holdout(job_id)
    assert state is not None and state.seed == split_seed(job_id, after_post.hash)


def test_publish_rules() -> None:
    """[HOLDOUT-PUBLISH.1] The submitter, after the split, before expiry, once."""
    chain = Chain()
    job_id = post(chain)
    assert chain.reject(chain.tx("submitter", HoldoutPublish(Hash32(job_id), PUBLIC))) == \
        "split_not_drawn"
    chain.block()
    assert chain.reject(chain.tx("alice", HoldoutPublish(Hash32(job_id), PUBLIC))) == \
        "not_submitter"
    chain.block(chain.tx("submitter", HoldoutPublish(Hash32(job_id), PUBLIC)))
    assert chain.reject(chain.tx("submitter", HoldoutPublish(Hash32(job_id), PUBLIC))) == \
        "already_published"
    v1 = chain.tx("submitter", PostJob(job_spec(expiry_ms=GENESIS_TIME + 30_000)))
    chain.block(v1)
    assert chain.reject(chain.tx("submitter", HoldoutPublish(Hash32(v1.hash), PUBLIC))) == \
        "not_holdout_job"
    late = chain.tx("submitter", HoldoutPublish(Hash32(job_id), PUBLIC))
    assert chain.reject(late, at=v3_spec().expiry_ms) in ("job_not_open", "already_published")


def test_no_public_part_by_expiry_burns_the_deposit_and_refunds() -> None:
    """[HOLDOUT-EXPIRY.1] [HOLDOUT-FORFEIT.1] Unpublished: deposit burned, the rest back."""
    chain = Chain()
    before = chain.balance("submitter")
    job_id = post(chain)
    chain.block(chain.claim("alice", job_id, 0.1))
    chain.block(at=v3_spec().expiry_ms)
    assert chain.job(job_id).status == JobStatus.REFUNDED
    holdout = chain.state.holdout(job_id)
    assert holdout is not None and holdout.status == HoldoutStatus.UNPUBLISHED
    assert chain.balance("submitter") == before - DEPOSIT
    assert chain.state.burned == DEPOSIT


def test_the_model_that_generalises_wins_over_the_best_public_loss() -> None:
    """[HOLDOUT-REVEAL.1] [HOLDOUT-VOTE.1] [HOLDOUT-FINALIST.1] [HOLDOUT-WINNER.1] alice has the
    best public loss but overfits; bob's hidden loss is lower: bob is paid, the deposit
    returns, and every voter that agreed is paid per turn."""
    chain = Chain()
    before = chain.balance("submitter")
    job_id = race(chain)
    assert chain.reject(chain.tx("alice", HoldoutReveal(Hash32(job_id), HIDDEN))) == \
        "not_submitter"
    chain.block(chain.tx("submitter", HoldoutReveal(Hash32(job_id), HIDDEN)))
    holdout = chain.state.holdout(job_id)
    assert holdout is not None and holdout.status == HoldoutStatus.REVEALED
    assert chain.job(job_id).status == JobStatus.REVEAL and \
        chain.job(job_id).current == chain.addr("alice")
    chain.block(chain.reveal("alice", job_id))
    holdout_round(chain, job_id, "alice", honest(hidden=0.90, public=0.10))
    holdout = chain.state.holdout(job_id)
    assert holdout is not None and holdout.status == HoldoutStatus.VERIFIED
    assert [(f.claimer, f.hidden_loss) for f in holdout.finalists] == [(chain.addr("alice"), 0.9)]
    assert chain.job(job_id).current == chain.addr("bob")  # K = 2: the next finalist
    chain.block(chain.reveal("bob", job_id))
    holdout_round(chain, job_id, "bob", honest(hidden=0.25, public=0.20))
    job = chain.job(job_id)
    assert job.status == JobStatus.PAID and job.winner == chain.addr("bob")
    assert chain.balance("submitter") == before - 100 - 2 * reward_paid()  # deposit back
    assert chain.state.total_credits() == chain.state.supply  # [BANK.1]


def test_hidden_losses_within_the_tie_tolerance_go_to_the_earlier_claim() -> None:
    """[HOLDOUT-WINNER.1] alice 0.26, bob 0.25, tolerance 0.02: tied, alice claimed first."""
    chain = Chain()
    job_id = race(chain)
    chain.block(chain.tx("submitter", HoldoutReveal(Hash32(job_id), HIDDEN)))
    chain.block(chain.reveal("alice", job_id))
    holdout_round(chain, job_id, "alice", honest(hidden=0.26, public=0.10))
    chain.block(chain.reveal("bob", job_id))
    holdout_round(chain, job_id, "bob", honest(hidden=0.25, public=0.20))
    assert chain.job(job_id).winner == chain.addr("alice")


def test_withholding_the_hidden_part_burns_the_deposit_and_pays_the_public_ranking() -> None:
    """[HOLDOUT-FORFEIT.1] No reveal in the window: deposit burned, turns run as train/v2
    (plain votes), the best public claim that is valid is paid. Withholding never saves:
    the submitter pays the bounty and loses the deposit too."""
    chain = Chain()
    before = chain.balance("submitter")
    job_id = race(chain)
    chain.block(at=chain.job(job_id).phase_deadline_ms)
    holdout = chain.state.holdout(job_id)
    assert holdout is not None and holdout.status == HoldoutStatus.WITHHELD
    chain.block(chain.reveal("alice", job_id))
    chain.vote_round(job_id, "alice", {v: (True, 0.10) for v in (*VOTERS, "bob")})
    job = chain.job(job_id)
    assert job.status == JobStatus.PAID and job.winner == chain.addr("alice")
    assert chain.balance("submitter") == before - 100 - reward_paid() - DEPOSIT
    assert chain.state.burned == DEPOSIT


def test_a_hidden_part_the_voters_reject_burns_the_deposit() -> None:
    """[HOLDOUT-JUDGE.1] A supermajority says the hidden part does not match its root:
    deposit burned, and the valid claim is paid on the public ranking at once."""
    chain = Chain()
    job_id = race(chain)
    chain.block(chain.tx("submitter", HoldoutReveal(Hash32(job_id), HIDDEN)))
    chain.block(chain.reveal("alice", job_id))
    holdout_round(chain, job_id, "alice", (True, 0.10, False, None))
    holdout = chain.state.holdout(job_id)
    assert holdout is not None and holdout.status == HoldoutStatus.REJECTED
    job = chain.job(job_id)
    assert job.status == JobStatus.PAID and job.winner == chain.addr("alice")
    assert chain.state.burned == DEPOSIT


def test_a_lie_about_the_public_loss_is_still_banned() -> None:
    """[HOLDOUT-VOTE.1] [JOB-BAN.1] alice claimed 0.10, the voters measure 0.50: cheat,
    banned; bob's turn follows and he is the only finalist, paid when turns run out."""
    chain = Chain()
    job_id = race(chain)
    chain.block(chain.tx("submitter", HoldoutReveal(Hash32(job_id), HIDDEN)))
    chain.block(chain.reveal("alice", job_id))
    holdout_round(chain, job_id, "alice", (False, 0.50, True, 0.9))
    job = chain.job(job_id)
    assert job.verdicts[-1].outcome == Outcome.CHEAT
    assert chain.state.account(chain.addr("alice")).banned
    chain.block(chain.reveal("bob", job_id))
    holdout_round(chain, job_id, "bob", honest(hidden=0.25, public=0.20))
    job = chain.job(job_id)
    assert job.status == JobStatus.PAID and job.winner == chain.addr("bob")


def test_hidden_losses_that_do_not_reproduce_break_the_job() -> None:
    """[HOLDOUT-AGREE.1] [JOB-BROKEN.1] Voters accept the part but measure hidden losses
    beyond the tolerance of each other: the evaluation is the submitter's fault."""
    chain = Chain()
    job_id = race(chain)
    chain.block(chain.tx("submitter", HoldoutReveal(Hash32(job_id), HIDDEN)))
    chain.block(chain.reveal("alice", job_id))
    spread = {v: (True, 0.10, True, 0.2 + 0.1 * i) for i, v in enumerate((*VOTERS, "bob"))}
    holdout_round(chain, job_id, "alice", spread)
    job = chain.job(job_id)
    assert job.status == JobStatus.BROKEN and job.winner == chain.addr("alice")


def test_vote_forms_and_consistency() -> None:
    """[HOLDOUT-VOTE.1] A live turn takes only holdout votes; a plain turn only plain ones;
    a vote that found the part bad has no hidden loss."""
    chain = Chain()
    job_id = race(chain)
    chain.block(chain.tx("submitter", HoldoutReveal(Hash32(job_id), HIDDEN)))
    chain.block(chain.reveal("alice", job_id))
    salt = os.urandom(32)
    alice, carol = chain.addr("alice"), chain.addr("carol")
    bad = holdout_vote_commitment(job_id, alice, carol, True, 0.1, False, 0.3, salt)
    chain.block(chain.tx("carol", VoteCommit(Hash32(job_id), alice, bad)),
                chain.vote_commit("dave", job_id, "alice", True, 0.1))
    chain.block(at=chain.job(job_id).phase_deadline_ms)
    assert chain.reject(chain.tx("carol", HoldoutVoteReveal(
        Hash32(job_id), alice, True, 0.1, False, 0.3, salt))) == "vote_inconsistent"
    assert chain.reject(chain.vote_reveal("dave", job_id, "alice", True, 0.1)) == \
        "holdout_vote_required"
    v1 = chain.tx("submitter", PostJob(job_spec(expiry_ms=chain.now + 5_000)))
    chain.block(v1)
    assert chain.reject(chain.tx("carol", HoldoutVoteReveal(
        Hash32(v1.hash), alice, True, 0.1, True, 0.3, salt))) in (
        "not_in_vote_reveal_phase", "not_holdout_vote")


def test_reveal_only_in_the_holdout_window() -> None:
    """[HOLDOUT-REVEAL.1] Before expiry or after the window: not_in_holdout_phase."""
    chain = Chain()
    job_id = post(chain)
    publish(chain, job_id)
    reveal = chain.tx("submitter", HoldoutReveal(Hash32(job_id), HIDDEN))
    assert chain.reject(reveal) == "not_in_holdout_phase"
    chain.block(chain.claim("alice", job_id, 0.1))
    to_holdout_window(chain, job_id)
    late = chain.tx("submitter", HoldoutReveal(Hash32(job_id), HIDDEN))
    assert chain.reject(late, at=TimeMs(chain.job(job_id).phase_deadline_ms)) == \
        "not_in_holdout_phase"


def test_hidden_part_size_keeps_sampling_noise_inside_the_tie_tolerance() -> None:
    """[HOLDOUT-SIZE.1] Two equally good models judged on m = min_hidden_samples hidden
    samples (independent per-sample losses of spread σ, the worst case) differ by more than
    the tie tolerance in about 5 % of draws, and much more often on a quarter of m."""
    import random

    from chain.train.holdout.split import min_hidden_samples

    rng = random.Random(16)
    sigma, tie = 0.083, 0.05
    m = min_hidden_samples(sigma, tie)
    assert m == 23

    def beyond_tie(samples: int) -> float:
        trials = 2000
        hits = 0
        for _ in range(trials):
            a = sum(rng.gauss(0.3, sigma) for _ in range(samples)) / samples
            b = sum(rng.gauss(0.3, sigma) for _ in range(samples)) / samples
            hits += abs(a - b) > tie
        return hits / trials

    assert beyond_tie(m) <= 0.08
    assert beyond_tie(max(1, m // 4)) >= 0.15
    assert min_hidden_samples(0.35, 0.05) == 392  # one example per sample: shards help


def test_a_finalist_that_never_reveals_forfeits_its_turn_and_the_next_claim_is_judged() -> None:
    """[HOLDOUT-FINALIST.1] [JOB-REVEAL.1] alice (best public claim) never reveals: her turn is
    forfeited, not counted; bob's turn follows, he is the only finalist and, with no turn
    left, the winner [HOLDOUT-WINNER.1]; the deposit returns."""
    chain = Chain()
    before = chain.balance("submitter")
    job_id = race(chain)
    chain.block(chain.tx("submitter", HoldoutReveal(Hash32(job_id), HIDDEN)))
    chain.block(at=chain.job(job_id).phase_deadline_ms)  # alice's reveal window ends
    job = chain.job(job_id)
    assert job.verdicts[-1].outcome == Outcome.FORFEIT and job.current == chain.addr("bob")
    chain.block(chain.reveal("bob", job_id))
    holdout_round(chain, job_id, "bob", honest(hidden=0.25, public=0.20))
    job = chain.job(job_id)
    assert job.status == JobStatus.PAID and job.winner == chain.addr("bob")
    holdout = chain.state.holdout(job_id)
    assert holdout is not None and [f.claimer for f in holdout.finalists] == [chain.addr("bob")]
    assert chain.balance("submitter") == before - 100 - reward_paid()
    assert not chain.state.account(chain.addr("alice")).banned


def test_the_submitter_cannot_pick_the_split() -> None:
    """[HOLDOUT-SPLIT.1] The same signed post, followed by two different next blocks (any
    other member's transaction changes its hash), gets two different splits: the seed
    comes from a block that did not exist when the post was signed."""
    from chain.train.holdout.split import public_indices
    from chain.transactions import Transfer

    splits = []
    for other in (None, "alice"):
        chain = Chain()
        job_id = post(chain)
        if other is None:
            chain.block()
        else:
            chain.block(chain.tx(other, Transfer(chain.addr("bob"), Amount(1))))
        chain.block()
        holdout = chain.state.holdout(job_id)
        assert holdout is not None and holdout.seed is not None
        splits.append((job_id, holdout.seed, public_indices(holdout.seed, 10, 500)))
    (job_a, seed_a, public_a), (job_b, seed_b, public_b) = splits
    assert job_a == job_b and seed_a != seed_b
    # and over many possible next blocks, every sample is sometimes public, sometimes hidden
    seen: dict[int, set[int]] = {i: set() for i in range(10)}
    for k in range(64):
        for i in public_indices(split_seed(job_a, bytes([k]) * 32), 10, 500):
            seen[i].add(k)
    assert all(0 < len(v) < 64 for v in seen.values())
