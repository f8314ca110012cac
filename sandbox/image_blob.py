"""Job images as content-addressed blobs [JOB-IMAGE.2-4].

Decision (see protocol_spec/job_contract.md [JOB-IMAGE.2]): a job is named
by its **image id**, the SHA-256 of the image's config JSON. The config
lists the SHA-256 of every layer (``rootfs.diff_ids``), and the engine
checks each layer against it on load, so the id commits to the whole
image content. The bytes of a ``docker save`` tar are *not* the address:
the tar format, header times and compression vary between engine
versions, so two honest exports of one image may differ. The tar's blob id
(``chain.content.blob_id``) is what peers fetch it by; the posted job
records it next to the image id (``JobSpec.image_blob``).

The functions work on file paths, so the p2p blob store can hand over a
file it fetched and checked chunk by chunk.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

from chain.content import hash_file
from sandbox.errors import ImageBlobError, ImageContentRefused, ImageDigestMismatch
from sandbox.image_check import check_image_tar
from sandbox.job_json import JobJsonError, JsonBounds, parse_json

IMAGE_ID_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
MAX_MANIFEST_BYTES = 1024 * 1024
MAX_CONFIG_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ImageBlob:
    """An exported image file."""

    path: Path
    image_id: str
    """``sha256:<hex>`` of the image config: the job's digest."""
    blob_id: bytes
    """Blob id of the file's bytes (``chain.content``): what peers fetch it by."""
    size: int


def normalize_image_id(value: str | bytes) -> str:
    """Accept ``sha256:<hex>``, bare hex, or 32 raw bytes (a chain ``Hash32``)."""
    if isinstance(value, bytes):
        if len(value) != 32:
            raise ValueError(f"an image digest is 32 bytes, got {len(value)}")
        return "sha256:" + value.hex()
    text = value if value.startswith("sha256:") else "sha256:" + value
    if not IMAGE_ID_RE.fullmatch(text):
        raise ValueError(f"not an image id: {value!r}")
    return text


def digest_bytes(image_id: str) -> bytes:
    """The 32 bytes a chain ``JobSpec.image_digest`` holds for ``image_id``."""
    return bytes.fromhex(normalize_image_id(image_id).removeprefix("sha256:"))


