"""Image manifest v2 [JOB-IMAGE.10-11]: the config inside the manifest, both compressed.

Tried with hostile streams (a decompression bomb, a truncated stream, bytes after
the stream, a config that does not hash to the image id once inflated, a body
that is not canonical) and with v1, which must keep decoding byte for byte.
Vectors: protocol_spec/vectors/image_manifest.json (``LC_WRITE_VECTORS=1``).
"""

from __future__ import annotations

import hashlib
import json
import tracemalloc
import zlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.content import blob_id_of_bytes
from sandbox.errors import ImageBlobError, ImageDigestMismatch
from sandbox.image_deflate import InflateError, deflate, inflate_bounded
from sandbox.image_layers import (
    MAGIC,
    MAGIC_V2,
    MAX_PAYLOAD_V2_BYTES,
    ImageManifest,
    ImageManifestError,
    LayerRef,
    is_manifest,
    parse_manifest,
)
from tests.ledger.vector_files import check_vector_file


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


BASE = b"base layer bytes" * 64
JOB = b"job layer bytes" * 64
CONFIG = json.dumps({"architecture": "amd64", "config": {"Cmd": ["/bin/sleep"]}, "os": "linux",
                     "rootfs": {"diff_ids": [sha(BASE), sha(JOB)], "type": "layers"}},
                    sort_keys=True).encode()
LAYERS = (LayerRef(sha(BASE), blob_id_of_bytes(BASE), len(BASE)),
          LayerRef(sha(JOB), blob_id_of_bytes(JOB), len(JOB)))
V1 = ImageManifest(sha(CONFIG), blob_id_of_bytes(CONFIG), len(CONFIG), LAYERS)
V2 = V1.as_version(2, CONFIG)


def v2_blob(payload: bytes) -> bytes:
    return MAGIC_V2 + deflate(payload)


def body_of(manifest: ImageManifest) -> bytes:
    return manifest.body()


def refused_cases() -> dict[str, tuple[bytes, str]]:
    """name -> (manifest blob, a part of the refusal's message): each breaks one rule."""
    good = V2.to_bytes()
    body = body_of(V2)
    other_config = CONFIG.replace(b"/bin/sleep", b"/bin/sleeq")
    spaced = json.dumps(json.loads(body), sort_keys=True).encode()
    v1_body = body_of(V1)
    lying_size = body.replace(f'"size":{len(CONFIG)}'.encode(),
                              f'"size":{len(CONFIG) + 1}'.encode())
    other_layers = CONFIG.replace(sha(JOB).encode(), sha(BASE).encode())
    bomb = zlib.compressobj(9)
    bomb_stream = b"".join(bomb.compress(b"\0" * (1 << 20)) for _ in range(5)) + bomb.flush()
    return {
        "bomb": (MAGIC_V2 + bomb_stream, "inflates past"),
        "truncated": (good[:-4], "truncated"),
        "trailing_bytes": (good + b"\0", "after the end"),
        "not_zlib": (MAGIC_V2 + body + b"\n" + CONFIG, "not valid zlib"),
        "config_not_the_image": (v2_blob(body + b"\n" + other_config), "digest mismatch"),
        "config_lists_other_layers": (
            v2_blob(body.replace(sha(CONFIG).encode(), sha(other_layers).encode())
                    + b"\n" + other_layers), "differ from the manifest's layers"),
        "config_size_lies": (v2_blob(lying_size + b"\n" + CONFIG), "carries"),
        "body_not_canonical": (v2_blob(spaced + b"\n" + CONFIG), "canonical"),
        "no_body_line": (v2_blob(body), "no body line"),
        "v1_body_in_v2": (v2_blob(v1_body + b"\n" + CONFIG), "exactly the keys"),
    }


