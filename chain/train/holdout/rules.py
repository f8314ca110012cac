"""Hidden test sets (train/v3): the ledger's part [HOLDOUT-*].

The split, the public part's publication, the deposit's forfeit, how a turn's
holdout votes judge the hidden part and measure the finalist, and which
finalist wins. What needs the turn machinery (reveals, votes, the verdict) is
in ``chain.train.holdout.tx`` and ``chain.train.rules``; this module never imports
them, so it stays small and the arithmetic runs alone in property tests.
See protocol_spec/ledger.md §5b for the rules and their reasons.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from chain.context import TxContext
from chain.errors import InvalidTransaction
from chain.jobspec import TRAIN_V3, Holdout
from chain.records import Job, JobStatus, Outcome, VoteRecord
from chain.state import Overlay
from chain.train.challenge import ChallengeAnswer, challenge_centre, challenge_group
from chain.train.holdout.bodies import HoldoutPublish
from chain.train.holdout.records import Finalist, HoldoutState, HoldoutStatus
from chain.train.holdout.split import split_seed
from chain.train.verdict import agreement, voter_votes
from chain.types import Address, Amount, Hash32, Height, TimeMs

SPLIT_DELAY = 2
"""[HOLDOUT-SPLIT.1] The seed is drawn in the block at ``posted_height + 2`` from its
parent's hash: a block the submitter's post could not see."""


def holdout_of(job: Job) -> Holdout | None:
    return job.spec.holdout if job.spec.kind == TRAIN_V3 else None


def require_holdout(view: Overlay, job: Job) -> tuple[Holdout, HoldoutState]:
    """The job's holdout spec and record, or ``not_holdout_job``."""
    spec = holdout_of(job)
    state = view.holdout(job.job_id)
    if spec is None or state is None:
        raise InvalidTransaction("not_holdout_job", f"job {job.job_id.hex()} is {job.spec.kind}, "
                                                    "not a train/v3 job with a hidden test set")
    return spec, state


# --- post, split, publish ------------------------------------------------------------------

def min_deposit(voter_reward: int, max_turns: int) -> int:
    """[HOLDOUT-POST.1] The smallest deposit: one more than every voter reward the job can
    pay. A forfeit can at most save the submitter the rewards of turns that do not run, which
    are never more than ``voter_reward x max_turns``, so forfeiting always costs more than it
    saves ([THREAT-HOLDOUT-DEPOSIT.1])."""
    return voter_reward * max_turns + 1


def check_post(view: Overlay, job_spec: Holdout, max_turns: int, voter_reward: int) -> None:
    """[HOLDOUT-POST.1] What posting a train/v3 job adds to [JOB-POST.1]."""
    least = min_deposit(voter_reward, max_turns)
    if job_spec.deposit < least:
        raise InvalidTransaction("deposit_too_small",
                                 f"the deposit must be >= voter_reward x max_turns + 1 = "
                                 f"{voter_reward} x {max_turns} + 1 = {least} "
                                 f"(is {job_spec.deposit})")
    if job_spec.finalists > max_turns:
        raise InvalidTransaction("too_many_finalists", f"finalists ({job_spec.finalists}) must "
                                                       f"be <= the job's max_turns ({max_turns})")
    if job_spec.reveal_window_ms < view.params.min_window_ms:
        raise InvalidTransaction("window_too_short",
                                 f"every window must be >= {view.params.min_window_ms} ms "
                                 f"(holdout reveal window is {job_spec.reveal_window_ms} ms)")


def draw_splits(view: Overlay, parent_hash: Hash32, height: Height) -> None:
    """[HOLDOUT-SPLIT.1] At height ``posted_height + 2`` each train/v3 job's seed is drawn
    from the hash of the block at ``posted_height + 1`` (this block's parent)."""
    for job in list(view.iter_active_jobs()):
        state = view.holdout(job.job_id)
        if state is None or state.seed is not None or height < job.posted_height + SPLIT_DELAY:
            continue
        view.put("holdout", job.job_id, replace(state, seed=split_seed(job.job_id, parent_hash)))


def apply_holdout_publish(view: Overlay, sender: Address, body: HoldoutPublish,
                          ctx: TxContext) -> None:
    """[HOLDOUT-PUBLISH.1] Before expiry, once the split is drawn, the submitter names its
    public part; once. The ledger checks the form; workers check the content."""
    job = view.job(body.job_id)
    if job is None:
        raise InvalidTransaction("unknown_job", f"no job {body.job_id.hex()}")
    _, state = require_holdout(view, job)
    if sender != job.submitter:
        raise InvalidTransaction("not_submitter", "only the job's submitter publishes its parts")
    if job.status != JobStatus.OPEN or ctx.time_ms >= job.spec.expiry_ms:
        raise InvalidTransaction("job_not_open", "the public part is published before expiry")
    if state.seed is None:
        raise InvalidTransaction("split_not_drawn", f"the split is drawn at height "
                                                    f"{job.posted_height + SPLIT_DELAY}; publish "
                                                    "after it")
    if state.public is not None:
        raise InvalidTransaction("already_published", "the public part is already named")
    view.put("holdout", job.job_id, replace(state, public=body.part))


