"""Filling a file system the test mounted itself (a tmpfs), to see a node ride it out."""

from __future__ import annotations

from pathlib import Path


def fill(folder: Path) -> Path:
    """Writes ``folder/filler`` until the file system refuses; the file, to remove later."""
    filler = folder / "filler"
    with filler.open("wb") as f:
        try:
            while True:
                f.write(b"\0" * (1 << 20))
                f.flush()
        except OSError:
            pass
    return filler
