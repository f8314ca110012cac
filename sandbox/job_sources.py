"""What a job's image was built from: a fingerprint of its build context.

``job build`` records the image it built in ``image.json``; ``job submit``
used to post that image whenever it still existed, so editing ``train`` and
submitting again silently posted the old code (issue 15). The build context
(every file ``docker build`` would send: the job folder minus
``.dockerignore``d paths, read exactly as docker-py reads them) is
fingerprinted, file by file (content and executable bit), and every build
keeps the fingerprint in ``image.json`` next to the image id. A submit whose
fingerprint differs, or that finds none recorded, builds again, as docker's
build cache would decide, and says which files changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox.errors import JobDirError

IMAGE_FILE = "image.json"
"""Written by every build: ``image_id``, ``tag`` and ``sources``."""
MAX_LISTED_FILES = 1000
"""Per-file fingerprints are kept (to name what changed) for contexts up to this size."""

@dataclass(frozen=True, slots=True)
class Sources:
    """The fingerprint of a job's build context."""

    digest: str
    """SHA-256 over every file's path and fingerprint, in path order."""
    files: dict[str, str]
    """Path (relative, ``/``-separated) → ``sha256:<hex>`` plus ``+x`` when executable,
    ``link:<target>``, or ``dir``. Empty when the context is larger than
    ``MAX_LISTED_FILES`` (only ``digest`` then)."""

    def to_json(self) -> dict[str, Any]:
        return {"digest": self.digest, "files": self.files}

    @classmethod
    def from_json(cls, doc: Any) -> Sources | None:
        if not isinstance(doc, dict) or not isinstance(doc.get("digest"), str):
            return None
        files = doc.get("files")
        ok = isinstance(files, dict) and all(isinstance(k, str) and isinstance(v, str)
                                             for k, v in files.items())
        return cls(doc["digest"], dict(files) if ok and isinstance(files, dict) else {})


def context_paths(job_dir: Path) -> list[str]:
    """The paths ``docker build`` sends for ``job_dir``, as docker-py computes them."""
    from docker.utils.build import exclude_paths

    ignore = job_dir / ".dockerignore"
    patterns: list[str] = []
    if ignore.is_file():
        patterns = [line.strip() for line in ignore.read_text().splitlines()]
        patterns = [p for p in patterns if p and not p.startswith("#")]
    return sorted(str(p).replace(os.sep, "/")
                  for p in exclude_paths(str(job_dir.resolve()), patterns))


def fingerprint(path: Path) -> str:
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode):
        return "link:" + os.readlink(path)
    if stat.S_ISDIR(info.st_mode):
        return "dir"
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest() + ("+x" if info.st_mode & 0o111 else "")


def job_sources(job_dir: Path) -> Sources:
    """The fingerprint of what a build of ``job_dir`` would use (``image.json`` aside)."""
    try:
        files = {p: fingerprint(job_dir / p) for p in context_paths(job_dir)
                 if p != IMAGE_FILE}
    except OSError as e:
        raise JobDirError(f"cannot read the job's sources in {job_dir}: {e}") from e
    whole = hashlib.sha256()
    for name, value in files.items():
        whole.update(f"{len(name)}:{name}={value}\n".encode("utf-8", "surrogateescape"))
    return Sources("sha256:" + whole.hexdigest(),
                   files if len(files) <= MAX_LISTED_FILES else {})


def changed_files(old: Sources, new: Sources) -> list[str]:
    """Paths added, removed or changed between two fingerprints (empty when unknown)."""
    names = set(old.files) | set(new.files)
    return sorted(n for n in names if old.files.get(n) != new.files.get(n))


@dataclass(frozen=True, slots=True)
class Recorded:
    """What ``image.json`` says: the image, its tag, and the sources it was built from."""

    image_id: str
    tag: str
    sources: Sources | None


def read_record(job_dir: Path) -> Recorded | None:
    try:
        doc = json.loads((job_dir / IMAGE_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("image_id"), str):
        return None
    return Recorded(doc["image_id"], str(doc.get("tag", "")), Sources.from_json(doc.get("sources")))


def why_rebuild(recorded: Recorded | None, current: Sources, image_present: bool) -> str | None:
    """Why the recorded image cannot be posted as it is; None when it can."""
    if recorded is None:
        return "no image built yet"
    if not image_present:
        return f"image {recorded.image_id[:19]} is no longer in the engine"
    if recorded.sources is None:
        return ("image.json does not say which sources the image was built from (made by an "
                "older version?); building to be sure it is current (an unchanged build is "
                "a cache hit)")
    if recorded.sources.digest != current.digest:
        changed = changed_files(recorded.sources, current)
        listed = ", ".join(changed[:8]) + (f" and {len(changed) - 8} more"
                                           if len(changed) > 8 else "")
        return (f"the job's sources changed since image {recorded.image_id[:19]} was built"
                + (f" ({listed})" if listed else "") + "; rebuilding")
    return None
