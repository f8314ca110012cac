"""Runs the sans-I/O consensus core: one owner, fed by a queue [NODE-CONS.3].

As CometBFT's ``receiveRoutine``, exactly one place touches the core:
``drain()``, which takes events (peer messages, timer firings, a deferred
commit's retry, blocks applied by block sync) from the inbox in order and
carries out each step's actions, each finished before the next [CONS-WAL.1]:
``PersistSigned`` is appended to the WAL and fsynced before a following
``Broadcast`` leaves. In a node the owner is the task ``run()`` (started and
cancelled by the node with its other tasks); the gossip read path only checks
a message and queues it (``on_gossip``), so block validation and the commit's
fsync never run inside it. A timer's firing, and a consensus message once the
gossip layer forwarded it, are drained at once in that callback (``drain_now``):
waking the owner would cost a turn of the event loop. The simulator
(``tests/consensus/sim.py``) calls the same ``submit``/``drain`` on a virtual clock.

Time and timers are injected (``Clock``, ``Scheduler``), the WAL too
(``SignedLog``), so tests run this very driver without sleeping.

Gossip check [NODE-CONS.2]: a consensus payload is one encoded proposal or
vote, nothing else; its gossip id is SHA-256 of those bytes. The check
answers ``REJECT`` (charge the sender) for a malformed message, a signer that
is not a validator of the message's height (or not its proposer), a bad
signature or a proposal whose block does not hash to its ``block_hash``;
``IGNORE`` for a message of another height or one this node already holds
(same signer, same signed content: ``content_id``); ``ACCEPT`` only for a valid
new one, which is then queued for the core.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass

from chain.consensus.actions import (
    Action,
    Broadcast,
    Commit,
    CommitStalled,
    PeerMisbehaved,
    PersistSigned,
    ReportEvidence,
    ScheduleTimeout,
)
from chain.consensus.codec import decode_message, encode_message
from chain.consensus.config import ConsensusConfig
from chain.consensus.core import ConsensusCore, SignatureCheck
from chain.consensus.errors import ConsensusError
from chain.consensus.evidence import DuplicateVoteEvidence
from chain.consensus.messages import MAX_MESSAGE_BYTES, Proposal, ProposalRefs, Vote
from chain.consensus.timeouts import Timeout, TimeoutKind
from chain.consensus.validators import ValidatorSet
from chain.consensus.wal import SignedRecord
from chain.crypto import PrivateKey, sha256, verify
from chain.encoding import encode
from chain.errors import DecodeError
from chain.types import Hash32, Height, TimeMs
from client.node.driver_io import Clock, LoopScheduler, Scheduler, SignedLog, SystemClock
from client.node.driver_io import TimerHandle as TimerHandle
from client.node.ledger_app import LedgerApp, NodeHalted
from client.node.step_times import StepTimes
from client.node.write_stall import WriteStall
from p2p.gossip_core import Verdict

log = logging.getLogger("learningchain.consensus")

CONSENSUS_TOPIC = "consensus"
MAX_PAYLOAD_BYTES = MAX_MESSAGE_BYTES
WAL_PRUNE_EVERY = 64
REFS_WAIT_S = 2.0
"""How long a proposal by reference waits for its missing transactions."""
REFS_RETRY_S = 0.01


# -- events ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PeerMessage:
    message: Proposal | Vote
    peer: bytes | None
    verified: bool
    """Signature already checked against the set of the message's height."""


@dataclass(frozen=True, slots=True)
class TimerFired:
    timeout: Timeout


@dataclass(frozen=True, slots=True)
class RetryCommit:
    """[CONS-COMMIT.2] Offer the deferred decision to the application again."""


@dataclass(frozen=True, slots=True)
class Synced:
    """Block sync applied blocks the core did not decide [NODE-APP.4]."""


@dataclass(frozen=True, slots=True)
class Wake:
    """[CONS-PACE.1] A transaction reached the mempool: a core at rest starts its height."""


Event = PeerMessage | TimerFired | RetryCommit | Synced | Wake


def content_id(message: Proposal | Vote | ProposalRefs, chain_id: str) -> Hash32:
    """[NODE-CONS.2] Who signed what: SHA-256 of (signer, signed digest); a proposal by
    reference has its proposal's [CONS-MSG.3].

    Not the payload's hash: a validator can sign the same content many times
    (ECDSA nonces), and only the first copy is news."""
    signer = message.validator if isinstance(message, Vote) else message.proposer
    return sha256(encode([signer, message.digest(chain_id)]))


