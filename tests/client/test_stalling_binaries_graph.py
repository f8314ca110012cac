"""Issue 30 §2, "What must be shown", on one real multi-process graph: a job whose image
replaces ``tar`` and ``df`` by programs that drip a byte every 20 s (armed only when
``$LC_INPUT/challenge.json`` is present, so they pass every self-check and meet only the
voters) gets no voter stuck and no bond burned.

Before the fix the node ran the image's own ``tar`` to copy ``/output`` out and its
``df`` after a failed run, with no deadline: on a graph both voters stayed
"evaluating" until the graph was stopped, the turn ended ``no_quorum``, the submitter was
refunded and each voter's bond burned. Now the node reads ``/output`` through the
engine's archive API [JOB-OUT.6] and never runs the image's programs: the voters vote,
the honest claim is judged valid and paid, nobody is banned, nothing is burned, and
credits add up.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from client.api.http_client import ApiClient
from client.devnet.processes import down
from sandbox.base_image import BASE_TAG
from tests.client.test_hostile_challenge_graph import JOB_TOML
from tests.client.test_hostile_submitter_graph import cli, wait_settled
from tests.framework.devnet_up import up_on_free_ports

pytestmark = pytest.mark.docker

BOUNTY, REWARD = 300, 9
WORKERS = (0, 1)
VOTERS = (2, 3)

TRAIN = """#!/usr/bin/env python3
import json
with open("/output/model.pt", "w") as f:
    json.dump({"w": 1}, f)
"""

EVALUATE = """#!/usr/bin/env python3
# Arms the image's tar and df only in a voter's run (the challenge file is there).
import json, os
metrics = {"loss": 0.5}
folder = os.environ.get("LC_INPUT")
if folder and os.path.exists(os.path.join(folder, "challenge.json")):
    metrics["challenge_loss"] = 0.4
    with open("/tmp/stall-mode", "w") as f:
        f.write("drip20")
with open("/output/metrics.json", "w") as f:
    json.dump(metrics, f)
"""

STALL = """#!/bin/sh
real="$0.real"
if [ "$(cat /tmp/stall-mode 2>/dev/null)" = drip20 ]; then
  while :; do printf 'x'; sleep 20; done
fi
exec "$real" "$@"
"""


def write_job(job_dir: Path) -> None:
    job_dir.mkdir(parents=True)
    (job_dir / "job.toml").write_text(JOB_TOML.format(name="stalling-binaries"))
    (job_dir / "Dockerfile").write_text(
        f"FROM {BASE_TAG}\nUSER 0:0\n"
        "RUN mv /usr/bin/tar /usr/bin/tar.real && mv /usr/bin/df /usr/bin/df.real\n"
        "COPY stall /usr/bin/tar\nCOPY stall /usr/bin/df\nCOPY train evaluate /job/\n"
        "RUN chmod 755 /usr/bin/tar /usr/bin/df /job/train /job/evaluate\n"
        "USER 65534:65534\nWORKDIR /tmp\n")
    for name, text in (("train", TRAIN), ("evaluate", EVALUATE), ("stall", STALL)):
        (job_dir / name).write_text(text)


def test_issue_30_stalling_image_binaries_get_no_voter_stuck_and_no_bond_burned(
        tmp_path: Path) -> None:
    """[JOB-OUT.6] [VOTE-VERDICT.1] on real node processes: voters whose job image's
    ``tar`` and ``df`` stall still vote; the honest claim is valid and paid; nobody is
    banned or slashed; credits add up."""
    root = tmp_path / "graph"
    quick = {"max_attempts": 1, "min_time_left_s": 5, "max_memory_mb": 1024,
             "max_disk_mb": 64, "max_time_s": 60}
    layout = up_on_free_ports(
        root, validators=4, workers=4,
        worker_settings={0: quick, 1: quick, 2: {"max_attempts": 0}, 3: {"max_attempts": 0}},
        users={"submitter": 5_000}, consensus={"commit_ms": 100}, timeout=90)
    try:
        api = ApiClient(layout.nodes[0].api_url)
        address = {i: n.address for i, n in enumerate(layout.nodes)}
        supply_before = api.supply()
        submitter = next(u for u in layout.users if u.name == "submitter")
        write_job(tmp_path / "job")
        posted = cli("job", "submit", str(tmp_path / "job"), "--bounty", str(BOUNTY),
                     "--expires-in", "30s", "--reveal-window", "20s",
                     "--commit-window", "20s", "--vote-reveal-window", "20s",
                     "--voter-reward", str(REWARD), "--quorum", "500",
                     "--supermajority", "667", "--max-turns", "3",
                     "--key", str(submitter.key_file),
                     "--passphrase-file", str(submitter.passphrase_file), "--json",
                     env={"LC_NODE": layout.nodes[0].api_url})
        job_id = json.loads(posted.stdout)["job_id"]
        job = wait_settled(api, job_id, 300)

        assert job["status"] == "paid", job
        assert job["winner"] in {address[i] for i in WORKERS}, job
        assert [v["outcome"] for v in job["verdicts"]][-1] == "valid", job["verdicts"]
        accounts = {i: api.account(address[i]) for i in address}
        for i in address:
            assert not accounts[i]["banned"], (i, accounts[i])
        supply = api.supply()
        assert supply["conserved"] and supply["supply"] == supply_before["supply"]
        assert supply["balances"] + supply["escrowed"] + supply["bonded"] + supply["burned"] \
            == supply["supply"]
        assert supply["burned"] == supply_before["burned"], (supply, supply_before)
        time.sleep(1.0)
        for node in layout.nodes:  # every node holds the same outcome
            other = ApiClient(node.api_url).job(job_id)
            assert (other["status"], [v["outcome"] for v in other["verdicts"]]) == (
                job["status"], [v["outcome"] for v in job["verdicts"]])
    finally:
        down(root)
