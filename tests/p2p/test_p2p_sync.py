"""Block sync between in-process nodes on real sockets [WIRE-SYNC.*]."""

from __future__ import annotations

from collections import Counter
from contextlib import AsyncExitStack

from p2p_harness import CHAIN_ID, start_node

from chain.crypto import PrivateKey
from p2p.sync import BlockSync, LocalApplyFailure
from tests.framework.hash_chain import HashChain
from tests.framework.wait import wait_until_async

VALIDATOR = PrivateKey.from_seed(b"validator")


class CountingChain(HashChain):
    def __init__(self, served: Counter[str], name: str) -> None:
        super().__init__(CHAIN_ID, {bytes(VALIDATOR.public_key)})
        self.served = served
        self.name = name

    def get_blocks(self, start: int, count: int) -> list[tuple[bytes, bytes]]:
        self.served[self.name] += 1
        return super().get_blocks(start, count)


def chain_of(
    n: int, served: Counter[str], name: str, signer: PrivateKey = VALIDATOR
) -> CountingChain:
    chain = CountingChain(served, name)
    chain.signers.add(bytes(signer.public_key))
    for h in range(n):
        chain.produce(signer, h.to_bytes(4, "big"))
    if signer is not VALIDATOR:
        chain.signers.discard(bytes(signer.public_key))
    return chain


async def test_wire_sync_5_catch_up_uses_several_peers_then_follows() -> None:
    """[WIRE-SYNC.7] A late node reaches the highest reported height (600), sets
    ``caught_up``, and then keeps following: block 601, produced afterwards, reaches it."""
    served: Counter[str] = Counter()
    async with AsyncExitStack() as stack:
        sources = []
        for i in range(3):
            node = await start_node(stack, f"src{i}")
            chain = chain_of(600, served, f"src{i}")
            sync = BlockSync(node, chain, batch=50)
            sync.start()
            sources.append((node, chain, sync))
        late_chain = HashChain(CHAIN_ID, {bytes(VALIDATOR.public_key)})
        late = await start_node(stack, "late", bootstrap=tuple(n.endpoint for n, _, _ in sources))
        late_sync = BlockSync(late, late_chain, batch=50)
        late_sync.start()
        await wait_until_async(lambda: late_sync.caught_up.is_set(), timeout=30)
        assert late_chain.height() == 600 and late_chain.tip == sources[0][1].tip
        assert len(served) >= 2, served  # the load was spread

        # Following: new blocks at the sources reach the late node.
        for _node, chain, sync in sources:
            chain.produce(VALIDATOR, b"next")
            sync.notify_height()
        await wait_until_async(lambda: late_chain.height() == 601, timeout=10)


async def test_wire_sync_6_forged_blocks_cost_the_sender_and_are_fetched_elsewhere() -> None:
    served: Counter[str] = Counter()
    forger = PrivateKey.from_seed(b"forger")
    async with AsyncExitStack() as stack:
        honest = await start_node(stack, "honest")
        BlockSync(honest, chain_of(300, served, "honest"), batch=50).start()
        liar = await start_node(stack, "liar")
        BlockSync(liar, chain_of(300, served, "liar", signer=forger), batch=50).start()
        late_chain = HashChain(CHAIN_ID, {bytes(VALIDATOR.public_key)})
        late = await start_node(stack, "late", bootstrap=(honest.endpoint, liar.endpoint))
        late_sync = BlockSync(late, late_chain, batch=50)
        late_sync.start()
        await wait_until_async(lambda: late_chain.height() == 300, timeout=30)
        await wait_until_async(late_sync.caught_up.is_set, timeout=10)
        assert served["liar"] >= 1
        liar_peer = late.peers.get(liar.address)
        assert liar_peer is None or liar_peer.score.value < 0


