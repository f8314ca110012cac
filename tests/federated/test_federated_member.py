"""The member loop (client.federated.member.duties) against the real ledger, through blocks.

The ledger harness's chain and the federated story's job (tests/federated/fed_ledger_story.py)
stand for the network. Participants commit and reveal through the story (their loop is
tested in test_federated_join.py); every bonded verifier runs a ``Member`` loop whose only
contact with the chain is its ports (committed state, a submit that puts signed
transactions in the next block, a shared blob store). Each member recomputes rounds itself.
The evaluator is a fixed host function of the model (the toy job's 4-coordinate model is
no network; the evaluator port is what a node fills with a real evaluation).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from chain.content import blob_id_of_bytes
from chain.federated.blobs import ModelBlob
from chain.federated.open.reads import END_ROUND, fed_rounds, part_body, update_bodies
from chain.federated.open.records import DepositStatus, FedPhase
from chain.federated.open.replay import end_models, replay_plan
from chain.federated.rewards import payout
from chain.federated.spec import FederatedSpec
from chain.jobspec import DataRef
from chain.records import JobStatus
from chain.transactions import Body
from client.federated.member.duties import Member, VoteStore
from tests.federated.fed_ledger_story import BOUNTY, INITIAL, PARTICIPANTS, FedStory, conserved
from tests.federated.test_federated_join import HarnessPorts
from tests.ledger.harness import Chain


def accuracy_of(values: Sequence[int]) -> int:
    return 500_000 + sum(abs(v) for v in values) % 400_000


def loss_of(values: Sequence[int]) -> int:
    return 1_000 + sum(v * v for v in values) % 900_000


class FixedEvaluator:
    """Host-side stand-in: a deterministic function of the model, the same on every node."""

    def __init__(self) -> None:
        self.parts: list[DataRef] = []

    def accuracy(self, job_id: bytes, spec: FederatedSpec, part: DataRef,
                 model: ModelBlob) -> int | None:
        self.parts.append(part)
        return accuracy_of(model.values)

    def losses(self, job_id: bytes, spec: FederatedSpec, part: DataRef,
               models: Sequence[tuple[int, ...]]) -> list[int] | bool:
        self.parts.append(part)
        return [loss_of(m) for m in models]


class MemberPorts(HarnessPorts):
    """Records the blobs this member stores and serves."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.served: set[bytes] = set()

    def put_blob(self, data: bytes, source: Path | None = None) -> bytes:
        self.served.add(super().put_blob(data, source))
        return blob_id_of_bytes(data)


class Network:
    """The story's chain, a shared blob store and one Member loop per bonded verifier."""

    def __init__(self, tmp: Path, cheat: str | None = None, version: int | None = None) -> None:
        self.story = FedStory(None if version is None else Chain(protocol_version=version))
        self.story.post()
        self.story.publish()
        self.blobs: dict[bytes, bytes] = {blob_id_of_bytes(INITIAL.to_bytes()):
                                          INITIAL.to_bytes()}
        self.mempool: list = []  # type: ignore[type-arg]
        names = sorted(n for n in self.story.chain.keys if n != "mallory")
        self.ports = {n: MemberPorts(self.story, n, self.blobs, self.mempool) for n in names}
        self.members = {n: self.member(n, tmp, cheat == n) for n in names}

    def member(self, name: str, tmp: Path, cheat: bool) -> Member:
        return Member(self.story.chain.addr(name), self.ports[name], FixedEvaluator(),
                      VoteStore(tmp / name), cheat_aggregate=cheat)

    def participants_round(self) -> None:
        """Commit and reveal (the story's fixed updates); their blobs reach the store."""
        r = self.story.fed.round
        for n in PARTICIPANTS:
            blob = self.story.update_blob(n, r)
            self.blobs[blob_id_of_bytes(blob)] = blob
        self.story.commit_and_reveal()

    def run(self, until: Callable[[], bool], blocks: int = 40) -> dict[str, list[str]]:
        """Step every member once per block until ``until()``; what each step returned."""
        seen: dict[str, list[str]] = {n: [] for n in self.members}
        for _ in range(blocks):
            if until():
                return seen
            for n, m in self.members.items():
                if not self.story.chain.state.account(self.story.chain.addr(n)).banned:
                    seen[n].append(m.step(self.story.job_id))
            self.story.chain.block(*self.mempool)
            self.mempool.clear()
        raise AssertionError(f"not reached in {blocks} blocks: {self.story.fed.phase}")

    def sent(self, name: str) -> list[str]:
        return self.ports[name].sent


