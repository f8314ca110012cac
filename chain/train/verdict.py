"""How the opened votes of one turn become a verdict [VOTE-AGREE.1] [VOTE-VERDICT.2].

Pure arithmetic over the job record: no state is read or written here, so
the same functions run in the ledger, the incentive simulation and the
property tests. See protocol_spec/ledger.md §5 "Verdicts" for the reasons.

The question a verdict answers is not only "did the claimer lie?" but first
"does this job's evaluation reproduce at all?". Voters that follow the job
contract on the same model bytes must measure the same loss within the
job's tolerance; when they do not, the job is broken and nobody's claim can
be judged by it [JOB-BROKEN.1].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from chain.records import Job, JobStatus, Outcome, Verdict, VoteRecord
from chain.types import Address


@dataclass(frozen=True, slots=True)
class Agreement:
    """The largest group of opened votes that measured the same thing [VOTE-AGREE.1]."""

    size: int
    """How many opened voter votes are in the group."""
    verified_loss: float | None
    """The group's lower median measured loss; None when the group is the 'no loss' votes."""


def voter_votes(job: Job) -> list[VoteRecord]:
    """Opened votes of eligible voters; the claimer's own vote [VOTE-SELF.1] is not one."""
    return [v for v in job.votes if v.revealed and v.voter != job.current]


def self_vote(job: Job) -> VoteRecord | None:
    """The current claimer's opened measurement of its own model, if it sent one."""
    if job.current is None:
        return None
    record = job.vote_of(job.current)
    return record if record is not None and record.revealed else None


def agreement(votes: list[VoteRecord], tolerance: float) -> Agreement:
    """[VOTE-AGREE.1] The largest set of votes whose losses fit in an interval of width
    ``tolerance``; votes without a loss (the model could not be evaluated) form one
    group of their own. Ties go to the no-loss group, then to the lowest interval, so
    every node picks the same group.
    """
    losses = sorted(v.measured_loss for v in votes if v.measured_loss is not None)
    no_loss = len(votes) - len(losses)
    best_size, best_start = 0, 0
    end = 0
    for start in range(len(losses)):
        end = max(end, start)
        while end + 1 < len(losses) and losses[end + 1] - losses[start] <= tolerance:
            end += 1
        if end - start + 1 > best_size:
            best_size, best_start = end - start + 1, start
    if no_loss >= best_size:
        return Agreement(no_loss, None)
    group = losses[best_start:best_start + best_size]
    return Agreement(best_size, group[(best_size - 1) // 2])


def failed_votes(votes: list[VoteRecord]) -> int:
    """[VOTE-FAILED.1] Opened votes whose evaluation failed: no measured loss."""
    return sum(1 for v in votes if v.measured_loss is None)


def verdict_of(job: Job) -> tuple[Outcome, float | None]:
    """[VOTE-VERDICT.2] [VOTE-FAILED.1] The outcome of the current turn and the agreed loss.

    With E eligible voters, R opened voter votes (V valid, I invalid *with a measured
    loss*, F failed: no measured loss) and the largest agreeing group A:
    1. E = 0 or R < quorum × E: no quorum.
    2. A < supermajority × R: the job's evaluation does not reproduce: inconsistent.
    3. A is the no-loss group [VOTE-FAILED.1]: the job's evaluation failed on the voters'
       machines: eval_failed (the job's fault; nobody banned).
    4. I ≥ supermajority × R: the claimer's own opened measurement says invalid too:
       withdrawn; otherwise cheat. A failed vote never counts in I: only a loss measured
       above the claim is evidence against the claimer.
    5. V ≥ supermajority × R: valid.
    6. otherwise inconclusive.
    """
    v = job.spec.voting
    votes = voter_votes(job)
    eligible, opened = len(job.eligible_voters), len(votes)
    if eligible == 0 or opened * 1000 < v.quorum_permille * eligible:
        return Outcome.NO_QUORUM, None
    agreed = agreement(votes, job.spec.loss_tolerance)
    if agreed.size * 1000 < v.supermajority_permille * opened:
        return Outcome.INCONSISTENT, None
    if agreed.verified_loss is None:
        return Outcome.EVAL_FAILED, None
    invalid = sum(1 for r in votes if not r.valid and r.measured_loss is not None)
    valid = sum(1 for r in votes if r.valid)
    if invalid * 1000 >= v.supermajority_permille * opened:
        own = self_vote(job)
        if own is not None and not own.valid:
            return Outcome.WITHDRAWN, agreed.verified_loss
        return Outcome.CHEAT, agreed.verified_loss
    if valid * 1000 >= v.supermajority_permille * opened:
        return Outcome.VALID, agreed.verified_loss
    return Outcome.INCONCLUSIVE, agreed.verified_loss


@dataclass(frozen=True, slots=True)
class UnpaidEnding:
    """How a job ends that no turn paid [JOB-TURN.2]."""

    status: JobStatus
    """PAID (a withdrawn claim is paid), BROKEN (escrow burned [VOTE-FAILED.2]) or REFUNDED."""
    paid: Verdict | None
    """The withdrawn verdict whose claimer is paid the bounty; None unless PAID."""


def unpaid_ending(verdicts: Sequence[Verdict], banned: frozenset[Address]) -> UnpaidEnding:
    """[JOB-TURN.2] [VOTE-FAILED.2] The one order every ending without a paid turn follows:
    no turn left, or a turn that ended ``no quorum`` or ``inconclusive``.

    1. The withdrawn verdict with the lowest agreed loss (ties: the earlier) whose claimer is
       not in ``banned`` is paid: the submitter holds that model, measured alike by the
       voters and its claimer [JOB-WITHDRAW.1].
    2. Otherwise, when any turn ended ``eval_failed``, the escrow is burned and the job is
       BROKEN: the submitter holds that turn's revealed model, which nobody could be paid for.
    3. Otherwise the escrow is refunded.
    (A train/v3 job pays its finalist before this order [HOLDOUT-WINNER.1].)
    """
    withdrawn = [(v.verified_loss, i, v) for i, v in enumerate(verdicts)
                 if v.outcome == Outcome.WITHDRAWN and v.verified_loss is not None
                 and v.claimer not in banned]
    if withdrawn:
        return UnpaidEnding(JobStatus.PAID, min(withdrawn, key=lambda item: (item[0], item[1]))[2])
    if any(v.outcome == Outcome.EVAL_FAILED for v in verdicts):
        return UnpaidEnding(JobStatus.BROKEN, None)
    return UnpaidEnding(JobStatus.REFUNDED, None)
