"""Errors the sandbox raises to its callers.

Failures of a *job* (timeouts, OOM, oversized output...) are not errors: the
runner reports them as results with a machine-readable reason. These
exceptions are for the host side going wrong (no engine, bad blob, bad job
directory), which the caller must handle differently from a bad job.
"""

from __future__ import annotations


class SandboxError(Exception):
    """Base of every error raised by ``sandbox``."""


class EngineUnavailable(SandboxError):
    """No Docker engine answers; the message says how to start one."""


class BaseImageError(SandboxError):
    """The offline base image could not be built."""


class ImageBlobError(SandboxError):
    """An image blob is malformed, or could not be exported or loaded."""


class ImageDigestMismatch(ImageBlobError):
    """The image in a blob is not the one the job names [JOB-IMAGE.3]."""

    def __init__(self, expected: str, found: str) -> None:
        super().__init__(
            f"image digest mismatch: job names {expected}, blob holds {found}; job refused"
        )
        self.expected = expected
        self.found = found


class JobDirError(SandboxError):
    """A job directory or its job file is missing or invalid."""


class ImageManifestError(ImageBlobError):
    """A manifest or one of its parts is not what it must be [JOB-IMAGE.6-7]; carries why."""


class ImageContentRefused(ImageManifestError):
    """[JOB-IMAGE.13] The image's own bytes can never be loaded: a layer that is not a
    readable tar, a hard link out of its layer, a compressed layer where the plain tar its
    ``diff_id`` names is due, or a load the engine refused for what the image holds.
    Permanent, like every ``ImageManifestError``: the same content-addressed bytes fetched
    again cannot load either."""
