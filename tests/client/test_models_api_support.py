"""Shared helpers of the model/prediction API, CLI and dashboard tests (no tests here).

``paid_job`` drives a real train/v1 job to PAID through a real ``SoloNode`` (claim,
reveal, votes; the node's clock skipped past each window once nothing is left to happen
in it), the way tests/predict/ledger_story.py does on the bare ledger. ``offer`` makes
members executors; ``drawn_request`` sends a prediction request and waits for its
lottery, ``commit_answers``/``reveal_answers`` have the drawn executors answer it. Each
step submits through the mempool and commits one block, whether the node also commits
timed blocks (``ApiThread``) or not (``running_api``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chain.content import blob_id_of_bytes
from chain.crypto import PrivateKey
from chain.predict.answer import answer_commitment
from chain.predict.bodies import (
    DeployModel,
    OfferPrediction,
    PredictCommit,
    PredictReveal,
    RequestPrediction,
)
from chain.predict.model import InputSchema, OutputSchema
from chain.predict.request import PredictionRequest
from chain.records import JobStatus
from chain.train.bodies import (
    ClaimLoss,
    PostJob,
    RevealModel,
    VoteCommit,
    VoteReveal,
    model_commitment,
    vote_commitment,
)
from chain.transactions import sign_transaction
from chain.types import Amount, Hash32
from tests.client.api.test_api_support import future_spec
from tests.framework.solo import SoloNode
from tests.predict.ledger_story import INPUT_BLOB, MODEL_HASH, ROWS, fixed

EXECUTORS = ("bob", "carol", "dave", "erin")
VOTERS = ("bob", "carol", "dave", "erin", "v0")
INPUT = InputSchema("float32", 2)
OUTPUT = OutputSchema("classes", ("cat", "dog", "fish"))


async def step(node: SoloNode, keys: dict[str, PrivateKey], *txs: tuple[str, Any]) -> list[bytes]:
    """Each (signer name, body) admitted to the mempool, then a block: their hashes, checked
    to be applied (a refused one fails the test with its reason)."""
    hashes = []
    for name, body in txs:
        key = keys[name]
        tx = sign_transaction(key, node.chain_id, node.next_nonce(key.address), body)
        result = node.submit(tx)
        assert result.accepted, (body, result)
        hashes.append(tx.hash)
    height = node.height
    await node.commit_block()
    while node.height == height:  # a timed block may have been committed in between
        await node.commit_block()
    for h in hashes:
        assert node.tx_location(h) is not None, f"{h.hex()} not applied"
    return hashes


async def paid_job(node: SoloNode, keys: dict[str, PrivateKey],
                   model_hash: bytes = MODEL_HASH) -> bytes:
    """alice wins a train/v1 job with ``model_hash``, verified by the other members: its id."""
    expiry = node.now_ms() + 60_000
    (job_id,) = await step(node, keys, ("submitter", PostJob(future_spec(
        node.now_ms(), expires_in_ms=60_000))))
    alice = keys["alice"].address
    salt = fixed("salt:alice")
    await step(node, keys, ("alice", ClaimLoss(Hash32(job_id), 0.2, model_commitment(
        job_id, alice, model_hash, salt))))
    node.skip_to(expiry + 1)
    await step(node, keys)
    await step(node, keys, ("alice", RevealModel(Hash32(job_id), Hash32(model_hash), salt)))
    await step(node, keys, *((v, VoteCommit(Hash32(job_id), alice, vote_commitment(
        job_id, alice, keys[v].address, True, 0.2, fixed(f"vote:{v}")))) for v in VOTERS))
    job = node.state.job(job_id)
    assert job is not None
    if job.status == JobStatus.VOTE_COMMIT:
        node.skip_to(job.phase_deadline_ms + 1)
        await step(node, keys)
    await step(node, keys, *((v, VoteReveal(Hash32(job_id), alice, True, 0.2,
                                            fixed(f"vote:{v}"))) for v in VOTERS))
    job = node.state.job(job_id)
    assert job is not None and job.status == JobStatus.PAID, job
    return job_id


def deploy_body(job_id: bytes, model_hash: bytes = MODEL_HASH, royalty: int = 100,
                output: OutputSchema = OUTPUT) -> DeployModel:
    return DeployModel(Hash32(job_id), Hash32(model_hash), "safetensors-mlp", INPUT, output,
                       royalty)


async def offer(node: SoloNode, keys: dict[str, PrivateKey],
                names: tuple[str, ...] = EXECUTORS) -> None:
    await step(node, keys, *((n, OfferPrediction()) for n in names))


def labels_request(model_id: bytes) -> PredictionRequest:
    """Labels for ``INPUT_BLOB``'s rows from ``model_id``: 1000 paid, three executors."""
    return PredictionRequest(Hash32(model_id), Hash32(blob_id_of_bytes(INPUT_BLOB)), ROWS,
                             Amount(1_000), 3, "labels", 0, 60_000, 60_000)


async def drawn_request(node: SoloNode, keys: dict[str, PrivateKey], req: PredictionRequest,
                        requester: str = "alice") -> tuple[bytes, list[str]]:
    """``requester`` sends ``req``; once the lottery drew (a few blocks after inclusion
    [PRED-LOTTERY.1]), the request id and the drawn executors' names."""
    (request_id,) = await step(node, keys, (requester, RequestPrediction(req)))
    for _ in range(4):
        rec = node.state.get("prediction", request_id)
        if rec.executors:
            break
        await step(node, keys)
    names = {k.address: n for n, k in keys.items()}
    return request_id, [names[a] for a in rec.executors]


async def commit_answers(node: SoloNode, keys: dict[str, PrivateKey], request_id: bytes,
                         answers: Mapping[str, bytes]) -> None:
    """Each executor named in ``answers`` commits to its output hash (salt ``fixed(name)``)."""
    await step(node, keys, *((n, PredictCommit(Hash32(request_id), answer_commitment(
        request_id, keys[n].address, out, fixed(n)))) for n, out in answers.items()))


async def reveal_answers(node: SoloNode, keys: dict[str, PrivateKey], request_id: bytes,
                         answers: Mapping[str, bytes]) -> None:
    """Each executor named in ``answers`` opens the commitment ``commit_answers`` made."""
    await step(node, keys, *((n, PredictReveal(Hash32(request_id), Hash32(out), fixed(n)))
                             for n, out in answers.items()))
