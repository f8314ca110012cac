"""The ledger's handlers of a federated job's transactions [TX-FED.1-7].

Each checks who, when and once, in the order protocol_spec/federated.md §7 lists the
reject codes, and writes the ``fed_job`` record; the windows, draws, verdicts and the
payout run in the block tick (``chain.federated.open.steps``). The ledger never reads
a blob: every number that needs one is recomputed by members and voted.
"""

from __future__ import annotations

from dataclasses import replace

from chain.context import TxContext
from chain.crypto import address_to_text
from chain.errors import InvalidTransaction
from chain.federated.blobs import UPDATE_HEADER, update_commitment
from chain.federated.open.bodies import (
    END_ROUND,
    FedAggregate,
    FedCommit,
    FedPart,
    FedReveal,
    FedVoteCommit,
    FedVoteReveal,
    fed_vote_commitment,
)
from chain.federated.open.records import FedJob, FedPhase, FedUpdate, FedVote, PostedAggregate
from chain.federated.open.steps import (
    eligible,
    fed_spec,
    lock_reveal_deposit,
    return_reveal_deposit,
)
from chain.federated.private.tx import check_private_reveal
from chain.federated.rounds import CENTERED_CLIP, FLTRUST, Aggregation
from chain.federated.spec import OPEN, PRIVATE
from chain.jobspec import FEDERATED_V1
from chain.records import Job, JobStatus
from chain.state import Overlay
from chain.train.bodies import PostJob
from chain.train.holdout import rules as holdout_rules
from chain.types import Address, Hash32, TimeMs
from chain.versions import CENTERED_CLIP_VERSION, COHORT_VERSION


def _reject(code: str, message: str) -> InvalidTransaction:
    return InvalidTransaction(code, message)


def apply_post_job(view: Overlay, sender: Address, body: PostJob, ctx: TxContext) -> None:
    """[TX-FED.1] for federated/v1, after [JOB-POST.1] posted the job (the registry runs
    both, in that order): the rule's protocol version [TX-FED.11], the cohort's
    [TX-FED.12], the holdout deposit's
    bound [HOLDOUT-POST.1]
    (``deposit_too_small``, ``window_too_short``), the round windows (``window_too_short``);
    the job runs rounds (status ``federated``), not a race."""
    spec = body.spec
    fed = spec.federated
    if spec.kind != FEDERATED_V1 or fed is None:
        return
    new_rule = fed.aggregation.rule == CENTERED_CLIP or fed.aggregation == Aggregation(FLTRUST, 1)
    if new_rule and view.protocol_version < CENTERED_CLIP_VERSION:
        raise _reject("needs_protocol_version",  # [TX-FED.11]
                      f"the rule {fed.aggregation.to_wire()} needs protocol version "
                      f"{CENTERED_CLIP_VERSION}; version {view.protocol_version} is in force")
    if fed.cohort and view.protocol_version < COHORT_VERSION:
        raise _reject("needs_protocol_version",  # [TX-FED.12]
                      f"a cohort needs protocol version {COHORT_VERSION}; version "
                      f"{view.protocol_version} is in force")
    holdout_rules.check_post(view, fed.holdout, spec.voting.max_turns, spec.voting.voter_reward)
    least = min(fed.commit_window_ms, fed.reveal_window_ms, fed.aggregate_window_ms)
    if least < view.params.min_window_ms:
        raise _reject("window_too_short", f"every window must be >= {view.params.min_window_ms}"
                                          f" ms (a round window is {least} ms)")
    job = view.job(ctx.tx_hash)
    if job is None:
        raise ValueError("the job was just posted")
    view.put_job(replace(job, status=JobStatus.FEDERATED))
    view.put("fed_job", ctx.tx_hash, FedJob(
        job_id=ctx.tx_hash, owner=sender, phase=FedPhase.COMMIT, round=1,
        deadline_ms=spec.expiry_ms, model_blob=fed.initial_model))
    view.put("active_fed", ctx.tx_hash, True)


