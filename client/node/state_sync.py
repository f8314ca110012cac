"""A joining node starts from a snapshot, trusting only its genesis [SNAP-*] [WIRE-SNAP.*].

Run by ``LedgerNode.start`` after the p2p node is up and before block sync starts,
when ``[statesync] mode`` asks for it and the database is still at genesis:

1. ask every connected peer for its offers [WIRE-SNAP.1-2]; take the highest height
   (in ``auto`` mode, only when it is at least ``auto_min_height``);
2. walk the validator sets from the genesis with the entries of a peer that offers it
   [SNAP-WALK.1-2], page by page [WIRE-SNAP.3-4];
3. check the offer's header against the walked set and the manifest against the header
   [SNAP-CHECK.1];
4. fetch the body as a blob (each chunk checked, a lying peer's chunk refused and the
   peer charged, by ``p2p.blobs``), check its records in a thread [SNAP-CHECK.2-3];
5. replace the genesis in the database by the snapshot [SNAP-RESTORE.1].

A peer whose offer, walk or body does not check out is charged [WIRE-SNAP.5] and the
next offer is tried. Nothing unverified is applied; on any failure the database is
left at genesis and the node goes on with block sync (``auto``) or stops (``always``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from chain.errors import ChainError
from chain.ledger import Ledger
from chain.statesync.snapshot import SnapshotInvalid, SnapshotManifest, check_header, read_body
from chain.statesync.walk import (
    MAX_WALK_ENTRIES,
    TrustedSets,
    WalkEntry,
    check_certified,
    extend,
    genesis_sets,
)
from chain.types import Address
from p2p.blobs import BlobService
from p2p.errors import P2PError
from p2p.snapshots import SnapshotService

log = logging.getLogger("learningchain.statesync")


class StateSyncFailed(ChainError):
    """``[statesync] mode = "always"`` and no snapshot could be verified and restored."""

    code = "state_sync_failed"


@dataclass
class _Candidate:
    manifest: SnapshotManifest
    header: bytes
    certificate: bytes
    peers: list[Address] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Restored:
    height: int
    records: int
    body_bytes: int
    seconds: float
    peers_charged: int


async def state_sync(ledger: Ledger, service: SnapshotService, blobs: BlobService, *,
                     min_height: int, patience_s: float) -> Restored | None:
    """Restores the newest verifiable snapshot at least ``min_height`` high into ``ledger``
    (at genesis); None when there is none (no peer, no offer, every offer refused)."""
    started = time.monotonic()
    chain_id = ledger.genesis.chain_id
    charged = 0
    candidates = await _gather_offers(service, chain_id, patience_s,
                                      wait_for_offers=min_height <= 1)
    for candidate in sorted(candidates, key=lambda c: -c.manifest.height):
        if candidate.manifest.height < min_height:
            break
        for peer in candidate.peers:
            try:
                walk, sets = await _walk(service, peer, ledger, candidate.manifest.height)
                header = check_certified(candidate.header, candidate.certificate, sets,
                                         chain_id)
                check_header(candidate.manifest, header, chain_id)
                path = await blobs.fetch(candidate.manifest.body_blob, patience=patience_s)
                state = await asyncio.to_thread(read_body, candidate.manifest, path)
            except SnapshotInvalid as e:
                log.warning("state sync: snapshot %d from %s refused: %s",
                            candidate.manifest.height, peer.hex()[:12], e)
                service.charge(peer)
                charged += 1
                continue
            except (P2PError, OSError) as e:
                log.warning("state sync: snapshot %d from %s unavailable: %s",
                            candidate.manifest.height, peer.hex()[:12], e)
                continue
            ledger.adopt_snapshot(state, [(e.height, e.encode()) for e in walk])
            restored = Restored(int(state.height), candidate.manifest.record_count,
                                candidate.manifest.body_bytes, time.monotonic() - started,
                                charged)
            log.info("state sync: restored height %d (%d records, %d bytes) in %.1f s; block "
                     "sync continues from %d", restored.height, restored.records,
                     restored.body_bytes, restored.seconds, restored.height + 1)
            return restored
    return None


async def _gather_offers(service: SnapshotService, chain_id: str, patience_s: float, *,
                         wait_for_offers: bool) -> list[_Candidate]:
    """Every peer's offers of this chain, grouped by manifest id. Waits up to
    ``patience_s`` for a first peer; then, unless ``wait_for_offers`` (``--state-sync``),
    decides on the first answers: a new graph's peers offer nothing, and its nodes must
    not wait at start."""
    deadline = time.monotonic() + patience_s
    first_peer = time.monotonic() + (patience_s if wait_for_offers else min(patience_s, 5.0))
    while not service.peers() and time.monotonic() < first_peer:
        await asyncio.sleep(0.2)
    found: dict[bytes, _Candidate] = {}
    while True:
        peers = service.peers()
        answers = await asyncio.gather(*(service.offers(p) for p in peers))
        for peer, offers in zip(peers, answers, strict=True):
            for offer in offers or []:
                try:
                    manifest = SnapshotManifest.decode(offer[0])
                except ChainError:
                    service.charge(peer)
                    continue
                if manifest.chain_id != chain_id:
                    continue
                candidate = found.setdefault(manifest.id, _Candidate(manifest, offer[1],
                                                                     offer[2]))
                if peer not in candidate.peers:
                    candidate.peers.append(peer)
        answered = any(a is not None for a in answers)
        if found or time.monotonic() >= deadline or (answered and not wait_for_offers):
            return list(found.values())
        await asyncio.sleep(1.0)


async def _walk(service: SnapshotService, peer: Address, ledger: Ledger,
                height: int) -> tuple[list[WalkEntry], TrustedSets]:
    """[SNAP-WALK.1] The peer's entries of heights up to ``height``, each checked, and the
    sets they prove."""
    sets: TrustedSets = genesis_sets(ledger.genesis)
    kept: list[WalkEntry] = []
    above = 0
    while True:
        page = await service.walk(peer, above)
        if page is None:
            raise SnapshotInvalid(f"peer {peer.hex()[:12]} offers a snapshot but no walk")
        try:
            entries = [WalkEntry.decode(e) for e in page]
        except ChainError as e:
            raise SnapshotInvalid(f"a walk entry does not decode: {e}") from e
        useful = [e for e in entries if e.height <= height]
        sets = extend(sets, useful, ledger.genesis.chain_id)
        kept.extend(useful)
        if len(entries) < MAX_WALK_ENTRIES or len(useful) < len(entries):
            return kept, sets
        above = int(entries[-1].height)