async def test_wire_sync_6_peer_claiming_a_huge_height_is_charged_and_ignored() -> None:
    served: Counter[str] = Counter()
    async with AsyncExitStack() as stack:
        honest = await start_node(stack, "honest")
        BlockSync(honest, chain_of(120, served, "honest"), batch=50).start()
        liar = await start_node(stack, "liar")

        class Boaster(CountingChain):
            def height(self) -> int:
                return 10**15  # claims blocks it does not have

        BlockSync(liar, Boaster(served, "liar"), batch=50).start()
        late_chain = HashChain(CHAIN_ID, {bytes(VALIDATOR.public_key)})
        late = await start_node(stack, "late", bootstrap=(honest.endpoint, liar.endpoint))
        late_sync = BlockSync(late, late_chain, batch=50)
        late_sync.start()
        await wait_until_async(late_sync.caught_up.is_set, timeout=30)
        assert late_chain.height() == 120
        assert late_sync.peer_heights[liar.address] < 10**15


class BusyDiskChain(HashChain):
    """Refuses to store block 120 the first two times, as a locked database would."""

    def __init__(self) -> None:
        super().__init__(CHAIN_ID, {bytes(VALIDATOR.public_key)})
        self.refusals = 0

    def apply(self, block: bytes, certificate: bytes) -> None:
        if self.height() + 1 == 120 and self.refusals < 2:
            self.refusals += 1
            raise LocalApplyFailure("database is locked")
        super().apply(block, certificate)


async def test_wire_sync_local_storage_failure_blames_no_peer_and_retries() -> None:
    served: Counter[str] = Counter()
    async with AsyncExitStack() as stack:
        honest = await start_node(stack, "honest")
        BlockSync(honest, chain_of(300, served, "honest"), batch=50).start()
        late_chain = BusyDiskChain()
        late = await start_node(stack, "late", bootstrap=(honest.endpoint,))
        BlockSync(late, late_chain, batch=50).start()
        await wait_until_async(lambda: late_chain.height() == 300, timeout=30)
        assert late_chain.refusals == 2
        peer = late.peers[honest.address]
        assert peer.score.value >= 0, "our own disk is not the peer's fault"


class PrunedChain(CountingChain):
    """A chain that pruned below ``base``: it says so and serves nothing older."""

    def __init__(self, served: Counter[str], name: str, base: int) -> None:
        super().__init__(served, name)
        self.base = base
        self.asked: list[int] = []

    def base_height(self) -> int:
        return self.base

    def get_blocks(self, start: int, count: int) -> list[tuple[bytes, bytes]]:
        self.asked.append(start)
        return [] if start < self.base else super().get_blocks(start, count)


async def test_wire_sync_8_ranges_below_a_peers_base_go_to_a_peer_that_has_them() -> None:
    """[WIRE-SYNC.8] A late node with a pruned peer (base 301) and a full one asks the
    pruned peer only for ranges from 301, gets 1..300 from the full one, and is caught up;
    a request below the base (sent before a prune was announced) is answered ``notfound``
    and costs the asker nothing but a retry elsewhere."""
    served: Counter[str] = Counter()
    async with AsyncExitStack() as stack:
        full_node = await start_node(stack, "full")
        full = chain_of(600, served, "full")
        BlockSync(full_node, full, batch=50).start()
        pruned_node = await start_node(stack, "pruned")
        pruned = PrunedChain(served, "pruned", 301)
        for block, cert in full.get_blocks(1, 600):
            pruned.apply(block, cert)
        pruned_sync = BlockSync(pruned_node, pruned, batch=50)
        pruned_sync.start()
        assert pruned_sync.serve(250, 10) is None and pruned_sync.serve(301, 1)
        late_chain = HashChain(CHAIN_ID, {bytes(VALIDATOR.public_key)})
        late = await start_node(stack, "late",
                                bootstrap=(full_node.endpoint, pruned_node.endpoint))
        late_sync = BlockSync(late, late_chain, batch=50)
        late_sync.start()
        await wait_until_async(lambda: late_sync.caught_up.is_set(), timeout=30)
        assert late_chain.height() == 600 and late_chain.tip == full.tip
        assert late_sync.peer_bases[pruned_node.address] == 301
        assert pruned.asked and min(pruned.asked) >= 301, pruned.asked
        assert late_sync.missing is None
