"""Handshake rules on real sockets [WIRE-HANDSHAKE.*]."""

from __future__ import annotations

from contextlib import AsyncExitStack

import aiohttp
from p2p_harness import CHAIN_ID, key, start_node
from p2p_hostile import handshake, open_ws

from chain.crypto import PrivateKey
from p2p.secure import INITIATOR, RESPONDER, identify_digest
from tests.framework.wait import wait_until_async


def test_wire_handshake_2_digest_binds_chain_role_channel_and_fields() -> None:
    """[WIRE-SECURE.3] The signed digest changes with the chain, the role (no reflection),
    the channel's handshake hash, the key and every announced field."""
    a = bytes(key("a").public_key)
    h = b"\x01" * 32
    base = identify_digest("c", INITIATOR, h, a, 1, ["tx"], "x")
    for other in (
        identify_digest("d", INITIATOR, h, a, 1, ["tx"], "x"),
        identify_digest("c", RESPONDER, h, a, 1, ["tx"], "x"),
        identify_digest("c", INITIATOR, b"\x02" * 32, a, 1, ["tx"], "x"),
        identify_digest("c", INITIATOR, h, bytes(key("b").public_key), 1, ["tx"], "x"),
        identify_digest("c", INITIATOR, h, a, 2, ["tx"], "x"),
        identify_digest("c", INITIATOR, h, a, 1, ["consensus"], "x"),
        identify_digest("c", INITIATOR, h, a, 1, ["tx"], "y"),
    ):
        assert other != base


async def test_wire_handshake_1_two_nodes_connect_and_know_each_other() -> None:
    async with AsyncExitStack() as stack:
        a = await start_node(stack, "a")
        b = await start_node(stack, "b", bootstrap=(a.endpoint,))
        await wait_until_async(lambda: a.address in b.peers and b.address in a.peers)
        assert b.peers[a.address].outbound and not a.peers[b.address].outbound


async def test_wire_handshake_4_refusals_carry_a_reason() -> None:
    async with AsyncExitStack() as stack:
        outsider = PrivateKey.from_seed(b"outsider")
        victim = await start_node(stack, "victim", is_admitted=lambda a: a != outsider.address)
        session = await stack.enter_async_context(aiohttp.ClientSession())
        cases = {
            "chain_id": dict(key=key("h1"), chain_id="another-chain"),
            "version": dict(key=key("h2"), chain_id=CHAIN_ID, version=99),
            "not_admitted": dict(key=outsider, chain_id=CHAIN_ID),
        }
        for code, kwargs in cases.items():
            ws = await open_ws(session, victim.endpoint)
            reject = await handshake(ws, **kwargs)  # type: ignore[arg-type]
            assert reject is not None and reject.code == code, (code, reject)
            await ws.close()
        assert not victim.peers


async def test_wire_handshake_3_stolen_public_key_is_refused_and_victim_not_banned() -> None:
    async with AsyncExitStack() as stack:
        victim = await start_node(stack, "victim")
        honest = key("honest")
        session = await stack.enter_async_context(aiohttp.ClientSession())
        ws = await open_ws(session, victim.endpoint)
        reject = await handshake(
            ws, key("thief"), chain_id=CHAIN_ID, claim_pubkey=bytes(honest.public_key)
        )
        assert reject is not None and reject.code == "bad_signature"
        assert not victim.peers and not victim.is_banned(honest.address)
        # The real owner of the key still gets in.
        peer = await start_node(stack, "honest", bootstrap=(victim.endpoint,))
        await wait_until_async(lambda: peer.address in victim.peers)


async def test_wire_handshake_6_shutdown_is_clean_and_idempotent() -> None:
    async with AsyncExitStack() as stack:
        a = await start_node(stack, "a")
        b = await start_node(stack, "b", bootstrap=(a.endpoint,))
        await wait_until_async(lambda: a.address in b.peers)
    await a.stop()
    assert not a.peers and not b.peers


async def test_wire_handshake_7_a_refused_dial_is_no_peer_no_offence_and_backs_off() -> None:
    """[WIRE-HANDSHAKE.7] [WIRE-PEX.3] A node dialling a graph that has not admitted it
    hears ``not_admitted`` as a refused dial: the listener never becomes its peer (no
    service saw it connect), is not charged (the reject is no protocol offence), and the
    endpoint's failures grow, so the retries back off instead of coming every dial tick.
    Once the listener admits it, the next retry connects, without a restart."""
    async with AsyncExitStack() as stack:
        joiner = key("joiner")
        members = {key("member").address}
        member = await start_node(stack, "member", is_admitted=lambda a: a in members)
        dialler = await start_node(stack, "joiner", bootstrap=(member.endpoint,))
        refusals: list[tuple[tuple[str, int], str]] = []
        dialler.on_refused(lambda endpoint, e: refusals.append((endpoint, e.code)))
        connects: list[object] = []
        dialler.on_connect(connects.append)
        await wait_until_async(lambda: len(refusals) >= 3)
        host, _, port = member.endpoint.rpartition(":")
        assert set(refusals) == {((host, int(port)), "not_admitted")}
        assert not dialler.peers and not member.peers and not connects
        assert not [k for k in dialler.stats if k.startswith("penalty:")], dialler.stats
        assert dialler.book.entries[(host, int(port))].failures >= 3
        members.add(joiner.address)
        await wait_until_async(lambda: member.address in dialler.peers)
        assert joiner.address in member.peers and len(connects) == 1