def forfeit_deposit(view: Overlay, job: Job, state: HoldoutState,
                    status: HoldoutStatus) -> Job:
    """[HOLDOUT-FORFEIT.1] The submitter failed a duty: the deposit leaves escrow, burned.

    Burned, not paid to anyone, so that no worker or voter gains from a submitter's failure
    (and none has a motive to call a good hidden part bad)."""
    spec = holdout_of(job)
    if spec is None:
        raise ValueError("only a train/v3 job has a deposit")
    view.add_burned(spec.deposit)
    view.put("holdout", job.job_id, replace(state, status=status))
    return replace(job, escrow=Amount(job.escrow - spec.deposit))


def expiry_status(state: HoldoutState, has_claims: bool) -> HoldoutStatus | JobStatus:
    """[HOLDOUT-EXPIRY.1] At expiry: no public part named → UNPUBLISHED (deposit burned,
    refund); no claims → REFUNDED; else the job waits for the hidden part (HOLDOUT)."""
    if state.public is None:
        return HoldoutStatus.UNPUBLISHED
    if not has_claims:
        return JobStatus.REFUNDED
    return JobStatus.HOLDOUT


def holdout_deadline(job: Job, now: TimeMs) -> TimeMs:
    spec = holdout_of(job)
    if spec is None:
        raise ValueError("only a train/v3 job has a holdout window")
    return TimeMs(now + spec.reveal_window_ms)


# --- votes and the turn's judgement -------------------------------------------------------

def holdout_vote_is_consistent(holdout_ok: bool, hidden_loss: float | None) -> bool:
    """[HOLDOUT-VOTE.1] A vote that found the hidden part bad measures no hidden loss."""
    return holdout_ok or hidden_loss is None


def hidden_answer_is_consistent(hidden_loss: float | None,
                                hidden_challenge_loss: float | None) -> bool:
    """[HOLDOUT-CHALLENGE.1] The hidden challenge is answered by the run that measures the
    hidden loss: a vote without a hidden loss (a bad part, a model that cannot be evaluated
    on it) has no answer either."""
    return hidden_challenge_loss is None or hidden_loss is not None


def reward_answers(job: Job, state: HoldoutState, outcome: Outcome,
                   agreeing_valid: bool | None) -> list[ChallengeAnswer]:
    """[HOLDOUT-VOTE-REWARD.1] The opened voter votes of a live turn as the reward rule
    (``chain.train.challenge.turn_rewards``) sees them: answer-less, with ``agrees`` true
    exactly for the voters to pay, so that rule splits the pool among them.

    No vote carries an answer: [VOTE-REWARD.1] as before the rule (old chains replay
    unchanged). Otherwise the agreeing voters are filtered: when this turn's votes reject
    the hidden part, to those that found it bad (a bad part has no answers to group;
    checking it is the work), else by [VOTE-REWARD.2] over the hidden answers; and, when
    any vote carries one, by [VOTE-REWARD.2] over the public answers. A hidden loss reported
    without evaluating the hidden part, or a vote that evaluated nothing
    ([THREAT-HOLDOUT-REWARD.1]), lands outside the honest answers' group."""
    votes = voter_votes(job)  # [VOTE-FAILED.5] agreement by the ``valid`` flag alone
    agreeing = {v.voter for v in votes if agreeing_valid is None or v.valid == agreeing_valid}
    hidden = any(v.hidden_challenge_loss is not None for v in votes)
    public = any(v.challenge_loss is not None for v in votes)
    if hidden or public:
        sm, tol = job.spec.voting.supermajority_permille, job.spec.loss_tolerance
        if judge(job, state, outcome).status == HoldoutStatus.REJECTED:
            agreeing &= {v.voter for v in votes if v.holdout_ok is False}
        elif hidden:
            agreeing &= answered_in_group(
                [ChallengeAnswer(v.voter, True, v.hidden_challenge_loss) for v in votes], tol, sm)
        if public:
            agreeing &= answered_in_group(
                [ChallengeAnswer(v.voter, True, v.challenge_loss) for v in votes], tol, sm)
    return [ChallengeAnswer(v.voter, v.voter in agreeing, None) for v in votes]


def answered_in_group(answers: list[ChallengeAnswer], tolerance: float,
                      supermajority_permille: int) -> set[Address]:
    """[VOTE-REWARD.2]'s test alone: the voters whose answer lies within ``tolerance`` of the
    lower median of the largest group of answers, if that group holds a supermajority of
    the opened votes; else nobody."""
    group = set(challenge_group(answers, tolerance))
    if not group or len(group) * 1000 < supermajority_permille * len(answers):
        return set()
    centre = challenge_centre(answers, group)
    return {a.voter for a in answers if a.loss is not None and abs(a.loss - centre) <= tolerance}


