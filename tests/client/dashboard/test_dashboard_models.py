"""The dashboard's Models pages in a real headless Chromium (as ``test_dashboard_browser.py``)
over a real solo node [API-PREDICT.1-3]: a paid job's model deployed, one request settled
with an agreed answer (one executor outvoted) and one still drawing. The Models list shows
the model and its counts, the model's page its two requests with their status, and the
request's page the drawn executors, who agreed and what each was paid. Values are read in
one evaluation each, so a redraw on a new block cannot split them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import playwright.sync_api as sync_api
import pytest

from chain.crypto import address_to_text
from chain.predict.bodies import RequestPrediction
from chain.predict.io import labels_blob, output_hash
from chain.predict.request import PredictionRequest
from chain.types import Amount
from tests.client.api.test_api_support import ApiThread
from tests.client.browser import headless_page, require_browser
from tests.client.test_holdout_api_dashboard import DashboardThread
from tests.client.test_models_api_support import (
    commit_answers,
    deploy_body,
    labels_request,
    offer,
    paid_job,
    reveal_answers,
    step,
)
from tests.predict.ledger_story import ROWS

require_browser()  # skip without a browser, never under CI

RIGHT = labels_blob([0, 2, 1, 1], 3)
WRONG = labels_blob([1, 1, 1, 1], 3)


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[ApiThread]:
    with DashboardThread(tmp_path, validators=1, block_interval=0.2) as api:
        yield api


async def _story(api: ApiThread) -> tuple[bytes, bytes, bytes, list[str]]:
    """The model id, the settled and the open request ids, the drawn executors' names."""
    node, keys = api.node, api.keys
    assert node is not None
    job_id = await paid_job(node, keys)
    await step(node, keys, ("submitter", deploy_body(job_id, royalty=100)))
    await offer(node, keys)
    req = labels_request(job_id)
    (settled,) = await step(node, keys, ("alice", RequestPrediction(req)))
    await step(node, keys)
    await step(node, keys)
    rec = node.state.get("prediction", settled)
    names = {k.address: n for n, k in keys.items()}
    drawn = [names[a] for a in rec.executors]
    answers = dict(zip(drawn, (RIGHT, RIGHT, WRONG), strict=True))
    hashes = {n: output_hash(b) for n, b in answers.items()}
    await commit_answers(node, keys, settled, hashes)
    await reveal_answers(node, keys, settled, hashes)
    cheap = PredictionRequest(req.model_id, req.input_blob, ROWS, Amount(100), 3, "labels", 0,
                              60_000, 60_000)  # carol's balance after her bond may be < 1000
    (open_id,) = await step(node, keys, ("carol", RequestPrediction(cheap)))
    return job_id, settled, open_id, drawn


def test_models_pages_show_models_requests_and_payouts(chain: ApiThread) -> None:
    """[API-PREDICT.1] list, [API-PREDICT.2] a model's requests and their status,
    [API-PREDICT.3] a request's executors, outcome and payouts."""
    job_id, settled, open_id, drawn = chain.call(_story(chain))
    liar = address_to_text(chain.keys[drawn[2]].address)
    with headless_page(width=1280, height=1000) as (page, problems):
        page.goto(f"{chain.url}/#/")
        page.get_by_test_id("nav-models").click()
        sync_api.expect(page.get_by_test_id("model-row")).to_have_count(1)
        row = page.evaluate("""() => { const r = document.querySelector(
            '[data-testid=model-row]'); return [r.dataset.model, r.querySelector(
            '[data-testid=model-requests]').textContent, r.textContent]; }""")
        assert row[0] == job_id.hex() and row[1] == "2"
        assert "3 classes (cat, dog, fish)" in row[2] and "10%" in row[2]
        assert "labels · csv or npy rows · encrypted rows: no" in row[2]  # [PRED-ACCEPTS.1]
        page.locator("[data-testid=model-row] a").first.click()
        sync_api.expect(page.get_by_test_id("request-row")).to_have_count(2)
        accepts = page.get_by_test_id("model-accepts")
        assert accepts.get_attribute("data-encrypted") == "false"
        assert "answers labels" in page.get_by_test_id("model-page").inner_text()
        rows = page.evaluate("""() => [...document.querySelectorAll(
            '[data-testid=request-row]')].map((r) => [r.dataset.request, r.dataset.status])""")
        status = dict(rows)  # the open one is drawn two blocks after it is included
        assert status[settled.hex()] == "agreed" and status[open_id.hex()] in (
            "drawing", "commit") and len(status) == 2
        assert "2 (1 open, 1 agreed" in page.get_by_test_id("model-counts").inner_text()
        page.locator(f"[data-request='{settled.hex()}'] a").first.click()
        sync_api.expect(page.get_by_test_id("executor-row")).to_have_count(3)
        view = page.evaluate("""() => ({
            status: document.querySelector('[data-testid=prediction-status]').textContent,
            rows: [...document.querySelectorAll('[data-testid=executor-row]')].map((r) =>
              [r.querySelector('a').title, [...r.cells].map((c) => c.textContent)])})""")
        assert view["status"] == "agreed"
        by_exec = {addr: cells for addr, cells in view["rows"]}
        assert by_exec[liar][3] == "disagreed" and by_exec[liar][4] == "—"
        paid = [cells for addr, cells in view["rows"] if addr != liar]
        assert [c[3] for c in paid] == ["agreed", "agreed"]
        assert all(c[4].replace("\u00a0", " ").startswith("450") for c in paid)
    assert not problems, problems
