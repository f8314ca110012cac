"""The job lifecycle [JOB-*]: post, claim, reveal, hidden votes, verdict, payment.

Each transaction handler checks every rule before it writes; the block
``tick`` moves jobs through their windows by block time. See
protocol_spec/ledger.md §Jobs for the rules and the reasons behind them.
"""

from __future__ import annotations

from dataclasses import replace

from chain.context import TxContext
from chain.crypto import address_to_text
from chain.errors import InvalidTransaction
from chain.penalties import ban, forfeit_no_shows
from chain.records import Claim, Job, JobStatus, Outcome, Verdict, VoteRecord
from chain.state import Overlay
from chain.train.bodies import (
    ClaimLoss,
    PostJob,
    RevealModel,
    VoteCommit,
    VoteReveal,
    model_commitment,
    vote_commitment,
)
from chain.train.challenge import ChallengeAnswer, turn_rewards
from chain.train.holdout import rules as holdout_rules
from chain.train.holdout.records import HoldoutState, HoldoutStatus
from chain.train.verdict import unpaid_ending, verdict_of, voter_votes
from chain.types import Address, Amount, Hash32, Height, TimeMs

MAX_QUORUM_PERMILLE = 667
"""[JOB-POST.1] The largest quorum a job may ask for: blocking it must take more than a third
of the eligible voters, the bound consensus and the verdict rules already assume
([THREAT-QUORUM.1]: at 1000 one withholding verifier refunds every turn)."""
MAX_SUPERMAJORITY_PERMILLE = 667
"""[JOB-POST.1] The largest supermajority a job may ask for, for the same reason: at 1000 one
colluding vote makes every turn inconsistent."""


def _reject(code: str, message: str) -> InvalidTransaction:
    return InvalidTransaction(code, message)


def _require_job(view: Overlay, job_id: Hash32) -> Job:
    job = view.job(job_id)
    if job is None:
        raise _reject("unknown_job", f"no job {job_id.hex()}")
    return job


def _require_member(view: Overlay, address: Address, what: str) -> None:
    if not view.is_member(address):
        raise _reject("not_member", f"{address_to_text(address)} is not an admitted member; "
                                    f"only members may {what}")


# --- post ------------------------------------------------------------------------------

def apply_post_job(view: Overlay, sender: Address, body: PostJob, ctx: TxContext) -> None:
    """[JOB-POST.1] A member posts a job; its escrow leaves its balance in this block."""
    _require_member(view, sender, "post jobs")
    spec, params = body.spec, view.params
    duration = spec.expiry_ms - ctx.time_ms
    if duration < params.min_job_duration_ms:
        raise _reject("expiry_too_soon", f"expiry must be at least {params.min_job_duration_ms} "
                                         f"ms after the block time (is {duration} ms)")
    if duration > params.max_job_duration_ms:
        raise _reject("expiry_too_far", f"expiry at most {params.max_job_duration_ms} ms ahead")
    v = spec.voting
    if min(v.reveal_window_ms, v.commit_window_ms, v.vote_reveal_window_ms) < params.min_window_ms:
        raise _reject("window_too_short", f"every window must be >= {params.min_window_ms} ms")
    if v.quorum_permille < params.min_quorum_permille:
        raise _reject("quorum_too_low", f"quorum must be >= {params.min_quorum_permille} permille")
    if v.quorum_permille > MAX_QUORUM_PERMILLE:
        raise _reject("quorum_too_high", f"quorum must be <= {MAX_QUORUM_PERMILLE} permille "
                                         f"(is {v.quorum_permille})")
    if v.supermajority_permille < params.min_supermajority_permille:
        raise _reject("supermajority_too_low",
                      f"supermajority must be >= {params.min_supermajority_permille} permille")
    if v.supermajority_permille > MAX_SUPERMAJORITY_PERMILLE:
        raise _reject("supermajority_too_high",
                      f"supermajority must be <= {MAX_SUPERMAJORITY_PERMILLE} permille "
                      f"(is {v.supermajority_permille})")
    if v.max_turns > params.max_turns:
        raise _reject("too_many_turns", f"max_turns must be <= {params.max_turns}")
    if spec.holdout is not None:
        holdout_rules.check_post(view, spec.holdout, v.max_turns, v.voter_reward)
    account = view.account(sender)
    escrow = spec.escrow
    if account.balance < escrow:
        raise _reject("insufficient_balance",
                      f"posting this job escrows {escrow} credits (bounty {spec.bounty} + "
                      f"voter rewards); the balance is {account.balance}")
    view.put_account(sender, replace(account, balance=Amount(account.balance - escrow)))
    job = Job(job_id=ctx.tx_hash, submitter=sender, spec=spec, posted_height=ctx.height,
              posted_time_ms=ctx.time_ms, status=JobStatus.OPEN, escrow=escrow)
    view.put_job(job)
    view.put("active_job", job.job_id, True)
    if spec.holdout is not None:
        view.put("holdout", job.job_id, HoldoutState())


