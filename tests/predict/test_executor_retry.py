"""A failed answer is tried again while the commit window is open [PRED-EXEC.7].

The loop against real blocks (``tests/ledger/harness.Chain``) with a stand-in pool that
fails a given number of times, and the executor's retry clock moved by the test; then
the real warm sandbox on a private engine from which the executor image was removed, as
an operator's ``docker image prune -a`` would: the executor builds it again and answers.
Found by CI: a concurrent test's clean-up removed the executor image while
``bench/predict.py`` ran, and with a flat two tries all three drawn executors were
no-shows for the request's whole 300 s window.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from chain.predict.bodies import OfferPrediction, PredictCommit
from chain.predict.io import UNLOADABLE_HASH, output_hash
from chain.predict.records import PredictionStatus
from client.predict.executor.loop import RETRY_MAX_S, Executor
from client.predict.executor.predictors import PredictorPool
from sandbox.cleanup import cleanup_containers
from sandbox.engine import connect
from sandbox.predict_image import ensure_predict_image
from sandbox.predict_sandbox import PredictAnswer
from sandbox.predict_session import PredictSandboxError
from tests.framework.dockerd import PrivateDockerd
from tests.ledger.harness import Chain
from tests.predict.images import lock_file, predict_image_for_test
from tests.predict.ledger_story import EXECUTORS, RIGHT, deploy, paid_job, record, send_request
from tests.predict.test_executor import LedgerView, _step
from tests.predict.test_predict_unloadable_executor import _executor as executor_on_pool

NODE_ID = f"pytest-retry-{os.getpid()}"


class FlakyPool:
    """Stands in for ``PredictorPool``: fails with the listed reasons, then answers."""

    def __init__(self, failures: list[str]) -> None:
        self.failures, self.calls, self.restores = list(failures), 0, 0
        self.image = "unused"

    def answer(self, *_: Any) -> PredictAnswer:
        self.calls += 1
        if self.failures:
            raise PredictSandboxError(self.failures.pop(0), "stand-in failure")
        return PredictAnswer(RIGHT, output_hash(RIGHT), None, None, 0.001)

    def restore_image(self) -> bool:
        self.restores += 1
        return False

    def close(self) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _drawn_executor(chain: Chain, folder: Path, pool: Any
                    ) -> tuple[Executor, LedgerView, bytes, Clock]:
    """A request and the executor drawn first for it, running on ``pool``."""
    job_id = paid_job(chain)
    chain.block(chain.tx("submitter", deploy(job_id)),
                *(chain.tx(n, OfferPrediction()) for n in EXECUTORS))
    request_id = send_request(chain, job_id)
    by_addr = {chain.addr(n): n for n in EXECUTORS}
    name = by_addr[record(chain, request_id).executors[0]]
    ex, view = executor_on_pool(chain, name, folder, pool)
    clock = Clock()
    ex.clock = clock
    return ex, view, request_id, clock


def test_pred_exec_7_a_failed_answer_is_tried_again_after_1_then_2_s_and_committed(
        tmp_path: Path) -> None:
    """[PRED-EXEC.7] [PRED-EXEC.4] The sandbox fails to start, then times out: no commit
    either time; the second try waits 1 s, the third 2 s more (blocks in between do not
    hurry it); the third answers and commits. Only the failed start asks whether the
    engine lost the image."""
    chain = Chain(validators=1)
    pool = FlakyPool(["start", "timeout"])
    ex, view, request_id, clock = _drawn_executor(chain, tmp_path / "ex", pool)
    _step(ex)
    assert (pool.calls, pool.restores, view.take()) == (1, 1, [])
    for wait in (0.0, 0.9):
        clock.now += wait
        _step(ex)
        assert pool.calls == 1, f"tried again {wait} s after the first failure"
    clock.now += 0.1
    _step(ex)
    assert (pool.calls, pool.restores, view.take()) == (2, 1, [])
    clock.now += 1.9
    _step(ex)
    assert pool.calls == 2
    clock.now += 0.1
    _step(ex)
    (tx,) = view.take()
    assert pool.calls == 3 and isinstance(tx.body, PredictCommit)
    assert ex.counters["failed"] == 2 and ex.counters["answered"] == 1
    clock.now += 60  # answered: never computed again
    _step(ex)
    assert pool.calls == 3


def test_pred_exec_7_no_try_after_the_commit_window_and_waits_stop_growing_at_30_s(
        tmp_path: Path) -> None:
    """[PRED-EXEC.7] A sandbox that always fails: once the commit window has closed the
    executor tries no more, however long it waits (a no-show, never a guess); the wait
    between tries doubles up to ``RETRY_MAX_S`` and stays there."""
    chain = Chain(validators=1)
    pool = FlakyPool(["crashed"] * 100)
    ex, view, request_id, clock = _drawn_executor(chain, tmp_path / "ex", pool)
    waits = []
    for _ in range(8):
        _step(ex)
        retry = ex._retry[request_id]
        waits.append(retry.not_before - clock.now)
        clock.now = retry.not_before
    assert waits == [1, 2, 4, 8, 16, RETRY_MAX_S, RETRY_MAX_S, RETRY_MAX_S]
    assert pool.calls == 8 and view.take() == []
    chain.block(at=record(chain, request_id).deadline_ms)  # the commit window closes
    assert record(chain, request_id).status != PredictionStatus.COMMIT
    clock.now += 3600
    _step(ex)
    assert pool.calls == 8 and view.take() == []


@pytest.mark.docker
def test_pred_exec_7_an_executor_image_pruned_from_the_engine_is_built_again(
        tmp_path: Path, private_dockerd: PrivateDockerd) -> None:
    """[PRED-EXEC.7] The real warm sandbox on a private engine (the image removed is
    nobody else's) that lost the executor image after the executor started: the first try
    fails to start (no commit), the executor builds the image again, and the next try
    starts the sandbox from it and commits. The model blob is not a model file, so the
    sandbox's loader answers "does not load" [PRED-UNLOADABLE.1]: proof the container ran."""
    engine = private_dockerd.client()
    image = ensure_predict_image(engine)
    engine.images.remove(image, force=True)
    chain = Chain(validators=1)
    pool = PredictorPool(engine, image, NODE_ID)
    try:
        ex, view, request_id, clock = _drawn_executor(chain, tmp_path / "ex", pool)
        _step(ex)
        assert view.take() == [] and ex.counters["image_rebuilt"] == 1
        assert engine.images.get(pool.image).id == pool.image
        clock.now += 1
        _step(ex)
        (tx,) = view.take()
        assert isinstance(tx.body, PredictCommit)
        assert ex.store.answers[request_id.hex()].output_hash == UNLOADABLE_HASH.hex()
        assert ex.counters["failed"] == 1
    finally:
        pool.close()
        cleanup_containers(engine, NODE_ID)
        with contextlib.suppress(docker.errors.NotFound):
            engine.images.remove(pool.image, force=True)


@pytest.mark.docker
def test_the_test_that_built_the_executor_image_leaves_it_while_another_test_uses_it(
        private_dockerd: PrivateDockerd) -> None:
    """The clean-up that caused the CI failure above, now taken in turns: on a private
    engine, test A builds the image and test B starts using it; A ends first and leaves it
    (B holds the shared lock), B ends and leaves it (it did not build it); a test that
    builds it and ends alone removes it."""
    engine = private_dockerd.client()
    first = predict_image_for_test(engine)
    image = first.__enter__()
    with predict_image_for_test(engine) as same:
        assert same == image
        first.__exit__(None, None, None)
        assert engine.images.get(image).id == image  # B still uses it
    assert engine.images.get(image).id == image  # B did not build it
    engine.images.remove(image, force=True)
    with predict_image_for_test(engine) as alone:
        assert engine.images.get(alone).id == alone
    with pytest.raises(docker.errors.ImageNotFound):
        engine.images.get(alone)


@pytest.mark.docker
def test_each_engine_has_a_lock_of_its_own_though_the_machine_gives_them_one_id(
        private_dockerd: PrivateDockerd) -> None:
    """The turns above are per engine: a test using the image on the host's engine (or on
    another process's private one) must not keep a private engine's builder from its
    clean-up. Docker 20.10 gives every dockerd on the machine the ID of the host's
    /etc/docker/key.json (a newer one keeps it in the data root, which a seeded private
    engine clones), so the lock is keyed by the data root too (a CI run of 2026-11-26
    left the image behind when keyed by the ID alone)."""
    engine, host = private_dockerd.client(), connect()
    assert lock_file(engine) != lock_file(host)
    assert lock_file(engine) == lock_file(private_dockerd.client())
