"""The executor image for predictions: the base image plus the few parsers the evaluation
needs inside the sandbox [PRED-EXEC.1].

The base image (torch, numpy) lacks ``msgpack`` (the canonical blob encoding),
``safetensors`` (the model format), ``tenseal`` (CKKS), and ``onnx`` (with ``protobuf`` and
``ml_dtypes``: the ONNX check) and ``onnxruntime`` (runs ONNX models, [PRED-EXEC.6]). The
evaluation faces untrusted bytes with all of them, so it runs in the container, not on the
host, and the container needs them. They are copied from the host's own installed
distributions (the files their ``RECORD`` lists, the exact versions the host's reference
evaluation uses) into one layer on top of the base, built with ``--network none``: no
registry at build or run time. The tag
names a hash of the base image id and every copied file, so a second call finds it at once
and a changed dependency gets a new image.

The project's own code (``chain``, ``sandbox``) is not baked in: the predictor mounts it
read-only (``predict_session``), so the image does not change with every code edit.
"""

from __future__ import annotations

from pathlib import Path

import docker
import docker.errors

from sandbox.base_image import BASE_TAG
from sandbox.container_ops import EngineErrors
from sandbox.errors import SandboxError
from sandbox.host_packages import (
    IMAGE_PYTHON,
    SITE_DIR,
    HostPackageError,
    build_layer,
    check_host_python,
    files_digest,
    host_dist,
)

__all__ = ["DISTRIBUTIONS", "IMAGE_PYTHON", "SITE_DIR", "PredictImageError",
           "ensure_predict_image", "image_tag"]

DISTRIBUTIONS = ("msgpack", "safetensors", "tenseal", "onnx", "protobuf", "ml_dtypes",
                 "onnxruntime")
"""What the in-container evaluation imports beyond the base image's numpy."""
TAG_PREFIX = "learningchain/predict"


class PredictImageError(SandboxError):
    """The executor image cannot be made here; the message says what is missing."""


def image_tag(base_id: str) -> tuple[str, list[tuple[str, Path]]]:
    """The tag naming this base and these exact files, and the files."""
    try:
        check_host_python()
        files = [item for name in DISTRIBUTIONS for item in host_dist(name).files]
    except HostPackageError as e:
        raise PredictImageError(f"executor image: {e}") from e
    return f"{TAG_PREFIX}:{files_digest(base_id, files)[:16]}", files


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
    try:
        return build_layer(client, base, files, tag)
    except SandboxError as e:
        raise PredictImageError(f"building {tag} failed: {e}") from e