# --- claim -----------------------------------------------------------------------------

def apply_claim(view: Overlay, sender: Address, body: ClaimLoss, ctx: TxContext) -> None:
    """[JOB-CLAIM.1] Members claim while the job is open; one live claim each, improving."""
    job = _require_job(view, body.job_id)
    _require_member(view, sender, "claim")
    if job.status != JobStatus.OPEN or ctx.time_ms >= job.spec.expiry_ms:
        raise _reject("job_not_open", "claims are accepted only before the job's expiry")
    if sender == job.submitter:
        raise _reject("submitter_cannot_claim", "the submitter cannot claim its own job")
    previous = job.claim_of(sender)
    if previous is not None and not body.loss < previous.loss:
        raise _reject("claim_not_improved", f"a new claim must beat this claimer's previous "
                                            f"loss {previous.loss!r}")
    # A copied commitment is harmless: it binds the original claimer's address, so the
    # copier can never open it and forfeits its turn [THREAT-COPY.1]. Rejecting copies
    # would instead let a front-runner block the honest original.
    claim = Claim(sender, body.loss, body.commitment, ctx.height, ctx.index)
    others = tuple(c for c in job.claims if c.claimer != sender)
    view.put_job(replace(job, claims=(*others, claim)))


# --- reveal ----------------------------------------------------------------------------

def eligible_voters(view: Overlay, job: Job, claimer: Address) -> tuple[Address, ...]:
    """[VOTE-ELIGIBLE.2] Verifiers (members that opted in and bonded [VERIFY-JOIN.1]), not
    banned, not the submitter, not the judged claimer."""
    out = []
    for key in view.keys("verifier"):
        address = Address(key)
        if address in (job.submitter, claimer) or view.account(address).banned:
            continue
        out.append(address)
    return tuple(sorted(out))


def apply_reveal(view: Overlay, sender: Address, body: RevealModel, ctx: TxContext) -> None:
    """[JOB-REVEAL.1] The claimer whose turn it is opens its commitment in the window."""
    job = _require_job(view, body.job_id)
    if job.status != JobStatus.REVEAL:
        raise _reject("not_in_reveal_phase", f"job is {job.status}, not waiting for a reveal")
    if sender != job.current:
        raise _reject("not_your_turn", "only the claimer whose turn it is may reveal")
    if ctx.time_ms >= job.phase_deadline_ms:
        raise _reject("reveal_window_closed", "the reveal window has closed")
    claim = job.claim_of(sender)
    if claim is None:  # cannot happen: current always has a claim
        raise _reject("no_claim", "no claim to reveal")
    if model_commitment(job.job_id, sender, body.model_hash, body.salt) != claim.commitment:
        raise _reject("commitment_mismatch", "model hash and salt do not open the commitment")
    view.put_job(replace(
        job, status=JobStatus.VOTE_COMMIT, model_hash=body.model_hash, votes=(),
        eligible_voters=eligible_voters(view, job, sender),
        phase_deadline_ms=TimeMs(ctx.time_ms + job.spec.voting.commit_window_ms)))


# --- votes -----------------------------------------------------------------------------

