"""``job submit|status|watch|leaderboard|fetch-model`` against a real solo node and its API.

Posting uses a saved-image tar (``--image-tar``) so these run without Docker;
the Docker path (build, export, upload) is ``test_cli_job_docker.py``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
import threading
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from chain.content import blob_id_of_file
from chain.crypto import PrivateKey, address_to_text
from chain.train.bodies import (
    ClaimLoss,
    PostJob,
    RevealModel,
    VoteCommit,
    VoteReveal,
    model_commitment,
    vote_commitment,
)
from chain.transactions import Body
from chain.types import Hash32
from client.api.http_client import ApiClient
from tests.client.api.test_api_support import ApiThread, future_spec
from tests.client.cli.test_cli_chain import key_file, run
from tests.framework.template_v2 import v2_job_toml
from tests.framework.wait import wait_until


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[ApiThread]:
    with ApiThread(tmp_path, validators=1, block_interval=0.1) as api:
        yield api


def job_dir(tmp_path: Path) -> Path:
    """A job folder holding the template's job.toml (all `submit` reads without Docker)."""
    folder = tmp_path / "job"
    folder.mkdir(exist_ok=True)
    template = resources.files("sandbox.templates.digits").joinpath("job.toml")
    (folder / "job.toml").write_text(v2_job_toml(template.read_text(encoding="utf-8")))
    (folder / "data").mkdir(exist_ok=True)  # the template's [data] as train/v2 [JOB-DATA.1]
    (folder / "data" / "train.csv").write_text("label,p0\n1,2\n" * 50)
    (folder / "data" / "valid.csv").write_text("label,p0\n3,4\n" * 20)
    return folder


