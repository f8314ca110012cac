"""A hostile member replays valid consensus messages and transactions to real nodes
[NODE-CONS.1] [NODE-CONS.2] [NODE-TX.1] [WIRE-GOSSIP.8/9/10].

Four validator ``LedgerNode``s on real sockets (127.0.0.1). Hostile members
(admitted, so they pass the handshake) take one valid vote, one valid proposal
and one valid transaction batch they received, and send each 10,000 times:
under 10,000 different wrappings (the old ``[sequence, message]`` envelope),
as the very same bytes, and with one signature byte flipped. Each honest node
forwards each message at most once, every hostile peer is charged until
banned, and consensus goes on. The per-node forward counts are printed.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from pathlib import Path

import aiohttp

from chain.consensus.codec import decode_message, encode_message
from chain.consensus.messages import Vote
from chain.crypto import PrivateKey
from chain.encoding import decode, encode
from chain.keyfile import read_key_file
from chain.transactions import Transfer, sign_transaction
from chain.types import Amount
from client.devnet.network import create_network
from client.node.config import NodeConfig
from client.node.consensus_driver import CONSENSUS_TOPIC, content_id
from client.node.ledger_node import TX_TOPIC, LedgerNode
from p2p.wire import Graft, Publish, encode_frame
from tests.framework.ports import free_base_port
from tests.framework.wait import wait_until_async
from tests.p2p.p2p_hostile import SecureWS, secure_handshake

REPLAYS = 10_000
HOSTILE = ("h_wrap_vote", "h_same_vote", "h_flip_vote", "h_wrap_prop", "h_flip_prop", "h_batch")


async def _connect(session: aiohttp.ClientSession, endpoint: str, key: PrivateKey,
                   chain_id: str) -> SecureWS:
    ws = await session.ws_connect(f"http://{endpoint}/p2p", max_msg_size=0, compress=0)
    secure, _ = await secure_handshake(ws, key, chain_id=chain_id,
                                       topics=(CONSENSUS_TOPIC, TX_TOPIC))
    for topic in (CONSENSUS_TOPIC, TX_TOPIC):
        await secure.send_bytes(encode_frame(Graft(topic)))
    return secure


async def _flood(ws: SecureWS, payloads: list[tuple[str, bytes]]) -> int:
    sent = 0
    for topic, data in payloads:
        if ws.closed:
            break
        try:
            await ws.send_bytes(encode_frame(Publish(topic, data)))
        except (ConnectionError, RuntimeError):
            break
        sent += 1
        if sent % 200 == 0:
            await asyncio.sleep(0)
    return sent


def _flip(data: bytes) -> bytes:
    """The same message with one bit of its signature flipped: a vote, a proposal, or a
    proposal by reference [CONS-MSG.3] (what a proposer sends first [NODE-CONS.4])."""
    message = decode_message(data)
    sig = bytearray(message.signature)
    sig[10] ^= 0x01
    return encode_message(dataclasses.replace(message, signature=bytes(sig)))  # type: ignore[type-var]


async def test_node_cons_2_replayed_vote_proposal_and_tx_batch_are_forwarded_at_most_once(
        tmp_path: Path) -> None:
    """[NODE-TX.1] Besides the consensus replays, a member re-wraps two transactions the
    victim already holds around one new one, 10,000 times in changing orders: the
    victim never forwards those batches (tx0 and tx1 are forwarded 0 times by it, so
    IGNORE, not ACCEPT), and no node forwards any of the three more than once."""
    layout = create_network(
        tmp_path, validators=4, workers=0, base_port=free_base_port(4),
        users={"alice": 1_000, **dict.fromkeys(HOSTILE, 0)}, consensus={"commit_ms": 200})
    keys = {u.name: read_key_file(u.key_file, u.passphrase_file.read_text().strip())
            for u in layout.users}
    nodes = [LedgerNode(NodeConfig.load(n.config)) for n in layout.nodes]
    chain_id = layout.chain_id
    forwards: list[Counter[bytes]] = [Counter() for _ in nodes]

    def counter(i: int):  # type: ignore[no-untyped-def]
        def on_forward(topic: str, data: bytes, peers: int) -> None:
            if topic == CONSENSUS_TOPIC:
                try:
                    forwards[i][content_id(decode_message(data), chain_id)] += 1
                except Exception:
                    forwards[i][b"undecodable"] += 1
            else:
                for wire in decode(data):
                    forwards[i][wire] += 1
        return on_forward

    published: dict[str, bytes] = {}
    origin = nodes[1].driver
    send = origin.publish

    def keep(data: bytes) -> None:  # what validator 1 signs and sends: the replayed messages
        published["vote" if isinstance(decode_message(data), Vote) else "proposal"] = data
        send(data)

    origin.publish = keep
    for i, node in enumerate(nodes):
        node.gossip.on_forward = counter(i)
        await node.start()
    victim = nodes[0]
    try:
        await wait_until_async(lambda: min(n.height for n in nodes) >= 2
                               and len(published) == 2, timeout=30)
        async with aiohttp.ClientSession() as session:
            results: dict[str, int] = {}
            # --- a vote: wrappings, the same bytes, a flipped signature byte
            ws = {name: await _connect(session, victim.p2p.endpoint, keys[name], chain_id)
                  for name in HOSTILE}
            vote, proposal = published["vote"], published["proposal"]
            alice = keys["alice"]
            bob = keys["h_batch"].address
            txs = [sign_transaction(alice, chain_id, n, Transfer(bob, Amount(1))).wire
                   for n in range(3)]
            for tx in txs[:2]:
                victim.mempool.add_bytes(tx, victim.now_ms())  # known to the victim
            before = [Counter(f) for f in forwards]
            plans = {
                "h_wrap_vote": [(CONSENSUS_TOPIC, encode([i, vote])) for i in range(REPLAYS)],
                "h_same_vote": [(CONSENSUS_TOPIC, vote)] * REPLAYS,
                "h_flip_vote": [(CONSENSUS_TOPIC, _flip(vote))] * REPLAYS,
                "h_wrap_prop": [(CONSENSUS_TOPIC, encode([i, proposal])) for i in range(REPLAYS)],
                "h_flip_prop": [(CONSENSUS_TOPIC, _flip(proposal))] * REPLAYS,
                # known txs re-wrapped around one new one, each time in another order
                "h_batch": [(TX_TOPIC, encode([txs[i % 2], txs[2], txs[1 - i % 2], txs[i % 2]]
                                               if i % 3 else [txs[0], txs[1], txs[2]]))
                            for i in range(REPLAYS)],
            }
            for name, payloads in plans.items():
                results[name] = await _flood(ws[name], payloads)
            await asyncio.sleep(1.0)
            height = victim.height
            await wait_until_async(lambda: min(n.height for n in nodes) >= height + 2,
                                   timeout=30)
        for name in HOSTILE:
            print(f"{name}: wrote {results[name]} frames; "
                  f"banned={victim.p2p.is_banned(keys[name].address)}")
            assert victim.p2p.is_banned(keys[name].address), name
        ids = {
            "vote": content_id(decode_message(vote), chain_id),
            "proposal": content_id(decode_message(proposal), chain_id),
            **{f"tx{n}": tx for n, tx in enumerate(txs)},
        }
        for i, counts in enumerate(forwards):
            during = {k: counts[v] - before[i][v] for k, v in ids.items()}
            print(f"node {i}: forwards during the replay {during}, "
                  f"undecodable forwarded {counts[b'undecodable']}")
            assert all(c <= 1 for c in during.values()), during
            assert counts[b"undecodable"] == 0
            assert during["tx0"] == during["tx1"] == 0 if i == 0 else True
    finally:
        for node in nodes:
            await node.stop()
