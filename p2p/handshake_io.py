"""Reading the handshake's messages off a WebSocket [WIRE-SECURE.1-3] [WIRE-HANDSHAKE.4/7].

Split from ``p2p.node`` so the three reads of a handshake (a raw Noise message,
the other's ``identify``, the listener's verdict) sit together. Each raises
``HandshakeError`` (nobody is charged: no identity is established yet) or
``HandshakeRefused`` when the other side sent a ``reject``.
"""

from __future__ import annotations

from p2p.handshake import HandshakeError, HandshakeRefused
from p2p.peer import WebSocket, receive_frame
from p2p.secure import BadRecord, Session
from p2p.wire import Identify, MalformedFrame, Message, Reject, decode_frame


async def expect_raw(ws: WebSocket) -> bytes:
    """A handshake message: one binary WebSocket message within limits."""
    frame = await receive_frame(ws)
    if frame.data is None:
        raise HandshakeError("malformed", "handshake message is not a binary message within limits")
    return frame.data


async def expect_record(ws: WebSocket, session: Session) -> Message:
    """The next record, opened and decoded; a ``reject`` raises ``HandshakeRefused``."""
    try:
        frame = session.recv.open(await expect_raw(ws))
        message = decode_frame(frame)
    except BadRecord as e:
        raise HandshakeError("bad_record", str(e)) from e
    except MalformedFrame as e:
        raise HandshakeError("malformed", str(e)) from e
    if isinstance(message, Reject):
        raise HandshakeRefused(message.code, message.reason)
    return message


async def expect_identify(ws: WebSocket, session: Session) -> Identify:
    """[WIRE-SECURE.3] The other's first record: ``Identify``, or a ``Reject``."""
    message = await expect_record(ws, session)
    if not isinstance(message, Identify):
        raise HandshakeError("protocol", f"expected identify, got {message.TAG}")
    return message


async def expect_acceptance(ws: WebSocket, session: Session) -> Message:
    """[WIRE-HANDSHAKE.7] The dialler's wait for the listener's verdict: the listener sends
    its ``identify`` before it checks ours, so only its next record says whether it let us
    in. ``reject`` (say ``not_admitted``) is a refused dial; any other record is the first
    message of an accepted connection, returned to be handled as such."""
    return await expect_record(ws, session)
