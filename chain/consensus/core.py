"""The sans-I/O consensus state machine [CONS-*]; see protocol_spec/consensus.md.

One ``ConsensusCore`` per node. It owns the state of the current height and is
changed only by three calls, each taking the current time ``now`` (ms):

- ``start(now)``: begin (or resume after a restart) at the configured height;
- ``on_message(message, now, peer)``: a Proposal or Vote arrived;
- ``on_timeout(timeout, now)``: a timer the core asked for has fired.

Each returns a list of actions for the driver, to be carried out in order:
``PersistSigned`` (append to the WAL and fsync before going on [CONS-WAL.1]),
``Broadcast``, ``ScheduleTimeout``, ``Commit``, ``CommitStalled``,
``ReportEvidence``, ``PeerMisbehaved``. The core does no I/O: no sockets, no
clock, no files. Signing is pure computation and happens inside; signature
*checks* go through an injected ``SignatureCheck`` (``chain.crypto.verify`` in
a node; the simulator may inject a trusting one for its bulk scenarios, as it
injects ``AmnesiaCore``). A lagging node catches up by block sync, not by
consensus messages [CONS-CATCHUP.1].
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from chain.crypto import PrivateKey, verify
from chain.types import Address, Hash32, Height, PublicKeyBytes, Round, Signature, TimeMs

from .actions import (
    Action,
    Application,
    Broadcast,
    Commit,
    CommitDeferred,
    CommitStalled,
    Pacing,
    PeerMisbehaved,
    PersistSigned,
    ReportEvidence,
    ScheduleTimeout,
)
from .certificate import CommitCertificate, Decision, certificate_from_precommits
from .config import ConsensusConfig
from .evidence import DuplicateVoteEvidence
from .messages import PRECOMMIT, PREVOTE, Proposal, Vote, VoteKind, sign_proposal, sign_vote
from .round_rules import RoundRules, Step
from .tally import RoundTally
from .timeouts import Timeout, TimeoutKind
from .validators import Validator, ValidatorSet
from .wal import SignedRecord

MAX_PROPOSALS_PER_ROUND = 2
"""Proposals kept per round (none extra for future rounds), unless vouched for by votes."""

SignatureCheck = Callable[[PublicKeyBytes, Hash32, Signature], bool]
"""``(public key, digest, signature) -> valid``; ``chain.crypto.verify`` in every node."""


class ConsensusCore(RoundRules):
    """Tendermint-style consensus for one validator (or observer, with ``key=None``)."""

    def __init__(
        self,
        config: ConsensusConfig,
        app: Application,
        key: PrivateKey | None,
        height: Height,
        last_block_time: TimeMs,
        signed_history: Iterable[SignedRecord] = (),
        *,
        check_signature: SignatureCheck = verify,
    ) -> None:
        """``height`` is the first undecided height; ``signed_history`` is the WAL replay."""
        self.config = config
        self._check = check_signature
        self.app = app
        self.key = key
        self.address: Address | None = key.address if key is not None else None
        self.signature_checks = 0
        """Signatures verified so far (a benchmark figure)."""
        self._history = [r for r in signed_history if r.message.height >= height]
        self._future: list[Proposal | Vote] = []
        self._deferred: Decision | None = None
        """[CONS-COMMIT.2] A decision the application could not store yet."""
        self._enter_height(height, last_block_time)

    # ---------------------------------------------------------------- state

    def _enter_height(self, height: Height, last_block_time: TimeMs) -> None:
        self.height = height
        self.round = Round(0)
        self.step = Step.NEW_HEIGHT
        self.at_rest = False
        """[CONS-PACE.1] Round 0 waits: the next block has nothing to record yet."""
        self.last_block_time = last_block_time
        self.entered_ms: int | None = None
        """[CONS-PACE.2] This node's clock when it committed the tip (or started at this
        height): graph time is estimated as the tip's time plus what elapsed since."""
        self.vset: ValidatorSet = self.app.validators_at(height)
        self.me: Validator | None = self.vset.get(self.address) if self.address else None
        self.locked_round = Round(-1)
        self.locked_hash: Hash32 | None = None
        self.valid_round = Round(-1)
        self.valid_value: tuple[Hash32, bytes, TimeMs] | None = None
        self.proposals: dict[int, dict[Hash32, Proposal]] = {}
        self.first_proposal: dict[int, Hash32] = {}
        self.timely: dict[tuple[int, Hash32], bool] = {}
        self.tallies: dict[tuple[VoteKind, int], RoundTally] = {}
        self.max_round_seen: dict[Address, int] = {}
        self.precommit_quorum: dict[int, Hash32] = {}
        self.prevote_quorum: dict[int, Hash32] = {}
        self.signed: dict[tuple[str, int], Proposal | Vote] = {}
        self._validity: dict[tuple[Hash32, int], bool] = {}
        self._done: set[tuple[str, int]] = set()
        self._evidenced: set[tuple[Address, str, int]] = set()
        self._extra_blocks: dict[Hash32, tuple[bytes, TimeMs]] = {}
        for record in [r for r in self._history if r.message.height == height]:
            self._restore(record)

    def _restore(self, record: SignedRecord) -> None:
        """[CONS-WAL.2] Re-adopt a message signed before a restart."""
        msg = record.message
        if isinstance(msg, Proposal):
            self.signed[("proposal", msg.round)] = msg
            self._store_proposal(msg, timely=True)
        else:
            self.signed[(msg.kind, msg.round)] = msg
            if self.me is not None:
                self._tally(msg.kind, msg.round).add(msg, self.me.power, held=True)
            if (
                msg.kind == PRECOMMIT
                and msg.block_hash is not None
                and msg.round > self.locked_round
            ):
                self.locked_round, self.locked_hash = msg.round, msg.block_hash
                if record.block is not None and record.time_ms is not None:
                    self.valid_round = msg.round
                    self.valid_value = (msg.block_hash, record.block, record.time_ms)
                    self._extra_blocks[msg.block_hash] = (record.block, record.time_ms)
        self.round = Round(max(self.round, msg.round))

    def _tally(self, kind: VoteKind, round_: int) -> RoundTally:
        key = (kind, round_)
        tally = self.tallies.get(key)
        if tally is None:
            tally = self.tallies[key] = RoundTally()
        return tally

    # ---------------------------------------------------------------- events

    def start(self, now: int) -> list[Action]:
        """Starts the current height; after a restart, resumes at the last signed round."""
        out: list[Action] = []
        self._schedule(out, TimeoutKind.REBROADCAST, Round(0))
        if self.round == 0 and not self.signed:
            self._start_or_rest(now, out)
        else:
            self._start_round(self.round, now, out)
        return out

    def wake(self, now: int) -> list[Action]:
        """[CONS-PACE.1] Something to record arrived (a transaction): leave rest now."""
        out: list[Action] = []
        if self.at_rest and self._deferred is None and not self._should_rest(now):
            self._start_round(self.round, now, out)  # the rest timer, once it fires, is stale
        return out

    def on_timeout(self, timeout: Timeout, now: int) -> list[Action]:
        """[CONS-TIMEOUT.*] A scheduled timer fired; stale ones are ignored."""
        out: list[Action] = []
        if timeout.height != self.height:
            return out
        kind, r = timeout.kind, timeout.round
        if kind is TimeoutKind.REBROADCAST:
            self._rebroadcast(out)
            self._schedule(out, TimeoutKind.REBROADCAST, Round(0))
            return out
        if self._deferred is not None:
            return out  # [CONS-COMMIT.2] decided: no new round while the commit waits
        if kind is TimeoutKind.NEW_HEIGHT and self.step is Step.NEW_HEIGHT:
            self._start_or_rest(now, out)
        elif r != self.round:
            return out
        elif kind is TimeoutKind.PROPOSE and self.step is Step.PROPOSE:
            self._prevote(None, out)  # [CONS-TIMEOUT-PROPOSE.1]
        elif kind is TimeoutKind.PREVOTE and self.step is Step.PREVOTE:
            self._precommit(None, out)  # [CONS-TIMEOUT-PREVOTE.1]
        elif kind is TimeoutKind.PRECOMMIT and self.step is not Step.NEW_HEIGHT:
            self._start_round(Round(r + 1), now, out)  # [CONS-TIMEOUT-PRECOMMIT.1]
            return out
        self._progress(now, out)
        return out

    def on_message(
        self,
        message: Proposal | Vote,
        now: int,
        peer: bytes | None = None,
        *,
        verified: bool = False,
    ) -> list[Action]:
        """A proposal or vote arrived. ``verified``: its signature was already checked
        against the set of its height (the driver's gossip check [NODE-CONS.2])."""
        out: list[Action] = []
        if message.height < self.height:
            return out  # decided: a lagging sender catches up by block sync [CONS-CATCHUP.1]
        if message.height > self.height:
            if message.height == self.height + 1 and len(self._future) < self.config.future_buffer:
                self._future.append(message)
            return out
        if isinstance(message, Proposal):
            self._on_proposal(message, now, peer, out, verified)
        else:
            self._on_vote(message, peer, out, verified)
        if self.at_rest and self._heard_of_height():
            self._start_round(self.round, now, out)  # [CONS-PACE.1] peers started the height
        self._progress(now, out)
        return out

    def has_counted(self, message: Proposal | Vote) -> bool:
        """The core already holds this message (same signer, slot and value) [NODE-CONS.2]."""
        if message.height != self.height:
            return False
        if isinstance(message, Proposal):
            return message.block_hash in self.proposals.get(message.round, {})
        tally = self.tallies.get((message.kind, message.round))
        return tally is not None and tally.has_voted(message)

    # ---------------------------------------------------------------- input checks

    def _check_signature(self, member: Validator, message: Proposal | Vote) -> bool:
        self.signature_checks += 1
        digest = message.digest(self.config.chain_id)
        return self._check(member.public_key, digest, message.signature)

    def _on_proposal(
        self, p: Proposal, now: int, peer: bytes | None, out: list[Action], verified: bool
    ) -> None:
        """[CONS-PROPOSE.2] Accept a proposal from the round's proposer, correctly signed."""
        proposer = self.vset.proposer(self.height, p.round)
        if p.proposer != proposer.address:
            out.append(PeerMisbehaved(peer, "wrong_proposer"))
            return
        known = self.proposals.get(p.round, {})
        if p.block_hash in known:
            return
        if not verified and not self._check_signature(proposer, p):
            out.append(PeerMisbehaved(peer, "bad_signature"))
            return
        self._note_round(p.proposer, p.round)
        if p.round > self.round + self.config.round_lookahead:
            return
        extra_allowed = p.round <= self.round and len(known) < MAX_PROPOSALS_PER_ROUND
        if known and not extra_allowed and not self._vouched(p.block_hash):
            return  # bounds memory against an equivocating proposer
        self._store_proposal(p, timely=self._is_timely(p, now))

    def _store_proposal(self, p: Proposal, *, timely: bool) -> None:
        self.proposals.setdefault(p.round, {})[p.block_hash] = p
        self.first_proposal.setdefault(p.round, p.block_hash)
        self.timely[(p.round, p.block_hash)] = timely

    def _is_timely(self, p: Proposal, now: int) -> bool:
        """[CONS-TIME.2] A fresh proposal's time is close to the receiver's clock."""
        if p.pol_round >= 0:
            return True
        c = self.config
        return (
            now - c.clock_precision_ms - c.message_delay_ms
            <= p.time_ms
            <= (now + c.clock_precision_ms)
        )

    def _vouched(self, block_hash: Hash32) -> bool:
        """Some honest validator saw this block: votes for it from more than f power."""
        return any(self.vset.exceeds_faulty(t.power_for(block_hash)) for t in self.tallies.values())

    def _on_vote(self, vote: Vote, peer: bytes | None, out: list[Action], verified: bool) -> None:
        member = self.vset.get(vote.validator)
        if member is None:
            out.append(PeerMisbehaved(peer, "unknown_validator"))
            return
        tally = self.tallies.get((vote.kind, vote.round))
        if tally is not None and tally.has_voted(vote):
            return  # duplicate
        if not verified and not self._check_signature(member, vote):
            out.append(PeerMisbehaved(peer, "bad_signature"))
            return
        self._count_vote(vote, member, out)

    def _count_vote(self, vote: Vote, member: Validator, out: list[Action]) -> None:
        self._note_round(vote.validator, vote.round)
        if vote.round > self.round + self.config.round_lookahead:
            return
        held = vote.block_hash is None or self._block_of(vote.block_hash) is not None
        counted, conflicting = self._tally(vote.kind, vote.round).add(vote, member.power, held=held)
        if conflicting is not None:
            slot = (vote.validator, vote.kind, int(vote.round))
            if slot not in self._evidenced:  # [CONS-EVIDENCE.2]
                self._evidenced.add(slot)
                out.append(ReportEvidence(DuplicateVoteEvidence.of(conflicting, vote)))
        if counted and vote.block_hash is not None:
            tally = self.tallies[(vote.kind, vote.round)]
            if self.vset.is_quorum(tally.power_for(vote.block_hash)):
                quorums = self.precommit_quorum if vote.kind == PRECOMMIT else self.prevote_quorum
                quorums.setdefault(vote.round, vote.block_hash)

    def _note_round(self, validator: Address, round_: int) -> None:
        if round_ > self.max_round_seen.get(validator, -1):
            self.max_round_seen[validator] = round_

    # ---------------------------------------------------------------- rules

    def _valid(self, block_hash: Hash32, block: bytes, time_ms: TimeMs) -> bool:
        """[CONS-VALID.1] Block time after the previous block's, and the application agrees."""
        key = (block_hash, int(time_ms))
        result = self._validity.get(key)
        if result is None:
            result = time_ms > self.last_block_time and self.app.validate(
                self.height, block_hash, block, time_ms
            )
            self._validity[key] = result
        return result

    def _valid_proposal(self, p: Proposal) -> bool:
        return self._valid(p.block_hash, p.block, p.time_ms)

    def _try_commit(self, now: int, out: list[Action]) -> bool:
        """[CONS-COMMIT.1] >2/3 precommits for a block we hold and find valid: decide it."""
        for r, block_hash in sorted(self.precommit_quorum.items()):
            found = self._block_of(block_hash)
            if found is None or not self._valid(block_hash, *found):
                continue
            cert = certificate_from_precommits(self.tallies[(PRECOMMIT, r)].votes_for(block_hash))
            self._commit(Decision(self.height, block_hash, found[1], found[0], cert), now, out)
            return True
        return False

    def _block_of(self, block_hash: Hash32) -> tuple[bytes, TimeMs] | None:
        for by_hash in self.proposals.values():
            p = by_hash.get(block_hash)
            if p is not None:
                return p.block, p.time_ms
        return self._extra_blocks.get(block_hash)

    # ---------------------------------------------------------------- transitions

    def retry_commit(self, now: int) -> list[Action]:
        """[CONS-COMMIT.2] Offers a deferred decision to the application again."""
        out: list[Action] = []
        d, self._deferred = self._deferred, None
        if d is not None and d.height == self.height:
            self._commit(d, now, out)
        return out

    @property
    def commit_deferred(self) -> bool:
        return self._deferred is not None

    def _commit(self, d: Decision, now: int, out: list[Action]) -> None:
        if self._deferred is not None:
            return  # the same block (one per height); only retry_commit offers it again
        try:
            self.app.decided(d)
        except CommitDeferred as e:
            self._deferred = d
            out.append(CommitStalled(d.height, str(e)))
            return
        out.append(Commit(d))
        self._enter_height(Height(self.height + 1), d.time_ms)
        self.entered_ms = now
        self._schedule(out, TimeoutKind.REBROADCAST, Round(0))
        # [CONS-TIMEOUT.2] always through a timer (possibly of 0 ms), so that one
        # validator alone commits one block per event instead of recursing.
        self._schedule(out, TimeoutKind.NEW_HEIGHT, Round(0))
        future, self._future = self._future, []
        for message in future:
            out.extend(self.on_message(message, now))

    def _start_or_rest(self, now: int, out: list[Action]) -> None:
        """[CONS-PACE.1] Round 0 starts when the application has something to record, or
        when a peer already started the height; otherwise rest and ask again later."""
        self.at_rest = self._should_rest(now)
        if self.at_rest:
            self._schedule(out, TimeoutKind.NEW_HEIGHT, Round(0), self.config.rest_check_ms)
        else:
            self._start_round(self.round, now, out)

    def _should_rest(self, now: int) -> bool:
        return (
            isinstance(self.app, Pacing)
            and not self._heard_of_height()
            and not self.app.block_due(self.height, self.graph_time(now))
        )

    def graph_time(self, now: int) -> int:
        """[CONS-PACE.2] ``max(now, tip time + (now - entered))``: a clock behind the one
        that stamped the tip still finds a block due when its peers do, since what elapsed
        on it since it committed the tip does not depend on its offset."""
        if self.entered_ms is None:
            self.entered_ms = now
        return max(now, int(self.last_block_time) + (now - self.entered_ms))

    def _heard_of_height(self) -> bool:
        """[CONS-PACE.1] The round's proposer proposed, or validators with more than f power
        voted at this height: one faulty validator cannot wake a graph at every height."""
        if self.proposals:
            return True
        members = (self.vset.get(a) for a in self.max_round_seen)
        return self.vset.exceeds_faulty(sum(m.power for m in members if m is not None))

    def _start_round(self, round_: Round, now: int, out: list[Action]) -> None:
        """[CONS-START.1] Enter ``round_``: propose if we are its proposer, else wait."""
        self.round, self.step, self.at_rest = round_, Step.PROPOSE, False
        if self.me is not None and self.vset.proposer(self.height, round_) == self.me:
            self._propose(now, out)
        self._schedule(out, TimeoutKind.PROPOSE, round_)
        self._progress(now, out)

    def _propose(self, now: int, out: list[Action]) -> None:
        """[CONS-PROPOSE.1] Re-propose the valid value if any, else ask the application."""
        existing = self.signed.get(("proposal", self.round))
        if isinstance(existing, Proposal):  # [CONS-WAL.2] never a second proposal
            out.append(Broadcast(existing))
            return
        if self.valid_value is not None and self.valid_round < self.round:
            block_hash, block, time_ms = self.valid_value
            pol_round = self.valid_round
        else:
            time_ms = TimeMs(max(now, self.last_block_time + 1))  # [CONS-TIME.1]
            block_hash, block = self.app.propose(self.height, self.round, time_ms)
            pol_round = Round(-1)
        if self.key is None:  # pragma: no cover - self.me implies a key
            return
        p = sign_proposal(
            self.key,
            self.config.chain_id,
            self.height,
            self.round,
            pol_round,
            block_hash,
            time_ms,
            block,
        )
        self.signed[("proposal", self.round)] = p
        out.append(PersistSigned(SignedRecord(p)))
        out.append(Broadcast(p))
        self._store_proposal(p, timely=True)
        if pol_round >= 0:
            self._broadcast_proof_of_lock(out)

    def _prevote(self, block_hash: Hash32 | None, out: list[Action]) -> None:
        self._vote(PREVOTE, block_hash, out)
        self.step = Step.PREVOTE

    def _precommit(self, block_hash: Hash32 | None, out: list[Action]) -> None:
        self._vote(PRECOMMIT, block_hash, out)
        self.step = Step.PRECOMMIT

    def _vote(self, kind: VoteKind, block_hash: Hash32 | None, out: list[Action]) -> None:
        """[CONS-WAL.1] Sign (or re-use what was signed), persist, then broadcast."""
        if self.me is None or self.key is None:
            return
        existing = self.signed.get((kind, self.round))
        if isinstance(existing, Vote):  # [CONS-WAL.2] never two votes for one slot
            out.append(Broadcast(existing))
            return
        vote = sign_vote(self.key, self.config.chain_id, kind, self.height, self.round, block_hash)
        self.signed[(kind, self.round)] = vote
        record = SignedRecord(vote)
        if kind == PRECOMMIT and block_hash is not None:
            found = self._block_of(block_hash)
            if found is not None:
                record = SignedRecord(vote, found[0], found[1])
        out.append(PersistSigned(record))
        out.append(Broadcast(vote))
        self._count_vote(vote, self.me, out)

    def _rebroadcast(self, out: list[Action]) -> None:
        """[CONS-GOSSIP.1] Re-send own votes of this and the previous round, and the proposal.

        Peers one round behind need our previous round's precommit to time out of it.
        """
        first = self.first_proposal.get(self.round)
        if first is not None:
            out.append(Broadcast(self.proposals[self.round][first]))
        for round_ in (self.round - 1, self.round):
            for kind in (PREVOTE, PRECOMMIT):
                message = self.signed.get((kind, round_))
                if message is not None:
                    out.append(Broadcast(message))
        self._broadcast_proof_of_lock(out)

    def _broadcast_proof_of_lock(self, out: list[Action]) -> None:
        """[CONS-GOSSIP.2] Relay the >2/3 prevotes that justify our valid value.

        A re-proposal with pol_round >= 0 is only accepted by validators that
        hold those prevotes [CONS-PREVOTE.2]; relaying them makes sure they do.
        """
        if self.valid_value is None or self.valid_round < 0:
            return
        tally = self.tallies.get((PREVOTE, self.valid_round))
        if tally is not None:
            out.extend(Broadcast(v) for v in tally.votes_for(self.valid_value[0]))

    def _schedule(
        self, out: list[Action], kind: TimeoutKind, round_: Round, delay: int | None = None
    ) -> None:
        if delay is None:
            delay = self.config.timeouts.duration_ms(kind, round_)
        out.append(ScheduleTimeout(Timeout(kind, self.height, round_), delay))

    # ---------------------------------------------------------------- queries

    def certificate_of(self, round_: Round, block_hash: Hash32) -> CommitCertificate | None:
        tally = self.tallies.get((PRECOMMIT, round_))
        if tally is None or not self.vset.is_quorum(tally.power_for(block_hash)):
            return None
        return certificate_from_precommits(tally.votes_for(block_hash))
