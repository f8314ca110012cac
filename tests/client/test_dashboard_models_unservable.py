"""The dashboard's Models pages show whether a model still serves [API-PREDICT.1-2], in a
real headless Chromium over a real solo node (as ``test_dashboard_models.py``): two models
deployed, one closed by an agreed "does not load" answer [PRED-UNLOADABLE.3]. The list and
the model's page say ``serving`` for the other and ``unservable`` with a link to the request
that closed it for this one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import playwright.sync_api as sync_api
import pytest

from chain.content import blob_id_of_bytes
from chain.predict.answer import answer_commitment
from chain.predict.bodies import PredictCommit, PredictReveal, RequestPrediction
from chain.predict.io import UNLOADABLE_BLOB, output_hash
from chain.predict.request import PredictionRequest
from chain.types import Amount, Hash32
from tests.client.browser import headless_page, require_browser
from tests.client.test_api_support import ApiThread
from tests.client.test_holdout_api_dashboard import DashboardThread
from tests.client.test_models_api_support import deploy_body, offer, paid_job, step
from tests.predict.ledger_story import INPUT_BLOB, ROWS, fixed

require_browser()  # skip without a browser, never under CI


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[ApiThread]:
    with DashboardThread(tmp_path, validators=1, block_interval=0.2) as api:
        yield api


async def _story(api: ApiThread) -> tuple[bytes, bytes, bytes]:
    """The closed model's id, the request that closed it, the serving model's id."""
    node, keys = api.node, api.keys
    assert node is not None
    closed = await paid_job(node, keys)
    serving = await paid_job(node, keys, model_hash=fixed("another model"))
    await step(node, keys, ("submitter", deploy_body(closed)),
               ("submitter", deploy_body(serving, model_hash=fixed("another model"))))
    await offer(node, keys)
    req = PredictionRequest(Hash32(closed), Hash32(blob_id_of_bytes(INPUT_BLOB)), ROWS,
                            Amount(1_000), 3, "labels", 0, 60_000, 60_000)
    (request_id,) = await step(node, keys, ("alice", RequestPrediction(req)))
    for _ in range(4):  # the lottery draws a few blocks after inclusion [PRED-LOTTERY.1]
        rec = node.state.get("prediction", request_id)
        if rec.executors:
            break
        await step(node, keys)
    names = {k.address: n for n, k in keys.items()}
    drawn = [names[a] for a in rec.executors]
    unloadable = output_hash(UNLOADABLE_BLOB)
    await step(node, keys, *((n, PredictCommit(Hash32(request_id), answer_commitment(
        request_id, keys[n].address, unloadable, fixed(n)))) for n in drawn))
    await step(node, keys, *((n, PredictReveal(Hash32(request_id), unloadable, fixed(n)))
                             for n in drawn))
    assert node.state.get("model", closed).unservable_by == request_id
    return closed, request_id, serving


def test_models_pages_show_an_unservable_model(chain: ApiThread) -> None:
    """[API-PREDICT.1] [API-PREDICT.2] [PRED-UNLOADABLE.3] the Status column and fact."""
    closed, request_id, serving = chain.call(_story(chain))
    with headless_page(width=1280, height=1000) as (page, problems):
        page.goto(f"{chain.url}/#/models")
        sync_api.expect(page.get_by_test_id("model-row")).to_have_count(2)
        rows = dict(page.evaluate("""() => [...document.querySelectorAll(
            '[data-testid=model-row]')].map((r) => { const s = r.querySelector(
            '[data-testid=model-servable]'); const a = s.querySelector('a');
            return [r.dataset.model, [s.dataset.servable, s.textContent,
                                      a ? a.title : null]]; })"""))
        assert rows[serving.hex()] == ["yes", "serving", None]
        assert rows[closed.hex()][0] == "no" and rows[closed.hex()][2] == request_id.hex()
        assert rows[closed.hex()][1].startswith("unservable by ")
        page.goto(f"{chain.url}/#/models/{closed.hex()}")
        # scoped to the model page: until the router swaps pages, the list's badges exist too
        status = page.locator(f'[data-testid=model-page][data-model="{closed.hex()}"]') \
            .get_by_test_id("model-servable")
        sync_api.expect(status).to_have_attribute("data-servable", "no")
        status.locator("a").click()
        sync_api.expect(page.get_by_test_id("prediction-status")).to_have_text("agreed")
        assert request_id.hex()[:10] in page.get_by_test_id("prediction-page").inner_text()
    assert not problems, problems
