"""A federated job driven through real blocks (tests/ledger/harness.py): fixed keys, salts,
block times and updates, so the story is byte-for-byte repeatable (the vectors' source).

The owner is ``submitter``; ``alice``, ``bob``, ``carol`` are the data owners; every member
(and v0) is a bonded verifier, so every one of them may be drawn to aggregate and may vote.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any

from chain.content import blob_id_of_bytes
from chain.federated.blobs import ModelBlob, UpdateBlob
from chain.federated.open.reads import (
    aggregate_body,
    fed_job,
    part_body,
    update_bodies,
    vote_bodies,
)
from chain.federated.open.records import FedJob, FedPhase
from chain.federated.rounds import Aggregation, aggregate_round, apply_aggregate
from chain.federated.spec import FEDERATED_V1, FederatedSpec
from chain.jobspec import JobSpec
from chain.train.bodies import PostJob
from chain.train.holdout.spec import Holdout
from chain.transactions import SignedTransaction
from chain.types import Address, Amount, Hash32
from tests.ledger.harness import GENESIS_TIME, Chain, job_spec

SCALE = 16
DIMS = 4
INITIAL = ModelBlob(SCALE, (0,) * DIMS)
PARTICIPANTS = ("alice", "bob", "carol")
BOUNTY = 300
DEPOSIT = 20
WINDOW = 5_000
UPDATES = {
    "alice": (1000, -200, 300, 40),
    "bob": (1200, -100, 250, 60),
    "carol": (900, -300, 350, 20),
}
"""Round r's update of each participant is this vector times r (distinct, alike)."""


def salt_of(*parts: object) -> bytes:
    return hashlib.sha256(repr(parts).encode()).digest()


def holdout(deposit: int = DEPOSIT) -> Holdout:
    return Holdout(Hash32(b"\x21" * 32), 100, 500, 1, Amount(deposit), WINDOW, 0.0)


def fed_spec(**kw: Any) -> FederatedSpec:
    base: dict[str, Any] = dict(
        initial_model=Hash32(blob_id_of_bytes(INITIAL.to_bytes())), dims=DIMS,
        scale_bits=SCALE, rounds=2, min_participants=2, max_participants=3,
        aggregation=Aggregation("trimmed_mean", 0), target_accuracy_ppm=None,
        holdout=holdout(), privacy="open", dp_clip=0, dp_noise_permille=0,
        commit_window_ms=WINDOW, reveal_window_ms=WINDOW, aggregate_window_ms=WINDOW,
        loo_permille=500)
    base.update(kw)
    return FederatedSpec(**base)


def fed_job_spec(bounty: int = BOUNTY, max_turns: int = 3, voter_reward: int = 5,
                 **kw: Any) -> JobSpec:
    """A federated/v1 spec: harness's train/v1 common fields, then ``fed_spec(**kw)``."""
    common = job_spec(bounty, GENESIS_TIME + 10_000, voter_reward=voter_reward,
                      max_turns=max_turns, window_ms=WINDOW)
    return replace(common, kind=FEDERATED_V1, federated=fed_spec(**kw))


class FedStory:
    """One federated job on a fresh chain, with the honest computations beside it."""

    def __init__(self, chain: Chain | None = None) -> None:
        self.chain = chain or Chain()
        self.job_id = Hash32(b"")
        self.model = INITIAL.values
        self.names = {self.chain.addr(n): n for n in self.chain.keys}

    # --- reading ---------------------------------------------------------------------
    @property
    def fed(self) -> FedJob:
        rec = fed_job(self.chain.state, self.job_id)
        assert rec is not None
        return rec

    def name(self, address: bytes | None) -> str:
        assert address is not None
        return self.names[Address(address)]

    def until_deadline(self) -> None:
        self.chain.block(at=self.fed.deadline_ms)

    # --- steps -----------------------------------------------------------------------
    def post(self, spec: JobSpec | None = None) -> SignedTransaction:
        tx = self.chain.tx("submitter", PostJob(spec or fed_job_spec()))
        self.chain.block(tx)
        self.job_id = tx.hash
        return tx

    def publish(self) -> None:
        """Two blocks so the split is drawn [HOLDOUT-SPLIT.1], then the public part."""
        self.chain.block()
        self.chain.block()
        self.chain.block(self.chain.tx("submitter", part_body(
            self.job_id, "public", b"\x31" * 32, 1000)))

    def update_blob(self, name: str, r: int) -> bytes:
        values = tuple(v * r for v in UPDATES[name])
        return UpdateBlob(self.job_id, r, self.chain.addr(name), SCALE, values).to_bytes()

    def bodies(self, name: str, r: int) -> Any:
        return update_bodies(self.job_id, r, self.chain.addr(name), self.update_blob(name, r),
                             salt_of("update", name, r))

    def commit_and_reveal(self, names: tuple[str, ...] = PARTICIPANTS) -> None:
        """Commits in one block, the commit window's end, reveals, the reveal window's end
        (which draws the aggregator)."""
        r = self.fed.round
        self.chain.block(*(self.chain.tx(n, self.bodies(n, r).commit) for n in names))
        self.until_deadline()
        self.chain.block(*(self.chain.tx(n, self.bodies(n, r).reveal) for n in names))
        self.until_deadline()

    def honest(self, names: tuple[str, ...] = PARTICIPANTS) -> tuple[bytes, dict[bytes, int]]:
        """What every member recomputes: the next model's blob and the weights."""
        r = self.fed.round
        updates = {self.chain.addr(n): tuple(v * r for v in UPDATES[n]) for n in names}
        result = aggregate_round(Aggregation("trimmed_mean", 0), updates, None, DIMS)
        model = apply_aggregate(self.model, result.aggregate)
        return ModelBlob(SCALE, model).to_bytes(), dict(result.weights)

    def post_aggregate(self, blob: bytes, weights: dict[bytes, int]) -> str:
        fed = self.fed
        assert fed.phase == FedPhase.AGGREGATE and fed.aggregator is not None
        who = self.name(fed.aggregator)
        self.chain.block(self.chain.tx(who, aggregate_body(self.job_id, fed.round, fed.attempt,
                                                           blob, weights)))
        return who

    def vote(self, ballots: dict[str, tuple[bool, int | None, list[int] | None]]) -> None:
        """Each named voter commits, the window ends, each reveals, the window ends."""
        fed = self.fed
        r, attempt = (0, 0) if fed.phase == FedPhase.END_COMMIT else (fed.round, fed.attempt)
        made = {n: vote_bodies(self.job_id, r, attempt, self.chain.addr(n), ok,
                               accuracy_ppm=acc, losses=losses,
                               salt=salt_of("vote", n, r, attempt))
                for n, (ok, acc, losses) in ballots.items()}
        self.chain.block(*(self.chain.tx(n, b.commit) for n, b in made.items()))
        self.until_deadline()
        self.chain.block(*(self.chain.tx(n, b.reveal) for n, b in made.items()))
        self.until_deadline()

    def voters(self) -> list[str]:
        return [self.name(v) for v in self.fed.voters]

    def accept_round(self, accuracy: int = 700_000) -> None:
        """The honest aggregate, posted by the drawn aggregator, voted valid by all."""
        blob, weights = self.honest()
        self.post_aggregate(blob, weights)
        self.vote({n: (True, accuracy, None) for n in self.voters()})
        self.model = ModelBlob.from_bytes(blob).values


def conserved(chain: Chain) -> None:
    """[BANK.1] Balances + escrow + bonds + burned equal the genesis supply."""
    assert chain.state.total_credits() == chain.state.supply
