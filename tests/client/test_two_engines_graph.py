"""Issue 17, "What must be shown": two workers on private Docker engines of their own; the
template job's image really travels to both, by layer; one wins and is paid.

Three validator processes on 127.0.0.1 (``client.devnet.processes``, as ``make demo``):

- node0 is the node the submitter posts to, with ``learningchain job init`` and
  ``job submit`` from the host's engine; it only verifies (its engine is the host's,
  which built the image);
- node1 and node2 train, each on a private dockerd of its own (own socket, data root,
  exec root, pidfile: ``tests/framework/dockerd.py``) that holds only the canonical
  base image, loaded from the same image as the host's (the same layer ids
  [JOB-IMAGE.9]), never the job's image.

Shown: the job image is absent from each worker's engine before and present with the
same id after [JOB-IMAGE.3]; each worker fetched the job's own layers and config only
(the node's log and its ``blob_fetched_bytes``), not the base [JOB-IMAGE.8]; both train
and claim; one claim wins and is paid, the other is not; every node settles the job
identically; credits add up. Works with whatever ``job init`` writes: a train/v3
template (hidden test set) is revealed by ``job watch --key --job-dir`` at expiry.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from client.api.http_client import ApiClient
from client.devnet.processes import REPO_ROOT, down
from sandbox.base_image import BASE_TAG
from sandbox.engine import connect
from tests.client.image_layers_graph import fetched_bytes, node_log
from tests.framework.devnet_up import up_on_free_ports
from tests.framework.dockerd import PrivateDockerd
from tests.framework.wait import scaled

# ~2 min, so `make test-slow`: test_image_layers_docker proves the layer fetch in CI.
pytestmark = [pytest.mark.docker, pytest.mark.slow]

SUBMIT_NODE, WORKERS = 0, (1, 2)
BOUNTY = 100
FETCHED_LIMIT = 5_000_000
"""Bytes a worker may receive from peers in all: the job's layer, config, data and the
other worker's model (it votes on it); the base image alone is about a gigabyte."""
LAYER_LINE = re.compile(r"image by layer: the engine holds (\d+) of (\d+) layers; fetching "
                        r"(\d+) layer blob\(s\), (\d+) bytes \(the whole image is (\d+) bytes\)")


def cli(*args: str, env: dict[str, str]) -> str:
    proc = subprocess.run([sys.executable, "-m", "client", *args], cwd=REPO_ROOT, text=True,
                          capture_output=True, env={**os.environ, **env}, timeout=600)
    assert proc.returncode == 0, f"learningchain {' '.join(args)}: {proc.stdout}{proc.stderr}"
    return proc.stdout


def few_epochs(job_dir: Path) -> None:
    """The template's search space narrowed to a short training (as the other graph tests)."""
    toml = (job_dir / "job.toml").read_text()
    toml, n = re.subn(r'(name = "epochs"\s*\nkind = "int"\s*\nvalues = )\[[^\]]*\]',
                      r"\g<1>[2, 4]", toml)
    assert n == 1, f"no epochs range in the template's job.toml:\n{toml}"
    toml, n = re.subn(r'(name = "hidden_size"\s*\nkind = "choice"\s*\nvalues = )\[[^\]]*\]',
                      r"\g<1>[32]", toml)
    assert n == 1, f"no hidden_size choice in the template's job.toml:\n{toml}"
    # a train/v3 template: the submitter's reveal ends the window, this only bounds it
    toml = re.sub(r'(?m)^reveal_window = "[^"]*"', 'reveal_window = "40s"', toml)
    (job_dir / "job.toml").write_text(toml)


