"""Copying a job's /output out of its container, safely and within bounds [JOB-OUT.*].

The archive is made by the engine's own archive API [JOB-OUT.6], never by a
program of the job's image, but what it holds is the job's: it is streamed,
never spooled, and extracted by hand:
only regular files and folders, only below the output folder, no links, no
devices, no permissions carried over, names and counts bounded so that the
host's own limits (PATH_MAX, NAME_MAX) are never what stops it
[JOB-OUT.3], and file content bounded by the job's *declared* sizes before
any byte of it reaches the host's disk [JOB-OUT.4].

Every problem caused by what the job wrote is an ``OutputRejected`` (the
job's fault). A failure of the host itself while writing what the rules
allow (its disk full, an I/O error) is an ``OutputHostError``: the
worker's side, never charged to the job.
"""

from __future__ import annotations

import errno
import os
import shutil
import tarfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from sandbox.errors import SandboxError

ARCHIVE_ROOT = "output"
"""The engine's archive of ``/output`` names every entry ``output/...``."""
NO_ROOT = ""
"""``root`` of an archive of one file: its single entry is the file's own name."""
TAR_OVERHEAD_BYTES = 1024 * 1024
"""Slack for tar headers on top of the content cap when capping the archive stream."""
ENTRY_OVERHEAD_BYTES = 3 * 1024
"""Per allowed entry: a header, a pax header for a long name, padding."""
MAX_ENTRIES = 4096
"""[JOB-OUT.3] At most this many files and folders in /output."""
MAX_NAME_BYTES = 255
"""[JOB-OUT.3] One path component, UTF-8 encoded (Linux NAME_MAX)."""
MAX_PATH_BYTES = 1024
"""[JOB-OUT.3] A whole relative path, UTF-8 encoded (far below PATH_MAX 4096)."""
MAX_DEPTH = 32
"""[JOB-OUT.3] Folders nest at most this deep below /output."""
MAX_META_BYTES = 64 * 1024
"""[JOB-OUT.3] A pax or GNU long-name header is read into memory: at most this large."""
_META_TYPES = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE,
               tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE)
HOST_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.ENOMEM})
"""Errors of the host's own storage: not caused by what the job wrote."""


class OutputRejected(SandboxError):
    """The output broke a rule; ``reason`` is ``too_large``, ``bad_entry`` or ``file_too_large``.

    ``name`` is the offending entry (cut to 200 characters) when there is one.
    """

    def __init__(self, reason: str, detail: str, name: str = "") -> None:
        super().__init__(detail)
        self.reason = reason
        self.name = name


class ArchiveSourceBroken(SandboxError):
    """Reading the archive itself failed (the engine's stream broke): neither the job's
    bytes nor the host's disk; the runner asks the engine whose fault it was."""


class ArchiveStalled(ArchiveSourceBroken):
    """[JOB-OUT.6] The archive did not arrive before its deadline; ``seconds`` is how long
    the host waited."""

    def __init__(self, detail: str, seconds: float) -> None:
        super().__init__(detail)
        self.seconds = seconds


class OutputHostError(SandboxError):
    """The host failed writing output the rules allow (disk full, I/O error): not the job."""


@dataclass(frozen=True, slots=True)
class OutputSummary:
    """What was extracted."""

    files: int
    total_bytes: int