class ConsensusDriver:
    """One validator's (or observer's) consensus engine, wired to gossip and the WAL."""

    def __init__(
        self,
        app: LedgerApp,
        key: PrivateKey | None,
        config: ConsensusConfig,
        wal: SignedLog,
        history: list[SignedRecord],
        publish: Callable[[bytes], None],
        *,
        clock: Clock | None = None,
        scheduler: Scheduler | None = None,
        check_signature: SignatureCheck = verify,
        core_class: type[ConsensusCore] = ConsensusCore,
        on_evidence: Callable[[DuplicateVoteEvidence], None] | None = None,
        on_misbehaviour: Callable[[bytes | None, str], None] | None = None,
        on_halt: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.app = app
        self.key = key
        self.config = config
        self.publish = publish
        """Sends one consensus payload; the gossip layer re-sends a payload it already
        sent to peers that may have missed it [WIRE-GOSSIP.10]."""
        self.clock: Clock = clock or SystemClock()
        self.scheduler: Scheduler = scheduler or LoopScheduler()
        self.check_signature = check_signature
        self.core_class = core_class
        self.on_evidence = on_evidence
        self.on_misbehaviour = on_misbehaviour
        self.on_halt = on_halt
        self.wal = wal
        self._history = history
        self.core: ConsensusCore | None = None
        self._timers: set[TimerHandle] = set()
        self._inbox: deque[Event] = deque()
        self._draining = False
        self._wake: asyncio.Event | None = None
        self._known: dict[Hash32, int] = {}
        """[NODE-CONS.2] Content ids of messages taken or sent, by height."""
        self._pruned_at = 0
        self.commit_latencies_ms: list[float] = []
        self.on_commit_latency: Callable[[float], None] | None = None
        """Metrics hook: seconds from entering a height to deciding it, at each decision."""
        self.step_times = StepTimes()
        """Metrics: seconds in each consensus step (``step_times.on_time``)."""
        self.stats: Counter[str] = Counter()
        """Metrics: ``rounds_above_zero`` entered, ``timeout:<kind>`` that moved the core,
        ``gossip:<verdict>`` of the consensus topic."""
        self._height_started = self.clock.monotonic()
        self.halted: BaseException | None = None
        self.commit_stall = WriteStall()
        """[CONS-COMMIT.2] The decided block the database refuses (a lock, a full disk)."""
        self.wal_stall = WriteStall()
        """[CONS-WAL.3] The signed message the WAL cannot take (a full disk)."""
        self._held: tuple[list[Action], float | None] | None = None
        """[CONS-WAL.3] A step's actions from the unwritten ``PersistSigned`` on."""
        self.before_proposal: Callable[[], None] | None = None
        """Called before a proposal is sent by reference (flushes the node's tx gossip)."""
        self.compact: Callable[[], bool] = lambda: False
        """Whether to send own proposals by reference first [NODE-CONS.4]: the node answers
        true while every peer it has said it reads them."""
        self.short_ids: Callable[[], bool] = lambda: False
        """Whether that first copy names transactions by short ids [CONS-MSG.4]: true while
        every peer said it reads those too."""
        self._refs_sent: set[Hash32] = set()
        self._refs_pending: dict[Hash32, tuple[ProposalRefs, bytes | None, float]] = {}
        self._refs_timer: TimerHandle | None = None

    def now(self) -> int:
        return self.clock.now_ms()

    @property
    def commit_stalled(self) -> str | None:
        """[CONS-COMMIT.2] Why the decided block is not stored yet (e.g. a locked database)."""
        return self.commit_stall.reason

    @property
    def wal_blocked(self) -> str | None:
        """[CONS-WAL.3] Why what this node signed cannot be written to its WAL yet."""
        return self.wal_stall.reason

    @property
    def round(self) -> int:
        return int(self.core.round) if self.core is not None else 0

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        """Builds the core at the next undecided height and carries out its first step."""
        self._cancel_timers()
        height = Height(self.app.height() + 1)
        state = self.app.ledger.state
        self.core = self.core_class(
            self.config, self.app, self.key, height, TimeMs(state.time_ms),
            signed_history=self._history, check_signature=self.check_signature,
        )
        self._height_started = self.clock.monotonic()
        self._known.clear()  # a new core holds nothing: what the old one buffered is gone
        self._run_step(self.core, lambda core: core.start(self.now()))

    async def run(self) -> None:
        """The owner task [NODE-CONS.3]: drains the inbox whenever an event arrives."""
        self._wake = asyncio.Event()
        try:
            while True:
                self.drain()
                await self._wake.wait()
                self._wake.clear()
        finally:
            self._wake = None

    def stop(self) -> None:
        self._cancel_timers()
        self._inbox.clear()
        self.core = None
        self.wal.close()

    def _cancel_timers(self) -> None:
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()

    # -- inputs: queued, then drained by the owner -------------------------------

    def submit(self, event: Event) -> None:
        self._inbox.append(event)
        if self._wake is not None:
            self._wake.set()

    def wake(self) -> None:
        """[CONS-PACE.1] Called on every admitted transaction; queues only when at rest."""
        if self.core is not None and self.core.at_rest:
            self.submit(Wake())

    def resync(self) -> None:
        """Block sync applied blocks: the owner rebuilds the core at the new height."""
        self.submit(Synced())

    def drain(self) -> None:
        """Handles every queued event, in order. The only code that touches the core."""
        self._draining = True
        try:
            while self._inbox and self.halted is None and self._held is None:
                self.dispatch(self._inbox.popleft())
        finally:
            self._draining = False

    def drain_now(self) -> None:
        """[NODE-CONS.3] Drains in the caller's callback (a timer's, or the gossip layer's
        once it forwarded a consensus message) instead of a loop turn later in the owner
        task: under load one turn of the event loop runs every ready callback, and the wait
        after a commit [CONS-TIMEOUT.2] took 242-308 ms instead of its 100 ms (4 validators
        on 2 cores, ``bench/devnet.py``'s ``step_mean_ms``; 140-158 ms drained at once).
        Only while the owner runs, and never inside a drain."""
        if self._wake is None or self._draining:
            return
        try:
            self.drain()
        except Exception as e:  # in the owner task it would have ended consensus silently
            log.exception("consensus step failed")
            self._halt(NodeHalted(f"consensus step failed: {e!r}"))

    def dispatch(self, event: Event) -> None:
        core = self.core
        if core is None:
            return
        if core.height <= self.app.height():
            # [CONS-CATCHUP.1] Block sync applied this height (and maybe more) before its
            # Synced event came round: stepping the old core would have it propose or vote
            # on a height already stored (a node restarted behind did, in the soak).
            self.jump_after_sync()
            if self.core is None or self.core.height <= self.app.height():
                return
            core = self.core
        if isinstance(event, PeerMessage):
            self._run_step(core, lambda c: c.on_message(
                event.message, self.now(), event.peer, verified=event.verified))
        elif isinstance(event, TimerFired):
            before = (core.height, core.round, core.step)
            self._run_step(core, lambda c: c.on_timeout(event.timeout, self.now()))
            if (core.height, core.round, core.step) != before:
                self.stats[f"timeout:{event.timeout.kind.value}"] += 1
        elif isinstance(event, Wake):
            self._run_step(core, lambda c: c.wake(self.now()))
        elif isinstance(event, RetryCommit):
            self._run_step(core, lambda c: c.retry_commit(self.now()))

    def jump_after_sync(self) -> None:
        """[CONS-CATCHUP.1] Rebuilds the core at the ledger's next height."""
        log.info("consensus: jumping to height %d after sync", self.app.height() + 1)
        self.start()

    def on_gossip(self, data: bytes, sender: bytes | None) -> Verdict:
        """Topic validator of ``consensus`` [NODE-CONS.1/2]: check, queue, answer."""
        try:
            message = decode_message(data) if len(data) <= MAX_PAYLOAD_BYTES else None
        except (ConsensusError, DecodeError):
            message = None
        if isinstance(message, ProposalRefs):
            verdict = self.receive_refs(message, sender)
        else:
            verdict = Verdict.REJECT if message is None else self.receive(message, sender)
        self.stats[f"gossip:{verdict.value}"] += 1
        return verdict

    def receive(self, message: Proposal | Vote, sender: bytes | None) -> Verdict:
        """[NODE-CONS.2] Checks a peer's message without the core, queues it if valid and new.
        Nothing is queued while the WAL holds a step back [CONS-WAL.3]: the inbox stays
        bounded, and what was missed comes again [CONS-GOSSIP.1] or by block sync."""
        core = self.core
        if core is None or self.halted is not None or self._held is not None:
            return Verdict.IGNORE
        if not core.height <= message.height <= core.height + 1:
            return Verdict.IGNORE  # decided or far ahead: block sync serves those heights
        cid = content_id(message, self.config.chain_id)
        if cid in self._known:
            return Verdict.IGNORE
        vset = self._set_of(message.height)
        if vset is None:
            return Verdict.IGNORE
        if isinstance(message, Proposal):
            member = vset.proposer(message.height, message.round)
            if member.address != message.proposer:
                return Verdict.REJECT
        else:
            found = vset.get(message.validator)
            if found is None:
                return Verdict.REJECT
            member = found
        digest = message.digest(self.config.chain_id)
        if not self.check_signature(member.public_key, digest, message.signature):
            return Verdict.REJECT
        if isinstance(message, Proposal) and not self.app.block_matches(
            message.block_hash, message.block
        ):
            return Verdict.REJECT
        self._known[cid] = int(message.height)
        if core.has_counted(message):
            return Verdict.IGNORE
        self.submit(PeerMessage(message, sender, verified=True))
        return Verdict.ACCEPT

    def receive_refs(self, refs: ProposalRefs, sender: bytes | None) -> Verdict:
        """A proposal by reference: checked as far as it can be without its transactions,
        then expanded from the mempool now or as its missing transactions arrive."""
        core = self.core
        if core is None or self.halted is not None or self._held is not None:
            return Verdict.IGNORE
        if not core.height <= refs.height <= core.height + 1:
            return Verdict.IGNORE
        shell = refs.shell()
        cid = content_id(shell, self.config.chain_id)
        if cid in self._known or cid in self._refs_pending:
            return Verdict.IGNORE
        vset = self._set_of(refs.height)
        if vset is None:
            return Verdict.IGNORE
        member = vset.proposer(shell.height, shell.round)
        if member.address != shell.proposer or not self.app.refs_consistent(refs):
            return Verdict.REJECT
        if not self.check_signature(member.public_key, shell.digest(self.config.chain_id),
                                    shell.signature):
            return Verdict.REJECT
        full = self.app.expand(refs)
        if full is not None:
            self.stats["refs:expanded"] += 1
            self.receive(full, sender)
            return Verdict.ACCEPT
        self.stats["refs:waiting"] += 1
        self._refs_pending[cid] = (refs, sender, self.clock.monotonic() + REFS_WAIT_S)
        self._arm_refs_timer()
        return Verdict.ACCEPT

    def _arm_refs_timer(self) -> None:
        if self._refs_timer is None and self._refs_pending:
            self._refs_timer = self.scheduler.call_later(REFS_RETRY_S, self._retry_refs)

    def _retry_refs(self) -> None:
        self._refs_timer = None
        now = self.clock.monotonic()
        for cid, (refs, sender, until) in list(self._refs_pending.items()):
            full = self.app.expand(refs)
            if full is not None:
                del self._refs_pending[cid]
                self.stats["refs:expanded_late"] += 1
                self.receive(full, sender)
            elif now > until or self.core is None or refs.height < self.core.height:
                del self._refs_pending[cid]
                self.stats["refs:gave_up"] += 1
        self._arm_refs_timer()
        self.drain_now()

    def _set_of(self, height: int) -> ValidatorSet | None:
        try:
            return self.app.validators_at(Height(height))
        except ValueError:
            return None

    def _forget_known_below(self, height: int) -> None:
        self._known = {c: h for c, h in self._known.items() if h >= height}

    def _on_timer(self, handle_box: list[TimerHandle], timeout: Timeout) -> None:
        if handle_box:
            self._timers.discard(handle_box[0])
        self.submit(TimerFired(timeout))
        self.drain_now()

    def _run_step(self, core: ConsensusCore, run: Callable[[ConsensusCore], list[Action]]) -> None:
        if self.halted is not None:
            return
        position = (core.height, core.round)
        resting = core.at_rest
        started = self.clock.monotonic()
        try:
            actions = run(core)
        except NodeHalted as e:
            self._halt(e)
            return
        if resting and not core.at_rest and core.height == position[0]:
            self._height_started = self.clock.monotonic()  # latency counts from the start
        if core.round > 0 and (core.height, core.round) != position:
            self.stats["rounds_above_zero"] += 1
        if core is self.core:  # a step that decided: the pause after it counts from its start
            self._execute(actions, started if core.height != position[0] else None)
        self.step_times.after(core, position[0], started, self.clock.monotonic())
        if self.core is not None and self.core.height != position[0]:
            self._forget_known_below(self.core.height)

    def _halt(self, error: BaseException) -> None:
        log.critical("consensus halted: %s", error)
        self.halted = error
        self._cancel_timers()
        if self.on_halt is not None:
            self.on_halt(error)

    # -- actions ---------------------------------------------------------------

    def _execute(self, actions: list[Action], decided_at: float | None = None) -> None:
        """Carries out one step's actions in order, each complete before the next [CONS-WAL.1].
        A record the WAL cannot take holds it and every later action back [CONS-WAL.3]."""
        for index, action in enumerate(actions):
            if isinstance(action, PersistSigned):
                try:
                    self._persist(action.record)
                except OSError as e:  # e.g. the disk is full: nothing signed leaves unwritten
                    self._hold(actions[index:], decided_at, e)
                    return
            elif isinstance(action, Broadcast):
                self._send(action.message)
            elif isinstance(action, ScheduleTimeout):
                self._schedule(action, decided_at)
            elif isinstance(action, Commit):
                self._on_commit(action)
            elif isinstance(action, CommitStalled):
                self._on_commit_stalled(action)
            elif isinstance(action, ReportEvidence) and self.on_evidence is not None:
                self.on_evidence(action.evidence)
            elif isinstance(action, PeerMisbehaved) and self.on_misbehaviour is not None:
                self.on_misbehaviour(action.peer, action.code)

    def _send(self, message: Proposal | Vote) -> None:
        """[NODE-CONS.1] The payload is the message itself; a repeat [CONS-GOSSIP.1] is the
        same payload, which the gossip layer re-sends to peers [WIRE-GOSSIP.10]."""
        cid = content_id(message, self.config.chain_id)
        self._known.setdefault(cid, int(message.height))
        if isinstance(message, Proposal) and cid not in self._refs_sent and self.compact():
            refs = self.app.compact(message)
            if refs is not None:  # first send by reference; a repeat in full
                if self.short_ids():
                    refs = refs.to_short()
                self._refs_sent.add(cid)
                if self.before_proposal is not None:
                    self.before_proposal()
                self.publish(encode_message(refs))
                return
        self.publish(encode_message(message))

    def _schedule(self, action: ScheduleTimeout, decided_at: float | None = None) -> None:
        delay = action.delay_ms / 1000
        if decided_at is not None and action.timeout.kind is TimeoutKind.NEW_HEIGHT:
            # [CONS-TIMEOUT.2] the pause counts from the decision, as CometBFT's
            # timeout_commit from its CommitTime: storing the block is part of it
            delay = max(0.0, delay - (self.clock.monotonic() - decided_at))
        box: list[TimerHandle] = []
        handle = self.scheduler.call_later(delay, lambda: self._on_timer(box, action.timeout))
        box.append(handle)
        self._timers.add(handle)

    def _persist(self, record: SignedRecord) -> None:
        self.wal.append(record)
        self._history.append(record)

    def _hold(self, actions: list[Action], decided_at: float | None, error: OSError) -> None:
        """[CONS-WAL.3] Stop stepping the core, say why, and write the record again later."""
        self._held = (actions, decided_at)
        self.stats["wal_deferred"] += 1
        delay = self.wal_stall.failed("a signed message",
                                      f"cannot write the consensus WAL: {error}",
                                      self.clock.monotonic())
        self._timers.add(self.scheduler.call_later(delay, self._retry_held))

    def _retry_held(self) -> None:
        held, self._held = self._held, None
        if held is None or self.halted is not None:
            return
        self._execute(*held)  # holds again while the disk is still full
        if self._held is None:
            self.wal_stall.stored("a signed message", self.clock.monotonic())
            if self._wake is not None:
                self._wake.set()  # the owner takes what was queued meanwhile
            self.drain_now()

    def _on_commit_stalled(self, action: CommitStalled) -> None:
        """[CONS-COMMIT.2] Say why, keep serving, and offer the decision again later."""
        self.stats["commit_deferred"] += 1
        delay = self.commit_stall.failed(f"decided block {action.height}", action.reason,
                                         self.clock.monotonic())
        self._timers.add(self.scheduler.call_later(delay, lambda: self.submit(RetryCommit())))

    def _on_commit(self, action: Commit) -> None:
        height = int(action.decision.height)
        now = self.clock.monotonic()
        self.commit_stall.stored(f"decided block {height}", now)
        elapsed = (now - self._height_started) * 1000
        self.commit_latencies_ms.append(elapsed)
        if self.on_commit_latency is not None:
            self.on_commit_latency(elapsed / 1000)
        del self.commit_latencies_ms[:-1000]
        self._height_started = now
        self._history = [r for r in self._history if r.message.height > height]
        if height - self._pruned_at >= WAL_PRUNE_EVERY:
            try:
                self.wal.prune(height + 1)
                self._pruned_at = height
            except OSError as e:  # a full disk: the log is as it was, pruned at a later height
                log.warning("cannot prune the consensus WAL yet: %s", e)
