"""Every fetch and read a command does for its user has a whole deadline and a size bound
(issue 47 §6) [NODE-INIT.6] [NODE-READ.1] [NODE-READ.2].

Real parts only: servers are raw sockets on 127.0.0.1 that drip their answer a byte at a
time or send more than the bound; files are real FIFOs, links to ``/dev/zero`` and
directories in ``tmp_path``; ``model check`` runs as the console script in a subprocess,
with a timeout and a memory limit, so the code before this change fails these tests instead
of hanging them or eating the machine's memory.
"""

from __future__ import annotations

import json
import os
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from chain.local_file import LocalFileError, read_local_file
from client.api import fetch as fetch_module
from client.node import join
from client.node.join import InitError, load_genesis
from sandbox.model_format import export_mlp

CLI = str(Path(sys.executable).parent / "learningchain")
DEADLINE_S = 2.0
"""The whole deadline the tests give a fetch (the shipped one is 60 s)."""
WAIT_S = 15.0
"""How long a test waits for a fetch before calling it stuck (the servers drip for 40 s)."""
DRIP_S = 40


@contextmanager
def dripping_server(answer: bytes, *, after: int = 0, every_s: float = 1.0) -> Iterator[str]:
    """A server on 127.0.0.1 that reads one request, sends the first ``after`` bytes of
    ``answer`` at once, then one byte every ``every_s`` seconds (for at most ``DRIP_S``
    bytes); the URL of its genesis route."""
    stop = threading.Event()
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            conn.recv(65536)
            try:
                conn.sendall(answer[:after])
                for i in range(after, min(len(answer), after + DRIP_S)):
                    if stop.wait(every_s):
                        return
                    conn.sendall(answer[i:i + 1])
            except OSError:
                return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}{join.GENESIS_API_PATH}"
    finally:
        stop.set()
        listener.close()
        thread.join(5)


def call_in_thread(call: Callable[[], object]) -> tuple[float, BaseException | None, bool]:
    """``call()`` in a thread waited on for ``WAIT_S``: (seconds, its error, still running)."""
    error: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as e:  # handed to the test
            error.append(e)

    start = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(WAIT_S)
    return time.monotonic() - start, error[0] if error else None, thread.is_alive()


def genesis_in_thread(url: str) -> tuple[float, BaseException | None, bool]:
    """``load_genesis(url)`` in a thread waited on for ``WAIT_S``."""
    return call_in_thread(lambda: load_genesis(url))


BODY = b'{"chain_id": "lc-drip", ' + b" " * 200 + b"}"
WITH_LENGTH = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
CLOSE_DELIMITED = b"HTTP/1.0 200 OK\r\n\r\n" + BODY


def head_length(answer: bytes) -> int:
    return answer.index(b"\r\n\r\n") + 4


@pytest.mark.parametrize("where, answer, after", [
    ("body", WITH_LENGTH, head_length(WITH_LENGTH)),
    ("status line and headers", WITH_LENGTH, 5),
    ("close-delimited body", CLOSE_DELIMITED, head_length(CLOSE_DELIMITED)),
])
def test_node_init_6_a_server_sending_a_byte_a_second_is_cut_at_the_whole_deadline(
        monkeypatch: pytest.MonkeyPatch, where: str, answer: bytes, after: int) -> None:
    """[NODE-INIT.6] [NODE-READ.2] A genesis server that sends a byte a second (in its
    headers, or its body with or without a length) is cut at the whole deadline: each read
    is quick, only the whole fetch is late. Before, the 30 s timeout covered each read and
    the fetch never ended."""
    monkeypatch.setattr(join, "FETCH_DEADLINE_S", DEADLINE_S, raising=False)
    with dripping_server(answer, after=after) as url:
        took, error, stuck = genesis_in_thread(url)
    assert not stuck, f"load_genesis still fetching from a dripping server after {took:.0f} s"
    assert isinstance(error, InitError) and error.code == "genesis_fetch", error
    assert took < DEADLINE_S + 3, took
    message = str(error)
    assert url in message and "deadline of 2 s" in message and "bytes of the body read" in \
        message and "nothing written" in message, message


