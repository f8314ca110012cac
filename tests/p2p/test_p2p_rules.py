"""Wire rules tried by a hostile peer on real sockets: this test process speaks raw frames
to an in-process node on 127.0.0.1 and watches what it answers, charges and drops.

Frames [WIRE-FRAME.3], scores [WIRE-SCORE.1/2], peer exchange [WIRE-PEX.1], requests
[WIRE-REQ.1/2], gossip limits [WIRE-GOSSIP.1/6/7], block sync [WIRE-SYNC.1-4], blob
announcements, chunks and manifests [WIRE-BLOB.1-3].
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import math
import os
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from p2p_harness import CHAIN_ID, key, start_node
from p2p_hostile import SecureWS, handshake, open_ws, secure_accept, secure_handshake

from chain.content import blob_id
from chain.crypto import PrivateKey
from chain.encoding import encode
from p2p.blobs import BlobService
from p2p.blobstore import BlobStore, BlobUnavailable
from p2p.config import P2PConfig
from p2p.gossip import Gossip
from p2p.gossip_core import Verdict
from p2p.node import Node
from p2p.scoring import Offence
from p2p.sync import BlockSync
from p2p.wire import (
    CHUNK_SIZE,
    MAX_BLOB_HAVE,
    MAX_BLOCKS_PER_REQUEST,
    MAX_FRAME_SIZE,
    MAX_IDS,
    MAX_MANIFEST_CHUNKS,
    PROTOCOL_VERSION,
    BlobHave,
    Blocks,
    Chunk,
    GetBlocks,
    GetBulk,
    GetChunk,
    GetManifest,
    GetPeers,
    Identify,
    IHave,
    IWant,
    MalformedFrame,
    Manifest,
    Message,
    NotFound,
    Publish,
    Status,
    decode_frame,
    encode_frame,
)
from tests.framework.hash_chain import HashChain
from tests.framework.wait import wait_until_async

M = TypeVar("M", bound=Message)
WS = aiohttp.ClientWebSocketResponse
VALIDATOR = PrivateKey.from_seed(b"validator")


class RawWebSocket:
    """A client WebSocket written by hand, to send a frame header without its payload."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, endpoint: str) -> RawWebSocket:
        host, port = endpoint.split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        ws_key = base64.b64encode(os.urandom(16)).decode()
        writer.write((f"GET /p2p HTTP/1.1\r\nHost: {endpoint}\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {ws_key}\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(reader, writer)

    def send_header(self, length: int, opcode: int = 2) -> None:
        """FIN, ``opcode``, masked with a zero key (so the payload goes as it is)."""
        if length < 126:
            size = bytes([0x80 | length])
        elif length < 1 << 16:
            size = bytes([0x80 | 126]) + length.to_bytes(2, "big")
        else:
            size = bytes([0x80 | 127]) + length.to_bytes(8, "big")
        self.writer.write(bytes([0x80 | opcode]) + size + b"\x00" * 4)

    async def send_bytes(self, data: bytes) -> None:
        self.send_header(len(data))
        self.writer.write(data)
        await self.writer.drain()

    async def next_frame(self) -> tuple[int, bytes]:
        first, second = await self.reader.readexactly(2)
        length = second & 0x7F
        if length == 126:
            length = int.from_bytes(await self.reader.readexactly(2), "big")
        elif length == 127:
            length = int.from_bytes(await self.reader.readexactly(8), "big")
        return first & 0x0F, await self.reader.readexactly(length)

    async def receive(self, timeout: float = 10.0) -> aiohttp.WSMessage:
        async with asyncio.timeout(timeout):
            opcode, payload = await self.next_frame()
        assert opcode == 2, (opcode, payload)
        return aiohttp.WSMessage(aiohttp.WSMsgType.BINARY, payload, None)

    async def close_code(self, timeout: float = 10.0) -> int:
        """Skips data frames; the code of the peer's close frame."""
        async with asyncio.timeout(timeout):
            while True:
                opcode, payload = await self.next_frame()
                if opcode == 8:
                    self.writer.close()
                    return int.from_bytes(payload[:2], "big")


async def shake(ws: Any, name: str) -> SecureWS:
    """Our side of the handshake as ``name``, reading nothing beyond the node's ``identify``."""
    secure, _ = await secure_handshake(ws, key(name), chain_id=CHAIN_ID,
                                       topics=("tx", "consensus"))
    return secure


@asynccontextmanager
async def hostile(node: Node, name: str) -> AsyncIterator[SecureWS]:
    """A raw WebSocket to ``node``, handshaken as ``name``; the node knows it as a peer."""
    async with aiohttp.ClientSession() as session:
        ws = await shake(await open_ws(session, node.endpoint), name)
        await wait_until_async(lambda: key(name).address in node.peers)
        try:
            yield ws
        finally:
            await ws.close()


async def expect(ws: Any, kind: type[M], match: Callable[[M], bool] = lambda m: True,
                 timeout: float = 10.0) -> M:
    """The first frame of type ``kind`` that ``match`` accepts; other frames are skipped."""
    async with asyncio.timeout(timeout):
        while True:
            msg = await ws.receive()
            assert msg.type is aiohttp.WSMsgType.BINARY, f"connection ended: {msg}"
            message = decode_frame(msg.data)
            if isinstance(message, kind) and match(message):
                return message


async def nothing_of(ws: WS, kind: type[Message], seconds: float,
                     match: Callable[[Any], bool] = lambda m: True) -> bool:
    """True when no frame of type ``kind`` (that ``match`` accepts) arrives within ``seconds``."""
    try:
        await expect(ws, kind, match, timeout=seconds)
    except TimeoutError:
        return True
    return False


async def closed(ws: WS, timeout: float = 10.0) -> aiohttp.WSMessage:
    """Reads until the connection ends; returns the closing message."""
    async with asyncio.timeout(timeout):
        while True:
            msg = await ws.receive()
            if msg.type is not aiohttp.WSMsgType.BINARY:
                return msg


def score(node: Node, name: str) -> float:
    return node.peers[key(name).address].score.value


async def score_falls_to(node: Node, name: str, target: float) -> None:
    await wait_until_async(lambda: score(node, name) <= target, what=f"{name}'s score {target}")


async def holds_items(items: list[Any], count: int) -> None:
    await wait_until_async(lambda: len(items) >= count, what=f"{count} items")


def charges(node: Node, offence: Offence) -> int:
    """How often ``node`` charged ``offence``."""
    return node.stats[f"penalty:{offence.name}"]


async def charged(node: Node, offence: Offence, times: int = 1) -> None:
    await wait_until_async(lambda: charges(node, offence) >= times, timeout=10,
                           what=f"{offence} charged {times}x", detail=lambda: dict(node.stats))


# -- frames and scores ------------------------------------------------------------------------


async def test_wire_frame_3_oversized_messages_cost_the_connection_and_a_ban() -> None:
    """A frame of exactly 4 MiB is read (here only charged as an unsolicited response); one
    byte more, and a message far beyond (cut by the WebSocket parser, close code 1009), each
    charge OVERSIZED_FRAME (the whole ban threshold), drop the connection and ban the key."""
    async with AsyncExitStack() as stack:
        node = await start_node(stack, "victim")
        half = b"\x00" * (MAX_FRAME_SIZE // 2)
        overhead = len(encode_frame(Blocks(1, 1, [[half, b""], [half, b""]]))) - MAX_FRAME_SIZE
        exact = encode_frame(Blocks(1, 1, [[half, b""], [half[overhead:], b""]]))
        assert len(exact) == MAX_FRAME_SIZE
        async with hostile(node, "fits") as ws:
            await ws.send_bytes(exact)
            await charged(node, Offence.UNSOLICITED)
            assert charges(node, Offence.OVERSIZED_FRAME) == 0
            assert key("fits").address in node.peers and not node.is_banned(key("fits").address)

        async with hostile(node, "one-more") as ws:
            await ws.send_bytes(exact + b"\x00")
            await charged(node, Offence.OVERSIZED_FRAME, 1)
            await closed(ws)
        await wait_until_async(lambda: key("one-more").address not in node.peers)
        assert node.is_banned(key("one-more").address)

        # Announce 8 MiB in a frame header: the parser refuses before buffering the payload.
        raw = await RawWebSocket.open(node.endpoint)
        await shake(raw, "huge")  # then a WebSocket header, no record
        await wait_until_async(lambda: key("huge").address in node.peers)
        raw.send_header(2 * MAX_FRAME_SIZE)
        raw.writer.write(b"\x00" * 1024)
        assert await raw.close_code() == aiohttp.WSCloseCode.MESSAGE_TOO_BIG  # 1009
        await charged(node, Offence.OVERSIZED_FRAME, 2)
        await wait_until_async(lambda: key("huge").address not in node.peers)
        assert node.is_banned(key("huge").address)
        async with aiohttp.ClientSession() as session:  # banned: refused at the handshake
            assert await banned(session, node, "huge")
        async with hostile(node, "later"):  # others still connect
            pass


async def banned(session: aiohttp.ClientSession, node: Node, name: str) -> bool:
    ws = await open_ws(session, node.endpoint)
    reject = await handshake(ws, key(name), chain_id=CHAIN_ID)
    await ws.close()
    return reject is not None and reject.code == "banned"


async def test_wire_score_2_each_offence_costs_its_points_on_a_real_node() -> None:
    """[WIRE-SCORE.1] A new peer starts at 0. [WIRE-SCORE.2] Each offence of the table, done
    over a real connection, lowers the score by exactly its points (no recovery, no ban here,
    so the sum is exact); a frame beyond the rate limit costs 2 each."""
    validated: list[bytes] = []

    def validate(data: bytes, sender: object) -> Verdict:
        validated.append(data)
        return Verdict.REJECT if data.startswith(b"bad") else Verdict.ACCEPT

    async with AsyncExitStack() as stack:
        node = await start_node(stack, "victim", score_decay_per_second=0.0,
                                ban_threshold=-10_000.0)
        gossip = Gossip(node)
        gossip.subscribe("tx", validate)
        gossip.start()
        async with hostile(node, "mallory") as ws:
            assert score(node, "mallory") == 0
            steps: list[tuple[str, bytes | str, float]] = [
                ("garbage frame", b"\xc1\xc1", 25),
                ("second identify", encode_frame(Identify(
                    PROTOCOL_VERSION, CHAIN_ID, bytes(key("mallory").public_key), 0, ["tx"],
                    "again", b"\x01" * 64)), 25),
                ("unsolicited response", encode_frame(NotFound(424242)), 5),
                ("rejected gossip", encode_frame(Publish("tx", b"bad signature")), 20),
                ("first copy", encode_frame(Publish("tx", b"good tx")), 0),
                ("same copy again", encode_frame(Publish("tx", b"good tx")), 5),
                ("oversized gossip", encode_frame(Publish("tx", b"\x00" * (64 * 1024 + 1))), 20),
            ]
            for what, frame, points in steps:
                before = score(node, "mallory")
                if isinstance(frame, str):
                    await ws.send_str(frame)
                else:
                    await ws.send_bytes(frame)
                if points:
                    await score_falls_to(node, "mallory", before - points)
                await asyncio.sleep(0.2)
                assert before - score(node, "mallory") == points, what
            assert score(node, "mallory") == -100
            assert validated == [b"bad signature", b"good tx"]

    async with AsyncExitStack() as stack:
        node = await start_node(stack, "victim2", score_decay_per_second=0.0,
                                ban_threshold=-10_000.0, rate_msgs_per_second=0.001,
                                rate_burst=3.0)
        async with hostile(node, "flooder") as ws:
            for _ in range(10):
                await ws.send_bytes(encode_frame(GetPeers()))  # answered, never an offence
            await charged(node, Offence.FLOOD, 7)
            await asyncio.sleep(0.2)
            assert charges(node, Offence.FLOOD) == 7 and score(node, "flooder") == -14


async def test_wire_score_1_negative_score_recovers_one_point_per_second() -> None:
    """Three malformed frames (-75), a pause, then a fourth: with recovery the score is above
    -100 and the peer stays; without it, four would be exactly the ban threshold."""
    async with AsyncExitStack() as stack:
        node = await start_node(stack, "victim")
        async with hostile(node, "slow-mallory") as ws:
            for _ in range(3):
                await ws.send_bytes(b"\xc1")
            await charged(node, Offence.MALFORMED_FRAME, 3)
            assert score(node, "slow-mallory") == pytest.approx(-75, abs=1.0)
            await asyncio.sleep(3.0)
            await ws.send_bytes(b"\xc1")
            await charged(node, Offence.MALFORMED_FRAME, 4)
            value = score(node, "slow-mallory")
            assert -98.5 < value < -96, value
            await asyncio.sleep(0.3)
            assert key("slow-mallory").address in node.peers
            assert not node.is_banned(key("slow-mallory").address)
            assert node.stats["bans"] == 0


# -- peer exchange and requests ---------------------------------------------------------------


async def test_wire_pex_1_both_sides_ask_for_peers_after_the_handshake() -> None:
    """The node asks an inbound peer (us) for its peers, and a node it dials (us, serving
    /p2p) too, once we, the listener, sent our first record [WIRE-HANDSHAKE.7]; before the
    handshake it asks nothing."""
    async with AsyncExitStack() as stack:
        node = await start_node(stack, "victim")
        async with hostile(node, "inbound") as ws:
            await expect(ws, GetPeers)

        asked = asyncio.get_running_loop().create_future()

        async def serve(request: aiohttp.web.Request) -> aiohttp.web.WebSocketResponse:
            ws = aiohttp.web.WebSocketResponse(max_msg_size=0)
            await ws.prepare(request)
            try:
                secure, _ = await secure_accept(ws, key("listener"), chain_id=CHAIN_ID)
                await secure.send_bytes(encode_frame(GetPeers()))  # we accept the dialler
                await expect(secure, GetPeers)
                asked.set_result(True)
            except Exception as e:
                asked.set_exception(e)
            await ws.close()
            return ws

        app = aiohttp.web.Application()
        app.router.add_get("/p2p", serve)
        runner = aiohttp.web.AppRunner(app)
        await runner.setup()
        site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        try:
            port = runner.addresses[0][1]
            node.connect("127.0.0.1", port)
            assert await asyncio.wait_for(asked, 15)
        finally:
            await runner.cleanup()


async def test_wire_req_1_2_answers_echo_the_req_id_and_unservable_ones_are_notfound(
        tmp_path: Path) -> None:
    """[WIRE-REQ.1/2] Requests get their ``req_id`` back; what the node cannot serve is
    ``notfound`` with
    that id; a response to nothing is charged UNSOLICITED; the node's own request to us
    carries an id, our answer with another id is unsolicited and its request times out."""
    data = os.urandom(CHUNK_SIZE + 10)
    async with AsyncExitStack() as stack:
        node = await start_node(stack, "victim", request_timeout=1.0)
        service = BlobService(node, BlobStore(tmp_path / "victim"))
        blob = service.store.put_bytes(data)
        chain = HashChain(CHAIN_ID, {bytes(VALIDATOR.public_key)})
        BlockSync(node, chain).start()
        async with hostile(node, "asker") as ws:
            await ws.send_bytes(encode_frame(GetManifest(77, blob)))
            manifest = await expect(ws, Manifest)
            assert manifest.req_id == 77 and manifest.blob == blob
            await ws.send_bytes(encode_frame(GetChunk(78, blob, 1)))
            assert (await expect(ws, Chunk)).req_id == 78
            unknown = hashlib.sha256(b"nobody has this").digest()
            for req_id, request in [(79, GetManifest(79, unknown)),
                                    (80, GetChunk(80, unknown, 0)),
                                    (81, GetChunk(81, blob, 2)),  # past the last chunk
                                    (2**64 - 1, GetBulk(2**64 - 1, unknown))]:
                await ws.send_bytes(encode_frame(request))
                assert (await expect(ws, NotFound)).req_id == req_id, request
            assert charges(node, Offence.UNSOLICITED) == 0
            await ws.send_bytes(encode_frame(NotFound(5)))
            await charged(node, Offence.UNSOLICITED)

            # The node asks us for blocks (we claim a height); we answer with the wrong id.
            await ws.send_bytes(encode_frame(Status(3)))
            ask = await expect(ws, GetBlocks)
            await ws.send_bytes(encode_frame(Blocks(ask.req_id + 1, ask.start, [])))
            await charged(node, Offence.UNSOLICITED, 2)
            again = await expect(ws, GetBlocks, timeout=10)  # timed out after 1 s: asks again
            assert again.req_id != ask.req_id and chain.height() == 0
    assert P2PConfig(chain_id="x").request_timeout == 10.0


async def test_wire_req_3_a_late_answer_to_a_request_given_up_is_not_charged() -> None:
    """[WIRE-REQ.3] The node's request to us times out; our answer arriving after that is
    dropped uncharged (before, an honest but slow peer, or one whose chunk a finished fetch
    no longer wanted, lost 5 points an answer); a second answer to the same id is
    unsolicited."""
    async with AsyncExitStack() as stack:
        node = await start_node(stack, "victim", request_timeout=1.0)
        chain = HashChain(CHAIN_ID, {bytes(VALIDATOR.public_key)})
        BlockSync(node, chain).start()
        async with hostile(node, "slow") as ws:
            await ws.send_bytes(encode_frame(Status(3)))
            ask = await expect(ws, GetBlocks)
            again = await expect(ws, GetBlocks, timeout=10)  # timed out after 1 s
            assert again.req_id != ask.req_id
            await ws.send_bytes(encode_frame(Blocks(ask.req_id, ask.start, [])))
            await ws.send_bytes(encode_frame(NotFound(again.req_id)))  # answered in time
            await ws.send_bytes(encode_frame(NotFound(5)))  # a marker: to nothing at all
            await charged(node, Offence.UNSOLICITED)
            assert charges(node, Offence.UNSOLICITED) == 1, "the late answer was charged"
            await ws.send_bytes(encode_frame(Blocks(ask.req_id, ask.start, [])))
            await charged(node, Offence.UNSOLICITED, 2)


# -- gossip -------------------------------------------------------------------------------


async def test_wire_gossip_6_payload_limits_per_topic_are_enforced_unread() -> None:
    """``tx`` up to 64 KiB and ``consensus`` up to 3 MiB reach the validator; one byte more is
    charged (REJECTED_MESSAGE) without the validator ever seeing it."""
    seen: dict[str, list[int]] = {"tx": [], "consensus": []}

    def validator(topic: str) -> Callable[[bytes, object], Verdict]:
        def validate(data: bytes, sender: object) -> Verdict:
            seen[topic].append(len(data))
            return Verdict.IGNORE

        return validate

    async with AsyncExitStack() as stack:
        node = await start_node(stack, "victim", ban_threshold=-10_000.0)
        gossip = Gossip(node)
        for topic in seen:
            gossip.subscribe(topic, validator(topic))
        gossip.start()
        async with hostile(node, "publisher") as ws:
            for topic, limit in (("tx", 64 * 1024), ("consensus", 3 * 1024**2)):
                await ws.send_bytes(encode_frame(Publish(topic, b"\x01" * limit)))
                await holds_items(seen[topic], 1)
                rejected = charges(node, Offence.REJECTED_MESSAGE)
                await ws.send_bytes(encode_frame(Publish(topic, b"\x02" * (limit + 1))))
                await charged(node, Offence.REJECTED_MESSAGE, rejected + 1)
                assert seen[topic] == [limit]
        with pytest.raises(ValueError):
            gossip.publish("tx", b"\x03" * (64 * 1024 + 1))


async def test_wire_gossip_1_7_message_id_is_sha256_of_data_and_id_lists_hold_256() -> None:
    """A ``pub`` is known by SHA-256(data): after we publish ``data``, an ``iwant`` for any
    other id brings nothing back and one for SHA-256(data) brings the message; the node's own
    publish returns that id. [WIRE-GOSSIP.7] ``ihave``/``iwant`` of 256 ids are read; 257
    are malformed frames, charged."""
    async with AsyncExitStack() as stack:
        node = await start_node(stack, "victim", ban_threshold=-10_000.0)
        gossip = Gossip(node)
        validated: list[bytes] = []

        def accept(data: bytes, sender: object) -> Verdict:
            validated.append(data)
            return Verdict.ACCEPT

        gossip.subscribe("tx", accept)
        gossip.start()
        async with hostile(node, "gossiper") as ws:
            data = b"a transaction " + os.urandom(16)
            await ws.send_bytes(encode_frame(Publish("tx", data)))
            await holds_items(validated, 1)
            # Servable for 6 heartbeats (0.6 s): ask at once, wrong ids first.
            others = [hashlib.sha512(data).digest()[:32], hashlib.sha256(b"tx" + data).digest(),
                      hashlib.sha256(encode_frame(Publish("tx", data))).digest()]
            await ws.send_bytes(encode_frame(IWant(others)))
            await ws.send_bytes(encode_frame(IWant([hashlib.sha256(data).digest()])))
            got = await expect(ws, Publish)
            assert (got.topic, got.data) == ("tx", data)
            assert await nothing_of(ws, Publish, 0.5), "served for an id that is not SHA-256(data)"
            assert gossip.publish("tx", b"ours") == hashlib.sha256(b"ours").digest()

            malformed = charges(node, Offence.MALFORMED_FRAME)
            ids = [os.urandom(32) for _ in range(MAX_IDS)]
            await ws.send_bytes(encode_frame(IHave("tx", ids)))
            await ws.send_bytes(encode_frame(IWant(ids)))
            await asyncio.sleep(0.3)
            assert charges(node, Offence.MALFORMED_FRAME) == malformed
            extra = [*ids, os.urandom(32)]
            await ws.send_bytes(encode(["ihave", "tx", extra]))
            await ws.send_bytes(encode(["iwant", extra]))
            await charged(node, Offence.MALFORMED_FRAME, malformed + 2)
    assert MAX_IDS == 256


# -- block sync ---------------------------------------------------------------------------


def extended(chain: HashChain, signer: PrivateKey, count: int) -> list[list[bytes]]:
    """``count`` blocks on top of ``chain``'s tip, certified by ``signer``."""
    copy = HashChain(CHAIN_ID, {bytes(signer.public_key)})
    copy.blocks, copy.tip = list(chain.blocks), chain.tip
    for i in range(count):
        copy.produce(signer, b"next %d" % i)
    return [list(pair) for pair in copy.blocks[chain.height():]]


async def test_wire_sync_1_4_status_getblocks_blocks_and_apply_through_the_source() -> None:
    """[WIRE-SYNC.1] ``status`` on connect and after every growth (a commit, a sync).
    [WIRE-SYNC.2] ``getblocks`` above 128 is a malformed frame; the node's own asks stay
    within 128 even when built with a larger batch and shown a huge height.
    [WIRE-SYNC.3] ``blocks`` are the consecutive pairs from ``start``; an empty list for
    heights it lacks. [WIRE-SYNC.4] Blocks certified by a non-validator are refused by
    ``apply`` (the sender charged), certified ones are applied."""
    forger = PrivateKey.from_seed(b"forger")
    chain = HashChain(CHAIN_ID, {bytes(VALIDATOR.public_key)})
    for h in range(5):
        chain.produce(VALIDATOR, b"%d" % h)
    async with AsyncExitStack() as stack:
        node = await start_node(stack, "victim", ban_threshold=-10_000.0)
        sync = BlockSync(node, chain, batch=1000)
        sync.start()
        async with hostile(node, "syncer") as ws:
            assert (await expect(ws, Status)).height == 5
            chain.produce(VALIDATOR, b"5")
            sync.notify_height()
            assert (await expect(ws, Status)).height == 6

            await ws.send_bytes(encode_frame(GetBlocks(1, 2, 3)))
            answer = await expect(ws, Blocks)
            assert (answer.req_id, answer.start) == (1, 2)
            assert answer.items == [list(pair) for pair in chain.blocks[1:4]]
            await ws.send_bytes(encode_frame(GetBlocks(2, 7, 5)))
            assert (await expect(ws, Blocks)) == Blocks(2, 7, [])
            await ws.send_bytes(encode_frame(GetBlocks(3, 1, MAX_BLOCKS_PER_REQUEST)))
            assert len((await expect(ws, Blocks)).items) == 6
            await ws.send_bytes(encode(["getblocks", 4, 1, MAX_BLOCKS_PER_REQUEST + 1]))
            await charged(node, Offence.MALFORMED_FRAME)
            assert await nothing_of(ws, Blocks, 0.5)

            forged, good = extended(chain, forger, 3), extended(chain, VALIDATOR, 3)
            await ws.send_bytes(encode_frame(Status(9)))
            ask = await expect(ws, GetBlocks)
            assert (ask.start, ask.count) == (7, 3)
            await ws.send_bytes(encode_frame(Blocks(ask.req_id, 7, forged)))
            await charged(node, Offence.BAD_RESPONSE)
            assert chain.height() == 6
            ask = await expect(ws, GetBlocks, timeout=15)
            assert (ask.start, ask.count) == (7, 3)
            await ws.send_bytes(encode_frame(Blocks(ask.req_id, 7, good)))
            assert (await expect(ws, Status, lambda m: m.height == 9)).height == 9
            assert chain.height() == 9 and chain.blocks[6:] == [tuple(p) for p in good]

            await ws.send_bytes(encode_frame(Status(10**6)))
            asks = [await expect(ws, GetBlocks) for _ in range(4)]
            assert all(a.count <= MAX_BLOCKS_PER_REQUEST for a in asks), asks
            assert sorted(a.start for a in asks)[0] == 10


# -- blobs --------------------------------------------------------------------------------


async def test_wire_blob_1_3_announcements_chunks_and_manifest_bound(tmp_path: Path) -> None:
    """[WIRE-BLOB.1] On connect a node announces at most 64 of its blobs, and each new blob
    once it has it. [WIRE-BLOB.2] Its chunks are 1 MiB, the last shorter, each matching the
    manifest. [WIRE-BLOB.3] A manifest of 16,385 chunks (consistent with its blob id) is a
    malformed frame: charged, nothing written, the fetch fails."""
    data = os.urandom(2 * CHUNK_SIZE + 4321)
    async with AsyncExitStack() as stack:
        seed = await start_node(stack, "seed")
        seeded = BlobService(seed, BlobStore(tmp_path / "seed"))
        blob = seeded.store.put_bytes(data)
        node = await start_node(stack, "victim", bootstrap=(seed.endpoint,), request_timeout=1.0)
        service = BlobService(node, BlobStore(tmp_path / "victim", max_blob_size=2**40))
        small = {service.store.put_bytes(b"small %d" % i) for i in range(MAX_BLOB_HAVE + 6)}
        await wait_until_async(lambda: seed.address in node.peers)
        async with hostile(node, "watcher") as ws:
            have = await expect(ws, BlobHave)
            assert len(have.hashes) == MAX_BLOB_HAVE and set(have.hashes) <= small
            await service.fetch(blob)
            assert (await expect(ws, BlobHave, lambda m: blob in m.hashes)).hashes == [blob]

            assert CHUNK_SIZE == 1024 * 1024
            await ws.send_bytes(encode_frame(GetManifest(1, blob)))
            manifest = await expect(ws, Manifest)
            assert manifest.size == len(data)
            assert len(manifest.chunk_hashes) == math.ceil(len(data) / CHUNK_SIZE) == 3
            for index, expected in enumerate(manifest.chunk_hashes):
                await ws.send_bytes(encode_frame(GetChunk(10 + index, blob, index)))
                chunk = await expect(ws, Chunk)
                assert chunk.data == data[index * CHUNK_SIZE:(index + 1) * CHUNK_SIZE]
                assert len(chunk.data) == (CHUNK_SIZE if index < 2 else 4321)
                assert hashlib.sha256(chunk.data).digest() == expected

            hashes = [hashlib.sha256(b"%d" % i).digest() for i in range(MAX_MANIFEST_CHUNKS + 1)]
            size = len(hashes) * CHUNK_SIZE
            big = blob_id(size, hashes)
            decode_frame(encode_frame(Manifest(1, big, size - CHUNK_SIZE, hashes[:-1])))
            with pytest.raises(MalformedFrame):
                decode_frame(encode(["manifest", 1, big, size, hashes]))
            await ws.send_bytes(encode_frame(BlobHave([big])))
            await wait_until_async(lambda: big in service.announcers)
            fetch = asyncio.create_task(service.fetch(big, patience=3.0))
            ask = await expect(ws, GetManifest, lambda m: m.blob == big)
            await ws.send_bytes(encode(["manifest", ask.req_id, big, size, hashes]))
            await charged(node, Offence.MALFORMED_FRAME)
            with pytest.raises(BlobUnavailable):
                await fetch
            assert not service.store.has(big)
            assert not any((tmp_path / "victim" / "partial").iterdir())