def _round_done(net: Network, r: int) -> Callable[[], bool]:
    return lambda: len(fed_rounds(net.story.chain.state, net.story.job_id)) >= r


def test_members_aggregate_vote_and_the_end_ballot_pays(tmp_path: Path) -> None:
    """[WORK-FED.1] [TX-FED.4] [TX-FED.5] [TX-FED.6] [FED-ROUND.3] [FED-ROUND.4] [FED-VOTE.1]
    [FED-VOTE.3] [FED-VOTE.4] [FED-END.1] [FED-END.2] [FED-END.4] Member loops on every
    bonded verifier: the drawn one aggregates (fast path), the others recompute the round,
    find the posted hash and weights equal to theirs, vote valid with their accuracy and
    serve the model blob too;
    both rounds are accepted with the model hash every member computed; after the hidden
    part, the end ballot's losses (final and leave-one-out models replayed by each member)
    are agreed and the bounty is paid by them."""
    net = Network(tmp_path)
    story = net.story
    for r in (1, 2):
        net.participants_round()
        assert story.fed.phase == FedPhase.AGGREGATE
        aggregator = story.name(story.fed.aggregator)
        before = net.sent(aggregator).count("aggregate")  # the same member may be drawn twice
        net.run(_round_done(net, r))
        rec = fed_rounds(story.chain.state, story.job_id)[r - 1]
        assert rec.outcome == "accepted" and story.name(rec.aggregator) == aggregator
        hashes = {m._computed[(story.job_id, r, 0)].model_hash
                  for n, m in net.members.items() if n != aggregator}
        assert hashes == {rec.model_hash}
        assert all(w > 0 for _, w in rec.weights) and len(rec.weights) == 3
        model = ModelBlob.from_bytes(net.blobs[bytes(rec.model_blob)])
        assert rec.accuracy_ppm == accuracy_of(model.values)
        assert net.sent(aggregator).count("aggregate") == before + 1
        servers = {n for n, p in net.ports.items() if bytes(rec.model_blob) in p.served}
        assert servers == set(net.members)  # the aggregator and every valid voter serve it
    assert story.fed.phase == FedPhase.HIDDEN
    story.chain.block(story.chain.tx("submitter", story_part(story)))
    assert story.fed.phase == FedPhase.END_COMMIT
    plan = replay_plan(story.chain.state, story.job_id)
    assert plan is not None
    final, loo = end_models(plan, net.blobs)
    net.run(lambda: story.fed.phase == FedPhase.DONE)
    fed = story.fed
    losses = [loss_of(final), *(loss_of(loo[a]) for a in fed.loo_participants)]
    rounds = fed_rounds(story.chain.state, story.job_id)
    expected = payout(BOUNTY, 500, [dict(x.weights) for x in rounds], losses[0],
                      dict(zip(fed.loo_participants, losses[1:], strict=True)))
    assert fed.deposit == DepositStatus.RETURNED
    assert fed.paid == expected.paid and sum(v for _, v in fed.paid) == BOUNTY
    assert story.chain.job(story.job_id).status == JobStatus.PAID
    assert net.sent("submitter").count("vote_commit") == 2  # rounds; not the end ballot
    conserved(story.chain)


def test_members_cap_weights_and_cut_stale_copies_from_version_4(tmp_path: Path) -> None:
    """[FED-REWARD.12] [FED-REWARD.13] The member loops pass each address's latest earlier
    update only from protocol version 4: round 1's recorded weights are the capped ones
    there (the most agreeing participant is cut to the median) and the uncapped ones on a
    chain at version 1."""
    recorded = {}
    for version in (1, 4):
        net = Network(tmp_path / str(version), version=version)
        net.participants_round()
        net.run(_round_done(net, 1))
        rec = fed_rounds(net.story.chain.state, net.story.job_id)[0]
        assert rec.outcome == "accepted"
        recorded[version] = {net.story.name(a): w for a, w in rec.weights}
    capped, plain = recorded[4], recorded[1]
    assert max(plain.values()) > max(capped.values()) == sorted(plain.values())[1]
    assert {n: min(w, sorted(plain.values())[1]) for n, w in plain.items()} == capped


