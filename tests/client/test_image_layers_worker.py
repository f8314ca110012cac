"""A worker given a hostile image manifest refuses the job for good, before the engine
loads anything [JOB-IMAGE.6-7]: the worker's ``ImageCache`` with a real node's blob
store; the engine (the host's) is only asked which images it holds."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from chain.content import blob_id_of_bytes
from chain.jobspec import JobSpec
from chain.types import Hash32
from client.worker.sandboxing import ImageCache, ImageUnavailable, Threads
from sandbox.engine import connect
from sandbox.image_blob import digest_bytes
from sandbox.image_layers import ImageManifest, LayerRef, split_saved_image
from tests.framework.solo import SoloNode
from tests.ledger.harness import job_spec, make_genesis
from tests.sandbox.test_image_layers import Image
from tests.sandbox.test_image_manifest_v2 import V2, refused_cases


def forge_config(image: Image, manifest: ImageManifest) -> tuple[ImageManifest, bytes]:
    """A config listing only the job's layer, with the manifest naming both layers."""
    config = json.dumps({"rootfs": {"type": "layers",
                                    "diff_ids": [manifest.layers[1].diff_id]}}).encode()
    image_id = "sha256:" + hashlib.sha256(config).hexdigest()
    return replace(manifest, image_id=image_id, config_blob=blob_id_of_bytes(config),
                   config_size=len(config)), config


def forge_layer(image: Image, manifest: ImageManifest) -> tuple[ImageManifest, bytes]:
    """The job's layer blob replaced by other bytes of the same size: the diff_id stays."""
    forged = image.job.replace(b"print('train')", b"print('tRAIN')")
    job = manifest.layers[1]
    return replace(manifest, layers=(manifest.layers[0], LayerRef(
        job.diff_id, blob_id_of_bytes(forged), len(forged)))), forged


def understate_size(image: Image, manifest: ImageManifest) -> tuple[ImageManifest, bytes]:
    """The manifest says the base layer is 512 bytes; its blob is larger."""
    base = manifest.layers[0]
    return replace(manifest, layers=(LayerRef(base.diff_id, base.blob, 512),
                                     manifest.layers[1])), b""


CASES: dict[str, tuple[Callable[[Image, ImageManifest], tuple[ImageManifest, bytes]], str]] = {
    "config lists other layers": (forge_config, "differ from the manifest's layers"),
    "layer bytes not its diff_id": (forge_layer, "not the config's"),
    "layer larger than declared": (understate_size, "more than the 512 declared"),
}


@pytest.mark.parametrize("case", sorted(CASES))
async def test_job_image_7_a_hostile_manifest_is_refused_for_good(case: str,
                                                                  tmp_path: Path) -> None:
    image = Image(tmp_path)
    manifest, config, files = split_saved_image(image.saved, tmp_path / "layers")
    hostile, extra = CASES[case][0](image, manifest)
    genesis, keys = make_genesis()
    async with SoloNode(genesis, keys["v0"], tmp_path / "node") as node:
        parts = {"config": config, "base": image.base, "job": image.job, "extra": extra}
        if case == "config lists other layers":
            parts["config"] = extra
        for name, data in parts.items():
            if data:
                (tmp_path / name).write_bytes(data)
                node.put_blob_file(tmp_path / name)
        (tmp_path / "manifest").write_bytes(hostile.to_bytes())
        blob = node.put_blob_file(tmp_path / "manifest")
        spec: JobSpec = replace(job_spec(), image_digest=Hash32(digest_bytes(hostile.image_id)),
                                image_blob=Hash32(blob))
        images = ImageCache(node, connect(), Threads())
        with pytest.raises(ImageUnavailable, match=CASES[case][1]) as refused:
            await images.ensure(spec, "hostile")
    assert refused.value.permanent
    assert not list((node.data_dir / "image-assembly").glob("*.tar"))


async def test_job_image_7_a_manifest_of_another_image_or_too_large_is_refused_unfetched(
        tmp_path: Path) -> None:
    """Neither the config nor any layer is on the node: a refusal before fetching them."""
    image = Image(tmp_path)
    manifest, _config, _files = split_saved_image(image.saved, tmp_path / "layers")
    genesis, keys = make_genesis()
    async with SoloNode(genesis, keys["v0"], tmp_path / "node") as node:
        (tmp_path / "manifest").write_bytes(manifest.to_bytes())
        blob = node.put_blob_file(tmp_path / "manifest")
        base = replace(job_spec(), image_blob=Hash32(blob))
        other = replace(base, image_digest=Hash32(b"\x33" * 32))
        small = replace(base, image_digest=Hash32(digest_bytes(manifest.image_id)))
        small = replace(small, limits=replace(small.limits, image_mb=1))
        huge = replace(manifest, layers=(LayerRef(manifest.layers[0].diff_id, b"\x01" * 32,
                                                  2 * 1024**2), manifest.layers[1]))
        (tmp_path / "huge").write_bytes(huge.to_bytes())
        huge_spec = replace(small, image_blob=Hash32(node.put_blob_file(tmp_path / "huge")))
        images = ImageCache(node, connect(), Threads())
        for spec, why in ((other, "image digest mismatch"),
                          (huge_spec, "exceeds the declared")):
            with pytest.raises(ImageUnavailable, match=why) as refused:
                await images.ensure(spec, "hostile")
            assert refused.value.permanent
    assert small.limits.image_mb * 1024 * 1024 < huge.total_size


@pytest.mark.parametrize("case", ["bomb", "truncated", "trailing_bytes", "config_not_the_image"])
async def test_job_image_11_a_hostile_v2_manifest_is_refused_for_good_by_the_worker(
        case: str, tmp_path: Path) -> None:
    """[JOB-IMAGE.11] The worker's ``ImageCache`` refuses a v2 bomb, a cut or padded stream
    and a config that is not the image's once inflated: permanently, fetching no layer."""
    data, why = refused_cases()[case]
    genesis, keys = make_genesis()
    async with SoloNode(genesis, keys["v0"], tmp_path / "node") as node:
        (tmp_path / "manifest").write_bytes(data)
        blob = node.put_blob_file(tmp_path / "manifest")
        spec: JobSpec = replace(job_spec(), image_digest=Hash32(digest_bytes(V2.image_id)),
                                image_blob=Hash32(blob))
        images = ImageCache(node, connect(), Threads())
        with pytest.raises(ImageUnavailable, match=why) as refused:
            await images.ensure(spec, "hostile")
    assert refused.value.permanent
    assert not list((node.data_dir / "image-assembly").glob("*.tar"))
