"""Images by layer [JOB-IMAGE.6-8]: the manifest, its checks, and the ``docker load`` tar
a worker assembles, tried with hostile manifests, configs and layers (no engine needed)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest

from chain.content import blob_id_of_bytes
from sandbox.errors import ImageDigestMismatch
from sandbox.image_blob import blob_image_id
from sandbox.image_check import ImageTooLarge, unpacked_layers
from sandbox.image_layers import (
    MAGIC,
    MAX_LAYERS,
    MAX_MANIFEST_BYTES,
    ImageManifest,
    ImageManifestError,
    LayerRef,
    assemble,
    check_config,
    held_prefix,
    is_manifest,
    load_layered,
    parse_manifest,
    split_saved_image,
)


def layer_tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Image:
    """A two-layer image, as ``docker save`` writes it: base layer, then the job's."""

    def __init__(self, root: Path) -> None:
        self.base = layer_tar({"bin/sleep": b"\x7fELF" + b"0" * 3000})
        self.job = layer_tar({"job/train.py": b"print('train')\n"})
        self.config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {
            "type": "layers", "diff_ids": [sha(self.base), sha(self.job)]}}).encode()
        self.image_id = sha(self.config)
        self.saved = root / "saved.tar"
        with tarfile.open(self.saved, "w") as tar:
            for name, data in (("aaa/layer.tar", self.base), ("bbb/layer.tar", self.job),
                               ("cfg.json", self.config),
                               ("manifest.json", json.dumps([{
                                   "Config": "cfg.json", "RepoTags": None,
                                   "Layers": ["aaa/layer.tar", "bbb/layer.tar"]}]).encode())):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


@pytest.fixture
def image(tmp_path: Path) -> Image:
    return Image(tmp_path)


def test_job_image_6_split_gives_a_canonical_manifest_of_checked_layer_blobs(
        image: Image, tmp_path: Path) -> None:
    manifest, config, files = split_saved_image(image.saved, tmp_path / "layers")
    assert manifest.image_id == image.image_id == blob_image_id(image.saved)
    assert config == image.config
    assert manifest.config_blob == blob_id_of_bytes(image.config)
    assert [(x.diff_id, x.blob, x.size) for x in manifest.layers] == [
        (sha(image.base), blob_id_of_bytes(image.base), len(image.base)),
        (sha(image.job), blob_id_of_bytes(image.job), len(image.job))]
    assert files[sha(image.job)].read_bytes() == image.job
    data = manifest.to_bytes()
    assert data.startswith(MAGIC) and parse_manifest(data) == manifest
    assert manifest.total_size == len(image.config) + len(image.base) + len(image.job)
    (tmp_path / "m").write_bytes(data)
    assert is_manifest(tmp_path / "m") and not is_manifest(image.saved)


def test_job_image_8_assembled_tar_holds_only_the_missing_layers_under_names_from_digests(
        image: Image, tmp_path: Path) -> None:
    manifest, config, files = split_saved_image(image.saved, tmp_path / "layers")
    job_only = {sha(image.job): files[sha(image.job)]}
    out = assemble(manifest, config, job_only, tmp_path / "load.tar")
    with tarfile.open(out) as tar:
        names = tar.getnames()
        index = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        job_layer = tar.extractfile(f"{sha(image.job)[7:]}/layer.tar").read()  # type: ignore[union-attr]
    assert sorted(names) == sorted([image.image_id[7:] + ".json",
                                    f"{sha(image.job)[7:]}/layer.tar", "manifest.json"])
    assert index == [{"Config": image.image_id[7:] + ".json", "RepoTags": None,
                      "Layers": [f"{sha(image.base)[7:]}/layer.tar",
                                 f"{sha(image.job)[7:]}/layer.tar"]}]
    assert job_layer == image.job
    assert blob_image_id(out) == image.image_id
    assert not any(".." in n or n.startswith("/") for n in names)


def test_job_image_7_a_layer_whose_bytes_differ_from_its_diff_id_is_refused(
        image: Image, tmp_path: Path) -> None:
    manifest, config, files = split_saved_image(image.saved, tmp_path / "layers")
    forged = tmp_path / "forged.tar"
    forged.write_bytes(image.job.replace(b"print('train')", b"print('tRAIN')"))
    assert forged.stat().st_size == len(image.job)
    with pytest.raises(ImageManifestError, match="not the config's"):
        assemble(manifest, config, {sha(image.job): forged}, tmp_path / "load.tar")
    short = tmp_path / "short.tar"
    short.write_bytes(image.job[:-512])
    with pytest.raises(ImageManifestError, match="manifest says"):
        assemble(manifest, config, {sha(image.job): short}, tmp_path / "load2.tar")


