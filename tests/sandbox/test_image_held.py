"""[JOB-IMAGE.14] The sizes a manifest gives for layers the engine already holds are
checked: against sizes the worker checked itself, or measured once from the engine's
own ``docker save`` and remembered. Issue 30 §4: a held base layer declared at 1 MiB
was loaded (the job passed ``image_mb`` on workers holding the base only)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import docker
import pytest

from sandbox.errors import ImageBlobError, ImageManifestError
from sandbox.image_blob import export_image
from sandbox.image_held import (
    SIZES_FILE,
    check_held_sizes,
    engine_images,
    known_sizes,
    remember_sizes,
)
from sandbox.image_layers import LayerRef, split_saved_image


def test_job_image_14_a_remembered_size_is_checked_without_the_engine(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LC_IMAGE_CACHE", str(tmp_path / "empty-cache"))
    layer = LayerRef("sha256:" + "1" * 64, b"\x01" * 32, 4096)
    remember_sizes(tmp_path, {layer.diff_id: 4096})
    check_held_sizes(None, [layer], [], tmp_path)  # known and equal: no engine asked
    with pytest.raises(ImageManifestError, match="the manifest says 1048576"):
        check_held_sizes(None, [replace(layer, size=1 << 20)], [], tmp_path)
    (tmp_path / SIZES_FILE).write_text("not json")
    assert known_sizes(tmp_path) == {}
    with pytest.raises(ImageBlobError, match="no image in the engine"):
        check_held_sizes(None, [layer], [], tmp_path)


@pytest.mark.docker
def test_job_image_14_a_held_layers_size_is_measured_from_the_engine_and_checked(
        docker_client: docker.DockerClient, small_image: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LC_IMAGE_CACHE", str(tmp_path / "empty-cache"))
    saved = export_image(docker_client, small_image, tmp_path / "saved.tar").path
    manifest, _config, _files = split_saved_image(saved, tmp_path / "layers")
    images = engine_images(docker_client)
    work = tmp_path / "work"
    work.mkdir()
    lying = [replace(manifest.layers[0], size=1 << 20), *manifest.layers[1:]]
    with pytest.raises(ImageManifestError, match="the manifest says 1048576"):
        check_held_sizes(docker_client, lying, images, work)
    # measured once from the engine's save, remembered, and the true sizes pass
    assert known_sizes(work) == {x.diff_id: x.size for x in manifest.layers}
    check_held_sizes(docker_client, list(manifest.layers), [], work)


def test_job_image_14_the_hosts_layer_cache_answers_before_the_engine(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A layer ``job submit`` split on this host is known by its cached size: no save."""
    monkeypatch.setenv("LC_IMAGE_CACHE", str(tmp_path / "cache"))
    diff_id = "sha256:" + "2" * 64
    layers = tmp_path / "cache" / "layers"
    layers.mkdir(parents=True)
    (layers / f"{'2' * 64}.tar").write_bytes(b"x" * 3072)
    (layers / f"{'2' * 64}.ref").write_text(f"{'ab' * 32} 3072")
    layer = LayerRef(diff_id, b"\xab" * 32, 3072)
    check_held_sizes(None, [layer], [], tmp_path / "work")
    with pytest.raises(ImageManifestError, match="the manifest says 1024"):
        check_held_sizes(None, [replace(layer, size=1024)], [], tmp_path / "work")