def _check_voter(view: Overlay, job: Job, voter: Address, claimer: Address) -> None:
    if claimer != job.current:
        raise _reject("wrong_claim", "votes are only taken on the claim whose turn it is")
    if voter == claimer:
        return  # [VOTE-SELF.1] the claimer measures its own model; never counted or paid
    if voter not in job.eligible_voters:
        if not view.is_member(voter):
            why = "not an admitted member"
        elif voter == job.submitter:
            why = "the submitter does not judge its own job"
        elif view.verifier_bond(voter) is None:
            why = "not a verifier (send verifier_join first) [VOTE-ELIGIBLE.2]"
        else:
            why = "not a verifier when the model was revealed"
        raise _reject("not_eligible_voter", why)


def apply_vote_commit(view: Overlay, sender: Address, body: VoteCommit, ctx: TxContext) -> None:
    """[VOTE-COMMIT.2] Eligible voters commit to a hidden vote while the window is open."""
    job = _require_job(view, body.job_id)
    if job.status != JobStatus.VOTE_COMMIT or ctx.time_ms >= job.phase_deadline_ms:
        raise _reject("not_in_vote_commit_phase", f"job is {job.status}, not taking votes")
    _check_voter(view, job, sender, body.claimer)
    if job.vote_of(sender) is not None:
        raise _reject("already_voted", "this voter already committed a vote on this turn")
    votes = (*job.votes, VoteRecord(sender, body.commitment))
    job = replace(job, votes=votes)
    if len(votes) == len(job.eligible_voters) + 1:  # voters and claimer committed: open now
        job = _open_vote_reveal(job, ctx.time_ms)
    view.put_job(job)


def _open_vote_reveal(job: Job, now: TimeMs) -> Job:
    return replace(job, status=JobStatus.VOTE_REVEAL,
                   phase_deadline_ms=TimeMs(now + job.spec.voting.vote_reveal_window_ms))


def vote_is_consistent(job: Job, valid: bool, measured_loss: float | None) -> bool:
    """[VOTE-CONSISTENT.1] 'valid' means the measured loss is within tolerance of the claim."""
    claim = job.claim_of(job.current) if job.current else None
    if claim is None:
        return False
    expected = measured_loss is not None and measured_loss <= claim.loss + job.spec.loss_tolerance
    return valid == expected


def apply_vote_reveal(view: Overlay, sender: Address, body: VoteReveal, ctx: TxContext) -> None:
    """[VOTE-REVEAL.1] A committed voter opens its vote; all opened: the verdict at once."""
    job, record = open_vote_checks(view, sender, body.job_id, body.claimer, ctx)
    if holdout_live(view, job):
        raise _reject("holdout_vote_required", "this turn's votes open with holdout_vote_reveal: "
                                               "the hidden part is live [HOLDOUT-VOTE.1]")
    expected = vote_commitment(job.job_id, body.claimer, sender, body.valid, body.measured_loss,
                               body.salt, body.challenge_loss)
    if expected != record.commitment:
        raise _reject("vote_commitment_mismatch", "the vote does not open its commitment")
    opened = replace(record, revealed=True, valid=body.valid, measured_loss=body.measured_loss,
                     challenge_loss=body.challenge_loss)
    record_opened_vote(view, job, opened, ctx)


def open_vote_checks(view: Overlay, sender: Address, job_id: Hash32, claimer: Address,
                     ctx: TxContext) -> tuple[Job, VoteRecord]:
    """The checks every vote opening shares [VOTE-REVEAL.1]: phase, voter, commitment held."""
    job = _require_job(view, job_id)
    if job.status != JobStatus.VOTE_REVEAL or ctx.time_ms >= job.phase_deadline_ms:
        raise _reject("not_in_vote_reveal_phase", f"job is {job.status}, not opening votes")
    _check_voter(view, job, sender, claimer)
    record = job.vote_of(sender)
    if record is None:
        raise _reject("no_vote_commitment", "this voter committed no vote on this turn")
    if record.revealed:
        raise _reject("already_revealed", "this vote is already open")
    return job, record


def holdout_live(view: Overlay, job: Job) -> bool:
    """[HOLDOUT-VOTE.1] Whether this turn's votes are holdout votes."""
    state = view.holdout(job.job_id) if job.spec.holdout is not None else None
    return state is not None and state.live


