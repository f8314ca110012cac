"""[API-QUEUE.1] [WORK-QUEUE.1] Why a job has no claim yet, on a real solo node over
127.0.0.1: ``GET /jobs/{id}/queue`` (checked against the OpenAPI document) puts a job
behind a better-paying one and names the bounty that would lead; ``job status`` prints it
and ``--json`` carries it; once the job is not open, or has a claim, there is no queue."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from chain.train.bodies import PostJob
from client.api.http_client import ApiClient, ApiError
from client.cli.main import cli
from tests.client.api.test_api_support import ApiThread, future_spec
from tests.client.cli.test_cli_chain import run
from tests.client.cli.test_cli_job import send
from tests.client.test_holdout_api import DOC, check_schema, response_schema
from tests.client.test_holdout_api import chain as chain  # the fixture, used by name


def _queue(client: ApiClient, job_id: bytes) -> dict[str, Any]:
    doc: dict[str, Any] = client.job_queue(job_id)
    check_schema(doc, response_schema(DOC, "GET", "/jobs/{job_id}/queue", 200), DOC)
    return doc


def test_api_queue_1_a_job_behind_a_better_paying_one(chain: ApiThread, tmp_path: Path) -> None:
    client = ApiClient(chain.url)
    now = int(client.status()["time_ms"])
    mine = send(client, chain.keys["submitter"], PostJob(future_spec(now, bounty=100)))
    rich = send(client, chain.keys["alice"], PostJob(future_spec(now, bounty=400)))
    doc = _queue(client, mine)
    q = doc["queue"]
    assert doc["status"] == "open" and doc["claims"] == 0
    assert (q["position"], q["open_jobs"], q["ahead_count"]) == (2, 2, 1)
    assert q["ahead"][0]["job_id"] == rich.hex() and q["ahead"][0]["bounty"] == 400
    assert q["bounty_to_lead"] == 401 and q["default_skip"] is None
    assert _queue(client, rich)["queue"]["position"] == 1

    shown = run(["job", "status", mine.hex()], chain).output
    assert "no claim yet: #2 of 2 open job(s)" in shown, shown
    assert f"before it: {rich.hex()[:16]}… bounty 400" in shown
    assert "a bounty of 401 or more" in shown
    as_json = json.loads(run(["job", "status", mine.hex(), "--json"], chain).stdout)
    assert as_json["queue"]["position"] == 2

    result = CliRunner().invoke(cli, ["job", "watch", mine.hex(), "--timeout", "2s",
                                      "--node", chain.url])
    watched = result.output
    assert result.exit_code == 1, watched
    assert "waiting no claim yet: #2 of 2" in watched and "gave up watching" in watched
    assert watched.count("waiting no claim yet") == 1  # said again only when it moves

    with pytest.raises(ApiError) as e:
        client.job_queue(bytes(32))
    assert e.value.code == "unknown_job"
