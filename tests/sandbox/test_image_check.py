"""Declared image sizes, checked before the engine loads a blob [JOB-IMAGE.5] (issue 13 §5).

Re-packing a saved image's layer with gzip keeps the image id and turns a
small blob into a large unpacked image; the check decompresses each layer
in a bounded stream and refuses it as soon as the declared bound is passed.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import json
import lzma
import tarfile
import time
from pathlib import Path

import docker
import docker.errors
import pytest

from chain.jobspec import ResourceLimits as SpecLimits
from sandbox.base_image import build_image
from sandbox.errors import ImageBlobError
from sandbox.image_blob import blob_image_id, export_image, load_image
from sandbox.image_check import (
    MIB,
    ImageTooLarge,
    check_image_tar,
    image_sizes,
    measure_image,
)
from sandbox.job_file import parse_job
from sandbox.limits import MIB as LIMITS_MIB
from sandbox.limits import from_spec

ZERO_CHUNK = b"\0" * (1 << 20)


class _Zeros(io.RawIOBase):
    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buf: memoryview) -> int:  # type: ignore[override]
        n = min(len(buf), self.left)
        buf[:n] = ZERO_CHUNK[:n] if n <= len(ZERO_CHUNK) else b"\0" * n
        self.left -= n
        return n


def _layer_tar(file_size: int, files: int = 1) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as layer:
        for i in range(files):
            info = tarfile.TarInfo(f"data/zeros{i}")
            info.size = file_size
            layer.addfile(info, io.BufferedReader(_Zeros(file_size)))
    return out.getvalue()


def _saved_image(path: Path, layer_blob: bytes) -> Path:
    with tarfile.open(path, "w") as image:
        for name, data in (("manifest.json", json.dumps(
                [{"Config": "config.json", "Layers": ["l1/layer.tar"]}]).encode()),
                           ("config.json", b"{}"), ("l1/layer.tar", layer_blob)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            image.addfile(info, io.BytesIO(data))
    return path


def test_job_image_5_gzip_bomb_layer_is_refused_before_reading_it_all(tmp_path: Path) -> None:
    raw = _layer_tar(64 * MIB)
    blob = _saved_image(tmp_path / "bomb.tar", gzip.compress(raw, 9))
    assert blob.stat().st_size < MIB
    started = time.monotonic()
    with pytest.raises(ImageTooLarge) as refused:
        check_image_tar(blob, image_mb=1, image_unpacked_mb=8)
    assert refused.value.limit_bytes == 8 * MIB and refused.value.seen_bytes > 8 * MIB
    assert time.monotonic() - started < 2
    assert measure_image(blob).unpacked_bytes == 512 + 64 * MIB


@pytest.mark.parametrize("pack", ["plain", "gzip", "gzip_members", "bz2", "xz"])
def test_job_image_5_every_layer_format_is_measured_alike(tmp_path: Path, pack: str) -> None:
    raw = _layer_tar(3 * MIB + 7, files=3)
    packed = {"plain": lambda: raw, "gzip": lambda: gzip.compress(raw),
              "gzip_members": lambda: b"".join(gzip.compress(raw[i:i + 777_777])
                                               for i in range(0, len(raw), 777_777)),
              "bz2": lambda: bz2.compress(raw), "xz": lambda: lzma.compress(raw)}[pack]()
    blob = _saved_image(tmp_path / f"{pack}.tar", packed)
    sizes = measure_image(blob)
    assert sizes.unpacked_bytes == 3 * (512 + 3 * MIB + 512)
    assert check_image_tar(blob, sizes.image_mb, sizes.image_unpacked_mb) == sizes
    with pytest.raises(ImageTooLarge):
        check_image_tar(blob, sizes.image_mb, 9)
    with pytest.raises(ImageTooLarge, match="blob"):
        check_image_tar(blob, 0, sizes.image_unpacked_mb)


@pytest.mark.parametrize("offset", [-2, -1, 0, 1, 2])
def test_job_image_5_gzip_member_ending_on_a_read_boundary_is_still_counted(
        tmp_path: Path, offset: int) -> None:
    """A first member ending right at the reader's 256 KiB boundary must not end the layer."""
    from sandbox.image_check import READ_SIZE

    raw = _layer_tar(20 * MIB)
    target = 6 + READ_SIZE + offset  # the reader takes 6 magic bytes, then READ_SIZE chunks
    n = target - 100
    while len(gzip.compress(raw[:n], 0, mtime=0)) < target:
        n += 1
    first = gzip.compress(raw[:n], 0, mtime=0)
    assert len(first) == target
    blob = _saved_image(tmp_path / "split.tar", first + gzip.compress(raw[n:], mtime=0))
    assert measure_image(blob).unpacked_bytes == 512 + 20 * MIB
    with pytest.raises(ImageTooLarge):
        check_image_tar(blob, 1, 4)