def aggregating(view: Overlay, address: Address) -> FedJob | None:
    """[FED-ROUND.3] The running federated job whose drawn aggregator ``address`` is, from
    the draw until its aggregate's verdict."""
    for key in view.keys("active_fed"):
        fed: FedJob | None = view.get("fed_job", key)
        if fed is not None and fed.aggregator == address and fed.phase in (
                FedPhase.AGGREGATE, FedPhase.VOTE_COMMIT, FedPhase.VOTE_REVEAL):
            return fed
    return None


def check_verifier_leave(view: Overlay, sender: Address, body: object,
                         ctx: TxContext) -> None:
    """[FED-ROUND.3], before [VERIFY-LEAVE.1] (the registry runs both, in that order): a
    drawn aggregator keeps its bond from the draw until its aggregate's verdict
    (``verifying``, only for a verifier, so ``not_verifier`` still comes first), so a wrong
    aggregate's poster cannot take its bond out first."""
    if view.verifier_bond(sender) is not None:
        fed = aggregating(view, sender)
        if fed is not None:
            raise _reject("verifying", f"the drawn aggregator of job {fed.job_id.hex()} round "
                                       f"{fed.round}; leave after its verdict")


def _require(view: Overlay, job_id: Hash32) -> tuple[Job, FedJob]:
    job = view.job(job_id)
    if job is None:
        raise _reject("unknown_job", f"no job {job_id.hex()}")
    fed: FedJob | None = view.get("fed_job", job_id)
    if fed is None:
        raise _reject("not_federated", f"job {job_id.hex()} is {job.spec.kind}, not "
                                       "federated/v1")
    return job, fed


def _window(fed: FedJob, phase: FedPhase, now: TimeMs, code: str) -> None:
    if fed.phase != phase or now >= fed.deadline_ms:
        raise _reject(code, f"the job is in its {fed.phase} phase (round {fed.round})")


def _round(fed: FedJob, round: int) -> None:
    if round != fed.round:
        raise _reject("wrong_round", f"the job is in round {fed.round}, not {round}")


def apply_fed_commit(view: Overlay, sender: Address, body: FedCommit, ctx: TxContext) -> None:
    """[TX-FED.2] A member other than the owner, and in the job's cohort when it names one
    [FED-SPEC.4], commits its update; under FLTrust the owner commits its reference the
    same way. The first ``max_participants`` (block order) are
    the round's participants [FED-ROUND.2]."""
    job, fed = _require(view, body.job_id)
    _round(fed, body.round)
    _window(fed, FedPhase.COMMIT, ctx.time_ms, "not_in_commit_window")
    if not view.is_member(sender):
        raise _reject("not_member", f"{address_to_text(sender)} is not an admitted member")
    spec = fed_spec(job)
    if sender == fed.owner and spec.aggregation.rule != FLTRUST:
        raise _reject("owner_cannot_participate", "the owner sends only an FLTrust reference")
    if not spec.admits(sender, fed.owner):
        raise _reject("not_in_cohort",  # [FED-SPEC.4]
                      f"{address_to_text(sender)} is not in the job's cohort of "
                      f"{len(spec.cohort)} addresses")
    if fed.update_of(sender) is not None:
        raise _reject("already_committed", "this address already committed in this round")
    others = sum(1 for u in fed.updates if u.participant != fed.owner)
    if sender != fed.owner and others >= spec.max_participants:
        raise _reject("round_full", f"the round has its {spec.max_participants} participants")
    lock_reveal_deposit(view, job, sender)  # [FED-DEPOSIT.1] insufficient_balance
    view.put("fed_job", fed.job_id,
             replace(fed, updates=(*fed.updates, FedUpdate(sender, body.commitment))))


def update_blob_size(dims: int, privacy: str = OPEN) -> int:
    """[FED-QUANT.5] An update blob is exactly 68 + 4·dims bytes; in private mode a masked
    blob [FED-PRIV.1], 68 + 8·dims."""
    return UPDATE_HEADER.size + (8 if privacy == PRIVATE else 4) * dims


