"""LedgerApp: the ledger as consensus and block sync see it, on a real SQLite ledger."""

from __future__ import annotations

from pathlib import Path

import pytest

from chain.blocks import Block
from chain.consensus.certificate import Decision, certificate_from_precommits
from chain.consensus.errors import InvalidCertificate
from chain.consensus.messages import PRECOMMIT, sign_vote
from chain.crypto import PrivateKey
from chain.governance.bodies import GovernanceAction, GovernancePropose
from chain.ledger import Ledger
from chain.mempool import Mempool
from chain.storage import sqlite_url
from chain.transactions import Transfer, sign_transaction
from chain.types import Amount, Height, Round, TimeMs
from client.node import proposal_size
from client.node.ledger_app import LedgerApp, NodeHalted
from tests.ledger.harness import GENESIS_TIME, make_genesis


def _app(tmp: Path, validators: int = 4) -> tuple[LedgerApp, dict[str, PrivateKey]]:
    genesis, keys = make_genesis(validators=validators)
    tmp.mkdir(parents=True, exist_ok=True)
    ledger = Ledger.open(sqlite_url(tmp), genesis)
    mempool = Mempool(ledger.state, ledger.signatures)
    return LedgerApp(ledger, mempool, keys["v0"].address), keys


def _certificate(keys: dict[str, PrivateKey], chain_id: str, height: int, block_hash: bytes,
                 signers: int = 3) -> bytes:
    votes = [sign_vote(keys[f"v{i}"], chain_id, PRECOMMIT, Height(height), Round(0), block_hash)
             for i in range(signers)]
    return certificate_from_precommits(votes).encode()


def test_propose_validate_decide_commits_once(tmp_path: Path) -> None:
    """[NODE-APP.1] ``propose`` reaps the pending transfer and seals the time it was given;
    [NODE-APP.2] ``validate`` holds for that height and time only; [NODE-APP.3] ``decided``
    commits block and certificate (served back by ``get_blocks``), the pool drops the
    included transaction, and a repeated decision is a no-op."""
    app, keys = _app(tmp_path)
    chain_id = app.ledger.state.chain_id
    tx = sign_transaction(keys["alice"], chain_id, 0, Transfer(keys["bob"].address, Amount(3)))
    assert app.mempool.add(tx, GENESIS_TIME).accepted
    block_hash, data = app.propose(Height(1), Round(0), TimeMs(GENESIS_TIME + 1000))
    assert app.validate(Height(1), block_hash, data, TimeMs(GENESIS_TIME + 1000))
    assert not app.validate(Height(1), block_hash, data, TimeMs(GENESIS_TIME + 999))
    assert not app.validate(Height(2), block_hash, data, TimeMs(GENESIS_TIME + 1000))
    cert = _certificate(keys, chain_id, 1, block_hash)
    from chain.consensus.certificate import decode_certificate

    app.decided(Decision(Height(1), block_hash, TimeMs(GENESIS_TIME + 1000), data,
                         decode_certificate(cert)))
    assert app.height() == 1 and app.ledger.state.account(keys["bob"].address).balance == 1_003
    assert len(app.mempool) == 0  # included transactions leave the pool
    assert app.get_blocks(1, 5) == [(data, cert)]
    app.decided(Decision(Height(1), block_hash, TimeMs(GENESIS_TIME + 1000), data,
                         decode_certificate(cert)))  # a repeat (sync got there first) is a no-op
    assert app.height() == 1


def test_validate_rejects_tampered_and_foreign_blocks(tmp_path: Path) -> None:
    """[NODE-APP.2] Cut bytes, a hash that is not theirs, and a proposer that is not a
    validator are refused; another validator's honest block is accepted."""
    app, keys = _app(tmp_path)
    other, _ = _app(tmp_path / "other")
    block_hash, data = other.propose(Height(1), Round(0), TimeMs(GENESIS_TIME + 1000))
    # the same chain, a block another validator proposed: valid here too
    assert app.validate(Height(1), block_hash, data, TimeMs(GENESIS_TIME + 1000))
    assert not app.validate(Height(1), block_hash, data[:-1], TimeMs(GENESIS_TIME + 1000))
    assert not app.validate(Height(1), b"\x00" * 32, data, TimeMs(GENESIS_TIME + 1000))
    outsider = PrivateKey.from_seed(b"not-a-validator")
    rogue = app.ledger.propose([], TimeMs(GENESIS_TIME + 1000), outsider.address)
    assert not app.validate(Height(1), rogue.hash, rogue.encode(), TimeMs(GENESIS_TIME + 1000))