def test_node_init_6_an_answer_over_the_bound_is_refused_naming_bytes_and_bound(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """[NODE-INIT.6] [NODE-READ.2] An answer without a length that goes on past the bound
    is refused after bound + 1 bytes, naming the URL, the bytes read and the bound; one that
    announces more than the bound is refused before its body, at once, though it would
    send it a byte a second."""
    monkeypatch.setattr(join, "MAX_GENESIS_BYTES", 1000)
    endless = b"HTTP/1.0 200 OK\r\n\r\n" + b"{" + b" " * 5000
    with dripping_server(endless, after=len(endless)) as url, \
            pytest.raises(InitError) as refused:
        load_genesis(url)
    assert refused.value.code == "bad_genesis"
    message = str(refused.value)
    assert url in message and "1001 read" in message and "1000 bytes" in message, message

    announced = b"HTTP/1.1 200 OK\r\nContent-Length: 5000000000\r\n\r\n{" + b" " * 100
    start = time.monotonic()
    with dripping_server(announced, after=len(announced) - 100) as url:
        took, error, stuck = genesis_in_thread(url)
    assert not stuck and time.monotonic() - start < 5, "read the body of a 5 GB answer"
    assert isinstance(error, InitError) and error.code == "bad_genesis", error
    assert "5000000000 bytes (Content-Length)" in str(error) and "1000 bytes" in str(error)


def test_node_read_2_the_deadline_covers_a_tls_handshake_sent_a_byte_a_second() -> None:
    """[NODE-READ.2] An https server that drips its handshake is cut at the deadline too
    (the watched socket is a duplicate, which a TLS wrap does not detach)."""
    handshake = b"\x16\x03\x03\x40\x00" + b"\x02" * 100
    with dripping_server(handshake, every_s=0.5) as url:
        url = url.replace("http://", "https://")
        start = time.monotonic()
        with pytest.raises(fetch_module.FetchError) as late:
            fetch_module.fetch(url, deadline_s=DEADLINE_S, max_bytes=1000)
    assert late.value.code == "fetch_deadline" and time.monotonic() - start < DEADLINE_S + 3
    assert url in str(late.value)


def test_node_read_2_a_whole_answer_within_bounds_is_returned_with_its_status() -> None:
    """[NODE-READ.2] The bounds change nothing for an honest server: a quick answer comes
    back whole, an error status with its body, and a refused connection is ``fetch_failed``."""
    for head, status in ((b"HTTP/1.0 200 OK\r\n\r\n", 200), (b"HTTP/1.0 404 Nope\r\n\r\n", 404)):
        with dripping_server(head + BODY, after=len(head) + len(BODY)) as url:
            got = fetch_module.fetch(url, deadline_s=DEADLINE_S, max_bytes=len(BODY))
        assert (got.status, got.body) == (status, BODY)
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    with pytest.raises(fetch_module.FetchError) as refused:
        fetch_module.fetch(f"http://127.0.0.1:{port}/", deadline_s=DEADLINE_S, max_bytes=10)
    assert refused.value.code == "fetch_failed"


# -- files -----------------------------------------------------------------------------------

def test_node_read_1_special_files_are_refused_naming_path_and_type(tmp_path: Path) -> None:
    """[NODE-READ.1] A FIFO with no writer, a link to /dev/zero, a directory and a missing
    path are refused at once, naming the path and what it is; a link to a regular file is
    followed."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    zero = tmp_path / "zero"
    zero.symlink_to("/dev/zero")
    for path, kind in ((fifo, "FIFO"), (zero, "character device"), (tmp_path, "directory")):
        start = time.monotonic()
        with pytest.raises(LocalFileError) as refused:
            read_local_file(path, 1000, what="model file")
        assert time.monotonic() - start < 1
        assert refused.value.code == "not_regular_file" and kind in str(refused.value)
        assert str(path) in str(refused.value)
    with pytest.raises(LocalFileError) as missing:
        read_local_file(tmp_path / "nothing", 1000)
    assert missing.value.code == "no_file"
    real = tmp_path / "real"
    real.write_bytes(b"12345")
    (tmp_path / "link").symlink_to(real)
    assert read_local_file(tmp_path / "link", 5) == b"12345"


def test_node_read_1_the_bound_holds_whatever_stat_says(tmp_path: Path) -> None:
    """[NODE-READ.1] The read stops at bound + 1 bytes: a file over the bound is refused
    naming the bytes read and the bound, and a /proc file whose stat says 0 bytes is read
    for what it holds."""
    big = tmp_path / "big"
    big.write_bytes(b"x" * 5000)
    with pytest.raises(LocalFileError) as over:
        read_local_file(big, 1000, what="genesis file")
    assert over.value.code == "file_too_large" and (over.value.read, over.value.bound) == \
        (1001, 1000)
    assert "1001 read" in str(over.value) and "1000 bytes" in str(over.value)
    assert os.stat("/proc/self/status").st_size == 0
    assert b"Name:" in read_local_file("/proc/self/status", 1 << 20)


def test_node_init_6_a_genesis_file_that_is_a_fifo_is_refused(tmp_path: Path) -> None:
    """[NODE-INIT.6] [NODE-READ.1] ``--genesis FILE`` naming a FIFO is refused at once (it
    blocked in ``open`` before)."""
    fifo = tmp_path / "genesis.json"
    os.mkfifo(fifo)
    took, error, stuck = genesis_in_thread(str(fifo))
    if stuck:  # release the old code's blocked open
        with open(fifo, "wb"):
            pass
    assert not stuck and took < 2, f"--genesis FIFO still reading after {took:.0f} s"
    assert isinstance(error, InitError) and "FIFO" in str(error), error


def _limit_memory() -> None:
    limit = 3 * 1024 ** 3 // 2
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def model_check(path: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``learningchain model check PATH`` as a user runs it, under a 1.5 GiB address-space
    limit and a 30 s timeout (the code before this change would block or eat memory)."""
    try:
        return subprocess.run([CLI, "model", "check", str(path), "--features", "2",
                               "--labels", "a,b", "--json"], cwd=cwd, capture_output=True,
                              text=True, timeout=30, check=False, preexec_fn=_limit_memory)
    except subprocess.TimeoutExpired:
        pytest.fail(f"model check {path} did not end within 30 s")


@pytest.mark.parametrize("kind", ["FIFO", "character device"])
def test_node_read_1_model_check_refuses_a_fifo_and_a_link_to_dev_zero(
        tmp_path: Path, kind: str) -> None:
    """[NODE-READ.1] ``model check`` on a FIFO (blocked forever before) or on a link to
    /dev/zero (read 2.65 GB before) ends at once with an error naming the path and type."""
    path = tmp_path / "model.pt"
    if kind == "FIFO":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")
    start = time.monotonic()
    done = model_check(path, tmp_path)
    assert done.returncode == 1, (done.stdout, done.stderr)
    error = json.loads(done.stdout or done.stderr)["error"]
    assert error["code"] == "not_regular_file", error
    assert str(path) in error["message"] and kind in error["message"], error
    assert time.monotonic() - start < 20


def test_node_read_1_model_check_still_checks_a_real_model_through_a_link(
        tmp_path: Path) -> None:
    """[NODE-READ.1] A regular model file, through a symbolic link, is checked as before."""
    model = export_mlp([(np.ones((2, 2), np.float32), np.zeros(2, np.float32))])
    (tmp_path / "real.pt").write_bytes(model)
    (tmp_path / "model.pt").symlink_to(tmp_path / "real.pt")
    done = model_check(tmp_path / "model.pt", tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["deployable"] and result["bytes"] == len(model), result


# -- every other file a command reads for its user ---------------------------------------------

def _keys_import(secret: Path) -> None:
    from click.testing import CliRunner

    from client.cli.main import cli

    done = CliRunner().invoke(cli, ["keys", "import", str(secret.parent / "k.json"),
                                    "--secret-file", str(secret), "--json"],
                              env={"LC_PASSPHRASE": "pw"})
    raise RuntimeError(done.output)


def _load_key(passphrase: Path) -> None:
    from client.cli.common import load_key

    load_key(passphrase.parent / "k.json", passphrase)


def _read_rows(fifo: Path) -> None:
    from client.cli.predict.input import read_rows

    read_rows(fifo)


def _config(fifo: Path) -> None:
    from client.node.config import NodeConfig

    NodeConfig.load(fifo)


def _key_file(fifo: Path) -> None:
    from chain.keyfile import read_key_file

    read_key_file(fifo, "pw")


@pytest.mark.parametrize("name, read", [
    ("secret.hex", _keys_import), ("passphrase", _load_key), ("rows.csv", _read_rows),
    ("config.toml", _config), ("node.key", _key_file),
])
def test_node_read_1_every_user_file_that_is_a_fifo_is_refused_at_once(
        tmp_path: Path, name: str, read: object) -> None:
    """[NODE-READ.1] ``keys import --secret-file``, a passphrase file, ``predict``'s rows
    file, a node's config and a key file: each refuses a FIFO at once, naming it (the key,
    passphrase, secret and config reads blocked in ``open`` before; the rows file was
    "no such file")."""
    fifo = tmp_path / name
    os.mkfifo(fifo)
    error: list[BaseException] = []

    def run() -> None:
        try:
            read(fifo)  # type: ignore[operator]
        except BaseException as e:  # handed to the test
            error.append(e)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(5)
    stuck = thread.is_alive()
    if stuck:  # release the old code's blocked open
        with open(fifo, "wb"):
            pass
    assert not stuck, f"reading {name} (a FIFO) still blocked after 5 s"
    assert error and "FIFO" in str(error[0]) and str(fifo) in str(error[0]), error


# -- the CLI's calls to a node -------------------------------------------------------------------

def _status_in_thread(url: str) -> tuple[float, BaseException | None, bool]:
    from client.api.http_client import ApiClient

    return call_in_thread(lambda: ApiClient(url, timeout=DEADLINE_S).status())


def test_node_read_2_the_clis_call_to_a_node_dripping_its_answer_ends_at_its_timeout() -> None:
    """[NODE-READ.2] ``ApiClient(timeout=T)`` is a whole deadline: a node answering a byte a
    second is cut at T (each read was quick enough for the per-read timeout before)."""
    with dripping_server(WITH_LENGTH, after=head_length(WITH_LENGTH)) as url:
        took, error, stuck = _status_in_thread(url.removesuffix(join.GENESIS_API_PATH))
    assert not stuck, f"the CLI's /status call still reading after {took:.0f} s"
    assert took < DEADLINE_S + 3
    assert getattr(error, "code", None) == "unreachable" and "deadline" in str(error), error


def test_node_read_2_the_clis_answers_and_downloads_are_bounded(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """[NODE-READ.2] An answer over ``MAX_ANSWER_BYTES`` is ``bad_response``; a download over
    its ``max_bytes`` is refused and leaves no file; the node's own errors still come
    through, and a whole answer within bounds is read as before."""
    from client.api import http_client
    from client.api.http_client import ApiClient, ApiError

    monkeypatch.setattr(http_client, "MAX_ANSWER_BYTES", 100)
    endless = b"HTTP/1.0 200 OK\r\n\r\n{" + b" " * 5000
    with dripping_server(endless, after=len(endless)) as url, pytest.raises(ApiError) as big:
        ApiClient(url.removesuffix(join.GENESIS_API_PATH), timeout=DEADLINE_S).status()
    assert big.value.code == "bad_response" and "101 read" in big.value.message

    blob = b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n" + b"b" * 500
    dest = tmp_path / "model"
    with dripping_server(blob, after=len(blob)) as url, pytest.raises(ApiError) as over:
        ApiClient(url.removesuffix(join.GENESIS_API_PATH)).download_blob(
            "ab" * 32, dest, max_bytes=400)
    assert over.value.code == "bad_response" and "500 bytes (Content-Length)" in str(over.value)
    assert not dest.exists() and not list(tmp_path.iterdir())
    with dripping_server(blob, after=len(blob)) as url:
        got = ApiClient(url.removesuffix(join.GENESIS_API_PATH)).download_blob(
            "ab" * 32, dest, max_bytes=500)
    assert got == 500 and dest.read_bytes() == b"b" * 500

    refusal = b'HTTP/1.0 404 Not Found\r\n\r\n{"error": {"code": "unknown_job", "message": "no"}}'
    with dripping_server(refusal, after=len(refusal)) as url, pytest.raises(ApiError) as no:
        ApiClient(url.removesuffix(join.GENESIS_API_PATH)).job("ab" * 32)
    assert (no.value.code, no.value.status) == ("unknown_job", 404)
