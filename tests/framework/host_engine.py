"""A fingerprint of the machine's own Docker engine, to prove the tests left it alone.

Why: tests that stop or break an engine use a private one
(``tests/framework/dockerd.py``); a developer's ``make test`` must never stop
their dockerd or touch containers they had running. tests/conftest.py takes a
fingerprint when the session starts and compares it when the session ends: the
same dockerd process (pid and start time, so a restart under the same pid is
seen), and every container that existed at the start still there, in the same
state, not restarted. Containers the tests create and remove in between are
the tests' own business (their fixtures check for leftovers).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox.policy import LABEL_MANAGED

HOST_SOCKET = "unix:///var/run/docker.sock"
HOST_PIDFILE = Path("/var/run/docker.pid")
IN_FLIGHT_S = 60.0


@dataclass(frozen=True, slots=True)
class Process:
    pid: int
    started: int
    """Start time in clock ticks since boot (/proc/PID/stat field 22)."""


@dataclass(frozen=True, slots=True)
class HostEngine:
    dockerd: Process | None
    containers: dict[str, tuple[str, str]]
    """Container id -> (status, StartedAt) of every container on the host engine."""

    def describe(self) -> str:
        pid = self.dockerd.pid if self.dockerd else "none"
        return f"dockerd pid {pid}, {len(self.containers)} containers"


def _process(pid: int) -> Process | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return Process(pid, int(fields[19]))


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def host_dockerd() -> Process | None:
    """The engine behind /var/run/docker.sock: its default pidfile, or else the one
    ``dockerd`` process without ``--data-root`` (private test engines always pass one)."""
    with contextlib.suppress(OSError, ValueError):
        pid = int(HOST_PIDFILE.read_text().strip())
        argv = _cmdline(pid)  # empty when the pidfile is stale (the engine died unclean)
        if argv and Path(argv[0]).name == "dockerd":
            return _process(pid)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        argv = _cmdline(int(entry.name))
        if argv and Path(argv[0]).name == "dockerd" and \
                not any(a.startswith("--data-root") for a in argv):
            return _process(int(entry.name))
    return None


def _containers() -> dict[str, tuple[str, str]]:
    """The machine owner's containers: not those LearningChain runs (sandbox jobs of this or
    another session), not build steps, and not those created in the last minute: on a
    shared machine another session's come and go and would look "removed" at the end."""
    import docker

    client = docker.DockerClient(base_url=HOST_SOCKET, timeout=30)
    try:
        out: dict[str, tuple[str, str]] = {}
        for c in client.api.containers(all=True):
            if LABEL_MANAGED in (c.get("Labels") or {}) or _build_step(c) or \
                    time.time() - float(c.get("Created", 0)) < IN_FLIGHT_S:
                continue
            with contextlib.suppress(docker.errors.NotFound):
                info: dict[str, Any] = client.api.inspect_container(c["Id"])
                out[c["Id"]] = (str(info["State"]["Status"]), str(info["State"]["StartedAt"]))
        return out
    finally:
        client.close()


def _build_step(container: dict[str, Any]) -> bool:
    """The classic builder runs each RUN step in a container of the previous step's bare
    image id; people run containers of named images."""
    return str(container.get("Image", "")).startswith("sha256:")


def fingerprint() -> HostEngine | None:
    """None when this machine runs no host engine (nothing to protect)."""
    dockerd = host_dockerd()
    if dockerd is None:
        return None
    try:
        containers = _containers()
    except Exception:  # an engine that does not answer still has a pid to keep
        containers = {}
    return HostEngine(dockerd, containers)


def changes(before: HostEngine, after: HostEngine | None) -> list[str]:
    """What the session did to the host engine; empty when it left it alone."""
    if after is None or after.dockerd is None:
        return [f"the host dockerd (pid {before.dockerd.pid if before.dockerd else '?'}) "
                "is gone"]
    found = []
    if after.dockerd != before.dockerd:
        found.append(f"the host dockerd changed: {before.dockerd} -> {after.dockerd}")
    for cid, state in before.containers.items():
        now = after.containers.get(cid)
        if now is None:
            found.append(f"host container {cid[:12]} was removed")
        elif now != state:
            found.append(f"host container {cid[:12]} changed: {state} -> {now}")
    return found
