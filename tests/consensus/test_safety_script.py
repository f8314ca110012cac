"""[CONS-SAFETY.1] A scripted schedule where only locking keeps agreement.

Four validators: A decides, B will be locked, D proposes round 1, C is
Byzantine (votes anything to anyone). Round 0: A and B see block v and a
polka for it, lock and precommit v; D never sees v. C's precommit for v
reaches A only, so A decides v. B and D time out into round 1, where D (who
never saw v) proposes a fresh block w and C prevotes it. A locked B prevotes
nil and w never reaches a quorum; a B that forgets its lock (``AmnesiaCore``)
prevotes w, and B and D then decide w != v. The second case proves the
schedule really needs the lock.
"""

from __future__ import annotations

from typing import Any

from chain.consensus.core import Broadcast, Commit, ConsensusCore
from chain.consensus.messages import PRECOMMIT, PREVOTE, Proposal, Vote
from chain.consensus.timeouts import Timeout, TimeoutKind
from chain.types import Hash32, Height, Round
from tests.consensus.helpers import KEYS, T0, make_core, proposal_for, vote, vset
from tests.consensus.sim import AmnesiaCore

NOW = T0 + 1000


class Node:
    def __init__(self, key: Any, core_class: type[ConsensusCore] = ConsensusCore) -> None:
        self.key = key
        self.core = make_core(key)
        if core_class is not ConsensusCore:
            self.core.__class__ = core_class
        self.sent: list[Any] = []
        self.commits: list[Hash32] = []

    def take(self, actions: list[Any]) -> None:
        for a in actions:
            if isinstance(a, Broadcast):
                self.sent.append(a.message)
            elif isinstance(a, Commit):
                self.commits.append(a.decision.block_hash)

    def start(self) -> None:
        self.take(self.core.start(NOW))

    def deliver(self, *messages: Any) -> None:
        for m in messages:
            self.take(self.core.on_message(m, NOW, b"peer"))

    def fire(self, kind: TimeoutKind, round_: int) -> None:
        self.take(self.core.on_timeout(Timeout(kind, Height(1), Round(round_)), NOW))

    def vote(self, kind: str, round_: int) -> Vote:
        found = self.vote_or_none(kind, round_)
        assert found is not None, f"no {kind} sent in round {round_}"
        return found

    def vote_or_none(self, kind: str, round_: int) -> Vote | None:
        for m in reversed(self.sent):
            if isinstance(m, Vote) and m.kind == kind and m.round == round_:
                return m
        return None

    def proposal(self, round_: int) -> Proposal:
        return next(m for m in self.sent if isinstance(m, Proposal) and m.round == round_)


def run_schedule(b_class: type[ConsensusCore]) -> tuple[Node, Node, Node]:
    vs = vset()
    p0 = vs.proposer(Height(1), Round(0)).address
    p1 = vs.proposer(Height(1), Round(1)).address
    key_d = next(k for k in KEYS if k.address == p1)
    rest = [k for k in KEYS if k is not key_d]
    key_a, key_b, key_c = rest
    a, b, d = Node(key_a), Node(key_b, b_class), Node(key_d)
    for n in (a, b, d):
        n.start()
    # Round 0: the proposal for v (from its real proposer; C's is made by hand).
    honest = {n.key.address: n for n in (a, b, d)}
    v = honest[p0].proposal(0) if p0 in honest else proposal_for(a.core, 0)
    a.deliver(v)
    b.deliver(v)
    d.fire(TimeoutKind.PROPOSE, 0)  # D never saw v: prevotes nil
    c_prevote_v = vote(key_c, PREVOTE, 1, 0, v.block_hash)
    polka = [a.vote(PREVOTE, 0), b.vote(PREVOTE, 0), c_prevote_v]
    a.deliver(*polka)
    b.deliver(*polka)
    assert a.core.locked_hash == v.block_hash
    # C's precommit for v reaches A only: A decides v.
    a.deliver(b.vote(PRECOMMIT, 0), vote(key_c, PRECOMMIT, 1, 0, v.block_hash))
    assert a.commits == [v.block_hash]
    # B and D leave round 0 (C tells them it precommitted nil).
    d.fire(TimeoutKind.PREVOTE, 0)
    c_nil = vote(key_c, PRECOMMIT, 1, 0, None)
    b.deliver(c_nil, d.vote(PRECOMMIT, 0))
    d.deliver(c_nil, b.vote(PRECOMMIT, 0))
    b.fire(TimeoutKind.PRECOMMIT, 0)
    d.fire(TimeoutKind.PRECOMMIT, 0)
    assert b.core.round == 1 and d.core.round == 1
    # Round 1: D proposes a fresh block w; C prevotes it.
    w = d.proposal(1)
    assert w.block_hash != v.block_hash and w.pol_round == -1
    b.deliver(w)
    c_prevote_w = vote(key_c, PREVOTE, 1, 1, w.block_hash)
    prevotes = [b.vote(PREVOTE, 1), d.vote(PREVOTE, 1), c_prevote_w]
    b.deliver(*prevotes)
    d.deliver(*prevotes)
    c_precommit_w = vote(key_c, PRECOMMIT, 1, 1, w.block_hash)
    for n in (b, d):
        others = [m.vote_or_none(PRECOMMIT, 1) for m in (b, d) if m is not n]
        n.deliver(*[o for o in others if o is not None], c_precommit_w)
    return a, b, d


def test_cons_safety_1_lock_keeps_agreement_under_this_schedule() -> None:
    a, b, d = run_schedule(ConsensusCore)
    assert b.vote(PREVOTE, 1).block_hash is None  # [CONS-PREVOTE.1] locked on v
    decided = {h for n in (a, b, d) for h in n.commits}
    assert len(decided) == 1


def test_cons_safety_1_without_the_lock_the_same_schedule_forks() -> None:
    a, b, d = run_schedule(AmnesiaCore)
    assert b.commits and b.commits != a.commits  # the fork the lock prevents
