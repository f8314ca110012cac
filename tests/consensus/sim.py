"""A deterministic simulated network of consensus cores [CONS-SIM].

Everything random comes from one ``random.Random(seed)``; time is simulated
(milliseconds on a heap of events), so nothing sleeps and a seed replays
exactly. ``SimNetwork`` routes the cores' actions with seeded delays, drops,
duplicates and reordering, a partition that heals, crashes (even between two
actions of one step) with restart from the node's WAL and block store, and
Byzantine validators:

- ``silent``: never sends anything;
- ``equivocate``: as proposer sends two different blocks to two halves of the
  network, and splits its votes between them;
- ``double_vote``: signs every vote twice, for two values: the first to all,
  the second to a random half (which so holds the evidence);
- ``phantom``: votes for random block hashes it never saw;
- ``amnesia``: forgets its lock and prevotes every valid proposal;
- ``forger`` (full-signature mode only): also sends votes in other
  validators' names with bad signatures.

Signature checking: ``fast=True`` sets ``fast_sim_skip_signature_checks`` in
every core (the bulk scenarios); the invariant checker still verifies every
commit certificate with real signatures. ``fast=False`` runs the real checks.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chain.consensus.actions import CommitDeferred, CommitStalled
from chain.consensus.certificate import Decision, verify_certificate
from chain.consensus.core import (
    Broadcast,
    Commit,
    ConsensusConfig,
    ConsensusCore,
    PeerMisbehaved,
    PersistSigned,
    ReportEvidence,
    ScheduleTimeout,
    SendCommitted,
)
from chain.consensus.evidence import check_evidence
from chain.consensus.messages import PRECOMMIT, PREVOTE, Proposal, Vote, sign_proposal, sign_vote
from chain.consensus.timeouts import TimeoutConfig
from chain.consensus.validators import ValidatorSet
from chain.consensus.wal import SignedRecord, WriteAheadLog
from chain.crypto import PrivateKey, sha256
from chain.encoding import decode, encode
from chain.types import Hash32, Height, Round, TimeMs

CHAIN_ID = "lc-sim"
GENESIS_TIME = TimeMs(1_700_000_000_000)
SIM_TIMEOUTS = TimeoutConfig(
    propose_base_ms=300,
    propose_delta_ms=100,
    prevote_base_ms=200,
    prevote_delta_ms=100,
    precommit_base_ms=200,
    precommit_delta_ms=100,
    commit_ms=0,
    rebroadcast_ms=500,
)
BEHAVIOURS = ("silent", "equivocate", "double_vote", "phantom", "amnesia", "forger")
CATCHUP_BATCH = 32
RETRY_COMMIT_MS = 250

_KEYS: dict[tuple[int, int], PrivateKey] = {}


def sim_key(i: int, salt: int = 0) -> PrivateKey:
    key = _KEYS.get((i, salt))
    if key is None:
        key = _KEYS[(i, salt)] = PrivateKey.from_seed(b"lc-sim-validator-%d-%d" % (salt, i))
    return key


class SimApp:
    """A toy application: a block is ``encode([height, round, time, author, payload])``."""

    def __init__(self, author: int, schedule: Callable[[int], ValidatorSet]) -> None:
        self.author = author
        self.schedule = schedule

    def validators_at(self, height: Height) -> ValidatorSet:
        return self.schedule(height)

    def propose(self, height: Height, round_: Round, time_ms: TimeMs) -> tuple[Hash32, bytes]:
        return self.make(height, round_, time_ms, b"")

    def make(self, height: int, round_: int, time_ms: int, payload: bytes) -> tuple[Hash32, bytes]:
        block = encode([height, round_, time_ms, self.author, payload])
        return sha256(block), block

    busy: Callable[[], bool] = staticmethod(lambda: False)
    """True while this node's storage is "locked": ``decided`` defers [CONS-COMMIT.2]."""

    def decided(self, decision: Decision) -> None:
        """The simulator records decisions from the ``Commit`` action instead."""
        if self.busy():
            raise CommitDeferred("storage busy (simulated)")

    def validate(self, height: Height, block_hash: Hash32, block: bytes, time_ms: TimeMs) -> bool:
        if sha256(block) != block_hash:
            return False
        fields = decode(block)
        return bool(fields[0] == height and fields[2] == time_ms)


