"""The executor loop against real blocks, with the sandbox replaced by a counting stand-in.

The ledger is the test harness's (``tests/ledger/harness.Chain``: real transactions,
real block execution); ``LedgerView`` hands it to ``client.predict.executor.loop.Executor`` as
its node: the executor's transactions are collected and the test puts them in the next
block. The sandbox is a stand-in that returns fixed answers and counts its calls (the real
warm sandbox is tested in tests/sandbox/test_predict_sandbox.py and the whole path in
test_predict_graph.py); what is tested here is the loop: offer, answer once, commit,
reveal, settle, and resuming after a crash from the saved answer without running the
model again or committing to anything else.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chain.content import blob_id_of_bytes
from chain.crypto import PrivateKey
from chain.mempool import AddResult, Admission
from chain.predict.answer import answer_commitment
from chain.predict.bodies import OfferPrediction, PredictCommit, PredictReveal
from chain.predict.io import output_hash
from chain.predict.params import PREDICT_BOND, PREDICT_PENALTY
from chain.predict.records import PredictionStatus
from chain.transactions import SignedTransaction
from client.api.state_routes import supply_json
from client.node.config import WorkerPolicy
from client.predict.executor.loop import Executor
from client.predict.executor.predictors import wrong_answer
from client.predict.executor.state import ExecutorStore
from sandbox.predict_sandbox import PredictAnswer
from tests.ledger.harness import Chain
from tests.predict.ledger_story import (
    EXECUTORS,
    INPUT_BLOB,
    OUTPUT,
    RIGHT,
    deploy,
    paid_job,
    record,
    send_request,
)


class LedgerView:
    """A ``NodeHandle`` over a harness chain: transactions are collected, not gossiped."""

    def __init__(self, chain: Chain, key: PrivateKey, data_dir: Path) -> None:
        self.chain, self.key, self.data_dir = chain, key, data_dir
        self.sent: list[SignedTransaction] = []
        self.published: list[bytes] = []

    @property
    def state(self) -> Any:
        return self.chain.state

    @property
    def height(self) -> int:
        return int(self.chain.state.height)

    @property
    def chain_id(self) -> str:
        return self.chain.state.chain_id

    def now_ms(self) -> int:
        return int(self.chain.state.time_ms)

    def next_nonce(self, address: bytes) -> int:
        return self.chain.state.account(address).nonce + sum(
            1 for t in self.sent if t.sender == address)

    def submit(self, tx: SignedTransaction) -> AddResult:
        self.sent.append(tx)
        return AddResult(Admission.ACCEPTED, tx=tx)

    def put_blob_file(self, path: Path) -> bytes:
        self.published.append(path.read_bytes())
        return blob_id_of_bytes(path.read_bytes())

    async def fetch_blob(self, blob: bytes, progress: Any = None) -> Path:
        data = INPUT_BLOB if blob == blob_id_of_bytes(INPUT_BLOB) else b"model:" + blob
        path = self.data_dir / f"blob-{blob.hex()[:12]}"
        path.write_bytes(data)
        return path

    def add_block_listener(self, _listener: Callable[..., None]) -> None:
        pass

    def add_tick_listener(self, _listener: Callable[[], None]) -> None:
        pass

    def take(self) -> list[SignedTransaction]:
        sent, self.sent = self.sent, []
        return sent


class CountingPool:
    """Stands in for ``PredictorPool``: the right labels, and how often it was asked."""

    def __init__(self) -> None:
        self.calls = 0

    def answer(self, record: Any, mode: str, model_path: Path, input_path: Path,
               rows: int) -> PredictAnswer:
        self.calls += 1
        assert input_path.read_bytes() == INPUT_BLOB and mode == "labels"
        return PredictAnswer(RIGHT, output_hash(RIGHT), None, None, 0.001)

    def close(self) -> None:
        pass


def _executor(chain: Chain, name: str, folder: Path, *, cheat: bool = False
              ) -> tuple[Executor, LedgerView, CountingPool]:
    folder.mkdir(parents=True, exist_ok=True)
    view = LedgerView(chain, chain.keys[name], folder)
    policy = WorkerPolicy(predict=True, cheat_predictions=cheat)
    ex = Executor(view, policy, client=object(), image="unused")  # type: ignore[arg-type]
    pool = CountingPool()
    ex.store.open()
    ex._pool = pool  # type: ignore[assignment]
    return ex, view, pool


def _step(ex: Executor) -> None:
    """One block's work: the follower's step, then the queued answers, in order."""
    ex._step()
    while not ex._queue.empty():
        request_id = ex._queue.get_nowait()
        asyncio.run(ex._answer(request_id))
        ex._queued.discard(request_id)


def test_executor_offers_answers_once_commits_reveals_and_forgets(tmp_path: Path) -> None:
    """[PRED-OFFER.1] [PRED-ANSWER.1] [PRED-REVEAL.1] [PRED-SETTLE.1] [PRED-FORFEIT.1]
    Four members run executors (one cheating, labels shifted): each offers once; a request
    draws three; each drawn one runs the model once, commits, reveals its own answer and
    publishes the blob; the request settles agreed on the right labels (or, if the cheater
    is drawn, it is outvoted and loses its penalty); every executor forgets the answer."""
    chain = Chain(validators=1)
    job_id = paid_job(chain)
    chain.block(chain.tx("submitter", deploy(job_id)))
    cheater = EXECUTORS[0]
    running = {n: _executor(chain, n, tmp_path / n, cheat=n == cheater) for n in EXECUTORS}
    for ex, _, _ in running.values():
        _step(ex)
    offers = [t for _, v, _ in running.values() for t in v.take()]
    assert [type(t.body) for t in offers] == [OfferPrediction] * 4
    chain.block(*offers)
    for ex, view, _ in running.values():
        _step(ex)
        assert view.take() == []  # offered once: the ledger holds the bond now
    request_id = send_request(chain, job_id)
    rec = record(chain, request_id)
    drawn = {n for n in EXECUTORS if chain.addr(n) in rec.executors}
    assert rec.status == PredictionStatus.COMMIT and len(drawn) == 3
    commits = []
    for name, (ex, view, pool) in running.items():
        _step(ex)
        sent = view.take()
        assert pool.calls == (1 if name in drawn else 0)
        assert [type(t.body) for t in sent] == ([PredictCommit] if name in drawn else [])
        commits += sent
    chain.block(*commits)
    assert record(chain, request_id).status == PredictionStatus.REVEAL
    reveals = []
    for name, (ex, view, _) in running.items():
        _step(ex)
        sent = view.take()
        reveals += sent
        if name in drawn:
            (tx,) = sent
            assert isinstance(tx.body, PredictReveal)
            assert (tx.body.output_hash == output_hash(RIGHT)) == (name != cheater)
            assert view.published == [ex.store.blob_path(request_id).read_bytes()]
    chain.block(*reveals)
    rec = record(chain, request_id)
    assert rec.status == PredictionStatus.AGREED and rec.answer == output_hash(RIGHT)
    for name, (ex, _, pool) in running.items():
        _step(ex)
        assert ex.store.answers == {} and not ex.store.blob_path(request_id).exists()
        assert pool.calls == (1 if name in drawn else 0)
        bond = chain.state.get("predictor", chain.addr(name))
        outvoted = name == cheater and name in drawn
        assert bond == PREDICT_BOND - (PREDICT_PENALTY if outvoted else 0), name


def test_a_restarted_executor_resends_the_same_commitment_and_reveals_it(
        tmp_path: Path) -> None:
    """[PRED-ANSWER.1] [PRED-STATE.1] Crash after the commit was sent but before it
    reached a block: the restarted executor (same data folder) resends a commitment to the
    same answer, without running the model again; crash again after the commit is on
    chain: the next executor opens it from the saved answer (the salt never lost), and the
    request agrees. The API's supply totals count the executors' bonds and the open fee
    (conserved)."""
    chain = Chain(validators=1)
    job_id = paid_job(chain)
    chain.block(chain.tx("submitter", deploy(job_id)),
                *(chain.tx(n, OfferPrediction()) for n in EXECUTORS))
    request_id = send_request(chain, job_id)
    totals = supply_json(chain.state)  # [BANK.1] the API counts bonds and the open fee
    assert totals["conserved"] and totals["bonded"] >= 4 * PREDICT_BOND, totals
    drawn = [n for n in EXECUTORS if chain.addr(n) in record(chain, request_id).executors]
    first = {n: _executor(chain, n, tmp_path / n) for n in drawn}
    lost = {}
    for name, (ex, view, _) in first.items():
        _step(ex)
        (lost[name],) = view.take()  # sent, then the process died: never in a block
    second = {n: _executor(chain, n, tmp_path / n) for n in drawn}
    commits = []
    for name, (ex, view, pool) in second.items():
        _step(ex)
        (tx,) = view.take()
        assert pool.calls == 0  # the saved answer, not a second run
        assert tx.body == lost[name].body  # the same commitment
        secret = ExecutorStore(tmp_path / name / "executor")
        secret.open()
        saved = secret.answers[request_id.hex()]
        assert isinstance(tx.body, PredictCommit)
        assert tx.body.commitment == answer_commitment(
            request_id, chain.addr(name), bytes.fromhex(saved.output_hash),
            bytes.fromhex(saved.salt))
        commits.append(tx)
    chain.block(*commits)
    third = {n: _executor(chain, n, tmp_path / n) for n in drawn}
    reveals = []
    for ex, view, pool in third.values():
        _step(ex)
        reveals += view.take()
        assert pool.calls == 0
    chain.block(*reveals)
    assert record(chain, request_id).status == PredictionStatus.AGREED


def test_wrong_answers_keep_the_shape_of_an_answer() -> None:
    """[PRED-PAY.1] The demo/test cheater's answers are well-formed but wrong: labels
    shifted by one (a valid labels blob), values moved by tolerance + 1 (so outside the
    agreed group [PRED-AGREE.3]), another invalid reason for an invalid answer."""
    from chain.encoding import decode, encode
    from chain.predict.answer import values_hash
    from chain.predict.io import invalid_blob
    from chain.predict.model import DeployedModel, InputSchema
    from chain.types import Address, Hash32

    record_ = DeployedModel(Hash32(b"\1" * 32), Hash32(b"\2" * 32), "safetensors-mlp",
                            InputSchema("float32", 2), OUTPUT, Address(b"\3" * 20), 0)
    wrong = wrong_answer(PredictAnswer(RIGHT, output_hash(RIGHT), None, None, 0.0), record_,
                         "labels", 0)
    assert decode(wrong.blob)[1] == [(i + 1) % 3 for i in decode(RIGHT)[1]]
    assert wrong.output_hash == output_hash(wrong.blob) != output_hash(RIGHT)
    values = (5, -7, 0)
    moved = wrong_answer(PredictAnswer(encode(list(values)), values_hash(values), None, values,
                                       0.0), record_, "values", 10)
    assert moved.values is not None
    assert max(abs(a - b) for a, b in zip(moved.values, values, strict=True)) == 11
    assert moved.output_hash == values_hash(moved.values)
    bad = invalid_blob("not_finite")
    other = wrong_answer(PredictAnswer(bad, output_hash(bad), "not_finite", None, 0.0),
                         record_, "labels", 0)
    assert other.invalid == "schema" and other.blob == invalid_blob("schema")


def test_an_executor_without_an_engine_leaves_the_node_running(tmp_path: Path) -> None:
    """[PRED-EXEC.1] No Docker engine answering (a socket nobody listens on): ``start``
    logs why and returns; the node goes on without serving predictions (no offer sent, so
    it is never drawn and never forfeits)."""
    import docker

    chain = Chain(validators=1)
    view = LedgerView(chain, chain.keys[EXECUTORS[0]], tmp_path)
    engine = docker.DockerClient(base_url=f"unix://{tmp_path}/no-engine.sock", version="1.41",
                                 timeout=2)
    ex = Executor(view, WorkerPolicy(predict=True), client=engine)
    asyncio.run(ex.start())
    summary = ex.summary()
    assert summary["running"] is False and "cannot list" in str(ex.problem), summary
    assert view.take() == []
