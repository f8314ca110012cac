"""The submitter's hidden reveal and the voters' holdout votes (train/v3) [HOLDOUT-REVEAL.1]
[HOLDOUT-VOTE.1].

These handlers drive the turn machinery of ``chain.train.rules`` (a reveal starts the
first finalist's turn; the last opened vote decides it), so they live apart from the
pure ``chain.train.holdout.rules``, which ``job_rules`` itself imports.
"""

from __future__ import annotations

from dataclasses import replace

from chain.context import TxContext
from chain.errors import InvalidTransaction
from chain.records import JobStatus
from chain.state import Overlay
from chain.train.holdout.bodies import HoldoutReveal, HoldoutVoteReveal, holdout_vote_commitment
from chain.train.holdout.records import HoldoutStatus
from chain.train.holdout.rules import (
    hidden_answer_is_consistent,
    holdout_vote_is_consistent,
    require_holdout,
)
from chain.train.rules import holdout_live, open_vote_checks, record_opened_vote, start_turn
from chain.types import Address


def apply_holdout_reveal(view: Overlay, sender: Address, body: HoldoutReveal,
                         ctx: TxContext) -> None:
    """[HOLDOUT-REVEAL.1] In the HOLDOUT window the submitter names its hidden part; the
    first finalist's turn starts in the same transaction. The ledger cannot read the blob:
    the voters check it against the root in every turn's vote [HOLDOUT-JUDGE.1]."""
    job = view.job(body.job_id)
    if job is None:
        raise InvalidTransaction("unknown_job", f"no job {body.job_id.hex()}")
    _, state = require_holdout(view, job)
    if sender != job.submitter:
        raise InvalidTransaction("not_submitter", "only the job's submitter reveals its parts")
    if job.status != JobStatus.HOLDOUT or ctx.time_ms >= job.phase_deadline_ms:
        raise InvalidTransaction("not_in_holdout_phase",
                                 f"job is {job.status}; the hidden part is revealed in the "
                                 "holdout window after expiry")
    view.put("holdout", job.job_id,
             replace(state, hidden=body.part, status=HoldoutStatus.REVEALED))
    view.put_job(start_turn(view, job, ctx.time_ms))


def apply_holdout_vote_reveal(view: Overlay, sender: Address, body: HoldoutVoteReveal,
                              ctx: TxContext) -> None:
    """[HOLDOUT-VOTE.1] Opens a vote of a turn whose hidden part is live: the public
    verdict's fields as ``vote_reveal``, plus the hidden-part check and the hidden loss, and
    optionally the answers to the turn's challenge on the hidden and the public part
    [HOLDOUT-CHALLENGE.1], which [HOLDOUT-VOTE-REWARD.1] groups."""
    job, record = open_vote_checks(view, sender, body.job_id, body.claimer, ctx)
    if not holdout_live(view, job):
        raise InvalidTransaction("not_holdout_vote", "this turn's votes open with vote_reveal: "
                                                     "no hidden part is live")
    expected = holdout_vote_commitment(job.job_id, body.claimer, sender, body.valid,
                                       body.measured_loss, body.holdout_ok, body.hidden_loss,
                                       body.salt, body.hidden_challenge_loss,
                                       body.challenge_loss)
    if expected != record.commitment:
        raise InvalidTransaction("vote_commitment_mismatch",
                                 "the vote does not open its commitment")
    if not holdout_vote_is_consistent(body.holdout_ok, body.hidden_loss):
        raise InvalidTransaction("vote_inconsistent", "a vote that found the hidden part bad "
                                                      "measures no hidden loss")
    if not hidden_answer_is_consistent(body.hidden_loss, body.hidden_challenge_loss):
        raise InvalidTransaction("vote_inconsistent",
                                 f"a hidden challenge answer "
                                 f"({body.hidden_challenge_loss!r}) comes from the run that "
                                 "measures the hidden loss, and this vote has none "
                                 "[HOLDOUT-CHALLENGE.1]")
    opened = replace(record, revealed=True, valid=body.valid, measured_loss=body.measured_loss,
                     holdout_ok=body.holdout_ok, hidden_loss=body.hidden_loss,
                     hidden_challenge_loss=body.hidden_challenge_loss,
                     challenge_loss=body.challenge_loss)
    record_opened_vote(view, job, opened, ctx)