@dataclass
class Scenario:
    """Everything a run does, drawn from ``seed``; printed on failure."""

    seed: int
    n: int
    fast: bool = True
    behaviours: dict[int, str] = field(default_factory=dict)
    crashes: list[tuple[int, int, int]] = field(default_factory=list)
    """(node, crash at ms, restart at ms)."""
    partition: tuple[frozenset[int], int, int] | None = None
    """(one side, from ms, heals at ms)."""
    chaos_until: int = 0
    """Before this time: drops, long delays. After: delays <= delta, no drops."""
    delay_range: tuple[int, int] = (1, 50)
    delta: int = 50
    """Upper bound of message delay after GST (ms); 0: no delay at all (the benchmark)."""
    p_drop: float = 0.0
    p_dup: float = 0.0
    slow_precommits_ms: int = 0
    """Before GST, precommits get up to this much extra delay: a node may decide a block
    while the others time out of the round, the case locking exists for."""
    skew: dict[int, int] = field(default_factory=dict)
    busy: dict[int, tuple[int, int]] = field(default_factory=dict)
    """node -> (from ms, until ms): its storage refuses commits ([CONS-COMMIT.2]); the node
    stays honest, it only stalls and retries."""
    powers: dict[int, int] = field(default_factory=dict)
    """Voting power from ``power_change_height`` on (before: all 1)."""
    power_change_height: int = 0
    commit_ms: int = 0
    wal_dir: str | None = None
    """When set, each node keeps its WAL in a real fsynced file there (else in memory)."""
    new_blocks_after_gst: int = 3
    liveness_bound_ms: int = 30_000
    """Max simulated time after GST for the new blocks (observed max over CI seeds: ~6 s)."""

    @property
    def faulty(self) -> set[int]:
        return set(self.behaviours) | {c[0] for c in self.crashes}

    @property
    def gst(self) -> int:
        times = [self.chaos_until]
        if self.partition:
            times.append(self.partition[2])
        times.extend(c[2] for c in self.crashes)
        times.extend(until for _, until in self.busy.values())
        return max(times)


def random_scenario(seed: int, n: int, *, fast: bool) -> Scenario:
    rng = random.Random(seed * 1_000_003 + n)
    f = (n - 1) // 3
    sc = Scenario(seed=seed, n=n, fast=fast)
    faulty = rng.sample(range(n), rng.randint(0, f))
    kinds = [*BEHAVIOURS[:5], "crash", "crash"] + (["forger"] if not fast else [])
    for node in faulty:
        kind = rng.choice(kinds)
        if kind == "crash":
            at = rng.randint(0, 6000)
            sc.crashes.append((node, at, at + rng.randint(50, 4000)))
        else:
            sc.behaviours[node] = kind
    if rng.random() < 0.5:
        side = frozenset(rng.sample(range(n), rng.randint(1, n - 1)))
        start = rng.randint(0, 3000)
        sc.partition = (side, start, start + rng.randint(200, 8000))
    sc.chaos_until = rng.choice([0, rng.randint(500, 6000)])
    sc.delay_range = (1, rng.choice([20, 200, 1500]))
    sc.delta = rng.choice([5, 50, 200])
    sc.p_drop = rng.choice([0.0, 0.05, 0.3])
    sc.p_dup = rng.choice([0.0, 0.1])
    sc.skew = {i: rng.randint(-50, 50) for i in range(n)}
    sc.commit_ms = rng.choice([0, 0, 100])
    sc.slow_precommits_ms = rng.choice([0, 0, 1500])
    if rng.random() < 0.3:  # [CONS-VALSET.2] power change; faulty keep power 1 so 3*f_power < total
        sc.power_change_height = rng.randint(2, 6)
        sc.powers = {i: 1 if i in sc.faulty else rng.randint(1, 3) for i in range(n)}
    # own generator, so adding this fault left every older seed's scenario unchanged
    busy_rng = random.Random(seed * 7_919 + n)
    if busy_rng.random() < 0.3:
        for node in busy_rng.sample(range(n), busy_rng.randint(1, n)):
            start = busy_rng.randint(0, 6000)
            sc.busy[node] = (start, start + busy_rng.randint(100, 4000))
    return sc


class AmnesiaCore(ConsensusCore):
    """A Byzantine validator that forgets its lock: prevotes every valid proposal."""

    def _rule_prevote(self, out: list[Any]) -> bool:
        self.locked_round, self.locked_hash = Round(-1), None
        return super()._rule_prevote(out)


class SimNode:
    def __init__(self, index: int, key: PrivateKey, behaviour: str) -> None:
        self.index = index
        self.key = key
        self.behaviour = behaviour
        self.peer_id = bytes(key.address)
        self.core: ConsensusCore | None = None
        self.alive = False
        self.incarnation = 0
        self.crash_pending = False
        self.wal: list[SignedRecord] = []
        self.wal_file: WriteAheadLog | None = None
        self.wal_set: set[Any] = set()
        self.store: list[Decision] = []
        self.commit_times: list[int] = []


