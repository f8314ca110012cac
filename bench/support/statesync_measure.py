"""What bench/statesync.py times on a built chain (issue 48 §2): a state sync over real
p2p sockets on 127.0.0.1, and a replay from genesis as block sync does it.

- ``snapshot``: the body of the tip's snapshot [SNAP-BODY.1] and its manifest
  [SNAP-MANIFEST.1], as ``client.node.snapshots.SnapshotKeeper`` takes them.
- ``state_sync_over_p2p``: a source ``Node`` whose ``BlobService`` serves the body and
  whose ``SnapshotService`` offers ``[manifest, header, certificate]`` of the tip and
  the stored walk; a joining ``Node`` with its own services and a fresh ``Ledger`` at
  genesis runs ``client.node.state_sync.state_sync`` (offers, walk from the genesis
  set, header and manifest checks, the body fetched chunk by chunk and read record by
  record, the database written), timed from its call to its return.
- ``replay``: a fresh ``Ledger`` at genesis takes the source's stored blocks in order,
  each certificate checked against the set of its height (``verify_certificate``, as
  ``LedgerApp.apply`` does for block sync [WIRE-SYNC.5]) then ``Ledger.apply`` (which
  re-executes the block to its header's root and commits it, one transaction a block).
"""

from __future__ import annotations

import asyncio
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

from chain.blocks import Block
from chain.consensus.certificate import decode_certificate, verify_certificate
from chain.consensus.validators import ValidatorSet
from chain.content import blob_id_of_file
from chain.crypto import PrivateKey
from chain.ledger import Ledger
from chain.statesync.snapshot import SnapshotManifest, manifest_of, write_body
from chain.storage import sqlite_url
from client.node.state_sync import state_sync
from p2p.blobs import BlobService
from p2p.blobstore import BlobStore
from p2p.config import GossipParams, P2PConfig
from p2p.node import Node
from p2p.snapshots import SnapshotService

PAGE = 1_000
"""Blocks read from the source's database at a time during the replay."""


@dataclass(frozen=True)
class Snapshot:
    manifest: SnapshotManifest
    body: Path
    offer: list[bytes]
    seconds: float


@dataclass(frozen=True)
class Synced:
    seconds: float
    height: int
    records: int
    body_bytes: int
    state_root: bytes
    reopened_root: bytes
    walk_entries: int


@dataclass(frozen=True)
class Replayed:
    blocks: int
    seconds: float
    tail_blocks: int
    """Blocks after the busy ones in the measured prefix (all empty)."""
    tail_seconds: float
    state_root: bytes


def snapshot(ledger: Ledger, folder: Path) -> Snapshot:
    """The tip's snapshot (the tip must be a digest height) and its offer."""
    started = time.perf_counter()
    output = ledger.last_output
    if output is None or output.parts is None:
        raise ValueError("the ledger's tip has no root parts (not a version 3 block)")
    folder.mkdir(parents=True, exist_ok=True)
    body = folder / "body"
    with body.open("wb") as f:
        size, count = write_body(ledger.state, f)
    manifest = manifest_of(ledger.state, output.parts, blob_id_of_file(body), size, count)
    found = ledger.storage.block_data(int(ledger.state.height))
    block = ledger.storage.block(int(ledger.state.height))
    if found is None or found[1] is None or block is None:
        raise ValueError("the tip block or its certificate is not stored")
    offer = [manifest.encode(), block.header.encode(), found[1]]
    return Snapshot(manifest, body, offer, time.perf_counter() - started)


class _Source:
    """``p2p.snapshots.SnapshotSource`` of the built chain: one offer, the stored walk."""

    def __init__(self, ledger: Ledger, offer: list[bytes]) -> None:
        self.ledger = ledger
        self.offer = offer

    def snapshot_offers(self) -> list[list[bytes]]:
        return [self.offer]

    def walk_entries(self, above: int, limit: int) -> list[bytes]:
        return self.ledger.storage.walk_entries(above, limit)


def _config(chain_id: str, bootstrap: tuple[str, ...] = ()) -> P2PConfig:
    return P2PConfig(chain_id=chain_id, host="127.0.0.1", port=0, bootstrap=bootstrap,
                     gossip=GossipParams())


async def _state_sync(source: Ledger, snap: Snapshot, root: Path) -> Synced:
    genesis = source.genesis
    async with AsyncExitStack() as stack:
        serving = Node(PrivateKey.from_seed(b"statesync-bench-source"), _config(
            genesis.chain_id))
        store = BlobStore(root / "source-blobs")
        store.put_file(snap.body, link=True)
        BlobService(serving, store)
        SnapshotService(serving, _Source(source, snap.offer))
        await stack.enter_async_context(serving)
        joining = Node(PrivateKey.from_seed(b"statesync-bench-joiner"),
                       _config(genesis.chain_id, (serving.endpoint,)))
        blobs = BlobService(joining, BlobStore(root / "joiner-blobs"))
        service = SnapshotService(joining)
        (root / "joiner").mkdir(parents=True, exist_ok=True)
        ledger = Ledger.open(sqlite_url(root / "joiner"), genesis)
        await stack.enter_async_context(joining)
        deadline = time.monotonic() + 30.0
        while serving.address not in joining.peers:
            if time.monotonic() > deadline:
                raise TimeoutError("the joining node did not connect to the source")
            await asyncio.sleep(0.05)
        started = time.perf_counter()
        restored = await state_sync(ledger, service, blobs, min_height=0, patience_s=30.0)
        seconds = time.perf_counter() - started
        if restored is None:
            raise RuntimeError("state sync restored nothing")
        walk = len(ledger.storage.walk_entries(0, 1_000))
        ledger.close()
    reopened = Ledger.open(sqlite_url(root / "joiner"), genesis)
    result = Synced(seconds, restored.height, restored.records, restored.body_bytes,
                    ledger.state.state_root, reopened.state.state_root, walk)
    reopened.close()
    return result


def state_sync_over_p2p(source: Ledger, snap: Snapshot, root: Path) -> Synced:
    return asyncio.run(_state_sync(source, snap, root))


def replay(source: Ledger, root: Path, upto: int, busy: int) -> Replayed:
    """Replays blocks 1..``upto`` of ``source`` into a fresh ledger; times the whole and the
    part after block ``busy`` (the empty tail, for extrapolation)."""
    root.mkdir(parents=True, exist_ok=True)
    ledger = Ledger.open(sqlite_url(root), source.genesis)
    chain_id = source.genesis.chain_id
    started = time.perf_counter()
    tail_started = started
    height = 0
    while height < upto:
        for data, certificate in source.storage.blocks_range(height + 1, min(PAGE, upto - height)):
            height += 1
            if certificate is None:
                raise ValueError(f"block {height} has no certificate")
            block = Block.decode(data)
            cert = decode_certificate(certificate)
            if cert.height != height or block.header.height != height or \
                    cert.block_hash != block.hash:
                raise ValueError(f"block {height}: the certificate is not the block's")
            members = ledger.state.validators()
            verify_certificate(cert, ValidatorSet.from_members(
                (v.pubkey, v.power) for v in members.values()), chain_id)
            ledger.apply(block, certificate)
            if height == busy:
                tail_started = time.perf_counter()
    ended = time.perf_counter()
    root_hash = ledger.state.state_root
    ledger.close()
    return Replayed(upto, ended - started, upto - max(busy, 0), ended - tail_started, root_hash)
