"""A federated job driven through real transactions on a running ``SoloNode`` (no tests
here): the shared story of the federated API and dashboard tests.

The owner is ``submitter``; ``alice``, ``bob``, ``carol`` send the updates of
tests/federated/fed_ledger_story.py (round r: the vector times r); the drawn aggregator
posts the honest trimmed mean [FED-AGG.1] and its weights; every voter votes it valid
with the round's accuracy; the owner names its holdout parts; the end ballot agrees on
the losses, and the job pays out. Each phase's end is reached by skipping the node's clock
to the deadline and committing a block (``step``)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from chain.crypto import PrivateKey
from chain.federated.blobs import ModelBlob, UpdateBlob
from chain.federated.open.reads import (
    UpdateBodies,
    aggregate_body,
    fed_job,
    part_body,
    update_bodies,
    vote_bodies,
)
from chain.federated.open.records import FedJob, FedPhase
from chain.federated.rounds import Aggregation, aggregate_round, apply_aggregate
from chain.federated.spec import FEDERATED_V1
from chain.train.bodies import PostJob
from chain.types import Hash32
from tests.client.test_models_api_support import step
from tests.federated.fed_ledger_story import DIMS, INITIAL, SCALE, UPDATES, fed_spec, salt_of
from tests.framework.solo import SoloNode
from tests.ledger.harness import job_spec

PARTICIPANTS = ("alice", "bob", "carol")
ACCURACY = {1: 600_000, 2: 750_000}
"""The accuracy every voter reports for round r (so the agreed one [FED-VOTE.4])."""
FINAL_LOSS = 400_000
LOO_LOSS = {"alice": 520_000, "bob": 470_000, "carol": 430_000}


@dataclass
class FedRun:
    """What the story did, for the tests to compare the API's answers with."""

    job_id: bytes = b""
    commitments: dict[tuple[int, str], bytes] = field(default_factory=dict)
    weights: dict[int, dict[bytes, int]] = field(default_factory=dict)
    aggregators: dict[int, bytes] = field(default_factory=dict)
    model_hashes: dict[int, bytes] = field(default_factory=dict)
    txs: dict[str, bytes] = field(default_factory=dict)
    """One transaction hash per federated body type."""


