"""Job images as blobs: export, address, load, refuse a mismatch [JOB-IMAGE.2-4]."""

from __future__ import annotations

import contextlib
import io
import json
import tarfile
from pathlib import Path

import docker
import docker.errors
import pytest

from chain.content import blob_id_of_file
from sandbox.errors import ImageBlobError, ImageDigestMismatch
from sandbox.image_blob import (
    blob_image_id,
    digest_bytes,
    export_image,
    load_image,
    normalize_image_id,
)
from sandbox.limits import MIB, ResourceLimits
from sandbox.runner import SandboxRunner
from tests.framework.image_export import cached_export

SMALL_LIMITS = ResourceLimits(memory_bytes=128 * MIB, pids=16, wall_time_s=20, tmp_bytes=MIB,
                              output_bytes=MIB, model_bytes=MIB)


def _remove_image(client: docker.DockerClient, image_id: str) -> None:
    with contextlib.suppress(docker.errors.ImageNotFound):
        client.images.remove(image_id, force=True)


def _has(client: docker.DockerClient, image_id: str) -> bool:
    try:
        client.images.get(image_id)
    except docker.errors.ImageNotFound:
        return False
    return True


def _retag_config(blob: Path, dest: Path) -> None:
    """Copy ``blob`` with its config JSON changed (an env var added): a different image."""
    with tarfile.open(blob) as src, tarfile.open(dest, "w") as out:
        manifest = json.loads(src.extractfile("manifest.json").read())  # type: ignore[union-attr]
        config_name = manifest[0]["Config"]
        for member in src.getmembers():
            data = src.extractfile(member) if member.isreg() else None
            if member.name == config_name and data is not None:
                config = json.loads(data.read())
                config["config"]["Env"] = [*(config["config"].get("Env") or []), "EVIL=1"]
                raw = json.dumps(config).encode()
                member.size = len(raw)
                out.addfile(member, io.BytesIO(raw))
            else:
                out.addfile(member, data)


def test_image_id_forms_are_normalized() -> None:
    hexid = "ab" * 32
    assert normalize_image_id(hexid) == f"sha256:{hexid}"
    assert normalize_image_id(f"sha256:{hexid}") == f"sha256:{hexid}"
    assert normalize_image_id(bytes.fromhex(hexid)) == f"sha256:{hexid}"
    assert digest_bytes(f"sha256:{hexid}") == bytes.fromhex(hexid)
    with pytest.raises(ValueError):
        normalize_image_id("sha256:xyz")
    with pytest.raises(ValueError):
        normalize_image_id(b"short")


def test_a_file_that_is_not_an_image_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"\0" * 2048)
    with pytest.raises(ImageBlobError):
        blob_image_id(junk)


@pytest.mark.docker
def test_job_image_2_export_load_and_run_round_trip(
        docker_client: docker.DockerClient, small_image: str, runner: SandboxRunner,
        tmp_path: Path) -> None:
    blob = export_image(docker_client, small_image, tmp_path / "image.tar")
    assert blob.image_id == small_image == blob_image_id(blob.path)
    assert blob.size == blob.path.stat().st_size
    assert blob.blob_id == blob_id_of_file(blob.path)
    _remove_image(docker_client, small_image)
    assert not _has(docker_client, small_image)
    assert load_image(docker_client, blob.path, digest_bytes(small_image)) == small_image
    result = runner.run_entry(small_image, "hello", ["python3", "/job/hello.py"], {},
                              SMALL_LIMITS, tmp_path / "out")
    assert result.ok, result
    assert result.logs == b"hello from a blob\n"


@pytest.mark.docker
def test_job_image_3_blob_of_another_image_is_refused_before_loading(
        docker_client: docker.DockerClient, small_image: str, base_image: str,
        tmp_path: Path) -> None:
    blob = export_image(docker_client, small_image, tmp_path / "image.tar")
    _remove_image(docker_client, small_image)
    with pytest.raises(ImageDigestMismatch) as refused:
        load_image(docker_client, blob.path, base_image)
    assert refused.value.expected == base_image and refused.value.found == small_image
    assert "refused" in str(refused.value)
    assert not _has(docker_client, small_image)  # nothing reached the engine
    load_image(docker_client, blob.path, small_image)  # restore for later tests


@pytest.mark.docker
def test_job_image_3_tampered_blob_is_refused(
        docker_client: docker.DockerClient, small_image: str, tmp_path: Path) -> None:
    blob = export_image(docker_client, small_image, tmp_path / "image.tar")
    tampered = tmp_path / "tampered.tar"
    _retag_config(blob.path, tampered)
    assert blob_image_id(tampered) != small_image
    with pytest.raises(ImageDigestMismatch):
        load_image(docker_client, tampered, small_image)


@pytest.mark.docker
def test_the_suites_export_cache_saves_an_image_once_and_again_after_a_change(
        docker_client: docker.DockerClient, small_image: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """tests/framework/image_export.py: the worker stories' template is saved once per
    machine; a cached tar changed since (a hard link of it in a node's blob store) is saved
    again, never handed out as it is."""
    monkeypatch.setenv("LC_TEST_CACHE", str(tmp_path / "cache"))
    first = cached_export(docker_client, small_image)
    assert first.image_id == small_image == blob_image_id(first.path)
    assert first.blob_id == blob_id_of_file(first.path) and first.size == first.path.stat().st_size
    saved_at = first.path.stat().st_mtime_ns
    again = cached_export(docker_client, small_image.removeprefix("sha256:"))
    assert again == first and again.path.stat().st_mtime_ns == saved_at  # not saved again
    with open(first.path, "r+b") as tar:  # what a test tampering with a stored blob does
        tar.seek(first.size // 2)
        tar.write(b"\xff" * 16)
    redone = cached_export(docker_client, small_image)
    assert redone.path == first.path and redone.blob_id == blob_id_of_file(redone.path)
    assert blob_image_id(redone.path) == small_image
    sidecar = first.path.with_name(first.path.name + ".json")
    sidecar.write_text("not json")
    assert cached_export(docker_client, small_image).blob_id == blob_id_of_file(first.path)
