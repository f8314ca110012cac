"""A hostile peer speaking raw records, for attack tests.

``secure_handshake`` runs the dialler's side of the secure channel
[WIRE-SECURE.1-3] by hand and returns a ``SecureWS``: ``send_bytes`` seals a
frame as the next record, ``receive`` opens the next one, ``send_record``
sends bytes as they are (a forged, replayed or reordered record).
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from chain.crypto import PrivateKey
from p2p.secure import (
    INITIATOR,
    RESPONDER,
    Session,
    identify_digest,
    initiator_finish,
    initiator_start,
    responder_finish,
)
from p2p.wire import PROTOCOL_VERSION, Identify, Message, Reject, decode_frame, encode_frame


async def open_ws(session: aiohttp.ClientSession, endpoint: str) -> aiohttp.ClientWebSocketResponse:
    return await session.ws_connect(f"http://{endpoint}/p2p", max_msg_size=0, compress=0)


class SecureWS:
    """A WebSocket (aiohttp's or a hand-written one) inside an established secure channel."""

    def __init__(self, ws: Any, session: Session) -> None:
        self.ws = ws
        self.session = session

    @property
    def closed(self) -> bool:
        return bool(self.ws.closed)

    async def send_bytes(self, frame: bytes) -> None:
        await self.ws.send_bytes(self.session.send.seal(frame))

    async def send_record(self, record: bytes) -> None:
        await self.ws.send_bytes(record)

    async def send_str(self, text: str) -> None:
        await self.ws.send_str(text)

    async def receive(self, timeout: float | None = None) -> aiohttp.WSMessage:
        msg = await self.ws.receive(timeout=timeout)
        if msg.type is aiohttp.WSMsgType.BINARY:
            frame = self.session.recv.open(msg.data)
            return aiohttp.WSMessage(aiohttp.WSMsgType.BINARY, frame, None)
        return msg  # type: ignore[no-any-return]

    async def close(self) -> None:
        await self.ws.close()


async def recv(ws: SecureWS, timeout: float = 5.0) -> Message | None:
    """The next decodable frame, or None once the connection closed."""
    async with asyncio.timeout(timeout):
        while True:
            msg = await ws.receive()
            if msg.type is aiohttp.WSMsgType.BINARY:
                return decode_frame(msg.data)
            if msg.type in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSED,
                aiohttp.WSMsgType.ERROR,
            ):
                return None


async def secure_handshake(
    ws: Any,
    key: PrivateKey,
    *,
    chain_id: str,
    version: int = PROTOCOL_VERSION,
    claim_pubkey: bytes | None = None,
    topics: tuple[str, ...] = ("tx",),
) -> tuple[SecureWS, Identify]:
    """Noise NN as the dialler, then our ``Identify``; returns the channel and the node's
    ``Identify`` (read before ours is judged). ``claim_pubkey`` claims someone else's key
    while signing with ``key`` (a stolen public key without its private part)."""
    start = initiator_start(X25519PrivateKey.generate())
    await ws.send_bytes(start.message)
    msg = await ws.receive(timeout=5.0)
    session = initiator_finish(start, msg.data)
    pubkey = claim_pubkey or bytes(key.public_key)
    digest = identify_digest(chain_id, INITIATOR, session.handshake_hash, pubkey, 0, topics,
                             "hostile")
    secure = SecureWS(ws, session)
    await secure.send_bytes(encode_frame(
        Identify(version, chain_id, pubkey, 0, list(topics), "hostile", bytes(key.sign(digest)))))
    theirs = await recv(secure)
    if not isinstance(theirs, Identify):
        raise AssertionError(f"expected the node's identify, got {theirs}")
    return secure, theirs


async def secure_accept(
    ws: Any, key: PrivateKey, *, chain_id: str, topics: tuple[str, ...] = ("tx",)
) -> tuple[SecureWS, Identify]:
    """The listener's side: Noise NN as the responder, then our ``Identify``."""
    msg = await ws.receive(timeout=5.0)
    message2, session = responder_finish(X25519PrivateKey.generate(), msg.data)
    await ws.send_bytes(message2)
    pubkey = bytes(key.public_key)
    digest = identify_digest(chain_id, RESPONDER, session.handshake_hash, pubkey, 0, topics,
                             "hostile")
    secure = SecureWS(ws, session)
    await secure.send_bytes(encode_frame(Identify(
        PROTOCOL_VERSION, chain_id, pubkey, 0, list(topics), "hostile", bytes(key.sign(digest)))))
    theirs = await recv(secure)
    if not isinstance(theirs, Identify):
        raise AssertionError(f"expected the node's identify, got {theirs}")
    return secure, theirs


async def handshake(
    ws: aiohttp.ClientWebSocketResponse,
    key: PrivateKey,
    *,
    chain_id: str,
    version: int = PROTOCOL_VERSION,
    claim_pubkey: bytes | None = None,
) -> Reject | None:
    """Runs our side of the handshake; returns the victim's Reject, or None when admitted."""
    secure, _ = await secure_handshake(
        ws, key, chain_id=chain_id, version=version, claim_pubkey=claim_pubkey
    )
    try:
        nxt = await recv(secure, timeout=1.0)
    except TimeoutError:
        return None
    if isinstance(nxt, Reject):
        return nxt
    if nxt is None:
        return Reject("closed", "closed")
    return None
