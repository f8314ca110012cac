"""Job images by layer: a small manifest blob naming the config and layer blobs [JOB-IMAGE.6-11].

A saved-image tar holds the base image's gigabyte in every job's blob. Here an
image travels as its parts instead, each a content-addressed blob: the
config (whose SHA-256 is the image id), and one blob per layer (the
uncompressed layer tar, whose SHA-256 is its ``diff_id``). The **image
manifest** lists them; ``JobSpec.image_blob`` names the manifest, so the wire
form of a job is unchanged. A worker fetches only the layers its engine
lacks, checks every part, and assembles a ``docker load`` tar from what it
fetched (``assemble``). A v2 manifest [JOB-IMAGE.10] carries the config inside
it, both compressed: one blob of about 1.3 KB instead of 0.7 KB + 2.9 KB.

Parsing, checking and assembling do no network I/O; the caller fetches.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chain.content import blob_id_of_bytes, hash_file
from sandbox.errors import ImageBlobError, ImageDigestMismatch, ImageManifestError  # noqa: F401 (re-exported)
from sandbox.image_blob import blob_image_id, load_image, normalize_image_id
from sandbox.image_check import MIB, unpacked_layers
from sandbox.image_deflate import InflateError, deflate, inflate_bounded
from sandbox.job_json import JobJsonError, JsonBounds, parse_json

MAGIC = b"LCIMG/1\n"
"""First bytes of a manifest blob; a saved-image tar starts with a file name instead."""
MAGIC_V2 = b"LCIMG/2\n"
"""First bytes of a v2 manifest blob [JOB-IMAGE.10]: then one zlib stream."""
MAX_MANIFEST_BYTES = 128 * 1024
MAX_CONFIG_BYTES = 4 * 1024 * 1024
MAX_PAYLOAD_V2_BYTES = MAX_MANIFEST_BYTES + MAX_CONFIG_BYTES
"""[JOB-IMAGE.11] A v2 payload inflates to at most this: the body, ``\n``, the config."""
MAX_MANIFEST_BLOB_BYTES = len(MAGIC_V2) + MAX_PAYLOAD_V2_BYTES
"""The largest manifest blob of either version a worker reads (v1: ``MAX_MANIFEST_BYTES``)."""
MAX_LAYERS = 256
MAX_LAYER_BYTES = 4 * 1024**3
DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
BLOB_RE = re.compile(r"^[0-9a-f]{64}$")
COPY_CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class LayerRef:
    """One layer: its ``diff_id`` (SHA-256 of the layer tar), blob id and size in bytes."""

    diff_id: str
    blob: bytes
    size: int


@dataclass(frozen=True, slots=True)
class ImageManifest:
    """[JOB-IMAGE.6] The parts of one image, in the order the config's ``rootfs`` lists them."""

    image_id: str
    config_blob: bytes
    """v1: the config's blob id. v2: the id its bytes would have (not on the wire)."""
    config_size: int
    layers: tuple[LayerRef, ...]
    config: bytes | None = None
    """v2 [JOB-IMAGE.10]: the config itself, carried in the manifest; None: v1."""

    @property
    def version(self) -> int:
        return 1 if self.config is None else 2

    def as_version(self, version: int, config: bytes) -> ImageManifest:
        """The same image's manifest of ``version``, ``config`` being the image's config."""
        return ImageManifest(self.image_id, blob_id_of_bytes(config), len(config), self.layers,
                             config if version == 2 else None)

    @property
    def total_size(self) -> int:
        """Bytes of the config and every layer: what a worker holding nothing fetches."""
        return self.config_size + sum(layer.size for layer in self.layers)

    def body(self) -> bytes:
        """The canonical JSON body: sorted keys, no spaces (v2: the config has no blob id)."""
        config: dict[str, object] = {"size": self.config_size}
        if self.config is None:
            config["blob"] = self.config_blob.hex()
        body = {
            "config": config,
            "image_id": self.image_id,
            "layers": [{"blob": layer.blob.hex(), "diff_id": layer.diff_id,
                        "size": layer.size} for layer in self.layers],
        }
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode("ascii")

    def to_bytes(self) -> bytes:
        """v1: ``MAGIC`` then the body. v2 [JOB-IMAGE.10]: ``MAGIC_V2`` then the zlib
        stream of the body, ``\n`` and the config."""
        if self.config is None:
            return MAGIC + self.body()
        return MAGIC_V2 + deflate(self.body() + b"\n" + self.config)


