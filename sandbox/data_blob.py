"""A job's data as blobs apart from its image [JOB-DATA.2-4].

A data blob is a plain (uncompressed) tar whose entries all lie below one
top folder ``data/``: the blob's files. The submitter makes it with
``pack_data`` (sorted entries, fixed modes, owner and times, so the same files
always give the same bytes and the same blob id); a node opens it with
``unpack_data`` under the rules of a job's output [JOB-OUT.1-3]: only regular
files and folders, no links, devices, absolute paths or ``..``, bounded
names, depths and entry count, content bounded by the blob's declared size,
streamed and never spooled. The folder it makes is fixed [EVAL-ENV.4] (modes
0644/0755, owner root when the node is, times 2000-01-01) and mounted
read-only at ``/data/<role>`` for every entry point [JOB-DATA.3].
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from chain.content import CHUNK_SIZE, hash_file
from sandbox.errors import SandboxError
from sandbox.eval_env import DIR_MODE, FILE_MODE, FIXED_TIME, fix_tree
from sandbox.output import (
    HOST_ERRNOS,
    MAX_ENTRIES,
    OutputHostError,
    OutputRejected,
    extract_output,
)

DATA_ROOT = "data"
"""[JOB-DATA.2] Every entry of a data tar lies below this folder."""


class DataBlobError(SandboxError):
    """A data blob breaks [JOB-DATA.2] (the submitter's fault: the job is refused)."""


class DataHostError(SandboxError):
    """The host failed to unpack a data blob the rules allow (disk full, I/O error)."""


@dataclass(frozen=True, slots=True)
class PackedData:
    path: Path
    blob_id: bytes
    size: int
    files: int


def pack_data(source: Path, dest: Path) -> PackedData:
    """[JOB-DATA.2] The data tar of ``source``: a file becomes ``data/<its name>``, a folder
    its content below ``data/``. Deterministic; a link or special file is refused."""
    if source.is_symlink() or not (source.is_file() or source.is_dir()):
        raise DataBlobError(f"{source}: data must be a regular file or a folder")
    entries = list(_entries(source))
    if len(entries) > MAX_ENTRIES:
        raise DataBlobError(f"{source}: {len(entries)} entries, more than {MAX_ENTRIES}")
    files = 0
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(_info(DATA_ROOT, None))
        for name, path in entries:
            if path.is_dir():
                tar.addfile(_info(f"{DATA_ROOT}/{name}", None))
                continue
            info = _info(f"{DATA_ROOT}/{name}", path.stat().st_size)
            with path.open("rb") as f:
                tar.addfile(info, f)
            files += 1
    blob_id, size, _ = hash_file(dest)
    return PackedData(dest, blob_id, size, files)


def _entries(source: Path) -> Iterator[tuple[str, Path]]:
    if source.is_file():
        yield source.name, source
        return
    for here, dirs, names in os.walk(source, followlinks=False):
        dirs.sort()
        base = Path(here)
        for name in sorted([*dirs, *names]):
            path = base / name
            if path.is_symlink() or not (path.is_file() or path.is_dir()):
                raise DataBlobError(f"{path}: data holds only regular files and folders")
            yield path.relative_to(source).as_posix(), path


def _info(name: str, size: int | None) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if size is None else tarfile.REGTYPE
    info.size = size or 0
    info.mode = DIR_MODE if size is None else FILE_MODE
    info.mtime = FIXED_TIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def unpack_data(blob: Path, dest: Path, size: int) -> Path:
    """[JOB-DATA.2] Unpack the data tar ``blob`` (declared ``size`` bytes) into ``dest``.

    ``dest`` must not exist; it appears whole or not at all (made beside it, then
    renamed). Raises ``DataBlobError`` for a blob that breaks the rules (or is not
    ``size`` bytes), ``DataHostError`` when the host cannot write what they allow.
    """
    actual = blob.stat().st_size
    if actual != size:
        raise DataBlobError(f"data blob is {actual} bytes, declared {size}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        with blob.open("rb") as f:
            chunks = iter(lambda: f.read(CHUNK_SIZE), b"")
            extract_output(chunks, staging, size, root=DATA_ROOT)
        fix_tree(staging)  # [EVAL-ENV.4] modes, owner and times fixed for every evaluator
        os.rename(staging, dest)
    except OutputRejected as e:
        raise DataBlobError(f"data blob refused [JOB-DATA.2]: {e}") from None
    except OutputHostError as e:
        raise DataHostError(str(e)) from None
    except OSError as e:
        if e.errno in HOST_ERRNOS:
            raise DataHostError(f"could not unpack the data blob: {e}") from None
        raise DataBlobError(f"data blob refused: {e}") from None
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return dest