def record_opened_vote(view: Overlay, job: Job, opened: VoteRecord, ctx: TxContext) -> None:
    """[VOTE-CONSISTENT.1] then store the opened vote; all opened: the verdict at once."""
    if not vote_is_consistent(job, opened.valid, opened.measured_loss):
        raise _reject("vote_inconsistent", "'valid' must equal: measured loss <= claimed loss "
                                           "+ tolerance")
    job = replace(job, votes=tuple(opened if v.voter == opened.voter else v for v in job.votes))
    if all(v.revealed for v in job.votes):
        job = decide(view, job, ctx.time_ms, ctx.height)
    view.put_job(job)


# --- turns, verdicts, settlement --------------------------------------------------------

VOTED = (Outcome.VALID, Outcome.NO_QUORUM, Outcome.INCONCLUSIVE, Outcome.INCONSISTENT)
"""Turns that count against ``max_turns`` [JOB-TURN.1]. Forfeits and withdrawals prove
nothing against anyone and do not; cheat verdicts do not either ([THREAT-EXHAUST.1]):
each one bans an admitted member, so they stay bounded by the membership, and sacrificial
cheaters cannot use up the turns of the honest claim behind them. Failed evaluations
[VOTE-FAILED.2] do not either: a claimer that reveals a model the evaluation cannot read
must not use up the turns of the claims behind it, and each claimer has one turn."""


def start_turn(view: Overlay, job: Job, now: TimeMs) -> Job:
    """[JOB-TURN.1] The best claim not yet tried, by a claimer not banned, gets a turn.

    At most ``max_turns`` turns may reach a vote; forfeited, withdrawn and cheat turns
    do not count, so claimers that cannot reveal (copiers) or that lie and insist
    (sacrificial cheaters, each banned) cannot exhaust the turns of honest ones.
    Each claimer has one turn at most, so the number of turns stays bounded.
    """
    if sum(1 for v in job.verdicts if v.outcome in VOTED) < job.spec.voting.max_turns:
        for claim in job.ranked_claims():
            if claim.claimer in job.tried or view.account(claim.claimer).banned:
                continue
            return replace(job, status=JobStatus.REVEAL, current=claim.claimer, model_hash=None,
                           votes=(), eligible_voters=(),
                           phase_deadline_ms=TimeMs(now + job.spec.voting.reveal_window_ms))
    return _finish_without_valid_turn(view, job)


def _finish_without_valid_turn(view: Overlay, job: Job) -> Job:
    """[JOB-TURN.2] No turn paid and none to come (no turn left, or a turn ended ``no quorum``
    or ``inconclusive``): one order for every such ending [VOTE-FAILED.2].

    A train/v3 job with finalists pays its winner first [HOLDOUT-WINNER.1]. Then the best
    withdrawn model that voters agreed on is paid (its claimer not banned); without one, the
    escrow is burned if a turn's evaluation failed on the voters' machines, else refunded.
    A withdrawn claim's model was revealed and measured alike by the voters and its
    claimer; if the submitter could keep such models and its bounty, an evaluation that
    changes after the claims (a time bomb) would buy models for nothing. A turn without
    quorum after such a turn must not hand the escrow back either: the submitter already
    holds the earlier models.
    """
    paid = _pay_finalist(view, job)
    if paid is not None:
        return paid
    banned = frozenset(v.claimer for v in job.verdicts if view.account(v.claimer).banned)
    ending = unpaid_ending(job.verdicts, banned)
    if ending.paid is not None:
        return settle(view, _pay_bounty(view, job, ending.paid.claimer), JobStatus.PAID)
    if ending.status == JobStatus.BROKEN:
        return _burn_escrow(view, job)
    return settle(view, job, JobStatus.REFUNDED)


def _burn_escrow(view: Overlay, job: Job) -> Job:
    """[VOTE-FAILED.2] A job that ends with no turn paid after a turn whose evaluation failed
    on the voters' machines: the submitter holds that turn's revealed model, which nobody
    could be paid for; its escrow is burned, not refunded, and the job is BROKEN."""
    if job.escrow:
        view.add_burned(job.escrow)
    view.delete("active_job", job.job_id)
    return replace(job, status=JobStatus.BROKEN, escrow=Amount(0), current=None,
                   phase_deadline_ms=TimeMs(0))


