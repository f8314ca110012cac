"""The p2p node: listener, dialer, handshake, peer table, scoring and message routing.

Services (gossip, sync, blobs) register a handler per message type with
``Node.on`` and peer callbacks with ``on_connect`` / ``on_disconnect``; the
node knows nothing about them. Every background task belongs to the node's
``TaskGroup`` (or is an aiohttp request handler) and ends on ``stop``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from chain.crypto import PrivateKey
from chain.types import Address
from p2p.addrbook import AddressBook, Endpoint
from p2p.config import P2PConfig
from p2p.errors import P2PError
from p2p.handshake import (
    HandshakeError,
    HandshakeRefused,
    PeerIdentity,
    check_identify,
    check_identify_signature,
    identity_of,
    make_identify,
)
from p2p.handshake_io import expect_acceptance, expect_identify, expect_raw
from p2p.peer import ConnectionClosed, PeerConnection, WebSocket, receive_frame
from p2p.reachability import Reachability
from p2p.scoring import BanList, Offence
from p2p.secure import (
    BadRecord,
    SecureChannelError,
    Session,
    initiator_finish,
    initiator_start,
    responder_finish,
)
from p2p.tuning import tune_allocator
from p2p.wire import (
    MAX_FRAME_SIZE,
    MAX_PEERS_ENTRIES,
    RESPONSE_TYPES,
    GetPeers,
    MalformedFrame,
    Message,
    Peers,
    Reject,
    decode_frame,
    encode_frame,
)

log = logging.getLogger(__name__)

M = TypeVar("M", bound=Message)
Handler = Callable[[PeerConnection, Any], Awaitable[None] | None]
PeerCallback = Callable[[PeerConnection], Awaitable[None] | None]
RefusalCallback = Callable[[Endpoint, HandshakeRefused], None]
WS_PATH = "/p2p"
_CLOSE_TIMEOUT = 1.0
"""Seconds to wait for the other side's close frame."""
_WS_OVERHEAD = 64
"""Room for the record's 16-byte tag: ``MAX_FRAME_SIZE`` bounds the frame itself."""


class RequestFailed(P2PError):
    """A request got no usable answer (timeout, disconnect, or NotFound)."""