def is_manifest(path: Path) -> bool:
    """True when the blob at ``path`` is an image manifest, not a saved-image tar."""
    with open(path, "rb") as f:
        return f.read(len(MAGIC)) in (MAGIC, MAGIC_V2)


def parse_manifest(data: bytes) -> ImageManifest:
    """[JOB-IMAGE.6] The manifest in ``data``, or ``ImageManifestError`` saying what is wrong.

    Only the canonical body is accepted, so one image has one v1 manifest blob id.
    A v2 blob [JOB-IMAGE.10-11] is inflated within its bound first and its config is
    checked at once: its SHA-256, over the inflated bytes, must be the image id.
    """
    if data.startswith(MAGIC_V2):
        return _parse_v2(data)
    if len(data) > MAX_MANIFEST_BYTES:
        raise ImageManifestError(f"manifest is {len(data)} bytes, more than {MAX_MANIFEST_BYTES}")
    if not data.startswith(MAGIC):
        raise ImageManifestError(f"manifest does not start with {MAGIC!r} or {MAGIC_V2!r}: "
                                 f"{data[:16]!r}")
    manifest = _parse_body(data[len(MAGIC):], None)
    if manifest.to_bytes() != data:
        raise ImageManifestError("manifest is not in canonical form (sorted keys, no spaces)")
    return manifest


def _parse_v2(data: bytes) -> ImageManifest:
    """[JOB-IMAGE.10-11] Inflate (bounded), split body and config, check both."""
    if len(data) > MAX_MANIFEST_BLOB_BYTES:
        raise ImageManifestError(f"v2 manifest is {len(data)} bytes, more than "
                                 f"{MAX_MANIFEST_BLOB_BYTES}")
    try:
        payload = inflate_bounded(data[len(MAGIC_V2):], MAX_PAYLOAD_V2_BYTES)
    except InflateError as e:  # the blob id fixes the bytes: refused for good, as any other
        raise ImageManifestError(str(e)) from None
    body, newline, config = payload.partition(b"\n")
    if not newline or len(body) > MAX_MANIFEST_BYTES:
        raise ImageManifestError(f"v2 manifest payload has no body line of at most "
                                 f"{MAX_MANIFEST_BYTES} bytes: {payload[:60]!r}")
    manifest = _parse_body(body, config)
    if manifest.body() != body:
        raise ImageManifestError(f"v2 manifest body is not in canonical form (sorted keys, "
                                 f"no spaces): {body[:60]!r}")
    if manifest.config_size != len(config):
        raise ImageManifestError(f"v2 manifest says the config is {manifest.config_size} "
                                 f"bytes, it carries {len(config)}")
    check_config(manifest, config)
    return manifest


def _parse_body(data: bytes, inline_config: bytes | None) -> ImageManifest:
    """The fields of a body (v1 when ``inline_config`` is None: the config has a blob id)."""
    try:
        body = parse_json(data, JsonBounds(max_bytes=MAX_MANIFEST_BYTES))
    except JobJsonError as e:
        raise ImageManifestError(f"manifest JSON: {e}") from None
    fields = _exact(body, {"config", "image_id", "layers"}, "manifest")
    config = _exact(fields["config"], {"size"} if inline_config is not None
                    else {"blob", "size"}, "manifest config")
    image_id = _digest(fields["image_id"], "image_id")
    layers_raw = fields["layers"]
    if not isinstance(layers_raw, list) or not 1 <= len(layers_raw) <= MAX_LAYERS:
        raise ImageManifestError(f"manifest layers must be a list of 1 to {MAX_LAYERS}, "
                                 f"got {_short(layers_raw)}")
    layers = []
    for i, raw in enumerate(layers_raw):
        entry = _exact(raw, {"blob", "diff_id", "size"}, f"manifest layer {i}")
        layers.append(LayerRef(_digest(entry["diff_id"], f"layer {i} diff_id"),
                               _blob(entry["blob"], f"layer {i} blob"),
                               _size(entry["size"], MAX_LAYER_BYTES, f"layer {i} size")))
    config_size = _size(config["size"], MAX_CONFIG_BYTES, "config size")
    if inline_config is not None:
        return ImageManifest(image_id, blob_id_of_bytes(inline_config), config_size,
                             tuple(layers), inline_config)
    return ImageManifest(image_id, _blob(config["blob"], "config blob"), config_size,
                         tuple(layers))