class RisingEvaluator(FixedEvaluator):
    """Losses chosen so every leave-one-out model is worse than the final one: 1,000 for
    the final model, then 1,300, 1,600, … (the same on every member)."""

    def losses(self, job_id: bytes, spec: FederatedSpec, part: DataRef,
               models: Sequence[tuple[int, ...]]) -> list[int] | bool:
        return [1_000 + 300 * i for i in range(len(models))]


def test_members_share_improvements_of_copies_over_the_job_from_version_5(
        tmp_path: Path) -> None:
    """[FED-REWARD.14] [FED-END.1] The story's three participants send alike updates (their
    job sums are near-copies, each counts 3): from protocol version 5 every member votes
    each improvement divided by 3 (its vote holds the credited losses) and the agreed
    losses pay by them; at version 4 the raw losses. Fails if members credit at neither
    version or at both."""
    for version in (4, 5):
        net = Network(tmp_path / str(version), version=version)
        for m in net.members.values():
            m.evaluator = RisingEvaluator()
        story = net.story
        for r in (1, 2):
            net.participants_round()
            net.run(_round_done(net, r))
        story.chain.block(story.chain.tx("submitter", story_part(story)))
        net.run(lambda: story.fed.phase == FedPhase.END_REVEAL)  # noqa: B023 (this net)
        records = [m.store.get(story.job_id, END_ROUND, 0) for m in net.members.values()]
        votes = {r.losses for r in records if r is not None}
        net.run(lambda: story.fed.phase == FedPhase.DONE)  # noqa: B023 (this loop's net)
        fed = story.fed
        rounds = [dict(x.weights) for x in fed_rounds(story.chain.state, story.job_id)]
        n = len(fed.loo_participants)
        assert n == 3
        raw = [1_000 + 300 * i for i in range(1, n + 1)]
        credited = [1_000 + (x - 1_000) // 3 for x in raw] if version == 5 else raw
        expected = payout(BOUNTY, 500, rounds, 1_000,
                          dict(zip(fed.loo_participants, credited, strict=True)))
        assert fed.paid == expected.paid
        assert votes == {(1_000, *credited)}
        conserved(story.chain)


def story_part(story: FedStory) -> Body:
    return part_body(story.job_id, "hidden", b"\x32" * 32, 1000)


def test_a_dishonest_aggregator_is_voted_down_slashed_and_replaced(tmp_path: Path) -> None:
    """[FED-ROUND.5] [FED-ROUND.3] [FED-VOTE.3] [FED-VOTE.5] The member drawn in round 1 is
    a node configured to post a wrong aggregate (``cheat_federated_aggregate``, test/devnet
    only): every other member recomputes the round, votes invalid, the poster is banned
    (balance and bond burned, recorded in ``slashed``), another aggregator is drawn for the
    same round and its honest aggregate is accepted."""
    probe = Network(tmp_path / "probe")
    probe.participants_round()
    cheat = probe.story.name(probe.story.fed.aggregator)  # the same draw on a fresh chain
    net = Network(tmp_path / "net", cheat=cheat)
    net.participants_round()
    assert net.story.name(net.story.fed.aggregator) == cheat
    seen = net.run(_round_done(net, 1))
    story = net.story
    rec = fed_rounds(story.chain.state, story.job_id)[0]
    cheater = story.chain.addr(cheat)
    assert rec.outcome == "accepted" and rec.slashed == (cheater,)
    assert rec.aggregator != cheater
    assert story.chain.state.account(cheater).banned
    assert story.chain.state.account(cheater).balance == 0
    assert story.chain.state.verifier_bond(cheater) is None
    assert "aggregated" in seen[cheat] and net.sent(cheat) == ["aggregate"]
    honest = {m._computed[(story.job_id, 1, 1)].model_hash  # attempt 1, the second draw
              for n, m in net.members.items() if n != cheat}
    assert honest == {rec.model_hash}
    conserved(story.chain)


def test_a_restarted_member_reveals_the_vote_it_committed(tmp_path: Path) -> None:
    """[FED-VOTE.1] [TX-FED.6] A member whose process restarts between its vote commit and
    the reveal window (a new loop on the same folder) opens the vote it committed; one with
    an empty folder cannot (lost_vote)."""
    net = Network(tmp_path)
    story = net.story
    net.participants_round()
    net.run(lambda: story.fed.phase == FedPhase.VOTE_COMMIT)
    net.run(lambda: story.fed.phase == FedPhase.VOTE_REVEAL)
    voter = story.name(story.fed.voters[0])
    net.members[voter] = net.member(voter, tmp_path, False)
    stranger = Member(story.chain.addr(voter), net.ports[voter], FixedEvaluator(),
                      VoteStore(tmp_path / "empty"))
    assert stranger.step(story.job_id) == "lost_vote"
    net.run(_round_done(net, 1))
    assert fed_rounds(story.chain.state, story.job_id)[0].outcome == "accepted"
    assert net.sent(voter) == ["vote_commit", "vote_reveal"]


class RefusingEvaluator(FixedEvaluator):
    """A hidden part that does not open its commitment: no losses, an invalid end vote."""

    def losses(self, job_id: bytes, spec: FederatedSpec, part: DataRef,
               models: Sequence[tuple[int, ...]]) -> list[int] | bool:
        return False


def test_members_reject_a_hidden_part_they_cannot_evaluate(tmp_path: Path) -> None:
    """[FED-END.2] [FED-END.3] [FED-VOTE.3] Every member finds the hidden part unusable and
    votes the end ballot invalid: rejected, the owner's deposit burned, the bounty paid by
    the round weights alone."""
    net = Network(tmp_path)
    story = net.story
    for n, m in net.members.items():
        net.members[n] = Member(m.address, net.ports[n], RefusingEvaluator(),
                                VoteStore(tmp_path / "refusing" / n))
    for r in (1, 2):
        net.participants_round()
        net.run(_round_done(net, r))
    story.chain.block(story.chain.tx("submitter", story_part(story)))
    net.run(lambda: story.fed.phase == FedPhase.DONE)
    rounds = fed_rounds(story.chain.state, story.job_id)
    assert story.fed.deposit == DepositStatus.BURNED
    assert story.fed.paid == payout(BOUNTY, 500, [dict(x.weights) for x in rounds]).paid
    conserved(story.chain)


def test_a_blob_naming_another_slot_is_left_out_by_every_member(tmp_path: Path) -> None:
    """[FED-ROUND.2] [FED-QUANT.5] [FED-AGG.1] Carol reveals a well-sized blob that names
    round 2 in round 1: the aggregator leaves it out of the weights, every voter recomputes
    the same and votes valid; the round is accepted from alice's and bob's updates."""
    net = Network(tmp_path)
    story = net.story
    blobs = {n: story.update_blob(n, 1) for n in ("alice", "bob")}
    blobs["carol"] = story.update_blob("carol", 2)  # the wrong round: another slot
    bodies = {n: update_bodies(story.job_id, 1, story.chain.addr(n), b, bytes(32))
              for n, b in blobs.items()}
    for b in blobs.values():
        net.blobs[blob_id_of_bytes(b)] = b
    story.chain.block(*(story.chain.tx(n, x.commit) for n, x in bodies.items()))
    story.until_deadline()
    story.chain.block(*(story.chain.tx(n, x.reveal) for n, x in bodies.items()))
    story.until_deadline()
    net.run(_round_done(net, 1))
    rec = fed_rounds(story.chain.state, story.job_id)[0]
    assert rec.outcome == "accepted"
    assert [a for a, _ in rec.weights] == sorted(story.chain.addr(n) for n in ("alice", "bob"))
    assert len(rec.updates) == 3  # carol's reveal is recorded, but did not enter
