"""``GET /jobs/{job_id}`` of a train/v3 job on a real solo node: the ``holdout`` fields follow
the ledger step by step and match the OpenAPI document; the hidden leaderboard ranks
finalists as [HOLDOUT-WINNER.1] picks the winner."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chain.crypto import address_to_text
from chain.jobspec import TRAIN_V3, DataRef, Holdout
from chain.train.bodies import PostJob
from chain.train.holdout.bodies import HoldoutPublish
from chain.train.holdout.records import Finalist, HoldoutState, HoldoutStatus
from chain.train.holdout.rules import choose_winner
from chain.train.holdout.split import split_seed
from chain.types import Address, Amount, Hash32, Height
from client.api.http_client import ApiClient
from client.api.json_forms import hidden_leaderboard_json, holdout_json, job_json
from client.api.openapi import openapi_document
from sandbox.holdout_pool import make_pool
from tests.client.api.test_api_support import ApiThread, check_schema, future_spec, response_schema
from tests.client.cli.test_cli_job import send
from tests.framework.wait import wait_until

DOC = openapi_document()


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[ApiThread]:
    with ApiThread(tmp_path, validators=1, block_interval=0.1) as api:
        yield api


def get_job(chain: ApiThread, job_id: str) -> dict[str, Any]:
    """The job as served, checked against the documented schema [API-DOC.1]."""
    job: dict[str, Any] = ApiClient(chain.url).job(job_id)
    check_schema(job, response_schema(DOC, "GET", "/jobs/{job_id}", 200), DOC)
    return job


def v3_terms(tmp_path: Path) -> Holdout:
    pool = tmp_path / "pool"
    pool.mkdir()
    for i in range(5):
        (pool / f"s{i}.csv").write_text(f"label\n{i}\n")
    secret = make_pool(pool)
    return Holdout(secret.root, secret.pool, 400, 2, Amount(19), 60_000, 0.05)


def test_holdout_json_follows_the_split_and_the_public_part(chain: ApiThread,
                                                            tmp_path: Path) -> None:
    """[API-HOLDOUT.1] terms, counts, the seed drawn from block posted_height + 1's hash in
    block posted_height + 2, the named public part; null for a train/v1 job."""
    client = ApiClient(chain.url)
    terms = v3_terms(tmp_path)
    base = future_spec(int(client.status()["time_ms"]), expires_in_ms=600_000)
    spec = dataclasses.replace(base, kind=TRAIN_V3, holdout=terms,
                               data=(("train", DataRef(Hash32(b"\xaa" * 32), 10)),))
    job_id = send(client, chain.keys["submitter"], PostJob(spec)).hex()
    v1_id = send(client, chain.keys["submitter"], PostJob(base)).hex()
    assert get_job(chain, v1_id)["holdout"] is None
    assert get_job(chain, v1_id)["spec"]["holdout"] is None

    job = wait_until(lambda: (j := get_job(chain, job_id))["holdout"]["seed"] and j,
                     what="the split seed")
    h = job["holdout"]
    assert h["terms"] == job["spec"]["holdout"] == {
        "root": terms.root.hex(), "pool": 5, "public_permille": 400, "finalists": 2,
        "deposit": 19, "reveal_window_ms": 60_000, "tie_tolerance": 0.05}
    assert (h["public_count"], h["hidden_count"]) == (2, 3)
    assert h["split_height"] == job["posted_height"] + 2
    parent = client.block(job["posted_height"] + 1)["hash"]
    assert h["seed"] == split_seed(bytes.fromhex(job_id), bytes.fromhex(parent)).hex()
    assert h["status"] == "committed" and h["public"] is None and h["hidden"] is None
    assert h["reveal_deadline_ms"] is None and h["winner_rule"] == "public_rank"
    assert h["finalists"] == [] and h["hidden_leaderboard"] == []
    assert job["escrow"] == spec.bounty + spec.voting.voter_reward * spec.voting.max_turns + 19

    part = DataRef(Hash32(b"\xcc" * 32), 321)
    tx = send(client, chain.keys["submitter"], HoldoutPublish(Hash32(bytes.fromhex(job_id)),
                                                              part))
    assert get_job(chain, job_id)["holdout"]["public"] == {"blob": "cc" * 32, "size": 321}
    body = client.tx(tx.hex())["tx"]["body"]
    assert body == {"type": "holdout_publish", "job_id": job_id,
                    "part": {"blob": "cc" * 32, "size": 321}}


def _finalist(n: int, loss: float | None, height: int) -> Finalist:
    return Finalist(Address(bytes([n]) * 20), loss, Height(height), 0)


def test_hidden_leaderboard_ranks_as_the_winner_rule_decides(chain: ApiThread,
                                                             tmp_path: Path) -> None:
    """[API-HOLDOUT.2] [HOLDOUT-WINNER.1] Verified: the tied group (within tie_tolerance of the
    best) first, earliest claim leading, then the rest by hidden loss, then the unmeasured;
    not verified: the order judged, the first leading, nobody tied. The served form of a real
    job with these finalists matches the schema."""
    client = ApiClient(chain.url)
    terms = v3_terms(tmp_path)
    spec = dataclasses.replace(future_spec(int(client.status()["time_ms"])), kind=TRAIN_V3,
                               holdout=terms,
                               data=(("train", DataRef(Hash32(b"\xaa" * 32), 10)),))
    job_id = send(client, chain.keys["submitter"], PostJob(spec))
    job = chain.in_loop(lambda: chain.node.state.job(job_id))  # type: ignore[union-attr]
    assert job is not None
    finalists = (_finalist(1, 0.40, 10), _finalist(2, None, 11), _finalist(3, 0.31, 12),
                 _finalist(4, 0.34, 9), _finalist(5, 0.70, 8))
    verified = HoldoutState(status=HoldoutStatus.VERIFIED, finalists=finalists)
    rows = hidden_leaderboard_json(verified, terms, job)
    order = [r["hidden_loss"] for r in rows]
    assert order == [0.34, 0.31, 0.40, 0.70, None]  # tied 0.31/0.34 by claim height
    assert [r["tied"] for r in rows] == [True, True, False, False, False]
    assert [r["rank"] for r in rows] == [1, 2, 3, 4, 5]
    leader = choose_winner(verified, terms.tie_tolerance)
    assert leader is not None and rows[0]["claimer"] == address_to_text(leader.claimer)
    assert [r["leading"] for r in rows] == [True, False, False, False, False]

    revealed = dataclasses.replace(verified, status=HoldoutStatus.REVEALED)
    rows = hidden_leaderboard_json(revealed, terms, job)
    assert [r["hidden_loss"] for r in rows] == [0.40, None, 0.31, 0.34, 0.70]
    assert not any(r["tied"] for r in rows) and rows[0]["leading"]
    served = holdout_json(job, revealed)
    assert served is not None and served["winner_rule"] == "public_rank"
    assert (holdout_json(job, verified) or {}).get("winner_rule") == "hidden_loss"
    check_schema(job_json(job, verified), DOC["components"]["schemas"]["Job"], DOC)