class FedDriver:
    def __init__(self, node: SoloNode, keys: dict[str, PrivateKey]) -> None:
        self.node, self.keys = node, keys
        self.names = {k.address: n for n, k in keys.items()}
        self.run = FedRun()
        self.model = INITIAL.values

    @property
    def fed(self) -> FedJob:
        rec = fed_job(self.node.state, self.run.job_id)
        assert rec is not None
        return rec

    async def to_deadline(self) -> None:
        """The phase's end: the node's clock at the deadline, one block."""
        self.node.skip_to(int(self.fed.deadline_ms))
        await step(self.node, self.keys)

    async def post(self, rounds: int = 2) -> None:
        """[TX-FED.1] The job, then two blocks (the split drawn) and the public part."""
        common = job_spec(bounty=300, expiry_ms=self.node.now_ms() + 60_000, voter_reward=5,
                          max_turns=3, window_ms=5_000)
        spec = replace(common, kind=FEDERATED_V1, federated=fed_spec(rounds=rounds))
        (self.run.job_id,) = await step(self.node, self.keys, ("submitter", PostJob(spec)))
        await step(self.node, self.keys)
        await step(self.node, self.keys)
        (self.run.txs["fed_part"],) = await step(self.node, self.keys, (
            "submitter", part_body(self.run.job_id, "public", b"\x31" * 32, 1000)))

    def _bodies(self, name: str, r: int) -> UpdateBodies:
        blob = UpdateBlob(Hash32(self.run.job_id), r, self.keys[name].address, SCALE,
                          tuple(v * r for v in UPDATES[name])).to_bytes()
        return update_bodies(self.run.job_id, r, self.keys[name].address, blob,
                             salt_of("update", name, r))

    async def commit(self, names: tuple[str, ...] = PARTICIPANTS) -> None:
        """[TX-FED.2] Each named participant commits its round-r update."""
        r = self.fed.round
        made = {n: self._bodies(n, r) for n in names}
        hashes = await step(self.node, self.keys, *((n, b.commit) for n, b in made.items()))
        self.run.txs.setdefault("fed_commit", hashes[0])
        for n, b in made.items():
            self.run.commitments[(r, n)] = bytes(b.commit.commitment)

    async def reveal(self, names: tuple[str, ...] = PARTICIPANTS) -> None:
        """[TX-FED.3] The commit window's end, the reveals, the reveal window's end (which
        draws the aggregator [FED-ROUND.3])."""
        r = self.fed.round
        await self.to_deadline()
        hashes = await step(self.node, self.keys,
                            *((n, self._bodies(n, r).reveal) for n in names))
        self.run.txs.setdefault("fed_reveal", hashes[0])
        await self.to_deadline()

    async def aggregate_and_vote(self) -> None:
        """[TX-FED.4] the honest aggregate; [TX-FED.5] [TX-FED.6] every voter valid."""
        fed = self.fed
        r = fed.round
        assert fed.phase == FedPhase.AGGREGATE and fed.aggregator is not None
        updates = {self.keys[n].address: tuple(v * r for v in UPDATES[n])
                   for n in PARTICIPANTS}
        result = aggregate_round(Aggregation("trimmed_mean", 0), updates, None, DIMS)
        model = apply_aggregate(self.model, result.aggregate)
        blob = ModelBlob(SCALE, model).to_bytes()
        body = aggregate_body(self.run.job_id, r, fed.attempt, blob, dict(result.weights))
        (h,) = await step(self.node, self.keys, (self.names[fed.aggregator], body))
        self.run.txs.setdefault("fed_aggregate", h)
        self.run.weights[r] = {bytes(a): int(w) for a, w in dict(result.weights).items()}
        self.run.aggregators[r] = bytes(fed.aggregator)
        self.run.model_hashes[r] = bytes(body.model_hash)
        await self.vote(r, fed.attempt, accuracy=ACCURACY[r])
        self.model = model

    async def vote(self, r: int, attempt: int, *, accuracy: int | None = None,
                   losses: list[int] | None = None) -> None:
        voters = [self.names[v] for v in self.fed.voters]
        made = {n: vote_bodies(self.run.job_id, r, attempt, self.keys[n].address, True,
                               accuracy_ppm=accuracy, losses=losses,
                               salt=salt_of("vote", n, r, attempt)) for n in voters}
        hashes = await step(self.node, self.keys, *((n, b.commit) for n, b in made.items()))
        self.run.txs.setdefault("fed_vote_commit", hashes[0])
        await self.to_deadline()
        hashes = await step(self.node, self.keys, *((n, b.reveal) for n, b in made.items()))
        self.run.txs.setdefault("fed_vote_reveal", hashes[0])
        await self.to_deadline()

    async def end(self) -> None:
        """[FED-END.1] the hidden part; [FED-END.2] the end ballot agrees on the losses."""
        assert self.fed.phase == FedPhase.HIDDEN, self.fed.phase
        await step(self.node, self.keys, ("submitter", part_body(
            self.run.job_id, "hidden", b"\x32" * 32, 1000)))
        loo = [self.names[a] for a in self.fed.loo_participants]
        await self.vote(0, 0, losses=[FINAL_LOSS, *(LOO_LOSS[n] for n in loo)])
        assert self.fed.phase == FedPhase.DONE, self.fed.phase


async def full_story(node: SoloNode, keys: dict[str, PrivateKey]) -> FedRun:
    """Two accepted rounds, the end ballot, the payout."""
    d = FedDriver(node, keys)
    await d.post()
    for _ in range(2):
        await d.commit()
        await d.reveal()
        await d.aggregate_and_vote()
    await d.end()
    return d.run
