"""Runs the sans-I/O consensus core on the node's event loop.

The core decides; this driver only carries out its actions, in order, each
finished before the next [CONS-WAL.1]: ``PersistSigned`` is appended to the
WAL and fsynced before a following ``Broadcast`` leaves. Consensus messages
travel on the gossip topic ``consensus``; lagging peers catch up through
block sync (``p2p.sync``), which is why ``SendCommitted`` needs no work here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from chain.consensus.actions import (
    Action,
    Broadcast,
    Commit,
    CommitStalled,
    PeerMisbehaved,
    PersistSigned,
    ReportEvidence,
    ScheduleTimeout,
    SendCommitted,
)
from chain.consensus.codec import decode_message, encode_message
from chain.consensus.config import ConsensusConfig
from chain.consensus.core import ConsensusCore
from chain.consensus.errors import ConsensusError
from chain.consensus.evidence import DuplicateVoteEvidence
from chain.consensus.messages import Proposal, Vote
from chain.consensus.timeouts import Timeout
from chain.consensus.wal import SignedRecord, WriteAheadLog
from chain.crypto import PrivateKey
from chain.encoding import decode, encode
from chain.errors import DecodeError
from chain.types import Height, TimeMs
from client.node.ledger_app import LedgerApp, NodeHalted
from p2p.gossip_core import Verdict

log = logging.getLogger("learningchain.consensus")
_RETRY_FIRST = 0.25
_RETRY_MAX = 4.0
"""Seconds between attempts to store a deferred decision (doubling)."""

CONSENSUS_TOPIC = "consensus"
MAX_ENVELOPE_BYTES = 3 * 1024 * 1024
WAL_PRUNE_EVERY = 64


class ConsensusDriver:
    """One validator's (or observer's) consensus engine, wired to gossip and the WAL."""

    def __init__(
        self,
        app: LedgerApp,
        key: PrivateKey | None,
        config: ConsensusConfig,
        wal_path: Path,
        publish: Callable[[bytes], None],
        *,
        on_evidence: Callable[[DuplicateVoteEvidence], None] | None = None,
        on_misbehaviour: Callable[[bytes | None, str], None] | None = None,
        on_halt: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.app = app
        self.key = key
        self.config = config
        self.publish = publish
        self.on_evidence = on_evidence
        self.on_misbehaviour = on_misbehaviour
        self.on_halt = on_halt
        self.wal, self._history = WriteAheadLog.open(wal_path)
        self.core: ConsensusCore | None = None
        self._timers: set[asyncio.TimerHandle] = set()
        self._pruned_at = 0
        self.commit_latencies_ms: list[float] = []
        self.on_commit_latency: Callable[[float], None] | None = None
        """Metrics hook: seconds from entering a height to deciding it, at each decision."""
        self.stats: Counter[str] = Counter()
        """Metrics: ``rounds_above_zero`` entered, ``timeout:<kind>`` that moved the core."""
        self._height_started = time.monotonic()
        self.halted: BaseException | None = None
        self.commit_stalled: str | None = None
        """[CONS-COMMIT.2] Why the decided block is not stored yet (e.g. a locked database)."""
        self._stalled_since = 0.0
        self._retry_delay = _RETRY_FIRST
        self._sent = int(time.time() * 1000) << 16
        """Envelope sequence; starts from the clock so a restart does not reuse numbers."""

    @staticmethod
    def now() -> int:
        return int(time.time() * 1000)

    @property
    def round(self) -> int:
        return int(self.core.round) if self.core is not None else 0

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        """Starts (or restarts, after block sync moved the ledger) at the next undecided height."""
        self._cancel_timers()
        height = Height(self.app.height() + 1)
        state = self.app.ledger.state
        self.core = ConsensusCore(
            self.config, self.app, self.key, height,
            TimeMs(state.time_ms), signed_history=self._history,
        )
        self._height_started = time.monotonic()
        self._execute(self.core.start(self.now()))

    def resync(self) -> None:
        """Block sync applied blocks the core did not decide: rebuild it at the new height."""
        if self.core is not None and self.core.height <= self.app.height():
            log.info("consensus: jumping to height %d after sync", self.app.height() + 1)
            self.start()

    def stop(self) -> None:
        self._cancel_timers()
        self.core = None
        self.wal.close()

    def _cancel_timers(self) -> None:
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()

    # -- inputs ----------------------------------------------------------------

    def on_gossip(self, data: bytes, sender: bytes | None) -> Verdict:
        """Topic validator of ``consensus``: decode, hand to the core, forward if well-formed."""
        try:
            envelope = decode(data, max_size=MAX_ENVELOPE_BYTES)
            if not (isinstance(envelope, list) and len(envelope) == 2
                    and isinstance(envelope[0], int) and isinstance(envelope[1], bytes)):
                return Verdict.REJECT
            message = decode_message(envelope[1])
        except (ConsensusError, DecodeError):
            return Verdict.REJECT
        if not isinstance(message, Proposal | Vote):
            return Verdict.REJECT
        if self.core is None or self.halted is not None:
            return Verdict.IGNORE
        if message.height < self.core.height - 1:
            return Verdict.IGNORE  # old news: do not spread it further
        self._step(lambda core: core.on_message(message, self.now(), sender))
        return Verdict.ACCEPT

    def _on_timer(self, handle_box: list[asyncio.TimerHandle], timeout: Timeout) -> None:
        if handle_box:
            self._timers.discard(handle_box[0])
        core = self.core
        before = (core.height, core.round, core.step) if core is not None else None
        self._step(lambda core: core.on_timeout(timeout, self.now()))
        if core is not None and (core.height, core.round, core.step) != before:
            self.stats[f"timeout:{timeout.kind.value}"] += 1

    def _step(self, run: Callable[[ConsensusCore], list[Action]]) -> None:
        core = self.core
        if core is None or self.halted is not None:
            return
        position = (core.height, core.round)
        try:
            actions = run(core)
        except NodeHalted as e:
            self._halt(e)
            return
        if core.round > 0 and (core.height, core.round) != position:
            self.stats["rounds_above_zero"] += 1
        if core is self.core:
            try:
                self._execute(actions)
            except OSError as e:  # e.g. the disk is full: the WAL cannot be made durable
                self._halt(NodeHalted(f"cannot write the consensus WAL: {e}; "
                                      "nothing was signed past it, restart once fixed"))

    def _halt(self, error: BaseException) -> None:
        log.critical("consensus halted: %s", error)
        self.halted = error
        self._cancel_timers()
        if self.on_halt is not None:
            self.on_halt(error)

    # -- actions ---------------------------------------------------------------

    def _execute(self, actions: list[Action]) -> None:
        loop = asyncio.get_running_loop()
        for action in actions:
            if isinstance(action, PersistSigned):
                self._persist(action.record)
            elif isinstance(action, Broadcast):
                self.publish(self._envelope(action.message))
            elif isinstance(action, ScheduleTimeout):
                box: list[asyncio.TimerHandle] = []
                handle = loop.call_later(
                    action.delay_ms / 1000, self._on_timer, box, action.timeout
                )
                box.append(handle)
                self._timers.add(handle)
            elif isinstance(action, Commit):
                self._on_commit(action)
            elif isinstance(action, CommitStalled):
                self._on_commit_stalled(action)
            elif isinstance(action, SendCommitted):
                pass  # block sync serves decided blocks to lagging peers
            elif isinstance(action, ReportEvidence) and self.on_evidence is not None:
                self.on_evidence(action.evidence)
            elif isinstance(action, PeerMisbehaved) and self.on_misbehaviour is not None:
                self.on_misbehaviour(action.peer, action.code)

    def _envelope(self, message: Proposal | Vote) -> bytes:
        """[NODE-CONS.1] ``[send sequence, message]``: each (re)broadcast is a new gossip
        message, so a rebroadcast reaches peers that missed the first copy instead of being
        dropped by gossip de-duplication; the core counts a message once however often it
        arrives."""
        self._sent += 1
        return encode([self._sent, encode_message(message)])

    def _persist(self, record: SignedRecord) -> None:
        self.wal.append(record)
        self._history.append(record)

    def _on_commit_stalled(self, action: CommitStalled) -> None:
        """[CONS-COMMIT.2] Say why, keep serving, and offer the decision again later."""
        now = time.monotonic()
        if self.commit_stalled is None:
            self._stalled_since = now
            self._retry_delay = _RETRY_FIRST
            log.error("cannot store decided block %d yet: %s; retrying, the node keeps serving",
                      action.height, action.reason)
        elif action.reason != self.commit_stalled:
            log.error("block %d still not stored after %.1f s: %s", action.height,
                      now - self._stalled_since, action.reason)
        self.commit_stalled = action.reason
        self.stats["commit_deferred"] += 1
        handle = asyncio.get_running_loop().call_later(self._retry_delay, self._retry_commit)
        self._timers.add(handle)
        self._retry_delay = min(_RETRY_MAX, self._retry_delay * 2)

    def _retry_commit(self) -> None:
        self._step(lambda core: core.retry_commit(self.now()))

    def _on_commit(self, action: Commit) -> None:
        height = int(action.decision.height)
        if self.commit_stalled is not None:
            log.warning("decided block %d stored after %.1f s of waiting", height,
                        time.monotonic() - self._stalled_since)
            self.commit_stalled = None
        elapsed = (time.monotonic() - self._height_started) * 1000
        self.commit_latencies_ms.append(elapsed)
        if self.on_commit_latency is not None:
            self.on_commit_latency(elapsed / 1000)
        del self.commit_latencies_ms[:-1000]
        self._height_started = time.monotonic()
        if height - self._pruned_at >= WAL_PRUNE_EVERY:
            self.wal.prune(height + 1)
            self._history = [r for r in self._history if r.message.height > height]
            self._pruned_at = height
        else:
            self._history = [r for r in self._history if r.message.height > height]
