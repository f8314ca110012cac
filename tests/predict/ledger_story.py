"""Drives prediction requests through real blocks (tests/ledger's harness): a paid job,
its model deployed, executors offering, a request drawn, committed, revealed, settled.

Deterministic (fixed model hash, salts and block times) so the ledger vectors
(vectors/predict_ledger.json) replay byte for byte.
"""

from __future__ import annotations

import hashlib
from typing import Any

from chain.content import blob_id_of_bytes
from chain.predict.answer import answer_commitment
from chain.predict.bodies import (
    DeployModel,
    OfferPrediction,
    PredictCommit,
    PredictReveal,
    RequestPrediction,
)
from chain.predict.io import encode_rows, labels_blob, output_hash
from chain.predict.model import InputSchema, OutputSchema
from chain.predict.records import Prediction
from chain.predict.request import PredictionRequest
from chain.predict.steps import prediction
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
from chain.types import Amount, Hash32
from tests.ledger.harness import GENESIS_TIME, Chain, job_spec

EXECUTORS = ("bob", "carol", "dave", "erin")
"""Members that offer prediction service; alice requests, submitter owns the model."""
ROYALTY = 100
INPUT = InputSchema("float32", 2)
OUTPUT = OutputSchema("classes", ("cat", "dog", "fish"))
ROWS = 4
INPUT_BLOB = encode_rows("float32", 2, [0.5, 1.0, -1.0, 2.0, 0.0, 0.0, 3.0, -3.5])
RIGHT = labels_blob([0, 2, 1, 1], 3)
WRONG = labels_blob([1, 1, 1, 1], 3)
OTHER = labels_blob([2, 2, 2, 2], 3)


def fixed(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


MODEL_HASH = Hash32(fixed("model:alice"))


def paid_job(chain: Chain) -> bytes:
    """alice wins a train/v1 job (model ``MODEL_HASH``), verified by the other members."""
    post = chain.tx("submitter", PostJob(job_spec()))
    chain.block(post)
    job_id = post.hash
    chain.block(chain.tx("alice", ClaimLoss(Hash32(job_id), 0.2, model_commitment(
        job_id, chain.addr("alice"), MODEL_HASH, fixed("salt:alice")))))
    chain.block(at=GENESIS_TIME + 10_000)
    chain.block(chain.tx("alice", RevealModel(Hash32(job_id), MODEL_HASH, fixed("salt:alice"))))
    voters = ("bob", "carol", "dave", "erin", "v0")
    alice = chain.addr("alice")
    commits = [chain.tx(v, VoteCommit(Hash32(job_id), alice, vote_commitment(
        job_id, alice, chain.addr(v), True, 0.2, fixed(f"vote:{v}")))) for v in voters]
    chain.block(*commits)
    if chain.job(job_id).status == JobStatus.VOTE_COMMIT:  # alice, a verifier, sent no vote
        chain.block(at=chain.job(job_id).phase_deadline_ms)
    chain.block(*(chain.tx(v, VoteReveal(Hash32(job_id), alice, True, 0.2, fixed(f"vote:{v}")))
                  for v in voters))
    assert chain.job(job_id).status == JobStatus.PAID
    return job_id


def deploy(job_id: bytes, model_hash: bytes = MODEL_HASH,
           output: OutputSchema = OUTPUT) -> DeployModel:
    return DeployModel(Hash32(job_id), Hash32(model_hash), "safetensors-mlp", INPUT, output,
                       ROYALTY)


def ready(chain: Chain, output: OutputSchema = OUTPUT) -> bytes:
    """A paid job, its model deployed, four members offering: the model id."""
    job_id = paid_job(chain)
    chain.block(chain.tx("submitter", deploy(job_id, output=output)),
                *(chain.tx(n, OfferPrediction()) for n in EXECUTORS))
    return job_id


def request(model_id: bytes, *, fee: int = 1_000, k: int = 3, rows: int = ROWS,
            window: int = 5_000, mode: str = "labels", tolerance: int = 0) -> PredictionRequest:
    return PredictionRequest(Hash32(model_id), Hash32(blob_id_of_bytes(INPUT_BLOB)), rows,
                             Amount(fee), k, mode, tolerance, window, window)


def send_request(chain: Chain, model_id: bytes, requester: str = "alice",
                 **kw: Any) -> bytes:
    """Included (that block's hash seeds the draw), then the draw [PRED-DRAW.1]: the
    request id."""
    tx = chain.tx(requester, RequestPrediction(request(model_id, **kw)))
    chain.block(tx)
    chain.block()
    return tx.hash


def record(chain: Chain, request_id: bytes) -> Prediction:
    rec = prediction(chain.state, request_id)
    assert rec is not None
    return rec


def names(chain: Chain, request_id: bytes) -> list[str]:
    """The drawn executors' names, in draw order."""
    by_addr = {chain.addr(n): n for n in chain.keys}
    return [by_addr[a] for a in record(chain, request_id).executors]


def salt(name: str, request_id: bytes) -> bytes:
    return fixed(f"predict-salt:{name}:{request_id.hex()}")


def commit(chain: Chain, name: str, request_id: bytes, blob: bytes) -> PredictCommit:
    return PredictCommit(Hash32(request_id), answer_commitment(
        request_id, chain.addr(name), output_hash(blob), salt(name, request_id)))


def reveal(name: str, request_id: bytes, blob: bytes) -> PredictReveal:
    return PredictReveal(Hash32(request_id), output_hash(blob), salt(name, request_id))


def answer_round(chain: Chain, request_id: bytes, answers: dict[str, bytes]) -> None:
    """The listed executors commit in one block; the commit window ends (unless all
    committed); they reveal in the next block."""
    chain.block(*(chain.tx(n, commit(chain, n, request_id, b)) for n, b in answers.items()))
    rec = record(chain, request_id)
    if rec.status == "commit":
        chain.block(at=rec.deadline_ms)
    chain.block(*(chain.tx(n, reveal(n, request_id, b)) for n, b in answers.items()))


def conserved(chain: Chain) -> bool:
    """[BANK.1] Balances + escrow (jobs and open requests) + bonds + burned = supply."""
    return chain.state.total_credits() == chain.state.supply
