"""Deterministic tests of the pure gossip core [WIRE-GOSSIP.*], including a simulated network."""

from __future__ import annotations

import random
from collections import defaultdict, deque

from p2p.config import GossipParams
from p2p.gossip_core import (
    Forget,
    GossipCore,
    Receipt,
    SendFull,
    SendGraft,
    SendIHave,
    SendIWant,
    SendPrune,
    Verdict,
)

P = GossipParams()
TOPICS = ("tx", "consensus")


def core(seed: int = 1) -> GossipCore:
    return GossipCore(P, TOPICS, random.Random(seed))


def peer(i: int) -> bytes:
    return bytes([i]) * 20


def mid(i: int) -> bytes:
    return bytes([i]) * 32


def test_wire_gossip_2_add_peer_grafts_until_d() -> None:
    c = core()
    actions = [a for i in range(6) for a in c.add_peer(peer(i), TOPICS)]
    grafts = [a for a in actions if isinstance(a, SendGraft) and a.topic == "tx"]
    assert len(grafts) == P.d
    assert len(c.mesh["tx"]) == P.d


def test_wire_gossip_2_graft_above_d_hi_accepted_then_pruned_by_heartbeat() -> None:
    c = core()
    for i in range(P.d_hi + 2):
        c.add_peer(peer(i), TOPICS)
        assert c.on_graft(peer(i), "tx") == []
    assert len(c.mesh["tx"]) == P.d_hi + 2
    prunes = [a for a in c.heartbeat(0.1) if isinstance(a, SendPrune) and a.topic == "tx"]
    assert len(prunes) == 2 + P.d_hi - P.d
    assert len(c.mesh["tx"]) == P.d


def test_wire_gossip_2_graft_refused_at_hard_cap() -> None:
    c = core()
    for i in range(2 * P.d_hi):
        c.add_peer(peer(i), TOPICS)
        c.on_graft(peer(i), "tx")
    c.add_peer(peer(99), TOPICS)
    assert c.on_graft(peer(99), "tx") == [SendPrune(peer(99), "tx")]


def test_wire_gossip_2_reconnecting_peer_starts_clean() -> None:
    c = core()
    c.add_peer(peer(1), TOPICS)
    c.on_prune(peer(1), "tx")
    again = c.add_peer(peer(1), TOPICS)
    assert SendGraft(peer(1), "tx") in again


def test_wire_gossip_5_forward_once_excluding_source() -> None:
    c = core()
    for i in range(4):
        c.add_peer(peer(i), TOPICS)
    source = sorted(c.mesh["consensus"])[0]
    assert c.on_receive(source, "consensus", mid(1), now=0.0) is Receipt.NEW
    actions = c.on_validated(mid(1), Verdict.ACCEPT)
    targets = {a.peer for a in actions if isinstance(a, SendFull)}
    assert targets == c.mesh["consensus"] - {source}
    # A second copy from another peer is a duplicate and forwards nothing.
    other = sorted(c.mesh["consensus"])[1]
    assert c.on_receive(other, "consensus", mid(1), now=0.1) is Receipt.DUPLICATE
    assert c.on_validated(mid(1), Verdict.ACCEPT) == []


def test_wire_gossip_9_same_peer_repeating_a_message_is_flagged() -> None:
    c = core()
    c.add_peer(peer(1), TOPICS)
    assert c.on_receive(peer(1), "tx", mid(1), 0.0) is Receipt.NEW
    c.on_validated(mid(1), Verdict.ACCEPT)
    assert c.on_receive(peer(1), "tx", mid(1), 0.0) is Receipt.REPEATED_BY_PEER


def test_wire_gossip_8_rejected_message_is_not_forwarded_nor_reprocessed() -> None:
    c = core()
    for i in range(4):
        c.add_peer(peer(i), TOPICS)
    assert c.on_receive(peer(0), "tx", mid(7), 0.0) is Receipt.NEW
    assert c.on_validated(mid(7), Verdict.REJECT) == [Forget(mid(7))]
    assert c.on_receive(peer(1), "tx", mid(7), 0.0) is Receipt.DUPLICATE


def test_wire_gossip_3_heartbeat_announces_to_non_mesh_peers_only() -> None:
    c = core()
    for i in range(8):
        c.add_peer(peer(i), TOPICS)
    c.publish("tx", mid(1), 0.0)
    ihaves = [a for a in c.heartbeat(0.1) if isinstance(a, SendIHave)]
    assert ihaves
    assert all(a.peer not in c.mesh["tx"] and a.ids == (mid(1),) for a in ihaves)


def test_wire_gossip_4_iwant_once_then_retry_another_announcer() -> None:
    c = core()
    for i in range(3):
        c.add_peer(peer(i), TOPICS)
    assert c.on_ihave(peer(0), "consensus", [mid(5)], 0.0) == [SendIWant(peer(0), (mid(5),))]
    assert c.on_ihave(peer(1), "consensus", [mid(5)], 0.1) == []
    retry = [a for a in c.heartbeat(P.iwant_timeout + 0.01) if isinstance(a, SendIWant)]
    assert retry == [SendIWant(peer(1), (mid(5),))]


