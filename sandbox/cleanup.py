"""Removing job containers a crashed node left behind [JOB-SANDBOX.4].

Two callers, two scopes. A node at startup passes its own ``node_id``: none of
its containers can be in use then, so every one of them goes, running or not.
``learningchain sandbox cleanup`` without ``--node`` runs beside live nodes
(other graphs, other users of the engine), and a container's labels name its
node but not whether that node still runs; so it removes only containers no
node can be using: stopped ones (``exited``, ``dead``) and ones never started
(``created``), once ``grace_s`` has passed so one a live node is just creating
or removing is left to it. Running ones are kept and reported with their node,
for ``--node`` to remove once the user knows that node crashed.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import docker
import docker.errors

from sandbox.container_ops import EngineErrors
from sandbox.errors import SandboxError
from sandbox.policy import LABEL_JOB, LABEL_MANAGED, LABEL_NODE

LEFTOVER_STATES = frozenset({"exited", "dead", "created"})
"""States in which no node is using a container (a ``created`` one only after the grace)."""
GRACE_S = 120.0
"""A stopped or never-started container this young may still be in a live node's hands. 10 s
was too short: under a load average of 10 (CI, 2026-11-28) a node creating, starting or
copying out of a container, and the CLI's own start, each took seconds; a node that loses
its container mid-run fails the run."""


@dataclass(frozen=True, slots=True)
class JobContainer:
    """One labelled job container as the engine lists it."""

    id: str
    name: str
    node: str
    job: str
    state: str

    def to_json(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name, "node": self.node, "job": self.job,
                "state": self.state}


@dataclass(frozen=True, slots=True)
class Cleanup:
    removed: tuple[JobContainer, ...]
    kept: tuple[JobContainer, ...]
    """Containers left alone: running (their node may be alive) or within the grace."""


def cleanup_containers(client: docker.DockerClient, node_id: str | None = None) -> list[str]:
    """Ids removed by ``sweep``: all of ``node_id``'s containers, or (None) every leftover."""
    return [c.id for c in sweep(client, node_id).removed]


def sweep(client: docker.DockerClient, node_id: str | None = None, *,
          grace_s: float = GRACE_S, now: float | None = None) -> Cleanup:
    """Force-remove ``node_id``'s job containers, or (None) those no node can be using."""
    wanted = [f"{LABEL_MANAGED}=1"]
    if node_id is not None:
        wanted.append(f"{LABEL_NODE}={node_id}")
    try:
        listed: list[dict[str, Any]] = client.api.containers(all=True,
                                                             filters={"label": wanted})
    except EngineErrors as e:
        raise SandboxError(f"cannot list job containers: {e}") from e
    now = time.time() if now is None else now
    removed, kept = [], []
    for entry in listed:
        container = _describe(entry)
        if node_id is None and not _leftover(client, entry, container.state, now - grace_s):
            kept.append(container)
            continue
        try:
            client.api.remove_container(container.id, force=True, v=True)  # its tmpfs volumes
        except docker.errors.NotFound:
            continue  # its node removed it meanwhile
        except EngineErrors as e:
            if not (isinstance(e, docker.errors.APIError) and _removal_in_progress(e)
                    and _gone_within(client, container.id, REMOVAL_WAIT_S)):
                raise SandboxError(f"cannot remove job container {container.name} "
                                   f"({container.id[:12]}, node {container.node}): {e}") from e
        removed.append(container)
    return Cleanup(tuple(removed), tuple(kept))


REMOVAL_WAIT_S = 60.0
"""How long a sweep waits for a removal the engine is already doing (its node's own, whose
request timed out on a loaded engine while the engine went on with it)."""


def _removal_in_progress(error: docker.errors.APIError) -> bool:
    """The engine's 409 for a container it is removing already (a test's sweep once met it
    under load, right after the run's own removal gave up waiting)."""
    return error.status_code == 409 and "already in progress" in str(error.explanation or "")


def _gone_within(client: docker.DockerClient, container_id: str, seconds: float) -> bool:
    """True once the engine no longer knows the container; False after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            client.api.inspect_container(container_id)
        except docker.errors.NotFound:
            return True
        except EngineErrors:
            pass  # a loaded engine's timeout: ask again
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)


def _describe(entry: dict[str, Any]) -> JobContainer:
    labels = entry.get("Labels") or {}
    names = entry.get("Names") or [""]
    return JobContainer(str(entry["Id"]), str(names[0]).lstrip("/"),
                        str(labels.get(LABEL_NODE, "")), str(labels.get(LABEL_JOB, "")),
                        str(entry.get("State", "")))


def _leftover(client: docker.DockerClient, entry: dict[str, Any], state: str,
              before: float) -> bool:
    """Stopped (or never started) before ``before``: no node is using it."""
    if state not in LEFTOVER_STATES:
        return False
    if state == "created":
        return float(entry.get("Created", 0)) < before
    try:
        finished = client.api.inspect_container(entry["Id"])["State"].get("FinishedAt", "")
    except docker.errors.NotFound:
        return False
    return _epoch(str(finished)) < before


def _epoch(stamp: str) -> float:
    """Docker's ``2026-11-22T09:14:03.123456789Z`` (nanoseconds) as seconds since the epoch;
    an unreadable or zero stamp counts as long ago."""
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)", stamp)
    if match is None:
        return 0.0
    fraction = (match.group(2) or ".0")[:7]
    zone = "+00:00" if match.group(3) == "Z" else match.group(3)
    return datetime.fromisoformat(match.group(1) + fraction + zone).timestamp()
