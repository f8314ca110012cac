"""A train/v3 submitter's side on a real solo node: ``job submit`` commits the pool, posts,
waits for the split and publishes the public part; ``job holdout reveal`` names the hidden
part in the window after expiry (ledger.md §5b). Posted with a saved-image tar, no Docker.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chain.train.bodies import ClaimLoss
from chain.train.holdout.split import hidden_indices, public_indices
from chain.types import Hash32
from client.api.http_client import ApiClient
from sandbox.holdout_blob import open_part
from sandbox.holdout_pool import load_pool_secret
from tests.client.api.test_api_support import ApiThread
from tests.client.cli.test_cli_chain import key_file, run
from tests.client.cli.test_cli_job import saved_image, send
from tests.framework.wait import wait_until

POOL = 6
PERMILLE = 500
DEPOSIT = 7


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[ApiThread]:
    with ApiThread(tmp_path, validators=1, block_interval=0.1) as api:
        yield api


def v3_job_dir(tmp_path: Path, reveal_window: str = "10m") -> Path:
    """A train/v3 job folder: job.toml with ``[holdout]``, train data, a pool of 6 samples."""
    folder = tmp_path / "job"
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "train.csv").write_text("label,p0\n1,2\n" * 50)
    (folder / "pool").mkdir()
    for i in range(POOL):
        (folder / "pool" / f"shard-{i:02d}.csv").write_text(f"label,p0\n{i},{i * 3}\n")
    (folder / "job.toml").write_text(f"""
kind = "train/v3"
name = "digits-holdout"
description = "a hidden test set"
bounty = 40
expiry_s = 600
loss_tolerance = 1e-4

[entry_points]
train = ["/job/train"]
evaluate = ["/job/evaluate"]

[data]
train = "data/train.csv"

[holdout]
pool = "pool"
public_permille = {PERMILLE}
finalists = 2
deposit = {DEPOSIT}
reveal_window = "{reveal_window}"
tie_tolerance = 0.05

[limits]
memory_mb = 256
cpu_millis = 1000
time_s = 60
disk_mb = 16
model_mb = 4

[[search_space]]
name = "learning_rate"
kind = "log_uniform"
values = [0.0005, 0.05]
""")
    return folder


def submit(chain: ApiThread, tmp_path: Path, folder: Path, *extra: str) -> dict[str, Any]:
    tar, _ = saved_image(tmp_path)
    submitter = key_file(tmp_path, chain.keys["submitter"], "submitter")
    out = run(["job", "submit", str(folder), "--image-tar", str(tar), "--voter-reward", "2",
               *submitter, "--json", *extra], chain).stdout
    result: dict[str, Any] = json.loads(out)
    return result


def fetch_and_open(chain: ApiThread, tmp_path: Path, blob: str, size: int, job: dict[str, Any],
                   part: str) -> list[int]:
    """Download a part from the node and open it against the job's commitment."""
    h = job["holdout"]
    dest = tmp_path / f"{part}.tar"
    ApiClient(chain.url).download_blob(blob, dest)
    opened = open_part(dest, size, tmp_path / f"open-{part}", bytes.fromhex(h["terms"]["root"]),
                       POOL, PERMILLE, bytes.fromhex(h["seed"]), part)
    return list(opened.indices)


def test_submit_commits_the_pool_posts_v3_and_publishes_the_public_part(
        chain: ApiThread, tmp_path: Path) -> None:
    """[HOLDOUT-PUBLISH.1] [HOLDOUT-DEPOSIT.1] The spec's root is the saved secret's (0600);
    after the split the public part is on the node and opens the commitment."""
    folder = v3_job_dir(tmp_path)
    posted = submit(chain, tmp_path, folder, "--bounty", "40")
    secret_file = Path(posted["holdout"]["secret"])
    assert secret_file.parent == folder / ".learningchain" / "holdout"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    secret = load_pool_secret(secret_file)
    assert secret_file.name == secret.root.hex() + ".json" == posted["holdout"]["root"] + ".json"

    job = ApiClient(chain.url).job(posted["job_id"])
    h = job["holdout"]
    assert job["spec"]["kind"] == "train/v3" and list(job["spec"]["data"]) == ["train"]
    assert job["spec"]["holdout"] == h["terms"]
    assert h["terms"]["root"] == secret.root.hex() and h["terms"]["pool"] == POOL
    assert h["terms"]["deposit"] == DEPOSIT and h["terms"]["finalists"] == 2
    assert job["escrow"] == 40 + 2 * 3 + DEPOSIT == posted["escrow"]
    assert (h["public_count"], h["hidden_count"]) == (3, 3)
    assert h["split_height"] == job["posted_height"] + 2 and h["seed"] is not None
    assert h["status"] == "committed" and h["hidden"] is None and h["finalists"] == []
    published = posted["holdout"]["published"]
    assert h["public"] == {"blob": published["blob"], "size": published["size"]}
    indices = fetch_and_open(chain, tmp_path, published["blob"], published["size"], job,
                             "public")
    assert indices == list(public_indices(bytes.fromhex(h["seed"]), POOL, PERMILLE))


