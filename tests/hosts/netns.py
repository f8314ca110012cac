"""Network namespaces from a test: run ``ip``, make sockets inside one, forward a port out.

Why: every emulated host is a network namespace, and a test needs three things there
without a process of its own in each: commands (``ip -n``, ``nsenter --net``), sockets
(an echo server, a client measuring a round trip) and the node's HTTP API, which binds
127.0.0.1 *inside* its namespace (a loopback API needs no token and is reached by
nothing else). ``socket_in`` makes a socket in a namespace from a short-lived thread
that ``setns()``s there (a socket stays in the namespace it was made in, and setns of a
network namespace only moves the calling thread); ``Forward`` listens on 127.0.0.1 of
the test's own namespace and carries each connection to a port on a host's loopback.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path

CLONE_NEWNET = 0x40000000
NETNS_DIR = Path("/run/netns")
_libc = ctypes.CDLL(None, use_errno=True)


class NetnsError(RuntimeError):
    """A namespace command failed; carries the command and what it printed."""


def run(*argv: str, check: bool = True) -> str:
    """Runs a command (``ip``, ``iptables`` ...), returns its stdout; raises on failure."""
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise NetnsError(f"{' '.join(argv)} -> {done.returncode}: "
                         f"{(done.stderr or done.stdout).strip()}")
    return done.stdout


def enter(ns: str) -> list[str]:
    """The command prefix that runs a command in ``ns``'s network namespace only.

    ``nsenter --net``, not ``ip netns exec``: the latter also gives the command a mount
    namespace of its own with a fresh /sys, which hides /sys/fs/cgroup (a dockerd
    there cannot run containers). Both exec the command: its pid is the Popen's."""
    return ["nsenter", f"--net={NETNS_DIR / ns}", "--"]


def in_ns(ns: str, *argv: str, check: bool = True) -> str:
    """Runs a command inside namespace ``ns``."""
    return run(*enter(ns), *argv, check=check)


def namespaces() -> set[str]:
    """The names ``ip netns list`` shows (named namespaces, i.e. under /run/netns)."""
    return {line.split()[0] for line in run("ip", "netns", "list").splitlines() if line}


def pids_in(ns: str) -> list[int]:
    """Processes whose network namespace is ``ns``."""
    out = run("ip", "netns", "pids", ns, check=False)
    return [int(p) for p in out.split() if p.isdigit()]


def _setns(path: Path | str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


def socket_in(ns: str, kind: int = socket.SOCK_STREAM) -> socket.socket:
    """A new IPv4 socket living in namespace ``ns`` (usable from any thread afterwards)."""
    made: list[socket.socket] = []
    failed: list[BaseException] = []

    def work() -> None:
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            _setns(NETNS_DIR / ns)
            try:
                made.append(socket.socket(socket.AF_INET, kind))
            finally:
                _setns(f"/proc/self/fd/{own}")
        except BaseException as e:  # handed to the caller's thread
            failed.append(e)
        finally:
            os.close(own)

    thread = threading.Thread(target=work, name=f"setns-{ns}")
    thread.start()
    thread.join()
    if failed:
        raise failed[0]
    return made[0]


def connect_in(ns: str, address: tuple[str, int], timeout: float = 5.0) -> socket.socket:
    """A TCP connection from inside ``ns``."""
    sock = socket_in(ns)
    sock.settimeout(timeout)
    try:
        sock.connect(address)
    except OSError:
        sock.close()
        raise
    return sock


def listen_in(ns: str, address: tuple[str, int]) -> socket.socket:
    sock = socket_in(ns)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    sock.listen(64)
    return sock


def _pump(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


class Forward:
    """127.0.0.1:<port> here -> 127.0.0.1:<target> inside ``ns`` (a node's loopback API)."""

    def __init__(self, ns: str, target: int) -> None:
        self.ns, self.target = ns, target
        self._server = socket.socket()
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(64)
        self.port: int = self._server.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept, daemon=True, name=f"fwd-{ns}").start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._carry, args=(client,), daemon=True).start()

    def _carry(self, client: socket.socket) -> None:
        try:
            far = connect_in(self.ns, ("127.0.0.1", self.target))
        except OSError:
            client.close()
            return
        far.settimeout(None)
        back = threading.Thread(target=_pump, args=(far, client), daemon=True)
        back.start()
        _pump(client, far)
        back.join()
        client.close()
        far.close()

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)
        self._server.close()


def popen_in(ns: str, argv: Sequence[str], *, env: dict[str, str] | None = None,
             cwd: Path | None = None, log: Path | None = None) -> subprocess.Popen[bytes]:
    """Starts ``argv`` inside ``ns`` in a session of its own (the Popen's pid is the
    command's). Its output goes to ``log``."""
    out = open(log, "ab") if log is not None else subprocess.DEVNULL  # noqa: SIM115
    try:
        return subprocess.Popen([*enter(ns), *argv], env=env, cwd=cwd,
                                stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    finally:
        if log is not None:
            out.close()  # type: ignore[union-attr]
