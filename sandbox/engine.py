"""Connection to the Docker engine, with one clear error when none answers."""

from __future__ import annotations

import docker
import docker.errors
import requests.exceptions

from sandbox.errors import EngineUnavailable

START_HINT = (
    "no Docker engine answers (DOCKER_HOST={host}); start one with: "
    "apt-get install -y docker.io && (dockerd >/var/log/dockerd.log 2>&1 &)"
)


BULK_TIMEOUT_S = 900.0
"""Socket timeout for a client that builds, saves or loads a whole image: ``docker save``
of the ~1 GB template sends its first byte only once the engine has assembled the tar,
which took over 60 s on a 2-core machine busy with a 4-node graph (issue 15)."""


def connect(timeout_s: float = 60.0) -> docker.DockerClient:
    """Return a client for the engine named by the environment (DOCKER_HOST...).

    Pings it at once so a missing engine is reported here, in one line,
    instead of as a stack trace from the first real call.
    """
    import os

    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        client = docker.from_env(timeout=int(timeout_s))
        client.ping()
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as e:
        raise EngineUnavailable(START_HINT.format(host=host)) from e
    return client
