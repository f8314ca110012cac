"""The dashboard under plain headless Chromium: a screenshot shows the page, not "Loading…".

``chromium --headless --screenshot=out.png URL`` (and ``--dump-dom``) capture the
page at its ``load`` event. The page used to draw its first view from the API
only after ``load``, so every such capture was the empty "Loading…" page; and
with ``--virtual-time-budget`` its long poll on ``/api/v1/wait``, always
pending, kept virtual time from advancing and Chromium never returned.
[DASH-LOAD.1]: ``load`` now waits for the first view
(``client.observe.dashboard.first_render``) and the long poll runs in a worker.

A one-validator graph runs as its own process (``client.devnet.processes.up``),
its node a worker too (with a ``min_bounty`` no job meets, so its worker panel
has something to say). A job is driven, with signed transactions, to a refund
for lack of votes. Chromium is run as a user would, one process per capture:

* the graph page: the node's address, the worker panel in words (no JSON);
* the job page: the job's name in the page title, the refund explained with the
  eligible voters that did not vote, and the claim that never had a turn shown
  as not judged;
* the PNGs are compared with a capture of the "Loading…" page itself, and go to
  ``test-artifacts/dashboard/`` (gitignored).
"""

from __future__ import annotations

import contextlib
import dataclasses
import html
import os
import re
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from chain.crypto import address_to_text
from chain.jobspec import JobSpec
from chain.train.bodies import (
    ClaimLoss,
    PostJob,
    RevealModel,
    VoteCommit,
    VoteReveal,
    model_commitment,
    vote_commitment,
)
from chain.types import Hash32
from chain.verifiers.bodies import VerifierJoin
from client.api.http_client import ApiClient
from client.devnet.network import NetworkLayout
from client.devnet.processes import down
from tests.client.dashboard_driver import Driver, load_keys
from tests.framework.devnet_up import up_on_free_ports
from tests.ledger.harness import job_spec

