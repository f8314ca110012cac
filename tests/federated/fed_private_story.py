"""A private federated job driven through real blocks, every blob made as a client would
make it and kept in ``store`` (what the graph's blob stores would hold): round keys, share
blobs, masked blobs, unmask blobs, models. Deterministic (keys and coefficients from names)
so the story is repeatable.

``alice``, ``bob``, ``carol`` and ``dave`` are the data owners; the owner is ``submitter``.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from chain.content import blob_id_of_bytes
from chain.crypto import PrivateKey
from chain.federated.blobs import ModelBlob
from chain.federated.fixed import rdiv
from chain.federated.private.reads import (
    RoundSecrets,
    coefficients_needed,
    commit_bodies,
    masked_reveal,
    private_record,
    private_round_model,
    shares_body,
    unmask_body,
)
from chain.federated.private.records import FedPrivate
from chain.federated.private.shamir import PRIME
from chain.federated.rounds import Aggregation
from tests.federated.fed_ledger_story import INITIAL, SCALE, FedStory, fed_job_spec

OWNERS = ("alice", "bob", "carol", "dave")
PRIVATE_UPDATES = {
    "alice": (1000, -200, 300, 40),
    "bob": (1200, -100, 250, 60),
    "carol": (900, -310, 355, 23),
    "dave": (-700, 800, -50, 10),
}
"""Round r's update is this vector times r."""


def private_job_spec(**kw: Any) -> Any:
    base: dict[str, Any] = dict(privacy="private", dp_clip=1 << 20, dp_noise_permille=0,
                                loo_permille=0, aggregation=Aggregation("trimmed_mean", 0),
                                min_participants=2, max_participants=4)
    base.update(kw)
    return fed_job_spec(**base)


def secrets_of(name: str, r: int) -> RoundSecrets:
    return RoundSecrets(PrivateKey.from_seed(f"mask {name} {r}".encode()).secret,
                        PrivateKey.from_seed(f"enc {name} {r}".encode()).secret,
                        hashlib.sha256(f"self {name} {r}".encode()).digest())


def coefficients(label: str, n: int) -> list[int]:
    return [int.from_bytes(hashlib.sha512(f"{label} {k}".encode()).digest(), "big") % PRIME
            for k in range(n)]


class PrivateStory(FedStory):
    """One private job: each step posts what the named owners' clients would."""

    def __init__(self) -> None:
        super().__init__()
        self.store: dict[bytes, bytes] = {}
        self.put(INITIAL.to_bytes())

    def put(self, data: bytes) -> bytes:
        blob_id = blob_id_of_bytes(data)
        self.store[blob_id] = data
        return blob_id

    @property
    def rec(self) -> FedPrivate:
        return private_record(self.chain.state, self.job_id, self.fed.round)

    def update(self, name: str, r: int) -> np.ndarray:  # type: ignore[type-arg]
        return np.array([v * r for v in PRIVATE_UPDATES[name]], dtype=np.int64)

    def commit_keys(self, names: tuple[str, ...] = OWNERS) -> None:
        """Commits in one block, the keys in the next, then the commit window's end."""
        r = self.fed.round
        made = {n: commit_bodies(self.job_id, r, self.chain.addr(n), secrets_of(n, r))
                for n in names}
        self.chain.block(*(self.chain.tx(n, c) for n, (c, _) in made.items()))
        self.chain.block(*(self.chain.tx(n, k) for n, (_, k) in made.items()))
        self.until_deadline()

    def post_shares(self, names: tuple[str, ...] = OWNERS) -> None:
        r, rec = self.fed.round, self.rec
        txs = []
        for n in names:
            t = coefficients_needed(rec)
            blob, body = shares_body(self.job_id, r, self.chain.addr(n), secrets_of(n, r), rec,
                                     coefficients(f"self {n} {r}", t),
                                     coefficients(f"pair {n} {r}", t))
            self.put(blob)
            txs.append(self.chain.tx(n, body))
        self.chain.block(*txs)
        self.until_deadline()

    def reveal_masked(self, names: tuple[str, ...] = OWNERS) -> None:
        r, rec = self.fed.round, self.rec
        txs = []
        for n in names:
            blob, body = masked_reveal(self.job_id, r, self.chain.addr(n), secrets_of(n, r),
                                       rec, self.update(n, r), SCALE)
            self.put(blob)
            txs.append(self.chain.tx(n, body))
        self.chain.block(*txs)
        self.until_deadline()

    def post_unmasks(self, names: tuple[str, ...]) -> None:
        fed, rec = self.fed, self.rec
        txs = []
        for n in names:
            blob, body = unmask_body(fed, rec, self.chain.addr(n), secrets_of(n, fed.round))
            self.put(blob)
            txs.append(self.chain.tx(n, body))
        self.chain.block(*txs)
        self.until_deadline()

    def private_round(self, survivors: tuple[str, ...], unmaskers: tuple[str, ...] | None = None,
                      keyed: tuple[str, ...] = OWNERS) -> None:
        """Keys, shares, the survivors' reveals, the unmaskers' (default: every survivor)
        unmask blobs: up to the aggregator's draw."""
        self.commit_keys(keyed)
        self.post_shares(keyed)
        self.reveal_masked(survivors)
        self.post_unmasks(survivors if unmaskers is None else unmaskers)

    def honest_private(self) -> tuple[bytes, dict[bytes, int], str | None]:
        return private_round_model(self.fed, self.rec, self.spec, self.store)

    @property
    def spec(self) -> Any:
        fed = self.chain.job(self.job_id).spec.federated
        assert fed is not None
        return fed

    def expected_model(self, survivors: tuple[str, ...]) -> tuple[int, ...]:
        r = self.fed.round
        mean = [rdiv(sum(int(self.update(n, r)[k]) for n in survivors), len(survivors))
                for k in range(len(self.model))]
        return tuple(m + a for m, a in zip(self.model, mean, strict=True))

    def accept_private(self, accuracy: int = 700_000) -> tuple[bytes, dict[bytes, int]]:
        """The honest private aggregate, posted by the drawn aggregator, voted valid."""
        blob, weights, _ = self.honest_private()
        self.put(blob)
        self.post_aggregate(blob, weights)
        self.vote({n: (True, accuracy, None) for n in self.voters()})
        self.model = ModelBlob.from_bytes(blob).values
        return blob, weights
