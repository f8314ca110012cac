"""The secure channel [WIRE-SECURE.*]: pure key agreement and records, then real sockets
with a man in the middle on 127.0.0.1 that flips, replays, reorders and injects records."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from p2p_harness import CHAIN_ID, key, start_node
from p2p_hostile import open_ws
from p2p_mitm import ATTACKS, Mitm

from chain.encoding import encode
from p2p.gossip import Gossip
from p2p.gossip_core import Verdict
from p2p.scoring import Offence
from p2p.secure import (
    MSG1_LEN,
    MSG2_LEN,
    BadRecord,
    CipherState,
    SecureChannelError,
    Session,
    initiator_finish,
    initiator_start,
    responder_finish,
)
from p2p.wire import GetPeers, encode_frame
from tests.framework.wait import wait_until_async


def pair() -> tuple[Session, Session]:
    start = initiator_start(X25519PrivateKey.generate())
    message2, responder = responder_finish(X25519PrivateKey.generate(), start.message)
    return initiator_finish(start, message2), responder


def test_wire_secure_1_2_both_sides_agree_on_keys_and_hash() -> None:
    """[WIRE-SECURE.1] 32 then 48 bytes; [WIRE-SECURE.2] the same ``h`` on both sides, a
    fresh one per handshake (forward secrecy: only ephemeral keys enter it)."""
    start = initiator_start(X25519PrivateKey.generate())
    assert len(start.message) == MSG1_LEN
    message2, responder = responder_finish(X25519PrivateKey.generate(), start.message)
    assert len(message2) == MSG2_LEN
    initiator = initiator_finish(start, message2)
    assert initiator.handshake_hash == responder.handshake_hash
    assert responder.recv.open(initiator.send.seal(b"to responder")) == b"to responder"
    assert initiator.recv.open(responder.send.seal(b"to initiator")) == b"to initiator"
    assert pair()[0].handshake_hash != initiator.handshake_hash


def test_wire_secure_1_malformed_or_low_order_handshake_messages_are_refused() -> None:
    """Wrong lengths, a low-order ephemeral key (all-zero DH: CometBFT's audit finding) and a
    message 2 whose tag does not authenticate all end the handshake."""
    eph = X25519PrivateKey.generate()
    for bad in (b"", b"\x01" * 31, b"\x01" * 33, encode_frame(GetPeers())):
        with pytest.raises(SecureChannelError):
            responder_finish(eph, bad)
    for low_order in (bytes(32), (1).to_bytes(32, "little")):
        with pytest.raises(SecureChannelError):
            responder_finish(eph, low_order)
    start = initiator_start(X25519PrivateKey.generate())
    message2, _ = responder_finish(X25519PrivateKey.generate(), start.message)
    with pytest.raises(SecureChannelError):
        initiator_finish(start, message2[:-1] + bytes([message2[-1] ^ 1]))
    with pytest.raises(SecureChannelError):
        initiator_finish(start, bytes(32) + message2[32:])


def test_wire_secure_5_flipped_replayed_reordered_injected_records_do_not_open() -> None:
    """[WIRE-SECURE.4/5] The implicit counter makes every record single-use and in order."""
    for attack in ATTACKS:
        a, b = pair()
        records = [a.send.seal(b"record %d" % i) for i in range(3)]
        assert b.recv.open(records[0]) == b"record 0"
        forged = {
            "flip": records[1][:5] + bytes([records[1][5] ^ 0x80]) + records[1][6:],
            "replay": records[0],
            "reorder": records[2],
            "inject": bytes(len(records[1])),
        }[attack]
        with pytest.raises(BadRecord):
            b.recv.open(forged)
        assert b.recv.n == 1, "a failed record does not move the counter"


def test_wire_secure_4_counter_never_wraps() -> None:
    cipher = CipherState(bytes(32))
    cipher.n = 2**64 - 1
    with pytest.raises(BadRecord):
        cipher.seal(b"x")


def test_wire_secure_2_a_relaying_man_in_the_middle_holds_two_different_hashes() -> None:
    """[WIRE-SECURE.3] Whoever sits between two nodes runs one handshake with each; the two
    channels have different ``h``, so a signature made on one never verifies on the other."""
    to_a, _ = pair()
    to_b, _ = pair()
    assert to_a.handshake_hash != to_b.handshake_hash


# -- real sockets ------------------------------------------------------------------------


async def test_wire_secure_3_open_transport_hello_is_refused_before_any_data() -> None:
    """[WIRE-SECURE.1] No downgrade: a peer speaking the open transport (a plain ``hello``
    frame first) gets no byte of application data, only the close."""
    async with AsyncExitStack() as stack:
        node = await start_node(stack, "victim")
        session = await stack.enter_async_context(aiohttp.ClientSession())
        ws = await open_ws(session, node.endpoint)
        old_hello = encode(["hello", 1, CHAIN_ID, bytes(key("old").public_key), bytes(32), 0,
                            ["tx"], "open-transport"])
        await ws.send_bytes(old_hello)
        msg = await ws.receive(timeout=5)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), msg
        assert not node.peers


@pytest.mark.parametrize("attack", ATTACKS)
async def test_wire_secure_5_mitm_record_attack_drops_the_connection_and_charges(
        attack: str) -> None:
    """[WIRE-SECURE.5] A man in the middle of a live, authenticated connection flips a bit,
    replays, reorders or injects a record from the dialler: the listener drops that
    connection and charges the dialler BAD_RECORD. Before the attack the dialler's
    gossip went through, and nothing the proxy saw contains it or either node key."""
    async with AsyncExitStack() as stack:
        listener = await start_node(stack, "listener", peer_exchange=False)
        mitm = await stack.enter_async_context(Mitm(listener.listen_port))
        dialler = await start_node(stack, "dialler", peer_exchange=False,
                                   bootstrap=(f"127.0.0.1:{mitm.port}",))
        got: list[bytes] = []
        Gossip(listener).subscribe("tx", lambda d, s: (got.append(d), Verdict.ACCEPT)[1])
        sender = Gossip(dialler)
        sender.subscribe("tx", lambda d, s: Verdict.ACCEPT)
        for g in (sender,):
            g.start()
        await wait_until_async(lambda: dialler.address in listener.peers)
        first = listener.peers[dialler.address]
        secret = b"SECRET-TRANSACTION-PAYLOAD-" * 4
        sender.publish("tx", secret)
        await wait_until_async(lambda: secret in got, what="gossip through the proxy")

        mitm.arm(attack)
        while not mitm.done.is_set():
            dialler.broadcast(GetPeers())  # answered, never an offence
            await asyncio.sleep(0.05)
        await wait_until_async(lambda: first.closed.is_set(), what="the connection dropped")
        assert listener.stats["penalty:BAD_RECORD"] == 1
        assert first.score.value == -Offence.BAD_RECORD.penalty
        captured = bytes(mitm.captured)
        for clear in (secret, bytes(key("listener").public_key),
                      bytes(key("dialler").public_key), CHAIN_ID.encode()):
            assert clear not in captured
