"""What a submitter sees of its job (issue 15): lists, how a job ended and why, the escrow,
and the node's record of its worker's attempts, through the CLI against a real solo node.

The worker's attempts here are written by the worker's own ``AttemptLog`` on the
node's data folder (as a worker does after each run); a real worker running a
crashing job under real Docker is ``test_job_visibility_docker.py``.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from chain.crypto import address_to_text
from chain.train.bodies import ClaimLoss, PostJob, RevealModel, model_commitment
from chain.types import Hash32
from client.api.http_client import ApiClient, ApiError
from client.api.openapi import openapi_document
from client.cli.main import cli
from client.worker.attempt_log import (
    EXCERPT_BYTES,
    LOG_TAIL_BYTES,
    MAX_ATTEMPTS_KEPT,
    AttemptLog,
)
from sandbox.results import FailureReason
from tests.client.api.test_api_support import ApiThread, check_schema, future_spec, response_schema
from tests.client.cli.test_cli_chain import key_file, run
from tests.client.cli.test_cli_job import job_dir, saved_image, send
from tests.framework.wait import wait_until

DOC = openapi_document()


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[ApiThread]:
    with ApiThread(tmp_path, validators=1, block_interval=0.1) as api:
        yield api


def post(api: ApiThread, name: str = "submitter", **kw: Any) -> str:
    client = ApiClient(api.url)
    spec = future_spec(int(client.status()["time_ms"]), **kw)
    return send(client, api.keys[name], PostJob(spec)).hex()


def settled(client: ApiClient, job_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        job = client.job(job_id)
        if job["settled"]:
            return job
        client.wait(int(client.status()["height"]) + 1, timeout=2)
        return None

    return wait_until(done, timeout=30, step=0, what=f"job {job_id[:12]} to settle")


def invoke(args: list[str], api: ApiThread) -> Result:
    """The CLI as a user runs it; the exit code is the caller's to check."""
    return CliRunner().invoke(cli, [*args, "--node", api.url], catch_exceptions=False)


# --- job list ------------------------------------------------------------------------------


def test_job_list_shows_a_header_and_filters_mine_and_open(chain: ApiThread,
                                                           tmp_path: Path) -> None:
    client = ApiClient(chain.url)
    mine_open = post(chain, bounty=70, expires_in_ms=600_000)
    mine_done = post(chain, bounty=40, expires_in_ms=2_000)
    theirs = post(chain, "alice", bounty=55, expires_in_ms=600_000)
    send(client, chain.keys["bob"], ClaimLoss(Hash32(bytes.fromhex(theirs)), 0.125,
                                              Hash32(os.urandom(32))))
    settled(client, mine_done)

    rows = run(["job", "list"], chain).stdout.splitlines()
    assert rows[0].split() == ["JOB", "ID", "NAME", "STATUS", "BOUNTY", "BEST", "LOSS",
                               "TIME", "LEFT"]
    by_id = {r.split()[0]: r.split() for r in rows[1:]}
    assert set(by_id) == {mine_open, mine_done, theirs}
    assert by_id[theirs][1:5] == ["template", "open", "55", "0.125"]
    assert re.fullmatch(r"9m \d\ds", " ".join(by_id[theirs][5:])), by_id[theirs]  # time left
    assert by_id[mine_done][2:6] == ["refunded", "40", "-", "-"]

    me = key_file(tmp_path, chain.keys["submitter"], "submitter")[:2]  # no passphrase needed
    mine = run(["job", "list", "--mine", *me], chain).stdout.splitlines()[1:]
    assert {r.split()[0] for r in mine} == {mine_open, mine_done}
    open_mine = json.loads(run(["job", "list", "--mine", "--open", *me, "--json"],
                               chain).stdout)
    assert [j["job_id"] for j in open_mine["jobs"]] == [mine_open]
    assert run(["job", "list", "--status", "refunded"], chain).stdout.splitlines()[1].split()[
        0] == mine_done
    assert "--mine needs --key" in run(["job", "list", "--mine"], chain, code=2).output


# --- how a job ended, and the exit code of watch ------------------------------------------------


def test_watch_of_a_refunded_job_says_why_and_exits_1(chain: ApiThread) -> None:
    """No claims: refunded, and the finished job says so instead of "claims close … ago"."""
    client = ApiClient(chain.url)
    job_id = post(chain, expires_in_ms=2_000)
    settled(client, job_id)
    time.sleep(1.1)  # a second after the refund: "claims closed 2s ago"
    result = invoke(["job", "watch", job_id], chain)
    assert result.exit_code == 1, result.output
    first = result.stdout.splitlines()[0]
    assert first.startswith("job refunded, 0 claim(s), claims closed ")
    assert " ago; settled: refunded: no claims before the claims closed" in first
    assert "claims close " not in result.stdout
    assert result.stderr.strip().splitlines()[-1] == (
        "Error: the job was not paid: refunded: no claims before the claims closed")
    status = run(["job", "status", job_id], chain).stdout
    assert "status     refunded (claims closed " in status
    assert "settled    refunded: no claims before the claims closed" in status


