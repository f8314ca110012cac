"""[WIRE-PEX.4] A peer's endpoint is shared or used only once this node reached it there.

"Behind a NAT" on loopback: the NATted node listens on 127.0.0.3 only, while its dials
leave from 127.0.0.1, so the endpoint its peers see (127.0.0.1 and its announced port)
reaches nobody, exactly as a router's address does. The host-namespace scenario
(tests/hosts/) shows the same with a real masquerading router.
"""

from __future__ import annotations

import os
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
from p2p_harness import start_node

from chain.content import blob_id_of_bytes
from p2p.blobs import BlobService
from p2p.blobstore import BlobStore
from p2p.node import Node
from p2p.secure import probe_id
from p2p.wire import CHUNK_SIZE
from tests.framework.wait import wait_until_async

NATTED_HOST = "127.0.0.3"


async def probe_status(node: Node, arg: str) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://{node.endpoint}/p2p/probe/{arg}") as response,
    ):
        return response.status


async def test_wire_pex_4_reachable_inbound_peer_is_verified_and_shared() -> None:
    async with AsyncExitStack() as stack:
        hub = await start_node(stack, "hub")
        a = await start_node(stack, "a", bootstrap=(hub.endpoint,))
        await wait_until_async(lambda: a.address in hub.peers)
        inbound = hub.peers[a.address]
        await wait_until_async(lambda: hub.reach.endpoint(inbound) is not None)
        assert hub.reach.endpoint(inbound) == ("127.0.0.1", a.listen_port)
        b = await start_node(stack, "b", bootstrap=(hub.endpoint,))
        await wait_until_async(lambda: ("127.0.0.1", a.listen_port) in b.book.entries, timeout=20)


async def test_wire_pex_4_a_failed_probe_is_retried_while_the_peer_stays_connected() -> None:
    """A probe that times out once (a loaded machine: CI run 8's NAT scenario, where a node
    then handed on no peer at all) is tried again after the backoff over the same live
    connection, and the reachable peer is verified without reconnecting."""
    async with AsyncExitStack() as stack:
        hub = await start_node(stack, "hub")
        real = hub.reach._probe
        calls: list[int] = []

        async def first_times_out(peer: Any, endpoint: Any) -> float | None:
            calls.append(1)
            if len(calls) == 1:
                return 0.05  # as a timed-out probe reports its backoff
            return await real(peer, endpoint)

        hub.reach._probe = first_times_out  # type: ignore[method-assign]
        a = await start_node(stack, "a", bootstrap=(hub.endpoint,))
        await wait_until_async(lambda: a.address in hub.peers)
        inbound = hub.peers[a.address]
        await wait_until_async(lambda: hub.reach.endpoint(inbound) is not None)
        assert len(calls) == 2 and hub.peers[a.address] is inbound  # same connection
        assert hub.reach.endpoint(inbound) == ("127.0.0.1", a.listen_port)


async def test_wire_pex_4_unreachable_peer_is_never_handed_on() -> None:
    """The hub probes the NATted node's seen endpoint, gets no answer, and neither lists it
    in ``peers`` nor adds it to its own book; a third node never hears of it."""
    async with AsyncExitStack() as stack:
        hub = await start_node(stack, "hub")
        natted = await start_node(stack, "natted", host=NATTED_HOST, bootstrap=(hub.endpoint,))
        await wait_until_async(lambda: natted.address in hub.peers)
        inbound = hub.peers[natted.address]
        seen = ("127.0.0.1", natted.listen_port)
        assert inbound.listen_endpoint == seen
        await wait_until_async(lambda: seen in hub.reach._failures)
        assert hub.reach.endpoint(inbound) is None
        assert seen not in hub.book.entries
        a = await start_node(stack, "a", bootstrap=(hub.endpoint,))
        await wait_until_async(lambda: a.address in hub.peers
                               and hub.reach.endpoint(hub.peers[a.address]) is not None)
        other = await start_node(stack, "other", bootstrap=(hub.endpoint,))
        # other asks hub for peers at connect; the answer names a, and only a.
        await wait_until_async(lambda: ("127.0.0.1", a.listen_port) in other.book.entries)
        assert all(e[1] != natted.listen_port for e in other.book.entries)
        assert natted.address not in other.peers


async def test_wire_pex_4_probe_answers_only_its_own_connections() -> None:
    """204 for the id of a live outbound connection, 404 for anything else (a random id,
    an inbound connection's id, bad hex): a stranger learns nothing."""
    async with AsyncExitStack() as stack:
        hub = await start_node(stack, "hub")
        a = await start_node(stack, "a", bootstrap=(hub.endpoint,))
        await wait_until_async(lambda: hub.address in a.peers)
        outbound = a.peers[hub.address]
        assert await probe_status(a, probe_id(outbound.session).hex()) == 204
        assert await probe_status(a, os.urandom(16).hex()) == 404
        assert await probe_status(a, "zz") == 404
        assert await probe_status(hub, probe_id(outbound.session).hex()) == 404, \
            "the listener's side of the connection does not answer for it"
        assert probe_id(outbound.session) == probe_id(hub.peers[a.address].session)


async def test_wire_pex_4_blob_held_by_a_natted_peer_still_arrives(tmp_path: Path) -> None:
    """No bulk stream to an unproven endpoint [WIRE-BLOB.9]: the chunks come over the
    connection the NATted node opened."""
    data = os.urandom(3 * CHUNK_SIZE + 5)
    blob = blob_id_of_bytes(data)
    async with AsyncExitStack() as stack:
        hub = await start_node(stack, "hub")
        hub_blobs = BlobService(hub, BlobStore(tmp_path / "hub"))
        natted = await start_node(stack, "natted", host=NATTED_HOST, bootstrap=(hub.endpoint,))
        natted_blobs = BlobService(natted, BlobStore(tmp_path / "natted"))
        natted_blobs.store.put_bytes(data)
        await wait_until_async(lambda: blob in hub_blobs.announcers)
        assert (await hub_blobs.fetch(blob)).read_bytes() == data
        assert natted_blobs.stats["chunks_served"] == 4
        assert natted_blobs.stats["bulk_streams_served"] == 0