def test_job_image_7_a_config_of_another_image_or_other_layers_is_refused(
        image: Image, tmp_path: Path) -> None:
    manifest, config, _files = split_saved_image(image.saved, tmp_path / "layers")
    with pytest.raises(ImageDigestMismatch):
        check_config(manifest, config + b" ")
    swapped = replace(manifest, layers=manifest.layers[::-1])
    with pytest.raises(ImageManifestError, match="differ from the manifest's layers"):
        check_config(swapped, config)
    missing = replace(manifest, layers=manifest.layers[1:])
    with pytest.raises(ImageManifestError, match="differ"):
        check_config(missing, config)


def test_job_image_8_load_refuses_a_manifest_of_another_image_before_the_engine(
        image: Image, tmp_path: Path) -> None:
    manifest, config, files = split_saved_image(image.saved, tmp_path / "layers")
    other = "sha256:" + "ab" * 32
    with pytest.raises(ImageDigestMismatch):
        load_layered(None, manifest, config, files, other, image_unpacked_mb=1,
                     workdir=tmp_path)
    assert not list(tmp_path.glob("assembled-*"))


def test_job_image_5_fetched_layers_are_measured_unpacked_against_the_bound(
        tmp_path: Path) -> None:
    big = tmp_path / "big.tar"
    big.write_bytes(layer_tar({f"f{i}": b"x" * 4096 for i in range(40)}))
    assert unpacked_layers([big], None) == 40 * (512 + 4096)
    with pytest.raises(ImageTooLarge):
        unpacked_layers([big], 100_000)


def good_manifest() -> ImageManifest:
    return ImageManifest("sha256:" + "1" * 64, b"\x02" * 32, 100,
                         (LayerRef("sha256:" + "3" * 64, b"\xab" * 32, 2048),))


def mutate(edit: str) -> bytes:
    body = json.loads(good_manifest().to_bytes()[len(MAGIC):])
    layer = body["layers"][0]
    match edit:
        case "traversal diff_id":
            layer["diff_id"] = "sha256:../../../etc/passwd" + "0" * 38
        case "upper-case blob":
            layer["blob"] = layer["blob"].upper()
        case "zero size":
            layer["size"] = 0
        case "bool size":
            layer["size"] = True
        case "huge layer":
            layer["size"] = 5 * 1024**3
        case "extra key":
            layer["path"] = "../x"
        case "no layers":
            body["layers"] = []
        case "too many layers":
            body["layers"] = [layer] * (MAX_LAYERS + 1)
        case "huge config":
            body["config"]["size"] = 64 * 1024 * 1024
        case "image id not a digest":
            body["image_id"] = "latest"
    return MAGIC + json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


@pytest.mark.parametrize("edit", ["traversal diff_id", "upper-case blob", "zero size",
                                  "bool size", "huge layer", "extra key", "no layers",
                                  "too many layers", "huge config", "image id not a digest"])
def test_job_image_6_hostile_manifests_are_refused(edit: str) -> None:
    with pytest.raises(ImageManifestError):
        parse_manifest(mutate(edit))


def test_job_image_6_only_the_canonical_encoding_of_a_good_manifest_is_accepted() -> None:
    data = good_manifest().to_bytes()
    assert parse_manifest(data) == good_manifest()
    spaced = MAGIC + json.dumps(json.loads(data[len(MAGIC):]), sort_keys=True).encode()
    with pytest.raises(ImageManifestError, match="canonical"):
        parse_manifest(spaced)
    with pytest.raises(ImageManifestError, match="start with"):
        parse_manifest(b"LCIMG/3\n" + data[len(MAGIC):])
    with pytest.raises(ImageManifestError, match="more than"):
        parse_manifest(data + b" " * MAX_MANIFEST_BYTES)
    with pytest.raises(ImageManifestError):
        parse_manifest(MAGIC + b'{"config":')


def test_job_image_8_the_engine_holds_the_longest_shared_chain_of_layers() -> None:
    a, b, c = ("sha256:" + d * 64 for d in "abc")
    assert held_prefix([a, b, c], []) == 0
    assert held_prefix([a, b, c], [[a, b]]) == 2
    assert held_prefix([a, b, c], [[b], [a, c, b], [a]]) == 1  # a layer counts on its chain
    assert held_prefix([a, b], [[a, b, c]]) == 2
