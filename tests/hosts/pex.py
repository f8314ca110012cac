"""What a node hands on in peer exchange [WIRE-PEX.2]: ask it as a member would.

Why: [WIRE-PEX.4] says a node shares an inbound peer's endpoint only once a keyed probe
reached the peer there; a NATted node's endpoint never passes that probe, so no node may
ever list it. The node's API shows the endpoint a peer *announced*, not what the node
would share, so a scenario asks the node itself: a member's key dials it over the
switch, completes the secure handshake [WIRE-SECURE.1-3], sends ``getpeers`` and reads
the ``peers`` answer.

Run on a host of the test bed (``python -m tests.hosts.pex KEYFILE PASSFILE CHAIN
HOST:PORT...``): prints one JSON object, endpoint -> ``[[address hex, host, port]...]``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import aiohttp
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from chain.crypto import PrivateKey
from chain.keyfile import read_key_file
from p2p.secure import INITIATOR, identify_digest, initiator_finish, initiator_start
from p2p.wire import PROTOCOL_VERSION, GetPeers, Identify, Peers, decode_frame, encode_frame

NAME = "pex-probe"


async def ask(endpoint: str, key: PrivateKey, chain_id: str, timeout: float = 20.0
              ) -> list[list[object]]:
    """The ``peers`` entries ``endpoint`` answers a ``getpeers`` with."""
    async with aiohttp.ClientSession() as session, asyncio.timeout(timeout):
        ws = await session.ws_connect(f"http://{endpoint}/p2p", max_msg_size=0, compress=0)
        start = initiator_start(X25519PrivateKey.generate())
        await ws.send_bytes(start.message)
        secure = initiator_finish(start, (await ws.receive()).data)
        pubkey = bytes(key.public_key)
        digest = identify_digest(chain_id, INITIATOR, secure.handshake_hash, pubkey, 0,
                                 ("tx",), NAME)
        await ws.send_bytes(secure.send.seal(encode_frame(Identify(
            PROTOCOL_VERSION, chain_id, pubkey, 0, ["tx"], NAME, bytes(key.sign(digest))))))
        await ws.send_bytes(secure.send.seal(encode_frame(GetPeers())))
        while True:
            msg = await ws.receive()
            if msg.type is not aiohttp.WSMsgType.BINARY:
                raise ConnectionError(f"{endpoint} closed the connection: {msg}")
            message = decode_frame(secure.recv.open(msg.data))
            if isinstance(message, Peers):
                await ws.close()
                return [[bytes(a).hex(), str(h), int(p)] for a, h, p in message.entries]


async def main(argv: list[str]) -> None:
    key_file, pass_file, chain_id, *endpoints = argv
    key = read_key_file(Path(key_file), Path(pass_file).read_text().strip())
    answers = await asyncio.gather(*(ask(e, key, chain_id) for e in endpoints))
    print(json.dumps(dict(zip(endpoints, answers, strict=True))))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