def _pay_finalist(view: Overlay, job: Job) -> Job | None:
    """[HOLDOUT-WINNER.1] The winner among a train/v3 job's finalists is paid, if any."""
    state = view.holdout(job.job_id) if job.spec.holdout is not None else None
    if state is None or job.spec.holdout is None:
        return None
    winner = holdout_rules.choose_winner(state, job.spec.holdout.tie_tolerance)
    if winner is None or view.account(winner.claimer).banned:
        return None
    return settle(view, _pay_bounty(view, job, winner.claimer), JobStatus.PAID)


def _pay_bounty(view: Overlay, job: Job, claimer: Address) -> Job:
    """The bounty leaves escrow for ``claimer``, who becomes the job's winner."""
    bounty = job.spec.bounty
    account = view.account(claimer)
    view.put_account(claimer, replace(account, balance=Amount(account.balance + bounty)))
    return replace(job, escrow=Amount(job.escrow - bounty), winner=claimer, paid=bounty)


def _end_turn(job: Job, outcome: Outcome, now: TimeMs,
              verified_loss: float | None = None) -> Job:
    """[VOTE-RECORD.1] Appends the turn's Verdict: ``valid_votes`` the opened voter votes with
    ``valid`` true, ``invalid_votes`` every other opened voter vote (evaluation-failed ones
    included [VOTE-FAILED.1]), ``eligible`` E, ``time_ms`` this block's time, the revealed
    ``model_hash`` (None before a reveal [JOB-FORFEIT.1]); the claimer joins ``tried``."""
    if job.current is None:
        raise ValueError("no turn in progress")
    votes = voter_votes(job)
    valid = sum(1 for v in votes if v.valid)
    verdict = Verdict(job.current, outcome, valid, len(votes) - valid,
                      len(job.eligible_voters), now, job.model_hash, verified_loss)
    return replace(job, verdicts=(*job.verdicts, verdict), tried=(*job.tried, job.current))


def decide(view: Overlay, job: Job, now: TimeMs, height: Height) -> Job:
    """Ends the vote [VOTE-VERDICT.2] [VOTE-FAILED.1]: pay, ban and pass the turn, pass the
    turn on a withdrawal or a failed evaluation [VOTE-FAILED.2] (nobody banned, no voter paid: a
    failed vote carries no answer only an evaluation gives), end a broken job, or refund
    on too little evidence. Voters that opened a vote, failed or not, keep their bonds
    [VOTE-NOSHOW.1]."""
    if job.current is None or view.account(job.current).banned:
        # [JOB-FORFEIT.1] (c) banned since its reveal: a forfeit, none of the verdict runs
        # (no voter paid, no no-show's bond burned); the record keeps the votes opened so far
        return start_turn(view, _end_turn(job, Outcome.FORFEIT, now), now)
    outcome, verified_loss = verdict_of(job)
    claimer = job.current
    forfeit_no_shows(view, job)
    if outcome in (Outcome.VALID, Outcome.CHEAT, Outcome.WITHDRAWN):
        job = _pay_voters(view, job, outcome, agreeing_valid=outcome == Outcome.VALID)
    elif outcome == Outcome.INCONSISTENT:
        job = _pay_voters(view, job, outcome, agreeing_valid=None)
    state = view.holdout(job.job_id) if holdout_live(view, job) else None
    job = _end_turn(job, outcome, now, verified_loss)
    if state is not None:
        return _decide_with_holdout(view, job, state, outcome, claimer, now, height)
    if outcome == Outcome.VALID:
        return settle(view, _pay_bounty(view, job, claimer), JobStatus.PAID)
    if outcome == Outcome.CHEAT:
        ban(view, claimer, height)
        return start_turn(view, job, now)
    if outcome in (Outcome.WITHDRAWN, Outcome.EVAL_FAILED):
        return start_turn(view, job, now)  # [JOB-WITHDRAW.1] [VOTE-FAILED.2]
    if outcome == Outcome.INCONSISTENT:
        return _end_broken_job(view, job, claimer)
    # no quorum / inconclusive: no evidence on this turn; the job ends as when no turn is left
    return _finish_without_valid_turn(view, job)


