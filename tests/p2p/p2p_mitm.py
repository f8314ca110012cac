"""A man in the middle on 127.0.0.1 for secure-channel tests [WIRE-SECURE.5].

It relays one TCP connection per dial to a target, passes the HTTP upgrade
through, then parses the WebSocket frames the dialler sends. Once ``arm``\\ ed
with an attack, it applies it to the next binary frames: ``flip`` one bit of
a payload, ``replay`` a frame (send it twice), ``reorder`` two frames,
``inject`` a record of its own. Everything relayed is kept in ``captured``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os

ATTACKS = ("flip", "replay", "reorder", "inject")


def masked_frame(payload: bytes, opcode: int = 2) -> bytes:
    """A client-to-server WebSocket frame (FIN, masked, as RFC 6455 requires)."""
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = bytes([0x80 | opcode, 0x80 | n])
    elif n < 1 << 16:
        head = bytes([0x80 | opcode, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 0x80 | 127]) + n.to_bytes(8, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """(opcode, the frame's exact bytes) of the next WebSocket frame."""
    head = await reader.readexactly(2)
    length = head[1] & 0x7F
    extra = b""
    if length == 126:
        extra = await reader.readexactly(2)
        length = int.from_bytes(extra, "big")
    elif length == 127:
        extra = await reader.readexactly(8)
        length = int.from_bytes(extra, "big")
    mask = await reader.readexactly(4) if head[1] & 0x80 else b""
    body = await reader.readexactly(length)
    return head[0] & 0x0F, head + extra + mask + body


class Mitm:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.attack: str | None = None
        self.done = asyncio.Event()
        self.captured = bytearray()
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Mitm:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def arm(self, attack: str) -> None:
        assert attack in ATTACKS
        self.done.clear()
        self.attack = attack

    async def _handle(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        sr, sw = await asyncio.open_connection("127.0.0.1", self.target_port)
        back = asyncio.create_task(self._pipe(sr, cw))
        self._tasks.add(back)
        try:
            sw.write(await cr.readuntil(b"\r\n\r\n"))  # the HTTP upgrade request
            await self._frames(cr, sw)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            sw.close()
            cw.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                self.captured += data
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _frames(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held: bytes | None = None
        while True:
            opcode, frame = await read_frame(reader)
            self.captured += frame
            out = [frame]
            if opcode == 2 and self.attack is not None:
                attack = self.attack
                if attack == "flip":
                    out = [frame[:-1] + bytes([frame[-1] ^ 0x01])]
                elif attack == "replay":
                    out = [frame, frame]
                elif attack == "inject":
                    out = [masked_frame(os.urandom(40)), frame]
                elif attack == "reorder":
                    if held is None:
                        held, out = frame, []
                    else:
                        out = [frame, held]
                if out:
                    self.attack = None
                    self.done.set()
            for piece in out:
                writer.write(piece)
            await writer.drain()
