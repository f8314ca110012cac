"""Removing job containers a crashed node left behind [JOB-SANDBOX.4]."""

from __future__ import annotations

import contextlib

import docker
import docker.errors

from sandbox.policy import LABEL_MANAGED, LABEL_NODE


def cleanup_containers(client: docker.DockerClient, node_id: str | None = None) -> list[str]:
    """Force-remove every job container (of ``node_id`` only, when given); return their ids.

    A node calls this at startup: any labelled container still present then
    belongs to a run that the node no longer tracks.
    """
    wanted = [f"{LABEL_MANAGED}=1"]
    if node_id is not None:
        wanted.append(f"{LABEL_NODE}={node_id}")
    removed = []
    for container in client.containers.list(all=True, filters={"label": wanted}):
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)
            removed.append(str(container.id))
    return removed
