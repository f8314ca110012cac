"""A worker's node process SIGKILLed mid-training resumes the job from its checkpoint.

Four validator processes on 127.0.0.1 (client.devnet.processes, as ``make demo``):
node0 trains, node1-3 only verify. The submitter posts the template job (train/v2,
through the ``learningchain job submit`` CLI) with a pace of 1 s per epoch. Once node0's
worker has kept a checkpoint of step >= 2 on its disk, node0 is killed with SIGKILL
(the container it ran is left behind, as a crash leaves it), then started again on its
data dir. Its worker gives the interrupted attempt back [WORK-RESUME.1], runs it again
from the kept checkpoint at /resume [JOB-CHECKPOINT.3], claims, and is paid.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from client.api.http_client import ApiClient, ApiError
from client.devnet.processes import REPO_ROOT, down, load_pids, start_node_process
from sandbox.checkpoints import kept_checkpoint
from sandbox.job_template import init_job
from tests.framework.devnet_up import up_on_free_ports
from tests.framework.template_v2 import make_v2

pytestmark = [pytest.mark.docker, pytest.mark.slow]

EPOCHS = 10
SEARCH_SPACE = f"""
[[search_space]]
name = "learning_rate"
kind = "choice"
values = [0.01]

[[search_space]]
name = "hidden_size"
kind = "choice"
values = [32]

[[search_space]]
name = "epochs"
kind = "choice"
values = [{EPOCHS}]

[[search_space]]
name = "epoch_seconds"
kind = "choice"
values = [1.0]
"""


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "client", *args], cwd=REPO_ROOT, text=True,
                          capture_output=True, env={**os.environ, **env}, timeout=300)
    assert proc.returncode == 0, f"learningchain {' '.join(args)}: {proc.stdout}{proc.stderr}"
    return proc


def wait_for(what: str, check: Any, timeout_s: float, log: Path | None = None) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            found = check()
        except (ApiError, OSError):
            found = None
        if found:
            return found
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-4000:] if log else ""
            raise AssertionError(f"timed out waiting for {what}\n{tail}")
        time.sleep(0.3)


def test_node_sigkilled_mid_training_resumes_from_its_checkpoint_and_is_paid(
        tmp_path: Path) -> None:
    """[WORK-RESUME.1] [JOB-CHECKPOINT.2] [JOB-CHECKPOINT.3] [JOB-CHECKPOINT.4] on real node
    processes: SIGKILL of the worker's node after a checkpoint of step >= 2 was kept; the
    restarted node resumes attempt 1 from it (resumed_from > 0 in its attempt record,
    served by its API), claims and is paid."""
    root = tmp_path / "graph"
    trainer = {"max_attempts": 1, "min_time_left_s": 5, "max_memory_mb": 2048,
               "max_disk_mb": 128, "max_time_s": 120}
    layout = up_on_free_ports(root, validators=4, workers=4,
                              worker_settings={0: trainer, 1: {"max_attempts": 0},
                                               2: {"max_attempts": 0}, 3: {"max_attempts": 0}},
                              users={"submitter": 5_000}, consensus={"commit_ms": 100}, timeout=90)
    node0 = layout.nodes[0]
    log = node0.directory / "node.log"
    try:
        api = ApiClient(layout.nodes[1].api_url)
        job_dir = tmp_path / "job"
        init_job(job_dir, name="pytest-resume-digits")
        make_v2(job_dir)
        toml = (job_dir / "job.toml").read_text()
        toml = toml[:toml.index("[[search_space]]")] + SEARCH_SPACE
        (job_dir / "job.toml").write_text(re.sub(r"(?m)^time_s = \d+", "time_s = 120", toml))
        submitter = next(u for u in layout.users if u.name == "submitter")
        posted = cli("job", "submit", str(job_dir), "--bounty", "200",
                     "--expires-in", "100s", "--reveal-window", "20s", "--commit-window", "20s",
                     "--vote-reveal-window", "20s", "--voter-reward", "6",
                     "--quorum", "500", "--supermajority", "667", "--max-turns", "2",
                     "--key", str(submitter.key_file),
                     "--passphrase-file", str(submitter.passphrase_file), "--json",
                     env={"LC_NODE": layout.nodes[1].api_url})
        job_id = json.loads(posted.stdout)["job_id"]

        def kept() -> Any:
            for folder in node0.directory.rglob(f"checkpoints/{job_id[:16]}-1"):
                copy = kept_checkpoint(folder)
                if copy is not None and copy.step >= 2:
                    return copy
            return None

        before = wait_for("a kept checkpoint of step >= 2 on node0", kept, 150, log)
        assert before.step < EPOCHS
        pids = load_pids(root)
        os.kill(pids[node0.name], signal.SIGKILL)
        time.sleep(1.0)
        pids[node0.name] = start_node_process(node0)
        (root / "devnet.json").write_text(json.dumps({"pids": pids}))
        node0_api = ApiClient(node0.api_url)

        def settled() -> Any:
            job = api.job(job_id)
            return job if job["settled"] else None

        job = wait_for("the job to settle", settled, 300, log)
        assert job["status"] == "paid" and job["winner"] == node0.address, job
        attempts = wait_for("node0's attempt records",
                            lambda: node0_api.job_logs(job_id)["attempts"], 30, log)
        ok = [a for a in attempts if a["outcome"] == "ok"]
        assert [(a["attempt"], a["run"]) for a in ok] == [(1, 2)], attempts
        resumed = ok[0]["resumed_from"]
        assert resumed is not None and before.step <= resumed < EPOCHS, (resumed, before)
        text = log.read_text(errors="replace")
        assert "attempt 1 was cut short" in text, text[-4000:]
        assert f"attempt 1 resumes from its checkpoint of step {resumed}" in text
    finally:
        outcome = down(root)
    assert set(outcome.values()) == {"stopped"}, outcome
