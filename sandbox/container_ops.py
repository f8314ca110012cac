"""Low-level pieces of a container run: reading an exec's output, asking its state,
killing and removing containers. No policy here; ``runner.py`` decides [JOB-SANDBOX.*]."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import docker
import docker.errors
import requests.exceptions

from sandbox import policy

EngineErrors = (docker.errors.DockerException, requests.exceptions.RequestException, OSError)
"""What a call to the engine may raise."""


class CappedReader(threading.Thread):
    """Reads an exec's output stream, keeping at most ``cap`` bytes.

    Past the cap it calls ``on_overflow`` (which kills the container) once
    and then discards: a job printing gigabytes costs the host one cap of
    memory. It keeps draining until the stream ends, because an engine whose
    output stream is not read cannot finish killing the container.
    """

    def __init__(self, stream: Iterator[bytes], cap: int, on_overflow: Any) -> None:
        super().__init__(daemon=True)
        self._stream = stream
        self._cap = cap
        self._on_overflow = on_overflow
        self._chunks: list[bytes] = []
        self._size = 0
        self.overflow = False

    def run(self) -> None:
        try:
            for chunk in self._stream:
                if self.overflow:
                    continue
                room = self._cap - self._size
                self._chunks.append(chunk[:room])
                self._size += min(len(chunk), room)
                if len(chunk) > room:
                    self.overflow = True
                    self._on_overflow()
        except EngineErrors:
            return

    def data(self) -> bytes:
        return b"".join(self._chunks)


def exec_state(api: Any, exec_id: str) -> tuple[bool, int | None]:
    """(running, exit code) of an exec; a killed container takes its execs with it."""
    try:
        info = api.exec_inspect(exec_id)
    except docker.errors.NotFound:
        return False, None
    if info.get("Running"):
        return True, None
    code = info.get("ExitCode")
    return False, code if isinstance(code, int) else None


def tmpfs_usage(client: docker.DockerClient, container: Any) -> dict[str, float]:
    """Fill fraction of /tmp and /output, asked of ``df`` inside the still-running container."""
    try:
        exec_id = client.api.exec_create(
            container.id, ["df", "-P", policy.SCRATCH_DIR, policy.OUTPUT_DIR],
            user=policy.JOB_USER)["Id"]
        text = client.api.exec_start(exec_id).decode("utf-8", "replace")
    except EngineErrors:
        return {}
    usage: dict[str, float] = {}
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 6 and fields[1].isdigit() and int(fields[1]) > 0:
            usage[fields[5]] = int(fields[2]) / int(fields[1])
    return usage




def kill(container: Any) -> None:
    with contextlib.suppress(*EngineErrors):  # already dead
        container.kill()


def kill_in_background(container: Any) -> None:
    threading.Thread(target=kill, args=(container,), daemon=True).start()


def remove(container: Any) -> None:
    # On failure, cleanup_containers() finds it by its label at the node's next start.
    with contextlib.suppress(*EngineErrors):
        container.remove(force=True)