def test_job_image_5_sparse_file_counts_at_its_apparent_size(tmp_path: Path) -> None:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as layer:
        info = tarfile.TarInfo("GNUSparseFile.0/sparse")
        info.size = 512  # the sparse map block: no data regions at all
        info.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0",
                            "GNU.sparse.name": "sparse",
                            "GNU.sparse.realsize": str(1 << 30)}
        layer.addfile(info, io.BytesIO(b"0\n" + b"\0" * 510))
    blob = _saved_image(tmp_path / "sparse.tar", out.getvalue())
    with pytest.raises(ImageTooLarge):
        check_image_tar(blob, 1, 64)


def test_job_image_5_not_an_image_is_an_image_blob_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"\0" * 4096)
    with pytest.raises(ImageBlobError):
        check_image_tar(junk, 1, 1)
    bomb = tmp_path / "deep.tar"
    with tarfile.open(bomb, "w") as image:
        data = b"[" * 20_000 + b"]" * 20_000
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        image.addfile(info, io.BytesIO(data))
    with pytest.raises(ImageBlobError, match=r"JOB-JSON\.2"):
        check_image_tar(bomb, 1, 1)
    with pytest.raises(ImageBlobError, match=r"JOB-JSON\.2"):
        blob_image_id(bomb)  # before: RecursionError out of the blob check


# -- the declared limits reach the chain [JOB-LIMITS.1], [JOB-FILE.1] -------------------------

JOB = {"kind": "train/v1", "name": "n", "bounty": 1, "expiry_s": 60, "loss_tolerance": 0.0,
       "entry_points": {"train": ["/t"], "evaluate": ["/e"]},
       "limits": {"memory_mb": 512, "cpu_millis": 1000, "time_s": 60, "disk_mb": 64,
                  "model_mb": 4},
       "search_space": []}


def test_job_limits_1_model_mb_reaches_the_chain_and_the_container() -> None:
    job = parse_job(JOB)
    from sandbox.image_check import ImageSizes

    spec = job.spec_limits(ImageSizes(blob_bytes=3 * MIB + 1, unpacked_bytes=10 * MIB))
    assert spec == SpecLimits(512, 1000, 60, 64, model_mb=4, image_mb=4, image_unpacked_mb=10)
    assert SpecLimits.from_wire(spec.to_wire()) == spec
    assert spec.to_wire() == [512, 1000, 60, 64, 4, 4, 10]
    assert from_spec(spec).model_bytes == 4 * LIMITS_MIB  # the worker bounds what was declared
    assert SpecLimits(512, 1000, 60, 64).model_mb == 64  # old callers: the model is the disk