def check_config(manifest: ImageManifest, config: bytes) -> None:
    """[JOB-IMAGE.7] The config is the image's, and lists exactly the manifest's layers."""
    found = "sha256:" + hashlib.sha256(config).hexdigest()
    if found != manifest.image_id:
        raise ImageDigestMismatch(manifest.image_id, found)
    try:
        parsed = parse_json(config, JsonBounds(max_bytes=MAX_CONFIG_BYTES))
    except JobJsonError as e:
        raise ImageManifestError(f"image config: {e}") from None
    rootfs = parsed.get("rootfs") if isinstance(parsed, dict) else None
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    listed = [layer.diff_id for layer in manifest.layers]
    if diff_ids != listed:
        raise ImageManifestError(f"config rootfs.diff_ids {_short(diff_ids)} differ from the "
                                 f"manifest's layers {_short(listed)}")


def check_layer_file(layer: LayerRef, path: Path) -> None:
    """[JOB-IMAGE.7] The file holds exactly the layer: its size, and SHA-256 = ``diff_id``."""
    size = path.stat().st_size
    if size != layer.size:
        raise ImageManifestError(f"layer {layer.diff_id}: {size} bytes, manifest says "
                                 f"{layer.size}")
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(COPY_CHUNK):
            digest.update(chunk)
    found = "sha256:" + digest.hexdigest()
    if found != layer.diff_id:
        raise ImageManifestError(f"layer blob {layer.blob.hex()[:16]} has digest {found}, "
                                 f"not the config's {layer.diff_id}")


def held_prefix(diff_ids: list[str], engine_images: list[list[str]]) -> int:
    """How many leading layers the engine holds already [JOB-IMAGE.8].

    A layer is the engine's when some image there has the same layers below it:
    the engine keys a layer by its whole chain, not by its own digest alone.
    """
    best = 0
    for layers in engine_images:
        n = 0
        while n < min(len(layers), len(diff_ids)) and layers[n] == diff_ids[n]:
            n += 1
        best = max(best, n)
    return best


def engine_layer_lists(client: Any) -> list[list[str]]:
    """``rootfs.diff_ids`` of every image in the engine (``docker image inspect``)."""
    out = []
    for summary in client.api.images(all=True):
        layers = client.api.inspect_image(summary["Id"]).get("RootFS", {}).get("Layers")
        if isinstance(layers, list):
            out.append([str(x) for x in layers])
    return out


def assemble(manifest: ImageManifest, config: bytes, layer_files: Mapping[str, Path],
             dest: Path) -> Path:
    """[JOB-IMAGE.8] A ``docker load`` tar of the image, from the layers in ``layer_files``.

    ``layer_files`` maps a ``diff_id`` to a file checked by ``check_layer_file``;
    a layer not in it (one the engine holds) is named in ``manifest.json`` but
    not written: the engine reads a layer file only for a layer it lacks. Every
    name in the tar is made here from checked digests, never taken from input.
    """
    check_config(manifest, config)
    names = [f"{layer.diff_id.removeprefix('sha256:')}/layer.tar" for layer in manifest.layers]
    config_name = manifest.image_id.removeprefix("sha256:") + ".json"
    index = json.dumps([{"Config": config_name, "RepoTags": None, "Layers": names}]).encode()
    written: set[str] = set()
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as out:
        _add_bytes(out, config_name, config)
        for layer, name in zip(manifest.layers, names, strict=True):
            path = layer_files.get(layer.diff_id)
            if path is None or name in written:
                continue
            check_layer_file(layer, path)
            info = tarfile.TarInfo(name)
            info.size = layer.size
            info.mode = 0o644
            with open(path, "rb") as f:
                out.addfile(info, f)
            written.add(name)
        _add_bytes(out, "manifest.json", index)
    return dest


