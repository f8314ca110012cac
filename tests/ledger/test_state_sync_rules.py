"""[SNAP-MANIFEST.1] [SNAP-BODY.1] [SNAP-CHECK.1-3] [SNAP-WALK.1-3] [SNAP-RESTORE.1] A
snapshot made by a real ledger, checked by a node that trusts only the genesis, and each
lie a peer could tell refused: a flipped body byte, a manifest with other root parts, a
walk entry with other members or a forged certificate, records out of order.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from chain.content import blob_id_of_file
from chain.crypto import PrivateKey
from chain.encoding import encode
from chain.governance.bodies import GovernanceAction, GovernancePropose
from chain.ledger import Ledger
from chain.statesync.roots import DIGEST_INTERVAL
from chain.statesync.snapshot import (
    SnapshotInvalid,
    SnapshotManifest,
    check_header,
    manifest_of,
    read_body,
    write_body,
)
from chain.statesync.walk import WalkEntry, check_certified, extend, genesis_sets
from chain.storage import sqlite_url
from chain.transactions import Transfer
from chain.types import Amount
from tests.framework.certified_chain import CertifiedChain
from tests.ledger.harness import make_genesis

HEIGHT = 2 * DIGEST_INTERVAL


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[CertifiedChain, Path,
                                                                SnapshotManifest]:
    """A 1-validator v3 chain that admits a second validator, with a snapshot at 200."""
    genesis, keys = make_genesis(validators=1, protocol_version=3,
                                 outsiders=("mallory", "newval"))
    root = tmp_path_factory.mktemp("snap")
    chain = CertifiedChain(genesis, keys.values(), root / "source")
    chain.block(chain.sign(keys["v0"], GovernancePropose(
        GovernanceAction("add_validator", keys["newval"].public_key, 1))))
    while chain.state.height < HEIGHT:
        txs = [chain.sign(keys["alice"], Transfer(keys["bob"].address, Amount(1)))] \
            if chain.state.height % 9 == 0 else []
        chain.block(*txs)
    assert len(chain.state.validators()) == 2
    body = root / "body"
    with body.open("wb") as f:
        size, count = write_body(chain.state, f)
    assert chain.last_output is not None and chain.last_output.parts is not None
    manifest = manifest_of(chain.state, chain.last_output.parts, blob_id_of_file(body),
                           size, count)
    for _ in range(5):  # blocks after the snapshot, for the restored node to apply
        chain.block()
    return chain, body, manifest


def _walk(chain: CertifiedChain) -> list[WalkEntry]:
    return [WalkEntry.decode(e) for e in chain.ledger.storage.walk_entries(0, 64)]


def _header(chain: CertifiedChain, height: int) -> tuple[bytes, bytes]:
    found = chain.ledger.storage.block_data(height)
    assert found is not None and found[1] is not None
    block = chain.ledger.storage.block(height)
    assert block is not None
    return block.header.encode(), found[1]


def test_snap_check_a_node_trusting_only_the_genesis_restores_and_follows(
        source: tuple[CertifiedChain, Path, SnapshotManifest], tmp_path: Path) -> None:
    """[SNAP-WALK.2] [SNAP-WALK.3] [SNAP-CHECK.1] [SNAP-CHECK.3] [SNAP-RESTORE.1] The
    source stored one walk entry with the block that changed the next set; the walk from
    the genesis set proves the 2-validator set of 200; the header of 200 is certified by
    it, the manifest names it, the body proves the root; the restored database starts at
    base 201 with the walk, applies the source's next blocks to the same roots, reopens."""
    chain, body, manifest = source
    genesis = chain.genesis
    entries = _walk(chain)
    assert len(entries) == 1  # the one height whose next set differs
    sets = extend(genesis_sets(genesis), entries, genesis.chain_id)
    assert len(sets.at(HEIGHT)) == 2 and len(sets.at(1)) == 1
    header = check_certified(*_header(chain, HEIGHT), sets, genesis.chain_id)
    check_header(manifest, header, genesis.chain_id)
    restored = read_body(manifest, body)
    (tmp_path / "new").mkdir()
    ledger = Ledger.restore(sqlite_url(tmp_path / "new"), genesis, restored,
                            [(e.height, e.encode()) for e in entries])
    assert ledger.storage.base_height() == HEIGHT + 1
    assert ledger.storage.walk_entries(0, 64) == [e.encode() for e in entries]
    for height in range(HEIGHT + 1, HEIGHT + 6):
        block = chain.ledger.storage.block(height)
        assert block is not None
        ledger.apply(block)
        assert ledger.state.state_root == block.header.state_root
    reopened = Ledger.open(sqlite_url(tmp_path / "new"), genesis)
    assert reopened.state.height == HEIGHT + 5
    assert reopened.state.state_root == chain.state.state_root


