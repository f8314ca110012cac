"""A private engine's data root that already holds an image, cloned in a second or two.

Why: every private engine a test starts loads the gigabyte base image from a ``docker
save`` tar (``PrivateDockerd.load_from_host``): 15-45 s of one core each (the engine hashes
and unpacks every layer), about seven times a ``make test`` run, and the loads land beside
graph stories whose windows were sized for a quieter machine (run 1 of a ``make
test-repeat`` on 2026-11-25 saw a vote miss its window beside the three loads of the hosts'
job). An engine's data root with the image loaded is built once per machine and image (a
*seed*, under ``cache_dir()``), and each engine then starts from a clone of it.

The clone hard-links the layers' files (``overlay2/<id>/diff/``: overlayfs never writes a
lower layer, removing an image only unlinks) and copies everything else, which the engine
rewrites in place (bolt databases, ``repositories.json``). Docker documents a data root as
movable by copying it; nothing in it names its own path. A clone across file systems
(``EXDEV``) is refused, and the caller loads the tar as before.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path

SEEDS = "engine-seeds"
"""The folder below ``cache_dir()`` that holds the seeds and their locks."""
DROPPED = ("containerd", "exec", "tmp", "runtimes")
"""Parts of a stopped engine's data root a clone does without: the managed containerd's
state (namespaced by the seed engine's name) and scratch space, rebuilt at start."""


class SeedError(RuntimeError):
    """A seed could not be cloned here (another file system, a damaged seed)."""


def seed_path(cache: Path, key: str) -> Path:
    return cache / SEEDS / key


@contextlib.contextmanager
def file_lock(path: Path, *, shared: bool = False) -> Iterator[None]:
    """A lock on ``path``: exclusive to build a seed (two xdist processes may want the same
    seed at once), shared while a seed is cloned, so that no process removes it meanwhile;
    exclusive to save a cached image once (``tests.framework.image_export``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_seed(cache: Path, key: str, build: Callable[[Path], None]) -> Path:
    """The seed ``key`` (a data root), built by ``build(data_root)`` if this machine has
    none yet. ``build`` gets a fresh folder to use as a stopped engine's data root; the
    seed appears only once it returned, so a build cut short leaves no seed behind."""
    seed = seed_path(cache, key)
    with file_lock(seed.with_name(seed.name + ".lock")):
        if (seed / "complete").exists():
            return seed
        shutil.rmtree(seed, ignore_errors=True)
        partial = seed.with_name(f"{seed.name}.{os.getpid()}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        build(partial / "data")
        for name in DROPPED:
            shutil.rmtree(partial / "data" / name, ignore_errors=True)
        (partial / "complete").write_text(f"{time.time():.0f}\n")
        os.replace(partial, seed)
        _remove_other_seeds(cache, keep=key)
        return seed


def _remove_other_seeds(cache: Path, keep: str) -> None:
    """Seeds of images this machine no longer tests with (a rebuilt base), unless another
    process holds their lock right now."""
    for other in (cache / SEEDS).iterdir():
        if other.name == keep or not other.is_dir() or other.name.endswith(".partial"):
            continue
        lock = other.with_name(other.name + ".lock")
        with open(lock, "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            shutil.rmtree(other, ignore_errors=True)


def _is_layer_file(relative: Path) -> bool:
    """``overlay2/<cache id>/diff/...``: a file of an image layer, never written again."""
    parts = relative.parts
    return len(parts) > 3 and parts[0] == "overlay2" and parts[2] == "diff"


def clone_seed(seed: Path, data_root: Path) -> int:
    """Makes ``data_root`` (which must not exist) a clone of the seed's data root: layer
    files hard-linked, everything else copied with its owner, mode, times and extended
    attributes; a device node outside the layers (the quota device the engine makes at
    start) is left out, anything else (a fifo, a socket) refused. Returns the number of
    layer entries linked. Holds the seed's lock shared throughout: a process that builds a
    seed of another key removes the seeds nobody holds (``_remove_other_seeds``), and one
    removed under a clone made a run fail with a file gone mid-walk."""
    with file_lock(seed.with_name(seed.name + ".lock"), shared=True):
        return _clone(seed, data_root)


def _clone(seed: Path, data_root: Path) -> int:
    source_root = seed / "data"
    if not source_root.is_dir():
        raise SeedError(f"seed {seed} holds no data root")
    linked = 0
    directories: list[tuple[Path, Path]] = []
    for folder, subfolders, files in os.walk(source_root):
        source_dir = Path(folder)
        relative_dir = source_dir.relative_to(source_root)
        target_dir = data_root / relative_dir
        target_dir.mkdir(parents=True, exist_ok=relative_dir != Path("."))
        directories.append((source_dir, target_dir))
        for name in [*files, *[d for d in subfolders if (source_dir / d).is_symlink()]]:
            source, target = source_dir / name, target_dir / name
            relative = relative_dir / name
            if _is_layer_file(relative):  # a symbolic link or a whiteout too
                try:
                    os.link(source, target, follow_symlinks=False)
                except OSError as e:
                    if e.errno == errno.EXDEV:
                        raise SeedError(f"seed {seed} is on another file system than "
                                        f"{data_root}") from e
                    raise
                linked += 1
            elif source.is_symlink():
                os.symlink(os.readlink(source), target)
                os.lchown(target, *_owner(source))
            elif source.is_file():
                shutil.copyfile(source, target, follow_symlinks=False)
                _same_attributes(source, target)
            elif _is_device(source):
                continue  # volumes/backingFsBlockDev: the engine makes it again at start
            else:
                raise SeedError(f"seed {seed}: {relative} is neither a file, a folder nor a "
                                f"link outside a layer")
    # directories last: adding entries changed their times
    for source_dir, target_dir in reversed(directories):
        _same_attributes(source_dir, target_dir)
    return linked


def _same_attributes(source: Path, target: Path) -> None:
    """Owner first (a chown may clear mode bits), then mode, times and extended attributes
    (overlayfs marks an opaque directory with ``trusted.overlay.opaque``)."""
    os.chown(target, *_owner(source), follow_symlinks=False)
    shutil.copystat(source, target, follow_symlinks=False)


def _is_device(path: Path) -> bool:
    mode = path.lstat().st_mode
    return stat.S_ISBLK(mode) or stat.S_ISCHR(mode)


def _owner(path: Path) -> tuple[int, int]:
    status = path.lstat()
    return status.st_uid, status.st_gid
