"""Copying a job's /output out of its container, safely and within bounds [JOB-OUT.*].

The archive comes from untrusted code, so it is read with a byte cap and
extracted by hand: only regular files and folders, only below the output
folder, no links, no devices, no permissions carried over.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

ARCHIVE_ROOT = "output"
"""``get_archive('/output')`` names every entry ``output/...``."""
TAR_OVERHEAD_BYTES = 1024 * 1024
"""Slack for tar headers on top of the tmpfs size when capping the archive."""


class OutputRejected(Exception):
    """The output broke a rule; ``reason`` is ``too_large`` or ``bad_entry``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class OutputSummary:
    """What was extracted."""

    files: int
    total_bytes: int


def extract_output(chunks: Iterable[bytes], dest: Path, max_bytes: int) -> OutputSummary:
    """Extract the tar stream ``chunks`` of ``/output`` into ``dest`` (which must be empty).

    Raises ``OutputRejected`` when the archive exceeds ``max_bytes`` of file
    content (plus header slack) or holds anything but files and folders.
    """
    cap = 2 * max_bytes + TAR_OVERHEAD_BYTES
    with tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024) as spool:
        size = 0
        for chunk in chunks:
            size += len(chunk)
            if size > cap:
                raise OutputRejected("too_large", f"output archive exceeds {cap} bytes")
            spool.write(chunk)
        spool.seek(0)
        with tarfile.open(fileobj=spool, mode="r|") as archive:
            return _extract_members(archive, dest, max_bytes)


def _extract_members(archive: tarfile.TarFile, dest: Path, max_bytes: int) -> OutputSummary:
    files = 0
    total = 0
    for member in archive:
        relative = _relative_path(member.name)
        if relative is None:
            continue  # the output folder itself
        target = dest.joinpath(*relative.parts)
        if member.isdir():
            target.mkdir(mode=0o755, parents=True, exist_ok=True)
            continue
        if not member.isreg():
            raise OutputRejected("bad_entry", f"output entry {member.name!r} is not a regular file")
        total += member.size
        if total > max_bytes:
            raise OutputRejected("too_large", f"output exceeds {max_bytes} bytes")
        source = archive.extractfile(member)
        if source is None:
            raise OutputRejected("bad_entry", f"output entry {member.name!r} is unreadable")
        target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(source, out)
        files += 1
    return OutputSummary(files, total)


def _relative_path(name: str) -> PurePosixPath | None:
    path = PurePosixPath(name)
    parts = path.parts
    if path.is_absolute() or not parts or parts[0] != ARCHIVE_ROOT or ".." in parts:
        raise OutputRejected("bad_entry", f"output entry {name!r} is outside the output folder")
    if len(parts) == 1:
        return None
    return PurePosixPath(*parts[1:])


def folder_size(path: Path) -> int:
    """Bytes of regular files under ``path``, never following links."""
    total = 0
    for root, _dirs, names in os.walk(path, followlinks=False):
        for name in names:
            st = os.lstat(os.path.join(root, name))
            total += st.st_size
    return total