def _decide_with_holdout(view: Overlay, job: Job, state: HoldoutState, outcome: Outcome,
                         claimer: Address, now: TimeMs, height: Height) -> Job:
    """[HOLDOUT-JUDGE.1] A turn of a train/v3 job whose hidden part is live: the votes judge
    the part, a valid claim becomes a finalist with its hidden loss, and the K-th finalist
    (or the last turn) settles the job on the hidden ranking [HOLDOUT-WINNER.1]."""
    judged = holdout_rules.judge(job, state, outcome)
    if judged.status == HoldoutStatus.REJECTED:
        job = holdout_rules.forfeit_deposit(view, job, state, HoldoutStatus.REJECTED)
        state = replace(state, status=HoldoutStatus.REJECTED)
    elif judged.status != state.status:
        state = replace(state, status=judged.status)
        view.put("holdout", job.job_id, state)
    if outcome == Outcome.VALID and not judged.hidden_agreed:
        return _end_broken_job(view, job, claimer)  # [HOLDOUT-AGREE.1] hidden loss irreproducible
    if outcome == Outcome.VALID:
        state = holdout_rules.add_finalist(view, job, state, claimer, judged.hidden_loss)
    if outcome == Outcome.CHEAT:
        ban(view, claimer, height)
    if outcome in (Outcome.NO_QUORUM, Outcome.INCONCLUSIVE):
        return _finish_without_valid_turn(view, job)  # too little evidence: finalists so far
    if outcome == Outcome.INCONSISTENT:
        return _end_broken_job(view, job, claimer)
    if not state.live or holdout_rules.slots_filled(job, state) >= (
            job.spec.holdout.finalists if job.spec.holdout else 1):
        # rejected: public ranking; K slots filled [HOLDOUT-SLOT.1]: hidden ranking
        paid = _pay_finalist(view, job)
        if paid is not None:
            return paid
    return start_turn(view, job, now)


def _end_broken_job(view: Overlay, job: Job, claimer: Address) -> Job:
    """[JOB-BROKEN.1] Voters who followed the contract measured one model differently:
    the job, not the claimer, is at fault. Nobody is banned; the claimer whose model the
    submitter now holds is paid the bounty; nothing returns to the submitter.
    """
    job = _pay_bounty(view, job, claimer)
    if job.escrow:
        view.add_burned(job.escrow)
        job = replace(job, escrow=Amount(0))
    view.delete("active_job", job.job_id)
    return replace(job, status=JobStatus.BROKEN, current=None, phase_deadline_ms=TimeMs(0))


def _pay_voters(view: Overlay, job: Job, outcome: Outcome, *,
                agreeing_valid: bool | None) -> Job:
    """[VOTE-REWARD.2] The turn's voter reward, split evenly among voters who agreed with
    the verdict (on an inconsistent job, every voter that opened a vote) and answered the
    challenge inside the agreeing group; [VOTE-REWARD.1] when no vote carries an answer.
    On a turn whose hidden part is live, the answers are the hidden challenge's
    [HOLDOUT-VOTE-REWARD.1]. The claimer's own vote is never paid, nor a voter banned since.
    [VOTE-FAILED.5] Agreement follows the ``valid`` flag alone: a failed vote (no measured
    loss, ``valid`` false) agrees with cheat and withdrawn verdicts and is paid under
    [VOTE-REWARD.1], under [VOTE-REWARD.2] only with a challenge answer in the group."""
    votes = voter_votes(job)
    state = view.holdout(job.job_id) if holdout_live(view, job) else None
    answers = holdout_rules.reward_answers(job, state, outcome, agreeing_valid) \
        if state is not None else \
        [ChallengeAnswer(r.voter, agreeing_valid is None or r.valid == agreeing_valid,
                         r.challenge_loss) for r in votes]
    banned = frozenset(r.voter for r in votes if view.account(r.voter).banned)
    pool = min(job.spec.voting.voter_reward, _unreserved_escrow(view, job))
    pay = turn_rewards(answers, job.spec.loss_tolerance, job.spec.voting.supermajority_permille,
                       max(0, pool), banned)
    for voter, share in pay.items():
        account = view.account(voter)
        view.put_account(voter, replace(account, balance=Amount(account.balance + share)))
    return replace(job, escrow=Amount(job.escrow - sum(pay.values())))