def export_image(client: docker.DockerClient, image_ref: str, dest: Path) -> ImageBlob:
    """``docker save`` one image (by id, no tags) to ``dest``."""
    try:
        image = client.images.get(image_ref)
        chunks = image.save(chunk_size=1024 * 1024, named=False)
        partial = dest.with_name(dest.name + ".partial")
        with open(partial, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
        os.replace(partial, dest)
        blob_id, size, _ = hash_file(dest)
    except docker.errors.ImageNotFound as e:
        raise ImageBlobError(f"no image {image_ref} to export") from e
    except (docker.errors.DockerException, OSError) as e:
        raise ImageBlobError(f"could not export {image_ref}: {e}") from e
    found = blob_image_id(dest)
    if found != image.id:
        raise ImageBlobError(f"exported blob holds {found}, not {image.id}")
    return ImageBlob(dest, found, blob_id, size)


def blob_image_id(path: Path) -> str:
    """The image id inside a saved-image tar, computed from its config bytes.

    Needs no engine, so a worker can refuse a wrong blob before loading it.
    The blob must hold exactly one image.
    """
    try:
        with tarfile.open(path, mode="r:") as archive:
            manifest = parse_json(_member_bytes(archive, "manifest.json", MAX_MANIFEST_BYTES),
                                  JsonBounds(max_bytes=MAX_MANIFEST_BYTES))
            if not isinstance(manifest, list) or len(manifest) != 1 \
                    or not isinstance(manifest[0], dict) or "Config" not in manifest[0]:
                raise ImageBlobError(f"{path}: manifest.json must describe exactly one image")
            config = _member_bytes(archive, str(manifest[0]["Config"]), MAX_CONFIG_BYTES)
    except (tarfile.TarError, OSError, ValueError, KeyError, JobJsonError) as e:
        if isinstance(e, ImageBlobError):
            raise
        raise ImageBlobError(f"{path}: not a saved image: {e}") from e
    return "sha256:" + hashlib.sha256(config).hexdigest()


def load_image(client: docker.DockerClient, path: Path, expected: str | bytes, *,
               image_mb: int | None = None, image_unpacked_mb: int | None = None) -> str:
    """Load the blob at ``path`` if and only if it holds the image ``expected`` [JOB-IMAGE.3].

    With the job's declared ``image_mb`` and ``image_unpacked_mb`` the blob is
    first checked against them, layers decompressed in a bounded stream
    (``image_check.check_image_tar``, [JOB-IMAGE.5]): ``ImageTooLarge`` before
    the engine sees a byte.

    The id is checked twice: from the tar before loading (so a wrong blob
    never reaches the engine), and as the engine reports it after loading
    (so a tar that lies about itself is caught too; what it loaded is then
    removed again). Returns the image id.
    """
    want = normalize_image_id(expected)
    if image_mb is not None or image_unpacked_mb is not None:
        from chain.jobspec import MAX_MB

        check_image_tar(path, image_mb or MAX_MB, image_unpacked_mb or MAX_MB)
    found = blob_image_id(path)
    if found != want:
        raise ImageDigestMismatch(want, found)
    already = _has_image(client, want)
    try:
        with open(path, "rb") as data:
            loaded = client.images.load(data)
    except (docker.errors.APIError, docker.errors.ImageLoadError) as e:
        # an HTTP error, or (ImageLoadError) an error the engine streamed after a 200
        raise _load_refused(client, path, e) from e
    except (docker.errors.DockerException, OSError) as e:
        raise ImageBlobError(f"engine refused to load {path}: {e}") from e
    ids = sorted({str(image.id) for image in loaded})
    if ids != [want]:
        for image_id in ids:
            if image_id != want or not already:
                with contextlib.suppress(docker.errors.DockerException):
                    client.images.remove(image_id, force=True)
        raise ImageDigestMismatch(want, ", ".join(ids) or "nothing")
    return want


ENGINE_SIDE_WORDS = ("no space left", "disk quota", "read-only file system",
                     "input/output error", "cannot allocate memory", "too many open files",
                     "context canceled", "connection reset")
"""An engine's answer naming its own trouble, not the image's content."""


def _load_refused(client: docker.DockerClient, path: Path,
                  error: docker.errors.APIError | docker.errors.ImageLoadError) -> ImageBlobError:
    """[JOB-IMAGE.13] The engine answered a load with an error: the image's content, and
    permanent (``ImageContentRefused``), unless the engine names trouble of its own (disk
    full, I/O) or stops answering, which a later try may not meet."""
    said = str(getattr(error, "explanation", None) or error)
    text = said.lower()
    if any(word in text for word in ENGINE_SIDE_WORDS):
        return ImageBlobError(f"engine could not load {path.name} (its side): {error}")
    try:
        client.ping()
    except (docker.errors.DockerException, OSError) as e:
        return ImageBlobError(f"engine stopped answering loading {path.name}: {e}")
    return ImageContentRefused(f"engine refused the image's content in {path.name}: "
                               f"{said[:300]}")


def _has_image(client: docker.DockerClient, image_id: str) -> bool:
    try:
        client.images.get(image_id)
    except docker.errors.ImageNotFound:
        return False
    return True


def _member_bytes(archive: tarfile.TarFile, name: str, limit: int) -> bytes:
    member = archive.getmember(name.lstrip("/"))
    if not member.isreg() or member.size > limit:
        raise ImageBlobError(f"{name} in image blob is not a regular file under {limit} bytes")
    handle = archive.extractfile(member)
    if handle is None:
        raise ImageBlobError(f"{name} in image blob is unreadable")
    return handle.read()
