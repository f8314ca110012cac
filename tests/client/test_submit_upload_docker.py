"""``job submit`` uploads only the blobs the node does not hold, and says so with progress
[JOB-IMAGE.6]: the first post of an image sends every layer blob (progress to 100 % for
each); a second post of the same image sends none (one "already on the node" line per
blob); a new image on the same base sends only its own layer and its manifest (a v2
manifest carries the config [JOB-IMAGE.10])."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from pathlib import Path

import docker.errors
import pytest

from sandbox.base_image import ROOTFS_TAG, ensure_base_image
from sandbox.engine import connect
from tests.client.api.test_api_support import ApiThread
from tests.client.cli.test_cli_chain import key_file, run
from tests.client.cli.test_cli_job import job_dir

pytestmark = pytest.mark.docker
NAME = "pytest-submit-upload"
TAG = f"learningchain/job-{NAME}:latest"
SENT = re.compile(r"^uploading (image [a-z]+(?: \d+)?): ([\d,]+) / ([\d,]+) bytes \(100%\)",
                  re.M)
HELD = re.compile(r"^(image [a-z]+(?: \d+)?): blob [0-9a-f]{16} \(([\d,]+) bytes\) already on "
                  r"the node, not sent$", re.M)


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[ApiThread]:
    with ApiThread(tmp_path, validators=1, block_interval=0.1) as api:
        yield api


def test_submit_uploads_only_the_blobs_the_node_lacks_with_progress(
        chain: ApiThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """[JOB-IMAGE.6] What the node holds is never sent again; what is sent shows progress
    (plain lines: the output is not a terminal)."""
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE"):  # rich would draw bars even into a pipe
        monkeypatch.delenv(name, raising=False)
    engine = connect()
    ensure_base_image(engine, log=lambda _m: None)
    folder = job_dir(tmp_path)
    toml = (folder / "job.toml").read_text()
    (folder / "job.toml").write_text(toml.replace('name = "digits-mlp"', f'name = "{NAME}"'))
    dockerfile = f"FROM {ROOTFS_TAG}\nCOPY job.toml /job/job.toml\nUSER 65534:65534\n"
    (folder / "Dockerfile").write_text(dockerfile)
    submitter = key_file(tmp_path, chain.keys["submitter"], "submitter")
    args = ["job", "submit", str(folder), "--bounty", "20", "--expires-in", "5m", *submitter]
    try:
        first = run(args, chain)
        sent = {m.group(1): m.group(2) for m in SENT.finditer(first.stderr)}
        # a v2 manifest carries the image config inside it [JOB-IMAGE.10]: no config blob
        assert {"image manifest", "image layer 0"} <= set(sent), first.stderr
        assert "image config" not in sent, first.stderr
        assert all(m.group(2) == m.group(3) for m in SENT.finditer(first.stderr))
        layers = [w for w in sent if w.startswith("image layer")]
        blobs = len(layers) + 1
        assert f"image: the node lacks {blobs} of {blobs} blobs" in first.stderr
        uploaded = int(re.search(r"posted by layer: (\d+) bytes uploaded", first.stdout)[1])
        assert uploaded == sum(int(v.replace(",", "")) for v in sent.values())
        assert "uploading data train: " in first.stderr

        second = run(args, chain)  # the same image and data: nothing to send
        held = {m.group(1) for m in HELD.finditer(second.stderr)}
        assert held == set(sent), second.stderr
        assert f"image: the node lacks 0 of {blobs} blobs (0 bytes to send)" in second.stderr
        assert "uploading" not in second.stderr, second.stderr
        assert re.search(r"data train: blob [0-9a-f]{16} \([\d,]+ bytes\) already on the node",
                         second.stderr)
        assert "posted by layer: 0 bytes uploaded" in second.stdout

        # a new image on the same base: its base layers are held, its own layer is sent
        (folder / "Dockerfile").write_text(dockerfile + "COPY Dockerfile /job/Dockerfile\n")
        third = run([*args, "--json"], chain)
        sent3 = {m.group(1) for m in SENT.finditer(third.stderr)}
        held3 = {m.group(1) for m in HELD.finditer(third.stderr)}
        assert sent3 == {"image manifest", f"image layer {len(layers)}"}, \
            third.stderr
        assert held3 == set(layers), third.stderr
        posted = json.loads(third.stdout)
        assert 0 < posted["image_uploaded_bytes"] < 1_000_000, posted
    finally:
        with contextlib.suppress(docker.errors.DockerException):
            engine.images.remove(TAG)