def test_watch_follows_a_job_to_a_refund_for_want_of_a_quorum_and_exits_1(
        chain: ApiThread, tmp_path: Path) -> None:
    """Alice claims and reveals; nobody votes: no quorum. The live watch ends with exit 1
    and names the reason; a forfeited turn (no reveal) is told apart."""
    client = ApiClient(chain.url)
    alice = chain.keys["alice"]
    quorum = post(chain, expires_in_ms=2_000, window_ms=1_500)
    forfeit = post(chain, expires_in_ms=2_000, window_ms=1_500)
    model = tmp_path / "model.pt"
    model.write_bytes(os.urandom(1024))
    model_hash = bytes.fromhex(client.upload_blob(model)["blob"])
    salt = os.urandom(32)
    job = Hash32(bytes.fromhex(quorum))
    send(client, alice, ClaimLoss(job, 0.5, model_commitment(job, alice.address, model_hash,
                                                             salt)))
    send(client, alice, ClaimLoss(Hash32(bytes.fromhex(forfeit)), 0.5, Hash32(os.urandom(32))))
    wait_until(lambda: client.job(quorum)["status"] == "reveal", timeout=30,
               what="alice's turn")
    send(client, alice, RevealModel(job, Hash32(model_hash), salt))

    result = invoke(["job", "watch", quorum, "--json"], chain)
    assert result.exit_code == 1, result.output
    events = [json.loads(line) for line in result.stdout.splitlines()]
    [verdict] = [e for e in events if e["event"] == "verdict"]
    assert verdict["outcome"] == "no_quorum"
    end = events[-1]
    assert end["event"] == "settled" and end["status"] == "refunded"
    claimer = address_to_text(alice.address)[:10]
    assert end["reason"].startswith(f"no quorum on the claim of {claimer}")
    assert "0 of " in end["reason"] and "667‰ needed" in end["reason"]
    assert "the job was not paid: refunded: no quorum" in result.stderr

    settled(client, forfeit)
    text = invoke(["job", "watch", forfeit], chain)
    assert text.exit_code == 1
    assert "settled: refunded: no verified winner after 1 turn(s): lc1" in text.stdout
    assert text.stdout.splitlines()[0].endswith(" forfeit")


# --- the escrow -------------------------------------------------------------------------------


def test_escrow_is_explained_in_the_refusal_and_in_the_submit_output(chain: ApiThread,
                                                                      tmp_path: Path) -> None:
    """escrow = bounty + voter rewards (turns x reward) [JOB-POST-ESCROW.1], said twice."""
    tar, _ = saved_image(tmp_path)
    folder = job_dir(tmp_path)
    poor = key_file(tmp_path, chain.keys["mallory"], "mallory")  # an outsider: 1,000 credits
    refused = run(["job", "submit", str(folder), "--image-tar", str(tar), "--bounty", "990",
                   "--voter-reward", "7", "--max-turns", "2", *poor], chain, code=1).output
    assert ("insufficient_balance: posting this job escrows 1004 credits (escrow 1004 = bounty "
            "990 + voter rewards (2 turns x 7)") in refused
    submitter = key_file(tmp_path, chain.keys["submitter"], "submitter")
    posted = run(["job", "submit", str(folder), "--image-tar", str(tar), "--bounty", "50",
                  "--voter-reward", "2", *submitter], chain).stdout
    assert "bounty 50; escrow 56 = bounty 50 + voter rewards (3 turns x 2)" in posted
    job_id = posted.split()[1]
    status = run(["job", "status", job_id], chain).stdout
    assert "bounty     50 (escrow 56 = bounty 50 + voter rewards (3 turns x 2); escrow now 56)" \
        in status
    doc = json.loads(run(["job", "submit", str(folder), "--image-tar", str(tar), *submitter,
                          "--json"], chain).stdout)
    assert (doc["escrow"], doc["bounty"], doc["voter_reward"], doc["max_turns"],
            doc["image_built"]) == (115, 100, 5, 3, False)


# --- the worker's attempts, served by its node [API-JOBLOG.1/2] --------------------------------


def _worker_dir(api: ApiThread, name: str) -> tuple[Path, str]:
    assert api.node is not None
    who = address_to_text(api.keys[name].address)
    return api.node.data_dir / "worker" / who, who


