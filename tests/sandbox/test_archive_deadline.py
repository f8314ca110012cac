"""[JOB-OUT.6] Every wait on the engine's archive of a job's folder has a deadline.

A real ``docker`` client talks over a real socket on 127.0.0.1 to a small HTTP server
standing in for an engine whose archive stream stalls (no real engine can be made to
stall on demand): the host's reader gives up at its deadline, kills the container,
and the runner reports the run as ``timeout``, a failed run of the job. Also the
extraction of a single file's archive (``NO_ROOT``), as the engine names it.
"""

from __future__ import annotations

import io
import tarfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import docker
import pytest

from sandbox import container_ops as ops
from sandbox.output import NO_ROOT, ArchiveStalled, OutputRejected, extract_output
from sandbox.results import FailureReason
from sandbox.runner import SandboxRunner


def _tar(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class _Engine(BaseHTTPRequestHandler):
    """Answers pings; an archive request gets ``mode``: whole, drip, silent or 404."""

    mode = "whole"
    body = _tar({"output/model.pt": b"m" * 100})
    stop = threading.Event()

    def log_message(self, *_args: Any) -> None:
        pass

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        if self.path.endswith("/_ping"):
            self._answer(200, b"OK")
            return
        if "/archive" not in self.path:
            self._answer(404, b'{"message": "no such thing"}')
            return
        if self.mode == "missing":
            self._answer(404, b'{"message": "Could not find the file /output/x"}')
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/x-tar")
        self.end_headers()
        if self.mode == "whole":
            self.wfile.write(self.body)
            return
        if self.mode == "drip":  # a byte every 0.5 s, never done
            for byte in self.body:
                if self.stop.wait(0.5):
                    return
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
            return
        self.stop.wait(60)  # silent

    def _answer(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def engine() -> Iterator[tuple[docker.APIClient, type[_Engine]]]:
    handler = type("Engine", (_Engine,), {"stop": threading.Event()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    api = docker.APIClient(base_url=f"tcp://127.0.0.1:{server.server_port}", version="1.41",
                           timeout=30)
    yield api, handler
    handler.stop.set()
    server.shutdown()
    server.server_close()


class _Container:
    id = "c0ffee"

    def __init__(self) -> None:
        self.killed = 0

    def kill(self) -> None:
        self.killed += 1


@pytest.mark.parametrize("mode", ["drip", "silent"])
def test_job_out_6_a_stalled_archive_ends_at_its_deadline_and_kills(
        engine: tuple[docker.APIClient, type[_Engine]], mode: str) -> None:
    api, handler = engine
    handler.mode = mode
    killed: list[bool] = []
    chunks = ops.read_archive(api, "c0ffee", "/output", time.monotonic() + 1.5,
                              on_expiry=lambda: killed.append(True))
    with pytest.raises(ArchiveStalled) as caught:
        b"".join(chunks)
    assert killed == [True]
    assert 1.0 <= caught.value.seconds < 30  # the deadline ended it, not the client's timeout
    # the reading thread is woken (its socket shut down) and ends, though the engine stalls
    for _ in range(100):
        if not any(t.name == "lc-archive" and t.is_alive() for t in threading.enumerate()):
            break
        time.sleep(0.05)
    assert not any(t.name == "lc-archive" and t.is_alive() for t in threading.enumerate())


def test_job_out_6_a_whole_archive_arrives_and_a_missing_path_is_told_apart(
        engine: tuple[docker.APIClient, type[_Engine]]) -> None:
    api, handler = engine
    assert b"".join(ops.read_archive(api, "c0ffee", "/output", time.monotonic() + 30)) \
        == handler.body
    handler.mode = "missing"
    with pytest.raises(ops.ArchiveMissing):
        b"".join(ops.read_archive(api, "c0ffee", "/output/x", time.monotonic() + 30))


def test_job_out_6_a_stalled_copy_of_the_output_is_a_timeout_of_the_run(
        engine: tuple[docker.APIClient, type[_Engine]], tmp_path: Path) -> None:
    """The engine answers pings but its archive of /output never finishes: the run fails
    as ``timeout`` (a failed run of the job) once the copy's deadline passes, and the
    container is killed; nothing of the output is left on the host."""
    api, handler = engine
    handler.mode = "drip"
    client = docker.DockerClient(base_url=api.base_url, version="1.41", timeout=30)
    runner = SandboxRunner(client, node_id="pytest-deadline")
    container = _Container()
    out = tmp_path / "out"
    out.mkdir()
    reason, detail, total = runner._collect(container, ("output",), out, 1 << 20, {},
                                            time.monotonic() + 1.5)
    assert reason == FailureReason.TIMEOUT, detail
    assert "[JOB-OUT.6]" in detail and total == 0
    deadline = time.monotonic() + 10
    while not container.killed and time.monotonic() < deadline:  # killed in background
        time.sleep(0.05)
    assert container.killed
    assert not any(out.iterdir())


def test_job_out_6_fill_is_counted_from_archive_headers(
        engine: tuple[docker.APIClient, type[_Engine]]) -> None:
    """The fill of a folder comes from the engine's archive, file sizes rounded to pages;
    a stalled archive tells nothing (0.0), never blocks."""
    api, handler = engine
    handler.body = _tar({"tmp/a": b"x" * 5000, "tmp/b": b"y"})
    assert ops.folder_fill(api, "c0ffee", "/tmp", 4 * 4096, time.monotonic() + 30) == 0.75
    assert ops.folder_fill(api, "c0ffee", "/tmp", 3 * 4096, time.monotonic() + 30) == 1.0
    handler.mode = "silent"
    assert ops.folder_fill(api, "c0ffee", "/tmp", 4096, time.monotonic() + 1.0) == 0.0


def test_job_out_6_a_single_files_archive_is_extracted_by_its_bare_name(
        tmp_path: Path) -> None:
    summary = extract_output([_tar({"metrics.json": b'{"loss": 1}'})], tmp_path, 1024,
                             root=NO_ROOT)
    assert summary.files == 1
    assert (tmp_path / "metrics.json").read_bytes() == b'{"loss": 1}'
    for bad in ("../x", "/etc/passwd", "a/../../x"):
        with pytest.raises(OutputRejected):
            extract_output([_tar({bad: b"x"})], tmp_path / bad.replace("/", "_"), 1024,
                           root=NO_ROOT)
