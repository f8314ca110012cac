"""The participant loop (client.federated.participant.rounds) against the real ledger,
through blocks.

The ledger harness's chain (tests/ledger/harness.py) and the federated story's job
(tests/federated/fed_ledger_story.py) stand for the network; alice, bob and carol are
``Participant`` loops whose only contact with it is their ports: the committed state,
a submit that puts signed transactions in the next block, and a blob store. The
trainer is a fixed function (the sandbox's trainer is tested in
test_federated_sandbox_docker.py): what is under test is the round protocol.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from chain.content import blob_id_of_bytes
from chain.federated.blobs import ModelBlob, UpdateBlob
from chain.federated.open.reads import fed_rounds
from chain.federated.open.records import FedPhase
from chain.state import StateReader
from chain.transactions import Body, SignedTransaction
from client.federated.participant.rounds import Participant, RoundStore
from tests.federated.fed_ledger_story import INITIAL, PARTICIPANTS, SCALE, UPDATES, FedStory


class HarnessPorts:
    """One participant's view of the harness chain."""

    def __init__(self, story: FedStory, name: str, blobs: dict[bytes, bytes],
                 mempool: list[SignedTransaction]) -> None:
        self.story, self.name, self.blobs, self.mempool = story, name, blobs, mempool
        self.sent: list[str] = []

    def state(self) -> StateReader:
        return self.story.chain.state

    def now_ms(self) -> int:
        return self.story.chain.now

    def submit(self, body: Body, what: str) -> bool:
        self.mempool.append(self.story.chain.tx(self.name, body))
        self.sent.append(what)
        return True

    def read_blob(self, blob_id: bytes) -> bytes | None:
        return self.blobs.get(blob_id)

    def put_blob(self, data: bytes, source: Path | None = None) -> bytes:
        blob_id = blob_id_of_bytes(data)
        self.blobs[blob_id] = data
        return blob_id


def _trainer(story: FedStory, name: str, calls: list[int]):  # type: ignore[no-untyped-def]
    def train(model: ModelBlob, r: int) -> UpdateBlob:
        calls.append(r)
        return UpdateBlob(story.job_id, r, story.chain.addr(name), SCALE,
                          tuple(v * r for v in UPDATES[name]))
    return train


def test_participants_commit_and_reveal_each_round_and_the_rounds_are_accepted(
        tmp_path: Path) -> None:
    """[TX-FED.2] [TX-FED.3] [FED-COMMIT.1] [FED-QUANT.5] Three participant loops, stepped
    once per block, commit in the commit phase (training once per round, on the global
    model fetched by its blob id), reveal in the reveal phase; both rounds are accepted
    with the model the honest aggregate gives. A loop restarted from its folder after
    committing reveals what it committed; one with an empty folder cannot (lost_update)."""
    story = FedStory()
    story.post()
    story.publish()
    blobs = {blob_id_of_bytes(INITIAL.to_bytes()): INITIAL.to_bytes()}
    calls: dict[str, list[int]] = {n: [] for n in PARTICIPANTS}
    mempool: list[SignedTransaction] = []
    ports = {n: HarnessPorts(story, n, blobs, mempool) for n in PARTICIPANTS}

    def mine() -> None:
        story.chain.block(*mempool)
        mempool.clear()

    loops = {n: Participant(story.job_id, story.chain.addr(n), ports[n],
                            _trainer(story, n, calls[n]), RoundStore(tmp_path / n))
             for n in PARTICIPANTS}
    for r in (1, 2):
        assert story.fed.phase == FedPhase.COMMIT and story.fed.round == r
        assert {n: p.step() for n, p in loops.items()} == dict.fromkeys(PARTICIPANTS,
                                                                        "committed")
        mine()
        assert {n: p.step() for n, p in loops.items()} == dict.fromkeys(PARTICIPANTS, "wait")
        story.until_deadline()
        assert story.fed.phase == FedPhase.REVEAL
        if r == 2:  # alice's process restarts: a new loop on the same folder
            loops["alice"] = Participant(story.job_id, story.chain.addr("alice"),
                                         ports["alice"], _trainer(story, "alice", []),
                                         RoundStore(tmp_path / "alice"))
            stranger = Participant(story.job_id, story.chain.addr("bob"), ports["bob"],
                                   _trainer(story, "bob", []), RoundStore(tmp_path / "x"))
            assert stranger.step() == "lost_update"
        assert {n: p.step() for n, p in loops.items()} == dict.fromkeys(PARTICIPANTS,
                                                                        "revealed")
        mine()
        assert all(u.blob is not None for u in story.fed.updates)
        story.until_deadline()
        blob, _ = story.honest()
        blobs[blob_id_of_bytes(blob)] = blob
        story.accept_round(700_000 + r)
    assert calls == {n: [1, 2] for n in PARTICIPANTS}
    rounds = fed_rounds(story.chain.state, story.job_id)
    assert [x.outcome for x in rounds] == ["accepted", "accepted"]
    assert all(dict(x.weights)[story.chain.addr(n)] > 0 for x in rounds for n in PARTICIPANTS)
    assert rounds[-1].model_hash == story.fed.model_hash
    assert ports["alice"].sent == ["commit", "reveal", "commit", "reveal"]


