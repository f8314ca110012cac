"""The template job on the test bed's hosts: its hosts, its build, its post and its pay.

Why a module: tests/hosts/test_job_on_hosts.py tells the story with its checks, and
bench/hosts.py times the same story (``submit_to_paid_s``) against a graph on 127.0.0.1;
both build the same hosts, job and windows here, so the figure is the test's scenario.

The hosts (``add_job_hosts``): v0 on the machine's engine (it built the image) only
verifies; w1, w2 and w3 each run a Docker engine of their own holding only the canonical
base image: w1's clock is 4 s ahead, w2 sits behind a NAT router and is the one that
trains (``TRAINER``), w1 and w3 verify. The job (``template_job``) is ``job init``'s
template made train/v2 with a short training (see test_job_on_hosts.py for why v2).
"""

from __future__ import annotations

import json
import logging
import random
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from client.api.http_client import ApiClient
from client.devnet.network import NetworkLayout, UserLayout
from sandbox.base_image import BASE_TAG
from tests.client.test_two_engines_graph import cli, few_epochs, wait_settled
from tests.framework.dockerd import cached_image_tar
from tests.framework.job_windows import JobWindows, job_log_lines
from tests.framework.template_v2 import make_v2
from tests.hosts.testbed import Host, TestBed

log = logging.getLogger(__name__)
BOUNTY = 100
TRAINER = 2
"""The NATted worker: the only one that trains, so the story is the same for every seed."""
TRAIN = {"max_attempts": 1, "min_time_left_s": 5, "max_memory_mb": 1024, "max_disk_mb": 64,
         "max_time_s": 120}
VERIFY = {"max_attempts": 0}
WORKER_SETTINGS: dict[int, dict[str, Any]] = {0: VERIFY, 1: VERIFY, TRAINER: TRAIN,
                                              3: VERIFY}
"""``[worker]`` settings per node index: node2 trains, the three others verify."""
CONSENSUS = {"commit_ms": 100}
USERS = {"submitter": 5_000}


def add_job_hosts(bed: TestBed, machine: Any, links: random.Random) -> list[Host]:
    """v0, then w1 (+4 s), w2 (behind NAT) and w3 with engines of their own holding the
    base image (loaded from ``machine``, the machine's engine), every link between them a
    WAN one (50-150 ms round trip, 10 ms jitter, 1 % loss)."""
    started = time.monotonic()
    hosts = [bed.add_host("v0")]
    hosts += [bed.add_host(f"w{i}", engine=True, nat=i == TRAINER,
                           clock_offset_s=4.0 if i == 1 else 0.0) for i in (1, 2, 3)]
    load_base_image(machine, hosts, started)
    for (a, b), rtt in bed.set_wan_links(hosts, links).items():
        log.info("link %s-%s: %.0f ms round trip, 10 ms jitter, 1 %% loss", a, b, rtt)
    return hosts


def load_base_image(machine: Any, hosts: list[Host], started: float) -> None:
    """The canonical base image, saved once from ``machine`` (the machine's engine), loaded
    into every host's own engine at once: the same layer ids everywhere."""
    engines = [h.engine for h in hosts if h.engine is not None]
    cached_image_tar(machine, BASE_TAG)
    with ThreadPoolExecutor(len(engines)) as pool:
        list(pool.map(lambda e: e.load_from_host(machine, BASE_TAG), engines))
    log.info("%d engines started and holding the base image after %.0f s", len(engines),
             time.monotonic() - started)


def template_job(job_dir: Path, *, v3: bool = False) -> str:
    """``job init`` into ``job_dir`` with a short training (made train/v2 unless ``v3``:
    the template as it is, with its hidden test set), built on the machine's engine; the
    image id."""
    cli("job", "init", str(job_dir), env={})
    if not v3:
        make_v2(job_dir)
    few_epochs(job_dir)
    built = json.loads(cli("job", "build", str(job_dir), "--json", env={}))
    return str(built["image_id"])


def post_job(api: ApiClient, submitter: UserLayout, job_dir: Path,
             job_windows: JobWindows, *, max_turns: int = 1) -> dict[str, Any]:
    """``job submit`` of the built job through ``api`` with ``job_windows``: its JSON. A
    train/v3 job needs ``max_turns`` of at least its finalists [HOLDOUT-POST.1]."""
    posted: dict[str, Any] = json.loads(cli(
        "job", "submit", str(job_dir), "--bounty", str(BOUNTY), *job_windows.args(),
        "--quorum", "500", "--supermajority", "667", "--max-turns", str(max_turns),
        "--key", str(submitter.key_file), "--passphrase-file", str(submitter.passphrase_file),
        "--json", env={"LC_NODE": api.base_url}))
    return posted


def post_and_settle(api: ApiClient, submitter: UserLayout, layout: NetworkLayout,
                    job_dir: Path, image_id: str,
                    job_windows: JobWindows) -> tuple[str, dict[str, Any], float]:
    """Posts the built job through ``api`` (``job submit``) with ``job_windows`` and waits
    until it is paid; the job id, the job, and the seconds from running ``job submit`` to
    seeing it paid. Credits are conserved."""
    supply_before = api.supply()
    submitted_at = time.monotonic()
    posted = post_job(api, submitter, job_dir, job_windows)
    job_id = str(posted["job_id"])
    assert posted["image_by_layer"] is True and posted["image_id"] == image_id, posted
    job = wait_settled(api, job_id, job_windows.settle_s())
    seconds = time.monotonic() - submitted_at
    log.info("job %s settled %s %.0f s after job submit", job_id[:12], job["status"], seconds)
    assert job["status"] == "paid", (job, job_log_lines(layout, job_id))
    supply = api.supply()
    assert supply["conserved"] and supply["supply"] == supply_before["supply"], supply
    return job_id, job, seconds
