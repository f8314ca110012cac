"""Low-level pieces of a container run: reading an exec's output, reading a folder
through the engine's archive API under a deadline, asking its state, killing and
removing containers. No policy here; ``runner.py`` decides [JOB-SANDBOX.*].

[JOB-OUT.6] The host never runs a program of the job's image for its own work:
/output, /tmp and /checkpoint are tmpfs *volumes*, which the engine's own archive
API reads (a plain ``--tmpfs`` lives only in the container's mount namespace,
where the engine cannot see it), and the fill of a folder is counted from that
archive's headers, not asked of the image's ``df``.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import tarfile
import threading
import time
from collections.abc import Generator, Iterator
from typing import Any, cast

import docker
import docker.errors
import requests.exceptions

from sandbox.output import ArchiveSourceBroken, ArchiveStalled

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


ARCHIVE_CHUNK_BYTES = 64 * 1024
_END = object()


class ArchiveMissing(ArchiveSourceBroken):
    """The path to archive does not exist in the container (the engine answered 404)."""


def read_archive(api: Any, container_id: str, path: str, deadline: float,
                 on_expiry: Any = None) -> Generator[bytes]:
    """[JOB-OUT.6] The engine's tar of ``path`` in the container, chunk by chunk, by
    ``deadline`` (``time.monotonic()``); the engine makes it, never the job's image.

    The HTTP stream is read by a thread of its own and handed over through a small
    queue, so the caller waits on the queue with the time left and never on the
    socket. Past the deadline it calls ``on_expiry`` (the runner kills the container),
    shuts the response's socket down (``shutdown`` wakes a thread blocked reading it;
    ``close`` from here would wait for that thread's buffer lock) and raises
    ``ArchiveStalled``; the reading thread then ends. A caller that stops reading early
    (an output over its cap) shuts it down the same way. Raises ``ArchiveMissing`` for
    an absent path and ``ArchiveSourceBroken`` when the engine's stream fails.
    """
    handoff: queue.Queue[object] = queue.Queue(maxsize=8)
    stop = threading.Event()
    started = time.monotonic()
    sockets: list[Any] = []

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def pump() -> None:
        try:
            res = api._get(api._url("/containers/{0}/archive", container_id),
                           params={"path": path}, stream=True,
                           headers={"Accept-Encoding": "identity"})
            with contextlib.suppress(Exception):
                raw = api._get_raw_response_socket(res)
                sockets.append(getattr(raw, "_sock", raw))  # a SocketIO's own socket
            if stop.is_set():
                return
            try:
                api._raise_for_status(res)
                for chunk in res.iter_content(ARCHIVE_CHUNK_BYTES, False):
                    if not put(chunk):
                        return
            finally:
                res.close()
            put(_END)
        except docker.errors.NotFound as e:
            put(ArchiveMissing(f"{path} is not in the container: {_short(e)}"))
        except (*EngineErrors, ValueError) as e:
            put(ArchiveSourceBroken(f"reading {path} from the engine failed: {_short(e)}"))

    threading.Thread(target=pump, name="lc-archive", daemon=True).start()
    try:
        while True:
            left = deadline - time.monotonic()
            try:
                item = handoff.get(timeout=max(0.0, left))
            except queue.Empty:
                waited = time.monotonic() - started
                if on_expiry is not None:
                    on_expiry()
                raise ArchiveStalled(f"the engine's archive of {path} did not arrive within "
                                     f"{waited:.1f} s", waited) from None
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield cast(bytes, item)
    finally:
        stop.set()
        for sock in sockets:
            with contextlib.suppress(Exception):
                sock.shutdown(socket.SHUT_RDWR)


class _Chunks:
    """A read-only file over archive chunks, for ``tarfile``'s stream mode."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        if size < 0:
            size = len(self._buffer)
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data


PAGE_BYTES = 4096
"""A tmpfs holds a file's content in whole pages."""


def folder_fill(api: Any, container_id: str, path: str, size: int, deadline: float) -> float:
    """[JOB-OUT.6] How full the tmpfs ``path`` of ``size`` bytes is, counted from the
    headers of the engine's archive (file sizes rounded up to pages), never asked of a
    program in the job's image. Stops reading as soon as the folder is known full (1.0);
    0.0 when it cannot tell (no answer by ``deadline``, the path absent, a broken stream).
    """
    used = 0
    chunks = read_archive(api, container_id, path, deadline)
    try:
        with tarfile.open(fileobj=_Chunks(chunks), mode="r|") as archive:  # type: ignore[call-overload]
            for member in archive:
                if member.isreg():
                    used += -(-member.size // PAGE_BYTES) * PAGE_BYTES
                if used >= size:
                    return 1.0
    except (ArchiveSourceBroken, tarfile.TarError, EOFError, ValueError, OverflowError,
            UnicodeError, OSError):
        return 0.0
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    return used / size if size > 0 else 0.0


def _short(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}"
    return text if len(text) <= 300 else text[:300] + "..."




def still_running(container: Any) -> bool:
    try:
        container.reload()
    except EngineErrors:
        return False
    return bool(container.attrs.get("State", {}).get("Running"))


def kill(container: Any) -> None:
    with contextlib.suppress(*EngineErrors):  # already dead
        container.kill()


def kill_in_background(container: Any) -> None:
    threading.Thread(target=kill, args=(container,), daemon=True).start()


def remove(container: Any) -> None:
    # On failure, cleanup_containers() finds it by its label at the node's next start.
    # v=True: its tmpfs volumes [JOB-OUT.6] go with it.
    with contextlib.suppress(*EngineErrors):
        container.remove(force=True, v=True)
