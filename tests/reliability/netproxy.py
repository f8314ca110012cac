"""Loopback TCP proxies, one per directed link, that tests can cut, heal and slow down.

Node i reaches node j only through the proxy (i, j) (the graph runs with
``peer_exchange = false``), so cutting both directions of a pair partitions
them for real: established connections are closed, new ones are refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass, field

from tests.framework.ports import free_port


@dataclass
class Link:
    listen_port: int
    target_port: int
    cut: bool = False
    delay_s: float = 0.0
    writers: set[asyncio.StreamWriter] = field(default_factory=set)


class ProxyMesh:
    """Runs every link's proxy on one background event loop."""

    def __init__(self) -> None:
        self.links: dict[tuple[int, int], Link] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="netproxy")
        self._servers: list[asyncio.base_events.Server] = []

    def add(self, src: int, dst: int, target_port: int) -> int:
        """A proxy for node ``src`` to reach ``dst``; returns the port ``src`` should dial."""
        link = Link(free_port(), target_port)
        self.links[(src, dst)] = link
        return link.listen_port

    def start(self) -> None:
        self._thread.start()
        for link in self.links.values():
            server = self._call(asyncio.start_server(
                lambda r, w, link=link: self._serve(link, r, w), "127.0.0.1", link.listen_port))
            self._servers.append(server)

    def stop(self) -> None:
        for server in self._servers:
            self._loop.call_soon_threadsafe(server.close)
        for link in self.links.values():
            self._call(self._drop(link))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def _call(self, coro):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    # -- faults --------------------------------------------------------------------------

    def cut(self, a: int, b: int) -> None:
        for key in ((a, b), (b, a)):
            link = self.links[key]
            link.cut = True
            self._call(self._drop(link))

    def heal(self, a: int, b: int) -> None:
        for key in ((a, b), (b, a)):
            self.links[key].cut = False

    def slow(self, a: int, b: int, delay_s: float) -> None:
        for key in ((a, b), (b, a)):
            self.links[key].delay_s = delay_s

    def partition(self, side: set[int], nodes: int) -> None:
        for a in side:
            for b in range(nodes):
                if b not in side:
                    self.cut(a, b)

    def heal_all(self) -> None:
        for link in self.links.values():
            link.cut = False
            link.delay_s = 0.0

    # -- forwarding ----------------------------------------------------------------------

    async def _drop(self, link: Link) -> None:
        for writer in list(link.writers):
            writer.close()
        link.writers.clear()

    async def _serve(self, link: Link, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
        if link.cut:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", link.target_port)
        except OSError:
            writer.close()
            return
        link.writers.update((writer, up_writer))
        await asyncio.gather(self._pipe(link, reader, up_writer),
                             self._pipe(link, up_reader, writer))
        link.writers.discard(writer)
        link.writers.discard(up_writer)

    @staticmethod
    async def _pipe(link: Link, reader: asyncio.StreamReader,
                    writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                if link.cut:
                    break
                if link.delay_s:
                    await asyncio.sleep(link.delay_s)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()
