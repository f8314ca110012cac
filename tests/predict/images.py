"""The executor image in tests: built when absent, removed again by the test that built it.

``ensure_predict_image`` tags the image by a hash of the base image and the copied
dependency files, so a dependency upgrade makes a new image and the old one would pile up
on the host engine. A test that needs the image uses ``predict_image_for_test``: it builds
the image only if the engine lacks it and, if it did, removes it afterwards (an image that
was already there belongs to someone else and is left alone). Containers are the test's
own business (each test checks its sandboxes are gone by their node label).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

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


@contextlib.contextmanager
def predict_image_for_test(client: docker.DockerClient) -> Iterator[str]:
    """The executor image's id; removed on exit if this call built it."""
    existed = predict_image_present(client)
    image = ensure_predict_image(client)
    try:
        yield image
    finally:
        if not existed:
            with contextlib.suppress(docker.errors.NotFound):
                client.images.remove(image, force=False, noprune=False)
