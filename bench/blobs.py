"""Blob bench: throughput between two nodes versus a raw loopback TCP copy of the same bytes.

    .venv/bin/python bench/blobs.py [--mib 200] [--rounds 3] [--quick]

The serving node is a separate process (``python -m tests.framework.p2p_node``); this
process fetches the blob through ``BlobService`` (chunks checked, written to a
partial file, fsync, renamed; the manifest is checked against the blob id, so
each byte is hashed once). The baseline is a plain
TCP copy over 127.0.0.1 of the same file between a sender process and this
process, written to disk. Last line: one JSON object. Target: ratio >= 0.3.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.support.cli import emit, parse_args  # noqa: E402
from chain.content import blob_id  # noqa: E402
from chain.crypto import PrivateKey  # noqa: E402
from p2p.blobs import BlobService  # noqa: E402
from p2p.blobstore import BlobStore  # noqa: E402
from p2p.config import P2PConfig  # noqa: E402
from p2p.node import Node  # noqa: E402

JSON_KEYS = ("bench", "mib", "rounds", "blob_mib_per_s", "raw_tcp_mib_per_s", "ratio", "pass")
"""Keys of the last line (tests/test_bench_quick.py)."""
NEEDS_DOCKER = True
"""Starts a node process (``tests.framework.p2p_node``): CI runs it serially, with the
Docker and multi-process tests (its ports are the kernel's picks, its files in a temp dir)."""
QUICK = {"mib": 8, "rounds": 1}

SENDER = """
import socket, sys
path = sys.argv[1]
srv = socket.create_server((sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1", 0))
print(srv.getsockname()[1], flush=True)
conn, _ = srv.accept()
with open(path, "rb") as f:
    while data := f.read(1 << 20):
        conn.sendall(data)
conn.close()
"""


def make_file(path: Path, mib: int) -> bytes:
    """Writes ``mib`` MiB of random bytes; returns their blob id."""
    chunk_hashes = []
    with path.open("wb") as f:
        for _ in range(mib):
            block = os.urandom(1 << 20)
            chunk_hashes.append(hashlib.sha256(block).digest())
            f.write(block)
        f.flush()
        os.fsync(f.fileno())
    return blob_id(mib << 20, chunk_hashes)


def raw_tcp_copy(source: Path, dest: Path) -> float:
    """Seconds to copy ``source`` over loopback TCP into ``dest`` (sender in another process)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", SENDER, str(source)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        start = time.perf_counter()
        with socket.create_connection(("127.0.0.1", port)) as s:
            return receive(s, dest, start)
    finally:
        proc.wait(timeout=30)


def receive(sock: socket.socket, dest: Path, start: float) -> float:
    """Reads ``sock`` to its end into ``dest``; seconds since ``start`` (``perf_counter``)."""
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    with dest.open("wb") as out:
        while n := sock.recv_into(buf):
            out.write(view[:n])
    return time.perf_counter() - start


def server_argv(source: Path, work: Path, host: str = "127.0.0.1") -> list[str]:
    """The serving node: a ``tests.framework.p2p_node`` process holding ``source`` as a blob,
    listening on ``host``; it prints ``{"event": "ready", "port": ...}`` and stops on
    ``{"cmd": "stop"}`` (stdin)."""
    return [sys.executable, "-m", "tests.framework.p2p_node", "--seed", "bench-seed",
            "--host", host, "--blob-dir", str(work / "seed"), "--serve-blob", str(source),
            "--max-blob", str(1 << 34)]


async def blob_fetch(source: Path, blob: bytes, work: Path) -> float:
    """Seconds for ``BlobService.fetch`` of ``blob`` from a node process serving ``source``."""
    argv = server_argv(source, work)
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=REPO)
    try:
        assert proc.stdout is not None and proc.stdin is not None
        ready = json.loads(await proc.stdout.readline())
        return await fetch_from(f"127.0.0.1:{ready['port']}", blob, work)
    finally:
        if proc.stdin is not None:
            proc.stdin.write(b'{"cmd": "stop"}\n')
        await proc.wait()


async def fetch_from(bootstrap: str, blob: bytes, work: Path, *,
                     host: str = "127.0.0.1") -> float:
    """Seconds for ``BlobService.fetch`` of ``blob`` by a node of this process (listening
    on ``host``) from the node at ``bootstrap``, once that node announced it."""
    async with AsyncExitStack() as stack:
        cfg = P2PConfig(chain_id="lc-test", host=host, bootstrap=(bootstrap,))
        node = await stack.enter_async_context(Node(PrivateKey.from_seed(b"bench-f"), cfg))
        service = BlobService(node, BlobStore(work / "fetcher", max_blob_size=1 << 34))
        async with asyncio.timeout(60):
            while blob not in service.announcers:
                await asyncio.sleep(0.01)
        start = time.perf_counter()
        await service.fetch(blob)
        return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--mib", type=int, default=200)
    p.add_argument("--rounds", type=int, default=3)
    args = parse_args(p, QUICK)
    tcp_runs: list[float] = []
    blob_runs: list[float] = []
    with tempfile.TemporaryDirectory(prefix="lc-bench-blobs-") as tmp:
        work = Path(tmp)
        source = work / "blob.bin"
        blob = make_file(source, args.mib)
        # One untimed warm-up round each (first-touch of page-cache memory is
        # slow on this VM), then alternate the two so machine noise hits both
        # alike; each side's median is compared.
        warm = work / "warm"
        raw_tcp_copy(source, work / "tcp-copy.bin")
        (work / "tcp-copy.bin").unlink()
        asyncio.run(blob_fetch(source, blob, warm))
        shutil.rmtree(warm)
        for r in range(args.rounds):
            copy = work / "tcp-copy.bin"
            tcp_runs.append(raw_tcp_copy(source, copy))
            copy.unlink()
            round_dir = work / f"round{r}"
            blob_runs.append(asyncio.run(blob_fetch(source, blob, round_dir)))
            shutil.rmtree(round_dir)
            print(f"round {r}: raw TCP {tcp_runs[-1]:.2f}s, blob {blob_runs[-1]:.2f}s")
    tcp_mibs = args.mib / statistics.median(tcp_runs)
    blob_mibs = args.mib / statistics.median(blob_runs)
    ratio = blob_mibs / tcp_mibs
    print(f"raw TCP copy: {tcp_mibs:.0f} MiB/s (median of {args.rounds})")
    print(f"blob fetch:   {blob_mibs:.0f} MiB/s (median; chunks checked, fsync)")
    result = {
        "bench": "blobs",
        "mib": args.mib,
        "rounds": args.rounds,
        "blob_mib_per_s": round(blob_mibs, 1),
        "raw_tcp_mib_per_s": round(tcp_mibs, 1),
        "ratio": round(ratio, 3),
        "pass": ratio >= 0.3,
    }
    emit(result, JSON_KEYS)


if __name__ == "__main__":
    main()
