"""The gossip decision core: pure, no I/O, no clock [WIRE-GOSSIP.*].

A gossipsub-style design. Per topic each node keeps a small symmetric *mesh*
of peers (degree between ``d_lo`` and ``d_hi``, aiming at ``d``) and sends full
messages only along mesh links [WIRE-GOSSIP.2]. Every heartbeat it announces
the ids of recent messages (IHAVE) to ``d_lazy`` peers outside the mesh, who ask
for what they miss (IWANT) [WIRE-GOSSIP.3/4]; this repairs a mesh that does
not reach everyone without flooding. Each message id (SHA-256 of the payload)
is processed and forwarded at most once [WIRE-GOSSIP.5], and only after the
topic's validator accepted it [WIRE-GOSSIP.8].

The driver (``p2p.gossip``) feeds events in and carries the returned actions
out; time arrives as an argument, randomness from an injected ``Random``, so
tests replay decisions exactly.
"""

from __future__ import annotations

import enum
import random
from collections import deque
from dataclasses import dataclass, field

from p2p.config import GossipParams
from p2p.wire import MAX_IDS

PeerId = bytes
MsgId = bytes


class Verdict(enum.Enum):
    """[WIRE-GOSSIP.8] What a topic validator says about a message."""

    ACCEPT = "accept"
    """Valid: deliver locally and forward."""
    REJECT = "reject"
    """Invalid: do not forward; the sender loses score."""
    IGNORE = "ignore"
    """Not forwarded, not punished (e.g. stale but honest)."""


class Receipt(enum.Enum):
    NEW = "new"
    DUPLICATE = "duplicate"
    REPEATED_BY_PEER = "repeated_by_peer"
    """This peer already sent us this very message: a flood [WIRE-GOSSIP.9]."""
    NOT_SUBSCRIBED = "not_subscribed"


@dataclass(frozen=True, slots=True)
class SendFull:
    peer: PeerId
    msg_id: MsgId


@dataclass(frozen=True, slots=True)
class SendIHave:
    peer: PeerId
    topic: str
    ids: tuple[MsgId, ...]


@dataclass(frozen=True, slots=True)
class SendIWant:
    peer: PeerId
    ids: tuple[MsgId, ...]


@dataclass(frozen=True, slots=True)
class SendGraft:
    peer: PeerId
    topic: str


@dataclass(frozen=True, slots=True)
class SendPrune:
    peer: PeerId
    topic: str


@dataclass(frozen=True, slots=True)
class Forget:
    """The message left the cache; the driver may drop its payload."""

    msg_id: MsgId


Action = SendFull | SendIHave | SendIWant | SendGraft | SendPrune | Forget


@dataclass(slots=True)
class _Cached:
    topic: str
    holders: set[PeerId] = field(default_factory=set)
    """Peers known to have the message: they sent or announced it, or we sent it."""
    senders: set[PeerId] = field(default_factory=set)
    """Peers that sent us the full message."""
    served: dict[PeerId, int] = field(default_factory=dict)
    accepted: bool = False


@dataclass(slots=True)
class _Wanted:
    peer: PeerId
    deadline: float
    alternates: list[PeerId] = field(default_factory=list)
    asked: bool = True
    """False while a held topic's mesh announcement waits for the push [WIRE-GOSSIP.12]:
    ``peer`` is asked only if the message has not come by ``deadline``."""


