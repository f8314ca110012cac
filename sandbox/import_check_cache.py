"""Import checks that passed, remembered per image [JOB-IMAGE.15].

The check imports the job's modules in a fresh sandbox: under gVisor that is torch's
import through the gofer, 1-17 s of a loaded 2-core machine (40 checks in one CI run,
most of them of one template image built under different names). Its outcome depends
only on what the key names: the image (its id commits to every layer and the config),
the runtime, the targets, the script and the job's memory and CPU. So a check that
passed is kept, as a small JSON file under ``LC_IMPORT_CHECK_CACHE`` (default
``$XDG_CACHE_HOME/learningchain/import-checks``), and ``job build`` of the same image
again reads it instead of starting a container. A failed check is never kept: a refusal
is always the result of a run, with its error as that run gave it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

CACHE_ENV = "LC_IMPORT_CHECK_CACHE"


def cache_root() -> Path:
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "learningchain" / "import-checks"


def check_key(image_id: str, runtime: str, targets: tuple[str, ...], script: str,
              limits: tuple[int, int]) -> str:
    """The hex name of a check: everything its outcome depends on."""
    named = json.dumps([image_id, runtime, list(targets),
                        hashlib.sha256(script.encode()).hexdigest(), list(limits)])
    return hashlib.sha256(named.encode()).hexdigest()


def recall(key: str) -> dict[str, Any] | None:
    """The remembered report of a passed check, or None (never checked, unreadable)."""
    try:
        found = json.loads((cache_root() / f"{key}.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(found, dict) or found.get("key") != key:
        return None
    return found


def remember(key: str, report: dict[str, Any]) -> None:
    """Keeps a passed check's report; a cache that cannot be written is only slower."""
    root = cache_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
        partial = root / f"{key}.{os.getpid()}.partial"
        partial.write_text(json.dumps({**report, "key": key}))
        os.replace(partial, root / f"{key}.json")
    except OSError:
        pass