def wait_settled(api: ApiClient, job_id: str, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        job = api.job(job_id)
        if job["settled"]:
            return dict(job)
        if time.monotonic() > deadline:
            raise AssertionError(f"job not settled after {timeout_s:.0f} s: {job}")
        time.sleep(0.5)


def image_ids(engine: Any) -> set[str]:
    return {str(image.id) for image in engine.images.list(all=True)}


def test_two_workers_on_engines_of_their_own_fetch_the_template_by_layer_one_is_paid(
        tmp_path: Path, private_dockerd: PrivateDockerd) -> None:
    """[JOB-IMAGE.3] [JOB-IMAGE.6] [JOB-IMAGE.7] [JOB-IMAGE.8] [JOB-IMAGE.9] on real node
    processes, each worker on its own dockerd: only the job's layers travel, both workers
    train and claim, the best verified claim is paid, every node agrees."""
    host = connect()
    base = host.images.get(BASE_TAG)
    base_layers = base.attrs["RootFS"]["Layers"]
    with PrivateDockerd(log_file=tmp_path / "second-dockerd.log") as second:
        second.load_from_host(host, BASE_TAG)
        engines = {WORKERS[0]: private_dockerd, WORKERS[1]: second}
        clients = {i: e.client(timeout=120) for i, e in engines.items()}
        for i, engine in clients.items():  # the canonical base only, by its layer ids
            assert image_ids(engine) == {base.id}, (i, image_ids(engine))
            assert engine.images.get(BASE_TAG).attrs["RootFS"]["Layers"] == base_layers

        job_dir = tmp_path / "digits"
        cli("job", "init", str(job_dir), env={})
        few_epochs(job_dir)
        built = json.loads(cli("job", "build", str(job_dir), "--json", env={}))
        image_id = str(built["image_id"])
        for i, engine in clients.items():
            assert image_id not in image_ids(engine), f"node{i}'s engine holds the job image"
        v3 = re.search(r'(?m)^kind = "train/v3"', (job_dir / "job.toml").read_text())

        quick = {"max_attempts": 1, "min_time_left_s": 5, "max_memory_mb": 1024,
                 "max_disk_mb": 64, "max_time_s": 120}
        root = tmp_path / "graph"
        layout = up_on_free_ports(root, validators=3, workers=3,
                                  worker_settings={SUBMIT_NODE: {"max_attempts": 0},
                                                   WORKERS[0]: quick, WORKERS[1]: quick},
                                  users={"submitter": 5_000}, consensus={"commit_ms": 100},
                                  timeout=90,
                                  node_env={i: {"DOCKER_HOST": e.host} for i, e in engines.items()})
        watcher: subprocess.Popen[str] | None = None
        try:
            api = ApiClient(layout.nodes[SUBMIT_NODE].api_url)
            supply_before = api.supply()
            fetched_before = {i: fetched_bytes(layout, i) for i in WORKERS}
            address = {i: n.address for i, n in enumerate(layout.nodes)}
            balance_before = {address[i]: api.account(address[i])["balance"] for i in WORKERS}
            submitter = next(u for u in layout.users if u.name == "submitter")
            env = {"LC_NODE": layout.nodes[SUBMIT_NODE].api_url}
            keys = ("--key", str(submitter.key_file),
                    "--passphrase-file", str(submitter.passphrase_file))
            posted = json.loads(cli(
                "job", "submit", str(job_dir), "--bounty", str(BOUNTY), "--expires-in", "60s",
                "--reveal-window", "20s", "--commit-window", "30s",
                "--vote-reveal-window", "20s", "--quorum", "500", "--supermajority", "667",
                "--max-turns", "2", *keys, "--json", env=env))
            job_id = posted["job_id"]
            assert posted["image_by_layer"] is True and posted["image_id"] == image_id
            if v3:  # the submitter reveals the hidden part in its window after expiry
                watcher = subprocess.Popen(
                    [sys.executable, "-m", "client", "job", "watch", job_id, *keys,
                     "--job-dir", str(job_dir), "--timeout", "300"],
                    cwd=REPO_ROOT, text=True, stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT, env={**os.environ, **env})
            job = wait_settled(api, job_id, scaled(240))
            fetched = {i: fetched_bytes(layout, i) - fetched_before[i] for i in WORKERS}
            logs = {i: node_log(layout, i) for i in WORKERS}

            # both workers trained and claimed; the best verified claim is paid, only it
            claims = {c["claimer"]: c["loss"] for c in job["claims"]}
            assert set(claims) == {address[i] for i in WORKERS}, job["claims"]
            assert job["status"] == "paid", job
            winner = job["winner"]
            loser = next(address[i] for i in WORKERS if address[i] != winner)
            assert winner in claims, (winner, claims)
            if not v3:  # train/v2: the best public claim; train/v3: the hidden set decides
                assert claims[winner] <= claims[loser], (winner, claims)
            assert job["paid"] == BOUNTY and job["escrow"] == 0, job
            outcomes = {v["claimer"]: v["outcome"] for v in job["verdicts"]}
            assert outcomes.get(winner) == "valid", job["verdicts"]
            gained = {a: api.account(a)["balance"] - balance_before[a] for a in claims}
            assert gained[winner] >= BOUNTY > gained[loser], gained  # at most a voter's share
            supply = api.supply()
            assert supply["conserved"] and supply["supply"] == supply_before["supply"]
            time.sleep(1.0)
            for node in layout.nodes:  # every node settles the job identically
                other = ApiClient(node.api_url).job(job_id)
                assert (other["status"], other["winner"], other["paid"], other["verdicts"],
                        other["claims"]) == (job["status"], job["winner"], job["paid"],
                                             job["verdicts"], job["claims"]), node.name
        except BaseException:
            for node in layout.nodes:  # what each node did, for the failure report
                print(f"--- {node.name} ---", (node.directory / "node.log").read_text(
                    errors="replace")[-4000:])
            raise
        finally:
            if watcher is not None:
                watcher.kill()
                print("job watch:", watcher.communicate()[0][-3000:])
            down(root)

        for i, engine in clients.items():  # the job's image, loaded with its id unchanged
            image = engine.images.get(image_id)
            assert image.id == image_id
            layers = image.attrs["RootFS"]["Layers"]
            assert layers[:len(base_layers)] == base_layers
            match = LAYER_LINE.search(logs[i])
            assert match is not None, logs[i][-3000:]
            held, total, count, layer_bytes, whole = map(int, match.groups())
            assert (held, total, count) == (len(base_layers), len(layers),
                                            len(layers) - len(base_layers)), match.group(0)
            print(f"node{i}: fetched {fetched[i]} bytes from peers, of them {layer_bytes} "
                  f"bytes of image layers (the whole image is {whole} bytes)")
            assert 0 < layer_bytes < 1_000_000 < whole, match.group(0)
            assert layer_bytes < fetched[i] < FETCHED_LIMIT, (i, fetched[i])
            assert f"image {image_id[:19]} loaded" in logs[i], logs[i][-3000:]
            # the daemon's fetch progress: log lines, complete, and what was not sent
            assert f"image layers: {layer_bytes} / {layer_bytes} bytes (100%" in logs[i]
            assert re.search(rf"image by layer: {layer_bytes} bytes fetched in [\d.]+ s, "
                             rf"assembled and loaded in [\d.]+ s; \d+ bytes of the image "
                             r"were not sent \(the engine held them\)", logs[i]), logs[i][-3000:]
