"""Python distributions copied from the host into one image layer, offline.

No registry is reachable from a build or a sandbox, so a package an image needs beyond the
base image's torch and numpy is copied from the host's own installed distribution: the files
its ``RECORD`` lists (the exact version the host runs) go into one layer ``FROM`` the image,
built with ``--network none``. The predict executor image [PRED-EXEC.1] and a job's
``[python] packages`` [JOB-IMAGE.12] both use it; for a job, which distributions to copy
(the named ones and everything they require, less the base image's) is
``sandbox.package_closure.resolve_closure``. Copied extension modules are host builds,
so the host must run the image's Python (3.11) on x86_64.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import platform
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import docker

from sandbox.base_image import build_image
from sandbox.errors import SandboxError
from sandbox.layer_bytecode import BYTECODE_FORMAT, compile_layer

IMAGE_PYTHON = (3, 11)
"""The base image's Python (Debian bookworm's 3.11): copied extension modules are cp311."""
SITE_DIR = "/usr/local/lib/python3.11/dist-packages"
"""Where the base image's pip put torch and numpy; Debian's python3 searches it."""


class HostPackageError(SandboxError):
    """A host distribution cannot be copied into an image; the message names it."""


@dataclass(frozen=True, slots=True)
class HostDist:
    """One installed distribution: its name and version on the host, and its files."""

    name: str
    version: str
    files: tuple[tuple[str, Path], ...]
    """(path below site-packages, host file), sorted."""


def host_dist(name: str) -> HostDist:
    """The files of one host-installed distribution; refuses one that is not installed."""
    try:
        dist = md.distribution(name)
    except md.PackageNotFoundError as e:
        raise HostPackageError(f"{name} is not installed on the host; the image copies it "
                               f"from the host's environment (pip install it there)") from e
    files = []
    for f in dist.files or ():
        rel = str(f)
        if rel.startswith("..") or "__pycache__" in rel or rel.startswith("/"):
            continue  # scripts outside site-packages, byte code
        host = Path(str(dist.locate_file(f)))
        if host.is_file():
            files.append((rel, host))
    if not files:
        raise HostPackageError(f"{name}: no files listed in its RECORD", name)
    return HostDist(dist.metadata["Name"] or name, dist.version, tuple(sorted(files)))


def check_host_python() -> None:
    """Refuse a host whose extension modules would not load in the image."""
    if sys.version_info[:2] != IMAGE_PYTHON or platform.machine() != "x86_64":
        raise HostPackageError(f"the host runs Python {platform.python_version()} on "
                               f"{platform.machine()}; the copied extension modules must be "
                               f"cp{IMAGE_PYTHON[0]}{IMAGE_PYTHON[1]} x86_64 like the image")


def files_digest(base_id: str, files: Iterable[tuple[str, Path]]) -> str:
    """sha256 hex of the image id below, every copied file (path and content) and the byte
    code's format (a layer built before its byte code was compiled gets another tag)."""
    digest = hashlib.sha256(base_id.encode() + b"\0" + BYTECODE_FORMAT.encode())
    for rel, host in files:
        digest.update(rel.encode() + b"\0" + hashlib.sha256(host.read_bytes()).digest())
    return digest.hexdigest()


def build_layer(client: docker.DockerClient, base: str, files: Iterable[tuple[str, Path]],
                tag: str, log: Callable[[str], None] = lambda _line: None) -> str:
    """``FROM base`` plus ``files`` under ``SITE_DIR`` and their byte code
    (``sandbox.layer_bytecode``), built offline; returns the image id."""
    with tempfile.TemporaryDirectory(prefix="lc-host-packages-") as tmp:
        context = Path(tmp)
        files = list(files)
        for rel, host in files:
            dest = context / "site" / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(host, dest)
        made = compile_layer(context / "site", SITE_DIR, dict(files))
        log(f"  byte code for {made.compiled} Python files ({made.reused} from the host's, "
            f"{made.compiled - made.reused} compiled; {made.skipped} left to compile at import)")
        (context / "Dockerfile").write_text(f"FROM {base}\nCOPY site/ {SITE_DIR}/\n")
        return build_image(client, context, tag, log)
