"""A federated job's round machine in the block tick [FED-ROUND.*] [FED-END.*].

Every phase ends at its deadline, at the first block whose time reaches it (the ledger
never reads a blob): commit -> reveal -> aggregate (a drawn aggregator posts) -> vote
commit -> vote reveal -> the round is accepted (next round, or the end), or the aggregate
is rejected (its poster banned as a cheating claimer, another drawn), or undecided (another
drawn). At the end the owner names its hidden part, members vote the leave-one-out losses,
and the bounty is paid by [FED-REWARD.5]. Every credit moves between the job's escrow, the
accounts and the burned counter, so [BANK.1] holds.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

from chain.encoding import encode
from chain.errors import InvalidTransaction
from chain.federated.blobs import DOMAIN
from chain.federated.fixed import MAX_ROUND_PARTICIPANTS
from chain.federated.open.records import (
    DepositStatus,
    FedJob,
    FedPhase,
    FedRound,
    FedUpdate,
    round_key,
)
from chain.federated.private.tx import is_private, phase_after_commit
from chain.federated.rewards import job_outliers, payout
from chain.federated.rounds import FLTRUST
from chain.federated.spec import FederatedSpec
from chain.penalties import ban
from chain.records import Account, Job, JobStatus
from chain.state import Overlay
from chain.train.holdout.rules import SPLIT_DELAY
from chain.train.holdout.split import split_seed
from chain.train.rules import settle
from chain.types import Address, Amount, Hash32, Height, TimeMs

ACCEPT, REJECT, UNDECIDED = "accepted", "rejected", "undecided"
VOID = "void"


def fed_spec(job: Job) -> FederatedSpec:
    if job.spec.federated is None:
        raise ValueError(f"job {job.job_id.hex()} is not federated")
    return job.spec.federated


def aggregator_seed(job_id: bytes, round: int, attempt: int, block_hash: bytes) -> int:
    """[FED-ROUND.3] ``SHA-256(encode([domain, "fed-aggregator", job_id, round, attempt,
    block_hash]))`` read big-endian: the draw of the round's aggregator."""
    return int.from_bytes(hashlib.sha256(encode(
        [DOMAIN, "fed-aggregator", job_id, round, attempt, block_hash])).digest(), "big")


