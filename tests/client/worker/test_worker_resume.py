"""A worker stopped mid-training resumes from its kept checkpoint; ``job watch`` shows the
run's progress advancing. Real ledger (SoloNode) and its real HTTP API, real Docker
sandbox, the template job (which writes a checkpoint and its progress every epoch), and
the real ``learningchain`` command in a subprocess.

The worker's tasks are cancelled and its containers killed while attempt 1 trains, with
the state file left as a crash leaves it (``running`` still set: nothing after the run
is written). A new ``Worker`` on the same folder, as after a restart, gives the attempt
back, trains it again with the same seed from the kept copy at /resume, claims, and is
verified and paid.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from dataclasses import replace
from pathlib import Path

import docker
import pytest

from chain.jobspec import ParamSpec
from chain.records import JobStatus
from client.api.server import ApiServer
from client.worker.attempt_log import job_attempts
from client.worker.worker import Worker
from sandbox.checkpoints import kept_checkpoint
from tests.client.worker import test_worker as base
from tests.client.worker.test_worker import (
    TRAINER,
    VERIFIER,
    TemplateImage,
    expire_once_claimed,
    post_job,
    put_template,
    runner,
    settled,
    template_spec,
    wait_until,
)
from tests.framework.solo import SoloNode
from tests.ledger.harness import make_genesis

pytestmark = pytest.mark.docker
docker_client = base.docker_client
template = base.template
no_leftover_containers = base.no_leftover_containers
worker_logs = base.worker_logs

EPOCHS = 14
"""One second each. The stop must land before the last: in a clean-clone CI run (load
average about 10) attempt 1 had kept step 8 of 8 by the time the worker stopped, 15.2 s
into training, because the wait also needs job watch's second progress line, which lags
the checkpoints under load. Six more epochs leave that lag about 6-10 s more."""
PROGRESS_LINE = re.compile(r"^progress +lc1\w+… attempt (\d+): (\d+)%, step (\d+)")


async def _read_lines(stream: asyncio.StreamReader, lines: list[str]) -> None:
    while raw := await stream.readline():
        lines.append(raw.decode("utf-8", "replace").rstrip("\n"))


def _watch_progress(lines: list[str]) -> list[tuple[int, int, int]]:
    """(attempt, percent, step) of every progress line ``job watch`` printed."""
    found = []
    for line in lines:
        m = PROGRESS_LINE.match(line)
        if m:
            found.append((int(m[1]), int(m[2]), int(m[3])))
    return found


async def test_worker_resumes_from_its_checkpoint_and_job_watch_shows_progress(
        tmp_path: Path, docker_client: docker.DockerClient, template: TemplateImage,
        caplog: pytest.LogCaptureFixture) -> None:
    """[WORK-RESUME.1] [JOB-CHECKPOINT.2] [JOB-CHECKPOINT.3] [JOB-CHECKPOINT.4]
    [API-PROGRESS.1] [JOB-PROGRESS.4] Attempt 1 is cut short after a checkpoint was kept;
    the restarted worker gives it back, resumes it from that step (> 0, recorded in the
    attempt record and the log), claims, and is paid; ``job watch`` against the worker's
    node printed progress lines with increasing fractions and exits 0 when paid."""
    genesis, keys = make_genesis(members=("submitter", "alice"))
    async with SoloNode(genesis, keys["v0"], tmp_path / "node") as node:
        server = ApiServer(node, "127.0.0.1", 0)
        await server.start()
        watch = None
        try:
            put_template(node, template)
            spec = template_spec(template, node.now_ms(), expiry_s=120)
            spec = replace(spec, search_space=(
                ParamSpec("learning_rate", "log_uniform", (0.005, 0.05)),
                ParamSpec("hidden_size", "choice", (32,)),
                ParamSpec("epochs", "choice", (EPOCHS,)),
                ParamSpec("epoch_seconds", "choice", (1.0,))))
            job_id = post_job(node, keys["submitter"], spec)
            alice_runner = runner(docker_client, "alice")
            alice = Worker(node, TRAINER, runner=alice_runner, key=keys["alice"])
            node.worker = alice  # type: ignore[attr-defined]  # the node that runs the worker
            watch = await asyncio.create_subprocess_exec(
                str(Path(sys.executable).with_name("learningchain")), "job", "watch",
                job_id.hex(), "--node", f"http://127.0.0.1:{server.port}", "--timeout", "600s",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
            assert watch.stdout is not None
            lines: list[str] = []
            reader = asyncio.create_task(_read_lines(watch.stdout, lines))
            await alice.start()
            kept_dir = alice.store.checkpoint_dir(job_id, 1)

            def two_rising_and_kept() -> bool:
                seen = _watch_progress(lines)
                kept = kept_checkpoint(kept_dir)
                return len({pct for _a, pct, _s in seen}) >= 2 and kept is not None \
                    and kept.step >= 2 and kept.step < EPOCHS
            await wait_until(two_rising_and_kept, 90, "progress in job watch and a checkpoint",
                             [alice])
            await alice.stop()  # mid-training: tasks cancelled, containers killed
            state = json.loads(alice.store.path.read_text())["jobs"][job_id.hex()]
            assert (state["attempts"], state["runs"], state["running"]) == (1, 1, 1)
            kept = kept_checkpoint(kept_dir)
            assert kept is not None and 2 <= kept.step < EPOCHS
            assert kept.seconds < spec.limits.time_s

            alice = Worker(node, TRAINER, runner=alice_runner, key=keys["alice"])
            node.worker = alice  # type: ignore[attr-defined]
            voter = Worker(node, VERIFIER, runner=runner(docker_client, "v0"))
            await alice.start()
            await voter.start()
            try:
                await expire_once_claimed(node, job_id, [alice], [alice, voter], 120)
                job = await wait_until(lambda: settled(node, job_id), 120, "the job to settle",
                                       [alice, voter])
            finally:
                await voter.stop()
                await alice.stop()
            assert job.status == JobStatus.PAID and job.winner == keys["alice"].address
            code = await asyncio.wait_for(watch.wait(), 60)
            await reader
        finally:
            if watch is not None and watch.returncode is None:
                watch.kill()
                await watch.wait()
            node.worker = None  # type: ignore[attr-defined]
            await server.stop()
    records = job_attempts(tmp_path / "node" / "worker", job_id)
    assert [(r.attempt, r.run, r.outcome) for r in records] == [(1, 2, "ok")], records
    resumed = records[0].resumed_from
    assert resumed is not None and kept.step <= resumed < EPOCHS, (resumed, kept)
    text = caplog.text
    assert "attempt 1 was cut short" in text and "[WORK-RESUME.1]" in text
    assert f"attempt 1 resumes from its checkpoint of step {resumed}" in text
    # job watch: progress lines, fractions rising within a run, then paid (exit 0)
    progress = _watch_progress(lines)
    first = [pct for attempt, pct, step in progress if step <= kept.step]
    assert len(set(first)) >= 2 and first == sorted(first), lines
    assert any(step > resumed for _a, _p, step in progress), lines
    assert code == 0, lines
