"""A node process for multi-process tests and benches (``python -m tests.framework.p2p_node``).

It speaks JSON lines: events on stdout (``ready``, ``deliver``, ``height``,
``caught_up``, ``progress``, ``fetched``), commands on stdin (``publish``,
``produce``, ``fetch``, ``stop``). Gossip on "tx" accepts anything except
``encode([pubkey, body, signature])`` payloads whose signature over
SHA-256(body) verifies (``signed_tx``), and rejects everything else.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import sys
from pathlib import Path
from typing import Any

from chain.crypto import PrivateKey, sha256, verify
from chain.encoding import decode, encode
from chain.errors import DecodeError
from p2p.blobs import BlobService
from p2p.blobstore import BlobError, BlobStore
from p2p.config import GossipParams, P2PConfig
from p2p.gossip import Gossip
from p2p.gossip_core import Verdict
from p2p.node import Node
from p2p.sync import BlockSync
from p2p.wire import MAX_GOSSIP_DATA
from tests.framework.hash_chain import HashChain

VALIDATOR_SEED = b"testnet-validator"


def signed_tx(key: PrivateKey, body: bytes) -> bytes:
    """A stand-in transaction: ``encode([pubkey, body, signature over SHA-256(body)])``."""
    return encode([bytes(key.public_key), body, bytes(key.sign(sha256(body)))])


def check_signed_tx(data: bytes) -> bool:
    try:
        value = decode(data, max_size=MAX_GOSSIP_DATA)
    except DecodeError:
        return False
    if not (
        isinstance(value, list) and len(value) == 3 and all(isinstance(v, bytes) for v in value)
    ):
        return False
    pubkey, body, signature = value
    return verify(pubkey, sha256(body), signature)


def emit(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tests.framework.p2p_node")
    p.add_argument("--seed", required=True, help="node key seed")
    p.add_argument("--chain-id", default="lc-test")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--bootstrap", action="append", default=[], help="host:port, repeatable")
    p.add_argument("--blocks", type=int, default=0, help="blocks to create at start")
    p.add_argument("--produce-every", type=float, default=0.0, help="seconds; 0: never")
    p.add_argument("--blob-dir", type=Path, default=None)
    p.add_argument("--serve-blob", type=Path, default=None, help="file to hard-link and serve")
    p.add_argument("--max-blob", type=int, default=1 << 30)
    p.add_argument("--target-outbound", type=int, default=4)
    p.add_argument("--handshake-timeout", type=float, default=5.0)
    p.add_argument("--log", default="WARNING")
    p.add_argument("--rng-seed", type=int, default=None,
                   help="seed of the node's random choices (the test's logged seed)")
    return p.parse_args(argv)


async def run(args: argparse.Namespace) -> None:
    key = PrivateKey.from_seed(args.seed.encode())
    validator = PrivateKey.from_seed(VALIDATOR_SEED)
    config = P2PConfig(
        chain_id=args.chain_id,
        host=args.host,
        port=args.port,
        bootstrap=tuple(args.bootstrap),
        target_outbound=args.target_outbound,
        handshake_timeout=args.handshake_timeout,
        http_header_timeout=args.handshake_timeout,
        gossip=GossipParams(),
    )
    node = Node(key, config, rng=random.Random(args.rng_seed))
    chain = HashChain(args.chain_id, {bytes(validator.public_key)})
    for h in range(args.blocks):
        chain.produce(validator, h.to_bytes(8, "big"))
    gossip = Gossip(node)
    sync = BlockSync(node, chain, on_caught_up=lambda h: emit("caught_up", height=h))
    blobs: BlobService | None = None

    def validate(data: bytes, sender: object) -> Verdict:
        if not check_signed_tx(data):
            return Verdict.REJECT
        emit("deliver", topic="tx", data=data.hex())
        return Verdict.ACCEPT

    gossip.subscribe("tx", validate)
    if args.blob_dir is not None:
        store = BlobStore(args.blob_dir, max_blob_size=args.max_blob)
        if args.serve_blob is not None:
            store.put_file(args.serve_blob, link=True)
        blobs = BlobService(node, store)
    await node.start()
    try:
        gossip.start()
        sync.start()
        emit("ready", port=node.listen_port, address=node.address.hex(), height=chain.height())
        last_height = chain.height()

        async def watch_height() -> None:
            nonlocal last_height
            while True:
                await asyncio.sleep(0.05)
                if chain.height() != last_height:
                    last_height = chain.height()
                    emit("height", height=last_height)

        async def produce() -> None:
            while True:
                await asyncio.sleep(args.produce_every)
                chain.produce(validator, b"live")
                sync.notify_height()

        node.spawn(watch_height(), name="watch-height")
        if args.produce_every > 0:
            node.spawn(produce(), name="produce")
        await commands(node, gossip, blobs)
    finally:
        await node.stop()
        emit("stopped")


async def commands(node: Node, gossip: Gossip, blobs: BlobService | None) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        cmd = json.loads(line)
        if cmd["cmd"] == "stop":
            return
        if cmd["cmd"] == "publish":
            gossip.publish(cmd["topic"], bytes.fromhex(cmd["data"]))
        elif cmd["cmd"] == "peers":
            emit("peers", peers=[a.hex() for a in node.peers])
        elif cmd["cmd"] == "fetch" and blobs is not None:
            node.spawn(fetch(blobs, bytes.fromhex(cmd["blob"])), name="fetch")


async def fetch(blobs: BlobService, blob: bytes) -> None:
    try:
        path = await blobs.fetch(blob, progress=lambda d, t: None)
        emit("fetched", blob=blob.hex(), path=str(path))
    except BlobError as e:
        emit("fetch_failed", blob=blob.hex(), code=e.code, reason=str(e))


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=args.log, stream=sys.stderr)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
