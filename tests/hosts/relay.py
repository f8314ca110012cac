"""The emulated switch's link layer: a TCP relay in the switch namespace.

Why a relay: the kernel has no netem qdisc, so delay, jitter, loss and bandwidth cannot
be put on the veths. Instead the switch namespace redirects every TCP connection that a
host opens towards another host (``iptables -t nat PREROUTING -p tcp -j REDIRECT``) to
this process. It reads the real destination (``SO_ORIGINAL_DST``), dials it with the
caller's own address as source (``IP_TRANSPARENT``; the switch routes the answers back to
this process by a ``-m socket`` mark and a local route), so the far host sees the real
peer address, and pumps the bytes both ways, each chunk written when
``tests.hosts.linkmodel`` says it arrives.

Run by the test bed as ``nsenter --net=/run/netns/lcsw-<id> python -m tests.hosts.relay``; steered
over a unix socket (``--control``), one JSON request and one JSON answer per connection:

- ``{"op": "link", "a": 1, "b": 2, "spec": {...}}``: both directions of the link a-b
  (``{"op": "link", "spec": {...}}`` without hosts: the default of every link);
- ``{"op": "reset", "a": 1, "b": 2}``: abort the live connections between a and b (a cut
  itself is an iptables drop in the switch: packets vanish, as on a real cut);
- ``{"op": "stats"}``: connections and bytes per link;
- ``{"op": "capture", "dir": "/path"}``: from now on, every byte each new connection
  carries is also appended to ``/path/<n>-<src>-<dst>.bin``, one file per connection and
  direction (``"dir": null`` stops): a capture on the switch, as the application bytes
  cross it (what a tap on the wire would see, minus the TCP/IP headers).

Connection setup is not emulated: the switch's kernel completes the caller's handshake
at once, and a dial that fails on the far side resets the accepted connection.

It only ever dials addresses of the test bed's range (``--prefix``): anything else is
refused, so no traffic leaves the namespaces the test bed made.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import socket
import struct
import sys
from collections import Counter
from pathlib import Path

from tests.hosts.linkmodel import CHUNK, LinkSpec, Stream, Wire

SO_ORIGINAL_DST = 80
IP_TRANSPARENT = 19
QUEUE_CHUNKS = 64
"""Chunks in flight per connection direction before the relay stops reading (backpressure)."""

Pair = tuple[int, int]


def host_of(address: str, prefix: str) -> int | None:
    """The host number of a test-bed address (``10.213.<n>.2``), None for anything else."""
    if not address.startswith(prefix):
        return None
    parts = address[len(prefix):].split(".")
    if len(parts) != 2 or not parts[0].isdigit() or parts[1] != "2":
        return None
    return int(parts[0])


def original_destination(sock: socket.socket) -> tuple[str, int]:
    """Where the REDIRECTed connection was going (``struct sockaddr_in``)."""
    raw = sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    port = struct.unpack("!H", raw[2:4])[0]
    return socket.inet_ntoa(raw[4:8]), port


class Relay:
    """Links, their wires, and the live connections on each link."""

    def __init__(self, prefix: str, rng: random.Random) -> None:
        self.prefix = prefix
        self.rng = rng
        self.default = LinkSpec()
        self.links: dict[Pair, LinkSpec] = {}
        self.wires: dict[Pair, Wire] = {}
        self.live: dict[frozenset[int], set[asyncio.Task[None]]] = {}
        self.stats: Counter[str] = Counter()
        self.capture_dir: Path | None = None
        self.connections = 0

    def spec(self, src: int, dst: int) -> LinkSpec:
        return self.links.get((src, dst), self.default)

    def wire(self, src: int, dst: int) -> Wire:
        return self.wires.setdefault((src, dst), Wire())

    # -- connections -------------------------------------------------------------------

    async def serve_client(self, reader: asyncio.StreamReader,
                           writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        src_ip = writer.get_extra_info("peername")[0]
        dst_ip, dst_port = original_destination(sock)
        src, dst = host_of(src_ip, self.prefix), host_of(dst_ip, self.prefix)
        if src is None or dst is None:
            self.stats["refused_outside"] += 1
            _abort(writer)
            return
        try:
            far_reader, far_writer = await self._dial(src_ip, dst_ip, dst_port)
        except OSError:
            self.stats["dial_failed"] += 1
            _abort(writer)
            return
        self.stats[f"conn {src}-{dst}"] += 1
        self.connections += 1
        tap = None
        if self.capture_dir is not None:
            tap = self.capture_dir / f"{self.connections:05d}"
        task = asyncio.current_task()
        assert task is not None
        key = frozenset((src, dst))
        self.live.setdefault(key, set()).add(task)
        try:
            await asyncio.gather(self._pump(reader, far_writer, src, dst, tap),
                                 self._pump(far_reader, writer, dst, src, tap))
        except (OSError, asyncio.CancelledError):
            _abort(writer)
            _abort(far_writer)
        finally:
            self.live[key].discard(task)
            writer.close()
            far_writer.close()

    async def _dial(self, src_ip: str, dst_ip: str,
                    port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Connects to the destination with the caller's address as source."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_IP, IP_TRANSPARENT, 1)
            sock.bind((src_ip, 0))
            sock.setblocking(False)
            await asyncio.wait_for(
                asyncio.get_running_loop().sock_connect(sock, (dst_ip, port)), 10)
        except (OSError, TimeoutError):
            sock.close()
            raise OSError(f"cannot dial {dst_ip}:{port}") from None
        return await asyncio.open_connection(sock=sock)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    src: int, dst: int, tap: Path | None) -> None:
        """Copies one direction, each chunk written when the link model says it arrives
        (and appended to the capture file ``tap`` names, if any)."""
        loop = asyncio.get_running_loop()
        capture = None
        if tap is not None:
            capture = open(tap.with_name(f"{tap.name}-{src}-{dst}.bin"), "ab")  # noqa: SIM115
        stream = Stream()
        queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue(QUEUE_CHUNKS)

        async def read_side() -> None:
            while data := await reader.read(CHUNK):
                if capture is not None:
                    capture.write(data)
                    capture.flush()
                at = stream.departure(loop.time(), len(data), self.spec(src, dst),
                                      self.wire(src, dst), self.rng)
                await queue.put((at, data))
            await queue.put(None)

        async def write_side() -> None:
            while (item := await queue.get()) is not None:
                at, data = item
                wait = at - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()
                self.stats[f"bytes {src}-{dst}"] += len(data)
            if writer.can_write_eof():
                writer.write_eof()

        try:
            await asyncio.gather(read_side(), write_side())
        finally:
            if capture is not None:
                capture.close()

    def reset(self, a: int, b: int) -> int:
        tasks = list(self.live.get(frozenset((a, b)), ()))
        for task in tasks:
            task.cancel()
        return len(tasks)

    # -- control -----------------------------------------------------------------------

    async def serve_control(self, reader: asyncio.StreamReader,
                            writer: asyncio.StreamWriter) -> None:
        try:
            request = json.loads(await reader.readline())
            answer = self.handle(request)
        except (ValueError, KeyError, TypeError) as e:
            answer = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        writer.write(json.dumps(answer).encode() + b"\n")
        with contextlib.suppress(OSError):
            await writer.drain()
        writer.close()

    def handle(self, request: dict[str, object]) -> dict[str, object]:
        op = request["op"]
        if op == "link":
            spec = LinkSpec.from_json(request["spec"])  # type: ignore[arg-type]
            if "a" not in request:
                self.default = spec
            else:
                a, b = int(request["a"]), int(request["b"])  # type: ignore[call-overload]
                self.links[(a, b)] = self.links[(b, a)] = spec
            return {"ok": True}
        if op == "reset":
            a, b = int(request["a"]), int(request["b"])  # type: ignore[call-overload]
            return {"ok": True, "aborted": self.reset(a, b)}
        if op == "stats":
            return {"ok": True, "stats": dict(self.stats)}
        if op == "capture":
            where = request.get("dir")
            self.capture_dir = None if where is None else Path(str(where))
            if self.capture_dir is not None:
                self.capture_dir.mkdir(parents=True, exist_ok=True)
            return {"ok": True}
        raise ValueError(f"unknown op {op!r}")


def _abort(writer: asyncio.StreamWriter) -> None:
    """Closes with a reset: the peer sees the connection fail, not a clean end."""
    with contextlib.suppress(OSError, AttributeError):
        writer.transport.abort()


async def main(args: argparse.Namespace) -> None:
    relay = Relay(args.prefix, random.Random(args.seed))
    server = await asyncio.start_server(relay.serve_client, "0.0.0.0", args.port,
                                        reuse_address=True, backlog=256)
    control = await asyncio.start_unix_server(relay.serve_control, path=str(args.control))
    Path(args.control).chmod(0o600)
    print(f"relay listening on {args.port}, control {args.control}", flush=True)
    async with server, control:
        await asyncio.gather(server.serve_forever(), control.serve_forever())


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--control", type=Path, required=True)
    parser.add_argument("--prefix", default="10.213.")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(parse_args(sys.argv[1:])))
