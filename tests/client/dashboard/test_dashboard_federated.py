"""The dashboard's Federated pages in a real headless Chromium (as ``test_dashboard_models.py``)
over a real solo node [API-FED.1-3]: a federated job driven through real transactions to its
payout (tests/client/test_fed_api_support.py). The list shows its rounds and participants,
the job's page each round's participants with their trust weights and agreed accuracy, the
accuracy chart (inline SVG, one point per accepted round) and the payout. Values are read in
one evaluation each, so a redraw on a new block cannot split them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import playwright.sync_api as sync_api
import pytest

from chain.crypto import address_to_text
from client.api.http_client import ApiClient
from tests.client.api.test_api_support import ApiThread
from tests.client.browser import headless_page, require_browser
from tests.client.test_fed_api_support import ACCURACY, PARTICIPANTS, full_story
from tests.client.test_holdout_api_dashboard import DashboardThread

require_browser()  # skip without a browser, never under CI


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[ApiThread]:
    with DashboardThread(tmp_path, validators=1, block_interval=0.2) as api:
        yield api


def test_federated_pages_show_rounds_weights_accuracy_and_payout(chain: ApiThread) -> None:
    """[API-FED.1] the list's rounds done/total and participants; [API-FED.2] each round's
    verdict, participants with their trust weights and the agreed accuracy, drawn as the
    chart's points; [API-FED.3] the payout per participant as the API states it."""
    assert chain.node is not None
    run = chain.call(full_story(chain.node, chain.keys))
    job = run.job_id.hex()
    client = ApiClient(chain.url)
    assert [j["job_id"] for j in client.federated_jobs()["jobs"]] == [job]
    fed = client.federated_job(job)  # [API-FED.3] what the page must show
    paid = {p["address"]: str(p["amount"]) for p in fed["payout"]["paid"]}
    with headless_page(width=1280, height=1200) as (page, problems):
        page.goto(f"{chain.url}/#/")
        page.get_by_test_id("nav-federated").click()
        sync_api.expect(page.get_by_test_id("fed-row")).to_have_count(1)
        row = page.evaluate("""() => { const r = document.querySelector(
            '[data-testid=fed-row]'); return [r.dataset.job, r.dataset.status,
            r.querySelector('[data-testid=fed-rounds]').textContent,
            r.querySelector('[data-testid=fed-participants]').textContent]; }""")
        assert row == [job, "paid", "2 / 2", "3"]
        page.locator("[data-testid=fed-row] a").first.click()
        sync_api.expect(page.get_by_test_id("fed-round-row")).to_have_count(2)
        view = page.evaluate("""() => ({
            rounds: [...document.querySelectorAll('[data-testid=fed-round-row]')].map((r) =>
              [r.dataset.round, r.dataset.verdict,
               r.querySelector('[data-testid=fed-accuracy]').textContent,
               [...r.querySelectorAll('[data-testid=fed-part]')].map((p) =>
                 [p.dataset.address, p.dataset.weight])]),
            points: [...document.querySelectorAll('[data-testid=fed-acc-point]')].map((c) =>
              [c.dataset.round, c.dataset.accuracy, +c.getAttribute('cy')]),
            paid: [...document.querySelectorAll('[data-testid=fed-paid-row]')].map((r) =>
              [r.dataset.address, r.dataset.amount]),
            status: document.querySelector('[data-testid=fed-status]').textContent})""")
        assert view["status"] == "paid"
        for (rnd, verdict, acc, parts), n in zip(view["rounds"], (1, 2), strict=True):
            assert (rnd, verdict, acc) == (str(n), "accepted", f"{ACCURACY[n] / 1e4:.1f}%")
            want = {address_to_text(a): str(w) for a, w in run.weights[n].items()}
            assert dict(parts) == want and len(want) == len(PARTICIPANTS)
        assert [p[:2] for p in view["points"]] == [
            ["1", str(ACCURACY[1])], ["2", str(ACCURACY[2])]]
        assert view["points"][1][2] < view["points"][0][2]  # higher accuracy drawn higher
        assert dict(view["paid"]) == paid
        # the generic job page of a federated job points to its federated page
        page.goto(f"{chain.url}/#/jobs/{job}")
        page.get_by_test_id("federated-link").locator("a").click()
        sync_api.expect(page.get_by_test_id("fed-round-row")).to_have_count(2)
    assert not problems, problems
