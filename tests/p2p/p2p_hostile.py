"""A hostile peer speaking raw frames, for attack tests."""

from __future__ import annotations

import asyncio
import os

import aiohttp

from chain.crypto import PrivateKey
from p2p.handshake import handshake_digest
from p2p.wire import PROTOCOL_VERSION, Auth, Hello, Message, Reject, decode_frame, encode_frame


async def open_ws(session: aiohttp.ClientSession, endpoint: str) -> aiohttp.ClientWebSocketResponse:
    return await session.ws_connect(f"http://{endpoint}/p2p", max_msg_size=0, compress=0)


async def recv(ws: aiohttp.ClientWebSocketResponse, timeout: float = 5.0) -> Message | None:
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


async def handshake(
    ws: aiohttp.ClientWebSocketResponse,
    key: PrivateKey,
    *,
    chain_id: str,
    version: int = PROTOCOL_VERSION,
    claim_pubkey: bytes | None = None,
) -> Reject | None:
    """Runs our side of the handshake; returns the victim's Reject, or None when admitted.

    ``claim_pubkey`` claims someone else's key while signing with ``key`` (a stolen
    public key without its private part).
    """
    pubkey = claim_pubkey or bytes(key.public_key)
    nonce = os.urandom(32)
    await ws.send_bytes(encode_frame(Hello(version, chain_id, pubkey, nonce, 0, ["tx"], "hostile")))
    theirs = await recv(ws)
    if isinstance(theirs, Reject) or not isinstance(theirs, Hello):
        return theirs if isinstance(theirs, Reject) else Reject("closed", "closed")
    digest = handshake_digest(chain_id, pubkey, theirs.pubkey, theirs.nonce, nonce)
    auth = await recv(ws)
    if isinstance(auth, Reject):
        return auth
    await ws.send_bytes(encode_frame(Auth(bytes(key.sign(digest)))))
    try:
        nxt = await recv(ws, timeout=1.0)
    except TimeoutError:
        return None
    if isinstance(nxt, Reject):
        return nxt
    if nxt is None:
        return Reject("closed", "closed")
    return None