@pytest.mark.parametrize("wire", [
    [512, 1000, 60, 64],                       # the old four-field form
    [512, 1000, 60, 64, 65, 4, 10],            # model larger than the disk
    [512, 1000, 60, 64, 0, 4, 10],             # zero model
    [512, 1000, 60, 64, 4, 0, 10],             # zero image
    [512, 1000, 60, 64, 4, 4, 1 << 21],        # beyond the bound
    [512, 1000, 60, 64, 4, True, 10],          # not an int
])
def test_job_image_5_spec_limits_wire_checks(wire: list[object]) -> None:
    from chain.errors import DecodeError

    with pytest.raises(DecodeError):
        SpecLimits.from_wire(wire)


def test_job_file_2_declared_image_smaller_than_the_image_is_an_error() -> None:
    from sandbox.image_check import ImageSizes

    raw = json.loads(json.dumps(JOB))
    raw["limits"]["image_unpacked_mb"] = 5
    with pytest.raises(ValueError, match="image_unpacked_mb"):
        parse_job(raw).spec_limits(ImageSizes(MIB, 10 * MIB))
    raw["limits"]["model_mb"] = 65
    with pytest.raises(ValueError, match="model_mb"):
        parse_job(raw)
    raw["limits"] = {**JOB["limits"], "gpu": 1}  # type: ignore[dict-item]
    with pytest.raises(ValueError, match=r"unknown key \[limits\] gpu"):
        parse_job(raw)


# -- a real saved image, re-packed -----------------------------------------------------------

def _gzip_repack(blob: Path, dest: Path) -> None:
    """Copy a saved image with every layer gzip-compressed: same image id, smaller blob."""
    with tarfile.open(blob) as src, tarfile.open(dest, "w") as out:
        manifest = json.loads(src.extractfile("manifest.json").read())  # type: ignore[union-attr]
        layers = set(manifest[0]["Layers"])
        for member in src.getmembers():
            data = src.extractfile(member) if member.isreg() else None
            if member.name in layers and data is not None:
                packed = gzip.compress(data.read(), 6)
                member.size = len(packed)
                out.addfile(member, io.BytesIO(packed))
            else:
                out.addfile(member, data)


@pytest.mark.docker
def test_job_image_5_gzip_repacked_real_image_keeps_its_id_and_is_refused(
        docker_client: docker.DockerClient, base_image: str,
        tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    from sandbox.base_image import ROOTFS_TAG

    context = tmp_path_factory.mktemp("zeros")
    (context / "Dockerfile").write_text(
        f"FROM {ROOTFS_TAG}\nUSER 0:0\n"
        "RUN dd if=/dev/zero of=/zeros bs=1M count=96 status=none\nUSER 65534:65534\n")
    image = build_image(docker_client, context, "learningchain/test-zeros:latest",
                        lambda _m: None)
    try:
        saved = export_image(docker_client, image, tmp_path / "saved.tar")
        honest = image_sizes(docker_client, image, saved.path)
        assert check_image_tar(saved.path, honest.image_mb, honest.image_unpacked_mb) == \
            measure_image(saved.path)
        repacked = tmp_path / "repacked.tar"
        _gzip_repack(saved.path, repacked)
        assert blob_image_id(repacked) == image  # the id does not see the compression
        small = repacked.stat().st_size
        assert small * 4 < saved.size, (small, saved.size)  # 96 MiB of zeros + the rootfs
        declared_mb = max(1, small // MIB + 1)  # what a lying submitter declares
        with pytest.raises(ImageTooLarge, match="unpacked"):
            check_image_tar(repacked, declared_mb, declared_mb)
        docker_client.images.remove(image, force=True)
        with pytest.raises(ImageTooLarge):
            load_image(docker_client, repacked, image, image_mb=declared_mb,
                       image_unpacked_mb=declared_mb)
        with pytest.raises(docker.errors.ImageNotFound):
            docker_client.images.get(image)  # the engine never saw it
        # Declared honestly, the re-packed blob passes and loads as the same image.
        assert load_image(docker_client, repacked, image, image_mb=declared_mb,
                          image_unpacked_mb=honest.image_unpacked_mb) == image
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker_client.images.remove(image, force=True)
