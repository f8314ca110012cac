"""A worker gets a job image by layer: only the layers its engine lacks travel [JOB-IMAGE.6-11].

``ImageCache`` fetches the blob a job names; when it is an image manifest
(``sandbox.image_layers``) this module takes over: check the manifest and the
config before any layer is fetched, fetch each missing layer (each bounded to
the size the manifest declares, so a lying manifest cannot make the worker
fetch more), and load the image from them. A v2 manifest [JOB-IMAGE.10] carries
its config (checked while parsing), so no config blob is fetched. Every refusal raises a
``sandbox.errors`` exception or ``BlobError`` for ``ImageCache`` to sort into
permanent or not. A worker is a daemon: its fetch reports progress as log lines
(bytes, percent and rate, at most every ``PROGRESS_EVERY_S``), not a bar.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from chain.jobspec import JobSpec
from sandbox.errors import ImageDigestMismatch
from sandbox.image_check import MIB, ImageTooLarge
from sandbox.image_held import check_held_sizes, engine_images, remember_sizes
from sandbox.image_layers import (
    MAX_MANIFEST_BLOB_BYTES,
    ImageManifestError,
    check_config,
    held_prefix,
    load_layered,
    parse_manifest,
)

log = logging.getLogger("learningchain.worker")

Fetch = Callable[[bytes, int, Callable[[int, int], None] | None], Awaitable[Path]]
"""``fetch(blob, exact_size, progress)``: the blob's local path, cancelled past the size."""
Run = Callable[..., Awaitable[Any]]
"""``Threads.run``: a blocking call on a worker thread."""
Record = Callable[[bytes, int], None]
"""Called for each blob this worker fetched itself (for [WORK-GC.1])."""
PROGRESS_EVERY_S = 2.0


async def load_by_layers(spec: JobSpec, manifest_path: Path, image_id: str, job_label: str, *,
                         client: Any, fetch: Fetch, run: Run, record: Record,
                         workdir: Path) -> int:
    """Fetch what the engine lacks and load the image; returns the layer bytes fetched."""
    size = manifest_path.stat().st_size
    if size > MAX_MANIFEST_BLOB_BYTES:
        raise ImageManifestError(f"manifest blob is {size} bytes, more than "
                                 f"{MAX_MANIFEST_BLOB_BYTES}")
    manifest = parse_manifest(manifest_path.read_bytes())
    if manifest.image_id != image_id:
        raise ImageDigestMismatch(image_id, manifest.image_id)
    limit = spec.limits.image_mb * MIB
    if manifest.total_size > limit:
        raise ImageTooLarge("config and layers", limit, manifest.total_size)
    if manifest.config is not None:  # v2: inflated and checked by parse_manifest
        config = manifest.config
    else:
        config_path = await fetch(manifest.config_blob, manifest.config_size, None)
        config = config_path.read_bytes()
        check_config(manifest, config)
        record(manifest.config_blob, manifest.config_size)
    diff_ids = [layer.diff_id for layer in manifest.layers]
    images = await run(engine_images, client)
    held = held_prefix(diff_ids, [layers for _id, layers in images])
    # [JOB-IMAGE.14] the sizes declared for layers the engine holds are checked too
    await run(check_held_sizes, client, manifest.layers[:held], images, workdir)
    missing = {layer.diff_id: layer for layer in manifest.layers[held:]}
    total = sum(layer.size for layer in missing.values())
    log.info("job %s: image by layer: the engine holds %d of %d layers; fetching %d layer "
             "blob(s), %d bytes (the whole image is %d bytes)", job_label, held,
             len(manifest.layers), len(missing), total, manifest.total_size)
    files: dict[str, Path] = {}
    done_before = 0
    started = time.monotonic()
    last = [0.0]
    for diff_id, layer in missing.items():
        base = done_before

        def progress(done: int, _total: int, base: int = base) -> None:
            now = time.monotonic()
            if base + done >= total or now - last[0] >= PROGRESS_EVERY_S:
                last[0] = now
                rate = (base + done) / max(now - started, 1e-3) / 1e6
                log.info("job %s: image layers: %d / %d bytes (%.0f%%, %.1f MB/s)", job_label,
                         base + done, total, 100.0 * (base + done) / total if total else 100.0,
                         rate)

        files[diff_id] = await fetch(layer.blob, layer.size, progress)
        record(layer.blob, layer.size)
        done_before += layer.size
    fetched_s = time.monotonic() - started
    await run(load_layered, client, manifest, config, files, image_id,
              image_unpacked_mb=spec.limits.image_unpacked_mb, workdir=workdir)
    # each fetched layer passed check_layer_file (exact size and digest) while assembled
    await run(remember_sizes, workdir, {layer.diff_id: layer.size
                                        for layer in missing.values()})
    log.info("job %s: image by layer: %d bytes fetched in %.1f s, assembled and loaded in "
             "%.1f s; %d bytes of the image were not sent (the engine held them)", job_label,
             total, fetched_s, time.monotonic() - started - fetched_s,
             manifest.total_size - manifest.config_size - total)
    return total
