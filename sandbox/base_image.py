"""The offline base image every job image starts FROM [JOB-IMAGE.1].

No registry is reachable, so the image is made from parts that are:

1. ``debootstrap --variant=minbase`` writes a Debian bookworm root file
   system with ``python3`` (3.11, matching the cp311 torch wheel) from the
   Debian mirror; ``docker import`` turns it into the ``rootfs`` image.
2. ``pip download`` fetches torch (CPU, from the local wheel house) and its
   dependencies as wheels on the host.
3. ``docker build --network none`` installs those wheels in a throw-away
   stage and copies only the installed packages onto the rootfs, so the
   wheels themselves never end up in a layer.

Every step is keyed by an image tag that names its inputs, so a second call
finds the tag and returns at once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

from sandbox.errors import BaseImageError

SUITE = "bookworm"
TORCH_REQUIREMENT = "torch==2.13.0"
PYTHON_REQUIREMENTS = (TORCH_REQUIREMENT, "numpy==2.4.6")
"""numpy: torch warns on every import without it, and job code commonly wants it."""
ROOTFS_TAG = f"learningchain/rootfs:{SUITE}-1"
BASE_TAG = f"learningchain/base:{SUITE}-torch2.13.0-2"
"""Tag of the base image; bump the trailing number whenever its recipe changes."""
DEBIAN_PACKAGES = ("python3",)
"""Only what jobs need on top of minbase; everything else is attack surface and bytes."""
PRUNE_PATHS = (
    "var/cache/apt/archives",
    "var/lib/apt/lists",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
)
DEFAULT_MIRROR = "http://deb.debian.org/debian"
WHEEL_PLATFORM = "manylinux_2_28_x86_64"

Log = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class BaseImage:
    """What ``ensure_base_image`` found or made."""

    tag: str
    image_id: str
    """``sha256:...`` id of the image; jobs built FROM ``tag`` depend on exactly this."""
    built: bool
    """False when the tagged image already existed (the idempotent fast path)."""
    seconds: float


def default_cache_dir() -> Path:
    """Where downloaded wheels and scratch root file systems live between runs."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "learningchain" / "base-image"


def ensure_base_image(
    client: docker.DockerClient,
    *,
    cache_dir: Path | None = None,
    mirror: str | None = None,
    log: Log = print,
) -> BaseImage:
    """Return the base image, building whatever part of it is missing."""
    started = time.monotonic()
    existing = _image_id(client, BASE_TAG)
    if existing is not None:
        return BaseImage(BASE_TAG, existing, False, time.monotonic() - started)
    cache = cache_dir or default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    ensure_rootfs_image(client, cache, mirror or os.environ.get("LC_DEBIAN_MIRROR", DEFAULT_MIRROR),
                        log)
    wheels = download_wheels(cache / "wheels", log)
    image_id = _build_base(client, wheels, log)
    elapsed = time.monotonic() - started
    log(f"base image {BASE_TAG} ({image_id[:19]}) built in {elapsed:.0f} s")
    return BaseImage(BASE_TAG, image_id, True, elapsed)


def ensure_rootfs_image(client: docker.DockerClient, cache: Path, mirror: str, log: Log) -> str:
    """Debootstrap a minimal Debian and import it as ``ROOTFS_TAG``; reuse it if tagged."""
    existing = _image_id(client, ROOTFS_TAG)
    if existing is not None:
        return existing
    if shutil.which("debootstrap") is None:
        raise BaseImageError("debootstrap is missing: apt-get install -y debootstrap")
    if os.geteuid() != 0:
        raise BaseImageError("debootstrap needs root to build the base root file system")
    with tempfile.TemporaryDirectory(dir=cache, prefix="rootfs-") as tmp:
        root = Path(tmp) / "root"
        log(f"debootstrap {SUITE} (minbase + {', '.join(DEBIAN_PACKAGES)}) from {mirror}")
        _run(["debootstrap", "--variant=minbase", f"--include={','.join(DEBIAN_PACKAGES)}",
              SUITE, str(root), mirror], "debootstrap")
        for rel in PRUNE_PATHS:
            _empty_dir(root / rel)
        tarball = Path(tmp) / "rootfs.tar"
        _run(["tar", "--numeric-owner", "-C", str(root), "-cf", str(tarball), "."], "tar rootfs")
        log(f"docker import -> {ROOTFS_TAG}")
        repo, tag = ROOTFS_TAG.split(":")
        client.api.import_image_from_file(str(tarball), repository=repo, tag=tag)
    found = _image_id(client, ROOTFS_TAG)
    if found is None:
        raise BaseImageError(f"docker import did not produce {ROOTFS_TAG}")
    return found


