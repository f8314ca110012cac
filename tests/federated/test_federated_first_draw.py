"""The demo's deterministic cheat (``cheat_federated_first_draw``): every verifier carries
it, so exactly the one the chain draws first posts a wrong aggregate, whoever that is.

Why: with one fixed cheater among three verifiers, ``make demo-federated`` and
tests/federated/test_federated_graph.py missed the cheat whenever the draw never picked it
in 10 rounds ((2/3)^10 = 1.7 %). Here: the pure rule over many draws [FED-ROUND.3], and
member loops on the real ledger through blocks (chains made different by empty blocks
before the post, so the first draw lands on different verifiers).
"""

from __future__ import annotations

import random
from pathlib import Path

from chain.content import blob_id_of_bytes
from chain.federated.open.reads import fed_rounds
from chain.federated.open.records import FedJob, FedPhase, FedRound
from chain.federated.open.steps import aggregator_seed
from chain.types import Address, Hash32, TimeMs
from client.federated.member.compute import first_draw
from client.federated.member.duties import Member, VoteStore
from tests.federated.fed_ledger_story import INITIAL, PARTICIPANTS, FedStory, conserved
from tests.federated.test_federated_member import (
    FixedEvaluator,
    MemberPorts,
    Network,
    _round_done,
)

JOB = Hash32(b"\x07" * 32)
VERIFIERS = tuple(Address(bytes([i]) * 20) for i in (3, 1, 2))


def _fed(**kw: object) -> FedJob:
    base = FedJob(JOB, Address(b"\x09" * 20), FedPhase.AGGREGATE, 1, TimeMs(0),
                  Hash32(b"\x00" * 32))
    return FedJob(**{**{f: getattr(base, f) for f in FedJob.__dataclass_fields__}, **kw})


def test_first_draw_rule() -> None:
    """[FED-ROUND.3] [FED-ROUND.5] The first drawn aggregator of a job is the one with nothing
    tried or slashed before it, in this round or a recorded one; a void round without a
    draw does not count."""
    a, b = VERIFIERS[0], VERIFIERS[1]
    void = FedRound(1, "void", None, Hash32(b"\x00" * 32))
    accepted = FedRound(1, "accepted", Hash32(b"\x01" * 32), Hash32(b"\x02" * 32),
                        aggregator=b)
    assert first_draw(_fed(aggregator=a), [])
    assert first_draw(_fed(aggregator=a, round=2), [void])
    assert not first_draw(_fed(aggregator=b, attempt=1, tried=(a,), slashed=(a,)), [])
    assert not first_draw(_fed(aggregator=b, attempt=1, tried=(a,)), [])  # a stayed silent
    assert not first_draw(_fed(aggregator=a, round=2), [accepted])
    assert not first_draw(_fed(aggregator=a, round=2),
                          [FedRound(1, "void", None, Hash32(b"\x00" * 32), slashed=(b,))])


def test_over_many_draws_exactly_the_first_drawn_cheats() -> None:
    """[FED-ROUND.3] Over 3000 random block hashes: the ledger's draw at attempt 0 picks a
    verifier, that one (and only that one) cheats; after it is slashed the next attempt's
    pick never does, nor any draw of a later round; each verifier is the cheater about a
    third of the time, so the demo's cheater is the chain's choice, not a fixed node."""
    rng = random.Random(18)
    candidates = tuple(sorted(VERIFIERS))
    cheaters: dict[Address, int] = dict.fromkeys(candidates, 0)
    for _ in range(3000):
        block_hash = rng.randbytes(32)
        pick = candidates[aggregator_seed(JOB, 1, 0, block_hash) % 3]
        fed = _fed(aggregator=pick)
        cheating = [c for c in candidates if fed.aggregator == c and first_draw(fed, [])]
        assert cheating == [pick]
        cheaters[pick] += 1
        rest = tuple(c for c in candidates if c != pick)
        again = rest[aggregator_seed(JOB, 1, 1, block_hash) % 2]
        assert not first_draw(_fed(aggregator=again, attempt=1, tried=(pick,),
                                   slashed=(pick,)), [])
        done = FedRound(1, "accepted", Hash32(b"\x01" * 32), Hash32(b"\x02" * 32),
                        aggregator=again, slashed=(pick,))
        assert not first_draw(_fed(aggregator=again, round=2), [done])
    assert all(800 < n < 1200 for n in cheaters.values()), cheaters


class FirstDrawNetwork(Network):
    """The member test's network, ``empty`` blocks before the post (other block hashes,
    another first draw) and every verifier running ``cheat_first_draw``."""

    def __init__(self, tmp: Path, empty: int) -> None:
        self.story = FedStory()
        for _ in range(empty):
            self.story.chain.block()
        self.story.post()
        self.story.publish()
        self.blobs = {blob_id_of_bytes(INITIAL.to_bytes()): INITIAL.to_bytes()}
        self.mempool = []
        names = sorted(n for n in self.story.chain.keys if n != "mallory")
        self.ports = {n: MemberPorts(self.story, n, self.blobs, self.mempool) for n in names}
        self.members = {n: Member(self.story.chain.addr(n), self.ports[n], FixedEvaluator(),
                                  VoteStore(tmp / n), cheat_first_draw=True) for n in names}

    def participants_round_unbanned(self) -> None:
        """A round of the participants not banned (a banned one can send nothing)."""
        state, r = self.story.chain.state, self.story.fed.round
        names = tuple(n for n in PARTICIPANTS
                      if not state.account(self.story.chain.addr(n)).banned)
        for n in names:
            blob = self.story.update_blob(n, r)
            self.blobs[blob_id_of_bytes(blob)] = blob
        self.story.commit_and_reveal(names)


def test_members_all_armed_exactly_one_cheats_and_is_slashed(tmp_path: Path) -> None:
    """[FED-ROUND.3] [FED-ROUND.5] [WORK-FED.1] On chains whose first draws differ, every
    verifier runs ``cheat_first_draw``: the first drawn posts a wrong aggregate, the others
    vote it down, it is banned; the next drawn posts the honest one (accepted), and round 2
    is accepted without any cheat. One ban per job, whoever was drawn first."""
    firsts = set()
    for empty in range(4):
        net = FirstDrawNetwork(tmp_path / str(empty), empty)
        story = net.story
        net.participants_round()
        first = story.fed.aggregator
        assert first is not None
        firsts.add(story.name(first))
        net.run(_round_done(net, 1))
        net.participants_round_unbanned()
        net.run(_round_done(net, 2))
        rounds = fed_rounds(story.chain.state, story.job_id)
        assert [r.outcome for r in rounds] == ["accepted", "accepted"]
        assert rounds[0].slashed == (first,) and rounds[1].slashed == ()
        banned = [n for n in story.chain.keys
                  if story.chain.state.account(story.chain.addr(n)).banned]
        assert banned == [story.name(first)]
        assert net.sent(story.name(first)) == ["aggregate"]
        conserved(story.chain)
    print(f"first drawn (the cheater) on four chains: {sorted(firsts)}")
    assert len(firsts) >= 2
