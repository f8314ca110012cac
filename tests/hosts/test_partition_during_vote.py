"""A verifier cut off for 30 s while the vote is under way, then healed (issue 31 §6).

The hosts and job of test_job_on_hosts.py (4 validators on 4 hosts across a lossy WAN,
w2 behind NAT trains, v0, w1 and w3 verify). As soon as node0 sees the job in
``vote_commit``, w3 is cut off from every other host for 30 s (packets dropped, live
connections stall, as a real cut). The three others keep a 3-of-4 quorum and commit on;
w3's vote waits in its own mempool. After the heal it catches up, its vote commitment and
reveal land inside the windows, and the job ends the same on every host: paid to the
NATted worker, every eligible voter counted (no no-show, so nobody loses a bond
[VOTE-NOSHOW.1]), credits conserved, one state root.

The vote windows are widened to hold the cut and a catch-up: a verifier that stays cut
off past a window is a no-show by the rules, and that is not what this scenario asks.
Slow (about 4 minutes): ``make test-slow``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from sandbox.base_image import ensure_base_image
from sandbox.engine import connect
from tests.client.test_two_engines_graph import wait_settled
from tests.framework.job_windows import job_log_lines, measure_attempt, windows
from tests.framework.seed import rng
from tests.hosts.graph import HostGraph
from tests.hosts.template_job import (
    BOUNTY,
    CONSENSUS,
    TRAINER,
    USERS,
    WORKER_SETTINGS,
    add_job_hosts,
    post_job,
    template_job,
)
from tests.hosts.testbed import TestBed

pytestmark = [pytest.mark.docker, pytest.mark.serial, pytest.mark.slow]
log = logging.getLogger(__name__)
PARTITION_S = 30.0
CUT = 3
"""w3: a verifier, not the trainer, and not node0 (the API this test reads)."""
CATCH_UP_S = 60
"""Room in each vote window after the heal for the cut node to sync and send its vote."""


def test_a_verifier_cut_off_during_the_vote_still_votes_and_nobody_is_slashed(
        lc_seed: int, tmp_path: Path) -> None:
    log.info("seed %d", lc_seed)
    machine = connect()
    ensure_base_image(machine, log=lambda _m: None)
    with TestBed(seed=lc_seed) as bed:
        hosts = add_job_hosts(bed, machine, rng("links"))
        template_job(tmp_path / "digits")
        graph = HostGraph.create(bed, tmp_path / "net", hosts, workers=4, users=USERS,
                                 consensus=CONSENSUS, worker_settings=WORKER_SETTINGS)
        graph.start_all(timeout=120)
        api, cut = graph.nodes[0].api, graph.nodes[CUT]
        cut_address = cut.layout.address
        balance_before = int(api.account(cut_address)["balance"])
        supply_before = api.supply()
        measured = windows(measure_attempt(tmp_path / "digits"))
        job_windows = dataclasses.replace(
            measured, commit_s=max(measured.commit_s, int(PARTITION_S) + CATCH_UP_S),
            vote_reveal_s=max(measured.vote_reveal_s, int(PARTITION_S) + CATCH_UP_S))
        log.info("job windows: %s", job_windows)
        try:
            job_id = str(post_job(api, graph.users["submitter"], tmp_path / "digits",
                                  job_windows)["job_id"])
            _wait_status(api, job_id, "vote_commit", job_windows.settle_s())
            log.info("vote under way at height %d: cutting %s (%s) off for %.0f s",
                     graph.nodes[0].height(), cut.name, cut.host.name, PARTITION_S)
            bed.isolate(cut.host)
            time.sleep(PARTITION_S)
            bed.heal_all()
            log.info("healed; heights %s", graph.heights())
            job = wait_settled(api, job_id, job_windows.settle_s())
        except BaseException:
            for node in graph.nodes:
                print(f"--- {node.name} on {node.host.name} ---\n{node.log_tail(80)}")
            raise
        assert job["status"] == "paid", (job, job_log_lines(graph.layout, job_id))
        trainer = graph.nodes[TRAINER].layout.address
        assert job["winner"] == trainer and job["paid"] == BOUNTY, job
        (verdict,) = job["verdicts"]
        assert verdict["outcome"] == "valid", verdict
        assert verdict["valid_votes"] + verdict["invalid_votes"] == verdict["eligible"], (
            "a no-show among the voters", verdict)
        assert verdict["invalid_votes"] == 0, verdict
        graph.wait_height(max(graph.heights().values()) + 1, timeout=60)
        for node in graph.nodes:  # the same outcome everywhere, the cut host included
            other = node.api.job(job_id)
            assert (other["status"], other["winner"], other["verdicts"]) == (
                job["status"], job["winner"], job["verdicts"]), node.name
        assert int(api.account(cut_address)["balance"]) >= balance_before  # not slashed
        supply = api.supply()
        assert supply["conserved"] and supply["supply"] == supply_before["supply"], supply
        height, root = graph.same_state()
        log.info("paid; %d of %d eligible voted valid; height %d, state root %s on all 4",
                 verdict["valid_votes"], verdict["eligible"], height, root[:16])
        assert set(graph.stop_all().values()) == {0}
    machine.close()


def _wait_status(api: Any, job_id: str, status: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while (job := api.job(job_id))["status"] != status:
        assert not job["settled"], f"job settled {job['status']} before {status}: {job}"
        assert time.monotonic() < deadline, f"no {status} after {timeout_s:.0f} s: {job}"
        time.sleep(0.2)
