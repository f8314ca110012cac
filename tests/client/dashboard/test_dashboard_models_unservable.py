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

from chain.predict.io import UNLOADABLE_BLOB, output_hash
from tests.client.api.test_api_support import ApiThread
from tests.client.browser import headless_page, require_browser
from tests.client.test_holdout_api_dashboard import DashboardThread
from tests.client.test_models_api_support import (
    commit_answers,
    deploy_body,
    drawn_request,
    labels_request,
    offer,
    paid_job,
    reveal_answers,
    step,
)
from tests.predict.ledger_story import fixed

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
    request_id, drawn = await drawn_request(node, keys, labels_request(closed))
    answers = dict.fromkeys(drawn, output_hash(UNLOADABLE_BLOB))
    await commit_answers(node, keys, request_id, answers)
    await reveal_answers(node, keys, request_id, answers)
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
