"""The dashboard's worker panel shows the live progress of its training run [API-PROGRESS.1].

One validator process that runs a worker (client.devnet.processes), the template job
(train/v2, paced at 1 s per epoch) submitted through the CLI, and the node's own
dashboard in Debian's chromium (playwright, nothing downloaded): the panel's progress
bar and its text show the fraction and step of the run's progress file, and they rise.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from pathlib import Path

import pytest

from client.devnet.processes import down
from sandbox.job_template import init_job
from tests.client.browser import headless_page
from tests.client.worker.test_worker_resume_sigkill import SEARCH_SPACE, cli
from tests.framework.devnet_up import up_on_free_ports
from tests.framework.template_v2 import make_v2

pytestmark = pytest.mark.docker
TEXT = re.compile(r"(\d+)%, step (\d+), train_loss ")


def test_dashboard_worker_panel_shows_rising_training_progress(tmp_path: Path) -> None:
    """[API-PROGRESS.1] [JOB-PROGRESS.4] The worker panel's <progress> value and its
    'N%, step S, train_loss L' text follow the run: two readings, the second further."""
    root = tmp_path / "graph"
    trainer = {"max_attempts": 1, "min_time_left_s": 5, "max_memory_mb": 2048,
               "max_disk_mb": 128, "max_time_s": 120}
    layout = up_on_free_ports(root, validators=1, workers=1,
                              worker_settings={0: trainer}, users={"submitter": 5_000},
                              consensus={"commit_ms": 100}, timeout=60)
    node = layout.nodes[0]
    try:
        job_dir = tmp_path / "job"
        init_job(job_dir, name="pytest-progress-digits")
        make_v2(job_dir)
        toml = (job_dir / "job.toml").read_text()
        (job_dir / "job.toml").write_text(toml[:toml.index("[[search_space]]")] + SEARCH_SPACE)
        submitter = next(u for u in layout.users if u.name == "submitter")
        posted = cli("job", "submit", str(job_dir), "--bounty", "200", "--expires-in", "90s",
                     "--key", str(submitter.key_file),
                     "--passphrase-file", str(submitter.passphrase_file), "--json",
                     env={"LC_NODE": node.api_url})
        assert json.loads(posted.stdout)["job_id"]
        with headless_page(width=1280, height=900, timeout_ms=120_000,
                           console_errors=False) as (page, problems):
            page.goto(node.api_url + "/#/")
            readings: list[tuple[int, int, float]] = []
            deadline = time.monotonic() + 150
            while len({r[1] for r in readings}) < 2 and time.monotonic() < deadline:
                shown = page.get_by_test_id("worker-progress")
                with contextlib.suppress(Exception):
                    shown.wait_for(timeout=2_000)
                    # text and bar read in one go: two reads could straddle a redraw
                    text, value = shown.evaluate(
                        "el => [el.innerText, el.querySelector('progress')"
                        "?.getAttribute('value') ?? null]")
                    m = TEXT.search(text)
                    if m and value is not None:
                        readings.append((int(m[1]), int(m[2]), float(value)))
                time.sleep(0.5)
        steps = [r[1] for r in readings]
        assert len(set(steps)) >= 2 and steps == sorted(steps), readings
        assert all(pct == value for pct, _step, value in readings), readings
        assert problems == [], problems
    finally:
        down(root)
