"""``federated join`` end to end on a running node (real sockets, real blocks, real Docker).

One validator node, in this process, with the participant loop attached as
``learningchain federated join`` attaches it (``FederatedJoin``); a member ``owner``
posts a federated/v1 job whose image is the template job built here and whose initial
model is the template's MLP. The node's loop trains in the sandbox on its own data
folder, commits and reveals; the test waits until the ledger holds the revealed update
and checks it is the blob the sandbox produced. Run under the heavy lock.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from chain.crypto import PrivateKey
from chain.federated.blobs import ModelBlob, UpdateBlob
from chain.federated.open.reads import fed_job, part_body
from chain.federated.spec import FEDERATED_V1
from chain.keyfile import read_key_file
from chain.train.bodies import PostJob
from chain.transactions import sign_transaction
from chain.types import Hash32
from client.devnet.network import create_network
from client.federated.participant.node_loop import FederatedJoin
from client.node.config import NodeConfig
from client.node.ledger_node import LedgerNode
from sandbox.base_image import ensure_base_image
from sandbox.cleanup import cleanup_containers
from sandbox.engine import connect
from sandbox.federated import quantise_update
from sandbox.job_template import build_job, init_job
from tests.federated import template_code
from tests.federated.fed_ledger_story import fed_spec
from tests.framework.ports import free_base_port
from tests.framework.wait import wait_until_async
from tests.ledger.harness import job_spec

pytestmark = pytest.mark.docker

HIDDEN = 8


def _submit(node: LedgerNode, key: PrivateKey, body: object) -> bytes:
    tx = sign_transaction(key, node.chain_id, node.next_nonce(key.address), body)  # type: ignore[arg-type]
    result = node.submit(tx)
    assert result.accepted, (result.code, result.message)
    return tx.hash


async def test_join_trains_in_the_sandbox_commits_and_reveals_on_a_running_node(
        tmp_path: Path) -> None:
    """[JOB-FED.1] [JOB-FED.5] [TX-FED.2] [TX-FED.3] The node's participant loop fetches the
    initial model by its blob id, runs the job's federate entry on the owner's folder in
    the sandbox, commits in the commit window and reveals in the reveal window; the
    ledger records the reveal, and the revealed blob (served by the node's blob store) is
    an update of this job, round 1 and the node's address with the model's dims."""
    client = connect()
    ensure_base_image(client, log=lambda _m: None)
    job_dir = tmp_path / "job"
    init_job(job_dir, name="pytest-fed-join")
    image_id = build_job(client, job_dir, log=lambda _m: None).image_id
    data = tmp_path / "mine"
    data.mkdir(mode=0o755)
    rows = (job_dir / "data" / "train.csv").read_text().splitlines()
    (data / "rows.csv").write_text("\n".join(rows[:151]) + "\n")
    (data / "rows.csv").chmod(0o644)

    layout = create_network(tmp_path / "net", validators=1, workers=0,
                            base_port=free_base_port(1), users={"owner": 100_000},
                            consensus={"commit_ms": 100})
    owner = next(u for u in layout.users if u.name == "owner")
    owner_key = read_key_file(owner.key_file, owner.passphrase_file.read_text().strip())
    node = LedgerNode(NodeConfig.load(layout.nodes[0].config))
    await node.start()
    join: FederatedJoin | None = None
    try:
        await wait_until_async(lambda: node.height >= 1, timeout=20)
        initial = ModelBlob(16, quantise_update(
            template_code.federate().initial_model(HIDDEN, 5), 16))
        model_file = tmp_path / "initial.blob"
        model_file.write_bytes(initial.to_bytes())
        model_blob = node.put_blob_file(model_file)
        # Round 1's commit window closes at the job's expiry [FED-ROUND.1]: 45 s from now.
        common = job_spec(bounty=300, expiry_ms=node.now_ms() + 45_000, window_ms=20_000)
        spec = replace(common, kind=FEDERATED_V1,
                       image_digest=Hash32(bytes.fromhex(image_id.removeprefix("sha256:"))),
                       entry_points=(("evaluate", ("/job/evaluate",)),
                                     ("train", ("/job/train",))),
                       federated=fed_spec(initial_model=Hash32(model_blob), dims=initial.dims,
                                          rounds=1, min_participants=1, max_participants=1,
                                          commit_window_ms=20_000, reveal_window_ms=20_000))
        job_id = _submit(node, owner_key, PostJob(spec))
        await wait_until_async(lambda: fed_job(node.state, job_id) is not None, timeout=20)
        join = FederatedJoin(node, job_id, data, {"hidden_size": HIDDEN, "local_epochs": 1})
        join.start()
        # The owner names its holdout's public part once the split is drawn: round 1's
        # commit window runs from then [TX-FED.7].
        await wait_until_async(lambda: getattr(fed_job(node.state, job_id), "seed", None),
                               timeout=30)
        _submit(node, owner_key, part_body(job_id, "public", b"\x31" * 32, 1000))

        def revealed() -> bool:
            fed = fed_job(node.state, job_id)
            mine = None if fed is None else fed.update_of(node.key.address)
            return mine is not None and mine.blob is not None

        def state() -> object:
            fed = fed_job(node.state, job_id)
            return (join.last if join else None, join.trainer.failures if join else None,
                    None if fed is None else (fed.phase, fed.round, fed.deadline_ms,
                                              node.now_ms(), fed.updates))

        await wait_until_async(revealed, timeout=120, detail=state)
        fed = fed_job(node.state, job_id)
        assert fed is not None
        mine = fed.update_of(node.key.address)
        assert mine is not None and mine.blob is not None
        path = node.blob_path(mine.blob)
        assert path is not None
        update = UpdateBlob.from_bytes(path.read_bytes())
        assert update.check_for(job_id, 1, node.key.address, initial.dims, 16) is update
        assert any(update.values)
        assert join.trainer.failures == {}
        print(f"revealed round 1 update of {update.dims} coordinates at height "
              f"{node.height}; loop state {join.last}")
    finally:
        await node.stop()
        if join is not None:
            cleanup_containers(client, join.trainer.runner.node_id)
        await asyncio.sleep(0)
        client.close()
