"""The submitter's layer cache [JOB-IMAGE.6]: a save stream split into checked layer blobs,
cached layers passed over by size and proved by the config, and a wrong guess read again.

The engine is a stub serving a ``docker save`` stream of synthetic images (layers over
1 MiB, as the base's are); the real engine path is tests/client/test_image_layers_docker.py.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chain.content import blob_id_of_bytes
from sandbox.image_layers import parse_manifest
from sandbox.image_publish import LayerCache
from tests.sandbox.test_image_layers import layer_tar

MIB = 1024 * 1024


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class StubEngine:
    """``images.get(id).save()`` and ``api.inspect_image`` for images made of given layers."""

    def __init__(self) -> None:
        self.saved: dict[str, bytes] = {}
        self.saves = 0
        self.images = self
        self.api = self

    def add(self, layers: list[bytes]) -> str:
        config = json.dumps({"os": "linux", "rootfs": {
            "type": "layers", "diff_ids": [sha(x) for x in layers]}}).encode()
        image_id = sha(config)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            files = [(f"{i:02d}{os.urandom(4).hex()}/layer.tar", x) for i, x in enumerate(layers)]
            index = [{"Config": image_id[7:] + ".json", "RepoTags": None,
                      "Layers": [name for name, _ in files]}]
            for name, data in [*files, (image_id[7:] + ".json", config),
                               ("manifest.json", json.dumps(index).encode())]:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        self.saved[image_id] = buf.getvalue()
        return image_id

    def get(self, image_id: str) -> Any:
        engine = self

        class Image:
            def save(self, chunk_size: int, named: bool) -> Iterator[bytes]:
                engine.saves += 1
                data = engine.saved[image_id]
                return iter([data[i:i + chunk_size] for i in range(0, len(data), chunk_size)])
        return Image()

    def inspect_image(self, image_id: str) -> dict[str, Any]:
        return {"Size": 0}


def big_layer(fill: bytes) -> bytes:
    return layer_tar({"lib/big.bin": fill * (3 * MIB // len(fill))})


def test_job_image_6_an_image_is_split_once_and_cached_layers_are_proved_by_the_config(
        tmp_path: Path) -> None:
    engine = StubEngine()
    base = big_layer(b"a")
    job = layer_tar({"job/train.py": b"print(1)\n"})
    first = engine.add([base, job])
    cache = LayerCache(tmp_path / "cache")
    published = cache.publish(engine, first)
    assert published.exported and engine.saves == 1
    assert [x.diff_id for x in published.manifest.layers] == [sha(base), sha(job)]
    assert cache.layer_path(sha(base)).read_bytes() == base
    assert parse_manifest(published.manifest_file.path.read_bytes()) == published.manifest
    # v2 by default [JOB-IMAGE.10]: the config is inside the manifest, not a blob of its own.
    assert published.manifest.version == 2 and published.manifest_file.path.read_bytes(
        ).startswith(b"LCIMG/2\n")
    assert [p.blob for p in published.parts] == [blob_id_of_bytes(base), blob_id_of_bytes(job)]
    assert published.sizes.unpacked_bytes > len(b"a" * (3 * MIB))
    again = cache.publish(engine, first)
    assert not again.exported and engine.saves == 1 and again.manifest == published.manifest

    # A new image on the same base: the base passed over by size, proved by the config.
    second = engine.add([base, layer_tar({"job/train.py": b"print(2)\n"})])
    assert cache.publish(engine, second).manifest.layers[0].diff_id == sha(base)
    assert engine.saves == 2

    # A different layer of the base's exact size: skipped at first, then read for real.
    twin = big_layer(b"b")
    assert len(twin) == len(base) and sha(twin) != sha(base)
    third = engine.add([twin, job])
    split = cache.publish(engine, third)
    assert engine.saves == 4, "the wrong guess costs one more read, never a wrong layer"
    assert split.manifest.layers[0].diff_id == sha(twin)
    assert cache.layer_path(sha(twin)).read_bytes() == twin


def test_job_image_10_a_cached_manifest_is_re_encoded_to_the_version_asked_not_exported(
        tmp_path: Path) -> None:
    """[JOB-IMAGE.10] v1 and v2 of one image: same image id, layers and config; v1 lists the
    config as a blob to upload, v2 carries it; switching version needs no second save."""
    engine = StubEngine()
    image_id = engine.add([big_layer(b"a"), layer_tar({"job/train.py": b"print(1)\n"})])
    v1 = LayerCache(tmp_path / "cache", version=1).publish(engine, image_id)
    v2 = LayerCache(tmp_path / "cache").publish(engine, image_id)
    assert engine.saves == 1 and v1.manifest.version == 1 and v2.manifest.version == 2
    assert v2.manifest.image_id == v1.manifest.image_id == image_id
    assert v2.manifest.layers == v1.manifest.layers
    config = v1.parts[0].path.read_bytes()
    assert v1.parts[0].what == "config" and v2.manifest.config == config
    assert [p.what for p in v2.parts] == [p.what for p in v1.parts[1:]]
    assert v2.manifest_file.size < v1.manifest_file.size + v1.parts[0].size
    back = LayerCache(tmp_path / "cache", version=1).publish(engine, image_id)
    assert back.manifest_file.blob == v1.manifest_file.blob and engine.saves == 1
    with pytest.raises(ValueError, match="version"):
        LayerCache(tmp_path / "cache", version=3)
