"""Private mode's client loops against the real ledger, through blocks [FED-PRIV.10]: four
participant loops (``Participant`` with its ``PrivateParticipant``) train, clip, commit to
fresh keys, share, mask and unmask; one drops out after sharing; every bonded verifier
runs a ``Member`` loop that aggregates when drawn, recomputes the round from the public
blobs alone and votes. The shared blob store stands for every node's blob store.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import numpy as np

from chain.content import blob_id_of_bytes
from chain.federated.blobs import ModelBlob, UpdateBlob
from chain.federated.fixed import rdiv
from chain.federated.open.reads import fed_rounds
from chain.federated.open.records import FedPhase
from chain.federated.rewards import payout
from chain.records import JobStatus
from chain.transactions import SignedTransaction
from client.federated.member.duties import Member, VoteStore
from client.federated.participant.private import PrivateParticipant, PrivateStore
from client.federated.participant.rounds import Participant, RoundStore
from tests.federated.fed_ledger_story import BOUNTY, INITIAL, SCALE, conserved
from tests.federated.fed_private_story import (
    OWNERS,
    PRIVATE_UPDATES,
    PrivateStory,
    private_job_spec,
)
from tests.federated.test_federated_join import HarnessPorts
from tests.federated.test_federated_member import FixedEvaluator, accuracy_of


class PrivateNet:
    """The chain, one shared blob store, a participant loop per owner, a member loop per
    bonded verifier."""

    def __init__(self, tmp: Path, cheat_first_draw: bool = False, **spec: object) -> None:
        self.story = PrivateStory()
        self.story.post(private_job_spec(**spec))
        self.story.publish()
        self.blobs: dict[bytes, bytes] = {blob_id_of_bytes(INITIAL.to_bytes()):
                                          INITIAL.to_bytes()}
        self.mempool: list[SignedTransaction] = []
        self.trained: dict[tuple[str, int], tuple[int, ...]] = {}
        self.parts = {n: self._participant(n, tmp) for n in OWNERS}
        names = sorted(n for n in self.story.chain.keys if n != "mallory")
        self.members = {n: Member(self.story.chain.addr(n),
                                  HarnessPorts(self.story, n, self.blobs, self.mempool),
                                  FixedEvaluator(), VoteStore(tmp / "votes" / n),
                                  cheat_first_draw=cheat_first_draw)
                        for n in names}
        self.offline: Callable[[str], bool] = lambda _n: False

    def _participant(self, name: str, tmp: Path) -> Participant:
        story = self.story

        def train(model: ModelBlob, r: int) -> UpdateBlob:
            values = tuple(v * r for v in PRIVATE_UPDATES[name])
            self.trained[(name, r)] = values
            return UpdateBlob(story.job_id, r, story.chain.addr(name), SCALE, values)

        ports = HarnessPorts(story, name, self.blobs, self.mempool)
        folder = tmp / "owners" / name
        private = PrivateParticipant(story.job_id, story.chain.addr(name), ports, train,
                                     PrivateStore(folder))
        return Participant(story.job_id, story.chain.addr(name), ports, train,
                           RoundStore(folder), private=private)

    def run(self, until: Callable[[], bool], blocks: int = 200) -> None:
        for _ in range(blocks):
            if until():
                return
            for n, p in self.parts.items():
                if not self.offline(n):
                    p.step()
            for m in self.members.values():
                m.step(self.story.job_id)
            self.story.chain.block(*self.mempool)
            self.mempool.clear()
        raise AssertionError(f"not reached in {blocks} blocks: {self.story.fed.phase}")


def test_private_loops_dropout_aggregate_votes_and_no_update_readable(tmp_path: Path) -> None:
    """[FED-PRIV.10] [FED-PRIV.9] [FED-PRIV.4] [FED-REWARD.6] [WORK-FED.1] Round 1: dave's
    node goes offline after the share exchange; the three survivors' unmask blobs rebuild
    its pair seeds; the drawn member posts the mean of the survivors' updates and every
    other member, recomputing from the public blobs, votes it valid. Round 2: all four.
    The recorded models are exactly ``previous + rdiv(sum, |U|)``; the job pays by round
    weights; no block and no blob in the store holds any update's words; after the job no
    participant keeps its round secrets."""
    net = PrivateNet(tmp_path)
    story = net.story
    net.offline = lambda n: n == "dave" and story.fed.round == 1 and story.fed.phase in (
        FedPhase.REVEAL, FedPhase.UNMASK)
    net.run(lambda: story.fed.phase == FedPhase.DONE)
    rounds = fed_rounds(story.chain.state, story.job_id)
    assert [r.outcome for r in rounds] == ["accepted", "accepted"]
    addr = story.chain.addr
    assert dict(rounds[0].weights) == {addr(n): 1 for n in ("alice", "bob", "carol")}
    assert dict(rounds[1].weights) == {addr(n): 1 for n in OWNERS}
    model = list(INITIAL.values)
    for r, names in ((1, ("alice", "bob", "carol")), (2, OWNERS)):
        total = [sum(net.trained[(n, r)][k] for n in names) for k in range(len(model))]
        model = [m + rdiv(t, len(names)) for m, t in zip(model, total, strict=True)]
        rec = rounds[r - 1]
        assert ModelBlob.from_bytes(net.blobs[bytes(rec.model_blob)]).values == tuple(model)
        assert rec.accuracy_ppm == accuracy_of(model)
    fed = story.fed
    expected = payout(BOUNTY, 0, [dict(r.weights) for r in rounds], None, None)
    assert fed.paid == expected.paid and story.chain.job(story.job_id).status == \
        JobStatus.PAID
    needles = []
    for values in net.trained.values():
        v = np.array(values, dtype=np.int64)
        needles += [v.astype("<i4").tobytes(), v.astype("<i8").tobytes()]
        needles += [int(a).to_bytes(4, "little", signed=True)
                    + int(b).to_bytes(4, "little", signed=True)
                    for a, b in itertools.pairwise(values)]
    for p in net.parts.values():
        p.step()  # the job is done: each participant forgets its round secrets
    assert not list((tmp_path / "owners").rglob("private-*.json"))
    haystacks = [b.encode() for b in story.chain.blocks] + list(net.blobs.values())
    assert len(haystacks) > 40
    for hay in haystacks:
        assert not any(n in hay for n in needles)
    conserved(story.chain)


def test_private_clip_and_noise_bound_the_update(tmp_path: Path) -> None:
    """[FED-PRIV.3] With ``dp_clip`` 100 and noise 1000 ‰ each participant's masked
    update is its update clipped to L2 norm 100 plus noise: the round's model moves by
    the mean of those, far from the unclipped mean, and the run still completes."""
    net = PrivateNet(tmp_path, dp_clip=100, dp_noise_permille=1000, rounds=1)
    story = net.story
    net.run(lambda: story.fed.phase == FedPhase.DONE)
    rounds = fed_rounds(story.chain.state, story.job_id)
    assert rounds[0].outcome == "accepted" and len(rounds[0].weights) == 4
    moved = np.array(ModelBlob.from_bytes(net.blobs[bytes(rounds[0].model_blob)]).values,
                     dtype=np.float64)
    assert np.linalg.norm(moved) < 100 + 4 * 100  # the mean of clipped updates plus noise
    conserved(story.chain)


def test_a_wrong_private_aggregate_is_voted_down_and_slashed(tmp_path: Path) -> None:
    """[FED-PRIV.9] [FED-ROUND.5] [FED-VOTE.3] The first drawn aggregator of a private round
    posts a wrong model (every member is set to cheat on the first draw; only the drawn one
    can): the others, unmasking the same public blobs, vote it invalid; it is banned and
    slashed, and the next aggregator's correct aggregate is accepted."""
    net = PrivateNet(tmp_path, cheat_first_draw=True, rounds=1)
    story = net.story
    net.run(lambda: story.fed.phase == FedPhase.DONE)
    (rec,) = fed_rounds(story.chain.state, story.job_id)
    assert rec.outcome == "accepted" and len(rec.slashed) == 1
    assert story.chain.state.account(rec.slashed[0]).banned
    assert rec.aggregator not in rec.slashed
    total = [sum(net.trained[(n, 1)][k] for n in OWNERS) for k in range(4)]
    assert ModelBlob.from_bytes(net.blobs[bytes(rec.model_blob)]).values == tuple(
        rdiv(t, 4) for t in total)
    conserved(story.chain)
