"""The image ``job submit`` posts: the recorded one only while the job's sources are unchanged
(``sandbox.job_sources`` fingerprints them; every build records the fingerprint)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox.job_sources import job_sources, read_record, why_rebuild

Note = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class ChosenImage:
    tar: Path
    image_id: str
    blob_id: bytes
    ref: str
    built: bool
    """True when this submit built the image (new sources, or none recorded)."""


def choose_image(job_dir: Path, image_tar: Path | None, rebuild: bool, work: Path,
                 note: Note) -> ChosenImage:
    """(saved-image tar, image id, blob id, image ref): given, recorded and current, or built
    and exported."""
    from chain.content import blob_id_of_file
    from sandbox.image_blob import blob_image_id

    if image_tar is not None:
        note(f"reading image {image_tar}")
        return ChosenImage(image_tar, blob_image_id(image_tar), blob_id_of_file(image_tar),
                           image_tar.name, False)
    from sandbox.engine import BULK_TIMEOUT_S, connect
    from sandbox.image_blob import export_image
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
    note("exporting the image…")
    blob = export_image(docker, image_id, work / "image.tar")
    return ChosenImage(blob.path, blob.image_id, blob.blob_id, tag or image_id, built)


def _present(docker: Any, image_id: str) -> bool:
    try:
        docker.images.get(image_id)
    except Exception:  # not found, or the engine refused: build again
        return False
    return True
