"""End to end, as ``make demo`` does it: real node processes, sockets, containers.

The cheater is voted out, banned and slashed; the honest best claim is paid;
escrow and payouts add up; a validator SIGKILLed during the job rejoins and
every node settles the job identically; the fetched model hashes to the
committed one; an identity with no credits cannot post until it has earned.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from client.devnet.demo import BOUNTY, CHEATER, run_demo

pytestmark = pytest.mark.docker


def test_demo_story_end_to_end(tmp_path: Path) -> None:
    result = run_demo(tmp_path / "demo", base_port=27500, timeout_s=600)
    layout, job = result.layout, result.job
    cheater = layout.nodes[CHEATER].address
    honest = {layout.nodes[0].address, layout.nodes[1].address}

    # A fresh identity with no credits was refused with the reason.
    assert "insufficient_balance" in result.refused_post

    # The cheater's claim ranked first, was judged a cheat, banned and slashed.
    outcomes = [(v["claimer"], v["outcome"]) for v in job["verdicts"]]
    assert (cheater, "cheat") in outcomes
    after = result.balances_after
    cheater_row = next(v for k, v in after.items() if k.startswith(f"node{CHEATER}"))
    assert cheater_row["banned"] and cheater_row["balance"] == 0

    # The honest best claim was verified and paid the bounty.
    assert job["status"] == "paid" and job["winner"] in honest and job["paid"] == BOUNTY
    assert outcomes[-1] == (job["winner"], "valid")
    assert job["escrow"] == 0

    # Credits: nothing created; exactly the cheater's balance was burned.
    slashed = result.balances_before[f"node{CHEATER} (cheater)"]["balance"]
    assert result.supply_before - result.supply_after == slashed
    submitter_paid = (result.balances_before["submitter"]["balance"]
                      - after["submitter"]["balance"])
    earned = sum(after[k]["balance"] - result.balances_before[k]["balance"]
                 for k in after if not k.startswith(f"node{CHEATER}") and k != "submitter")
    assert submitter_paid == earned >= BOUNTY  # bounty + voter rewards, rest refunded

    # SIGKILL + restart during the job; every node settled it the same way.
    assert result.killed_and_rejoined
    settled = {(j["status"], j["winner"], j["winner_model_hash"],
                tuple((v["claimer"], v["outcome"]) for v in j["verdicts"]))
               for j in result.jobs_by_node}
    assert len(settled) == 1 and len(result.jobs_by_node) == 4

    # The model the submitter fetched is the committed one, and it works.
    assert result.model_blob_ok
    assert result.holdout_accuracy is not None and result.holdout_accuracy > 0.8

    # The winner started with 0 credits; after computing for others it could post.
    assert result.second_job_by_earner