def test_wire_gossip_4_iwant_served_a_bounded_number_of_times() -> None:
    c = core()
    c.add_peer(peer(1), TOPICS)
    c.publish("tx", mid(1), 0.0)
    served = [c.on_iwant(peer(1), [mid(1)]) for _ in range(P.max_iwant_serve + 2)]
    assert sum(len(s) for s in served) == P.max_iwant_serve
    assert c.on_iwant(peer(1), [mid(2)]) == []


def test_wire_gossip_cache_expiry_forgets_payloads() -> None:
    c = core()
    c.add_peer(peer(1), TOPICS)
    c.publish("tx", mid(1), 0.0)
    forgotten = [
        a
        for t in range(P.history_length + 1)
        for a in c.heartbeat(t * 0.1)
        if isinstance(a, Forget)
    ]
    assert forgotten == [Forget(mid(1))]


def simulate(n: int, degree: int, messages: int, seed: int,
             topic: str = "tx") -> tuple[int, dict[int, int]]:
    """Runs cores over a random graph with FIFO links (``degree`` = n - 1: every pair
    linked); returns (nodes reached min, copies)."""
    rng = random.Random(seed)
    cores = [GossipCore(P, TOPICS, random.Random(rng.random())) for _ in range(n)]
    links: set[tuple[int, int]] = set()
    for i in range(n):
        for j in rng.sample([x for x in range(n) if x != i], degree):
            links.add((min(i, j), max(i, j)))
    queue: deque[tuple[int, int, object]] = deque()

    def run(src: int, actions: list) -> None:
        for a in actions:
            if not isinstance(a, Forget):
                queue.append((src, a.peer[0], a))

    for a, b in sorted(links):
        run(a, cores[a].add_peer(peer(b), TOPICS))
        run(b, cores[b].add_peer(peer(a), TOPICS))
    copies: dict[int, int] = defaultdict(int)
    reached: dict[int, set[int]] = defaultdict(set)
    now = 0.0

    def drain() -> None:
        while queue:
            src, dst, a = queue.popleft()
            c = cores[dst]
            if isinstance(a, SendGraft):
                run(dst, c.on_graft(peer(src), a.topic))
            elif isinstance(a, SendPrune):
                c.on_prune(peer(src), a.topic)
            elif isinstance(a, SendFull):
                copies[a.msg_id[0]] += 1
                if c.on_receive(peer(src), topic, a.msg_id, now) is Receipt.NEW:
                    reached[a.msg_id[0]].add(dst)
                    run(dst, c.on_validated(a.msg_id, Verdict.ACCEPT))
            elif isinstance(a, SendIHave):
                run(dst, c.on_ihave(peer(src), a.topic, list(a.ids), now))
            elif isinstance(a, SendIWant):
                run(dst, c.on_iwant(peer(src), list(a.ids)))

    drain()
    for k in range(messages):
        origin = rng.randrange(n)
        reached[k].add(origin)
        run(origin, cores[origin].publish(topic, mid(k), now))
        drain()
        for _ in range(3 if k < messages - 1 else 12):  # the last: until every hold is over
            now += P.heartbeat
            for i, c in enumerate(cores):
                run(i, c.heartbeat(now))
            drain()
    return min(len(reached[k]) for k in range(messages)), copies


def test_wire_gossip_sim_32_nodes_all_reached_with_few_copies() -> None:
    n, messages = 32, 50
    for topic in TOPICS:  # held relay [WIRE-GOSSIP.12] and eager relay
        reached, copies = simulate(n, degree=4, messages=messages, seed=7, topic=topic)
        assert reached == n, topic
        per_node = sum(copies.values()) / (messages * (n - 1))
        assert per_node <= 3.0, topic


def test_wire_gossip_12_held_relay_saves_the_relays_pushes() -> None:
    """[WIRE-GOSSIP.12] Every pair linked (4 validators): a held topic's message reaches
    each node once, from its author; the eager topic's relays push it again. On a sparse
    graph the held topic still reaches everyone, with fewer copies than the eager one."""
    n, messages = 4, 30
    reached, held = simulate(n, degree=n - 1, messages=messages, seed=3, topic="tx")
    assert reached == n
    assert sum(held.values()) == messages * (n - 1)
    reached, eager = simulate(n, degree=n - 1, messages=messages, seed=3, topic="consensus")
    assert reached == n
    assert sum(eager.values()) > 1.5 * messages * (n - 1)
    sparse_held = simulate(32, degree=4, messages=50, seed=11, topic="tx")
    sparse_eager = simulate(32, degree=4, messages=50, seed=11, topic="consensus")
    assert sparse_held[0] == sparse_eager[0] == 32
    assert sum(sparse_held[1].values()) < sum(sparse_eager[1].values())


