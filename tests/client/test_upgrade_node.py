"""The node's halt at an upgrade it cannot run, on a real SQLite ledger [UPGRADE-HALT.*].

The graph test (test_upgrade_graph.py) shows it end to end with processes; these pin each
entry point: nothing is proposed, validated, decided or synced at H by old software, and
the same database runs on under new software.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from chain.consensus.certificate import Decision, certificate_from_precommits, decode_certificate
from chain.consensus.messages import PRECOMMIT, sign_vote
from chain.crypto import PrivateKey
from chain.governance.bodies import GovernanceAction, GovernancePropose, UpgradePlan
from chain.ledger import Ledger
from chain.mempool import Mempool
from chain.storage import sqlite_url
from chain.transactions import sign_transaction
from chain.types import Height, Round, TimeMs
from chain.versions import MAX_PROTOCOL_VERSION
from client.node.ledger_app import LedgerApp, UpgradeRequired
from client.node.upgrade import (
    MAX_VERSION_ENV,
    BadVersionOverride,
    highest_known_version,
    write_upgrade_info,
)
from p2p.sync import LocalApplyFailure
from tests.ledger.harness import GENESIS_TIME, make_genesis

H = 12


def _commit(app: LedgerApp, keys: dict[str, PrivateKey], txs: tuple[bytes, ...] = ()) -> None:
    state = app.ledger.state
    for wire in txs:
        assert app.mempool.add_bytes(wire, state.time_ms + 1).accepted
    height = Height(state.height + 1)
    time_ms = TimeMs(state.time_ms + 1_000)
    block_hash, data = app.propose(height, Round(0), time_ms)
    votes = [sign_vote(keys["v0"], state.chain_id, PRECOMMIT, height, Round(0), block_hash)]
    cert = decode_certificate(certificate_from_precommits(votes).encode())
    app.decided(Decision(height, block_hash, time_ms, data, cert))


def _at_h_minus_1(tmp: Path, known: int) -> tuple[LedgerApp, dict[str, PrivateKey]]:
    """One validator, a plan to version 2 at H, blocks 1..H-1 committed by new software; then
    the same database opened by software that knows up to ``known``."""
    genesis, keys = make_genesis(validators=1)
    tmp.mkdir(parents=True, exist_ok=True)
    ledger = Ledger.open(sqlite_url(tmp), genesis)
    app = LedgerApp(ledger, Mempool(ledger.state, ledger.signatures), keys["v0"].address)
    plan = GovernancePropose(GovernanceAction.schedule(UpgradePlan("v2-memo", 2, H)))
    _commit(app, keys, (sign_transaction(keys["v0"], genesis.chain_id, 0, plan).wire,))
    while ledger.state.height < H - 1:
        _commit(app, keys)
    ledger.close()
    ledger = Ledger.open(sqlite_url(tmp), genesis)
    return LedgerApp(ledger, Mempool(ledger.state, ledger.signatures), keys["v0"].address,
                     max_protocol_version=known), keys


def test_upgrade_halt_1_old_software_proposes_validates_decides_and_syncs_nothing_at_h(
        tmp_path: Path) -> None:
    """[UPGRADE-HALT.1] At H-1, software knowing only version 1 raises ``UpgradeRequired``
    (a ``NodeHalted``: the consensus driver halts) from propose, validate and decided, and
    block sync's apply fails locally (no peer is charged); the database stays at H-1."""
    new_app, keys = _at_h_minus_1(tmp_path / "new", MAX_PROTOCOL_VERSION)
    block_hash, data = new_app.propose(Height(H), Round(0), TimeMs(GENESIS_TIME + 99_000))
    old, _ = _at_h_minus_1(tmp_path / "old", 1)
    error = old.upgrade_required()
    assert isinstance(error, UpgradeRequired)
    assert (error.name, error.version, error.height, error.known) == ("v2-memo", 2, H, 1)
    assert str(error) == (f"upgrade required: plan 'v2-memo' needs protocol version 2 at "
                          f"height {H}; this software knows up to 1")
    with pytest.raises(UpgradeRequired):
        old.propose(Height(H), Round(0), TimeMs(GENESIS_TIME + 99_000))
    with pytest.raises(UpgradeRequired):
        old.validate(Height(H), block_hash, data, TimeMs(GENESIS_TIME + 99_000))
    vote = sign_vote(keys["v0"], old.ledger.state.chain_id, PRECOMMIT, Height(H), Round(0),
                     block_hash)
    cert = certificate_from_precommits([vote])
    with pytest.raises(UpgradeRequired):
        old.decided(Decision(Height(H), block_hash, TimeMs(GENESIS_TIME + 99_000), data, cert))
    with pytest.raises(LocalApplyFailure, match="upgrade required"):
        old.apply(data, cert.encode())
    assert old.ledger.state.height == H - 1 and old.ledger.storage.height() == H - 1
    path = write_upgrade_info(tmp_path, error)
    assert path.name == "upgrade-info.json" and '"version": 2' in path.read_text()


def test_upgrade_halt_1_new_software_carries_on_from_the_same_database(tmp_path: Path) -> None:
    """[UPGRADE-HALT.1] The database the old software stopped with, opened by software that
    knows version 2: nothing to resync, block H is version 2."""
    old, keys = _at_h_minus_1(tmp_path, 1)
    assert old.upgrade_required() is not None
    old.ledger.close()
    genesis = make_genesis(validators=1)[0]
    ledger = Ledger.open(sqlite_url(tmp_path), genesis)
    app = LedgerApp(ledger, Mempool(ledger.state, ledger.signatures), keys["v0"].address)
    assert app.upgrade_required() is None
    _commit(app, keys)
    assert ledger.state.height == H and ledger.state.protocol_version == 2
    assert ledger.storage.height() == H


def test_upgrade_halt_2_override_only_lowers_the_known_version() -> None:
    """[UPGRADE-HALT.2] ``LC_MAX_PROTOCOL_VERSION`` absent: the software's newest version; a
    lower known version: that; anything else is refused with the value it got."""
    assert highest_known_version({}) == MAX_PROTOCOL_VERSION
    assert highest_known_version({MAX_VERSION_ENV: "1"}) == 1
    for bad in ("0", str(MAX_PROTOCOL_VERSION + 1), "two", "-1"):
        with pytest.raises(BadVersionOverride, match=repr(bad)):
            highest_known_version({MAX_VERSION_ENV: bad})