def download_wheels(dest: Path, log: Log) -> Path:
    """``pip download`` torch (CPU), its dependencies and pip itself as cp311 wheels."""
    dest.mkdir(parents=True, exist_ok=True)
    log(f"pip download {TORCH_REQUIREMENT} and dependencies -> {dest}")
    _run([sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(dest),
          "--only-binary=:all:", "--implementation", "cp", "--python-version", "3.11",
          "--platform", WHEEL_PLATFORM, *PYTHON_REQUIREMENTS, "pip"], "pip download")
    return dest


DOCKERFILE = """\
FROM {rootfs} AS install
LABEL org.learningchain.stage="base-install"
COPY wheels /wheels
RUN python3 /wheels/{pip_wheel}/pip install --no-index --find-links /wheels \\
        --disable-pip-version-check --root-user-action=ignore --no-cache-dir \\
        --target /opt/site {requirements}

FROM {rootfs}
COPY --from=install /opt/site /usr/local/lib/python3.11/dist-packages
ENV HOME=/tmp PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 LANG=C.UTF-8
LABEL org.learningchain.base="{tag}"
USER 65534:65534
WORKDIR /tmp
"""


def _build_base(client: docker.DockerClient, wheels: Path, log: Log) -> str:
    pip_wheels = sorted(wheels.glob("pip-*.whl"))
    if not pip_wheels:
        raise BaseImageError(f"no pip wheel in {wheels}")
    with tempfile.TemporaryDirectory(prefix="lc-base-build-") as tmp:
        context = Path(tmp)
        (context / "wheels").mkdir()
        for wheel in wheels.glob("*.whl"):
            _link_or_copy(wheel, context / "wheels" / wheel.name)
        (context / "Dockerfile").write_text(DOCKERFILE.format(
            rootfs=ROOTFS_TAG, pip_wheel=pip_wheels[-1].name,
            requirements=" ".join(PYTHON_REQUIREMENTS), tag=BASE_TAG))
        log(f"docker build --network none -> {BASE_TAG}")
        image_id = build_image(client, context, BASE_TAG, log)
    # The install stage (wheels + installed copy) is dead weight once copied out.
    client.images.prune(filters={"dangling": True, "label": "org.learningchain.stage"})
    return image_id


def build_image(client: docker.DockerClient, context: Path, tag: str, log: Log) -> str:
    """``docker build --network none`` of ``context``; returns the image id.

    Shared by the base image and job images: neither may reach any network
    while building, so a build is reproducible from local files alone.
    """
    try:
        for chunk in client.api.build(path=str(context), tag=tag, network_mode="none", rm=True,
                                      forcerm=True, decode=True, pull=False):
            if "error" in chunk:
                raise BaseImageError(f"docker build of {tag} failed: {chunk['error'].strip()}")
            line = str(chunk.get("stream", "")).strip()
            if line.startswith("Step "):
                log(f"  {line}")
    except docker.errors.APIError as e:
        raise BaseImageError(f"docker build of {tag} failed: {e.explanation or e}") from e
    found = _image_id(client, tag)
    if found is None:
        raise BaseImageError(f"docker build did not produce {tag}")
    return found


def _image_id(client: docker.DockerClient, ref: str) -> str | None:
    try:
        return str(client.images.get(ref).id)
    except docker.errors.ImageNotFound:
        return None


def _run(argv: list[str], what: str) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise BaseImageError(f"{what} failed (exit {proc.returncode}): {' | '.join(tail)}")


def _empty_dir(path: Path) -> None:
    if path.is_dir():
        for child in path.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
