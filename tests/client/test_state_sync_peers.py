"""[WIRE-SNAP.1-5] [SNAP-CHECK.1] The joining node's procedure over real sockets on
127.0.0.1, against one honest peer and one that lies.

Three in-process p2p nodes: ``honest`` serves a real snapshot of height 200 (its body as a
blob, its walk from storage), ``liar`` offers a higher "snapshot" whose manifest does not
name the header it sends, and ``newcomer`` runs ``client.node.state_sync.state_sync`` on
a ledger at genesis. The liar's offer is tried first (the highest), refused, its sender
charged; the honest one is restored: the newcomer's state root is the source's.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import replace
from pathlib import Path

from chain.content import blob_id_of_file
from chain.governance.bodies import GovernanceAction, GovernancePropose
from chain.ledger import Ledger
from chain.statesync.roots import DIGEST_INTERVAL
from chain.statesync.snapshot import manifest_of, write_body
from chain.storage import sqlite_url
from client.node.state_sync import state_sync
from p2p.blobs import BlobService
from p2p.blobstore import BlobStore
from p2p.config import P2PConfig
from p2p.node import Node
from p2p.snapshots import SnapshotService
from tests.framework.certified_chain import CertifiedChain
from tests.framework.wait import wait_until_async
from tests.ledger.harness import make_genesis

HEIGHT = 2 * DIGEST_INTERVAL


class _Source:
    def __init__(self, offers: list[list[bytes]], walk: list[bytes]) -> None:
        self.offers, self.walk = offers, walk

    def snapshot_offers(self) -> list[list[bytes]]:
        return self.offers

    def walk_entries(self, above: int, limit: int) -> list[bytes]:
        return self.walk[:limit] if above == 0 else []


async def test_wire_snap_5_a_lying_offer_is_charged_and_the_honest_one_restored(
        tmp_path: Path) -> None:
    """[WIRE-SNAP.1] [WIRE-SNAP.2] [WIRE-SNAP.3] [WIRE-SNAP.4] [WIRE-SNAP.5]"""
    genesis, keys = make_genesis(validators=1, protocol_version=3, outsiders=("newval",))
    chain = CertifiedChain(genesis, keys.values(), tmp_path / "source")
    chain.block(chain.sign(keys["v0"], GovernancePropose(
        GovernanceAction("add_validator", keys["newval"].public_key, 1))))
    chain.empty_blocks(HEIGHT - 1)
    body = tmp_path / "body"
    with body.open("wb") as f:
        size, count = write_body(chain.state, f)
    assert chain.last_output is not None and chain.last_output.parts is not None
    manifest = manifest_of(chain.state, chain.last_output.parts, blob_id_of_file(body),
                           size, count)
    header = chain.ledger.storage.block(HEIGHT)
    assert header is not None
    offer = [manifest.encode(), header.header.encode(), chain.certificates[HEIGHT]]
    walk = chain.ledger.storage.walk_entries(0, 64)
    lie = replace(manifest, height=HEIGHT + DIGEST_INTERVAL)
    config = P2PConfig(chain_id=genesis.chain_id, ban_threshold=-1e9)
    async with AsyncExitStack() as stack:
        honest = await stack.enter_async_context(Node(keys["alice"], config))
        store = BlobStore(tmp_path / "honest-blobs")
        store.put_file(body)
        BlobService(honest, store)
        SnapshotService(honest, _Source([offer], walk))
        liar = await stack.enter_async_context(Node(keys["bob"], config))
        BlobService(liar, BlobStore(tmp_path / "liar-blobs"))
        SnapshotService(liar, _Source([[lie.encode(), offer[1], offer[2]]], walk))
        newcomer = await stack.enter_async_context(Node(keys["carol"], replace(
            config, bootstrap=(honest.endpoint, liar.endpoint))))
        service = SnapshotService(newcomer)
        await wait_until_async(lambda: len(newcomer.peers) == 2, timeout=10)
        (tmp_path / "new").mkdir()
        ledger = Ledger.open(sqlite_url(tmp_path / "new"), genesis)
        restored = await state_sync(ledger, service, BlobService(newcomer,
                                                                 BlobStore(tmp_path / "nb")),
                                    min_height=1, patience_s=10)
    assert restored is not None and restored.height == HEIGHT
    assert restored.peers_charged == 1
    assert ledger.state.state_root == chain.ledger.storage.block(HEIGHT).header.state_root  # type: ignore[union-attr]
    assert Ledger.open(sqlite_url(tmp_path / "new"), genesis).state.height == HEIGHT
