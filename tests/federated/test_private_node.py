"""Private mode on a running node (real sockets, real blocks, a SQLite ledger, the node's
blob store): three data owners' participant loops and two verifiers' member loops, each
submitting through the node [FED-PRIV.10].

One validator node runs in this process. ``agg`` and ``voter`` bond as verifiers (one is drawn
to aggregate, the other votes); ``owner`` posts a private federated/v1 job; ``alice``, ``bob`` and
``carol`` take part with fixed updates (no sandbox: the sandbox's part is tested in
test_federated_join_node.py). Carol goes offline after the share exchange. After the job,
every file the node wrote (its ledger database, write-ahead log, blob store) is scanned
for the owners' updates.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import replace
from pathlib import Path

import numpy as np

from chain.crypto import PrivateKey
from chain.federated.blobs import ModelBlob, UpdateBlob
from chain.federated.fixed import rdiv
from chain.federated.open.reads import fed_job, fed_rounds, part_body
from chain.federated.open.records import FedPhase
from chain.federated.spec import FEDERATED_V1
from chain.keyfile import read_key_file
from chain.state import StateReader
from chain.train.bodies import PostJob
from chain.transactions import Body, sign_transaction
from chain.types import Hash32
from chain.verifiers.bodies import VerifierJoin
from client.devnet.network import create_network
from client.federated.member.duties import Member, VoteStore
from client.federated.participant.private import PrivateParticipant, PrivateStore
from client.federated.participant.rounds import Participant, RoundStore
from client.node.config import NodeConfig
from client.node.ledger_node import LedgerNode
from tests.federated.fed_ledger_story import fed_spec
from tests.federated.fed_private_story import PRIVATE_UPDATES
from tests.federated.test_federated_member import FixedEvaluator
from tests.framework.ports import free_base_port
from tests.framework.wait import wait_until_async
from tests.ledger.harness import job_spec

OWNERS = ("alice", "bob", "carol")
VERIFIERS = ("agg", "voter")
"""Bonded verifiers running member loops: one is drawn to aggregate, the other votes."""
WINDOW = 3_000


class KeyPorts:
    """A participant's or member's ports on the running node, signing with its own key."""

    def __init__(self, node: LedgerNode, key: PrivateKey, folder: Path) -> None:
        self.node, self.key, self.folder = node, key, folder
        folder.mkdir(parents=True, exist_ok=True)
        self.sent: list[str] = []

    def state(self) -> StateReader:
        return self.node.state

    def now_ms(self) -> int:
        return self.node.now_ms()

    def submit(self, body: Body, what: str) -> bool:
        tx = sign_transaction(self.key, self.node.chain_id,
                              self.node.next_nonce(self.key.address), body)
        result = self.node.submit(tx)
        self.sent.append(what if result.accepted else f"{what} refused {result.code}")
        return bool(result.accepted)

    def read_blob(self, blob_id: bytes) -> bytes | None:
        path = self.node.blob_path(blob_id)
        return None if path is None else path.read_bytes()

    def put_blob(self, data: bytes, source: Path | None = None) -> bytes:
        path = self.folder / f"blob-{len(list(self.folder.iterdir()))}"
        path.write_bytes(data)
        return self.node.put_blob_file(path)


async def test_private_round_on_a_node_dropout_and_nothing_readable(tmp_path: Path) -> None:
    """[FED-PRIV.10] [FED-PRIV.9] [TX-FED.8] [TX-FED.9] [TX-FED.10] [FED-REWARD.6] On a
    running node: keys, shares, masked reveals and unmask blobs go through the mempool into
    blocks; carol drops after sharing; the drawn verifier's member loop aggregates the two
    survivors' mean from the node's blob store, the other votes it valid; the round is accepted
    with weights 1 for alice and bob and the model ``rdiv(sum, 2)``; no file the node wrote
    holds any owner's update."""
    layout = create_network(tmp_path / "net", validators=1, workers=0,
                            base_port=free_base_port(1),
                            users={n: 10_000 for n in ("owner", *VERIFIERS, *OWNERS)},
                            consensus={"commit_ms": 100})
    keys = {u.name: read_key_file(u.key_file, u.passphrase_file.read_text().strip())
            for u in layout.users}
    node = LedgerNode(NodeConfig.load(layout.nodes[0].config))
    await node.start()
    try:
        await wait_until_async(lambda: node.height >= 1, timeout=20)
        owner = KeyPorts(node, keys["owner"], tmp_path / "owner")
        vports = {n: KeyPorts(node, keys[n], tmp_path / n) for n in VERIFIERS}
        assert all(p.submit(VerifierJoin(), "verifier_join") for p in vports.values())
        initial = ModelBlob(16, (0, 0, 0, 0))
        model_blob = owner.put_blob(initial.to_bytes())
        common = job_spec(bounty=300, expiry_ms=node.now_ms() + 8_000, window_ms=WINDOW)
        spec = replace(common, kind=FEDERATED_V1, federated=fed_spec(
            initial_model=Hash32(model_blob), rounds=1, min_participants=2,
            max_participants=3, privacy="private", dp_clip=1 << 20, loo_permille=0,
            commit_window_ms=WINDOW, reveal_window_ms=WINDOW, aggregate_window_ms=WINDOW))
        tx = sign_transaction(keys["owner"], node.chain_id,
                              node.next_nonce(keys["owner"].address), PostJob(spec))
        assert node.submit(tx).accepted
        job_id = tx.hash
        await wait_until_async(lambda: getattr(fed_job(node.state, job_id), "seed", None),
                               timeout=30)
        assert owner.submit(part_body(job_id, "public", b"\x31" * 32, 1000), "public")

        parts = {}
        for n in OWNERS:
            ports = KeyPorts(node, keys[n], tmp_path / "owners" / n)

            def train(model: ModelBlob, r: int, n: str = n) -> UpdateBlob:
                return UpdateBlob(job_id, r, keys[n].address, 16, PRIVATE_UPDATES[n])

            private = PrivateParticipant(job_id, keys[n].address, ports, train,
                                         PrivateStore(ports.folder))
            parts[n] = Participant(job_id, keys[n].address, ports, train,
                                   RoundStore(ports.folder), private=private)
        members = [Member(keys[n].address, p, FixedEvaluator(), VoteStore(tmp_path / "v" / n))
                   for n, p in vports.items()]

        def sent() -> dict[str, list[str]]:
            return {n: p.sent for n, p in vports.items()}

        def done() -> bool:
            fed = fed_job(node.state, job_id)
            return fed is not None and fed.phase == FedPhase.DONE

        while not done():
            fed = fed_job(node.state, job_id)
            assert fed is not None
            for n, p in parts.items():
                if n == "carol" and fed.phase in (FedPhase.REVEAL, FedPhase.UNMASK):
                    continue  # offline after the share exchange
                p.step()
            for m in members:
                m.step(job_id)
            await asyncio.sleep(0.2)
            assert node.now_ms() < spec.expiry_ms + 60_000, (fed.phase, sent())
        rounds = fed_rounds(node.state, job_id)
        assert [r.outcome for r in rounds] == ["accepted"], sent()
        alice, bob = keys["alice"].address, keys["bob"].address
        assert dict(rounds[0].weights) == {alice: 1, bob: 1}
        model = ModelBlob.from_bytes(owner.read_blob(rounds[0].model_blob) or b"")
        assert model.values == tuple(rdiv(a + b, 2) for a, b in zip(
            PRIVATE_UPDATES["alice"], PRIVATE_UPDATES["bob"], strict=True))
        drawn = next(n for n in VERIFIERS if keys[n].address == rounds[0].aggregator)
        other = next(n for n in VERIFIERS if n != drawn)
        assert "aggregate" in vports[drawn].sent and "vote_commit" in vports[other].sent
    finally:
        await node.stop()
    needles = []
    for values in PRIVATE_UPDATES.values():
        v = np.array(values, dtype=np.int64)
        needles += [v.astype("<i4").tobytes(), v.astype("<i8").tobytes()]
        needles += [int(a).to_bytes(4, "little", signed=True)
                    + int(b).to_bytes(4, "little", signed=True)
                    for a, b in itertools.pairwise(values)]
    files = [p for p in node.data_dir.rglob("*") if p.is_file()]
    assert len(files) > 5
    for path in files:
        data = path.read_bytes()
        assert not any(n in data for n in needles), path