def test_wire_gossip_12_held_push_waits_for_the_hold_and_skips_announcers() -> None:
    c = core()
    for i in range(4):
        c.add_peer(peer(i), TOPICS)
    mesh = sorted(c.mesh["tx"])
    assert len(mesh) == 3
    source, announcer, silent = mesh
    assert c.on_receive(source, "tx", mid(1), 0.0) is Receipt.NEW
    first = c.on_validated(mid(1), Verdict.ACCEPT)
    assert first == [SendIHave(announcer, "tx", (mid(1),)), SendIHave(silent, "tx", (mid(1),))]
    assert c.on_ihave(announcer, "tx", [mid(1)], 0.05) == []  # it has it: no push to it
    pushes = []
    for beat in range(1, P.relay_hold_heartbeats + 1):
        pushes.append([a for a in c.heartbeat(beat * P.heartbeat) if isinstance(a, SendFull)])
    assert pushes[:-1] == [[]] * (P.relay_hold_heartbeats - 1)
    assert pushes[-1] == [SendFull(silent, mid(1))]
    assert c.on_iwant(silent, [mid(1)]) == [SendFull(silent, mid(1))]  # still servable


def test_wire_gossip_12_mesh_announcement_asks_only_if_the_push_does_not_come() -> None:
    c = core()
    for i in range(3):
        c.add_peer(peer(i), TOPICS)
    relay = sorted(c.mesh["tx"])[0]
    assert c.on_ihave(relay, "tx", [mid(5), mid(6)], 0.0) == []
    assert c.on_receive(relay, "tx", mid(6), 0.1) is Receipt.NEW  # the push came
    wait = (P.relay_hold_heartbeats + 1) * P.heartbeat
    asked = [a for a in c.heartbeat(wait - 0.01) if isinstance(a, SendIWant)]
    assert asked == []
    asked = [a for a in c.heartbeat(wait + 0.01) if isinstance(a, SendIWant)]
    assert asked == [SendIWant(relay, (mid(5),))]
    # An eager topic's announcement is asked for at once, mesh peer or not.
    assert c.on_ihave(relay, "consensus", [mid(7)], 0.0) == [SendIWant(relay, (mid(7),))]


def test_wire_gossip_10_own_repeat_goes_to_every_peer_once_the_caches_forgot_it() -> None:
    """[WIRE-GOSSIP.10] The author publishing the same bytes again: nothing while any
    cache may still hold the first copy (history_length + 2 heartbeats), then the same
    id to every topic peer, mesh or not. A receiver that had it (and heard it a
    heartbeat late) answers DUPLICATE, not REPEATED_BY_PEER, and forwards nothing; one
    that missed it takes it as NEW and forwards it once; a third peer re-sending those
    bytes is only a duplicate."""
    beat = P.heartbeat
    quiet = (P.history_length + 2) * beat
    author = core(1)
    for i in range(8):
        author.add_peer(peer(i), TOPICS)
    first = author.publish("consensus", mid(9), 0.0)
    assert {a.peer for a in first if isinstance(a, SendFull)} == author.mesh["consensus"]
    had = core(2)  # heard it one heartbeat late, from the author's mesh
    had.add_peer(peer(100), TOPICS)
    missed = core(3)
    for i in (100, 101, 102, 103):
        missed.add_peer(peer(i), TOPICS)
    quiet_beats = P.history_length + 2
    assert quiet == quiet_beats * beat
    for k in range(1, quiet_beats):
        t = k * beat
        for c in (author, had, missed):
            c.heartbeat(t)
        if k == 1:
            assert had.on_receive(peer(100), "consensus", mid(9), t) is Receipt.NEW
            had.on_validated(mid(9), Verdict.ACCEPT)
        assert author.publish("consensus", mid(9), t) == [], f"repeat too early at {t}"
    assert mid(9) not in author.cache
    t = quiet_beats * beat
    for c in (author, had, missed):
        c.heartbeat(t)
    repeat = author.publish("consensus", mid(9), t)
    assert sorted(a.peer for a in repeat if isinstance(a, SendFull)) == [peer(i) for i in range(8)]
    assert all(isinstance(a, SendFull) and a.msg_id == mid(9) for a in repeat)
    assert author.publish("consensus", mid(9), t) == [], "one repeat per quiet period"
    assert had.on_receive(peer(100), "consensus", mid(9), t) is Receipt.DUPLICATE
    assert had.on_validated(mid(9), Verdict.ACCEPT) == []
    assert missed.on_receive(peer(100), "consensus", mid(9), t) is Receipt.NEW
    onward = missed.on_validated(mid(9), Verdict.ACCEPT)
    assert onward and {a.peer for a in onward if isinstance(a, SendFull)} <= \
        missed.mesh["consensus"] - {peer(100)}
    assert missed.on_receive(peer(101), "consensus", mid(9), t) is Receipt.DUPLICATE
    assert missed.on_validated(mid(9), Verdict.ACCEPT) == []
