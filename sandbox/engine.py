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
