"""Issue 16, "What must be shown": overfitting loses to generalising on a real graph.

Four validator processes on 127.0.0.1 (``client.devnet.processes``, as ``make demo``):
node0 trains honestly; node1 is the demo overfitter (``overfit_public``: it trains on
the job's public validation part instead of its training data, then claims what it
honestly measures there: the best public loss); node2 and node3 only verify. The
submitter posts the template digits job as ``job init`` writes it: a ``train/v3`` job
whose pool is the template's validation rows as 30 CSV shards (only its search space
is narrowed, so every run is a good one): ``job submit`` commits the pool, waits for
the split and publishes the public part; ``job watch --key --job-dir`` reveals the
hidden part in its window after expiry.

Shown: the overfitter has the best public claim and is a finalist, but its hidden loss
is worse by more than the tie tolerance; the honest worker is paid; nobody is banned
or slashed; every node settles the job identically (status, winner, verdicts, hidden
finalists); credits add up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from client.api.http_client import ApiClient
from client.devnet.processes import REPO_ROOT, down
from sandbox.holdout_config import HoldoutConfig
from sandbox.job_file import load_job_file
from tests.framework.devnet_up import up_on_free_ports

pytestmark = [pytest.mark.docker, pytest.mark.slow]

HONEST, OVERFITTER = 0, 1
BOUNTY = 200
REWARD = 9

SEARCH_SPACE = """
[[search_space]]
name = "learning_rate"
kind = "log_uniform"
values = [0.02, 0.05]

[[search_space]]
name = "hidden_size"
kind = "choice"
values = [128]

[[search_space]]
name = "epochs"
kind = "int"
values = [30, 40]
"""


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "client", *args], cwd=REPO_ROOT, text=True,
                          capture_output=True, env={**os.environ, **env}, timeout=300)
    assert proc.returncode == 0, f"learningchain {' '.join(args)}: {proc.stdout}{proc.stderr}"
    return proc


def write_v3_job(job_dir: Path) -> HoldoutConfig:
    """The template as ``job init`` writes it (train/v3, its validation rows the pool of
    its hidden test set), with a narrower search space; its ``[holdout]`` terms."""
    cli("job", "init", str(job_dir), env={})
    job = load_job_file(job_dir)
    assert job.kind == "train/v3" and job.holdout is not None, job
    assert len(list(job.holdout.pool_path(job_dir).iterdir())) == 30
    toml = (job_dir / "job.toml").read_text()
    toml = toml[:toml.index("[[search_space]]")] + SEARCH_SPACE.lstrip()
    (job_dir / "job.toml").write_text(toml)
    return job.holdout


def wait_settled(api: ApiClient, job_id: str, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        job = api.job(job_id)
        if job["settled"]:
            return dict(job)
        if time.monotonic() > deadline:
            raise AssertionError(f"job not settled after {timeout_s:.0f} s: {job}")
        time.sleep(0.5)


def test_overfitting_worker_wins_the_public_race_and_loses_on_the_hidden_set(
        tmp_path: Path) -> None:
    """[WORK-HOLDOUT.1] [HOLDOUT-SPLIT.1] [HOLDOUT-PUBLISH.1] [HOLDOUT-REVEAL.1]
    [HOLDOUT-VOTE.1] [HOLDOUT-WINNER.1] on real node processes and real sandboxes."""
    root = tmp_path / "graph"
    quick = {"max_attempts": 1, "min_time_left_s": 5, "max_memory_mb": 1024,
             "max_disk_mb": 64, "max_time_s": 120}
    layout = up_on_free_ports(
        root, validators=4, workers=4,
        worker_settings={HONEST: quick, OVERFITTER: {**quick, "overfit_public": True},
                         2: {"max_attempts": 0}, 3: {"max_attempts": 0}},
        users={"submitter": 5_000}, consensus={"commit_ms": 100}, timeout=90)
    watcher: subprocess.Popen[str] | None = None
    try:
        api = ApiClient(layout.nodes[0].api_url)
        supply_before = api.supply()
        job_dir = tmp_path / "digits"
        terms = write_v3_job(job_dir)
        submitter = next(u for u in layout.users if u.name == "submitter")
        env = {"LC_NODE": layout.nodes[0].api_url}
        keys = ("--key", str(submitter.key_file),
                "--passphrase-file", str(submitter.passphrase_file))
        posted = cli("job", "submit", str(job_dir), "--bounty", str(BOUNTY),
                     "--expires-in", "70s", "--reveal-window", "20s", "--commit-window", "60s",
                     "--vote-reveal-window", "20s", "--voter-reward", str(REWARD),
                     "--quorum", "500", "--supermajority", "667", "--max-turns", "3",
                     *keys, "--json", env=env)
        job_id = json.loads(posted.stdout)["job_id"]
        published = api.job(job_id)["holdout"]
        assert published["public"] is not None and published["seed"] is not None, published
        watcher = subprocess.Popen(
            [sys.executable, "-m", "client", "job", "watch", job_id, *keys,
             "--job-dir", str(job_dir), "--timeout", "400"],
            cwd=REPO_ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env={**os.environ, **env})
        job = wait_settled(api, job_id, 400)

        address = {i: n.address for i, n in enumerate(layout.nodes)}
        claims = {c["claimer"]: c["loss"] for c in job["claims"]}
        assert set(claims) == {address[HONEST], address[OVERFITTER]}, job["claims"]
        assert claims[address[OVERFITTER]] < claims[address[HONEST]], \
            f"the overfitter must lead the public race: {claims}"
        holdout = job["holdout"]
        assert holdout["status"] == "verified", holdout
        hidden = {f["claimer"]: f["hidden_loss"] for f in holdout["finalists"]}
        assert set(hidden) == set(claims), holdout["finalists"]
        print(f"public {claims}; hidden {hidden}")
        assert hidden[address[OVERFITTER]] > hidden[address[HONEST]] + terms.tie_tolerance, hidden
        assert job["status"] == "paid" and job["winner"] == address[HONEST]
        assert [v["outcome"] for v in job["verdicts"]] == ["valid", "valid"]
        for i in address:  # nobody banned or slashed
            account = api.account(address[i])
            assert not account["banned"] and account["balance"] >= 1_000, (i, account)
        supply = api.supply()
        assert supply["conserved"] and supply["supply"] == supply_before["supply"]
        time.sleep(1.0)
        for node in layout.nodes:
            other = ApiClient(node.api_url).job(job_id)
            assert (other["status"], other["winner"], other["verdicts"],
                    other["holdout"]["finalists"]) == (
                job["status"], job["winner"], job["verdicts"], holdout["finalists"])
        log = (layout.nodes[OVERFITTER].directory / "node.log").read_text(errors="replace")
        assert "OVERFITTING (demo)" in log
    finally:
        if watcher is not None:
            watcher.kill()
            output = watcher.communicate()[0]
            print("job watch:", output[-3000:])
        down(root)