def _unreserved_escrow(view: Overlay, job: Job) -> int:
    """[VOTE-REWARD.1] What the escrow holds beyond what it still owes: the bounty until it
    is paid and a train/v3 deposit until it is forfeited. The escrow funds ``max_turns``
    rewards; turns that do not count against ``max_turns`` (withdrawn, cheat) can outnumber
    them, and are then paid from what is left, never from the bounty."""
    owed = job.spec.bounty if job.winner is None else 0
    holdout = job.spec.holdout
    if holdout is not None:
        state = view.holdout(job.job_id)
        forfeited = (HoldoutStatus.UNPUBLISHED, HoldoutStatus.WITHHELD, HoldoutStatus.REJECTED)
        if state is not None and state.status not in forfeited:
            owed += holdout.deposit
    return max(0, job.escrow - owed)


def settle(view: Overlay, job: Job, status: JobStatus) -> Job:
    """[JOB-SETTLE.1] What is left in escrow returns to the submitter (burned if banned)."""
    rest = job.escrow
    if rest:
        account = view.account(job.submitter)
        if account.banned:
            view.add_burned(rest)
        else:
            refunded = replace(account, balance=Amount(account.balance + rest))
            view.put_account(job.submitter, refunded)
    view.delete("active_job", job.job_id)
    return replace(job, status=status, escrow=Amount(0), current=None, phase_deadline_ms=TimeMs(0))


def tick_job(view: Overlay, job: Job, now: TimeMs, height: Height) -> Job:
    """[JOB-TICK.1] Moves a job along when a window has ended at this block's time."""
    if job.status == JobStatus.OPEN and now >= job.spec.expiry_ms:
        return _expire_holdout_job(view, job, now) if job.spec.holdout else start_turn(view, job,
                                                                                        now)
    if job.status == JobStatus.HOLDOUT and now >= job.phase_deadline_ms:
        state = view.holdout(job.job_id)
        if state is None:
            raise ValueError("a job in HOLDOUT has a holdout record")
        job = holdout_rules.forfeit_deposit(view, job, state, HoldoutStatus.WITHHELD)
        return start_turn(view, job, now)
    if job.status == JobStatus.REVEAL and (
        now >= job.phase_deadline_ms or (job.current and view.account(job.current).banned)
    ):  # [JOB-FORFEIT.1] (a) no reveal by the deadline, (b) the claimer banned meanwhile
        return start_turn(view, _end_turn(job, Outcome.FORFEIT, now), now)
    if job.status == JobStatus.VOTE_COMMIT and now >= job.phase_deadline_ms:
        return _open_vote_reveal(job, now)
    if job.status == JobStatus.VOTE_REVEAL and now >= job.phase_deadline_ms:
        return decide(view, job, now, height)
    return job


def _expire_holdout_job(view: Overlay, job: Job, now: TimeMs) -> Job:
    """[HOLDOUT-EXPIRY.1] A train/v3 job at expiry: refund (deposit burned if no public part
    was named), or wait for the submitter's hidden part."""
    state = view.holdout(job.job_id)
    if state is None:
        raise ValueError("a train/v3 job has a holdout record")
    nxt = holdout_rules.expiry_status(state, bool(job.claims))
    if nxt == HoldoutStatus.UNPUBLISHED:
        job = holdout_rules.forfeit_deposit(view, job, state, HoldoutStatus.UNPUBLISHED)
        return settle(view, job, JobStatus.REFUNDED)
    if nxt == JobStatus.REFUNDED:
        return settle(view, job, JobStatus.REFUNDED)
    return replace(job, status=JobStatus.HOLDOUT, current=None,
                   phase_deadline_ms=holdout_rules.holdout_deadline(job, now))


def tick_jobs(view: Overlay, now: TimeMs, height: Height, parent_hash: Hash32) -> None:
    """[JOB-TICK.1] Draws train/v3 splits due at this height [HOLDOUT-SPLIT.1], then moves
    every active job whose window ended."""
    holdout_rules.draw_splits(view, parent_hash, height)
    for job in list(view.iter_active_jobs()):
        moved = tick_job(view, job, now, height)
        if moved != job:
            view.put_job(moved)
