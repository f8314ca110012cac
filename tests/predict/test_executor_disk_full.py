"""[PRED-EXEC.8] A prediction executor whose disk is full commits to nothing it could not
keep, and answers once there is room.

The drawn executors' ``executor`` folders (their saved answers) are tmpfs mounts of this
test's own, filled before the request is drawn; the chain, the executor loop and the
stand-in sandbox are tests/predict/test_executor.py's. Before: ``ExecutorStore.keep`` put
the secret in memory first and then failed to write the state file, so the next block
sent a commitment for an answer no restart could open (a forfeit), and the failed write
left its temporary file. Needs root (the mounts), as CI runs.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from chain.predict.bodies import OfferPrediction, PredictCommit
from chain.predict.records import PredictionStatus
from tests.framework.disk_fill import fill, tmpfs
from tests.ledger.harness import Chain
from tests.predict.ledger_story import EXECUTORS, deploy, paid_job, record, send_request
from tests.predict.test_executor import _executor, _step

if os.geteuid() != 0:
    if os.environ.get("CI"):
        raise RuntimeError("tests/predict/test_executor_disk_full.py needs root in CI")
    pytestmark = pytest.mark.skip(reason="mounting a tmpfs needs root")


@pytest.fixture
def mounts() -> Iterator[contextlib.ExitStack]:
    """The tmpfs mounts this test makes, each unmounted at the end."""
    with contextlib.ExitStack() as stack:
        yield stack


def test_pred_exec_8_no_commitment_for_an_answer_the_disk_refused(
        tmp_path: Path, mounts: contextlib.ExitStack) -> None:
    """Every executor's answer folder is full when the request is drawn: the drawn ones
    run the model, keep nothing (no secret in memory, no file), send no commitment and
    say why; freed within the commit window, the next try answers, commits, and the
    request agrees."""
    chain = Chain(validators=1)
    job_id = paid_job(chain)
    chain.block(chain.tx("submitter", deploy(job_id)),
                *(chain.tx(n, OfferPrediction()) for n in EXECUTORS))
    stores = {n: mounts.enter_context(tmpfs(tmp_path / n / "executor", "1m"))
              for n in EXECUTORS}
    running = {n: _executor(chain, n, tmp_path / n) for n in EXECUTORS}
    fillers = {n: fill(folder) for n, folder in stores.items()}
    request_id = send_request(chain, job_id)
    drawn = [n for n in EXECUTORS if chain.addr(n) in record(chain, request_id).executors]
    for name in drawn:
        ex, view, pool = running[name]
        _step(ex)
        assert pool.calls == 1 and view.take() == [], "committed to an answer not kept"
        assert ex.store.answers == {} and ex.counters["failed"] == 1
        assert "No space left on device" in str(ex.store_problem)
        kept = sorted(p.name for p in stores[name].rglob("*") if p.is_file())
        assert kept == ["filler"], f"a partial file was left behind: {kept}"
        _step(ex)  # within the retry's wait: nothing runs again
        assert pool.calls == 1 and view.take() == []
    commits = []
    for name in drawn:
        ex, view, pool = running[name]
        fillers[name].unlink()
        ex.clock = lambda: float("inf")  # the retry's wait is over
        _step(ex)
        (tx,) = view.take()
        assert isinstance(tx.body, PredictCommit) and pool.calls == 2
        assert ex.store.answers and ex.store_problem is None
        commits.append(tx)
    chain.block(*commits)
    assert record(chain, request_id).status == PredictionStatus.REVEAL
    reveals = []
    for name in drawn:
        ex, view, _ = running[name]
        _step(ex)
        reveals += view.take()
    chain.block(*reveals)
    assert record(chain, request_id).status == PredictionStatus.AGREED
