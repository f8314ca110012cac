"""The dashboard's federated page marks a banned participant's reward burned [FED-END.4]
[API-FED.3], in a real headless Chromium over a real solo node: a federated job driven
through real transactions (tests/client/test_fed_api_support.py's driver) in which a
participant drawn as aggregator posts a wrong model, is voted down and banned, and its
share of the payout is burned."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import playwright.sync_api as sync_api
import pytest

from chain.crypto import PrivateKey, address_to_text
from chain.federated.blobs import ModelBlob
from chain.federated.open.reads import aggregate_body, part_body, vote_bodies
from chain.federated.open.records import FedPhase
from chain.federated.spec import FEDERATED_V1
from chain.train.bodies import PostJob
from client.api.http_client import ApiClient
from tests.client.api.test_api_support import ApiThread
from tests.client.browser import headless_page, require_browser
from tests.client.test_fed_api_support import PARTICIPANTS, FedDriver
from tests.client.test_holdout_api_dashboard import DashboardThread
from tests.client.test_models_api_support import step
from tests.federated.fed_ledger_story import SCALE, fed_spec, holdout, salt_of
from tests.framework.solo import SoloNode
from tests.ledger.harness import job_spec

require_browser()  # skip without a browser, never under CI

TURNS = 5
"""Aggregator draws allowed in the round (the chain's most). The story lets silent ones pass
until a participant is drawn; a drawn address is not drawn again in the round, and the
candidates besides the three participants are v0, dave and erin (every member verifies, the
owner is never drawn), so a participant is drawn by the 4th attempt and the honest aggregate
still has the 5th."""


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[ApiThread]:
    with DashboardThread(tmp_path, validators=1, block_interval=0.2) as api:
        yield api


async def banned_participant_story(node: SoloNode, keys: dict[str, PrivateKey]) -> str:
    """One round: the first participant drawn as aggregator posts a wrong model, every voter
    says invalid (it is banned [FED-ROUND.5]); the next aggregate is honest and accepted;
    the end ballot; the payout burns the banned participant's share. Returns its name."""
    d = FedDriver(node, keys)
    common = job_spec(bounty=300, expiry_ms=node.now_ms() + 60_000, voter_reward=5,
                      max_turns=TURNS, window_ms=5_000)
    spec = replace(common, kind=FEDERATED_V1,
                   federated=fed_spec(rounds=1, holdout=holdout(deposit=5 * TURNS + 1)))
    (d.run.job_id,) = await step(node, keys, ("submitter", PostJob(spec)))
    await step(node, keys)
    await step(node, keys)
    await step(node, keys, ("submitter", part_body(d.run.job_id, "public", b"\x31" * 32,
                                                   1000)))
    await d.commit()
    await d.reveal()
    while d.names[d.fed.aggregator] not in PARTICIPANTS:
        assert d.fed.phase == FedPhase.AGGREGATE, d.fed.phase
        await d.to_deadline()  # silent: the next aggregator is drawn
    fed = d.fed
    cheat = d.names[fed.aggregator]
    wrong = ModelBlob(SCALE, (9, 9, 9, 9)).to_bytes()
    weights = {keys[n].address: 1 << 15 for n in PARTICIPANTS}
    await step(node, keys, (cheat, aggregate_body(d.run.job_id, 1, fed.attempt, wrong,
                                                  weights)))
    made = {n: vote_bodies(d.run.job_id, 1, fed.attempt, keys[n].address, False,
                           salt=salt_of("invalid", n))
            for n in (d.names[v] for v in d.fed.voters)}
    await step(node, keys, *((n, b.commit) for n, b in made.items()))
    await d.to_deadline()
    await step(node, keys, *((n, b.reveal) for n, b in made.items()))
    await d.to_deadline()
    assert node.state.account(keys[cheat].address).banned
    await d.aggregate_and_vote()
    await d.end()
    return cheat


def test_federated_page_marks_the_banned_participants_reward_burned(chain: ApiThread) -> None:
    """[FED-END.4] [API-FED.3] [FED-ROUND.5] The payout table's row of the banned
    participant says its share was burned (``data-burned`` true, a "burned: banned" badge),
    as the API's ``burned`` says; the other participants' rows do not; the amounts are the
    API's."""
    assert chain.node is not None
    cheat = chain.call(banned_participant_story(chain.node, chain.keys))
    job = ApiClient(chain.url).federated_jobs()["jobs"][0]["job_id"]
    fed = ApiClient(chain.url).federated_job(job)
    cheat_text = address_to_text(chain.keys[cheat].address)
    rows = {p["address"]: p for p in fed["payout"]["paid"]}
    assert rows[cheat_text]["burned"] is True and rows[cheat_text]["amount"] > 0
    assert [a for a, p in rows.items() if p["burned"]] == [cheat_text]
    with headless_page(width=1280, height=1200) as (page, problems):
        page.goto(f"{chain.url}/#/federated/{job}")
        sync_api.expect(page.get_by_test_id("fed-paid-row")).to_have_count(len(rows))
        view = page.evaluate("""() => [...document.querySelectorAll(
            '[data-testid=fed-paid-row]')].map((r) => [r.dataset.address, r.dataset.amount,
            r.dataset.burned, !!r.querySelector('[data-testid=fed-paid-burned]'),
            r.textContent])""")
        assert {a: (amount, burned, badge) for a, amount, burned, badge, _ in view} == {
            a: (str(p["amount"]), "true" if p["burned"] else "false", p["burned"])
            for a, p in rows.items()}
        assert "burned: banned" in next(t for a, *_, t in view if a == cheat_text)
    assert not problems, problems