def test_api_joblog_1_job_logs_serve_this_nodes_attempts_bounded_and_documented(
        chain: ApiThread) -> None:
    """[API-JOBLOG.1] ``GET /jobs/{id}/logs``: each worker identity's last attempts, oldest
    first, in the documented shape; ``tail`` cuts each output to its end; bad input is a 400,
    an unknown job a 404. [API-JOBLOG.2] Records are bounded: the last MAX_ATTEMPTS_KEPT per
    job, nothing of a successful run's output, no host path of the worker, invalid UTF-8
    replaced. [API-JOBLOG.3] A failed run keeps only its redacted excerpt: the last lines,
    long digit runs replaced, at most EXCERPT_BYTES."""
    job_id = post(chain)
    folder, alice = _worker_dir(chain, "alice")
    attempts = AttemptLog(folder, alice)
    big = b"".join(b"line %d\n" % i for i in range(20_000)) + b"\xff\xfeZeroDivisionError\n"
    for n in range(1, MAX_ATTEMPTS_KEPT + 3):
        attempts.record(bytes.fromhex(job_id), attempt=n, run=n, started_ms=1_000 + n,
                        seconds=0.5, stage="train", reason=FailureReason.NONZERO_EXIT,
                        fault="job", exit_code=1,
                        detail=f"no model file at {folder.resolve()}/runs/x", output=big)
    attempts.record(bytes.fromhex(job_id), attempt=99, run=99, started_ms=5_000, seconds=1.0,
                    stage="self-check", reason=None, fault="", detail="loss 0.25", loss=0.25,
                    output=b"weights: 0.1 0.2 0.3")
    client = ApiClient(chain.url)
    doc = client.job_logs(job_id)
    check_schema(doc, response_schema(DOC, "GET", "/jobs/{job_id}/logs", 200), DOC)
    assert doc["job_id"] == job_id and doc["worker_role"] is True
    records = doc["attempts"]
    assert len(records) == MAX_ATTEMPTS_KEPT
    assert [r["attempt"] for r in records] == [*range(4, MAX_ATTEMPTS_KEPT + 3), 99]
    failed = records[0]
    assert failed["worker"] == alice and failed["reason"] == "nonzero_exit"
    assert failed["log_bytes"] == len(big)
    assert failed["log"].split("\n") == ["line \u2026"] * 5 + ["\ufffd\ufffdZeroDivisionError"]
    assert len(failed["log"].encode()) <= EXCERPT_BYTES  # bad bytes replaced, digits redacted
    assert failed["detail"] == "no model file at <worker>/runs/x"
    ok = records[-1]
    assert (ok["outcome"], ok["loss"], ok["log"], ok["log_bytes"]) == ("ok", 0.25, "", 20)
    assert client.job_logs(job_id, tail=10)["attempts"][0]["log"] == "isionError"  # 10 bytes
    for bad in ("-1", str(LOG_TAIL_BYTES + 1), "x"):
        with pytest.raises(ApiError) as e:
            client.get(f"/jobs/{job_id}/logs", tail=bad)
        assert e.value.status == 400
    with pytest.raises(ApiError) as e:
        client.job_logs("ab" * 32)
    assert (e.value.status, e.value.code) == (404, "unknown_job")


def test_job_logs_and_status_show_why_attempts_failed_inert(chain: ApiThread) -> None:
    """``job logs`` prints each attempt and its output (control characters escaped
    [TERM-INERT.1]); ``job status`` the last failure's reason and last line; ``--worker``
    filters; a node without attempts says where to look."""
    job_id = post(chain)
    empty = run(["job", "logs", job_id], chain).stdout
    assert "has no attempts on job" in empty and "--node" in empty
    for name, exit_code in (("alice", 1), ("bob", 137)):
        folder, who = _worker_dir(chain, name)
        reason = FailureReason.NONZERO_EXIT if exit_code == 1 else FailureReason.OOM
        AttemptLog(folder, who).record(
            bytes.fromhex(job_id), attempt=1, run=1, started_ms=int(time.time() * 1000),
            seconds=2.0, stage="train", reason=reason, fault="job", exit_code=exit_code,
            detail="exit 1" if exit_code == 1 else "exceeded its 67108864 byte memory limit",
            output=b"Traceback (most recent call last):\n  File \"/job/train\"\n"
                   b"\x1b]0;pwned\x07ZeroDivisionError: division by zero\n")
    text = run(["job", "logs", job_id], chain).stdout
    assert "\x1b" not in text and "\\x1b]0;pwned\\x07ZeroDivisionError" in text
    assert "train failed: nonzero_exit, exit 1 (the job's fault: the attempt is used up)" in text
    assert "train failed: oom, exit 137" in text
    assert "  | Traceback (most recent call last):" in text
    bob = address_to_text(chain.keys["bob"].address)
    only_bob = json.loads(run(["job", "logs", job_id, "--worker", bob, "--json"],
                              chain).stdout)
    assert [a["worker"] for a in only_bob["attempts"]] == [bob]
    status = run(["job", "status", job_id], chain).stdout
    assert "attempts   2 by this node's worker: 0 ok, 2 failed" in status
    assert "last fail  attempt 1 (run 1) by lc1" in status and "oom" in status
    assert "           | \\x1b]0;pwned\\x07ZeroDivisionError: division by zero" in status
    doc = json.loads(run(["job", "status", job_id, "--json"], chain).stdout)
    assert len(doc["attempts"]) == 2 and doc["job_id"] == job_id