def load_layered(client: Any, manifest: ImageManifest, config: bytes,
                 layer_files: Mapping[str, Path], expected: str | bytes, *,
                 image_unpacked_mb: int, workdir: Path) -> str:
    """[JOB-IMAGE.8] Load the image from its config and the layers the engine lacks.

    The image must be the job's (``expected``) before anything else is read; the
    layers given are measured against ``image_unpacked_mb`` [JOB-IMAGE.5],
    checked against their digests while the ``docker load`` tar is assembled,
    and the engine's loaded id is checked by ``load_image`` [JOB-IMAGE.3].
    """
    want = normalize_image_id(expected)
    if manifest.image_id != want:
        raise ImageDigestMismatch(want, manifest.image_id)
    check_config(manifest, config)
    # [JOB-IMAGE.13] plain tars only: a layer file's SHA-256 is its diff_id, which the
    # engine checks against the tar it unpacks; a gzip whose own digest is given would
    # pass check_layer_file and fail every docker load.
    unpacked_layers(list(layer_files.values()), image_unpacked_mb * MIB, plain=True)
    dest = workdir / f"assembled-{want.removeprefix('sha256:')[:16]}-{os.getpid()}.tar"
    try:
        assemble(manifest, config, layer_files, dest)
        return load_image(client, dest, want)
    finally:
        dest.unlink(missing_ok=True)


def split_saved_image(saved: Path, out_dir: Path) -> tuple[ImageManifest, bytes, dict[str, Path]]:
    """The parts of a saved-image tar: manifest, config bytes and ``diff_id`` -> layer file.

    Layer files go to ``out_dir/<diff hex>.tar`` (a file already there is kept:
    it was checked when written). Each is checked against the config's digest.
    """
    image_id = blob_image_id(saved)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tarfile.open(saved, mode="r:") as archive:
        index = json.loads(_read_member(archive, "manifest.json", MAX_MANIFEST_BYTES))
        entry = index[0]
        config = _read_member(archive, str(entry["Config"]), MAX_CONFIG_BYTES)
        diff_ids = json.loads(config)["rootfs"]["diff_ids"]
        names = [str(x) for x in entry["Layers"]]
        if len(names) != len(diff_ids):
            raise ImageManifestError(f"{saved}: {len(names)} layer files for "
                                     f"{len(diff_ids)} diff_ids")
        files: dict[str, Path] = {}
        layers = []
        for name, diff_id in zip(names, diff_ids, strict=True):
            _digest(diff_id, "diff_id")
            dest = out_dir / (diff_id.removeprefix("sha256:") + ".tar")
            if not dest.exists():
                member = archive.getmember(name.lstrip("/"))
                source = archive.extractfile(member)
                if source is None:
                    raise ImageManifestError(f"{saved}: layer {name} is not a file")
                partial = dest.with_name(dest.name + ".partial")
                with open(partial, "wb") as f:
                    shutil.copyfileobj(source, f, COPY_CHUNK)
                blob, size, _ = hash_file(partial)
                check_layer_file(LayerRef(diff_id, blob, size), partial)
                partial.replace(dest)
            blob, size, _ = hash_file(dest)
            files[diff_id] = dest
            layers.append(LayerRef(diff_id, blob, size))
    manifest = ImageManifest(image_id, blob_id_of_bytes(config), len(config), tuple(layers))
    check_config(manifest, config)
    return manifest, config, files


def _add_bytes(out: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    out.addfile(info, io.BytesIO(data))


def _read_member(archive: tarfile.TarFile, name: str, limit: int) -> bytes:
    member = archive.getmember(name.lstrip("/"))
    handle = archive.extractfile(member)
    if handle is None or member.size > limit:
        raise ImageManifestError(f"{name}: not a regular file under {limit} bytes")
    return handle.read()


def _exact(value: object, keys: set[str], what: str) -> dict[str, Any]:
    if not isinstance(value, dict) or set(value) != keys:
        found = sorted(value) if isinstance(value, dict) else type(value).__name__
        raise ImageManifestError(f"{what} must have exactly the keys {sorted(keys)}, "
                                 f"got {found}")
    return value


def _digest(value: object, what: str) -> str:
    if not isinstance(value, str) or not DIGEST_RE.fullmatch(value):
        raise ImageManifestError(f"{what} must be sha256:<64 hex>, got {_short(value)}")
    return value


def _blob(value: object, what: str) -> bytes:
    if not isinstance(value, str) or not BLOB_RE.fullmatch(value):
        raise ImageManifestError(f"{what} must be 64 hex digits, got {_short(value)}")
    return bytes.fromhex(value)


def _size(value: object, limit: int, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= limit:
        raise ImageManifestError(f"{what} must be an integer from 1 to {limit}, "
                                 f"got {_short(value)}")
    return value


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