CHROMIUM = Path(os.environ.get("LC_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts" / "dashboard"
CAPTURE_TIMEOUT_S = 60

if not CHROMIUM.exists():
    if os.environ.get("CI"):
        raise RuntimeError(f"no browser at {CHROMIUM}: scripts/setup_system.sh installs chromium")
    pytest.skip(f"no browser at {CHROMIUM} (scripts/setup_system.sh installs chromium)",
                allow_module_level=True)


def chromium(url: str, *args: str) -> str:
    """One headless Chromium process, as a user runs it; its stdout."""
    sandbox = ["--no-sandbox"] if os.geteuid() == 0 else []  # root gets no user namespaces
    result = subprocess.run(
        [str(CHROMIUM), "--headless", *sandbox, "--disable-gpu", "--window-size=1280,900",
         "--hide-scrollbars", *args, url],
        capture_output=True, text=True, timeout=CAPTURE_TIMEOUT_S, check=False)
    assert result.returncode == 0, (url, args, result.returncode, result.stderr[-2000:])
    return result.stdout


def screenshot(url: str, path: Path, *args: str) -> int:
    path.unlink(missing_ok=True)
    chromium(url, f"--screenshot={path}", *args)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    return len(data)


def main_text(dom: str) -> str:
    """The text of the page's <main>, tags dropped."""
    match = re.search(r"<main[^>]*>(.*?)</main>", dom, re.S)
    assert match, dom[:2000]
    return html.unescape(re.sub(r"<[^>]+>", " ", match.group(1)))


def loading_page_size(base_url: str, tmp_path: Path) -> int:
    """The byte size of a capture of the "Loading…" page: the page as served, styled, with
    its scripts left out (what every capture showed before [DASH-LOAD.1])."""
    with urllib.request.urlopen(base_url + "/", timeout=10) as resp:
        page = resp.read().decode()
    page = re.sub(r"<script[^>]*></script>", "", page)
    page = page.replace('href="/', f'href="{base_url}/').replace('src="/', f'src="{base_url}/')
    assert "Loading…" in page
    path = tmp_path / "loading.html"
    path.write_text(page)
    return screenshot(path.as_uri(), ARTIFACTS / "headless-loading.png")


@contextlib.contextmanager
def devnet(root: Path) -> Iterator[NetworkLayout]:
    users = {"submitter": 10_000, "alice": 100, "bob": 100, "carol": 100, "dave": 100,
             "erin": 100}
    layout = up_on_free_ports(root, validators=1, workers=1, users=users,
                              worker_settings={0: {"min_bounty": 1_000_000}}, timeout=60)
    try:
        yield layout
    finally:
        down(root)


def refund_for_lack_of_votes(drive: Driver) -> str:
    """alice's claim gets its turn and reveals; of the verifiers bob, carol and dave only
    carol opens a vote (bob commits and never opens, dave sends nothing): no quorum, the
    job is refunded. erin's worse claim never gets a turn. Returns the job id."""
    client = drive.client
    for name in ("bob", "carol", "dave"):
        drive.send(name, VerifierJoin())
    now = int(client.status()["time_ms"])
    spec: JobSpec = dataclasses.replace(
        job_spec(bounty=50, expiry_ms=now + 6_000, voter_reward=2, window_ms=6_000),
        image_ref="learningchain/job-digits-mlp:latest", description="Digits, refunded")
    job = Hash32(drive.send("submitter", PostJob(spec)))
    model, salt = Hash32(os.urandom(32)), os.urandom(32)
    alice = drive.keys["alice"].address
    drive.send("alice", ClaimLoss(job, 0.25, model_commitment(job, alice, model, salt)))
    drive.send("erin", ClaimLoss(job, 0.5, Hash32(os.urandom(32))))
    drive.wait_job(job.hex(), lambda j: j["status"] == "reveal", timeout=40)
    drive.send("alice", RevealModel(job, model, salt))
    salts = {name: os.urandom(32) for name in ("bob", "carol")}
    for name in salts:
        drive.send(name, VoteCommit(job, alice, vote_commitment(
            job, alice, drive.keys[name].address, True, 0.25, salts[name])))
    drive.wait_job(job.hex(), lambda j: j["status"] == "vote_reveal", timeout=40)
    drive.send("carol", VoteReveal(job, alice, True, 0.25, salts["carol"]))
    drive.wait_job(job.hex(), lambda j: j["status"] == "refunded", timeout=40)
    return job.hex()


def test_headless_captures_show_the_rendered_dashboard(tmp_path: Path) -> None:
    """[DASH-LOAD.1] Plain headless captures show the rendered page, never "Loading…"."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with devnet(tmp_path / "net") as layout:
        node = layout.nodes[0]
        base = node.api_url
        loading = loading_page_size(base, tmp_path)

        # The graph page: drawn before `load`, so the plain capture shows it.
        size = screenshot(base + "/", ARTIFACTS / "headless-graph.png")
        assert size > 2 * loading, (size, loading)  # tables and text, not one line
        dom = chromium(base + "/", "--dump-dom")
        text = main_text(dom)
        assert "Loading…" not in text
        assert f'data-testid="node-address">{node.address}<' in dom
        panel = dom.split('data-testid="worker-panel"', 1)[1].split("</section>", 1)[0]
        words = html.unescape(re.sub(r"<[^>]+>", " ", panel))
        assert "running" in words and "Sent" in words and "budget" in words, words
        assert "{" not in words and '":' not in words, words  # words, not JSON

        # With a virtual-time budget, Chromium returns: no fetch of the page stays pending.
        budget = screenshot(base + "/", ARTIFACTS / "headless-graph-budget.png",
                            "--virtual-time-budget=3000")
        assert budget > 2 * loading, (budget, loading)

        # A refunded job: name in the title, the refund explained, the final claim states.
        drive = Driver(ApiClient(base), load_keys(layout))
        job_id = refund_for_lack_of_votes(drive)
        url = f"{base}/#/jobs/{job_id}"
        size = screenshot(url, ARTIFACTS / "headless-job-refunded.png")
        assert size > 2 * loading, (size, loading)
        dom = chromium(url, "--dump-dom")
        assert "<title>digits-mlp · job · LearningChain</title>" in dom
        text = main_text(dom)
        assert "Loading…" not in text and "Digits, refunded" in text
        assert 'data-reason="no_quorum"' in dom, text
        assert "Too few votes to decide" in text and "1 of" in text, text
        addresses = {name: address_to_text(drive.keys[name].address)
                     for name in ("bob", "carol", "dave", "erin")}
        non_voters = re.findall(r'data-testid="non-voter"[^>]*title="(lc1\w+)"', dom) + \
            re.findall(r'title="(lc1\w+)"[^>]*data-testid="non-voter"', dom)
        assert addresses["bob"] in non_voters, (non_voters, text)
        assert "committed a hidden vote, never opened it" in text
        assert addresses["carol"] not in non_voters
        # dave sent nothing: named when the API lists the eligible voters, else counted.
        assert addresses["dave"] in non_voters or \
            re.search(r"\d+ other eligible voters? sent no vote at all", text), text
        row = re.search(rf'<tr[^>]*data-claimer="{addresses["erin"]}"[^>]*>', dom)
        assert row and 'data-final-state="not_judged"' in row.group(0), row
        assert "not judged" in text

        # The worker skipped the job (its bounty is below min_bounty): said in words.
        screenshot(base + "/", ARTIFACTS / "headless-graph-after-job.png")
        dom = chromium(base + "/", "--dump-dom")
        panel = dom.split('data-testid="worker-panel"', 1)[1].split("</section>", 1)[0]
        words = html.unescape(re.sub(r"<[^>]+>", " ", panel))
        assert "Jobs skipped (1)" in words and f"job {job_id[:8]}" in words, words
        assert "{" not in words and '":' not in words, words

