"""End to end, as ``make demo`` does it: real node processes, sockets, containers.

The template job is a train/v3 job with a hidden test set. The cheater is voted
out, banned and slashed; node 1 trains on the public validation half (it overfits,
and claims honestly what it measures there); the finalists are judged on the hidden
half the submitter reveals after expiry, and the honest worker that generalises is
paid; the demo prints both leaderboards side by side and says the winner was chosen
on the hidden loss. Escrow and payouts add up; a validator SIGKILLed during the job
rejoins and every node settles the job identically; the fetched model hashes to the
committed one; an identity with no credits cannot post until it has earned.

Node 1 (the overfitting trainer) runs its worker on a private Docker engine, as a
machine of its own would: the job's image is not there, so it travels to node 1
as a blob over p2p and is loaded into that engine before node 1 trains and
votes. The other nodes share the machine's engine, which holds the image the
submitter built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from client.devnet.demo import BOUNTY, CHEATER, OVERFITTER, run_demo
from tests.framework.dockerd import PrivateDockerd
from tests.framework.ports import free_base_port

pytestmark = pytest.mark.docker

OWN_ENGINE = 1
"""The node whose worker has a Docker engine of its own."""


def test_demo_story_end_to_end(tmp_path: Path, private_dockerd: PrivateDockerd,
                               capsys: pytest.CaptureFixture[str]) -> None:
    """[NODE-ROLE.3] The nodes run with role ``worker`` and no worker key of their own:
    the claims, the cheat verdict (reached by the other nodes' votes) and the paid
    winner are under the nodes' own addresses, so each worker loop claimed, revealed
    and voted as its node's member. [HOLDOUT-REVEAL.1] [HOLDOUT-WINNER.1]
    [WORK-HOLDOUT.1] The template's hidden half decides: the overfitter is a finalist
    whose hidden loss is worse by more than the tie tolerance, the honest worker wins."""
    engine = private_dockerd.client()
    images_before = {image.id for image in engine.images.list()}
    result = run_demo(tmp_path / "demo", base_port=free_base_port(4), timeout_s=600,
                      env_by_node={OWN_ENGINE: {"DOCKER_HOST": private_dockerd.host}})
    layout, job = result.layout, result.job

    # The job's image travelled to node 1 as a blob and was loaded into its own engine.
    image_id = "sha256:" + job["spec"]["image_digest"]
    assert image_id not in images_before
    assert image_id in {image.id for image in engine.images.list()}
    own_log = (layout.nodes[OWN_ENGINE].directory / "node.log").read_text(errors="replace")
    assert f"loading image {image_id[:19]} into the engine" in own_log
    assert "fetching image blob" in own_log
    cheater = layout.nodes[CHEATER].address
    honest, overfitter = layout.nodes[0].address, layout.nodes[OVERFITTER].address

    # A fresh identity with no credits was refused with the reason.
    assert "insufficient_balance" in result.refused_post

    # The cheater's claim was at the top of the public board (first, or second behind the
    # overfitter's learnt-by-heart public loss), judged a cheat, banned and slashed.
    outcomes = [(v["claimer"], v["outcome"]) for v in job["verdicts"]]
    assert (cheater, "cheat") in outcomes[:2], outcomes
    after = result.balances_after
    cheater_row = next(v for k, v in after.items() if k.startswith(f"node{CHEATER}"))
    assert cheater_row["banned"] and cheater_row["balance"] == 0

    # The hidden half was revealed by the submitter after expiry and verified by the voters;
    # the two finalists (the overfitter and the honest worker, both valid on the public
    # half) were ranked on it and the honest worker, which generalises, was paid.
    assert "hidden part of job" in result.revealed and "revealed in block" in result.revealed
    holdout = job["holdout"]
    assert holdout["status"] == "verified" and holdout["winner_rule"] == "hidden_loss"
    assert job["status"] == "paid" and job["winner"] == honest and job["paid"] == BOUNTY
    assert sorted(outcomes) == sorted([(cheater, "cheat"), (honest, "valid"),
                                       (overfitter, "valid")]), outcomes
    assert job["escrow"] == 0
    hidden = {r["claimer"]: r for r in result.hidden_board}
    assert set(hidden) == {honest, overfitter}, result.hidden_board
    assert hidden[honest]["rank"] == 1 and hidden[honest]["winner"]
    tie = holdout["terms"]["tie_tolerance"]
    assert hidden[overfitter]["hidden_loss"] > hidden[honest]["hidden_loss"] + tie
    best_rank: dict[str, int] = {}  # a worker that claims again has a row per claim
    for row in result.public_board:
        best_rank[row["claimer"]] = min(row["rank"], best_rank.get(row["claimer"], row["rank"]))
    assert set(best_rank) == {cheater, honest, overfitter} and best_rank[cheater] <= 2
    # The honest worker is never first on the public board (the cheater's lie is below it);
    # whether the overfitter's public loss also beats it depends on which of its attempts
    # memorised the public half best (one clean-clone run: 0.044 against the honest 0.038),
    # so the public order of those two is not asserted: the hidden loss decides either way.
    assert best_rank[honest] > best_rank[cheater], best_rank
    own_log = (layout.nodes[OVERFITTER].directory / "node.log").read_text(errors="replace")
    assert "OVERFITTING (demo)" in own_log
    # Printed: both leaderboards side by side, and the winner chosen on the hidden loss.
    printed = capsys.readouterr().out
    assert "public loss" in printed and "hidden loss" in printed
    board_rows = [line for line in printed.splitlines() if " | " in line]
    assert any("node0" in line and "<- winner" in line for line in board_rows), printed
    assert "winner: node0, chosen on the hidden loss" in printed

    # Credits: nothing created; exactly the cheater's balance and verifier bond were burned
    # [JOB-BAN.1]; what the others hold counts their bonds [VERIFY-JOIN.1].
    def holding(row: dict[str, Any]) -> int:
        return int(row["balance"]) + int(row.get("verifier_bond") or 0)

    held_before = holding(result.balances_before[f"node{CHEATER} (cheater)"])
    # (the deposit came back with the rest of the escrow: the hidden half was revealed)
    burned = result.supply_before - result.supply_after
    # When the overfitter's claim took turn #1, the cheater voted on it and was paid its
    # voter reward before its own turn banned it: the ban burned that too [JOB-BAN.1].
    turns_before_ban = [c for c, _ in outcomes].index(cheater)
    cheater_rewards = burned - held_before
    reward = job["spec"]["voting"]["voter_reward"]
    assert 0 <= cheater_rewards <= reward * turns_before_ban, (burned, held_before, outcomes)
    submitter_paid = (result.balances_before["submitter"]["balance"]
                      - after["submitter"]["balance"])
    earned = sum(holding(after[k]) - holding(result.balances_before[k])
                 for k in after if not k.startswith(f"node{CHEATER}") and k != "submitter")
    # bounty + voter rewards (the cheater's burned with it), the rest refunded
    assert submitter_paid == earned + cheater_rewards and earned >= BOUNTY

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