class Node:
    """One node's p2p endpoint."""

    def __init__(
        self, key: PrivateKey, config: P2PConfig, *, rng: random.Random | None = None
    ) -> None:
        self.key = key
        self.config = config
        self.address: Address = key.address
        self.rng = rng or random.Random()
        self.peers: dict[Address, PeerConnection] = {}
        self.bans = BanList()
        self.book = AddressBook(
            backoff_base=config.backoff_base, backoff_max=config.backoff_max, rng=self.rng
        )
        self._handlers: dict[type[Message], Handler] = {}
        self._on_connect: list[PeerCallback] = []
        self._on_disconnect: list[PeerCallback] = []
        self._on_refused: list[RefusalCallback] = []
        self._routes: dict[str, Callable[[web.Request], Awaitable[web.StreamResponse]]] = {}
        self.reach = Reachability(self)
        """[WIRE-PEX.4] Which peers' endpoints this node has reached itself."""
        self._req_ids = itertools.count(1)
        self._pending_handshakes = 0
        self._dialing: set[Endpoint] = set()
        self._tg: asyncio.TaskGroup | None = None
        self._main: asyncio.Task[None] | None = None
        self._started = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.listen_port = 0
        self.stats: Counter[str] = Counter()
        """Metrics: bytes/frames sent and received, ``bans``, ``penalty:<OFFENCE>``."""
        self.on(GetPeers, self._on_getpeers)
        self.on(Peers, self._on_peers)
        for host_port in config.bootstrap:
            host, _, port = host_port.rpartition(":")
            self.book.add((host, int(port)), bootstrap=True)

    # -- wiring --------------------------------------------------------------

    def on(
        self, message_type: type[M], handler: Callable[[PeerConnection, M], Awaitable[None] | None]
    ) -> None:
        """Routes every ``message_type`` frame from any peer to ``handler``."""
        self._handlers[message_type] = handler

    def add_get_route(
        self, service: str, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> None:
        """Serves ``GET /p2p/<service>/<arg>`` on the p2p port (the bulk blob stream).

        ``handler`` finds ``arg`` in ``request.match_info["arg"]``. May be called
        before or after ``start``.
        """
        self._routes[service] = handler

    async def _route(self, request: web.Request) -> web.StreamResponse:
        handler = self._routes.get(request.match_info["service"])
        if handler is None:
            raise web.HTTPNotFound()
        return await handler(request)

    def on_connect(self, callback: PeerCallback) -> None:
        self._on_connect.append(callback)

    def on_disconnect(self, callback: PeerCallback) -> None:
        self._on_disconnect.append(callback)

    def on_refused(self, callback: RefusalCallback) -> None:
        """[WIRE-HANDSHAKE.7] Called when an endpoint we dialled refused us (its code)."""
        self._on_refused.append(callback)

    def spawn(self, coro: Awaitable[Any], name: str | None = None) -> asyncio.Task[Any]:
        """Runs a background task owned by the node; it is cancelled by ``stop``."""
        if self._tg is None:
            raise RuntimeError("node not started")

        async def guarded() -> None:
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("background task %s failed", name)

        task = self._tg.create_task(guarded(), name=name)
        if isinstance(coro, Coroutine):  # cancelled before its first step: never awaited
            task.add_done_callback(lambda _task: coro.close())
        return task

    def now(self) -> float:
        return time.monotonic()

    @property
    def client_session(self) -> aiohttp.ClientSession | None:
        return self._session

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        if self.config.tune_allocator:
            tune_allocator()
        app = web.Application()
        app.router.add_get(WS_PATH, self._accept)
        app.router.add_get(WS_PATH + "/{service}/{arg}", self._route)
        # [WIRE-HANDSHAKE.6] keepalive_timeout also bounds how long a fresh TCP
        # connection may take to send its upgrade request (slowloris).
        self._runner = web.AppRunner(
            app,
            access_log=None,
            keepalive_timeout=self.config.http_header_timeout,
            shutdown_timeout=1.0,
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port)
        await site.start()
        self.listen_port = int(self._runner.addresses[0][1])
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        self._main = asyncio.create_task(self._run(), name=f"node-{self.address.hex()[:8]}")
        await self._started.wait()

    async def _run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            self._started.set()
            tg.create_task(self._dial_loop(), name="dialer")
            await asyncio.Event().wait()  # until stop() cancels us, and with us the group

    async def stop(self) -> None:
        """Closes every connection and ends every task; idempotent."""
        if self._main is None:
            return
        main, self._main = self._main, None
        async with asyncio.TaskGroup() as closing:
            for peer in list(self.peers.values()):
                closing.create_task(peer.close(timeout=0.5))
        main.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await main
        self._tg = None
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def __aenter__(self) -> Node:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def endpoint(self) -> str:
        return f"{self.config.host}:{self.listen_port}"

    # -- scoring -------------------------------------------------------------

    def penalize(self, peer: PeerConnection, offence: Offence) -> None:
        """[WIRE-SCORE.3] Charges the peer; below the threshold it is banned and dropped."""
        now = self.now()
        value = peer.score.charge(offence, now, self.config.score_decay_per_second)
        log.info("%r: %s (score %.0f)", peer, offence.name, value)
        self.stats[f"penalty:{offence.name}"] += 1
        if value <= self.config.ban_threshold and not peer.closed.is_set():
            self.stats["bans"] += 1
            log.warning("%r: banned for %.0fs", peer, self.config.ban_seconds)
            self.bans.ban(peer.address, now, self.config.ban_seconds)
            peer.mark_closed()
            if self._tg is not None:
                self.spawn(peer.close(), name="close-banned")

    def is_banned(self, address: Address) -> bool:
        return self.bans.is_banned(address, self.now())

    # -- connections ---------------------------------------------------------

    def connect(self, host: str, port: int) -> None:
        """Adds an endpoint to dial (as if it came from the config)."""
        self.book.add((host, port), bootstrap=True)

    async def _dial_loop(self) -> None:
        """[WIRE-PEX.3] Keeps ``target_outbound`` outbound peers, with backoff per endpoint."""
        while True:
            outbound = sum(1 for p in self.peers.values() if p.outbound) + len(self._dialing)
            if outbound < self.config.target_outbound:
                now = self.now()
                banned = {a for a in list(self.bans.until) if self.bans.is_banned(a, now)}
                for endpoint in self.book.candidates(now, set(self.peers), self.address, banned):
                    if outbound >= self.config.target_outbound:
                        break
                    if endpoint in self._dialing or endpoint == (
                        self.config.host,
                        self.listen_port,
                    ):
                        continue
                    self.book.dialing(endpoint, now)
                    self._dialing.add(endpoint)
                    outbound += 1
                    self.spawn(self._dial(endpoint), name=f"dial-{endpoint}")
            await asyncio.sleep(self.config.dial_interval)

    async def _dial(self, endpoint: Endpoint) -> None:
        host, port = endpoint
        ok = False
        try:
            if self._session is None:
                return
            ws: aiohttp.ClientWebSocketResponse | None = None
            try:
                async with asyncio.timeout(self.config.handshake_timeout):
                    ws = await self._session.ws_connect(
                        f"http://{host}:{port}{WS_PATH}",
                        max_msg_size=MAX_FRAME_SIZE + _WS_OVERHEAD,
                        heartbeat=self.config.heartbeat,
                        compress=0,
                        autoping=True,
                        timeout=aiohttp.ClientWSTimeout(ws_close=_CLOSE_TIMEOUT),
                    )
                    identity, session = await self._handshake(ws, initiator=True)
                    first = await expect_acceptance(ws, session)  # [WIRE-HANDSHAKE.7]
            except (
                TimeoutError,
                OSError,
                aiohttp.ClientError,
                ConnectionClosed,
                HandshakeError,
                MalformedFrame,
            ) as e:
                log.info("dial %s:%s failed: %s", host, port, e)
                if ws is not None:
                    await _close_quickly(ws)
                if isinstance(e, HandshakeRefused):
                    for refused in self._on_refused:
                        refused(endpoint, e)
                return
            ok = True
            self.book.succeeded(endpoint, identity.address, self.now())
            self._dialing.discard(endpoint)
            await self._serve(
                ws, identity, session, outbound=True, remote_host=host, dialled_port=port,
                first=first,
            )
            self.book.disconnected(endpoint, self.now())
        finally:
            self._dialing.discard(endpoint)
            if not ok:
                self.book.failed(endpoint, self.now())

    async def _accept(self, request: web.Request) -> web.StreamResponse:
        inbound = sum(1 for p in self.peers.values() if not p.outbound)
        if (
            inbound >= self.config.max_inbound
            or self._pending_handshakes >= self.config.max_pending_handshakes
        ):
            return web.Response(status=503, text="too many connections")
        ws = web.WebSocketResponse(
            max_msg_size=MAX_FRAME_SIZE + _WS_OVERHEAD,
            heartbeat=self.config.heartbeat,
            compress=False,
            autoping=True,
            timeout=_CLOSE_TIMEOUT,
            writer_limit=4 * 1024 * 1024,
        )
        self._pending_handshakes += 1
        try:
            async with asyncio.timeout(self.config.handshake_timeout):
                await ws.prepare(request)
                identity, session = await self._handshake(ws, initiator=False)
        except (TimeoutError, OSError, ConnectionClosed, HandshakeError, MalformedFrame) as e:
            log.info("inbound handshake from %s failed: %s", request.remote, e)
            await _close_quickly(ws)
            return ws
        finally:
            self._pending_handshakes -= 1
        await self._serve(
            ws, identity, session, outbound=False, remote_host=request.remote or "127.0.0.1"
        )
        return ws

    async def _handshake(
        self, ws: WebSocket, *, initiator: bool
    ) -> tuple[PeerIdentity, Session]:
        """[WIRE-SECURE.1-3] [WIRE-HANDSHAKE.1-5] Noise NN, then both sides' Identify; raises
        ``HandshakeError``. Only a ``Reject`` goes to a peer that fails a check."""
        cfg = self.config
        ephemeral = X25519PrivateKey.generate()
        try:
            if initiator:
                start = initiator_start(ephemeral)
                await ws.send_bytes(start.message)
                session = initiator_finish(start, await expect_raw(ws))
            else:
                message2, session = responder_finish(ephemeral, await expect_raw(ws))
                await ws.send_bytes(message2)
        except SecureChannelError as e:
            raise HandshakeError("malformed", str(e)) from e
        own = make_identify(
            self.key, cfg.chain_id, initiator=initiator, handshake_hash=session.handshake_hash,
            listen_port=self.listen_port, topics=cfg.topics, agent=cfg.agent,
        )  # fmt: skip
        await ws.send_bytes(session.send.seal(encode_frame(own)))
        try:
            other = await expect_identify(ws, session)
            address = check_identify(other, chain_id=cfg.chain_id, own_pubkey=own.pubkey)
            if not cfg.is_admitted(address):
                raise HandshakeError("not_admitted", "this key is not a member of the graph")
            if self.is_banned(address):
                raise HandshakeError("banned", "temporarily banned for misbehaviour")
            check_identify_signature(
                other, chain_id=cfg.chain_id, other_is_initiator=not initiator,
                handshake_hash=session.handshake_hash,
            )  # fmt: skip
        except HandshakeRefused:
            raise
        except HandshakeError as e:
            with contextlib.suppress(ConnectionError, RuntimeError, aiohttp.ClientError):
                await ws.send_bytes(session.send.seal(encode_frame(Reject(e.code, e.reason))))
            raise
        return identity_of(address, other), session

    async def _register(self, peer: PeerConnection) -> bool:
        """One connection per pair of nodes: the one dialled by the lower address wins.

        A replaced connection is detached (services see it leave) before the
        new one is announced, so no service mistakes the old one's end for the
        new one's.
        """
        existing = self.peers.get(peer.address)
        if existing is not None:
            if existing.dialer <= peer.dialer:
                return False
            await self._detach(existing)
            if self._tg is not None:
                self.spawn(existing.close(), name="close-duplicate")
        self.peers[peer.address] = peer
        return True

    async def _detach(self, peer: PeerConnection) -> None:
        """Removes a registered connection once: fails its requests, tells the services."""
        if self.peers.get(peer.address) is not peer:
            return
        del self.peers[peer.address]
        for fut in peer.pending.values():
            if not fut.done():
                fut.set_exception(RequestFailed("peer disconnected"))
        peer.pending.clear()
        for cb in self._on_disconnect:
            try:
                await _maybe_await(cb(peer))
            except Exception:
                log.exception("disconnect callback failed for %r", peer)

    async def _serve(
        self,
        ws: WebSocket,
        identity: PeerIdentity,
        session: Session,
        *,
        outbound: bool,
        remote_host: str,
        dialled_port: int | None = None,
        first: Message | None = None,
    ) -> None:
        """Runs one connection to its end; ``first`` is the dialler's already read first
        record of the listener [WIRE-HANDSHAKE.7], handled before the rest."""
        cfg = self.config
        peer = PeerConnection(
            ws,
            identity,
            session,
            outbound=outbound,
            remote_host=remote_host,
            dialled_port=dialled_port,
            dialer=self.address if outbound else identity.address,
            queue_size=cfg.send_queue,
            rate_msgs=cfg.rate_msgs_per_second,
            rate_burst=cfg.rate_burst,
            rate_bytes=cfg.rate_bytes_per_second,
            stats=self.stats,
        )
        if not await self._register(peer):
            await peer.close()
            return
        if self._tg is None:
            return
        writer = self._tg.create_task(peer.writer_loop(), name=f"writer-{peer!r}")
        log.info("%r connected (%s)", peer, identity.agent)
        self.reach.connected(peer)
        try:
            for cb in self._on_connect:
                await _maybe_await(cb(peer))
            peer.send_nowait(GetPeers())
            if first is not None:
                self.stats["frames_received"] += 1
                await self._dispatch(peer, first)
            await self._read_loop(peer)
        except (ConnectionClosed, ConnectionError, aiohttp.ClientError):
            pass
        except Exception:
            log.exception("%r: handler failed", peer)
        finally:
            await self._detach(peer)
            await peer.close()
            writer.cancel()
            log.info("%r disconnected", peer)

    async def _read_loop(self, peer: PeerConnection) -> None:
        """[WIRE-SECURE.5] [WIRE-FRAME.*] Open every record in order, rate and size limit
        its frame, decode it, then route it. A record that does not open ends the
        connection: its counter can never line up again."""
        while not peer.closed.is_set():
            frame = await receive_frame(peer.ws)
            self.stats["frames_received"] += 1
            self.stats["bytes_received"] += len(frame.data or b"")
            if frame.oversized:
                self.penalize(peer, Offence.OVERSIZED_FRAME)
                return
            if frame.data is None:  # a text message is no record
                self.penalize(peer, Offence.BAD_RECORD)
                return
            try:
                plain = peer.open_record(frame.data)
            except BadRecord as e:
                log.info("%r: %s", peer, e)
                self.penalize(peer, Offence.BAD_RECORD)
                return
            now = self.now()
            if not peer.msg_bucket.take(1, now) or not peer.byte_bucket.take(len(plain), now):
                self.penalize(peer, Offence.FLOOD)
                continue
            try:
                message = decode_frame(plain)
            except MalformedFrame as e:
                self.penalize(peer, Offence.OVERSIZED_FRAME if e.code == "oversized"
                              else Offence.MALFORMED_FRAME)
                continue
            await self._dispatch(peer, message)

    async def _dispatch(self, peer: PeerConnection, message: Message) -> None:
        if isinstance(message, RESPONSE_TYPES):
            fut = peer.pending.pop(message.req_id, None)
            if fut is not None and not fut.done():
                fut.set_result(message)
            elif not peer.answered_late(message.req_id):
                self.penalize(peer, Offence.UNSOLICITED)  # [WIRE-REQ.3] late is no offence
            return
        handler = self._handlers.get(type(message))
        if handler is None:
            self.penalize(peer, Offence.PROTOCOL)
            return
        await _maybe_await(handler(peer, message))

    # -- request / response --------------------------------------------------

    def next_req_id(self) -> int:
        return next(self._req_ids)

    async def request(
        self, peer: PeerConnection, message: Message, *, timeout: float | None = None
    ) -> Message:
        """[WIRE-REQ.1] Sends a request carrying ``req_id`` and waits for its response."""
        req_id = getattr(message, "req_id", None)
        if not isinstance(req_id, int):
            raise TypeError("requests carry an integer req_id")
        fut: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        peer.pending[req_id] = fut
        try:
            async with asyncio.timeout(timeout or self.config.request_timeout):
                await peer.send(message)
                return await fut
        except TimeoutError as e:
            raise RequestFailed(f"{message.TAG} to {peer!r} timed out") from e
        except ConnectionClosed as e:
            raise RequestFailed(str(e)) from e
        finally:  # timed out or cancelled: its answer may still come [WIRE-REQ.3]
            if peer.pending.pop(req_id, None) is not None:  # not answered
                peer.abandon(req_id)

    # -- peer exchange -------------------------------------------------------

    def _on_getpeers(self, peer: PeerConnection, message: GetPeers) -> None:
        """[WIRE-PEX.2] Share up to 32 peers reachable at a verified endpoint [WIRE-PEX.4]."""
        entries: list[list[Any]] = []
        for other in self.peers.values():
            endpoint = self.reach.endpoint(other)
            if other is peer or endpoint is None:
                continue
            entries.append([bytes(other.address), endpoint[0], endpoint[1]])
        self.rng.shuffle(entries)
        peer.send_nowait(Peers(entries[:MAX_PEERS_ENTRIES]))

    def _on_peers(self, peer: PeerConnection, message: Peers) -> None:
        if not self.config.peer_exchange:
            return
        for address, host, port in message.entries:
            if address != self.address and port > 0:
                self.book.add((host, port), Address(address))

    def broadcast(self, message: Message) -> None:
        """Queues ``message`` to every peer (dropped for peers that cannot keep up)."""
        frame = encode_frame(message)
        for peer in list(self.peers.values()):
            peer.send_frame_nowait(frame)


async def _close_quickly(ws: WebSocket) -> None:
    """Closes without waiting long for a misbehaving peer's close reply."""
    with contextlib.suppress(TimeoutError, ConnectionError, aiohttp.ClientError, RuntimeError):
        async with asyncio.timeout(_CLOSE_TIMEOUT):
            await ws.close()


async def _maybe_await(value: Awaitable[None] | None) -> None:
    if inspect.isawaitable(value):
        await value
