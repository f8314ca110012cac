"""Progress reaches /metrics, and interrupted attempts are given back only with a checkpoint.

[API-PROGRESS.1] The gauge is fed by the real ``Trainer`` through the same callback the
sandbox's watching thread calls, and read over HTTP from the node's real ``/metrics``.
[WORK-RESUME.1] The state file's ``running`` mark, through a real ``WorkerStore`` on disk.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chain.crypto import PrivateKey
from client.node.config import WorkerPolicy
from client.worker.progress_view import ProgressFeed
from client.worker.state import WorkerStore
from client.worker.training import Trainer
from client.worker.worker import Worker
from sandbox.progress import Progress
from tests.client.test_metrics import local_node, network, scrape, value

JOB = bytes(range(32))


async def test_metrics_expose_the_progress_gauge_of_the_run_in_progress(tmp_path: Path) -> None:
    """[API-PROGRESS.1] [API-PROGRESS.3] [JOB-PROGRESS.4] learningchain_worker_job_progress_
    fraction{job} shows the public view of this node's worker's run: whole percent, once the
    first 30 s tick has passed; no step gauge (/metrics is open to anyone); gone once the run
    ends. The operator's view keeps every field."""
    layout = network(tmp_path, validators=1)
    node = local_node(layout, 0)
    await node.start()
    try:
        worker = Worker(node, WorkerPolicy())
        node.worker = worker
        worker.store.open()
        trainer = Trainer(node, worker.policy, worker.key, worker.store, worker.outbox,
                          worker.threads, None, None, lambda: None,  # type: ignore[arg-type]
                          worker.attempts)
        worker.trainer = trainer
        clock = [1_000_000]
        trainer.clock_ms = lambda: clock[0]
        empty = await scrape(node)
        assert not [s for s in empty["learningchain_worker_job_progress_fraction"]]
        trainer.feeds[JOB] = ProgressFeed(worker.store.address_text, 2, 3, clock[0])
        clock[0] += 1_000
        trainer._on_progress(JOB, 2, 3, Progress(0.4271, 4, 0.31, "train_loss", 4))
        assert not [s for s in (await scrape(node))["learningchain_worker_job_progress_fraction"]]
        clock[0] += 30_000
        families = await scrape(node)
        assert value(families, "learningchain_worker_job_progress_fraction",
                     job=JOB.hex()) == 0.42
        assert "learningchain_worker_job_progress_step" not in families
        shown = trainer.progress_of(JOB, operator=True)
        assert shown is not None and shown["resumed_from"] == 3 and shown["attempt"] == 2
        assert (shown["step"], shown["metric"], shown["view"]) == (4, 0.31, "operator")
        public = trainer.progress_of(JOB)
        assert public is not None and public["view"] == "public"
        assert (public["step"], public["metric"], public["metric_name"]) == (None, None, "")
        trainer.feeds.pop(JOB)
        after = await scrape(node)
        assert not [s for s in after["learningchain_worker_job_progress_fraction"]]
        worker.trainer = None
    finally:
        node.worker = None  # never started: nothing of it to stop
        await node.stop()


def _store(root: Path, jobs: dict[str, Any]) -> WorkerStore:
    key = PrivateKey.from_seed(b"resume")
    store = WorkerStore(root, key.address)
    store.dir.mkdir(parents=True)
    (store.dir / "state.json").write_text(json.dumps({
        "version": 1, "address": store.address_text, "jobs": jobs, "votes": {}}))
    store.open()
    return store


def test_an_interrupted_attempt_is_given_back_only_when_it_kept_a_checkpoint(
        tmp_path: Path) -> None:
    """[WORK-RESUME.1] [WORK-ATTEMPTS.1] ``running`` still set at start: with a kept
    checkpoint the attempt is given back (attempts - 1; runs unchanged); without one its
    seed stays spent; an attempt older than the last one is not given back; the mark is
    cleared and saved either way."""
    base: dict[str, Any] = {"best_measured": None, "claims": [], "inconsistent": ""}
    a, b, c = "aa" * 32, "bb" * 32, "cc" * 32
    store = _store(tmp_path, {a: {**base, "attempts": 2, "runs": 3, "running": 2},
                              b: {**base, "attempts": 1, "runs": 1, "running": 1},
                              c: {**base, "attempts": 3, "runs": 3, "running": 2}})
    for job, attempt in ((a, 2), (c, 2)):
        kept = store.checkpoint_dir(bytes.fromhex(job), attempt) / "v4"
        (kept / "files").mkdir(parents=True)
        (kept / "meta.json").write_text('{"step": 4, "seconds": 3.5}')
    trainer_check = Trainer._has_checkpoint
    given = store.give_back_interrupted(
        lambda job_id, attempt: trainer_check(_Holder(store), job_id, attempt))  # type: ignore[arg-type]
    assert given == [(a, 2)]
    jobs = store.state.jobs
    assert (jobs[a].attempts, jobs[a].runs, jobs[a].running) == (1, 3, 0)
    assert (jobs[b].attempts, jobs[b].runs, jobs[b].running) == (1, 1, 0)
    assert (jobs[c].attempts, jobs[c].runs) == (3, 3)
    saved = json.loads(store.path.read_text())["jobs"]
    assert saved[a]["running"] == 0 and saved[a]["attempts"] == 1
    store.forget_job(bytes.fromhex(a))
    assert not store.checkpoint_dir(bytes.fromhex(a), 2).exists()


class _Holder:
    """What ``Trainer._has_checkpoint`` reads: the store."""

    def __init__(self, store: WorkerStore) -> None:
        self.store = store


def _answer(fraction: float, step: int) -> dict[str, Any]:
    return {"worker": "lc1" + "ab" * 24, "attempt": 1, "fraction": fraction, "step": step,
            "metric": 0.5, "metric_name": "train_loss", "checkpoint_step": step,
            "resumed_from": 2, "updated_ms": 1}


def test_job_watch_progress_is_a_rich_bar_on_a_terminal_and_lines_otherwise() -> None:
    """[API-PROGRESS.1] On a terminal one live bar per worker and attempt (rich); in a pipe
    one plain line per change (an unchanged answer prints nothing); --json one event."""
    import io

    from client.cli.job.run_progress import RunProgress

    pipe = io.StringIO()
    with RunProgress(False, stream=pipe, terminal=False) as view:
        for fraction, step in ((0.25, 2), (0.25, 2), (0.5, 4)):
            view.show(_answer(fraction, step))
        view.show(None)
    assert pipe.getvalue().splitlines() == [
        "progress  lc1ababababababa\u2026 attempt 1: 25%, step 2, train_loss 0.5 "
        "(resumed from step 2)",
        "progress  lc1ababababababa\u2026 attempt 1: 50%, step 4, train_loss 0.5 "
        "(resumed from step 2)"]
    tty = io.StringIO()
    with RunProgress(False, stream=tty, terminal=True) as view:
        view.show(_answer(0.5, 4))
        assert view._bars is not None and len(view._bars.tasks) == 1
        assert view._bars.tasks[0].completed == 0.5
    assert "50%" in tty.getvalue() and "step 4" in tty.getvalue()
    as_json = io.StringIO()
    with RunProgress(True, stream=as_json, terminal=True) as view:
        view.show(_answer(1.0, 8))
    assert json.loads(as_json.getvalue())["fraction"] == 1.0
