"""A private engine started on a clone of a seeded data root (tests/framework/engine_seed.py).

The clone is checked file by file on a made-up data root (layer entries share the seed's
inodes, everything else is a copy of its own with the same owner, mode, times and overlayfs
attributes), then on a real private engine: the image is there with its tags and runs, and
what one engine does to it (a container writing, the image removed) reaches neither the
seed nor a second engine cloned from it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import docker
import pytest

from tests.framework.dockerd import PrivateDockerd, image_cache_key
from tests.framework.engine_seed import (
    SEEDS,
    SeedError,
    clone_seed,
    ensure_seed,
    seed_path,
)

OPAQUE = "trusted.overlay.opaque"
root_only = pytest.mark.skipif(os.geteuid() != 0,
                               reason="overlayfs attributes and whiteouts need root")


def made_up_seed(tmp_path: Path) -> Path:
    """A seed shaped like an engine's data root: a layer with a file, a symbolic link, an
    opaque folder and a whiteout; metadata and a database outside the layers."""
    seed = tmp_path / SEEDS / "k"
    data = seed / "data"
    diff = data / "overlay2" / "abc" / "diff"
    (diff / "usr" / "opaque").mkdir(parents=True)
    (diff / "usr" / "bin.txt").write_text("layer bytes")
    os.chmod(diff / "usr" / "bin.txt", 0o4755)
    os.symlink("bin.txt", diff / "usr" / "link")
    os.setxattr(diff / "usr" / "opaque", OPAQUE, b"y")
    os.mknod(diff / "usr" / "gone", stat.S_IFCHR | 0o000, os.makedev(0, 0))
    (data / "overlay2" / "abc" / "link").write_text("SHORT")
    (data / "overlay2" / "l").mkdir()
    os.symlink("../abc/diff", data / "overlay2" / "l" / "SHORT")
    (data / "image" / "overlay2").mkdir(parents=True)
    (data / "image" / "overlay2" / "repositories.json").write_text("{}")
    (data / "volumes").mkdir()
    (data / "volumes" / "metadata.db").write_bytes(b"bolt")
    os.utime(diff / "usr", (1_000_000, 1_000_000))
    return seed


@root_only
def test_layer_entries_are_linked_and_the_rest_copied_with_their_attributes(
        tmp_path: Path) -> None:
    seed = made_up_seed(tmp_path)
    clone = tmp_path / "engine" / "data"
    linked = clone_seed(seed, clone)
    source, copy = seed / "data", clone
    usr = Path("overlay2/abc/diff/usr")
    assert linked == 3  # bin.txt, link, gone; nothing outside the layer
    for name in ("bin.txt", "link", "gone"):
        assert os.lstat(source / usr / name).st_ino == os.lstat(copy / usr / name).st_ino
    assert os.stat(copy / usr / "bin.txt").st_mode & 0o7777 == 0o4755
    assert os.readlink(copy / usr / "link") == "bin.txt"
    assert stat.S_ISCHR(os.lstat(copy / usr / "gone").st_mode)
    assert os.getxattr(copy / usr / "opaque", OPAQUE) == b"y"
    assert os.stat(copy / usr).st_mtime == 1_000_000
    for outside in ("volumes/metadata.db", "image/overlay2/repositories.json",
                    "overlay2/abc/link"):
        assert os.stat(source / outside).st_ino != os.stat(copy / outside).st_ino
        assert (source / outside).read_bytes() == (copy / outside).read_bytes()
    assert os.readlink(copy / "overlay2/l/SHORT") == "../abc/diff"
    # an engine rewriting its database leaves the seed's alone
    (copy / "volumes" / "metadata.db").write_bytes(b"changed")
    assert (source / "volumes" / "metadata.db").read_bytes() == b"bolt"


@root_only
def test_a_clone_refuses_what_a_data_root_never_holds_outside_a_layer(
        tmp_path: Path) -> None:
    seed = made_up_seed(tmp_path)
    os.mknod(seed / "data" / "volumes" / "backingFsBlockDev", stat.S_IFBLK | 0o600,
             os.makedev(7, 0))  # made again by the engine: left out
    os.mkfifo(seed / "data" / "volumes" / "pipe")
    with pytest.raises(SeedError, match="volumes/pipe"):
        clone_seed(seed, tmp_path / "engine" / "data")
    with pytest.raises(SeedError, match="no data root"):
        clone_seed(tmp_path / "nothing", tmp_path / "other" / "data")


def test_a_seed_is_built_once_and_a_failed_build_leaves_none(tmp_path: Path) -> None:
    builds: list[Path] = []

    def build(data: Path) -> None:
        builds.append(data)
        data.mkdir()
        (data / "f").write_text("x")

    first = ensure_seed(tmp_path, "one", build)
    assert ensure_seed(tmp_path, "one", build) == first == seed_path(tmp_path, "one")
    assert len(builds) == 1 and (first / "data" / "f").read_text() == "x"

    def broken(data: Path) -> None:
        data.mkdir()
        raise RuntimeError("engine died")

    with pytest.raises(RuntimeError, match="engine died"):
        ensure_seed(tmp_path, "two", broken)
    assert not seed_path(tmp_path, "two").exists()
    # a seed of another image replaces the older one
    ensure_seed(tmp_path, "three", build)
    assert not first.exists() and seed_path(tmp_path, "three").is_dir()


def _held(engine: PrivateDockerd) -> dict[str, list[str]]:
    client = docker.DockerClient(base_url=engine.host, timeout=60)
    try:
        return {i.id: sorted(i.tags) for i in client.images.list()}
    finally:
        client.close()


@pytest.mark.docker
def test_two_engines_start_on_the_seed_and_what_one_does_reaches_neither_the_seed_nor_the_other(
        tmp_path: Path) -> None:
    from sandbox.base_image import BASE_TAG, ensure_base_image
    from sandbox.engine import connect
    from tests.framework.dockerd import cache_dir

    if os.geteuid() != 0:
        pytest.skip("a private dockerd needs root")
    docker_client = connect()
    ensure_base_image(docker_client, log=lambda _m: None)
    base = docker_client.images.get(BASE_TAG)
    with PrivateDockerd(log_file=tmp_path / "a.log") as first, \
            PrivateDockerd(log_file=tmp_path / "b.log") as second:
        assert first.load_from_host(docker_client, BASE_TAG) == base.id
        assert second.load_from_host(docker_client, BASE_TAG) == base.id
        seed = seed_path(cache_dir(), image_cache_key(base))
        assert first.seed == second.seed == seed, "both engines started on the seed"
        assert _held(first) == _held(second) == {base.id: sorted(base.tags)}
        one = first.client(timeout=120)
        # as root, a new file and a change to a layer's file (overlayfs copies it up)
        out = one.containers.run(base.id, ["sh", "-c", "echo hi > /etc/x; echo evil >> "
                                           "/etc/passwd; cat /etc/x; python3 -c 'print(2 + 3)'"],
                                 user="0", network_mode="none", remove=True)
        assert out.split() == [b"hi", b"5"]
        one.images.remove(base.id, force=True)
        assert _held(first) == {}
        two = second.client(timeout=120)
        assert two.containers.run(base.id, ["cat", "/etc/hostname"], network_mode="none",
                                  remove=True)
        assert _held(second) == {base.id: sorted(base.tags)}
    etc_folders = list((seed / "data" / "overlay2").glob("*/diff/etc"))
    assert etc_folders and not any((d / "x").exists() for d in etc_folders)
    passwd = [d / "passwd" for d in etc_folders if (d / "passwd").exists()]
    assert passwd and not any(b"evil" in f.read_bytes() for f in passwd)


def test_a_seed_being_cloned_is_never_removed_for_another_images_seed(tmp_path: Path) -> None:
    """CI run 1 of 2026-11-26: one process built the seed of another image, removed the
    others (``_remove_other_seeds``) and took the base image's seed from under a clone in
    another process (FileNotFoundError mid-walk). A clone holds its seed's lock shared; a
    removal only takes seeds whose lock it gets at once."""
    from tests.framework import engine_seed

    cache = tmp_path / "cache"
    seed = engine_seed.ensure_seed(cache, "base", lambda data: (data.mkdir(parents=True),
                                                                (data / "f").write_text("x")))
    with engine_seed.file_lock(seed.with_name("base.lock"), shared=True):  # as clone_seed
        engine_seed._remove_other_seeds(cache, keep="other")
        assert (seed / "data" / "f").read_text() == "x"
    assert engine_seed.clone_seed(seed, tmp_path / "clone") == 0
    assert (tmp_path / "clone" / "f").read_text() == "x"
    engine_seed._remove_other_seeds(cache, keep="other")  # nobody holds it now
    assert not seed.exists()
