"""The dashboard in a real browser, watching a running devnet take a job to its verdict [DASH-*].

A one-validator graph runs as its own process (``client.devnet.processes.up``), so the
dashboard is the one ``LedgerNode`` installs on its API server. The test
posts a job and drives its lifecycle with signed transactions (no Docker:
the "models" are uploaded blobs), while Chromium, driven by Playwright
through Debian's ``/usr/bin/chromium`` (nothing is downloaded), watches:

* the job appears in the jobs list and its page opens from it;
* the leaderboard gains alice's claim and the loss plot its first point;
  alice improves (a second point, still one leaderboard row) and carol
  claims an implausibly low loss;
* carol's turn: she reveals, every eligible member votes her model invalid,
  the verdict says ``cheat`` and she shows as banned;
* alice's turn: she reveals the real model, the votes say valid, the page
  shows her as the winner with a download link that serves the model's bytes;
* the accounts page shows carol banned; the blocks page lists the latest
  transactions and opens a block; the graph page shows this node;
* the page raised no JavaScript error and no Content Security Policy
  violation on the way.

Screenshots go to ``test-artifacts/dashboard/`` (gitignored).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from chain.crypto import address_to_text
from chain.jobspec import JobSpec
from chain.train.bodies import ClaimLoss, PostJob, RevealModel, model_commitment
from chain.types import Hash32
from chain.verifiers.bodies import VerifierJoin
from client.api.http_client import ApiClient
from client.devnet.network import NetworkLayout
from client.devnet.processes import down
from tests.client.browser import headless_page, require_browser
from tests.client.dashboard_driver import Driver, load_keys
from tests.framework.devnet_up import up_on_free_ports
from tests.ledger.harness import job_spec

ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts" / "dashboard"

sync_api = require_browser()  # skips here, never under CI


VOTERS = ("node0", "alice", "bob", "dave")


@contextlib.contextmanager
def devnet(root: Path) -> Iterator[NetworkLayout]:
    layout = up_on_free_ports(root, validators=1, workers=0,
                              users={"submitter": 10_000, "alice": 100, "bob": 100,
                                     "carol": 100, "dave": 100},
                              timeout=60)
    try:
        yield layout
    finally:
        down(root)


def test_dashboard_follows_a_job_from_first_claim_to_verdict(tmp_path: Path) -> None:
    started = time.monotonic()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with devnet(tmp_path / "net") as layout:
        node = layout.nodes[0]
        client = ApiClient(node.api_url)
        keys = load_keys(layout)
        drive = Driver(client, keys)
        for name in VOTERS:  # [VOTE-ELIGIBLE.2] voters are the members that opted in
            drive.send(name, VerifierJoin())
        addr = {name: _text(k.address) for name, k in keys.items()}
        models = {}
        for name in ("alice", "carol"):
            path = tmp_path / f"{name}-model.bin"
            path.write_bytes(os.urandom(96 * 1024))
            models[name] = (path, bytes.fromhex(client.upload_blob(path)["blob"]))

        with headless_page(width=1280, height=900) as (page, problems):
            try:
                _watch_the_job(page, drive, node.api_url, addr, models)
                page.goto(node.api_url + "/#/accounts")
                sync_api.expect(page).to_have_title("LearningChain node")
                banned = page.locator(f"[data-testid=member-row][data-address='{addr['carol']}']")
                banned.get_by_test_id("banned").wait_for()
                page.screenshot(path=str(ARTIFACTS / "accounts.png"), full_page=True)
                page.goto(node.api_url + "/#/blocks")
                page.get_by_test_id("tx-row").first.get_by_role("link").first.click()
                page.get_by_test_id("block-detail").wait_for()
                page.get_by_test_id("tx-row").first.wait_for()
                page.goto(node.api_url + "/#/")
                page.get_by_test_id("node-address").wait_for()
                assert page.get_by_test_id("node-address").inner_text() == node.address
                page.get_by_test_id("validator-row").first.wait_for()
                page.screenshot(path=str(ARTIFACTS / "graph.png"), full_page=True)
            finally:
                with contextlib.suppress(Exception):
                    page.screenshot(path=str(ARTIFACTS / "last.png"), full_page=True)
        assert problems == [], problems
    print(f"dashboard browser test: {time.monotonic() - started:.1f} s")


def _watch_the_job(page: Any, drive: Driver, base_url: str, addr: dict[str, str],
                   models: dict[str, tuple[Path, bytes]]) -> None:
    client = drive.client
    page.goto(base_url + "/")
    page.get_by_test_id("node-height").wait_for()
    live = page.get_by_test_id("live")
    sync_api.expect(live).to_have_attribute("data-state", "live")

    now = int(client.status()["time_ms"])
    spec: JobSpec = dataclasses.replace(
        job_spec(bounty=120, expiry_ms=now + 12_000, voter_reward=8, window_ms=10_000,
                 tolerance=0.01),
        image_ref="learningchain/job-digits-mlp:latest")  # what `job build` tags
    job_hash = drive.send("submitter", PostJob(spec))
    job_id = job_hash.hex()
    job = Hash32(job_hash)

    # The job shows up in the list; its page opens from there.
    page.goto(base_url + "/#/jobs")
    row = page.locator(f"[data-testid=job-row][data-job-id='{job_id}']")
    row.wait_for()
    row.get_by_role("link").first.click()
    page.wait_for_url(f"**/#/jobs/{job_id}")
    sync_api.expect(page.get_by_test_id("job-status")).to_have_text("open")
    sync_api.expect(page).to_have_title("digits-mlp · job · LearningChain")
    sync_api.expect(page.get_by_test_id("job-name")).to_have_text("digits-mlp")
    sync_api.expect(page.get_by_test_id("job-bounty")).to_contain_text("120")
    sync_api.expect(page.get_by_test_id("leaderboard-row")).to_have_count(0)

    # Claims arrive: the leaderboard and the plot follow, live.
    salts = {name: os.urandom(32) for name in models}

    def claim(name: str, loss: float) -> None:
        commitment = model_commitment(job, drive.keys[name].address, models[name][1],
                                      salts[name])
        drive.send(name, ClaimLoss(job, loss, commitment))

    claim("alice", 0.5)
    alice_row = page.locator(f"[data-testid=leaderboard-row][data-claimer='{addr['alice']}']")
    sync_api.expect(alice_row.get_by_test_id("leaderboard-loss")).to_have_text("0.5")
    sync_api.expect(page.get_by_test_id("loss-point")).to_have_count(1)
    claim("alice", 0.4)
    claim("carol", 0.1)
    drive.send("bob", ClaimLoss(job, 0.45, Hash32(os.urandom(32))))  # never needs a turn
    sync_api.expect(page.get_by_test_id("leaderboard-row")).to_have_count(3)
    sync_api.expect(page.get_by_test_id("loss-point")).to_have_count(4)
    sync_api.expect(alice_row.get_by_test_id("leaderboard-loss")).to_have_text("0.4")
    sync_api.expect(page.get_by_test_id("best-line")).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "job-open.png"), full_page=True)

    # Claims close: carol, the best claim, gets the first turn; she is voted a cheat.
    drive.wait_job(job_id, lambda j: j["status"] == "reveal", timeout=40)
    sync_api.expect(page.get_by_test_id("turn")).to_have_attribute("data-phase", "reveal")
    drive.send("carol", RevealModel(job, Hash32(models["carol"][1]), salts["carol"]))
    voters = ["node0", "alice", "bob", "dave"]
    sync_api.expect(page.get_by_test_id("turn")).to_have_attribute("data-phase", "vote_commit")
    drive.vote(job, "carol", voters, valid=False, measured=0.93, own=(True, 0.1))  # insists
    verdict = page.locator(f"[data-testid=verdict-row][data-claimer='{addr['carol']}']")
    sync_api.expect(verdict).to_have_attribute("data-outcome", "cheat")
    sync_api.expect(verdict.get_by_test_id("slashed")).to_contain_text("banned")
    carol_row = page.locator(f"[data-testid=leaderboard-row][data-claimer='{addr['carol']}']")
    sync_api.expect(carol_row.get_by_test_id("banned")).to_be_visible()
    sync_api.expect(page.locator("[data-testid=loss-point].cheat")).to_have_count(1)
    sync_api.expect(page.get_by_test_id("best-honest-line")).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "job-cheat.png"), full_page=True)

    # Alice's turn: she reveals the real model and the members verify it.
    drive.wait_job(job_id, lambda j: j["status"] == "reveal"
                   and j["turn"]["claimer"] == addr["alice"])
    drive.send("alice", RevealModel(job, Hash32(models["alice"][1]), salts["alice"]))
    drive.vote(job, "alice", ["node0", "bob", "dave"], valid=True, measured=0.4,
               own=(True, 0.4))
    sync_api.expect(page.get_by_test_id("job-status")).to_have_text("paid")
    sync_api.expect(page.get_by_test_id("winner-address")).to_have_attribute(
        "title", addr["alice"])
    alice_verdict = page.locator(f"[data-testid=verdict-row][data-claimer='{addr['alice']}']")
    sync_api.expect(alice_verdict).to_have_attribute("data-outcome", "valid")
    link = page.get_by_test_id("model-link")
    model_hash = models["alice"][1].hex()
    sync_api.expect(link).to_have_attribute("href", f"/api/v1/blobs/{model_hash}")
    served = page.request.get(base_url + link.get_attribute("href"))
    assert served.ok and served.body() == models["alice"][0].read_bytes()
    assert page.get_by_test_id("loss-point").count() == 4
    # Settled: the claim that never had a turn says so, not "waiting".
    bob_row = page.locator(f"[data-testid=leaderboard-row][data-claimer='{addr['bob']}']")
    sync_api.expect(bob_row).to_have_attribute("data-final-state", "outranked")
    sync_api.expect(bob_row.get_by_test_id("claim-state")).to_have_text("lost")
    sync_api.expect(alice_row.get_by_test_id("claim-state")).to_have_text("verified")
    page.screenshot(path=str(ARTIFACTS / "job-paid.png"), full_page=True)
    shutil.copyfile(ARTIFACTS / "job-paid.png", ARTIFACTS / "dashboard.png")


def _text(address: bytes) -> str:
    return address_to_text(address)
