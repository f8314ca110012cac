"""One file to publish as a blob: what ``learningchain job submit`` uploads.

Apart from ``sandbox.image_publish`` (which splits images through the Docker SDK) so that
the job commands' module can name it without importing Docker at start.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class BlobFile:
    """One file to publish as a blob."""

    path: Path
    blob: bytes
    size: int
    what: str
    """``manifest``, ``config`` or ``layer <n>``: for progress and messages."""
