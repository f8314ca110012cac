"""Which of our peers can be dialled, and at which endpoint [WIRE-PEX.4].

A node announces only a port (``identify.listen_port``); the host is whatever address
its connection comes from. Behind a NAT that address is the router's, where nobody
listens, so handing it on would send every other node into failed dials, and a bulk
stream [WIRE-BLOB.9] towards it would time out. So an endpoint is used or shared only
once *this* node has reached the peer there itself:

- an outbound peer is verified by the dial that made the connection;
- an inbound peer is probed once: a plain ``GET /p2p/probe/<id>`` to its remote host
  and announced port, where ``id`` is derived from the secret key of the connection
  being checked [WIRE-SECURE.2]. Only the process holding that connection can
  recognise the id (it answers 204, anything else 404), so a 204 proves the endpoint
  reaches that very peer, and the probe tells a stranger nothing: not who we are, not
  who it is. Unlike a dial-back over a second authenticated connection, the probe
  leaves the peer table alone (no duplicate to resolve, no churn for the services).

A failed probe is retried after the address book's backoff, while the connection lives
(at most ``PROBES_PER_CONNECTION`` in all: one probe timed out on a loaded machine left a
reachable peer unverified for as long as it stayed connected, so the node handed on no
peer at all) and when the peer connects again; a NATted peer costs one failed probe per
backoff period.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import aiohttp
from aiohttp import web

from chain.types import Address
from p2p.addrbook import AddressBook, Endpoint
from p2p.config import P2PConfig
from p2p.peer import PeerConnection
from p2p.secure import probe_id

log = logging.getLogger(__name__)

PROBE_SERVICE = "probe"
"""``GET /p2p/probe/<id hex>`` [WIRE-PEX.4]."""
PROBES_PER_CONNECTION = 4
"""[WIRE-PEX.4] Probes of one inbound connection's endpoint, the first included."""


class NodeView(Protocol):
    """What the probe needs of ``p2p.node.Node`` (which owns a ``Reachability``)."""

    config: P2PConfig
    book: AddressBook
    peers: dict[Address, PeerConnection]

    @property
    def client_session(self) -> aiohttp.ClientSession | None: ...

    def now(self) -> float: ...

    def spawn(self, coro: Awaitable[Any], name: str | None = None) -> asyncio.Task[Any]: ...

    def add_get_route(
        self, service: str, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> None: ...


class Reachability:
    """Verified endpoints of peers, and the probe on both of its ends."""

    def __init__(self, node: NodeView) -> None:
        self.node = node
        self.verified: dict[Endpoint, Address] = {}
        """Endpoints at which this node reached the peer named by the value."""
        self._next_probe: dict[Endpoint, float] = {}
        self._failures: dict[Endpoint, int] = {}
        node.add_get_route(PROBE_SERVICE, self.answer_probe)

    def endpoint(self, peer: PeerConnection) -> Endpoint | None:
        """[WIRE-PEX.4] Where this node can reach ``peer``, or None when unproven."""
        if peer.outbound and peer.dialled_port is not None:
            return (peer.remote_host, peer.dialled_port)
        announced = peer.listen_endpoint
        if announced is not None and self.verified.get(announced) == peer.address:
            return announced
        return None

    def connected(self, peer: PeerConnection) -> None:
        """Records an outbound peer's endpoint; probes an inbound peer's (once)."""
        if peer.outbound:
            if peer.dialled_port is not None:
                self._verify((peer.remote_host, peer.dialled_port), peer.address)
            return
        announced = peer.listen_endpoint
        if announced is None or self.verified.get(announced) == peer.address:
            return
        if self._next_probe.get(announced, 0.0) > self.node.now():
            return
        self._next_probe[announced] = self.node.now() + self.node.config.backoff_max
        self.node.spawn(self._probe_while_connected(peer, announced), name=f"probe-{announced}")

    async def _probe_while_connected(self, peer: PeerConnection, endpoint: Endpoint) -> None:
        """[WIRE-PEX.4] Probe; after a failure wait out the backoff and probe again while
        this very connection lives and the endpoint is still unverified."""
        for _ in range(PROBES_PER_CONNECTION):
            delay = await self._probe(peer, endpoint)
            if delay is None:
                return
            await asyncio.sleep(delay)
            if self.node.peers.get(peer.address) is not peer \
                    or self.verified.get(endpoint) == peer.address:
                return

    async def _probe(self, peer: PeerConnection, endpoint: Endpoint) -> float | None:
        """One probe; None when it reached the peer (or cannot run), else the backoff."""
        session = self.node.client_session
        if session is None:
            return None
        host, port = endpoint
        url = f"http://{_url_host(host)}:{port}/p2p/{PROBE_SERVICE}/{probe_id(peer.session).hex()}"
        status = 0
        try:
            async with asyncio.timeout(self.node.config.handshake_timeout):
                async with session.get(url, allow_redirects=False) as response:
                    status = response.status
        except (TimeoutError, OSError, aiohttp.ClientError) as e:
            log.info("probe of %r at %s:%s failed: %s", peer, host, port, e)
        if status == 204:
            self._verify(endpoint, peer.address)
            log.info("%r is reachable at %s:%s", peer, host, port)
            return None
        failures = self._failures.get(endpoint, 0) + 1
        self._failures[endpoint] = failures
        cfg = self.node.config
        delay = min(cfg.backoff_max, cfg.backoff_base * 2 ** (failures - 1))
        self._next_probe[endpoint] = self.node.now() + delay
        log.info("%r announced %s:%s, which does not reach it (status %s): not shared",
                 peer, host, port, status or "none")
        return delay

    def _verify(self, endpoint: Endpoint, address: Address) -> None:
        self.verified[endpoint] = address
        self._failures.pop(endpoint, None)
        self._next_probe.pop(endpoint, None)
        if self.node.config.peer_exchange:
            self.node.book.add(endpoint, address)

    async def answer_probe(self, request: web.Request) -> web.StreamResponse:
        """[WIRE-PEX.4] 204 when the id names one of our live outbound connections."""
        try:
            wanted = bytes.fromhex(request.match_info["arg"])
        except ValueError:
            raise web.HTTPNotFound() from None
        found = False
        for peer in list(self.node.peers.values()):
            if peer.outbound and hmac.compare_digest(probe_id(peer.session), wanted):
                found = True
        if not found:
            raise web.HTTPNotFound()
        return web.Response(status=204)


def _url_host(host: str) -> str:
    """IPv6 literals go in brackets inside a URL."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
