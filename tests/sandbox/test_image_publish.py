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
    assert [p.blob for p in published.parts[1:]] == [blob_id_of_bytes(base), blob_id_of_bytes(job)]
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