def test_a_participant_waits_for_the_model_and_does_not_resend_at_once(tmp_path: Path) -> None:
    """[TX-FED.2] Without the global model's bytes the loop waits (model_missing) and trains
    nothing; a commit not yet in a block is not sent twice within the resend interval."""
    story = FedStory()
    story.post()
    story.publish()
    blobs: dict[bytes, bytes] = {}
    calls: list[int] = []
    ports = HarnessPorts(story, "alice", blobs, [])
    loop = Participant(story.job_id, story.chain.addr("alice"), ports,
                       _trainer(story, "alice", calls), RoundStore(tmp_path))
    assert loop.step() == "model_missing" and calls == []
    blobs[blob_id_of_bytes(INITIAL.to_bytes())] = INITIAL.to_bytes()
    assert loop.step() == "committed"
    assert loop.step() == "sent_recently"
    assert ports.sent == ["commit"] and calls == [1]


def test_a_training_participant_reads_and_checks_the_global_model_once(
        tmp_path: Path) -> None:
    """[TX-FED.2] While its trainer runs (``None``: not done yet) the loop steps every quiet
    second; the global model's blob is read, hashed and parsed once, not at every step,
    and a blob whose bytes do not match its id is still refused."""
    story = FedStory()
    story.post()
    story.publish()
    model = INITIAL.to_bytes()
    blobs = {blob_id_of_bytes(model): model}
    reads: list[bytes] = []

    class CountingPorts(HarnessPorts):
        def read_blob(self, blob_id: bytes) -> bytes | None:
            reads.append(blob_id)
            return super().read_blob(blob_id)

    seen: list[ModelBlob] = []

    def slow_train(global_model: ModelBlob, r: int) -> UpdateBlob | None:
        seen.append(global_model)
        return None if len(seen) < 4 else _trainer(story, "alice", [])(global_model, r)

    ports = CountingPorts(story, "alice", blobs, [])
    loop = Participant(story.job_id, story.chain.addr("alice"), ports, slow_train,
                       RoundStore(tmp_path / "alice"))
    assert [loop.step() for _ in range(4)] == ["training"] * 3 + ["committed"]
    assert reads == [blob_id_of_bytes(model)] and len(seen) == 4
    liar = Participant(story.job_id, story.chain.addr("alice"), ports, slow_train,
                       RoundStore(tmp_path / "liar"))
    blobs[blob_id_of_bytes(model)] = model + b"x"
    with pytest.raises(ValueError, match="does not match its bytes"):
        liar.step()