def test_submit_says_to_keep_the_secret_and_what_comes_next(chain: ApiThread,
                                                           tmp_path: Path) -> None:
    """The human output names the deposit in the escrow, the secret and the reveal duty."""
    tar, _ = saved_image(tmp_path)
    folder = v3_job_dir(tmp_path)
    submitter = key_file(tmp_path, chain.keys["submitter"], "submitter")
    text = run(["job", "submit", str(folder), "--image-tar", str(tar), "--voter-reward", "2",
                *submitter], chain).stdout
    assert f"escrow {40 + 6 + DEPOSIT} = bounty 40 + voter rewards (3 turns x 2) + holdout " \
           f"deposit {DEPOSIT}" in text
    assert "never share it" in text and ".learningchain/holdout/" in text
    assert "3 public, 3 hidden samples" in text and "published in block" in text
    assert "learningchain job holdout reveal" in text and "--key KEY" in text
    assert f"the deposit of {DEPOSIT} burns" in text


def test_reveal_is_refused_before_expiry_and_accepted_in_the_window(chain: ApiThread,
                                                                    tmp_path: Path) -> None:
    """[HOLDOUT-REVEAL.1] ``job holdout reveal``: too early while claims are open (with the
    times), not another member's to send, not without the secret; in the HOLDOUT window the
    hidden part goes up, opens the commitment, and the holdout is ``revealed``."""
    folder = v3_job_dir(tmp_path)
    posted = submit(chain, tmp_path, folder)
    job_id = posted["job_id"]
    client = ApiClient(chain.url)
    send(client, chain.keys["alice"], ClaimLoss(Hash32(bytes.fromhex(job_id)), 0.5,
                                                Hash32(os.urandom(32))))
    submitter = key_file(tmp_path, chain.keys["submitter"], "submitter")
    alice = key_file(tmp_path, chain.keys["alice"], "alice")
    here = ["--job-dir", str(folder)]

    early = run(["job", "holdout", "reveal", job_id, *here, *submitter], chain, code=1).output
    assert "too early" in early and "after expiry" in early and "Z (in " in early
    again = run(["job", "holdout", "publish", job_id, *here, *submitter], chain, code=1).output
    assert "already published" in again
    other = run(["job", "holdout", "reveal", job_id, *here, *alice], chain, code=1).output
    assert "is not the submitter" in other
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    lost = run(["job", "holdout", "reveal", job_id, "--job-dir", str(empty), *submitter], chain,
               code=1).output
    assert f"no pool secret for root {posted['holdout']['root']}" in lost

    expiry = int(client.job(job_id)["spec"]["expiry_ms"])
    chain.in_loop(lambda: chain.node.skip_to(expiry + 1))  # type: ignore[union-attr]
    job = wait_until(lambda: (j := client.job(job_id))["status"] == "holdout" and j,
                     what="the job enters status holdout")
    h = job["holdout"]
    assert h["reveal_deadline_ms"] == job["phase_deadline_ms"]
    assert h["reveal_deadline_ms"] - expiry >= 10 * 60_000 - 1
    assert "hidden part due" in run(["job", "list"], chain).stdout

    done = json.loads(run(["job", "holdout", "reveal", job_id, *here, *submitter, "--json"],
                          chain).stdout)
    job = client.job(job_id)
    h = job["holdout"]
    assert h["status"] == "revealed" and h["hidden"] == {"blob": done["blob"],
                                                         "size": done["size"]}
    assert job["status"] == "reveal" and job["turn"]["claimer"] == job["claims"][0]["claimer"]
    indices = fetch_and_open(chain, tmp_path, done["blob"], done["size"], job, "hidden")
    assert indices == list(hidden_indices(bytes.fromhex(h["seed"]), POOL, PERMILLE))
    twice = run(["job", "holdout", "reveal", job_id, *here, *submitter], chain, code=1).output
    assert "already revealed" in twice

    status = run(["job", "status", job_id], chain).stdout
    assert f"holdout    revealed: pool of {POOL} (3 public, 3 hidden)" in status
    assert f"hidden     blob {done['blob']}" in status and "public leaderboard" in status
    assert "hidden leaderboard (finalists; the hidden part is not verified" in status
    assert f"+ holdout deposit {DEPOSIT}" in status
    board = run(["job", "leaderboard", job_id], chain).stdout
    assert "public leaderboard" in board and "no finalists yet (holdout revealed)" in board
    assert json.loads(run(["job", "leaderboard", job_id, "--json"], chain).stdout)[
        "hidden_leaderboard"] == []


