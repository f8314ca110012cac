"""``job watch JOB --key`` does a train/v3 submitter's duties by itself on a real solo node:
it publishes the public part once the split is drawn and reveals the hidden part once the job
is in status holdout; without the secret it only watches and says why (ledger.md §5b)."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from chain.jobspec import TRAIN_V3, DataRef, Holdout
from chain.train.bodies import ClaimLoss, PostJob
from chain.types import Amount, Hash32
from client.api.http_client import ApiClient
from client.cli.job.holdout_duties import secret_path
from client.cli.main import cli
from sandbox.holdout_pool import make_pool, save_pool_secret
from tests.client.api.test_api_support import ApiThread, future_spec
from tests.client.cli.test_cli_chain import key_file
from tests.client.cli.test_cli_job import send
from tests.client.test_holdout_cli import v3_job_dir
from tests.framework.wait import wait_until


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[ApiThread]:
    with ApiThread(tmp_path, validators=1, block_interval=0.1) as api:
        yield api


def watch(chain: ApiThread, job_id: str, *args: str) -> list[dict[str, Any]]:
    """``job watch --json`` for a few seconds (it gives up with exit 1: the job is not
    settled); the events it printed."""
    result = CliRunner().invoke(cli, ["job", "watch", job_id, "--timeout", "3s", "--json",
                                      "--node", chain.url, *args], catch_exceptions=False)
    assert result.exit_code == 1 and "gave up watching" in result.stderr, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_watch_with_the_key_publishes_then_reveals(chain: ApiThread, tmp_path: Path) -> None:
    """[HOLDOUT-PUBLISH.1] [HOLDOUT-REVEAL.1] A watch without a key only shows; with the key
    but no secret it says so; with both it publishes after the split, then reveals in the
    window after expiry."""
    folder = v3_job_dir(tmp_path)
    secret = make_pool(folder / "pool")
    save_pool_secret(secret, secret_path(folder, secret.root))
    client = ApiClient(chain.url)
    base = future_spec(int(client.status()["time_ms"]), expires_in_ms=600_000)
    spec = dataclasses.replace(base, kind=TRAIN_V3, data=(("train", DataRef(
        Hash32(b"\xaa" * 32), 10)),), holdout=Holdout(secret.root, secret.pool, 500, 2,
                                                      Amount(19), 600_000, 0.05))
    job_id = send(client, chain.keys["submitter"], PostJob(spec)).hex()
    send(client, chain.keys["alice"], ClaimLoss(Hash32(bytes.fromhex(job_id)), 0.5,
                                                Hash32(os.urandom(32))))
    wait_until(lambda: client.job(job_id)["holdout"]["seed"], what="the split")
    submitter = key_file(tmp_path, chain.keys["submitter"], "submitter")

    shown = watch(chain, job_id)
    assert not [e for e in shown if e["event"].startswith("dut")]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    idle = watch(chain, job_id, *submitter, "--job-dir", str(elsewhere))
    assert [e["reason"] for e in idle if e["event"] == "duties"] == [
        f"no pool secret for root {secret.root.hex()} under {elsewhere}: looked for "
        f"{secret_path(elsewhere, secret.root)} (run this in the job folder that submitted "
        f"job {job_id}, or pass --job-dir); only watching"]
    assert client.job(job_id)["holdout"]["public"] is None

    events = watch(chain, job_id, *submitter, "--job-dir", str(folder))
    duty = [e for e in events if e["event"] == "duty"]
    assert [d["part"] for d in duty] == ["public"]
    assert [e["blob"] for e in events if e["event"] == "holdout_public"] == [duty[0]["blob"]]
    assert client.job(job_id)["holdout"]["public"] == {"blob": duty[0]["blob"],
                                                       "size": duty[0]["size"]}

    expiry = int(client.job(job_id)["spec"]["expiry_ms"])
    chain.in_loop(lambda: chain.node.skip_to(expiry + 1))  # type: ignore[union-attr]
    wait_until(lambda: client.job(job_id)["status"] == "holdout", what="status holdout")
    events = watch(chain, job_id, *submitter, "--job-dir", str(folder))
    assert [e["part"] for e in events if e["event"] == "duty"] == ["hidden"]
    assert {"event": "holdout_status", "from": "committed", "to": "revealed"} in events
    job = client.job(job_id)
    assert job["holdout"]["status"] == "revealed" and job["holdout"]["hidden"] is not None
    assert job["status"] == "reveal"  # the first finalist's turn started [HOLDOUT-REVEAL.1]
