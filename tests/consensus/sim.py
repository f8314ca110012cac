"""A deterministic simulated network of real nodes' consensus [CONS-SIM].

Each simulated node runs what a node runs: the real ``ConsensusDriver`` (its
queue, its dispatch, its gossip check) over the real ``LedgerApp`` and a real
``chain.Ledger`` (storage in memory, ``sim_ledger``), with a virtual clock and
scheduler injected; the node's own block sync (``p2p.sync.BlockSync`` over a
simulated transport, ``sim_sync``: status / getblocks / blocks, applied
through ``LedgerApp.apply`` and the driver's ``Synced`` event) is the only
catch-up path, as in a node [CONS-CATCHUP.1]. Everything random comes from one
``random.Random(seed)``; time is simulated (ms on a heap of events), so a seed
replays exactly. The network delays, drops, duplicates and reorders; a
partition heals; nodes crash (even between two I/O operations of one step:
the WAL, a send, the block store are named fault points) and restart from
their WAL and block store; storage can be busy; up to f validators are
Byzantine (``sim_byzantine``).

Signature checking: ``fast=True`` injects a trusting check into every driver
and core (the bulk scenarios, as ``AmnesiaCore`` is injected); block sync and
the invariant checker still verify every certificate with real signatures.
"""

from __future__ import annotations

import errno
import heapq
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chain.consensus.certificate import decode_certificate, verify_certificate
from chain.consensus.codec import decode_message
from chain.consensus.config import ConsensusConfig
from chain.consensus.core import ConsensusCore
from chain.consensus.evidence import DuplicateVoteEvidence, check_evidence
from chain.consensus.messages import PRECOMMIT, PREVOTE, Proposal, Vote
from chain.consensus.timeouts import TimeoutConfig
from chain.consensus.validators import ValidatorSet
from chain.consensus.wal import SignedRecord, WriteAheadLog
from chain.crypto import PrivateKey, verify
from chain.mempool import Mempool
from chain.transactions import SignedTransaction, Transfer, sign_transaction
from chain.types import Address, Amount, Round, TimeMs
from client.node.consensus_driver import ConsensusDriver, TimerHandle
from client.node.ledger_app import LedgerApp
from p2p.gossip_core import Verdict
from p2p.scoring import Offence
from p2p.sync import BlockSync
from tests.consensus.sim_byzantine import Byzantine, LyingSync
from tests.consensus.sim_ledger import memory_ledger, sim_genesis
from tests.consensus.sim_scenario import Scenario, lagging_scenario, random_scenario
from tests.consensus.sim_sync import SimLinks, SimSyncTransport

CHAIN_ID = "lc-sim"
GENESIS_TIME = TimeMs(1_700_000_000_000)
SIM_TIMEOUTS = TimeoutConfig(
    propose_base_ms=300, propose_delta_ms=100, prevote_base_ms=200, prevote_delta_ms=100,
    precommit_base_ms=200, precommit_delta_ms=100, commit_ms=0, rebroadcast_ms=500,
)

_KEYS: dict[tuple[int, int], PrivateKey] = {}
DELIVER, TIMER, CRASH, RESTART, LINKS, TX = range(6)


def sim_key(i: int, salt: int = 0) -> PrivateKey:
    key = _KEYS.get((i, salt))
    if key is None:
        key = _KEYS[(i, salt)] = PrivateKey.from_seed(b"lc-sim-validator-%d-%d" % (salt, i))
    return key


def trust_every_signature(public_key: bytes, digest: bytes, signature: bytes) -> bool:
    """The simulator's named fast mode; never in a node."""
    return True


class AmnesiaCore(ConsensusCore):
    """A Byzantine validator that forgets its lock: prevotes every valid proposal."""

    def _rule_prevote(self, out: list[Any]) -> bool:
        self.locked_round, self.locked_hash = Round(-1), None
        return super()._rule_prevote(out)


class SimCrash(BaseException):
    """A simulated crash at a fault point; unwinds through the node's code like a kill."""


class InvariantViolation(AssertionError):
    pass