@dataclass(frozen=True, slots=True)
class HoldoutJudgement:
    """What one turn's opened holdout votes say [HOLDOUT-JUDGE.1] [HOLDOUT-AGREE.1]."""

    status: HoldoutStatus
    """The hidden part's status after this turn."""
    hidden_loss: float | None
    """The agreed hidden loss of the claimer's model, or None."""
    hidden_agreed: bool
    """False when the voters that accepted the hidden part measured it too differently."""


def judge(job: Job, state: HoldoutState, outcome: Outcome) -> HoldoutJudgement:
    """[HOLDOUT-JUDGE.1] With R opened voter votes, of which B found the hidden part bad:
    B × 1000 ≥ supermajority × R → REJECTED; R − B ≥ the same → VERIFIED; else unchanged.
    No quorum judges nothing. [HOLDOUT-AGREE.1] The hidden losses of the votes that accepted
    the part agree as measured losses do [VOTE-AGREE.1]; the agreed loss counts only when
    the part is VERIFIED."""
    votes = voter_votes(job)
    sm = job.spec.voting.supermajority_permille
    status = state.status
    if outcome != Outcome.NO_QUORUM and votes:
        bad = sum(1 for v in votes if not v.holdout_ok)
        if bad * 1000 >= sm * len(votes):
            status = HoldoutStatus.REJECTED
        elif (len(votes) - bad) * 1000 >= sm * len(votes):
            status = HoldoutStatus.VERIFIED
    accepted = [VoteRecord(v.voter, v.commitment, True, v.valid, v.hidden_loss)
                for v in votes if v.holdout_ok]
    if not accepted or status != HoldoutStatus.VERIFIED:
        return HoldoutJudgement(status, None, True)
    agreed = agreement(accepted, job.spec.loss_tolerance)
    consistent = agreed.size * 1000 >= sm * len(accepted)
    return HoldoutJudgement(status, agreed.verified_loss if consistent else None, consistent)


def add_finalist(view: Overlay, job: Job, state: HoldoutState, claimer: Address,
                 hidden_loss: float | None) -> HoldoutState:
    """[HOLDOUT-FINALIST.1] A claim voted valid while the hidden part is live joins the
    finalists with its agreed hidden loss."""
    claim = job.claim_of(claimer)
    if claim is None:
        raise ValueError("a finalist has a claim")
    new = replace(state, finalists=(*state.finalists,
                                    Finalist(claimer, hidden_loss, claim.height, claim.index)))
    view.put("holdout", job.job_id, new)
    return new


def fills_slot(job: Job, finalist: Finalist) -> bool:
    """[HOLDOUT-SLOT.1] A finalist uses up one of the K slots unless its agreed hidden loss
    exceeds its claimed public loss by more than ``tie_tolerance + loss_tolerance``
    (IEEE-754 ``hidden - claimed > tie + tolerance``). Such a model did not generalise as
    claimed, so the turns go on to the claims behind it ([THREAT-HOLDOUT-CROWD.1]); it
    stays a finalist and can still win. A finalist without a hidden loss fills its slot."""
    spec = holdout_of(job)
    claim = job.claim_of(finalist.claimer)
    if spec is None or claim is None or finalist.hidden_loss is None:
        return True
    return finalist.hidden_loss - claim.loss <= spec.tie_tolerance + job.spec.loss_tolerance


def slots_filled(job: Job, state: HoldoutState) -> int:
    """[HOLDOUT-SLOT.1] How many of the K finalist slots the finalists so far use up."""
    return sum(1 for f in state.finalists if fills_slot(job, f))


def choose_winner(state: HoldoutState, tie_tolerance: float) -> Finalist | None:
    """[HOLDOUT-WINNER.1] With the hidden part VERIFIED: the finalists whose hidden loss is
    within ``tie_tolerance`` of the lowest (IEEE-754 ``x - best <= tie_tolerance``) are tied,
    and the earliest claim (height, index) among them wins; finalists without an agreed
    hidden loss rank after every measured one. Otherwise the public ranking: the first
    finalist (turns run in public rank order)."""
    if not state.finalists:
        return None
    measured = [f for f in state.finalists if f.hidden_loss is not None]
    if state.status != HoldoutStatus.VERIFIED or not measured:
        return state.finalists[0]
    best = min(f.hidden_loss for f in measured if f.hidden_loss is not None)
    tied = [f for f in measured if f.hidden_loss is not None
            and f.hidden_loss - best <= tie_tolerance]
    return min(tied, key=lambda f: (f.height, f.index))
