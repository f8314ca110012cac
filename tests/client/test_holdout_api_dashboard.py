"""A train/v3 job judged to the end on a real solo node, through signed transactions: the
public race, the hidden part revealed, two finalists voted on with holdout votes, the winner
picked by hidden loss. The job JSON carries the finalists and the hidden leaderboard, and the
dashboard's job page (a real headless Chromium, as ``test_dashboard_browser.py``) shows both
leaderboards, the holdout status and the winner rule."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import playwright.sync_api as sync_api
import pytest

from chain.crypto import PrivateKey, address_to_text
from chain.jobspec import TRAIN_V3, DataRef, Holdout
from chain.train.bodies import ClaimLoss, PostJob, RevealModel, VoteCommit, model_commitment
from chain.train.holdout.bodies import (
    HoldoutPublish,
    HoldoutReveal,
    HoldoutVoteReveal,
    holdout_vote_commitment,
)
from chain.types import Amount, Hash32
from client.api.http_client import ApiClient
from client.api.server import ApiServer
from client.observe.dashboard import install_dashboard
from tests.client.api.test_api_support import ApiThread, check_schema, future_spec, response_schema
from tests.client.browser import headless_page, require_browser
from tests.client.cli.test_cli_job import send
from tests.client.test_holdout_api import DOC
from tests.framework.wait import wait_until

require_browser()  # skip without a browser, never under CI

HIDDEN = {"alice": 0.71, "bob": 0.42}
"""Each finalist's hidden loss as every voter measures it: bob generalises better."""
PUBLIC = {"alice": 0.25, "bob": 0.30}
"""Each claim's public loss, as claimed and as measured: alice leads the public race."""


class DashboardThread(ApiThread):
    """``ApiThread`` with the dashboard installed before the server starts (as LedgerNode)."""

    async def _start(self) -> None:
        await super()._start()
        assert self.server is not None
        await self.server.stop()
        self.server = ApiServer(self.node, "127.0.0.1", 0)  # type: ignore[arg-type]
        install_dashboard(self.server.app, self.node)  # type: ignore[arg-type]
        await self.server.start()


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[ApiThread]:
    with DashboardThread(tmp_path, validators=1, block_interval=0.1) as api:
        yield api


def wait_status(client: ApiClient, job_id: str, status: str) -> dict[str, Any]:
    return wait_until(lambda: (j := client.job(job_id))["status"] == status and j,
                      timeout=30, what=f"the job to reach {status}")


def judge_turn(chain: ApiThread, client: ApiClient, job_id: str, name: str, salt: bytes,
               model_hash: bytes) -> None:
    """``name`` reveals its model; every eligible voter and ``name`` itself commit, then open,
    a holdout vote: valid, the hidden part matches, hidden loss ``HIDDEN[name]``."""
    job = Hash32(bytes.fromhex(job_id))
    claimer = chain.keys[name]
    send(client, claimer, RevealModel(job, Hash32(model_hash), salt))
    voters = wait_status(client, job_id, "vote_commit")["turn"]["eligible_voters"]
    by_address: dict[str, PrivateKey] = {address_to_text(k.address): k
                                         for k in chain.keys.values()}
    voters = [*voters, address_to_text(claimer.address)]
    salts = {v: os.urandom(32) for v in voters}
    for v in voters:
        key = by_address[v]
        send(client, key, VoteCommit(job, claimer.address, holdout_vote_commitment(
            job, claimer.address, key.address, True, PUBLIC[name], True, HIDDEN[name],
            salts[v])))
    wait_status(client, job_id, "vote_reveal")
    for v in voters:
        send(client, by_address[v], HoldoutVoteReveal(job, claimer.address, True, PUBLIC[name],
                                                      True, HIDDEN[name], salts[v]))


