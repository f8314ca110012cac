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
process could take a port. Ports are therefore drawn *below* the kernel's ephemeral
range (``/proc/sys/net/ipv4/ip_local_port_range``, 32768-60999 here): every outgoing
connection takes a local port from that range, and a graph's nodes open many, so a
port checked free there could be an outgoing connection's by the time a node started
later binds it (seen: a data owner's node, started a minute after the validators,
failed with "address already in use" on its 46540 and, another run, 52128). Below
the range only another listener can take a port in the window, which needs bad luck,
and the failure then names the port.
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import threading
from pathlib import Path

from client.devnet.network import API_PORT_OFFSET, DEFAULT_BASE_PORT

HOST = "127.0.0.1"
README_DEVNET_NODES = 7
"""The README's ``devnet up --validators 4 --workers 3``: seven nodes."""
README_DEVNET_PORTS = frozenset(
    DEFAULT_BASE_PORT + offset + node
    for offset in (0, API_PORT_OFFSET) for node in range(README_DEVNET_NODES))
"""The ports that graph takes at ``devnet up``'s default base (26600-26606 p2p, 26700-26706
API), run as written by tests/client/test_readme_use_it.py. With 3 test processes one draw
of another process's share landed on 26600 while the README story ran (make test-repeat,
2026-11-25: "port 26600 (node0 p2p) ... is already in use")."""
README_PORTS = frozenset({26656, 26657}) | README_DEVNET_PORTS
"""The README's "Join an existing graph" ports, which tests/client/test_readme_join.py runs
as written, and its local graph's: no other test is ever handed them, so the tests that run
the README as written cannot lose them to a draw."""
_handed_out: set[int] = set(README_PORTS)
_lock = threading.Lock()
MAX_TRIES = 200
LOWEST_PORT = 10_000
"""Below this sit well-known and registered services a developer's machine may run."""
_draw = random.Random()  # not the global RNG: a test's seed must not pick its ports


def ephemeral_low(path: Path = Path("/proc/sys/net/ipv4/ip_local_port_range")) -> int:
    """The first port the kernel may give an outgoing connection (32768 if unreadable)."""
    try:
        low = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768
    return low if low > LOWEST_PORT + 1000 else 32768


def _worker_slice(low: int, high: int) -> tuple[int, int]:
    """This pytest-xdist worker's share of [low, high): ``make test`` runs 3 processes, each
    with its own ``_handed_out``; disjoint shares keep one from handing out the other's
    ports between its check and its node's bind. The whole range outside xdist."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    try:
        index = int(worker.removeprefix("gw"))
        count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    except ValueError:
        return low, high
    if count < 2 or not 0 <= index < count:
        return low, high
    share = (high - low) // count
    return low + index * share, low + (index + 1) * share


def _candidate(span: int) -> int:
    """A random start of ``span`` ports between LOWEST_PORT and the ephemeral range (this
    xdist worker's share of it)."""
    low, high = _worker_slice(LOWEST_PORT, ephemeral_low())
    return _draw.randrange(low, high - span)


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
            port = _candidate(1)
            if port in _handed_out or port in ports:
                continue
            sock = _bind(port)
            if sock is None:
                continue
            sock.close()
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
            base = _candidate(span)
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