def saved_image(tmp_path: Path) -> tuple[Path, str]:
    """A minimal `docker save` tar (manifest + config): its image id is SHA-256(config)."""
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    image_id = "sha256:" + hashlib.sha256(config).hexdigest()
    manifest = json.dumps([{"Config": "config.json", "RepoTags": None, "Layers": []}]).encode()
    path = tmp_path / "image.tar"
    with tarfile.open(path, "w") as tar:
        for name, data in (("manifest.json", manifest), ("config.json", config)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path, image_id


def send(client: ApiClient, key: PrivateKey, body: Body) -> bytes:
    tx = client.sign(key, body)
    client.submit(tx)
    client.wait_for_tx(tx.hash)
    return tx.hash


def post_job(api: ApiThread, client: ApiClient, **kw: Any) -> str:
    spec = future_spec(int(client.status()["time_ms"]), **kw)
    return send(client, api.keys["submitter"], PostJob(spec)).hex()


def test_fresh_identity_cannot_post_a_job(chain: ApiThread, tmp_path: Path) -> None:
    """A new key (no credits, not admitted) gets one clear line, before any build or upload."""
    tar, _ = saved_image(tmp_path)
    fresh = key_file(tmp_path, PrivateKey.generate(), "fresh")
    out = run(["job", "submit", str(job_dir(tmp_path)), "--bounty", "10", "--image-tar",
               str(tar), *fresh], chain, code=1).output
    assert "cannot post the job" in out and "not_member" in out
    assert "insufficient_balance: posting this job escrows 13 credits" in out
    assert "balance of lc1" in out and "is 0" in out
    assert chain.in_loop(lambda: chain.node.blobs.blobs()) == []  # type: ignore[union-attr]


def test_the_mempools_rejection_comes_through(chain: ApiThread, tmp_path: Path) -> None:
    """What only the ledger checks (here: a quorum below the protocol's minimum) is reported."""
    tar, _ = saved_image(tmp_path)
    submitter = key_file(tmp_path, chain.keys["submitter"], "submitter")
    out = run(["job", "submit", str(job_dir(tmp_path)), "--image-tar", str(tar),
               "--quorum", "100", *submitter], chain, code=1).output
    assert "job rejected: quorum_too_low" in out


def test_submit_uploads_the_image_and_posts_the_job(chain: ApiThread, tmp_path: Path) -> None:
    tar, image_id = saved_image(tmp_path)
    submitter = key_file(tmp_path, chain.keys["submitter"], "submitter")
    posted = json.loads(run(["job", "submit", str(job_dir(tmp_path)), "--image-tar", str(tar),
                             "--bounty", "50", "--expires-in", "10m", "--voter-reward", "2",
                             *submitter, "--json"], chain).stdout)
    client = ApiClient(chain.url)
    job = client.job(posted["job_id"])
    spec = job["spec"]
    assert job["status"] == "open" and job["submitter"] == address_to_text(
        chain.keys["submitter"].address)
    assert spec["bounty"] == 50 and job["escrow"] == 50 + 2 * 3
    assert "sha256:" + spec["image_digest"] == image_id == posted["image_id"]
    assert spec["image_blob"] == blob_id_of_file(tar).hex()
    assert spec["entry_points"] == {"evaluate": ["/job/evaluate"], "train": ["/job/train"]}
    # Every limit of job.toml reaches the chain [JOB-LIMITS.1] (the template declares model_mb
    # 4), the image sizes measured from the saved image [JOB-IMAGE.5].
    from sandbox.image_check import measure_image

    sizes = measure_image(tar)
    assert spec["limits"] == {"memory_mb": 1024, "cpu_millis": 2000, "time_s": 120,
                              "disk_mb": 64, "model_mb": 4, "image_mb": sizes.image_mb,
                              "image_unpacked_mb": sizes.image_unpacked_mb}
    assert [p["name"] for p in spec["search_space"]] == ["learning_rate", "hidden_size",
                                                         "epochs"]
    assert 9 * 60_000 < spec["expiry_ms"] - job["posted_time_ms"] <= 10 * 60_000
    # Workers fetch the image from the node by the blob id the job names.
    blob = bytes.fromhex(spec["image_blob"])
    assert chain.in_loop(lambda: chain.node.blob_path(blob)) is not None  # type: ignore[union-attr]
    balance = client.account(chain.keys["submitter"].address)["balance"]
    assert balance == 1_000 - 56


def test_job_data_4_submit_packs_uploads_and_names_the_data_blobs(chain: ApiThread,
                                                                 tmp_path: Path) -> None:
    """[JOB-DATA.4] [JOB-DATA.2] [JOB-FILE.1] ``job submit`` of a train/v2 folder packs each
    [data] path (deterministically), uploads the blobs the node lacks, and posts their ids
    and exact sizes; a second submit of the same data uploads nothing."""
    from sandbox.data_blob import pack_data

    tar, _ = saved_image(tmp_path)
    folder = job_dir(tmp_path)
    submitter = key_file(tmp_path, chain.keys["submitter"], "submitter")
    args = ["job", "submit", str(folder), "--image-tar", str(tar), "--bounty", "20", *submitter]
    first = json.loads(run([*args, "--json"], chain).stdout)
    expected = {role: pack_data(folder / "data" / f"{role}.csv", tmp_path / f"{role}.tar")
                for role in ("train", "valid")}
    client = ApiClient(chain.url)
    spec = client.job(first["job_id"])["spec"]
    assert spec["kind"] == "train/v2"
    assert spec["data"] == {role: {"blob": p.blob_id.hex(), "size": p.size}
                            for role, p in expected.items()}
    assert {role: d["uploaded"] for role, d in first["data"].items()} == {"train": True,
                                                                          "valid": True}
    for packed in expected.values():
        stored = chain.in_loop(lambda b=packed.blob_id: chain.node.blob_path(b))  # type: ignore[union-attr]
        assert stored is not None and stored.read_bytes() == packed.path.read_bytes()
        assert client.has_blob(packed.blob_id)
    assert not client.has_blob(b"\x05" * 32)
    again = run(args, chain).stdout
    assert again.count("already on the node") == 2 and "uploaded)" not in again
    status = run(["job", "status", first["job_id"]], chain).stdout
    for role, packed in expected.items():
        assert f"data       {role}: blob {packed.blob_id.hex()} ({packed.size} bytes)" in status


def test_status_and_leaderboard_of_a_job_posted_directly(chain: ApiThread,
                                                         tmp_path: Path) -> None:
    client = ApiClient(chain.url)
    job_id = post_job(chain, client)
    for name, loss in (("alice", 0.5), ("bob", 0.25), ("carol", 0.25)):
        send(client, chain.keys[name], ClaimLoss(Hash32(bytes.fromhex(job_id)), loss,
                                                 Hash32(os.urandom(32))))
    who = {address_to_text(k.address): n for n, k in chain.keys.items()}
    board = json.loads(run(["job", "leaderboard", job_id, "--json"], chain).stdout)
    assert [who[r["claimer"]] for r in board["claims"]] == ["bob", "carol", "alice"]
    text = run(["job", "leaderboard", job_id], chain).stdout.splitlines()
    assert "rank" in text[0] and text[1].split()[:2] == ["1", "0.25"]
    status = run(["job", "status", job_id], chain).stdout
    assert "status     open (claims close in" in status
    assert f"claims     3, best loss 0.25 by {address_to_text(chain.keys['bob'].address)}" \
        in status
    assert json.loads(run(["job", "status", job_id, "--json"], chain).stdout)["job_id"] == job_id
    assert "unknown_job" in run(["job", "status", "ab" * 32], chain, code=1).output
    run(["job", "status", "xyz"], chain, code=2)
    out = run(["job", "fetch-model", job_id, "-o", str(tmp_path / "m")], chain, code=1).output
    assert "no verified winner (status open)" in out


def _drive_to_payment(api: ApiThread, client: ApiClient, job_id: str, model: Path,
                      model_hash: bytes) -> None:
    """Alice claims, reveals at her turn; every eligible voter commits, then opens a 'valid'."""
    job = Hash32(bytes.fromhex(job_id))
    alice = api.keys["alice"]
    salt = os.urandom(32)
    send(client, alice, ClaimLoss(job, 0.5, model_commitment(job, alice.address, model_hash,
                                                             salt)))

    def wait_status(status: str) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            info = client.job(job_id)
            if info["status"] == status:
                return info
            client.wait(int(client.status()["height"]) + 1, timeout=2)  # a block, not a sleep
            return None

        return wait_until(reached, timeout=30, step=0, what=f"the job to reach {status}")

    wait_status("reveal")
    send(client, alice, RevealModel(job, Hash32(model_hash), salt))
    voters = wait_status("vote_commit")["turn"]["eligible_voters"]
    by_address = {address_to_text(k.address): k for k in api.keys.values()}
    voters = [*voters, address_to_text(alice.address)]  # and alice's own vote [VOTE-SELF.1]
    by_address[address_to_text(alice.address)] = alice
    salts = {v: os.urandom(32) for v in voters}
    for v in voters:
        key = by_address[v]
        commitment = vote_commitment(job, alice.address, key.address, True, 0.49, salts[v])
        send(client, key, VoteCommit(job, alice.address, commitment))
    wait_status("vote_reveal")
    for v in voters:
        send(client, by_address[v], VoteReveal(job, alice.address, True, 0.49, salts[v]))


def in_thread(fn: Callable[[], None]) -> Callable[[], None]:
    """Starts ``fn`` in a thread; the returned join re-raises what it raised."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            fn()
        except BaseException as e:
            errors.append(e)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()

    def join() -> None:
        thread.join(60)
        if errors:
            raise errors[0]

    return join


def test_watch_follows_a_job_to_payment_and_fetch_model_checks_it(chain: ApiThread,
                                                                  tmp_path: Path) -> None:
    client = ApiClient(chain.url)
    model = tmp_path / "model.pt"
    model.write_bytes(os.urandom(2 * 1024 * 1024 + 5))
    model_hash = bytes.fromhex(client.upload_blob(model)["blob"])
    job_id = post_job(chain, client, expires_in_ms=2_500, window_ms=20_000)
    join = in_thread(lambda: _drive_to_payment(chain, client, job_id, model, model_hash))
    result = run(["job", "watch", job_id, "--timeout", "60s", "--json"], chain)
    join()
    events = [json.loads(line) for line in result.stdout.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "job" and kinds[-1] == "settled"
    for kind in ("claim", "status", "turn", "reveal", "votes_revealed", "verdict"):
        assert kind in kinds, (kind, kinds)
    alice = address_to_text(chain.keys["alice"].address)
    [verdict] = [e for e in events if e["event"] == "verdict"]
    assert verdict["outcome"] == "valid" and verdict["claimer"] == alice
    assert events[-1] == {"event": "settled", "status": "paid", "winner": alice, "paid": 100,
                          "model_hash": model_hash.hex(), "reason": ""}
    assert {"event": "status", "from": "open", "to": "reveal"} in events

    out = tmp_path / "fetched.pt"
    fetched = json.loads(run(["job", "fetch-model", job_id, "-o", str(out), "--json"],
                             chain).stdout)
    assert fetched["model_hash"] == model_hash.hex() and fetched["winner"] == alice
    assert out.read_bytes() == model.read_bytes()
    text = run(["job", "status", job_id], chain).stdout
    assert f"winner     {alice} paid 100" in text and "valid (5 valid, 0 invalid of 5)" in text
    # A second watch of a settled job prints its state and returns at once.
    again = run(["job", "watch", job_id], chain).stdout
    assert again.startswith("job paid, 1 claim(s), claims closed ")
    assert again.rstrip().endswith(f"ago; settled: paid 100 to {alice}")
    shutil.rmtree(tmp_path / "job", ignore_errors=True)