class GossipCore:
    """Mesh, de-duplication and lazy announcement decisions for one node."""

    def __init__(self, params: GossipParams, topics: tuple[str, ...], rng: random.Random) -> None:
        self.params = params
        self.topics = frozenset(topics)
        self.rng = rng
        self.peers: dict[PeerId, frozenset[str]] = {}
        self.mesh: dict[str, set[PeerId]] = {t: set() for t in topics}
        self.seen: dict[MsgId, float] = {}
        self._seen_order: deque[tuple[float, MsgId]] = deque()
        self.cache: dict[MsgId, _Cached] = {}
        self._windows: deque[list[MsgId]] = deque([[]])
        self.wanted: dict[MsgId, _Wanted] = {}
        self._beats = 0
        """Heartbeats so far: when a held relay is due [WIRE-GOSSIP.12]."""
        self._held: deque[tuple[int, MsgId]] = deque()
        """Relayed messages of held topics and the heartbeat of their push."""

    # -- peers -------------------------------------------------------------

    def add_peer(self, peer: PeerId, topics: tuple[str, ...]) -> list[Action]:
        """A peer finished its handshake; graft it where our mesh is short."""
        self.remove_peer(peer)  # a reconnecting peer starts from a clean slate
        self.peers[peer] = frozenset(topics) & self.topics
        actions: list[Action] = []
        for topic in sorted(self.peers[peer]):
            if len(self.mesh[topic]) < self.params.d:
                self.mesh[topic].add(peer)
                actions.append(SendGraft(peer, topic))
        return actions

    def remove_peer(self, peer: PeerId) -> None:
        self.peers.pop(peer, None)
        for members in self.mesh.values():
            members.discard(peer)

    def on_graft(self, peer: PeerId, topic: str) -> list[Action]:
        """[WIRE-GOSSIP.2] Accept into the mesh if subscribed and below the hard cap.

        As in gossipsub v1.1 a graft is accepted even above ``d_hi``; the next
        heartbeat prunes the excess. Refusing at ``d_hi`` instead starves late
        joiners whose every neighbour is full.
        """
        if peer not in self.peers:
            return []
        if topic not in self.peers[peer] or len(self.mesh[topic]) >= 2 * self.params.d_hi:
            if topic in self.mesh:
                self.mesh[topic].discard(peer)
            return [SendPrune(peer, topic)]
        self.mesh[topic].add(peer)
        return []

    def on_prune(self, peer: PeerId, topic: str) -> None:
        if topic in self.mesh:
            self.mesh[topic].discard(peer)

    # -- messages ----------------------------------------------------------

    def _mark_seen(self, msg_id: MsgId, now: float) -> None:
        self.seen[msg_id] = now + self.params.seen_ttl
        self._seen_order.append((now + self.params.seen_ttl, msg_id))

    def publish(self, topic: str, msg_id: MsgId, now: float) -> list[Action]:
        """Our own message: send it to the mesh (or ``d`` random peers when the mesh is empty).

        The same message again is a repeat [WIRE-GOSSIP.10]: see ``republish``."""
        if topic not in self.topics:
            return []
        if msg_id in self.seen:
            return self.republish(topic, msg_id, now)
        self._mark_seen(msg_id, now)
        self.cache[msg_id] = _Cached(topic)
        return self._forward(msg_id)

    def republish(self, topic: str, msg_id: MsgId, now: float) -> list[Action]:
        """[WIRE-GOSSIP.10] Our own message once more, for peers that may have missed it.

        Only the node that sends its own message repeats it, and only with the same
        bytes, hence the same id: a receiver that has it answers DUPLICATE and forwards
        nothing; one that missed it takes it as new and forwards it once. No third
        party can make it new again (the id is the hash of the signed payload). Sent
        to every topic peer, but only once the first copy left every cache (ours and,
        since caches have one length, the receivers'): a repeat inside a peer's cache
        window would read as a flood [WIRE-GOSSIP.9]."""
        first_seen = self.seen[msg_id] - self.params.seen_ttl
        quiet = (self.params.history_length + 2) * self.params.heartbeat
        if msg_id in self.cache or now - first_seen < quiet:
            return []
        self._mark_seen(msg_id, now)
        cached = self.cache[msg_id] = _Cached(topic, accepted=True)
        self._windows[0].append(msg_id)
        actions: list[Action] = []
        for peer in self._topic_peers(topic):
            cached.holders.add(peer)
            actions.append(SendFull(peer, msg_id))
        return actions

    def on_receive(self, peer: PeerId, topic: str, msg_id: MsgId, now: float) -> Receipt:
        """[WIRE-GOSSIP.5] Classify a full message; only ``NEW`` goes to the validator."""
        if topic not in self.topics:
            return Receipt.NOT_SUBSCRIBED
        cached = self.cache.get(msg_id)
        if cached is not None:
            cached.holders.add(peer)
            if peer in cached.senders:
                return Receipt.REPEATED_BY_PEER
            cached.senders.add(peer)
            return Receipt.DUPLICATE
        if msg_id in self.seen:
            return Receipt.DUPLICATE
        self._mark_seen(msg_id, now)
        self.cache[msg_id] = _Cached(topic, holders={peer}, senders={peer})
        self.wanted.pop(msg_id, None)
        return Receipt.NEW

    def on_validated(self, msg_id: MsgId, verdict: Verdict) -> list[Action]:
        """[WIRE-GOSSIP.8] Forward accepted messages once; forget the rest's payload."""
        cached = self.cache.get(msg_id)
        if cached is None or cached.accepted:
            return []
        if verdict is not Verdict.ACCEPT:
            del self.cache[msg_id]
            return [Forget(msg_id)]
        if cached.topic in self.params.held_relay_topics:
            return self._announce_and_hold(msg_id)
        return self._forward(msg_id)

    def _announce_and_hold(self, msg_id: MsgId) -> list[Action]:
        """[WIRE-GOSSIP.12] A relayed message of a held topic: ``ihave`` to the mesh peers
        not known to have it now, the full message to those still not known to have it
        ``relay_hold_heartbeats`` heartbeats later. In a well-connected graph each peer
        got it from its author already and says so with its own ``ihave``: the push of
        every relay (two thirds of the transaction bytes of a 4-validator graph) is saved."""
        cached = self.cache[msg_id]
        cached.accepted = True
        self._windows[0].append(msg_id)
        self._held.append((self._beats + self.params.relay_hold_heartbeats, msg_id))
        return [SendIHave(peer, cached.topic, (msg_id,))
                for peer in sorted(self.mesh[cached.topic] - cached.holders)]

    def _push_held(self) -> list[Action]:
        actions: list[Action] = []
        while self._held and self._held[0][0] <= self._beats:
            _, msg_id = self._held.popleft()
            cached = self.cache.get(msg_id)
            if cached is None:
                continue
            for peer in sorted(self.mesh[cached.topic] - cached.holders):
                cached.holders.add(peer)
                actions.append(SendFull(peer, msg_id))
        return actions

    def _forward(self, msg_id: MsgId) -> list[Action]:
        cached = self.cache[msg_id]
        cached.accepted = True
        self._windows[0].append(msg_id)
        targets = self.mesh[cached.topic] - cached.holders
        if not self.mesh[cached.topic]:
            candidates = sorted(
                p for p, t in self.peers.items() if cached.topic in t and p not in cached.holders
            )
            targets = set(self.rng.sample(candidates, min(self.params.d, len(candidates))))
        actions: list[Action] = []
        for peer in sorted(targets):
            cached.holders.add(peer)
            actions.append(SendFull(peer, msg_id))
        return actions

    def on_ihave(self, peer: PeerId, topic: str, ids: list[MsgId], now: float) -> list[Action]:
        """[WIRE-GOSSIP.4] Ask for announced messages we have not seen, one announcer at a time."""
        if peer not in self.peers or topic not in self.peers[peer]:
            return []
        want: list[MsgId] = []
        held = topic in self.params.held_relay_topics
        for msg_id in ids[:MAX_IDS]:
            cached = self.cache.get(msg_id)
            if cached is not None:
                cached.holders.add(peer)
                continue
            if msg_id in self.seen:
                continue
            pending = self.wanted.get(msg_id)
            if pending is not None:
                if pending.peer != peer and peer not in pending.alternates:
                    pending.alternates.append(peer)
                continue
            if held and peer in self.mesh[topic]:  # [WIRE-GOSSIP.12] its push is on the way
                self.wanted[msg_id] = _Wanted(peer, now + self._held_wait(), asked=False)
                continue
            self.wanted[msg_id] = _Wanted(peer, now + self.params.iwant_timeout)
            want.append(msg_id)
        return [SendIWant(peer, tuple(want))] if want else []

    def _held_wait(self) -> float:
        """[WIRE-GOSSIP.12] How long a mesh announcement of a held topic waits for the
        push: the hold and one heartbeat more."""
        return (self.params.relay_hold_heartbeats + 1) * self.params.heartbeat

    def on_iwant(self, peer: PeerId, ids: list[MsgId]) -> list[Action]:
        """[WIRE-GOSSIP.4] Serve accepted cached messages, ``max_iwant_serve`` times at most."""
        actions: list[Action] = []
        for msg_id in ids[:MAX_IDS]:
            cached = self.cache.get(msg_id)
            if cached is None or not cached.accepted:
                continue
            count = cached.served.get(peer, 0)
            if count >= self.params.max_iwant_serve:
                continue
            cached.served[peer] = count + 1
            cached.holders.add(peer)
            actions.append(SendFull(peer, msg_id))
        return actions

    # -- heartbeat ---------------------------------------------------------

    def heartbeat(self, now: float) -> list[Action]:
        """Mesh upkeep, IHAVE emission, cache shift, expiry of seen ids and IWANT retries."""
        self._beats += 1
        actions: list[Action] = self._push_held()
        for topic in sorted(self.topics):
            actions.extend(self._maintain_mesh(topic))
            actions.extend(self._emit_ihave(topic))
        actions.extend(self._shift_cache())
        while self._seen_order and self._seen_order[0][0] <= now:
            expiry, msg_id = self._seen_order.popleft()
            if self.seen.get(msg_id) == expiry:
                del self.seen[msg_id]
        actions.extend(self._retry_wanted(now))
        return actions

    def _topic_peers(self, topic: str) -> list[PeerId]:
        return sorted(p for p, t in self.peers.items() if topic in t)

    def _maintain_mesh(self, topic: str) -> list[Action]:
        mesh = self.mesh[topic]
        p = self.params
        actions: list[Action] = []
        if len(mesh) < p.d_lo:
            candidates = [peer for peer in self._topic_peers(topic) if peer not in mesh]
            for peer in self.rng.sample(candidates, min(p.d - len(mesh), len(candidates))):
                mesh.add(peer)
                actions.append(SendGraft(peer, topic))
        elif len(mesh) > p.d_hi:
            for peer in self.rng.sample(sorted(mesh), len(mesh) - p.d):
                mesh.discard(peer)
                actions.append(SendPrune(peer, topic))
        return actions

    def _emit_ihave(self, topic: str) -> list[Action]:
        recent = [
            m
            for window in list(self._windows)[: self.params.history_gossip]
            for m in window
            if self.cache[m].topic == topic
        ]
        if not recent:
            return []
        outside = [peer for peer in self._topic_peers(topic) if peer not in self.mesh[topic]]
        actions: list[Action] = []
        for peer in self.rng.sample(outside, min(self.params.d_lazy, len(outside))):
            ids = tuple(m for m in recent if peer not in self.cache[m].holders)[:MAX_IDS]
            if ids:
                actions.append(SendIHave(peer, topic, ids))
        return actions

    def _shift_cache(self) -> list[Action]:
        self._windows.appendleft([])
        actions: list[Action] = []
        while len(self._windows) > self.params.history_length:
            for msg_id in self._windows.pop():
                self.cache.pop(msg_id, None)
                actions.append(Forget(msg_id))
        return actions

    def _retry_wanted(self, now: float) -> list[Action]:
        actions: list[Action] = []
        for msg_id, pending in list(self.wanted.items()):
            if pending.deadline > now:
                continue
            if not pending.asked and msg_id not in self.seen and pending.peer in self.peers:
                pending.asked = True  # [WIRE-GOSSIP.12] the push did not come: ask for it
                pending.deadline = now + self.params.iwant_timeout
                actions.append(SendIWant(pending.peer, (msg_id,)))
                continue
            alternates = [p for p in pending.alternates if p in self.peers]
            if msg_id in self.seen or not alternates:
                del self.wanted[msg_id]
                continue
            nxt = alternates.pop(0)
            self.wanted[msg_id] = _Wanted(nxt, now + self.params.iwant_timeout, alternates)
            actions.append(SendIWant(nxt, (msg_id,)))
        return actions
