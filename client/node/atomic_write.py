"""Replacing a small local file whole: a reader, or a restart, sees the old bytes or the
new ones, never half, and a write the disk refuses leaves nothing behind."""

from __future__ import annotations

import os
from pathlib import Path


def write_replacing(path: Path, data: bytes, *, durable: bool = False) -> None:
    """``data`` into ``.<name>.tmp`` beside ``path``, then renamed over it (``durable``:
    fsynced first). On ``OSError`` (a full disk) the temporary file is removed, ``path``
    keeps its old bytes, and the error is raised."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