def vectors() -> dict[str, Any]:
    accepted = []
    for name, manifest in (("v1", V1), ("v2", V2)):
        data = manifest.to_bytes()
        accepted.append({"name": name, "manifest_hex": data.hex(),
                         "blob_id": blob_id_of_bytes(data).hex(), "image_id": manifest.image_id,
                         "config_size": manifest.config_size,
                         "config_blob": manifest.config_blob.hex() if name == "v1" else None,
                         "layers": [{"blob": x.blob.hex(), "diff_id": x.diff_id, "size": x.size}
                                    for x in manifest.layers]})
    return {
        "about": "Image manifests [JOB-IMAGE.6] (v1) and [JOB-IMAGE.10-11] (v2). The image "
                 "config is config_hex; its SHA-256 is the image id. Every accepted manifest "
                 "parses to its fields (v2 carries the config: inflated, it is config_hex); "
                 "every refused one must be refused (error_contains: what the reference "
                 "implementation's message says). v2 bytes are zlib level 9 of the Python "
                 "stdlib; another deflate may produce other bytes, which a reader accepts.",
        "config_hex": CONFIG.hex(),
        "max_payload_v2_bytes": MAX_PAYLOAD_V2_BYTES,
        "accepted": accepted,
        "refused": [{"name": name, "manifest_hex": data.hex(), "error_contains": why}
                    for name, (data, why) in refused_cases().items()],
    }


def test_job_image_10_vectors_v1_byte_identical_and_v2_carries_the_config() -> None:
    """[JOB-IMAGE.6] [JOB-IMAGE.10] Both versions parse from the vectors to the same image;
    v1 is still accepted and encodes to the same bytes; v2 holds the config itself."""
    check_vector_file("image_manifest.json", vectors())
    for case in vectors()["accepted"]:
        data = bytes.fromhex(case["manifest_hex"])
        manifest = parse_manifest(data)
        assert manifest.to_bytes() == data and manifest.image_id == sha(CONFIG)
        assert manifest.layers == LAYERS and manifest.config_size == len(CONFIG)
    assert parse_manifest(V1.to_bytes()) == V1 and V1.to_bytes().startswith(MAGIC)
    assert parse_manifest(V2.to_bytes()).config == CONFIG and V2.version == 2
    assert V2.config_blob == V1.config_blob  # the same config, not on the wire in v2


@pytest.mark.parametrize("name", sorted(refused_cases()))
def test_job_image_11_hostile_v2_manifests_are_refused_with_what_is_wrong(name: str) -> None:
    """[JOB-IMAGE.11] A bomb, a cut or padded stream, a config that is not the image's once
    inflated, a lying size, a non-canonical body: each refused for good (a manifest or
    digest error, which the worker treats as permanent), the message saying why."""
    data, why = refused_cases()[name]
    with pytest.raises((ImageManifestError, ImageDigestMismatch), match=why):
        parse_manifest(data)


def test_job_image_11_a_bomb_is_stopped_while_inflating(tmp_path: Path) -> None:
    """[JOB-IMAGE.11] 64 MiB of zeros in 64 KB: refused without inflating them all (the
    peak memory stays near the 4.1 MiB bound, not 64 MiB)."""
    squeeze = zlib.compressobj(9)
    stream = b"".join(squeeze.compress(b"\0" * (1 << 20)) for _ in range(64)) + squeeze.flush()
    tracemalloc.start()
    try:
        with pytest.raises(InflateError, match="inflates past"):
            inflate_bounded(stream, MAX_PAYLOAD_V2_BYTES)
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3 * MAX_PAYLOAD_V2_BYTES < 64 << 20
    assert inflate_bounded(deflate(b"x" * 1000), 1000) == b"x" * 1000
    with pytest.raises(InflateError, match="past 999"):
        inflate_bounded(deflate(b"x" * 1000), 999)
    (tmp_path / "m").write_bytes(V2.to_bytes())
    assert is_manifest(tmp_path / "m")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_job_image_11_any_bytes_after_the_v2_magic_give_a_manifest_or_a_clear_refusal(
        tail: bytes) -> None:
    """[JOB-IMAGE.11] No input crashes the parser with anything but a blob error."""
    try:
        parse_manifest(MAGIC_V2 + tail)
    except ImageBlobError as e:
        assert str(e)


@settings(max_examples=50, deadline=None)
@given(st.integers(0, len(V2.to_bytes()) - 1), st.integers(1, 255))
def test_job_image_11_a_flipped_byte_never_yields_another_image(at: int, flip: int) -> None:
    """[JOB-IMAGE.11] One changed byte anywhere in a v2 blob is refused, or (in zlib's
    unchecked header bits) still parses to exactly the same image."""
    data = bytearray(V2.to_bytes())
    data[at] ^= flip
    try:
        manifest = parse_manifest(bytes(data))
    except ImageBlobError:
        return
    assert manifest == V2