class SimWal:
    """The WAL port: a real fsynced file (``wal_dir``) or memory, plus the checker's view."""

    def __init__(self, net: SimNetwork, node: SimNode) -> None:
        self.net, self.node = net, node

    def append(self, record: SignedRecord) -> None:
        self.node.fault_point()
        window = self.net.sc.wal_full.get(self.node.index)
        if window is not None and window[0] <= self.net.now < window[1]:
            raise OSError(errno.ENOSPC, "No space left on device (simulated)")
        if self.node.wal_file is not None:
            self.node.wal_file.append(record)
        self.node.wal.append(record)
        self.node.wal_set.add(record.message)
        self.net.note_signed(self.node, record.message)

    def prune(self, keep_from_height: int) -> None:
        self.node.wal = [r for r in self.node.wal if r.message.height >= keep_from_height]
        if self.node.wal_file is not None:
            self.node.wal_file.prune(keep_from_height)

    def close(self) -> None:
        pass


class _Timer:
    __slots__ = ("cancelled",)

    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class SimPorts:
    """The injected ``Clock`` and ``Scheduler`` of one node incarnation."""

    def __init__(self, net: SimNetwork, node: SimNode) -> None:
        self.net, self.node, self.incarnation = net, node, node.incarnation

    def now_ms(self) -> int:
        return GENESIS_TIME + self.net.now + self.net.sc.skew.get(self.node.index, 0)

    def monotonic(self) -> float:
        return self.net.now / 1000

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> TimerHandle:
        timer = _Timer()
        at = self.net.now + round(delay_s * 1000)
        self.net.push(at, TIMER, self.node.index, (self.incarnation, timer, callback))
        return timer


class SimNode:
    def __init__(self, net: SimNetwork, index: int, key: PrivateKey, behaviour: str) -> None:
        self.index = index
        self.key = key
        self.behaviour = behaviour
        self.peer_id = bytes(key.address)
        self.ledger, self.storage = memory_ledger(net.genesis)
        self.driver: ConsensusDriver | None = None
        self.sync: BlockSync | None = None
        self.transport: SimSyncTransport | None = None
        self.alive = False
        self.incarnation = 0
        self.crash_budget: int | None = None
        """Fault points left before a pending crash strikes (None: no crash pending)."""
        self.wal: list[SignedRecord] = []
        self.wal_file: WriteAheadLog | None = None
        self.wal_set: set[Any] = set()
        self.synced_blocks = 0
        """Blocks this node applied from block sync (``LedgerApp.on_synced``)."""
        self.resync_pending = False
        self.mempool: Mempool | None = None

    def fault_point(self) -> None:
        """Before each WAL append, send and block write: a pending crash may strike here."""
        if self.crash_budget is not None:
            if self.crash_budget == 0:
                raise SimCrash()
            self.crash_budget -= 1

    @property
    def height(self) -> int:
        return int(self.ledger.state.height)

    @property
    def address(self) -> Address:
        return self.key.address


