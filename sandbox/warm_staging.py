"""The copies of a checkpoint that containerd leaves behind at each restore [JOB-WARM.7].

``docker start --checkpoint`` uploads the checkpoint into containerd's content store, and
containerd's task service unpacks it into a fresh ``ctrd-checkpoint*`` folder (Go's
``os.MkdirTemp`` in ``$XDG_RUNTIME_DIR``, else ``$TMPDIR``, else ``/tmp``) for the runtime
to restore from, and never removes it. With the zygote's 150 MiB of pages that was 150 MiB
of disk per warm job: 314 folders, 9.2 GiB of ``/tmp``, after one day of this project's
tests (2026-11-27). A worker that runs for months would fill its disk.

Each restore's copy carries ``RESTORE_MARK``, the restored container's id, which the node
writes beside the checkpoint's files in the container's own folder: the restore that made
a copy removes it as soon as the engine answers (a restored sandbox has its files open
already, and an unlinked open file lives until it is closed), and no other restore's copy
is touched while it may still be read. A copy whose restore died with its process is
removed once it is ``STALE_COPY_S`` old, when it is a copy of ours: its ``checkpoint.img``
has the bytes of our checkpoint's. That file holds the sandbox's kernel state (its pids,
its mounts, its sockets), so two different checkpoints never share it, and nothing else
of containerd's looks like it.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import shutil
import time
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

STAGING_PREFIX = "ctrd-checkpoint"
"""containerd's name for the folder it unpacks a checkpoint into (``os.MkdirTemp``)."""
STATE_FILE = "checkpoint.img"
"""runsc's file of the sandbox's state, in every checkpoint."""
RESTORE_MARK = "lc-restore"
"""[JOB-WARM.4] The file, in a restore's copy of a checkpoint, that holds the restored
container's id: it makes each restore's upload distinct content for containerd, so that
restores of one checkpoint may run at once, and it names the copy containerd unpacks."""
STALE_COPY_S = 600.0
"""[JOB-WARM.7] Age past which a copy of our checkpoint that no restore removed (its
process died mid-restore) is removed by any other: a restore reads its copy within
seconds."""


def staging_parents(proc: Path = Path("/proc")) -> list[Path]:
    """Where this machine's containerd daemons unpack a restore's checkpoint: each one's
    ``XDG_RUNTIME_DIR`` (containerd 1.5 on) and its ``TMPDIR``, else ``/tmp`` (Go's
    ``os.TempDir``, where containerd before 1.5, or with ``XDG_RUNTIME_DIR`` unset, puts
    it). ``/tmp`` when no daemon's environment can be read."""
    found: list[Path] = []
    for entry in _processes(proc):
        try:
            if (entry / "comm").read_text().strip() != "containerd":
                continue
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        values = dict(item.split(b"=", 1) for item in environ if b"=" in item)
        for chosen in (values.get(b"XDG_RUNTIME_DIR"), values.get(b"TMPDIR") or b"/tmp"):
            parent = Path(os.fsdecode(chosen)) if chosen else None
            if parent is not None and parent not in found:
                found.append(parent)
    return found or [Path("/tmp")]


def _processes(proc: Path) -> Iterable[Path]:
    try:
        return [entry for entry in proc.iterdir() if entry.name.isdigit()]
    except OSError:
        return []


def fingerprint(checkpoint: Path) -> tuple[int, bytes] | None:
    """Size and SHA-256 of ``checkpoint``'s state file; None when it has none."""
    try:
        data = (checkpoint / STATE_FILE).read_bytes()
    except OSError:
        return None
    return len(data), hashlib.sha256(data).digest()


@functools.lru_cache(maxsize=8)
def _own_fingerprint(checkpoint: Path, mtime_ns: int, size: int) -> tuple[int, bytes] | None:
    """A checkpoint's own fingerprint, read once per version of its state file (up to 30
    MiB; a checkpoint is never rewritten in place, only made again under a new key)."""
    return fingerprint(checkpoint)


def remove_copies(checkpoint: Path, parents: Iterable[Path], mark: str | None = None,
                  now: float | None = None) -> list[Path]:
    """Remove the ``ctrd-checkpoint*`` folders under ``parents`` that are the copy of the
    restore ``mark`` names (its ``RESTORE_MARK``) or a copy of ``checkpoint`` at least
    ``STALE_COPY_S`` old; returns the folders removed. A folder this process may not read
    or remove is left, with a warning that names it."""
    now = time.time() if now is None else now
    removed: list[Path] = []
    for parent in parents:
        try:
            candidates = sorted(parent.glob(STAGING_PREFIX + "*"))
        except OSError:
            continue
        for folder in candidates:
            try:
                if not (_is_marked(folder, mark) or (
                        now - folder.stat().st_mtime >= STALE_COPY_S
                        and _same_state(folder, checkpoint))):
                    continue
                shutil.rmtree(folder)
            except FileNotFoundError:
                continue
            except OSError as e:
                log.warning("cannot remove %s, a copy of warm start checkpoint %s that "
                            "containerd left (%s): remove it as root", folder,
                            checkpoint.parent.name, e)
                continue
            removed.append(folder)
    if removed:
        log.info("removed %d %s of checkpoint %s that containerd left after restores",
                 len(removed), "copy" if len(removed) == 1 else "copies",
                 checkpoint.parent.name)
    return removed


def _is_marked(folder: Path, mark: str | None) -> bool:
    if mark is None:
        return False
    try:
        return (folder / RESTORE_MARK).read_text() == mark
    except (OSError, UnicodeDecodeError):
        return False


def _same_state(folder: Path, checkpoint: Path) -> bool:
    """Whether ``folder``'s state file has ``checkpoint``'s bytes (size first: cheap)."""
    try:
        stat = (checkpoint / STATE_FILE).stat()
        size = (folder / STATE_FILE).stat().st_size
    except OSError:
        return False
    mine = _own_fingerprint(checkpoint, stat.st_mtime_ns, stat.st_size)
    return mine is not None and size == mine[0] and fingerprint(folder) == mine


__all__ = [
    "RESTORE_MARK",
    "STAGING_PREFIX",
    "STALE_COPY_S",
    "STATE_FILE",
    "fingerprint",
    "remove_copies",
    "staging_parents",
]
