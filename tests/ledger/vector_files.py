"""Writing and checking generated vector files (protocol_spec/vectors/*.json).

A vector file is produced by a test's generator and must equal the committed
file byte for byte; ``LC_WRITE_VECTORS=1`` rewrites it instead (after a
deliberate protocol change), and the diff is then part of the change.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

VECTORS_DIR = Path(__file__).resolve().parents[2] / "protocol_spec" / "vectors"


def vector_text(vectors: Any) -> str:
    """The one canonical text of a vector file: sorted keys, one-space indent, newline."""
    return json.dumps(vectors, indent=1, sort_keys=True) + "\n"


def check_vector_file(name: str, vectors: Any) -> None:
    """Asserts ``protocol_spec/vectors/<name>`` holds exactly ``vectors`` (or rewrites it)."""
    path = VECTORS_DIR / name
    text = vector_text(vectors)
    if os.environ.get("LC_WRITE_VECTORS") == "1":
        path.write_text(text)
    assert path.exists(), f"{path} missing: run with LC_WRITE_VECTORS=1 to generate it"
    assert path.read_text() == text, (
        f"the implementation drifted from {path.name}: if the protocol change is deliberate, "
        "regenerate with LC_WRITE_VECTORS=1 and commit the diff")