class SimNetwork:
    def __init__(self, sc: Scenario) -> None:
        self.sc = sc
        self.rng = random.Random(sc.seed)
        self.now = 0
        self.seq = 0
        self.events: list[tuple[int, int, int, int, Any]] = []
        self.keys = [sim_key(i) for i in range(sc.n)]
        self.genesis = sim_genesis(CHAIN_ID, GENESIS_TIME, self.keys, sc.powers)
        self.nodes = [SimNode(self, i, self.keys[i], sc.behaviours.get(i, "honest"))
                      for i in range(sc.n)]
        self.by_peer = {node.peer_id: node for node in self.nodes}
        self.signed: dict[tuple[bytes, int, int, str], Any] = {}
        self.evidence: list[bytes] = []
        self.misbehaviour = 0
        self.verdicts: dict[Verdict, int] = dict.fromkeys(Verdict, 0)
        self.liveness_ms: int | None = None
        """Simulated time from GST until every honest node had its new blocks."""
        self.deliveries = 0
        self.transfers_signed: dict[int, int] = {}
        self.byzantine = Byzantine(self)
        self.links = SimLinks(self)
        self.sync_penalties: list[tuple[int, int, Offence]] = []
        """(node, the peer its block sync charged, why) [WIRE-SYNC.6]."""
        self.config = ConsensusConfig(
            chain_id=CHAIN_ID,
            timeouts=TimeoutConfig(**{**_fields(SIM_TIMEOUTS), "commit_ms": sc.commit_ms}),
            clock_precision_ms=sc.clock_precision_ms, message_delay_ms=sc.message_delay_ms,
        )
        self.driver_class: type[ConsensusDriver] = ConsensusDriver
        self.sync_class: type[BlockSync] = BlockSync
        """The block sync of honest nodes (tests swap in a broken one to see the run fail)."""

    # ------------------------------------------------------------ nodes

    def validators_at(self, height: int) -> ValidatorSet:
        return ValidatorSet.from_members(
            (k.public_key, self.sc.powers.get(i, 1)) for i, k in enumerate(self.keys))

    def _boot(self, node: SimNode) -> None:
        """Start (or restart) a node from its block store and WAL, as ``LedgerNode`` does."""
        node.incarnation += 1
        node.crash_budget = None
        if self.sc.wal_dir is not None:  # replay the real file, as a restarted node does
            if node.wal_file is not None:
                node.wal_file.close()
            node.wal_file, node.wal = WriteAheadLog.open(
                Path(self.sc.wal_dir) / f"node{node.index}.wal")
        window = self.sc.busy.get(node.index)
        if window is not None:
            node.storage.busy = lambda: window[0] <= self.now < window[1]
        node.storage.before_write = node.fault_point
        mempool = Mempool(node.ledger.state, node.ledger.signatures)
        ports = SimPorts(self, node)

        def committed(*_: object) -> None:  # as ``LedgerNode._on_committed``
            if node.sync is not None:
                node.sync.notify_height()

        def synced() -> None:  # as ``LedgerNode._on_synced``: one resync per burst
            node.synced_blocks += 1
            if not node.resync_pending:
                node.resync_pending = True
                ports.call_later(0.0, resync)

        def resync() -> None:
            node.resync_pending = False
            if node.driver is not None:
                node.driver.resync()

        app = LedgerApp(node.ledger, mempool, node.key.address,
                        on_committed=committed, on_synced=synced,
                        empty_block_interval_ms=self.sc.empty_block_interval_ms)
        node.mempool = mempool
        node.driver = self.driver_class(
            app, node.key, self.config, SimWal(self, node), list(node.wal),
            lambda data: self._publish(node, data),
            clock=ports, scheduler=ports,
            check_signature=trust_every_signature if self.sc.fast else verify,
            core_class=AmnesiaCore if node.behaviour == "amnesia" else ConsensusCore,
            on_evidence=self._on_evidence, on_misbehaviour=self._on_misbehaviour,
        )
        node.transport = SimSyncTransport(self, node)
        sync_class = LyingSync if node.behaviour == "sync_liar" else self.sync_class
        node.sync = sync_class(node.transport, app, rng=random.Random(self.rng.random()))
        node.resync_pending = False
        node.alive = True
        self._step(node, node.driver.start)
        node.sync.start()
        self.links.refresh()

    def _kill(self, node: SimNode) -> None:
        """The process is gone: its connections close, its memory is lost."""
        node.alive, node.crash_budget = False, None
        node.driver, node.sync, node.transport = None, None, None
        self.links.refresh()

    def _step(self, node: SimNode, run: Callable[[], None]) -> None:
        """Runs one input into the node and its driver's queue; a crash may strike inside."""
        if not node.alive or node.driver is None:
            return
        try:
            run()
            node.driver.drain()
            if node.crash_budget is not None:
                raise SimCrash()
        except SimCrash:
            self._kill(node)
            return
        if node.driver.halted is not None:
            raise InvariantViolation(f"node {node.index} halted: {node.driver.halted}")

    def push(self, at: int, kind: int, index: int, payload: Any = None) -> None:
        self.seq += 1
        heapq.heappush(self.events, (at, self.seq, kind, index, payload))

    def call_at(self, at: int, node: SimNode, incarnation: int, handle: Any,
                callback: Callable[[], None]) -> None:
        """``callback`` as a step of ``node`` at ``at``, unless it died or ``handle`` was
        cancelled meanwhile."""
        self.push(at, TIMER, node.index, (incarnation, handle, callback))

    def deliver_at(self, at: int, dst: SimNode, src: SimNode, payload: Any) -> None:
        self.push(at, DELIVER, dst.index, (src.index, payload))

    # ------------------------------------------------------------ network

    def send(self, src: SimNode, dst: SimNode, payload: Any, kind: str = "") -> None:
        sc, rng, now = self.sc, self.rng, self.now
        if sc.partition is not None:
            side, start, heal = sc.partition
            if start <= now < heal and (src.index in side) != (dst.index in side):
                return
        chaos = now < sc.chaos_until
        if chaos and rng.random() < sc.p_drop:
            return
        copies = 2 if rng.random() < sc.p_dup else 1
        for _ in range(copies):
            hi = sc.delay_range[1] if chaos else sc.delta
            delay = rng.randint(1, hi) if hi > 0 else 0
            if chaos and sc.slow_precommits_ms and kind == PRECOMMIT:
                delay += rng.randint(0, sc.slow_precommits_ms)
            self.push(now + delay, DELIVER, dst.index, (src.index, payload))

    def broadcast(self, src: SimNode, data: bytes, kind: str,
                  targets: list[SimNode] | None = None) -> None:
        for dst in targets if targets is not None else self.nodes:
            if dst is not src:
                self.send(src, dst, ("consensus", data), kind)

    def _publish(self, node: SimNode, data: bytes) -> None:
        """The driver's publish port: WAL-before-send check, then the (Byzantine) network."""
        node.fault_point()
        message = decode_message(data)
        kind = "proposal" if isinstance(message, Proposal) else message.kind
        if node.behaviour == "honest":
            signer = message.proposer if isinstance(message, Proposal) else message.validator
            if signer == node.key.address and message not in node.wal_set:
                raise InvariantViolation(f"node {node.index} sent a signature not in its WAL "
                                         f"[CONS-WAL.1]: {kind} h={message.height}")
            self.broadcast(node, data, kind)
            return
        self.byzantine.act(node, message, data, kind)

    def _deliver(self, node: SimNode, src: int, payload: tuple[Any, ...]) -> None:
        driver = node.driver
        if driver is None:
            return
        tag = payload[0]
        if tag == "consensus":
            self.deliveries += 1
            sender = self.nodes[src].peer_id

            def receive() -> None:
                verdict = driver.on_gossip(payload[1], sender)
                self.verdicts[verdict] += 1
                if verdict is Verdict.REJECT:
                    self.misbehaviour += 1
            self._step(node, receive)
        elif tag == "sync":
            self._step(node, lambda: self.links.deliver(node, self.nodes[src], *payload[1:]))

    # ------------------------------------------------------------ reports

    def note_signed(self, node: SimNode, message: Proposal | Vote) -> None:
        """Invariant [CONS-WAL.2]: an honest validator signs one value per slot, across restarts."""
        if node.behaviour != "honest":
            return
        value: object
        if isinstance(message, Proposal):
            slot, value = "proposal", (message.block_hash, message.time_ms, message.pol_round)
        else:
            slot, value = message.kind, message.block_hash
        key = (node.peer_id, message.height, message.round, slot)
        if self.signed.setdefault(key, value) != value:
            raise InvariantViolation(f"node {node.index} signed two values for {key[1:]}")

    def _on_evidence(self, ev: DuplicateVoteEvidence) -> None:
        offender = check_evidence(ev, self.validators_at(ev.vote_a.height), CHAIN_ID)
        if self.by_peer[offender].behaviour == "honest":
            raise InvariantViolation(f"honest validator accused: {offender.hex()}")
        self.evidence.append(offender)

    def _on_misbehaviour(self, peer: bytes | None, code: str) -> None:
        self.misbehaviour += 1

    # ------------------------------------------------------------ main loop

    def honest(self) -> list[SimNode]:
        return [x for x in self.nodes if x.behaviour == "honest"]

    def run(self) -> None:
        sc = self.sc
        for node in self.nodes:
            if node.behaviour != "silent":
                self._boot(node)
        for node_index, crash_at, restart_at in sc.crashes:
            self.push(crash_at, CRASH, node_index)
            self.push(restart_at, RESTART, node_index)
        if sc.partition is not None:  # connections close, and open again when it heals
            self.push(sc.partition[1], LINKS, 0)
            self.push(sc.partition[2], LINKS, 0)
        for at, sender in sc.transfers:
            self._schedule_transfer(at, self.nodes[sender])
        gst = sc.gst
        deadline = gst + sc.liveness_bound_ms if sc.run_until_ms is None else sc.run_until_ms
        target: int | None = None
        while self.events:
            at, _, kind, index, payload = heapq.heappop(self.events)
            self.now = at
            if target is None and at >= gst and sc.run_until_ms is None:
                target = max(x.height for x in self.honest()) + sc.new_blocks_after_gst
            if target is not None and all(x.height >= target for x in self.honest()):
                self.liveness_ms = at - gst
                break
            if at > deadline:
                break
            node = self.nodes[index]
            if kind == DELIVER:
                if node.alive:
                    self._deliver(node, payload[0], payload[1])
            elif kind == TIMER:
                incarnation, timer, callback = payload
                if node.alive and incarnation == node.incarnation and not timer.cancelled:
                    self._step(node, callback)
            elif kind == LINKS:
                self.links.refresh()
            elif kind == TX and node.alive:
                self._step(node, self._admission(node, payload))
            elif kind == CRASH:  # strikes at one of the next few fault points, or after the step
                if node.alive:
                    node.crash_budget = self.rng.randint(0, 3)
            elif kind == RESTART and (not node.alive or node.crash_budget is not None):
                if node.alive:
                    self._kill(node)
                self._boot(node)
        for node in self.nodes:
            if node.wal_file is not None:
                node.wal_file.close()
        self.check(target)

    def _schedule_transfer(self, at: int, sender: SimNode) -> None:
        """[CONS-PACE.1] A transfer signed by ``sender`` at ``at``, gossiped to the others."""
        nonce = self.transfers_signed.get(sender.index, 0)
        self.transfers_signed[sender.index] = nonce + 1
        body = Transfer(self.keys[0].address, Amount(1))
        tx = sign_transaction(sender.key, CHAIN_ID, nonce, body)
        for node in self.nodes:
            delay = 0 if node is sender else self.rng.randint(*self.sc.delay_range)
            self.push(at + delay, TX, node.index, tx)

    def _admission(self, node: SimNode, tx: SignedTransaction) -> Callable[[], None]:
        """As ``LedgerNode.submit``: into the mempool, then wake a core at rest."""
        def admit() -> None:
            if (node.mempool is not None and node.driver is not None
                    and node.mempool.add(tx, GENESIS_TIME + self.now).accepted):
                node.driver.wake()
        return admit

    # ------------------------------------------------------------ invariants

    def check(self, target: int | None) -> None:
        honest = self.honest()
        decided: dict[int, bytes] = {}
        for node in honest:  # [CONS-SAFETY.1] agreement
            for height, block_hash in enumerate(node.storage.hashes, 1):
                if decided.setdefault(height, block_hash) != block_hash:
                    raise InvariantViolation(f"disagreement at height {height}")
        checked: set[bytes] = set()
        for node in honest:  # [CONS-CERT.1] every stored block has a valid certificate
            for height, (_, cert_bytes) in enumerate(node.storage.blocks, 1):
                if cert_bytes is None:
                    raise InvariantViolation(f"node {node.index} stored block {height} bare")
                if cert_bytes in checked:
                    continue
                checked.add(cert_bytes)
                cert = decode_certificate(cert_bytes)
                if cert.block_hash != node.storage.hashes[height - 1] or cert.height != height:
                    raise InvariantViolation(f"certificate does not match block {height}")
                verify_certificate(cert, self.validators_at(height), CHAIN_ID)
        for index, peer, offence in self.sync_penalties:  # [WIRE-SYNC.6] charges the guilty only
            if self.nodes[peer].behaviour != "sync_liar":
                raise InvariantViolation(f"node {index}'s block sync charged node {peer}, "
                                         f"whose block sync is honest: {offence.name}")
        if self.sc.run_until_ms is not None:
            return
        if target is None or any(x.height < target for x in honest):
            raise InvariantViolation(
                f"no liveness: heights {[x.height for x in honest]} < target {target} within "
                f"{self.sc.liveness_bound_ms} ms after GST {self.sc.gst}")

    def max_height(self) -> int:
        return max(x.height for x in self.nodes)

    @property
    def stalls(self) -> int:
        return sum(1 for x in self.nodes if x.driver is not None
                   and x.driver.stats["commit_deferred"])

    @property
    def wal_holds(self) -> int:
        """Nodes whose driver held a step back on a WAL that refused an append."""
        return sum(1 for x in self.nodes if x.driver is not None
                   and x.driver.stats["wal_deferred"])


def _fields(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__slots__}


def run_seed(seed: int, n: int, *, fast: bool) -> SimNetwork:
    sim = SimNetwork(random_scenario(seed, n, fast=fast))
    sim.run()
    return sim


__all__ = ["PRECOMMIT", "PREVOTE", "Scenario", "SimNetwork", "lagging_scenario",
           "random_scenario", "run_seed"]
