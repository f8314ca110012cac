"""Free TCP ports on 127.0.0.1 from one place: the kernel picks, nobody hard-codes.

Why: fixed port ranges (27200, 27500, 27600 + seed...) collide the moment two
test runs share a machine (several engineers, CI jobs, a ``make demo`` left
running) and fail with "address in use" far from the cause. Binding port 0
lets the kernel hand out a port nobody holds now; a process-wide record makes
sure one session never hands the same port out twice.

Devnet graphs need a *block*: node ``i`` listens on ``base + i`` (p2p) and
``base + API_PORT_OFFSET + i`` (HTTP API). ``free_base_port`` finds a base
whose every port of that shape is free at the moment of the check.

There is a window between the check and the node's bind in which another
process could take a port; the kernel assigns port-0 binds round the whole
ephemeral range, so that needs bad luck, and the failure then names the port.
"""

from __future__ import annotations

import contextlib
import socket
import threading

from client.devnet.network import API_PORT_OFFSET

HOST = "127.0.0.1"
_handed_out: set[int] = set()
_lock = threading.Lock()
MAX_TRIES = 200


def _bind(port: int) -> socket.socket | None:
    """A listening-style bind on ``port`` (0: any); None when the port is taken."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((HOST, port))
    except OSError:
        sock.close()
        return None
    return sock


def free_port() -> int:
    """One port on 127.0.0.1 that is free now and not handed out before in this process."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports (not necessarily adjacent)."""
    ports: list[int] = []
    with _lock:
        for _ in range(MAX_TRIES):
            sock = _bind(0)
            if sock is None:
                continue
            with sock:
                port = int(sock.getsockname()[1])
            if port in _handed_out:
                continue
            _handed_out.add(port)
            ports.append(port)
            if len(ports) == count:
                return ports
    raise RuntimeError(f"no {count} free ports on {HOST} after {MAX_TRIES} tries")


def free_base_port(nodes: int, offsets: tuple[int, ...] = (0, API_PORT_OFFSET)) -> int:
    """A ``base`` such that ``base + offset + i`` is free for every offset and ``i < nodes``.

    The default offsets are the devnet layout's (p2p ports, then API ports).
    """
    span = max(offsets) + nodes
    with _lock:
        for _ in range(MAX_TRIES):
            probe = _bind(0)
            if probe is None:
                continue
            with probe:
                base = int(probe.getsockname()[1])
            if base + span > 65535:
                continue
            wanted = [base + off + i for off in offsets for i in range(nodes)]
            if _handed_out.intersection(wanted):
                continue
            with contextlib.ExitStack() as held:
                socks = [_bind(p) for p in wanted]
                for s in socks:
                    if s is not None:
                        held.enter_context(s)
                if all(s is not None for s in socks):
                    _handed_out.update(wanted)
                    return base
    raise RuntimeError(f"no free block of {nodes} nodes on {HOST} after {MAX_TRIES} tries")