def apply_fed_reveal(view: Overlay, sender: Address, body: FedReveal, ctx: TxContext) -> None:
    """[TX-FED.3] Opens the sender's own commitment [FED-COMMIT.1] in the reveal window,
    which returns its reveal deposit [FED-DEPOSIT.1]."""
    job, fed = _require(view, body.job_id)
    _round(fed, body.round)
    _window(fed, FedPhase.REVEAL, ctx.time_ms, "not_in_reveal_window")
    mine = fed.update_of(sender)
    if mine is None:
        raise _reject("no_commitment", f"{address_to_text(sender)} committed no update")
    if mine.blob is not None:
        raise _reject("already_revealed", "this update is already revealed")
    spec = fed_spec(job)
    size = update_blob_size(spec.dims, spec.privacy)
    if body.size != size:
        raise _reject("wrong_size", f"an update blob of this job is {size} bytes, not "
                                    f"{body.size}")
    if spec.privacy == PRIVATE:  # [TX-FED.3] the mask set's, no commitment to open
        check_private_reveal(view, fed, sender)
    elif update_commitment(fed.job_id, fed.round, sender, body.update_hash,
                           body.salt) != mine.commitment:
        raise _reject("commitment_mismatch", "the reveal does not open the commitment")
    opened = replace(mine, blob=body.blob, size=body.size, update_hash=body.update_hash)
    return_reveal_deposit(view, fed.job_id, sender)  # [FED-DEPOSIT.1]
    view.put("fed_job", fed.job_id, replace(fed, updates=tuple(
        opened if u.participant == sender else u for u in fed.updates)))


def apply_fed_aggregate(view: Overlay, sender: Address, body: FedAggregate,
                        ctx: TxContext) -> None:
    """[TX-FED.4] Only the drawn aggregator, once, in the aggregate window. ``weights``
    names revealed participants (not the owner's reference) in strictly ascending order:
    the ones whose blobs decoded and named their slot; members check the rest."""
    job, fed = _require(view, body.job_id)
    _round(fed, body.round)
    if body.attempt != fed.attempt:
        raise _reject("wrong_attempt", f"the round is at attempt {fed.attempt}")
    _window(fed, FedPhase.AGGREGATE, ctx.time_ms, "not_in_aggregate_window")
    if sender != fed.aggregator:
        raise _reject("not_aggregator", f"{address_to_text(sender)} was not drawn")
    revealed = {u.participant for u in fed.updates
                if u.blob is not None and u.participant != fed.owner}
    names = [a for a, _ in body.weights]
    if names != sorted(set(names)) or not set(names) <= revealed:
        raise _reject("bad_weights", "weights name revealed participants, strictly ascending")
    voters = eligible(view, (sender,))
    view.put("fed_job", fed.job_id, replace(
        fed, posted=PostedAggregate(sender, body.model_hash, body.model_blob, body.weights),
        phase=FedPhase.VOTE_COMMIT, voters=voters, votes=(),
        deadline_ms=TimeMs(ctx.time_ms + job.spec.voting.commit_window_ms)))


def _ballot(fed: FedJob, round: int, attempt: int) -> bool:
    """Which ballot a vote is on: True for the end ballot [FED-END.2]."""
    end = fed.phase in (FedPhase.HIDDEN, FedPhase.END_COMMIT, FedPhase.END_REVEAL)
    if round != (END_ROUND if end else fed.round):
        raise _reject("wrong_round", f"the open ballot is round "
                                     f"{END_ROUND if end else fed.round}, not {round}")
    if attempt != (0 if end else fed.attempt):
        raise _reject("wrong_attempt", f"the open ballot is attempt {fed.attempt}")
    return end


