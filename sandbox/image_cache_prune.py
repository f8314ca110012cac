"""Bounds the layer cache of split images (``sandbox.image_publish.LayerCache``).

Why: every image ``job submit`` posts by layer is split into the cache once and kept
(the next submit of it reads the cache instead of a 10-20 s ``docker save``). A
submitter who builds a new image per job, or whose base image changes, would fill
the disk with old images' layers; a new base version alone leaves a gigabyte behind.

Policy (``choose``, pure): images are dropped least recently used first (last use =
the manifest file's mtime, touched on every use) while the cache is over
``max_bytes``, and any image unused for longer than ``max_age_s``; then every layer
no kept image names goes, except the protected ones (the canonical base's layers:
splitting it again costs the gigabyte's save) and layers younger than ``GRACE_S``
(a split under way writes its layers before its manifest). Images in use
(``keep_images``: the one being posted) are never dropped, nor their layers.
Protected layers do not count against ``max_bytes``: the bound is for what is
not the base.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sandbox.image_layers import ImageManifestError, parse_manifest

MAX_MB_ENV = "LC_IMAGE_CACHE_MAX_MB"
MAX_DAYS_ENV = "LC_IMAGE_CACHE_MAX_DAYS"
DEFAULT_MAX_MB = 4096
DEFAULT_MAX_DAYS = 30
GRACE_S = 3600.0
"""An unnamed layer this young may belong to a split still being written."""
IMAGE_SUFFIXES = (".lcimg", ".config", ".sizes")
LAYER_SUFFIXES = (".tar", ".ref", ".unpacked")


@dataclass(frozen=True, slots=True)
class CacheLimits:
    """How much the cache may hold beyond the protected base, and for how long unused."""

    max_bytes: int
    max_age_s: float


def limits_from_env(env: dict[str, str] | None = None) -> CacheLimits:
    """``LC_IMAGE_CACHE_MAX_MB`` (default 4096) and ``LC_IMAGE_CACHE_MAX_DAYS`` (default 30)."""
    source = os.environ if env is None else env
    try:
        mb = int(source.get(MAX_MB_ENV, DEFAULT_MAX_MB))
        days = float(source.get(MAX_DAYS_ENV, DEFAULT_MAX_DAYS))
    except ValueError as e:
        raise ValueError(f"{MAX_MB_ENV} / {MAX_DAYS_ENV} must be numbers: {e}") from None
    if mb < 0 or days < 0:
        raise ValueError(f"{MAX_MB_ENV}={mb} and {MAX_DAYS_ENV}={days} must not be negative")
    return CacheLimits(mb * 1024 * 1024, days * 86400.0)


@dataclass(frozen=True, slots=True)
class CachedImage:
    image_id: str
    last_used: float
    size: int
    layers: frozenset[str]


@dataclass(frozen=True, slots=True)
class CachedLayer:
    diff_id: str
    written: float
    size: int


@dataclass(frozen=True, slots=True)
class Removal:
    """What ``choose`` drops: image ids and layer diff_ids, and the bytes this frees."""

    images: tuple[str, ...]
    layers: tuple[str, ...]
    freed: int


def choose(images: Iterable[CachedImage], layers: Iterable[CachedLayer], limits: CacheLimits,
           now: float, *, keep_images: frozenset[str] = frozenset(),
           protected: frozenset[str] = frozenset()) -> Removal:
    """The images and layers to remove (module docstring); no I/O."""
    by_layer = {layer.diff_id: layer for layer in layers}
    kept = sorted(images, key=lambda i: (i.last_used, i.image_id), reverse=True)  # newest 1st

    def counted(images_kept: list[CachedImage]) -> int:
        named = set().union(*(i.layers for i in images_kept)) if images_kept else set()
        return (sum(i.size for i in images_kept)
                + sum(by_layer[d].size for d in named if d in by_layer and d not in protected)
                + sum(x.size for x in by_layer.values() if x.diff_id not in named
                      and x.diff_id not in protected and now - x.written < GRACE_S))

    dropped = [i for i in kept if i.image_id not in keep_images
               and now - i.last_used > limits.max_age_s]
    kept = [i for i in kept if i not in dropped]
    for candidate in reversed(list(kept)):  # least recently used first
        if counted(kept) <= limits.max_bytes:
            break
        if candidate.image_id not in keep_images:
            kept.remove(candidate)
            dropped.append(candidate)
    named = set().union(*(i.layers for i in kept)) if kept else set()
    of_dropped = set().union(*(i.layers for i in dropped)) if dropped else set()
    gone = [x for x in by_layer.values()
            if x.diff_id not in named and x.diff_id not in protected
            and (now - x.written >= GRACE_S or x.diff_id in of_dropped)]
    return Removal(tuple(i.image_id for i in dropped), tuple(x.diff_id for x in gone),
                   sum(i.size for i in dropped) + sum(x.size for x in gone))


def scan(root: Path) -> tuple[list[CachedImage], list[CachedLayer]]:
    """The cache's images (a damaged manifest: an image of no layers, dropped first by age
    or size) and layer files."""
    images = []
    for manifest_file in sorted((root / "images").glob("*.lcimg")):
        stem = manifest_file.with_suffix("")
        try:
            layers = frozenset(x.diff_id for x in
                               parse_manifest(manifest_file.read_bytes()).layers)
        except (OSError, ImageManifestError):
            layers = frozenset()
        size = sum(_size(stem.with_suffix(s)) for s in IMAGE_SUFFIXES)
        images.append(CachedImage("sha256:" + stem.name, _mtime(manifest_file), size, layers))
    found = []
    for tar in sorted((root / "layers").glob("*.tar")):
        size = sum(_size(tar.with_suffix(s)) for s in LAYER_SUFFIXES)
        found.append(CachedLayer("sha256:" + tar.stem, _mtime(tar), size))
    return images, found


def prune(root: Path, limits: CacheLimits, *, keep_images: Iterable[str] = (),
          protected: Iterable[str] = (), now: float | None = None) -> Removal:
    """Removes what ``choose`` picks from the cache at ``root``; what was removed."""
    images, layers = scan(root)
    removal = choose(images, layers, limits, time.time() if now is None else now,
                     keep_images=frozenset(keep_images), protected=frozenset(protected))
    for image_id in removal.images:  # the manifest last: a half-removed image is not "held"
        stem = root / "images" / image_id.removeprefix("sha256:")
        for suffix in (*IMAGE_SUFFIXES[1:], IMAGE_SUFFIXES[0]):
            stem.with_suffix(suffix).unlink(missing_ok=True)
    for diff_id in removal.layers:  # the .ref first: a layer without it is not "held"
        stem = root / "layers" / diff_id.removeprefix("sha256:")
        for suffix in (".ref", ".unpacked", ".tar"):
            stem.with_suffix(suffix).unlink(missing_ok=True)
    for partial in (*root.glob("layers/*.partial"), *root.glob("images/*.partial")):
        if (time.time() if now is None else now) - _mtime(partial) >= GRACE_S:
            partial.unlink(missing_ok=True)  # left by a split that died
    return removal


def touch(path: Path) -> None:
    """Marks a cached image used now (its last use for the LRU order)."""
    with contextlib.suppress(OSError):
        os.utime(path)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
