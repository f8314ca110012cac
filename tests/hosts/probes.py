"""Small probes a scenario runs on the test bed: an echo server, round trips, bulk sends.

Why: the test bed's links are checked from the outside, with plain TCP between two
hosts, before any node runs on them (no ping: ICMP does not cross the switch).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from pathlib import Path

from tests.hosts.testbed import Host

PROBE_BYTES = 48


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


def assert_not_in_capture(capture: Path, secrets: dict[str, bytes]) -> None:
    """[WIRE-SECURE.1] Nothing of ``secrets`` crossed the switch in clear: 48-byte slices at
    a quarter, half and three quarters of each, in no recorded connection (``capture`` is a
    ``TestBed.capture`` directory); the capture must be larger than the secrets together."""
    streams = {p.name: p.read_bytes() for p in capture.iterdir()}
    total = sum(len(b) for b in streams.values())
    assert total > sum(len(v) for v in secrets.values()), (total, len(streams))
    logging.getLogger(__name__).info("captured %d streams, %d bytes; probing for %s",
                                     len(streams), total, {k: len(v) for k, v in secrets.items()})
    for what, secret in secrets.items():
        assert len(secret) >= 4 * PROBE_BYTES, (what, len(secret))
        probes = [secret[i * len(secret) // 4:i * len(secret) // 4 + PROBE_BYTES]
                  for i in (1, 2, 3)]
        for name, stream in streams.items():
            assert not any(probe in stream for probe in probes), f"{what} in clear in {name}"
