"""The dashboard shows a train/v2 job's data blobs [JOB-DATA.1] (a real browser, as in
``test_dashboard_browser.py``): the job page's specification lists each role with its blob
id and size; a train/v1 job says its data are in the image."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from chain.jobspec import TRAIN_V2, DataRef
from chain.train.bodies import PostJob
from chain.types import Hash32
from client.api.http_client import ApiClient
from tests.client.browser import headless_page
from tests.client.dashboard.test_dashboard_browser import devnet, sync_api
from tests.client.dashboard_driver import Driver, load_keys
from tests.ledger.harness import job_spec


def test_job_data_1_the_job_page_lists_the_data_blobs(tmp_path: Path) -> None:
    """[JOB-DATA.1] role, blob id and size of every data blob on the job page; none for v1."""
    with devnet(tmp_path / "net") as layout:
        node = layout.nodes[0]
        client = ApiClient(node.api_url)
        drive = Driver(client, load_keys(layout))
        now = int(client.status()["time_ms"])
        base = job_spec(bounty=120, expiry_ms=now + 600_000)
        blobs = {"train": Hash32(b"\xaa" * 32), "valid": Hash32(b"\xbb" * 32)}
        v2 = dataclasses.replace(base, kind=TRAIN_V2, data=(
            ("train", DataRef(blobs["train"], 123_456)), ("valid", DataRef(blobs["valid"], 789))))
        v2_id = drive.send("submitter", PostJob(v2)).hex()
        v1_id = drive.send("submitter", PostJob(dataclasses.replace(base, bounty=121))).hex()
        assert client.job(v2_id)["spec"]["data"] == {
            "train": {"blob": "aa" * 32, "size": 123_456},
            "valid": {"blob": "bb" * 32, "size": 789}}
        with headless_page(width=1280, height=900, quiet_close=True) as (page, problems):
            page.goto(f"{node.api_url}/#/jobs/{v2_id}")
            page.locator("details[data-key=spec] summary").click()
            items = page.get_by_test_id("data-blobs").locator("li")
            sync_api.expect(items).to_have_count(2)
            first, second = items.nth(0).inner_text(), items.nth(1).inner_text()
            assert first.startswith("train") and "123,456 bytes" in first, first
            assert second.startswith("valid") and "789 bytes" in second, second
            hashes = page.get_by_test_id("data-blobs").locator("code.hash")
            assert hashes.nth(0).get_attribute("title") == "aa" * 32
            page.goto(f"{node.api_url}/#/jobs/{v1_id}")
            page.locator("details[data-key=spec] summary").click()
            sync_api.expect(page.locator("details[data-key=spec]")).to_contain_text(
                "in the image (train/v1)")
            sync_api.expect(page.get_by_test_id("data-blobs")).to_have_count(0)
        assert problems == [], problems
