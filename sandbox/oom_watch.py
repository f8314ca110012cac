"""The kernel's OOM kills in a job's container, seen while the entry point runs [JOB-EXIT.6].

Under gVisor the kernel may pick one of gVisor's own processes, a platform stub that maps
the job's memory, and runsc 20240729 then hangs instead of ending the sandbox (seen in CI:
a warm run at its limit, a stub with 665 MiB of the job's memory killed, the entry point
silent until its 180 s deadline). Under runc a job may outlive a child the kernel killed.
Either way the run exceeded its memory, so the runner ends it as ``oom`` a moment after
the engine's ``oom`` event instead of waiting for its deadline.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import docker

from sandbox.container_ops import EngineErrors

OOM_GRACE_S = 5.0
"""[JOB-EXIT.6] How long after the engine's ``oom`` event an entry point may take to end by
itself (the usual case: the kernel killed it, or the Sentry exits with status 1) before the
runner kills the container."""
OOM_EVENT_WAIT_S = 0.3
"""The engine's oom event can trail the killed process's exit by a moment."""


class OomWatch:
    """Follows the engine's ``oom`` events of one container from a background thread."""

    def __init__(self, client: docker.DockerClient, container_id: str, since: float) -> None:
        self._client = client
        self._container_id = container_id
        self._since = since
        self._seen_at: float | None = None
        self._stream: Any = None
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._follow, name="lc-oom-watch", daemon=True)

    def start(self) -> OomWatch:
        self._thread.start()
        return self

    def seen_at(self) -> float | None:
        """Monotonic time of the first ``oom`` event, or None."""
        return self._seen_at

    def overdue(self, now: float) -> bool:
        """An OOM kill happened at least ``OOM_GRACE_S`` ago [JOB-EXIT.6]."""
        seen = self._seen_at
        return seen is not None and now - seen >= OOM_GRACE_S

    def close(self) -> None:
        with self._lock:
            self._closed = True
            stream = self._stream
        if stream is not None:
            try:
                stream.close()
            except (*EngineErrors, AttributeError):
                pass  # a stream the engine already ended

    def _follow(self) -> None:
        try:
            stream = self._client.events(
                since=self._since - 1, decode=True,
                filters={"container": self._container_id, "event": "oom"})
        except EngineErrors:
            return  # no watch: the run ends at its deadline, as without one
        with self._lock:
            self._stream = stream
            closed = self._closed
        if closed:
            self.close()
            return
        try:
            for _event in stream:
                if self._seen_at is None:
                    self._seen_at = time.monotonic()
        except (*EngineErrors, AttributeError, ValueError):
            pass  # closed under the reader, or the engine went away


def oom_killed(client: docker.DockerClient, container: Any, since: float) -> bool:
    """Did the kernel OOM-kill anything in the container since ``since`` (epoch s)?

    ``State.OOMKilled`` only covers PID 1, and the entry point is an exec, so the engine's
    ``oom`` event for the container is asked for as well.
    """
    try:
        container.reload()
        if container.attrs.get("State", {}).get("OOMKilled"):
            return True
        events = client.events(since=since - 1, until=time.time() + OOM_EVENT_WAIT_S,
                               filters={"container": container.id, "event": "oom"},
                               decode=True)
        return any(True for _ in events)
    except EngineErrors:
        return False