def test_sync_apply_checks_certificate_against_the_set_of_that_height(tmp_path: Path) -> None:
    """[NODE-APP.4] Sync's ``apply`` refuses a certificate of 2 of 4 validators (not more
    than two thirds) and one certifying another hash; with 3 of 4 it applies the block,
    reproduces its state root and tells the node (which rebuilds its consensus core)."""
    source, keys = _app(tmp_path / "a")
    target, _ = _app(tmp_path / "b")
    chain_id = source.ledger.state.chain_id
    block_hash, data = source.propose(Height(1), Round(0), TimeMs(GENESIS_TIME + 1000))
    weak = _certificate(keys, chain_id, 1, block_hash, signers=2)  # 2 of 4: no quorum
    with pytest.raises(InvalidCertificate):
        target.apply(data, weak)
    wrong = _certificate(keys, chain_id, 1, b"\x01" * 32)
    with pytest.raises(InvalidCertificate):
        target.apply(data, wrong)
    synced: list[int] = []
    target.on_synced = lambda: synced.append(target.height())
    target.apply(data, _certificate(keys, chain_id, 1, block_hash))
    assert target.height() == 1 and synced == [1]
    assert target.ledger.state.state_root == Block.decode(data).header.state_root


def test_validator_set_of_next_height_includes_scheduled_changes(tmp_path: Path) -> None:
    """[NODE-ROLE.2] The set of height h+1 is known before h is decided and deciding h does
    not change it, even in the block that adds a validator; the newcomer appears later."""
    app, keys = _app(tmp_path, validators=4)
    chain_id = app.ledger.state.chain_id
    newcomer = PrivateKey.from_seed(b"new-validator")
    action = GovernanceAction("add_validator", newcomer.public_key, 1)
    time_ms = GENESIS_TIME
    txs = [sign_transaction(keys["v0"], chain_id, 0, GovernancePropose(action))]
    for height in range(1, 6):
        time_ms += 1000
        for tx in txs:
            assert app.mempool.add(tx, time_ms).accepted, tx
        txs = []
        block_hash, data = app.propose(Height(height), Round(0), TimeMs(time_ms))
        before = app.validators_at(Height(height + 1))
        from chain.consensus.certificate import decode_certificate

        cert = decode_certificate(_certificate(keys, chain_id, height, block_hash))
        app.decided(Decision(Height(height), block_hash, TimeMs(time_ms), data, cert))
        after = app.validators_at(Height(height + 1))
        assert before.set_hash == after.set_hash, height
        if height == 1:
            proposal_id = next(iter(app.ledger.state.keys("proposal")), None)
            assert proposal_id is not None
            from chain.governance.bodies import GovernanceApprove

            for i in (1, 2):
                txs.append(sign_transaction(keys[f"v{i}"], chain_id, 0,
                                            GovernanceApprove(proposal_id)))
    assert newcomer.address in app.validators_at(Height(app.height() + 1))
    assert len(app.validators_at(Height(app.height() + 1))) == 5


def test_decided_out_of_order_halts(tmp_path: Path) -> None:
    app, keys = _app(tmp_path)
    block_hash, data = app.propose(Height(1), Round(0), TimeMs(GENESIS_TIME + 1000))
    from chain.consensus.certificate import decode_certificate

    cert = decode_certificate(_certificate(keys, app.ledger.state.chain_id, 1, block_hash))
    with pytest.raises(NodeHalted):
        app.decided(Decision(Height(2), block_hash, TimeMs(GENESIS_TIME + 1000), data, cert))


def test_block_decode_reuses_known_transactions_only_for_identical_bytes(tmp_path: Path) -> None:
    app, keys = _app(tmp_path)
    chain_id = app.ledger.state.chain_id
    txs = [sign_transaction(keys["alice"], chain_id, n, Transfer(keys["bob"].address, Amount(1)))
           for n in range(3)]
    block = app.ledger.propose(txs, TimeMs(GENESIS_TIME + 1000), keys["v0"].address)
    by_hash = {tx.hash: tx for tx in txs}
    decoded = Block.decode(block.encode(), known=by_hash.get)
    assert all(a is b for a, b in zip(decoded.txs, txs, strict=True))
    impostor = {txs[0].hash: txs[1]}  # a lookup that lies is not trusted
    again = Block.decode(block.encode(), known=impostor.get)
    assert again.txs[0] == txs[0] and again.txs[0] is not txs[1]


def test_proposal_size_follows_the_measured_cost_and_halves_by_round(tmp_path: Path) -> None:
    """A proposal reaps what its ``ProposalSizer`` allows (client/node/proposal_size.py):
    at a measured 1 ms a transaction the 0.2 s budget gives the floor, halved per round
    (round 4: floor >> 4 of 300 pending); with no measurement yet, the old 4,000, so all
    300; and building that proposal is itself measured."""
    app, keys = _app(tmp_path)
    chain_id = app.ledger.state.chain_id
    for nonce in range(300):
        tx = sign_transaction(keys["alice"], chain_id, nonce,
                              Transfer(keys["bob"].address, Amount(1)))
        assert app.mempool.add(tx, GENESIS_TIME).accepted
    app.sizer.per_tx_s = 1e-3
    _, data = app.propose(Height(1), Round(4), TimeMs(GENESIS_TIME + 1000))
    assert len(Block.decode(data).txs) == proposal_size.FLOOR >> 4
    app.sizer.per_tx_s = None
    _, data = app.propose(Height(1), Round(0), TimeMs(GENESIS_TIME + 2000))
    assert len(Block.decode(data).txs) == 300
    assert app.sizer.per_tx_s is not None and app.sizer.per_tx_s > 0
