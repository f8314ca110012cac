"""The executor answers "the model does not load" [PRED-UNLOADABLE.1], on real blocks.

The deployed model's blob is not a safetensors-mlp file: the real warm sandbox (host
engine, the executor image) refuses it at start with a ``model`` error, and each drawn
executor commits and reveals the fixed unloadable answer instead of staying silent. The
request settles agreed on it: the executors are paid, nobody forfeits, the model is closed.
A failure that may not repeat (a crashed sandbox) is still a no-show [PRED-EXEC.4].
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from chain.predict.bodies import OfferPrediction, PredictCommit, PredictReveal
from chain.predict.io import UNLOADABLE_BLOB, UNLOADABLE_HASH
from chain.predict.params import PREDICT_BOND
from chain.predict.records import PredictionStatus
from chain.predict.steps import deployed_model
from client.node.config import WorkerPolicy
from client.predict.executor.loop import Executor
from client.predict.executor.predictors import PredictorPool
from sandbox.cleanup import cleanup_containers
from sandbox.engine import connect
from sandbox.policy import LABEL_NODE
from sandbox.predict_session import PredictSandboxError
from tests.ledger.harness import Chain
from tests.predict.images import predict_image_for_test
from tests.predict.ledger_story import EXECUTORS, deploy, paid_job, record, send_request
from tests.predict.test_executor import LedgerView, _step

NODE_ID = f"pytest-unloadable-{os.getpid()}"


def _executor(chain: Chain, name: str, folder: Path, pool: Any) -> tuple[Executor, LedgerView]:
    folder.mkdir(parents=True, exist_ok=True)
    view = LedgerView(chain, chain.keys[name], folder)
    ex = Executor(view, WorkerPolicy(predict=True), client=object(),  # type: ignore[arg-type]
                  image="unused")
    ex.store.open()
    ex._pool = pool
    return ex, view


@pytest.mark.docker
def test_executors_answer_unloadable_from_the_real_sandbox_and_are_paid(tmp_path: Path) -> None:
    """[PRED-UNLOADABLE.1] [PRED-UNLOADABLE.2] [PRED-UNLOADABLE.3] [PRED-EXEC.2] Four
    executors with real warm-sandbox pools; the model blob is not a safetensors file. The
    three drawn ones each try the real sandbox (refused: ``model``), commit and reveal the
    unloadable answer and publish its blob; the request is agreed on ``UNLOADABLE_HASH``,
    each is paid ``fee // 3`` with no bond lost, the model is closed; no container stays."""
    client = connect()
    with predict_image_for_test(client) as image:
        chain = Chain(validators=1)
        job_id = paid_job(chain)
        chain.block(chain.tx("submitter", deploy(job_id)))
        pools = {n: PredictorPool(client, image, NODE_ID) for n in EXECUTORS}
        running = {n: _executor(chain, n, tmp_path / n, pools[n]) for n in EXECUTORS}
        try:
            for ex, _ in running.values():
                _step(ex)
            offers = [t for _, v in running.values() for t in v.take()]
            assert [type(t.body) for t in offers] == [OfferPrediction] * 4
            chain.block(*offers)
            rid = send_request(chain, job_id, fee=300)
            drawn = [n for n in EXECUTORS if chain.addr(n) in record(chain, rid).executors]
            before = {n: chain.balance(n) for n in drawn}
            commits = []
            for ex, view in running.values():
                _step(ex)
                commits += view.take()
            assert [type(t.body) for t in commits] == [PredictCommit] * 3
            chain.block(*commits)
            reveals = []
            for name, (ex, view) in running.items():
                _step(ex)
                sent = view.take()
                reveals += sent
                if name in drawn:
                    (tx,) = sent
                    assert isinstance(tx.body, PredictReveal)
                    assert tx.body.output_hash == UNLOADABLE_HASH and tx.body.values is None
                    assert view.published == [UNLOADABLE_BLOB]
            chain.block(*reveals)
        finally:
            for pool in pools.values():
                pool.close()
        rec = record(chain, rid)
        assert rec.status == PredictionStatus.AGREED and rec.answer == UNLOADABLE_HASH
        for name in drawn:
            assert chain.balance(name) == before[name] + 100
        for name in EXECUTORS:
            assert chain.state.get("predictor", chain.addr(name)) == PREDICT_BOND
        model = deployed_model(chain.state, job_id)
        assert model is not None and model.unservable_by == rid
        assert chain.state.total_credits() == chain.state.supply  # [BANK.1]
    left = client.containers.list(all=True, ignore_removed=True,
                                  filters={"label": f"{LABEL_NODE}={NODE_ID}"})
    cleanup_containers(client, NODE_ID)
    assert left == []


class FailingPool:
    """Stands in for ``PredictorPool``: every request fails with ``reason``."""

    def __init__(self, reason: str) -> None:
        self.reason, self.calls = reason, 0

    def answer(self, *_: Any) -> Any:
        self.calls += 1
        raise PredictSandboxError(self.reason, "stand-in failure")

    def close(self) -> None:
        pass


def test_a_crashed_sandbox_is_still_a_no_show(tmp_path: Path) -> None:
    """[PRED-UNLOADABLE.1] [PRED-EXEC.4] Only a ``model`` refusal is answered unloadable:
    a crash, a timeout or a failed start may not repeat, so the executor commits nothing;
    a ``model`` refusal commits (the fast stand-in twin of the real-sandbox test)."""
    chain = Chain(validators=1)
    job_id = paid_job(chain)
    chain.block(chain.tx("submitter", deploy(job_id)))
    pools = {n: FailingPool("start") for n in EXECUTORS}
    running = {n: _executor(chain, n, tmp_path / n, pools[n]) for n in EXECUTORS}
    for ex, _ in running.values():
        _step(ex)
    chain.block(*(t for _, v in running.values() for t in v.take()))
    rid = send_request(chain, job_id)
    by_addr = {chain.addr(n): n for n in EXECUTORS}
    drawn = [by_addr[a] for a in record(chain, rid).executors]
    for name, reason in zip(drawn, ("model", "crashed", "timeout"), strict=True):
        pools[name].reason = reason
    for name, (ex, view) in running.items():
        _step(ex)
        sent = view.take()
        assert pools[name].calls == (1 if name in drawn else 0)
        committed = pools[name].reason == "model"
        assert [type(t.body) for t in sent] == ([PredictCommit] if committed else []), name