def run_job(chain: ApiThread) -> str:
    """Post, publish, race (alice best in public), reveal, judge both finalists."""
    client = ApiClient(chain.url)
    base = future_spec(int(client.status()["time_ms"]), expires_in_ms=600_000,
                       window_ms=30_000)
    terms = Holdout(Hash32(b"\x42" * 32), 20, 500, 2, Amount(19), 60_000, 0.05)
    spec = dataclasses.replace(base, kind=TRAIN_V3, holdout=terms,
                               data=(("train", DataRef(Hash32(b"\xaa" * 32), 10)),))
    job_id = send(client, chain.keys["submitter"], PostJob(spec)).hex()
    job = Hash32(bytes.fromhex(job_id))
    wait_until(lambda: client.job(job_id)["holdout"]["seed"], what="the split")
    send(client, chain.keys["submitter"], HoldoutPublish(job, DataRef(Hash32(b"\xbb" * 32), 99)))
    models = {}
    for name, loss in PUBLIC.items():
        salt, model_hash = os.urandom(32), os.urandom(32)
        models[name] = (salt, model_hash)
        key = chain.keys[name]
        send(client, key, ClaimLoss(job, loss, model_commitment(job, key.address, model_hash,
                                                                salt)))
    chain.in_loop(lambda: chain.node.skip_to(spec.expiry_ms + 1))  # type: ignore[union-attr]
    wait_status(client, job_id, "holdout")
    send(client, chain.keys["submitter"], HoldoutReveal(job, DataRef(Hash32(b"\xcc" * 32), 77)))
    for name in ("alice", "bob"):  # public rank order [HOLDOUT-FINALIST.1]
        wait_status(client, job_id, "reveal")
        judge_turn(chain, client, job_id, name, *models[name])
    wait_status(client, job_id, "paid")
    return job_id


def test_finalists_and_both_leaderboards_in_the_json_and_on_the_page(chain: ApiThread) -> None:
    """[API-HOLDOUT.1] [API-HOLDOUT.2] The finalists with their agreed hidden losses, the
    hidden leaderboard led and won by the better hidden loss although alice led the public
    race, votes with ``holdout_ok``/``hidden_loss``; the job page shows the same."""
    job_id = run_job(chain)
    client = ApiClient(chain.url)
    job = client.job(job_id)
    check_schema(job, response_schema(DOC, "GET", "/jobs/{job_id}", 200), DOC)
    alice, bob = (address_to_text(chain.keys[n].address) for n in ("alice", "bob"))
    h = job["holdout"]
    assert h["status"] == "verified" and h["winner_rule"] == "hidden_loss"
    assert [(f["claimer"], f["hidden_loss"]) for f in h["finalists"]] == [
        (alice, HIDDEN["alice"]), (bob, HIDDEN["bob"])]
    board = h["hidden_leaderboard"]
    assert [(r["claimer"], r["tied"], r["leading"], r["winner"]) for r in board] == [
        (bob, False, True, True), (alice, False, False, False)]
    assert job["winner"] == bob and job["claims"][0]["claimer"] == alice
    assert job["votes"] and all(v["holdout_ok"] is True and v["hidden_loss"] == HIDDEN["bob"]
                                for v in job["votes"])

    with headless_page(width=1280, height=1400) as (page, problems):
        page.goto(f"{chain.url}/#/jobs/{job_id}")
        rows = page.get_by_test_id("hidden-row")
        sync_api.expect(rows).to_have_count(2)
        assert rows.nth(0).get_attribute("data-claimer") == bob
        assert "winner" in rows.nth(0).inner_text() and "0.42" in rows.nth(0).inner_text()
        assert rows.nth(1).get_attribute("data-claimer") == alice
        assert "0.71" in rows.nth(1).inner_text()
        public = page.get_by_test_id("leaderboard-row")
        sync_api.expect(public).to_have_count(2)
        assert public.nth(0).get_attribute("data-claimer") == alice
        assert page.get_by_test_id("holdout-status").inner_text() == "verified"
        assert "lowest hidden loss" in page.get_by_test_id("holdout-rule").inner_text()
        holes = page.get_by_test_id("vote-hidden-loss")
        assert holes.count() == len(job["votes"]) and "0.42" in holes.nth(0).inner_text()
    assert not problems, problems
