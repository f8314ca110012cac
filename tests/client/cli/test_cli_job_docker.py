"""``job submit`` with a real Docker engine: build the folder, export, upload, post.

Uses a small image on the debootstrap rootfs (as tests/sandbox's ``small_image``
does) so export and upload stay cheap; a missing engine fails the test.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker.errors
import pytest

from chain.content import blob_id_of_file
from client.api.http_client import ApiClient
from sandbox.base_image import ROOTFS_TAG, ensure_base_image
from sandbox.engine import connect
from sandbox.image_layers import parse_manifest
from tests.client.api.test_api_support import ApiThread
from tests.client.cli.test_cli_chain import key_file, run
from tests.client.cli.test_cli_job import job_dir

TAG = "learningchain/job-pytest-cli-submit:latest"


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[ApiThread]:
    with ApiThread(tmp_path, validators=1, block_interval=0.1) as api:
        yield api


@pytest.mark.docker
def test_submit_builds_exports_uploads_and_posts(chain: ApiThread, tmp_path: Path) -> None:
    engine = connect()
    ensure_base_image(engine, log=lambda _m: None)
    folder = job_dir(tmp_path)
    toml = (folder / "job.toml").read_text().replace('name = "digits-mlp"',
                                                     'name = "pytest-cli-submit"')
    (folder / "job.toml").write_text(toml)
    (folder / "Dockerfile").write_text(
        f"FROM {ROOTFS_TAG}\nCOPY job.toml /job/job.toml\nUSER 65534:65534\n")
    submitter = key_file(tmp_path, chain.keys["submitter"], "submitter")
    try:
        first = run(["job", "submit", str(folder), "--bounty", "20", "--expires-in", "5m",
                     *submitter, "--json"], chain)
        posted = json.loads(first.stdout)
        assert "building" in first.stderr
        image_id = engine.images.get(TAG).id
        assert posted["image_id"] == image_id
        assert json.loads((folder / "image.json").read_text())["image_id"] == image_id
        job = ApiClient(chain.url).job(posted["job_id"])
        assert "sha256:" + job["spec"]["image_digest"] == image_id
        assert job["spec"]["image_ref"] == TAG and job["spec"]["bounty"] == 20
        stored = chain.in_loop(
            lambda: chain.node.blob_path(bytes.fromhex(job["spec"]["image_blob"])))  # type: ignore[union-attr]
        assert stored is not None and blob_id_of_file(stored).hex() == job["spec"]["image_blob"]
        manifest = parse_manifest(stored.read_bytes())  # posted by layer [JOB-IMAGE.6]
        assert manifest.image_id == image_id
        assert manifest.version == 2 and manifest.config is not None  # [JOB-IMAGE.10]
        assert all(chain.in_loop(lambda b=layer.blob: chain.node.blob_path(b))  # type: ignore[union-attr,misc]
                   for layer in manifest.layers)
        # A second post reuses the recorded image instead of building again.
        second = run(["job", "submit", str(folder), *submitter, "--json"], chain)
        assert "using built image" in second.stderr and "building" not in second.stderr
        assert json.loads(second.stdout)["image_id"] == image_id
    finally:
        with contextlib.suppress(docker.errors.DockerException):
            engine.images.remove(TAG)


@pytest.mark.docker
def test_submit_rebuilds_when_the_jobs_sources_changed(chain: ApiThread, tmp_path: Path) -> None:
    """Issue 15: build, edit ``train``, submit posted the old image. Now ``submit`` compares
    the build context with the sources recorded at the last build and rebuilds, saying so;
    unchanged sources reuse the image, and job.toml (not in the image) changes nothing."""
    engine = connect()
    ensure_base_image(engine, log=lambda _m: None)
    name = f"pytest-stale-{uuid.uuid4().hex[:12]}"
    folder = tmp_path / "job"
    run(["job", "init", str(folder), "--name", name])
    with (folder / "train").open("a") as f:  # this test's own image, removed at the end
        f.write(f"# {name}\n")
    # The template's Dockerfile on the small rootfs instead of the PyTorch base: submit
    # saves and uploads every image it posts (a gigabyte with that base), and what is
    # tested here is which builds happen, not what the image holds (the README and
    # demo tests build the template as it is).
    dockerfile = folder / "Dockerfile"
    lines = dockerfile.read_text().splitlines()
    [base] = [i for i, line in enumerate(lines) if line.startswith("FROM ")]
    lines[base] = f"FROM {ROOTFS_TAG}"
    dockerfile.write_text("\n".join(lines) + "\n")
    # ... and entry points that import only the standard library: `job build` imports what
    # they import in the image [JOB-IMAGE.15], and the rootfs has no torch or numpy.
    for entry in ("train", "evaluate"):
        (folder / entry).write_text(f"#!/usr/bin/env python3\nimport json\n# {name}\n")
    submitter = key_file(tmp_path, chain.keys["submitter"], "submitter")
    images: set[str] = set()
    try:
        built = run(["job", "build", str(folder)])  # as a user does: `job build` first
        first = json.loads((folder / "image.json").read_text())["image_id"]
        images.add(first)
        assert first in built.output

        def submit() -> tuple[str, str]:
            result = run(["job", "submit", str(folder), "--expires-in", "5m", *submitter,
                          "--json"], chain)
            posted = json.loads(result.stdout)
            job = ApiClient(chain.url).job(posted["job_id"])
            assert "sha256:" + job["spec"]["image_digest"] == posted["image_id"]
            images.add(posted["image_id"])
            return posted["image_id"], result.stderr

        # 1. `job build` recorded the sources it built from: submit posts that image
        assert json.loads((folder / "image.json").read_text())["sources"]["files"]["train"]
        image, said = submit()
        assert image == first and "using built image" in said and "building" not in said
        # 2. unchanged sources: the recorded image, no build
        toml = folder / "job.toml"
        toml.write_text(toml.read_text().replace("bounty = 100", "bounty = 90"))
        image, said = submit()
        assert image == first and "using built image" in said and "building" not in said
        # 3. train edited: rebuilt, and the new image is posted
        with (folder / "train").open("a") as f:
            f.write("# a change\n")
        image, said = submit()
        assert image != first
        assert f"the job's sources changed since image {first[:19]} was built (train)" in said
        assert json.loads((folder / "image.json").read_text())["image_id"] == image
        # 4. the executable bit is part of the sources too
        (folder / "lcjob.py").chmod(0o755)
        _, said = submit()
        assert "(lcjob.py); rebuilding" in said
    finally:
        for image_id in images:
            with contextlib.suppress(docker.errors.DockerException):
                engine.images.remove(image_id, force=True)