class _BoundedTarInfo(tarfile.TarInfo):
    """Refuses a metadata header (pax, GNU long name) too large to hold in memory."""

    def _proc_member(self, archive: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in _META_TYPES and self.size > MAX_META_BYTES:
            raise OutputRejected("bad_entry", f"tar metadata header of {self.size} bytes, more "
                                 f"than {MAX_META_BYTES}")
        return super()._proc_member(archive)  # type: ignore[misc]


class _Stream:
    """A read-only file over an iterator of chunks, refusing to read past ``cap`` bytes."""

    def __init__(self, chunks: Iterable[bytes], cap: int) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._buffer = b""
        self._cap = cap
        self.consumed = 0

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self.consumed += len(chunk)
            if self.consumed > self._cap:
                raise OutputRejected("too_large", f"output archive exceeds {self._cap} bytes")
            self._buffer += chunk
        if size < 0:
            size = len(self._buffer)
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data


def extract_output(chunks: Iterable[bytes], dest: Path, max_bytes: int,
                   file_caps: Mapping[str, int] | None = None, *,
                   root: str = ARCHIVE_ROOT) -> OutputSummary:
    """Extract the tar stream ``chunks`` of ``/output`` into ``dest`` (which must be empty).

    ``max_bytes`` bounds the whole content written to the host; ``file_caps``
    bounds single files by relative name (e.g. ``{"model.pt": model_bytes}``).
    Both are checked against each entry's header *before* its data is read,
    so the host never writes more than the caps [JOB-OUT.4]. Raises
    ``OutputRejected`` (the job's fault) or ``OutputHostError`` (the host's).
    ``root`` is the one top folder every entry lies below (``data`` for a data blob,
    [JOB-DATA.2]: the same rules); ``NO_ROOT`` for the archive of a single file.
    """
    stream = _Stream(chunks, max_bytes + TAR_OVERHEAD_BYTES + MAX_ENTRIES * ENTRY_OVERHEAD_BYTES)
    try:
        with tarfile.open(fileobj=stream, mode="r|",  # type: ignore[call-overload]
                          tarinfo=_BoundedTarInfo) as archive:
            return _extract_members(archive, dest, max_bytes, dict(file_caps or {}), root)
    except (OutputRejected, OutputHostError, ArchiveSourceBroken):
        raise
    except (tarfile.TarError, EOFError, UnicodeError, ValueError, OverflowError) as e:
        raise OutputRejected("bad_entry", f"output archive is malformed: {e}") from None
    except OSError as e:
        if e.errno in HOST_ERRNOS:
            raise OutputHostError(f"host could not write the output: {e}") from None
        # Anything else the host refused was asked for by the archive's contents.
        raise OutputRejected("bad_entry", f"output entry refused by the host: {e}") from None


def _extract_members(archive: tarfile.TarFile, dest: Path, max_bytes: int,
                     file_caps: dict[str, int], root: str) -> OutputSummary:
    files = 0
    entries = 0
    total = 0
    kinds: dict[PurePosixPath, str] = {}
    for member in archive:
        relative = _relative_path(member.name, root)
        if relative is None:
            continue  # the output folder itself
        entries += 1
        if entries > MAX_ENTRIES:
            raise OutputRejected("bad_entry", f"output holds more than {MAX_ENTRIES} entries")
        _check_parents(relative, kinds, member.name)
        if member.isdir():
            if kinds.get(relative, "dir") != "dir":
                raise OutputRejected("bad_entry", "output entry is both a file and a folder",
                                     _cut(member.name))
            kinds[relative] = "dir"
            dest.joinpath(*relative.parts).mkdir(mode=0o755, parents=True, exist_ok=True)
            continue
        if not member.isreg():
            raise OutputRejected("bad_entry", f"output entry {_cut(member.name)!r} is not a "
                                 "regular file or folder", _cut(member.name))
        if member.issparse() or member.type == tarfile.GNUTYPE_SPARSE:
            # [JOB-DATA.2] tarfile counts a GNU or pax sparse file as regular: refused here
            raise OutputRejected("bad_entry", f"output entry {_cut(member.name)!r} is a sparse "
                                 "file", _cut(member.name))
        if relative in kinds:
            raise OutputRejected("bad_entry", "output entry appears twice", _cut(member.name))
        kinds[relative] = "file"
        cap = file_caps.get(str(relative))
        if cap is not None and member.size > cap:
            raise OutputRejected("file_too_large", f"{relative} is {member.size} bytes, "
                                 f"limit {cap}", str(relative))
        total += member.size
        if total > max_bytes:
            raise OutputRejected("too_large", f"output exceeds {max_bytes} bytes")
        _write_file(archive, member, dest.joinpath(*relative.parts))
        files += 1
    return OutputSummary(files, total)


def _write_file(archive: tarfile.TarFile, member: tarfile.TarInfo, target: Path) -> None:
    source = archive.extractfile(member)
    if source is None:
        raise OutputRejected("bad_entry", f"output entry {_cut(member.name)!r} is unreadable")
    target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as out:
        _copy_exactly(source, out, member.size)


def _copy_exactly(source: IO[bytes], out: IO[bytes], size: int) -> None:
    """Copy at most ``size`` bytes: the header's size, already checked against the caps."""
    left = size
    while left > 0:
        block = source.read(min(left, 1024 * 1024))
        if not block:
            raise OutputRejected("bad_entry", "output archive ends inside a file")
        out.write(block)
        left -= len(block)


def _check_parents(relative: PurePosixPath, kinds: dict[PurePosixPath, str], name: str) -> None:
    for parent in relative.parents:
        if parent != PurePosixPath(".") and kinds.get(parent) == "file":
            raise OutputRejected("bad_entry", "output entry is below a file", _cut(name))


def _relative_path(name: str, root: str = ARCHIVE_ROOT) -> PurePosixPath | None:
    """[JOB-OUT.1-3] The entry's path below ``output/`` (``root``), or a rejection."""
    path = PurePosixPath(name)
    parts = path.parts
    if path.is_absolute() or not parts or ".." in parts or (root and parts[0] != root):
        raise OutputRejected("bad_entry", f"output entry {_cut(name)!r} is outside the output "
                             "folder", _cut(name))
    if root and len(parts) == 1:
        return None
    relative = PurePosixPath(*parts[1:]) if root else path
    encoded = [p.encode("utf-8", "surrogateescape") for p in relative.parts]
    if len(encoded) > MAX_DEPTH:
        raise OutputRejected("bad_entry", f"output path is {len(encoded)} folders deep, more "
                             f"than {MAX_DEPTH}", _cut(name))
    if any(len(p) > MAX_NAME_BYTES for p in encoded):
        raise OutputRejected("bad_entry", f"output name longer than {MAX_NAME_BYTES} bytes",
                             _cut(name))
    if sum(len(p) + 1 for p in encoded) - 1 > MAX_PATH_BYTES:
        raise OutputRejected("bad_entry", f"output path longer than {MAX_PATH_BYTES} bytes",
                             _cut(name))
    if any(b"\0" in p for p in encoded):
        raise OutputRejected("bad_entry", "output name holds a NUL byte", _cut(name))
    return relative


def _cut(name: str) -> str:
    return name if len(name) <= 200 else name[:200] + f"... ({len(name)} chars)"


def folder_size(path: Path) -> int:
    """Bytes of regular files under ``path``, never following links."""
    total = 0
    for root, _dirs, names in os.walk(path, followlinks=False):
        for name in names:
            st = os.lstat(os.path.join(root, name))
            total += st.st_size
    return total


def clear_folder(path: Path) -> None:
    """Remove everything below ``path`` (not ``path`` itself): a refused output is not kept."""
    for child in path.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