def test_status_shows_the_hidden_leaderboard_and_the_winner_rule(chain: ApiThread,
                                                                 tmp_path: Path) -> None:
    """[API-HOLDOUT.2] ``job status`` of a train/v3 job with verified finalists: both
    leaderboards, the tied group and the leader marked, the rule in words; a withheld hidden
    part says the deposit burned [HOLDOUT-FORFEIT.1]."""
    import dataclasses

    from chain.train.holdout.records import Finalist, HoldoutState, HoldoutStatus
    from chain.types import Address, Height
    from client.api.json_forms import job_json
    from client.cli.job.describe import describe_job

    posted = submit(chain, tmp_path, v3_job_dir(tmp_path))
    job_id = Hash32(bytes.fromhex(posted["job_id"]))
    job = chain.in_loop(lambda: chain.node.state.job(job_id))  # type: ignore[union-attr]
    assert job is not None
    a, b, c = (Address(bytes([n]) * 20) for n in (1, 2, 3))
    state = HoldoutState(status=HoldoutStatus.VERIFIED, finalists=(
        Finalist(a, 0.52, Height(9), 0), Finalist(b, 0.50, Height(10), 0),
        Finalist(c, 0.9, Height(8), 1)))
    text = "\n".join(describe_job(job_json(job, state), 0))
    assert "lowest hidden loss wins; within 0.05 of it counts as tied and the earlier " \
           "claim wins" in text
    rows = text.split("hidden leaderboard")[1].splitlines()[1:]
    assert rows[0].startswith("   1. 0.52  lc1") and rows[0].endswith("(tied, leading)")
    assert rows[1].startswith("   2. 0.5  lc1") and rows[1].endswith("(tied)")
    assert rows[2].startswith("   3. 0.9  lc1") and "(" not in rows[2]
    withheld = dataclasses.replace(state, status=HoldoutStatus.WITHHELD)
    text = "\n".join(describe_job(job_json(job, withheld), 0))
    assert f"deposit {DEPOSIT} burned: the hidden part was not revealed in the window" in text
    assert "the first finalist (public ranking) wins" in text


def test_unpublished_public_part_burns_the_deposit(chain: ApiThread, tmp_path: Path) -> None:
    """[HOLDOUT-EXPIRY.1] [HOLDOUT-FORFEIT.1] ``submit --no-wait`` posts without publishing
    and says how to publish; after expiry ``job holdout publish`` is refused with the times,
    the job is refunded but for the deposit, and ``job status`` says why."""
    tar, _ = saved_image(tmp_path)
    folder = v3_job_dir(tmp_path)
    submitter = key_file(tmp_path, chain.keys["submitter"], "submitter")
    text = run(["job", "submit", str(folder), "--image-tar", str(tar), "--voter-reward", "2",
                "--no-wait", *submitter], chain).stdout
    job_id = text.split()[1]
    assert f"then publish: learningchain job holdout publish {job_id}" in text
    client = ApiClient(chain.url)
    client.wait_for_tx(job_id)
    expiry = int(client.job(job_id)["spec"]["expiry_ms"])
    chain.in_loop(lambda: chain.node.skip_to(expiry + 1))  # type: ignore[union-attr]
    wait_until(lambda: client.job(job_id)["status"] == "refunded", what="the refund")
    late = run(["job", "holdout", "publish", job_id, "--job-dir", str(folder), *submitter],
               chain, code=1).output
    assert "published before expiry; claims closed" in late and "the job is refunded" in late
    status = run(["job", "status", job_id], chain).stdout
    assert f"deposit of {DEPOSIT} burned" in status and "holdout    unpublished" in status
    assert client.account(chain.keys["submitter"].address)["balance"] == 1_000 - DEPOSIT


def test_publish_resumes_an_interrupted_submit(chain: ApiThread, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """[HOLDOUT-PUBLISH.1] After ``submit --no-wait``, ``job holdout publish`` (run in the job
    folder) refuses a pool whose sample changed since the commitment, naming it, and publishes
    the committed samples once they are back."""
    tar, _ = saved_image(tmp_path)
    folder = v3_job_dir(tmp_path)
    submitter = key_file(tmp_path, chain.keys["submitter"], "submitter")
    job_id = json.loads(run(["job", "submit", str(folder), "--image-tar", str(tar), "--no-wait",
                             *submitter, "--json"], chain).stdout)["job_id"]
    client = ApiClient(chain.url)
    client.wait_for_tx(job_id)
    seed = wait_until(lambda: client.job(job_id)["holdout"]["seed"], what="the split")
    first = public_indices(bytes.fromhex(seed), POOL, PERMILLE)[0]
    sample = folder / "pool" / f"shard-{first:02d}.csv"  # a public sample (names sort by index)
    original = sample.read_text()
    sample.write_text("label,p0\n9,9\n")
    monkeypatch.chdir(folder)  # --job-dir defaults to the current folder
    bad = run(["job", "holdout", "publish", job_id, *submitter], chain, code=1).output
    assert "cannot pack the public part" in bad and sample.name in bad, bad
    assert "changed since the pool was committed" in bad, bad
    sample.write_text(original)
    text = run(["job", "holdout", "publish", job_id, *submitter], chain).stdout
    assert f"public part of job {job_id} published in block" in text
    assert "reveal with: learningchain job holdout reveal" in text
    assert client.job(job_id)["holdout"]["public"] is not None
