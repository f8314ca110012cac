"""[JOB-IMAGE.13] An image the engine can never load is refused before loading, and for
good: a hard link out of its layer, a compressed layer where the plain tar its
``diff_id`` names is due, a layer that is no tar; and a load the engine refuses for the
image's content is permanent too (``ImageContentRefused``, an ``ImageManifestError``,
which the worker's image cache never retries). Issue 30 §4: each came back as a
temporary ``ImageUnavailable`` and the trainer retried every 30 s until the job expired.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import docker
import pytest

from sandbox.errors import ImageBlobError, ImageContentRefused, ImageManifestError
from sandbox.image_blob import load_image
from sandbox.image_check import check_image_tar, unpacked_layers
from sandbox.image_layers import load_layered, split_saved_image


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer(*entries: tuple[str, str | bytes]) -> bytes:
    """A layer tar; an entry whose value is a str is a hard link to that name."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, value in entries:
            info = tarfile.TarInfo(name)
            if isinstance(value, str):
                info.type = tarfile.LNKTYPE
                info.linkname = value
                tar.addfile(info)
            else:
                info.size = len(value)
                tar.addfile(info, io.BytesIO(value))
    return buf.getvalue()


def saved_image(path: Path, layers: list[bytes], diff_ids: list[str] | None = None) -> str:
    """A ``docker save`` tar of ``layers``; returns the image id."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers",
                                    "diff_ids": diff_ids or [sha(x) for x in layers]}},
                        sort_keys=True).encode()
    names = [f"l{i}/layer.tar" for i in range(len(layers))]
    with tarfile.open(path, "w") as tar:
        for name, data in ((n, x) for n, x in zip(names, layers, strict=True)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, data in (("config.json", config), ("manifest.json", json.dumps(
                [{"Config": "config.json", "RepoTags": None, "Layers": names}]).encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return sha(config)


BASE = layer(("bin/sleep", b"\x7fELF" + b"0" * 3000))


@pytest.mark.parametrize("link", [
    ("job/sleep", "bin/sleep"),          # to a file of the layer below
    ("job/passwd", "../../etc/passwd"),  # out of the root
    ("job/self", "job/self"),            # to itself, not yet written
    ("job/later", "job/file"),           # to a file written only after it
])
def test_job_image_13_a_hard_link_out_of_its_layer_is_refused(tmp_path: Path,
                                                              link: tuple[str, str]) -> None:
    job = layer(link, ("job/file", b"x"))
    (tmp_path / "job.tar").write_bytes(job)
    with pytest.raises(ImageContentRefused, match="points out of its layer"):
        unpacked_layers([tmp_path / "job.tar"], None)
    saved = tmp_path / "saved.tar"
    saved_image(saved, [BASE, job])
    with pytest.raises(ImageContentRefused, match="points out of its layer"):
        check_image_tar(saved, 64, 64)


def test_job_image_13_a_hard_link_within_its_layer_is_accepted(tmp_path: Path) -> None:
    job = layer(("job/file", b"x" * 100), ("job/again", "job/file"),
                ("job/dots", "./job/../job/file"))
    (tmp_path / "job.tar").write_bytes(job)
    assert unpacked_layers([tmp_path / "job.tar"], None) == 512 * 2 + 512 + 512


def test_job_image_13_a_gzip_layer_named_by_its_own_digest_is_refused_before_the_engine(
        tmp_path: Path) -> None:
    """The layer file is a gzip and the config's diff_id is the gzip's own SHA-256: it
    passes ``check_layer_file`` (file digest = diff_id), but the engine digests what it
    unpacks, so every load would fail. Refused, permanently, with no engine at all."""
    gz = gzip.compress(layer(("job/train.py", b"print('train')\n")), mtime=0)
    saved = tmp_path / "saved.tar"
    image_id = saved_image(saved, [BASE, gz])
    manifest, config, files = split_saved_image(saved, tmp_path / "layers")
    assert manifest.layers[1].diff_id == sha(gz)
    with pytest.raises(ImageContentRefused, match="compressed"):
        load_layered(None, manifest, config, files, image_id, image_unpacked_mb=64,
                     workdir=tmp_path)
    assert not list(tmp_path.glob("assembled-*"))


def test_job_image_13_a_layer_that_is_no_tar_is_permanent(tmp_path: Path) -> None:
    (tmp_path / "junk.tar").write_bytes(b"\x1f\x8b" + b"junk" * 100)
    with pytest.raises(ImageContentRefused):
        unpacked_layers([tmp_path / "junk.tar"], None)


def test_job_image_13_content_refusals_are_manifest_errors_the_cache_never_retries() -> None:
    """``client.worker.sandboxing.ImageCache`` sorts ``ImageManifestError`` as permanent."""
    assert issubclass(ImageContentRefused, ImageManifestError)
    assert issubclass(ImageContentRefused, ImageBlobError)


@pytest.mark.docker
def test_job_image_13_a_load_the_engine_refuses_for_its_content_is_permanent(
        docker_client: docker.DockerClient, tmp_path: Path) -> None:
    """No checks before the engine here (no declared sizes): the engine itself refuses the
    layer's hard link, and the answer is ``ImageContentRefused``, not a temporary error."""
    saved = tmp_path / "saved.tar"
    image_id = saved_image(saved, [layer(("job/sleep", "bin/sleep"))])
    with pytest.raises(ImageContentRefused, match="refused the image's content"):
        load_image(docker_client, saved, image_id)
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get(image_id)