def test_snap_check_2_a_flipped_byte_or_a_reordered_body_is_refused(
        source: tuple[CertifiedChain, Path, SnapshotManifest], tmp_path: Path) -> None:
    """[SNAP-BODY.1] [SNAP-CHECK.2] [SNAP-CHECK.3] A body is records back to back in
    (table, key) order: a flipped byte, a cut record, a record out of order are refused."""
    _, body, manifest = source
    data = bytearray(body.read_bytes())
    data[len(data) // 2] ^= 0x01
    bad = tmp_path / "flipped"
    bad.write_bytes(bytes(data))
    with pytest.raises(SnapshotInvalid):
        read_body(manifest, bad)
    short = tmp_path / "short"
    short.write_bytes(body.read_bytes()[:-3])
    with pytest.raises(SnapshotInvalid, match="ends inside a record"):
        read_body(manifest, short)
    swapped = tmp_path / "swapped"
    first = encode(["account", b"\xff" * 20, b"\x90"])
    swapped.write_bytes(first + body.read_bytes())
    with pytest.raises(SnapshotInvalid, match=r"out of order|does not decode|not canonical"):
        read_body(manifest, swapped)


def test_snap_check_1_a_manifest_with_other_parts_or_height_is_refused(
        source: tuple[CertifiedChain, Path, SnapshotManifest]) -> None:
    """[SNAP-CHECK.1] [SNAP-MANIFEST.1] Parts that do not hash to the certified root, a
    header of another height: refused; the manifest's bytes round-trip."""
    chain, _, manifest = source
    genesis = chain.genesis
    sets = extend(genesis_sets(genesis), _walk(chain), genesis.chain_id)
    header = check_certified(*_header(chain, HEIGHT), sets, genesis.chain_id)
    lying = replace(manifest, parts=replace(manifest.parts, content_digest=b"\x01" * 32))
    with pytest.raises(SnapshotInvalid, match=r"STATE-ROOT\.2"):
        check_header(lying, header, genesis.chain_id)
    other = check_certified(*_header(chain, HEIGHT - 1), sets, genesis.chain_id)
    with pytest.raises(SnapshotInvalid, match="does not name the header"):
        check_header(manifest, other, genesis.chain_id)
    assert SnapshotManifest.decode(manifest.encode()) == manifest


def test_snap_walk_1_other_members_or_a_forged_certificate_are_refused(
        source: tuple[CertifiedChain, Path, SnapshotManifest]) -> None:
    """[SNAP-WALK.1] [SNAP-WALK.2] Members other than the root's, a certificate of another
    header, entries not in increasing height: each ends the walk."""
    chain, _, _ = source
    genesis = chain.genesis
    entry = _walk(chain)[0]
    mallory = PrivateKey.from_seed(b"mallory").public_key
    stolen = replace(entry, members=((mallory, 1000),))
    with pytest.raises(SnapshotInvalid, match="not the set its root commits to"):
        extend(genesis_sets(genesis), [stolen], genesis.chain_id)
    forged_header, real_cert = _header(chain, HEIGHT)
    with pytest.raises(SnapshotInvalid, match="not the header's"):
        check_certified(forged_header, chain.certificates[HEIGHT - 1],
                        genesis_sets(genesis), genesis.chain_id)
    with pytest.raises(SnapshotInvalid):
        extend(genesis_sets(genesis), [entry, entry], genesis.chain_id)  # not ascending
    del real_cert
