"""The split-image cache is bounded (``sandbox.image_cache_prune``): least recently used
images go first, then unused ones by age; the canonical base's layers, the image being
posted and a split still being written are never removed. Real cache files, written
in ``LayerCache``'s layout, so ``LayerCache.published`` sees exactly what is left."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import pytest

from chain.content import blob_id_of_bytes
from sandbox.image_cache_prune import (
    GRACE_S,
    CacheLimits,
    limits_from_env,
    scan,
)
from sandbox.image_layers import ImageManifest, LayerRef
from sandbox.image_publish import LayerCache

NOW = time.time()  # published() marks a use with the real clock
DAY = 86400.0
BASE = b"base layer " * 1000        # 11,000 bytes: the canonical base, protected


def layer(cache: LayerCache, data: bytes, written: float) -> LayerRef:
    diff_id = "sha256:" + hashlib.sha256(data).hexdigest()
    cache.layers.mkdir(parents=True, exist_ok=True)
    path = cache.layer_path(diff_id)
    path.write_bytes(data)
    path.with_suffix(".ref").write_text(f"{blob_id_of_bytes(data).hex()} {len(data)}\n")
    for p in (path, path.with_suffix(".ref")):
        os.utime(p, (written, written))
    return LayerRef(diff_id, blob_id_of_bytes(data), len(data))


def image(cache: LayerCache, layers: list[LayerRef], last_used: float) -> str:
    """An image entry whose config lists ``layers`` (``published`` checks it)."""
    config = json.dumps({"rootfs": {"type": "layers",
                                    "diff_ids": [x.diff_id for x in layers]}}).encode()
    image_id = "sha256:" + hashlib.sha256(config).hexdigest()
    manifest = ImageManifest(image_id, blob_id_of_bytes(config), len(config), tuple(layers))
    cache.images.mkdir(parents=True, exist_ok=True)
    stem = cache.images / image_id.removeprefix("sha256:")
    stem.with_suffix(".config").write_bytes(config)
    stem.with_suffix(".sizes").write_text(json.dumps([manifest.total_size, 1]))
    stem.with_suffix(".lcimg").write_bytes(manifest.to_bytes())
    os.utime(stem.with_suffix(".lcimg"), (last_used, last_used))
    return image_id


def files(cache: LayerCache) -> set[str]:
    return {p.name for p in cache.root.rglob("*") if p.is_file()}


@pytest.fixture
def cache(tmp_path: Path) -> LayerCache:
    return LayerCache(tmp_path / "images")


def test_over_the_size_bound_the_least_recently_used_image_and_its_own_layers_go(
        cache: LayerCache) -> None:
    base = layer(cache, BASE, NOW - 90 * DAY)
    shared = layer(cache, b"s" * 4000, NOW - 9 * DAY)
    old_own, new_own = layer(cache, b"o" * 5000, NOW - 9 * DAY), layer(cache, b"n" * 5000,
                                                                       NOW - 9 * DAY)
    old = image(cache, [base, shared, old_own], NOW - 5 * DAY)
    new = image(cache, [base, shared, new_own], NOW - 1 * DAY)
    removed = cache.prune(CacheLimits(12_000, 30 * DAY), protected={base.diff_id}, now=NOW)
    assert removed.images == (old,)
    assert removed.layers == (old_own.diff_id,)
    assert cache.published(old) is None and cache.published(new) is not None
    assert cache.layer_ref(base.diff_id) == base and cache.layer_ref(shared.diff_id) == shared
    assert cache.layer_ref(old_own.diff_id) is None
    assert not any(n.startswith(old.removeprefix("sha256:")) for n in files(cache))
    # the protected base does not count: within the bound now, nothing more goes
    again = cache.prune(CacheLimits(12_000, 30 * DAY), protected={base.diff_id}, now=NOW)
    assert again.images == () and again.layers == ()


def test_the_base_goes_only_when_not_protected_and_no_image_names_it(
        cache: LayerCache) -> None:
    base = layer(cache, BASE, NOW - 90 * DAY)
    only = image(cache, [base, layer(cache, b"x" * 100, NOW - 90 * DAY)], NOW - 40 * DAY)
    kept = cache.prune(CacheLimits(10**9, 30 * DAY), protected={base.diff_id}, now=NOW)
    assert kept.images == (only,) and base.diff_id not in kept.layers
    assert cache.layer_ref(base.diff_id) == base
    unprotected = cache.prune(CacheLimits(10**9, 30 * DAY), now=NOW)
    assert unprotected.layers == (base.diff_id,) and files(cache) == set()


def test_unused_longer_than_the_age_bound_goes_even_within_the_size_bound(
        cache: LayerCache) -> None:
    stale = image(cache, [layer(cache, b"a" * 10, NOW - 60 * DAY)], NOW - 31 * DAY)
    fresh = image(cache, [layer(cache, b"b" * 10, NOW - 60 * DAY)], NOW - 29 * DAY)
    removed = cache.prune(CacheLimits(10**9, 30 * DAY), now=NOW)
    assert removed.images == (stale,) and cache.published(fresh) is not None


def test_the_image_being_posted_is_never_removed_nor_its_layers(cache: LayerCache) -> None:
    big = layer(cache, b"p" * 50_000, NOW - 90 * DAY)
    posting = image(cache, [big], NOW - 90 * DAY)
    other = image(cache, [layer(cache, b"q" * 10, NOW - 90 * DAY)], NOW)
    removed = cache.prune(CacheLimits(1_000, 30 * DAY), keep_images={posting}, now=NOW)
    assert removed.images == (other,) and cache.published(posting) is not None


def test_a_split_under_way_keeps_its_fresh_layers_a_dead_one_leaves_nothing(
        cache: LayerCache) -> None:
    fresh = layer(cache, b"f" * 100, NOW - GRACE_S / 2)   # no manifest yet: being written
    dead = layer(cache, b"d" * 100, NOW - 2 * GRACE_S)    # no manifest, ever
    partial = cache.layers / "incoming-1.partial"
    partial.write_bytes(b"half")
    os.utime(partial, (NOW - 2 * GRACE_S, NOW - 2 * GRACE_S))
    removed = cache.prune(CacheLimits(0, 30 * DAY), now=NOW)
    assert removed.layers == (dead.diff_id,)
    assert cache.layer_ref(fresh.diff_id) == fresh and not partial.exists()


def test_a_use_makes_an_image_the_most_recent(cache: LayerCache) -> None:
    now = time.time()  # published() marks the use with the real clock
    first = image(cache, [layer(cache, b"1" * 3000, now - DAY)], now - 3 * DAY)
    second = image(cache, [layer(cache, b"2" * 3000, now - DAY)], now - 2 * DAY)
    assert cache.published(first) is not None  # used now: the other is older now
    removed = cache.prune(CacheLimits(4_000, 30 * DAY))
    assert removed.images == (second,)
    assert [i.image_id for i in scan(cache.root)[0]] == [first]


def test_limits_come_from_the_environment_and_refuse_nonsense() -> None:
    assert limits_from_env({}) == CacheLimits(4096 * 1024 * 1024, 30 * DAY)
    assert limits_from_env({"LC_IMAGE_CACHE_MAX_MB": "10", "LC_IMAGE_CACHE_MAX_DAYS": "0.5"}
                           ) == CacheLimits(10 * 1024 * 1024, DAY / 2)
    with pytest.raises(ValueError, match="LC_IMAGE_CACHE_MAX_MB=-1"):
        limits_from_env({"LC_IMAGE_CACHE_MAX_MB": "-1"})
    with pytest.raises(ValueError, match="must be numbers"):
        limits_from_env({"LC_IMAGE_CACHE_MAX_DAYS": "forever"})