def apply_fed_vote_commit(view: Overlay, sender: Address, body: FedVoteCommit,
                          ctx: TxContext) -> None:
    """[TX-FED.5] An eligible voter [FED-VOTE.2] commits once in the vote commit window."""
    _, fed = _require(view, body.job_id)
    end = _ballot(fed, body.round, body.attempt)
    _window(fed, FedPhase.END_COMMIT if end else FedPhase.VOTE_COMMIT, ctx.time_ms,
            "not_in_vote_commit_window")
    if sender not in fed.voters:
        raise _reject("not_eligible_voter", f"{address_to_text(sender)} may not vote here")
    if fed.vote_of(sender) is not None:
        raise _reject("already_committed", "this voter already committed")
    view.put("fed_job", fed.job_id,
             replace(fed, votes=(*fed.votes, FedVote(sender, body.commitment))))


def apply_fed_vote_reveal(view: Overlay, sender: Address, body: FedVoteReveal,
                          ctx: TxContext) -> None:
    """[TX-FED.6] Opens the sender's vote [FED-VOTE.1] in the vote reveal window. A valid
    vote on an aggregate carries an accuracy, on the end ballot one loss per entry
    (``1 + len(loo_participants)``); an invalid vote carries neither (``bad_vote``)."""
    _, fed = _require(view, body.job_id)
    end = _ballot(fed, body.round, body.attempt)
    _window(fed, FedPhase.END_REVEAL if end else FedPhase.VOTE_REVEAL, ctx.time_ms,
            "not_in_vote_reveal_window")
    mine = fed.vote_of(sender)
    if mine is None:
        raise _reject("no_commitment", f"{address_to_text(sender)} committed no vote")
    if mine.opened:
        raise _reject("already_revealed", "this vote is already revealed")
    if body.valid:
        ok = body.accuracy_ppm is None and body.losses is not None and \
            len(body.losses) == 1 + len(fed.loo_participants) if end \
            else body.accuracy_ppm is not None and body.losses is None
    else:
        ok = body.accuracy_ppm is None and body.losses is None
    if not ok:
        raise _reject("bad_vote", "valid: an accuracy (aggregate) or every loss (end); "
                                  "invalid: neither")
    expected = fed_vote_commitment(fed.job_id, body.round, body.attempt, sender, body.valid,
                                   body.accuracy_ppm, body.losses, body.salt)
    if expected != mine.commitment:
        raise _reject("vote_commitment_mismatch", "the reveal does not open the commitment")
    opened = replace(mine, opened=True, valid=body.valid, accuracy_ppm=body.accuracy_ppm,
                     losses=body.losses)
    view.put("fed_job", fed.job_id, replace(fed, votes=tuple(
        opened if v.voter == sender else v for v in fed.votes)))


def apply_fed_part(view: Overlay, sender: Address, body: FedPart, ctx: TxContext) -> None:
    """[TX-FED.7] The owner names its public part once, after the split is drawn and before
    round 1's commit window closes; its hidden part in the end's window [FED-END.1], which
    opens the end ballot's vote commit window."""
    job, fed = _require(view, body.job_id)
    if sender != fed.owner:
        raise _reject("not_owner", "only the job's owner names its holdout parts")
    if body.which == "public":
        if fed.round != 1 or fed.phase != FedPhase.COMMIT or ctx.time_ms >= fed.deadline_ms:
            raise _reject("not_in_publish_window", "the public part is named before round "
                                                   "1's commit window closes")
        if fed.seed is None:
            raise _reject("split_not_drawn", f"the split is drawn at height "
                                             f"{job.posted_height + holdout_rules.SPLIT_DELAY}")
        if fed.public is not None:
            raise _reject("already_published", "the public part is already named")
        view.put("fed_job", fed.job_id, replace(fed, public=body.part))
        return
    _window(fed, FedPhase.HIDDEN, ctx.time_ms, "not_in_hidden_window")
    voters = eligible(view, (fed.owner,))
    view.put("fed_job", fed.job_id, replace(
        fed, hidden=body.part, phase=FedPhase.END_COMMIT, voters=voters, votes=(),
        deadline_ms=TimeMs(ctx.time_ms + job.spec.voting.commit_window_ms)))
