"""The image ``job submit`` posts: the recorded one only while the job's sources are unchanged
(``sandbox.job_sources`` fingerprints them; every build records the fingerprint).

By default the image is posted by layer [JOB-IMAGE.6]: its layers are blobs
(``sandbox.image_publish``, split once and cached by digest) and the job names a
small v2 manifest of them that carries the config, compressed [JOB-IMAGE.10], so
neither the node nor a worker receives the base image's layers again. ``--image-tar``
or ``--whole-image`` post one saved-image tar instead [JOB-IMAGE.3].
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox.blob_file import BlobFile
from sandbox.image_check import ImageSizes
from sandbox.job_sources import job_sources, read_record, why_rebuild

Note = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class ChosenImage:
    image_id: str
    blob_id: bytes
    """What ``JobSpec.image_blob`` names: the manifest blob, or the saved-image tar."""
    ref: str
    built: bool
    """True when this submit built the image (new sources, or none recorded)."""
    sizes: ImageSizes
    files: tuple[BlobFile, ...]
    """Blobs to upload if the node lacks them, in this order (the named blob last)."""
    by_layer: bool


def choose_image(job_dir: Path, image_tar: Path | None, rebuild: bool, work: Path,
                 note: Note, *, whole: bool = False, cache: Path | None = None) -> ChosenImage:
    """The image to post: given, recorded and current, or built; split into layer blobs
    (``cache``: the layer cache, ``sandbox.image_publish.default_cache()``) unless
    ``whole``."""
    from chain.content import blob_id_of_file
    from sandbox.image_blob import blob_image_id
    from sandbox.image_check import measure_image

    if image_tar is not None:
        note(f"reading image {image_tar}")
        blob = blob_id_of_file(image_tar)
        return ChosenImage(blob_image_id(image_tar), blob, image_tar.name, False,
                           measure_image(image_tar),
                           (BlobFile(image_tar, blob, image_tar.stat().st_size, "image"),),
                           False)
    from sandbox.engine import BULK_TIMEOUT_S, connect
    from sandbox.image_blob import export_image
    from sandbox.image_check import image_sizes
    from sandbox.image_publish import LayerCache, default_cache
    from sandbox.job_template import build_job

    docker = connect(BULK_TIMEOUT_S)
    current = job_sources(job_dir)
    recorded = read_record(job_dir)
    why = "--rebuild" if rebuild else why_rebuild(
        recorded, current, recorded is not None and _present(docker, recorded.image_id))
    if why is None and recorded is not None:
        image_id, tag, built = recorded.image_id, recorded.tag, False
        note(f"using built image {image_id} ({tag}): sources unchanged")
    else:
        note(f"building {job_dir} (offline): {why}…")
        result = build_job(docker, job_dir, log=note)
        image_id, tag, built = result.image_id, result.tag, True
        if recorded is not None and recorded.image_id == image_id:
            note("the build gave the same image (nothing the image holds changed)")
    if whole:
        note("exporting the whole image…")
        saved = export_image(docker, image_id, work / "image.tar")
        return ChosenImage(saved.image_id, saved.blob_id, tag or image_id, built,
                           image_sizes(docker, image_id, saved.path),
                           (BlobFile(saved.path, saved.blob_id, saved.size, "image"),), False)
    layers = LayerCache(cache or default_cache())
    published = layers.published(image_id)
    if published is None:
        note(f"splitting the image into layer blobs (once per image, cached in {layers.root})…")
        published = layers.publish(docker, image_id)
    _prune(layers, docker, image_id, note)
    manifest = published.manifest
    note(f"image {image_id[:19]}: {len(manifest.layers)} layers, "
         f"{manifest.total_size} bytes in all")
    return ChosenImage(image_id, published.manifest_file.blob, tag or image_id, built,
                       published.sizes, (*published.parts, published.manifest_file), True)


def _prune(layers: Any, docker: Any, image_id: str, note: Note) -> None:
    """Keeps the split cache within ``LC_IMAGE_CACHE_MAX_MB`` / ``_MAX_DAYS``: never the image
    being posted, never the canonical base's layers (a new split of it is a gigabyte)."""
    from sandbox.base_image import BASE_TAG
    from sandbox.image_cache_prune import limits_from_env

    try:
        limits = limits_from_env()
    except ValueError as e:
        note(f"image cache not pruned: {e}")
        return
    try:
        base = docker.images.get(BASE_TAG).attrs["RootFS"]["Layers"]
    except Exception:  # no base in this engine: the posted image's layers are kept anyway
        base = []
    removed = layers.prune(limits, keep_images={image_id}, protected=set(base))
    if removed.images or removed.layers:
        note(f"image cache {layers.root}: removed {len(removed.images)} image(s) unused the "
             f"longest and {len(removed.layers)} layer file(s), {removed.freed} bytes")


def _present(docker: Any, image_id: str) -> bool:
    try:
        docker.images.get(image_id)
    except Exception:  # not found, or the engine refused: build again
        return False
    return True
