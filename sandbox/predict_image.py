"""The executor image for predictions: the base image plus the few parsers the evaluation
needs inside the sandbox [PRED-EXEC.1].

The base image (torch, numpy) lacks ``msgpack`` (the canonical blob encoding),
``safetensors`` (the model format) and ``tenseal`` (CKKS). The evaluation faces untrusted
bytes with all three, so it runs in the container, not on the host, and the container needs
them. They are copied from the host's own installed distributions (the files their
``RECORD`` lists, the exact versions the host's reference evaluation uses) into one layer on
top of the base, built with ``--network none``: no registry at build or run time. The tag
names a hash of the base image id and every copied file, so a second call finds it at once
and a changed dependency gets a new image.

The project's own code (``chain``, ``sandbox``) is not baked in: the predictor mounts it
read-only (``predict_session``), so the image does not change with every code edit.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import platform
import shutil
import sys
import tempfile
from pathlib import Path

import docker
import docker.errors

from sandbox.base_image import BASE_TAG, build_image
from sandbox.container_ops import EngineErrors
from sandbox.errors import SandboxError

DISTRIBUTIONS = ("msgpack", "safetensors", "tenseal")
"""What the in-container evaluation imports beyond the base image's numpy."""
IMAGE_PYTHON = (3, 11)
"""The base image's Python (Debian bookworm's 3.11): copied extension modules are cp311."""
SITE_DIR = "/usr/local/lib/python3.11/dist-packages"
"""Where the base image's pip put torch and numpy; Debian's python3 searches it."""
TAG_PREFIX = "learningchain/predict"


class PredictImageError(SandboxError):
    """The executor image cannot be made here; the message says what is missing."""


def _dist_files(name: str) -> list[tuple[str, Path]]:
    """(path below site-packages, host file) of one installed distribution, sorted."""
    try:
        dist = md.distribution(name)
    except md.PackageNotFoundError as e:
        raise PredictImageError(f"{name} is not installed on the host; the executor image "
                                f"copies it from the host's environment") from e
    files = []
    for f in dist.files or ():
        rel = str(f)
        if rel.startswith("..") or "__pycache__" in rel or rel.startswith("/"):
            continue  # scripts outside site-packages, byte code
        host = Path(str(dist.locate_file(f)))
        if host.is_file():
            files.append((rel, host))
    if not files:
        raise PredictImageError(f"{name}: no files listed in its RECORD", name)
    return sorted(files)


def image_tag(base_id: str) -> tuple[str, list[tuple[str, Path]]]:
    """The tag naming this base and these exact files, and the files."""
    if sys.version_info[:2] != IMAGE_PYTHON or platform.machine() != "x86_64":
        raise PredictImageError(f"the host runs Python {platform.python_version()} on "
                                f"{platform.machine()}; the copied extension modules must be "
                                f"cp{IMAGE_PYTHON[0]}{IMAGE_PYTHON[1]} x86_64 like the image")
    digest = hashlib.sha256(base_id.encode())
    files = [item for name in DISTRIBUTIONS for item in _dist_files(name)]
    for rel, host in files:
        digest.update(rel.encode() + b"\0" + hashlib.sha256(host.read_bytes()).digest())
    return f"{TAG_PREFIX}:{digest.hexdigest()[:16]}", files


def ensure_predict_image(client: docker.DockerClient, base: str = BASE_TAG) -> str:
    """The executor image's id, built on first use (seconds: ~17 MB of files)."""
    try:
        base_id = client.images.get(base).id
    except docker.errors.ImageNotFound as e:
        raise PredictImageError(f"base image {base} is not loaded; run "
                                f"'learningchain sandbox base' first") from e
    except EngineErrors as e:
        raise PredictImageError(f"cannot inspect the base image: {e}") from e
    tag, files = image_tag(base_id)
    try:
        return str(client.images.get(tag).id)
    except docker.errors.ImageNotFound:
        pass
    except EngineErrors as e:
        raise PredictImageError(f"cannot inspect {tag}: {e}") from e
    with tempfile.TemporaryDirectory(prefix="lc-predict-image-") as tmp:
        context = Path(tmp)
        for rel, host in files:
            dest = context / "site" / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(host, dest)
        (context / "Dockerfile").write_text(f"FROM {base}\nCOPY site/ {SITE_DIR}/\n")
        try:
            return build_image(client, context, tag, lambda _line: None)
        except SandboxError as e:
            raise PredictImageError(f"building {tag} failed: {e}") from e
