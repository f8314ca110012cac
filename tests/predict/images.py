"""The executor image in tests: built when absent, removed again by the test that built it.

``ensure_predict_image`` tags the image by a hash of the base image and the copied
dependency files, so a dependency upgrade makes a new image and the old one would pile up
on the host engine. A test that needs the image uses ``predict_image_for_test``: it builds
the image only if the engine lacks it and, if it did, removes it afterwards (an image that
was already there belongs to someone else and is left alone). Containers are the test's
own business (each test checks its sandboxes are gone by their node label).

Tests in the other xdist process (and the benches they start) use the same image at the
same time: each user holds a shared lock on the engine's ``lock_file`` while it uses it,
and the test that built it removes it only if it can then take the lock alone. Without
that, a CI run's clean-up removed the image from under a concurrent test's executors
(every drawn executor a no-show, [PRED-EXEC.7]).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import docker
import docker.errors

from sandbox.base_image import BASE_TAG
from sandbox.predict_image import ensure_predict_image, image_tag


def predict_image_present(client: docker.DockerClient) -> bool:
    tag, _ = image_tag(client.images.get(BASE_TAG).id)
    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    return True


def lock_file(client: docker.DockerClient) -> Path:
    """One lock per engine, held shared by every test using the executor image there,
    exclusively by the one removing it. Keyed by the engine's data root as well as its
    ID: every unix-socket client's ``base_url`` is the same ``http+docker://localhost``
    (keying by it shared one lock between the host's engine and every private one), and
    this Docker's ID comes from the host's ``/etc/docker/key.json``, the same for every
    dockerd on the machine, so keyed by the ID alone a test in the other xdist process,
    using the image on its own engine, kept this one's builder from its clean-up (CI,
    2026-11-26: the image of a private engine's test left behind)."""
    info = client.info()
    engine = hashlib.sha256(f"{info['ID']}|{info['DockerRootDir']}".encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"lc-test-predict-image-{engine}.lock"


@contextlib.contextmanager
def predict_image_for_test(client: docker.DockerClient) -> Iterator[str]:
    """The executor image's id; removed on exit if this call built it and no other test
    uses it now."""
    with lock_file(client).open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_SH)
        existed = predict_image_present(client)
        image = ensure_predict_image(client)
        try:
            yield image
        finally:
            if not existed and _alone(lock):
                _remove_unused(client, image)


def _alone(lock: IO[str]) -> bool:
    """Take the lock exclusively, at once: False if another test holds it (uses the image)."""
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _remove_unused(client: docker.DockerClient, image: str) -> None:
    """Remove the image unless it is gone already or a container uses it (409: a process
    that holds no lock, such as a bench started by hand, is running it)."""
    try:
        client.images.remove(image, force=False, noprune=False)
    except docker.errors.APIError as e:
        if e.status_code not in (404, 409):
            raise