def reveal_deposit(bounty: int, spec: FederatedSpec) -> int:
    """[FED-DEPOSIT.1] What a commitment locks until its reveal: one slot's even share of
    one round's bounty, ``max(1, bounty // (rounds × max_participants))``. Crowding every
    slot of every round with vanishing commitments burns the whole bounty's worth; an
    honest participant that crashes in a round loses only what that round could have paid
    it."""
    return max(1, bounty // (spec.rounds * spec.max_participants))


def lock_reveal_deposit(view: Overlay, job: Job, sender: Address) -> None:
    """[FED-DEPOSIT.1] At ``fed_commit``: the deposit moves from the sender's balance into
    the job's escrow ([BANK.1] counts it there); ``insufficient_balance`` otherwise."""
    deposit = reveal_deposit(job.spec.bounty, fed_spec(job))
    account = view.account(sender)
    if account.balance < deposit:
        raise InvalidTransaction("insufficient_balance",
                                 f"a commitment locks a reveal deposit of {deposit} credits; "
                                 f"the balance is {account.balance}")
    view.put_account(sender, replace(account, balance=Amount(account.balance - deposit)))
    view.put_job(replace(job, escrow=Amount(job.escrow + deposit)))


def return_reveal_deposit(view: Overlay, job_id: Hash32, participant: Address) -> None:
    """[FED-DEPOSIT.1] At a ``fed_reveal`` that opens the commitment: the deposit leaves the
    escrow back to the participant."""
    job = view.job(job_id)
    if job is None:
        raise ValueError(f"job {job_id.hex()} has a fed_job record")
    deposit = reveal_deposit(job.spec.bounty, fed_spec(job))
    account = view.account(participant)
    view.put_account(participant, replace(account, balance=Amount(account.balance + deposit)))
    view.put_job(replace(job, escrow=Amount(job.escrow - deposit)))


def eligible(view: Overlay, exclude: tuple[Address, ...]) -> tuple[Address, ...]:
    """[FED-VOTE.2] Bonded verifiers [VERIFY-JOIN.1], not banned, not excluded; ascending."""
    return tuple(sorted(Address(k) for k in view.keys("verifier")
                        if k not in exclude and not view.account(Address(k)).banned))


def verdict(fed: FedJob, quorum_permille: int, supermajority_permille: int) -> str:
    """[FED-VOTE.3] With n eligible voters and r opened votes: quorum when r >= 1 and
    r·1000 >= quorum·n; then ACCEPT when valid·1000 >= supermajority·r, REJECT when
    invalid·1000 >= supermajority·r, else (or without quorum) UNDECIDED."""
    opened = [v for v in fed.votes if v.opened]
    r = len(opened)
    if r == 0 or r * 1000 < quorum_permille * len(fed.voters):
        return UNDECIDED
    valid = sum(1 for v in opened if v.valid)
    if valid * 1000 >= supermajority_permille * r:
        return ACCEPT
    if (r - valid) * 1000 >= supermajority_permille * r:
        return REJECT
    return UNDECIDED


def lower_median(values: list[int]) -> int:
    """[FED-VOTE.4] The lower median: the ⌈n/2⌉-th smallest value."""
    return sorted(values)[(len(values) - 1) // 2]


def end_participants(round_weights: list[dict[bytes, int]]) -> list[bytes]:
    """[FED-END.1] [FED-END.5] The end ballot's participants, sorted: every address with a
    positive weight in some accepted round (``round_weights``: one map per round, a void
    round empty), less the job's outliers [FED-REWARD.9] of those weights. Exactly the
    addresses the payout [FED-REWARD.5] finds eligible for the leave-one-out pool."""
    positive = {a for ws in round_weights for a, w in ws.items() if w > 0}
    return sorted(positive - job_outliers(round_weights))

class RoundMachine:
    """One job's step in one block: reads the job and its record, writes both back."""

    def __init__(self, view: Overlay, job: Job, fed: FedJob, now: TimeMs, height: Height,
                 block_hash: Hash32) -> None:
        self.view, self.job, self.fed = view, job, fed
        self.now, self.height, self.block_hash = now, height, block_hash
        self.spec = fed_spec(job)

    def save(self) -> None:
        self.view.put_job(self.job)
        self.view.put("fed_job", self.fed.job_id, self.fed)

    def _set(self, **changes: object) -> None:
        self.fed = replace(self.fed, **changes)  # type: ignore[arg-type]

    # --- the tick -------------------------------------------------------------------------
    def step(self) -> None:
        """[FED-ROUND.1] The seed of the holdout split [HOLDOUT-SPLIT.1], then the phase
        whose deadline this block's time reached."""
        fed = self.fed
        if fed.seed is None and self.height >= self.job.posted_height + SPLIT_DELAY:
            self._set(seed=split_seed(fed.job_id, self.block_hash))
        if self.now < fed.deadline_ms:
            return
        voting = self.job.spec.voting
        if fed.phase == FedPhase.COMMIT:
            if fed.round == 1 and fed.public is None:
                self._return_reveal_deposits()  # [FED-DEPOSIT.1] no chance to reveal
                self._forfeit_deposit()  # [FED-END.3] no public part: nothing to measure on
                self._finish(None, None, refund_all=True)
                return
            self._set(phase=phase_after_commit(self.job),  # [FED-PRIV.10] private: shares
                      deadline_ms=self.now + self.spec.reveal_window_ms)
        elif fed.phase == FedPhase.SHARES:  # [FED-PRIV.10]
            self._set(phase=FedPhase.REVEAL, deadline_ms=self.now + self.spec.reveal_window_ms)
        elif fed.phase == FedPhase.REVEAL:
            self._close_reveals()
        elif fed.phase == FedPhase.UNMASK:  # [FED-PRIV.10] the survivors named their keys
            self._draw(0, ())
        elif fed.phase == FedPhase.AGGREGATE:  # [FED-ROUND.6] the aggregator stayed silent
            self._draw(fed.attempt + 1, (*fed.tried, *self._current()))
        elif fed.phase in (FedPhase.VOTE_COMMIT, FedPhase.END_COMMIT):
            phase = FedPhase.VOTE_REVEAL if fed.phase == FedPhase.VOTE_COMMIT \
                else FedPhase.END_REVEAL
            self._set(phase=phase, deadline_ms=self.now + voting.vote_reveal_window_ms)
        elif fed.phase == FedPhase.VOTE_REVEAL:
            self._decide_aggregate()
        elif fed.phase == FedPhase.HIDDEN:  # [FED-END.3] withheld: deposit forfeited
            self._forfeit_deposit()
            self._finish(None, None)
        elif fed.phase == FedPhase.END_REVEAL:
            self._decide_end()

    def _current(self) -> tuple[Address, ...]:
        return () if self.fed.aggregator is None else (self.fed.aggregator,)

    # --- rounds ---------------------------------------------------------------------------
    def _close_reveals(self) -> None:
        """[FED-ROUND.2] Fewer than ``min_participants`` revealed updates (the owner's
        reference not counted), or under FLTrust no revealed reference: the round is void."""
        self._burn_reveal_deposits()
        revealed = [u for u in self.fed.updates if u.blob is not None]
        others = [u for u in revealed if u.participant != self.fed.owner]
        has_ref = any(u.participant == self.fed.owner for u in revealed)
        if len(others) < self.spec.min_participants or \
                (self.spec.aggregation.rule == FLTRUST and not has_ref):
            self._next_round(self._void())
            return
        if is_private(self.job):  # [FED-PRIV.10] the survivors' unmask window first
            self._set(phase=FedPhase.UNMASK, deadline_ms=self.now + self.spec.reveal_window_ms)
            return
        self._draw(0, ())

    def _draw(self, attempt: int, tried: tuple[Address, ...]) -> None:
        """[FED-ROUND.3] [FED-ROUND.6] The aggregator: candidates are the eligible verifiers
        not tried this round, the owner excepted (a banned owner could not name its hidden
        part); index ``aggregator_seed mod len``. After ``max_turns`` attempts or with no
        candidate left the round is void."""
        candidates = eligible(self.view, (*tried, self.fed.owner))
        if attempt >= self.job.spec.voting.max_turns or not candidates:
            self._next_round(self._void())
            return
        pick = candidates[aggregator_seed(self.fed.job_id, self.fed.round, attempt,
                                          self.block_hash) % len(candidates)]
        self._set(phase=FedPhase.AGGREGATE, attempt=attempt, tried=tried, aggregator=pick,
                  posted=None, voters=(), votes=(),
                  deadline_ms=self.now + self.spec.aggregate_window_ms)

    def _revealed(self) -> tuple[FedUpdate, ...]:
        return tuple(sorted((u for u in self.fed.updates if u.blob is not None),
                            key=lambda u: u.participant))

    def _void(self) -> FedRound:
        return FedRound(self.fed.round, VOID, self.fed.model_hash, self.fed.model_blob,
                        slashed=self.fed.slashed, updates=self._revealed())

    def _decide_aggregate(self) -> None:
        """[FED-ROUND.4] [FED-ROUND.5] The posted aggregate's verdict."""
        fed, voting = self.fed, self.job.spec.voting
        outcome = verdict(fed, voting.quorum_permille, voting.supermajority_permille)
        posted = fed.posted
        if posted is None:
            raise ValueError("a round in VOTE_REVEAL has a posted aggregate")
        if outcome == ACCEPT:
            self._pay_voters(valid=True)
            accuracy = lower_median([v.accuracy_ppm or 0 for v in fed.votes
                                     if v.opened and v.valid])
            self._set(model_hash=posted.model_hash, model_blob=posted.model_blob,
                      accuracy_ppm=accuracy)
            self._next_round(FedRound(fed.round, ACCEPT, posted.model_hash, posted.model_blob,
                                      posted.weights, accuracy, posted.aggregator,
                                      fed.slashed, self._revealed()))
            return
        if outcome == REJECT:  # a cheating claim: banned and slashed [VOTE-VERDICT.2]
            self._pay_voters(valid=False)
            ban(self.view, posted.aggregator, self.height)
            self._set(slashed=(*fed.slashed, posted.aggregator))
        self._draw(self.fed.attempt + 1, (*self.fed.tried, posted.aggregator))

    def _next_round(self, done: FedRound) -> None:
        """[FED-ROUND.7] Record the round; the job ends when the rounds run out or the
        accepted accuracy reaches ``target_accuracy_ppm``; else the next commit window."""
        self.view.put("fed_round", round_key(self.fed.job_id, done.round), done)
        target = self.spec.target_accuracy_ppm
        reached = target is not None and done.outcome == ACCEPT and \
            done.accuracy_ppm is not None and done.accuracy_ppm >= target
        if done.round >= self.spec.rounds or reached:
            self._start_end()
            return
        self._set(phase=FedPhase.COMMIT, round=done.round + 1, attempt=0, updates=(),
                  aggregator=None, tried=(), slashed=(), posted=None, voters=(), votes=(),
                  deadline_ms=self.now + self.spec.commit_window_ms)

    # --- the end --------------------------------------------------------------------------
    def round_weights(self) -> list[dict[bytes, int]]:
        out: list[dict[bytes, int]] = []
        for r in range(1, self.fed.round + 1):
            rec: FedRound | None = self.view.get("fed_round", round_key(self.fed.job_id, r))
            out.append(dict(rec.weights) if rec is not None and rec.outcome == ACCEPT else {})
        return out

    def _start_end(self) -> None:
        """[FED-END.1] [FED-END.5] Participants with a positive weight in an accepted round,
        the job's outliers [FED-REWARD.9] left out, are the end ballot's; with none, more
        than 256 (a vote could not carry their losses), or ``loo_permille`` 0, the payout is
        by round weights at once. The outliers are known now: they follow from the recorded
        round weights alone, and an outlier's loss would be voted and then ignored."""
        loo = end_participants(self.round_weights())
        if not loo or len(loo) > MAX_ROUND_PARTICIPANTS or self.spec.loo_permille == 0:
            self._finish(None, None)
            return
        self._set(phase=FedPhase.HIDDEN, loo_participants=tuple(Address(a) for a in loo),
                  aggregator=None, posted=None, voters=(), votes=(), attempt=0,
                  deadline_ms=self.now + self.spec.holdout.reveal_window_ms)

    def _decide_end(self) -> None:
        """[FED-END.2] Accepted: each loss is the lower median of the valid votes' values.
        Rejected (the hidden part did not match): the deposit is forfeited and the payout
        is by round weights alone; undecided: by round weights alone."""
        fed, voting = self.fed, self.job.spec.voting
        outcome = verdict(fed, voting.quorum_permille, voting.supermajority_permille)
        if outcome == ACCEPT:
            self._pay_voters(valid=True)
            ballots = [v.losses for v in fed.votes if v.opened and v.valid and v.losses]
            agreed = [lower_median([b[i] for b in ballots]) for i in range(len(ballots[0]))]
            self._finish(agreed[0], dict(zip(fed.loo_participants, agreed[1:], strict=True)))
            return
        if outcome == REJECT:
            self._pay_voters(valid=False)
            self._forfeit_deposit()
        self._finish(None, None)

    def _finish(self, final_loss: int | None, loo: dict[Address, int] | None,
                *, refund_all: bool = False) -> None:
        """[FED-END.4] The bounty by [FED-REWARD.5] (a banned participant's share burned);
        what is left in escrow (refund, unused voter rewards, a deposit not forfeited)
        returns to the owner [JOB-SETTLE.1]."""
        bounty = self.job.spec.bounty
        paid: tuple[tuple[Address, int], ...] = ()
        refund: int = bounty
        if not refund_all:
            loo_losses = {bytes(a): v for a, v in loo.items()} if loo is not None else None
            result = payout(bounty, self.spec.loo_permille, self.round_weights(), final_loss,
                            loo_losses)
            paid, refund = tuple((Address(a), v) for a, v in result.paid), result.refund
        for address, amount in paid:
            self._credit(address, amount)
        self.job = replace(self.job, escrow=Amount(self.job.escrow - (bounty - refund)))
        deposit = self.fed.deposit if self.fed.deposit == DepositStatus.BURNED \
            else DepositStatus.RETURNED
        self.job = settle(self.view, self.job, JobStatus.PAID if paid else JobStatus.REFUNDED)
        self._set(phase=FedPhase.DONE, deposit=deposit, paid=paid, refund=Amount(refund),
                  deadline_ms=TimeMs(0), updates=(), posted=None, voters=(), votes=())
        self.view.delete("active_fed", self.fed.job_id)

    # --- credits --------------------------------------------------------------------------
    def _credit(self, address: Address, amount: int) -> None:
        account = self.view.account(address)
        if account.banned:
            self.view.add_burned(amount)
            return
        self.view.put_account(address, Account(Amount(account.balance + amount), account.nonce,
                                               account.banned))

    def _held_reveal_deposits(self) -> tuple[list[FedUpdate], int]:
        held = [u for u in self.fed.updates if u.blob is None]
        return held, reveal_deposit(self.job.spec.bounty, self.spec) * len(held)

    def _burn_reveal_deposits(self) -> None:
        """[FED-DEPOSIT.1] When the reveal window ends, each commitment not revealed burns
        its deposit: it leaves the escrow to the burned counter."""
        _, total = self._held_reveal_deposits()
        if total:
            self.view.add_burned(total)
            self.job = replace(self.job, escrow=Amount(self.job.escrow - total))

    def _return_reveal_deposits(self) -> None:
        """[FED-DEPOSIT.1] A job that ends in round 1's commit window (no public part) returns
        every deposit locked so far: no participant could reveal."""
        held, total = self._held_reveal_deposits()
        each = reveal_deposit(self.job.spec.bounty, self.spec)
        for update in held:
            self._credit(update.participant, each)
        self.job = replace(self.job, escrow=Amount(self.job.escrow - total))

    def _forfeit_deposit(self) -> None:
        """[FED-END.3] [HOLDOUT-FORFEIT.1] The deposit leaves escrow, burned."""
        if self.fed.deposit != DepositStatus.HELD:
            return
        deposit = self.spec.holdout.deposit
        self.view.add_burned(deposit)
        self.job = replace(self.job, escrow=Amount(self.job.escrow - deposit))
        self._set(deposit=DepositStatus.BURNED)

    def _pay_voters(self, *, valid: bool) -> None:
        """[FED-VOTE.5] A decided ballot pays ``voter_reward`` (at most ``voter_reward ×
        max_turns`` over the job), split equally (floor) among the opened votes that agree
        with it, banned voters skipped; the dust stays in escrow."""
        voting = self.job.spec.voting
        amount = min(voting.voter_reward,
                     voting.voter_reward * voting.max_turns - self.fed.voter_paid)
        winners = [v.voter for v in self.fed.votes if v.opened and v.valid == valid
                   and not self.view.account(v.voter).banned]
        if amount <= 0 or not winners:
            return
        each = amount // len(winners)
        for voter in winners:
            self._credit(voter, each)
        self.job = replace(self.job, escrow=Amount(self.job.escrow - each * len(winners)))
        self._set(voter_paid=Amount(self.fed.voter_paid + amount))


def tick_federated(view: Overlay, now: TimeMs, height: Height, block_hash: Hash32) -> None:
    """[FED-ROUND.1] Each running federated job, in job-id order, takes its step."""
    for key in view.keys("active_fed"):
        job, fed = view.job(key), view.get("fed_job", key)
        if job is None or fed is None:
            raise ValueError("an active federated job has its job and fed_job records")
        machine = RoundMachine(view, job, fed, now, height, block_hash)
        machine.step()
        if machine.fed != fed or machine.job != job:
            machine.save()
