"""Small probes a scenario runs on the test bed: an echo server, round trips, bulk sends.

Why: the test bed's links are checked from the outside, with plain TCP between two
hosts, before any node runs on them (no ping: ICMP does not cross the switch).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

from tests.hosts.testbed import Host


class EchoServer:
    """Echoes every byte back, on ``port`` of ``host``; records who connected."""

    def __init__(self, host: Host, port: int) -> None:
        self.host, self.port = host, port
        self.peers: list[str] = []
        self._sock = host.listen(port)
        self._conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True, name=f"echo-{host.name}").start()

    def _accept(self) -> None:
        while True:
            try:
                conn, peer = self._sock.accept()
            except OSError:
                return
            self.peers.append(peer[0])
            self._conns.append(conn)
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        with contextlib.suppress(OSError), conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.close()


def round_trip(sock: socket.socket, payload: bytes = b"x") -> float:
    """Seconds for ``payload`` to come back through an echo server."""
    started = time.monotonic()
    sock.sendall(payload)
    got = b""
    while len(got) < len(payload):
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the echo connection closed")
        got += chunk
    return time.monotonic() - started


def echoes(sock: socket.socket, timeout: float) -> bool:
    """Whether a byte sent now comes back within ``timeout`` (False: stalled or broken)."""
    sock.settimeout(timeout)
    try:
        round_trip(sock)
    except (OSError, ConnectionError):
        return False
    return True


def dial_works(host: Host, address: tuple[str, int], timeout: float = 2.0) -> bool:
    """Whether ``host`` can open a connection to ``address`` and get an echo back.

    A refused dial can look like an accepted one at first (the switch's relay accepts,
    then fails to reach the destination and resets): the echo decides."""
    try:
        sock = host.connect(address, timeout)
    except OSError:
        return False
    with sock:
        return echoes(sock, timeout)