class InvariantViolation(AssertionError):
    pass


class SimNetwork:
    def __init__(self, sc: Scenario) -> None:
        self.sc = sc
        self.rng = random.Random(sc.seed)
        self.now = 0
        self.seq = 0
        self.events: list[tuple[int, int, int, Any, Any, Any]] = []
        self.keys = [sim_key(i) for i in range(sc.n)]
        self._sets: dict[bool, ValidatorSet] = {}
        self.nodes = [SimNode(i, self.keys[i], sc.behaviours.get(i, "honest")) for i in range(sc.n)]
        self.by_peer = {node.peer_id: node for node in self.nodes}
        self.signed: dict[tuple[bytes, int, int, str], Any] = {}
        self.evidence: list[bytes] = []
        self.misbehaviour = 0
        self.stalls = 0
        """Commits deferred by a busy store [CONS-COMMIT.2] (retried after RETRY_COMMIT_MS)."""
        self.liveness_ms: int | None = None
        """Simulated time from GST until every honest node had its new blocks."""
        self.deliveries = 0
        self.config = ConsensusConfig(
            chain_id=CHAIN_ID,
            timeouts=TimeoutConfig(**{**_fields(SIM_TIMEOUTS), "commit_ms": sc.commit_ms}),
            clock_precision_ms=200,
            message_delay_ms=1000,
            fast_sim_skip_signature_checks=sc.fast,
        )

    # ------------------------------------------------------------ setup

    def validators_at(self, height: int) -> ValidatorSet:
        changed = bool(self.sc.power_change_height) and height >= self.sc.power_change_height
        vset = self._sets.get(changed)
        if vset is None:
            powers = self.sc.powers if changed else {}
            vset = ValidatorSet.from_members(
                (k.public_key, powers.get(i, 1)) for i, k in enumerate(self.keys)
            )
            self._sets[changed] = vset
        return vset

    def _boot(self, node: SimNode) -> None:
        if self.sc.wal_dir is not None:  # replay the real file, as a restarted node does
            if node.wal_file is not None:
                node.wal_file.close()
            node.wal_file, node.wal = WriteAheadLog.open(
                Path(self.sc.wal_dir) / f"node{node.index}.wal"
            )
        height = Height(len(node.store) + 1)
        last = node.store[-1].time_ms if node.store else GENESIS_TIME
        core_class = AmnesiaCore if node.behaviour == "amnesia" else ConsensusCore
        app = SimApp(node.index, self.validators_at)
        window = self.sc.busy.get(node.index)
        if window is not None:
            app.busy = lambda: window[0] <= self.now < window[1]  # type: ignore[method-assign]
        node.core = core_class(self.config, app, node.key, height, last, node.wal)
        node.alive = True
        node.incarnation += 1
        self._run(node, node.core.start(self._clock(node)))

    def _clock(self, node: SimNode) -> int:
        return GENESIS_TIME + self.now + self.sc.skew.get(node.index, 0)

    def _push(self, at: int, kind: int, a: Any, b: Any = None, c: Any = None) -> None:
        self.seq += 1
        heapq.heappush(self.events, (at, self.seq, kind, a, b, c))

    # ------------------------------------------------------------ network

    def _send(self, src: SimNode, dst: SimNode, message: Any) -> None:
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
            if chaos and sc.slow_precommits_ms and getattr(message, "kind", None) == PRECOMMIT:
                delay += rng.randint(0, sc.slow_precommits_ms)
            self._push(now + delay, 0, dst.index, src.peer_id, message)

    def _broadcast(self, src: SimNode, message: Any, targets: list[SimNode] | None = None) -> None:
        for dst in targets if targets is not None else self.nodes:
            if dst is not src:
                self._send(src, dst, message)

    # ------------------------------------------------------------ actions

    def _run(self, node: SimNode, actions: list[Any]) -> None:
        if node.crash_pending:  # crash between two actions of one step
            actions = actions[: self.rng.randint(0, len(actions))]
        for action in actions:
            if isinstance(action, PersistSigned):
                node.wal.append(action.record)
                if node.wal_file is not None:
                    node.wal_file.append(action.record)
                node.wal_set.add(action.record.message)
                self._note_signed(node, action.record.message)
            elif isinstance(action, Broadcast):
                self._on_broadcast(node, action.message)
            elif isinstance(action, ScheduleTimeout):
                self._push(
                    self.now + action.delay_ms, 1, node.index, node.incarnation, action.timeout
                )
            elif isinstance(action, Commit):
                self._on_commit(node, action.decision)
            elif isinstance(action, CommitStalled):
                self.stalls += 1
                self._push(self.now + RETRY_COMMIT_MS, 4, node.index, node.incarnation)
            elif isinstance(action, SendCommitted):
                batch = tuple(node.store[action.from_height - 1 :][:CATCHUP_BATCH])
                peer = self.by_peer.get(action.peer)
                if batch and peer is not None:
                    self._send(node, peer, batch)
            elif isinstance(action, ReportEvidence):
                self._on_evidence(action)
            elif isinstance(action, PeerMisbehaved):
                self.misbehaviour += 1
        if node.crash_pending:
            node.crash_pending = False
            node.alive = False
            node.core = None

    def _note_signed(self, node: SimNode, message: Proposal | Vote) -> None:
        """Invariant [CONS-WAL.2]: an honest validator signs one value per slot, across restarts."""
        if node.behaviour != "honest":
            return
        if isinstance(message, Proposal):
            slot, value = "proposal", (message.block_hash, message.time_ms, message.pol_round)
        else:
            slot, value = message.kind, message.block_hash
        key = (node.peer_id, message.height, message.round, slot)
        if self.signed.setdefault(key, value) != value:
            raise InvariantViolation(f"node {node.index} signed two values for {key[1:]}")

    def _on_broadcast(self, node: SimNode, message: Proposal | Vote) -> None:
        signer = message.proposer if isinstance(message, Proposal) else message.validator
        if node.behaviour == "honest":
            if signer == node.key.address and message not in node.wal_set:
                raise InvariantViolation(f"node {node.index} broadcast a signature not in its WAL")
            self._broadcast(node, message)
            return
        byzantine = getattr(self, "_byz_" + node.behaviour)
        byzantine(node, message)

    def _halves(self, node: SimNode) -> tuple[list[SimNode], list[SimNode]]:
        others = [x for x in self.nodes if x is not node]
        self.rng.shuffle(others)
        cut = len(others) // 2
        return others[:cut], others[cut:]

    def _byz_silent(self, node: SimNode, message: Any) -> None:
        return

    def _byz_amnesia(self, node: SimNode, message: Any) -> None:
        self._broadcast(node, message)

    def _conflicting_vote(self, node: SimNode, vote: Vote, value: Hash32 | None) -> Vote:
        return sign_vote(node.key, CHAIN_ID, vote.kind, vote.height, vote.round, value)

    def _byz_equivocate(self, node: SimNode, message: Proposal | Vote) -> None:
        a, b = self._halves(node)
        if isinstance(message, Proposal):
            app = SimApp(node.index, self.validators_at)
            h2, block2 = app.make(message.height, message.round, message.time_ms, b"evil")
            other = sign_proposal(
                node.key,
                CHAIN_ID,
                message.height,
                message.round,
                message.pol_round,
                h2,
                message.time_ms,
                block2,
            )
            self._broadcast(node, message, a)
            self._broadcast(node, other, b)
            return
        self._broadcast(node, message, a)
        other_value = None if message.block_hash is not None else sha256(b"%d" % self.seq)
        self._broadcast(node, self._conflicting_vote(node, message, other_value), b)

    def _byz_double_vote(self, node: SimNode, message: Proposal | Vote) -> None:
        if isinstance(message, Proposal):
            self._broadcast(node, message)
            return
        _, b = self._halves(node)
        other_value = None if message.block_hash is not None else sha256(b"x%d" % self.seq)
        self._broadcast(node, message)
        self._broadcast(node, self._conflicting_vote(node, message, other_value), b)

    def _byz_phantom(self, node: SimNode, message: Proposal | Vote) -> None:
        if isinstance(message, Proposal):
            self._broadcast(node, message)
            return
        phantom = sha256(b"phantom-%d-%d" % (message.height, message.round))
        self._broadcast(node, self._conflicting_vote(node, message, phantom))

    def _byz_forger(self, node: SimNode, message: Proposal | Vote) -> None:
        self._broadcast(node, message)
        if isinstance(message, Vote):
            victim = self.rng.choice([x for x in self.nodes if x is not node])
            forged = Vote(
                message.kind,
                message.height,
                message.round,
                sha256(b"forged"),
                victim.key.address,
                message.signature,
            )
            self._broadcast(node, forged)

    def _on_commit(self, node: SimNode, d: Decision) -> None:
        if d.height != len(node.store) + 1:
            raise InvariantViolation(f"node {node.index} committed height {d.height} out of order")
        node.store.append(d)
        node.commit_times.append(self.now)

    def _on_evidence(self, action: ReportEvidence) -> None:
        ev = action.evidence
        offender = check_evidence(ev, self.validators_at(ev.vote_a.height), CHAIN_ID)
        if self.by_peer[offender].behaviour == "honest":
            raise InvariantViolation(f"honest validator accused: {offender.hex()}")
        self.evidence.append(offender)

    # ------------------------------------------------------------ main loop

    def honest(self) -> list[SimNode]:
        return [x for x in self.nodes if x.behaviour == "honest"]

    def run(self) -> None:
        sc = self.sc
        for node in self.nodes:
            if node.behaviour != "silent":
                self._boot(node)
        for node_index, crash_at, restart_at in sc.crashes:
            self._push(crash_at, 2, node_index)
            self._push(restart_at, 3, node_index)
        gst = sc.gst
        deadline = gst + sc.liveness_bound_ms
        target: int | None = None
        while self.events:
            at, _, kind, a, b, c = heapq.heappop(self.events)
            self.now = at
            if target is None and at >= gst:
                target = max(len(x.store) for x in self.honest()) + sc.new_blocks_after_gst
            if target is not None and all(len(x.store) >= target for x in self.honest()):
                self.liveness_ms = at - gst
                break
            if at > deadline:
                break
            node = self.nodes[a]
            if kind == 0:  # delivery
                if node.alive and node.core is not None:
                    self.deliveries += 1
                    msgs = c if isinstance(c, tuple) else (c,)
                    for m in msgs:
                        if node.core is None:
                            break
                        self._run(node, node.core.on_message(m, self._clock(node), b))
            elif kind == 1:  # timer
                if node.alive and node.core is not None and b == node.incarnation:
                    self._run(node, node.core.on_timeout(c, self._clock(node)))
            elif kind == 2:  # crash: takes effect in the node's next step
                if node.alive:
                    node.crash_pending = True
            elif kind == 4:  # retry a deferred commit [CONS-COMMIT.2]
                if node.alive and node.core is not None and b == node.incarnation:
                    self._run(node, node.core.retry_commit(self._clock(node)))
            elif kind == 3:  # restart from the WAL and the block store
                if node.alive and node.crash_pending:
                    node.alive, node.core = False, None
                if not node.alive:
                    node.crash_pending = False
                    self._boot(node)
        for node in self.nodes:
            if node.wal_file is not None:
                node.wal_file.close()
        self.check(target)

    # ------------------------------------------------------------ invariants

    def check(self, target: int | None) -> None:
        honest = self.honest()
        # [CONS-SAFETY.1] agreement
        decided: dict[int, Hash32] = {}
        for node in honest:
            for d in node.store:
                if decided.setdefault(d.height, d.block_hash) != d.block_hash:
                    raise InvariantViolation(f"disagreement at height {d.height}")
        # [CONS-CERT.1] every committed block carries a valid certificate (real signatures)
        checked: set[bytes] = set()
        for node in honest:
            for d in node.store:
                enc = d.certificate.encode()
                if enc in checked:
                    continue
                checked.add(enc)
                if d.certificate.block_hash != d.block_hash or d.certificate.height != d.height:
                    raise InvariantViolation(f"certificate does not match block {d.height}")
                verify_certificate(d.certificate, self.validators_at(d.height), CHAIN_ID)
        # [CONS-TIME.1] block times strictly increase
        for node in honest:
            times = [d.time_ms for d in node.store]
            if any(b <= a for a, b in zip([GENESIS_TIME, *times], times, strict=False)):
                raise InvariantViolation(f"node {node.index} block times do not increase")
        # liveness after GST
        if target is None or any(len(x.store) < target for x in honest):
            heights = [len(x.store) for x in honest]
            raise InvariantViolation(
                f"no liveness: heights {heights} < target {target} within "
                f"{self.sc.liveness_bound_ms} ms after GST {self.sc.gst}"
            )

    def max_height(self) -> int:
        return max(len(x.store) for x in self.nodes)


def _fields(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__slots__}


def run_seed(seed: int, n: int, *, fast: bool) -> SimNetwork:
    sim = SimNetwork(random_scenario(seed, n, fast=fast))
    sim.run()
    return sim


__all__ = ["PRECOMMIT", "PREVOTE", "Scenario", "SimNetwork", "random_scenario", "run_seed"]
