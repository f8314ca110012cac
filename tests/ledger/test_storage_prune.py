"""Pruning old blocks on real databases: SQLite files and the local PostgreSQL [STORE-PRUNE.*]."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import chain.storage as storage_module
from chain.ledger import Ledger
from chain.storage import Storage, StorageError, sqlite_url
from chain.transactions import Transfer
from chain.types import Amount
from tests.ledger.harness import Chain
from tests.ledger.test_storage import db_url  # noqa: F401  (the two-database fixture)


def _chain_with_transfers(url: str, blocks: int) -> tuple[Chain, list[bytes]]:
    """``blocks`` blocks, each with one transfer; returns the chain and each block's tx hash."""
    chain = Chain(url=url)
    hashes: list[bytes] = []
    for _ in range(blocks):
        tx = chain.tx("alice", Transfer(chain.addr("bob"), Amount(1)))
        chain.block(tx)
        hashes.append(tx.hash)
    return chain, hashes


def _stored_heights(storage: Storage) -> list[int]:
    return [h for h in range(0, storage.height() + 2) if storage.block(h) is not None]


def test_store_prune_2_deletes_exactly_below_the_retained_height(db_url: str) -> None:  # noqa: F811
    """[STORE-PRUNE.2] Blocks and index rows below the height go, everything from it stays,
    the base height says where the stored range starts, and the state is untouched."""
    chain, hashes = _chain_with_transfers(db_url, 30)
    assert chain.ledger is not None
    storage = chain.ledger.storage
    digest = chain.state.digest()
    assert storage.base_height() == 1
    assert storage.prune_blocks(21) == 21
    assert _stored_heights(storage) == list(range(21, 31))
    assert storage.base_height() == 21
    assert [storage.tx_location(h) for h in hashes[:20]] == [None] * 20
    assert [storage.tx_location(h) for h in hashes[20:]] == [(h, 0) for h in range(21, 31)]
    assert storage.blocks_range(15, 10) == [storage.block_data(h) for h in range(21, 25)]
    assert storage.prune_blocks(10) == 21  # below the base already: nothing to do
    chain.ledger.close()
    reopened = Ledger.open(db_url, chain.genesis)
    assert reopened.storage.base_height() == 21 and reopened.state.digest() == digest
    reopened.close()


def test_store_prune_2_never_deletes_the_tip(db_url: str) -> None:  # noqa: F811
    """[STORE-PRUNE.2] Pruning up to or past the tip is refused with the heights involved."""
    chain, _ = _chain_with_transfers(db_url, 5)
    assert chain.ledger is not None
    with pytest.raises(StorageError, match="cannot prune below height 6: the tip is 5"):
        chain.ledger.storage.prune_blocks(6)
    assert chain.ledger.storage.prune_blocks(5) == 5
    assert _stored_heights(chain.ledger.storage) == [5]
    chain.ledger.close()


def test_store_prune_3_batches_are_bounded_and_each_one_is_atomic(db_url: str) -> None:  # noqa: F811
    """[STORE-PRUNE.3] One call deletes at most ``max_batches`` batches; after each batch
    the stored range and the base height agree (a crash between batches leaves no gap)."""
    chain, _ = _chain_with_transfers(db_url, 40)
    assert chain.ledger is not None
    storage = chain.ledger.storage
    assert storage.prune_blocks(35, batch=10, max_batches=1) == 11
    assert _stored_heights(storage)[0] == 11 == storage.base_height()
    assert storage.prune_blocks(35, batch=10, max_batches=2) == 31
    assert _stored_heights(storage)[0] == 31
    assert storage.prune_blocks(35, batch=10) == 35
    assert _stored_heights(storage) == list(range(35, 41))
    chain.block(chain.tx("alice", Transfer(chain.addr("bob"), Amount(1))))  # still commits
    assert _stored_heights(storage) == list(range(35, 42))
    chain.ledger.close()


def _pages(db: Path) -> tuple[int, int]:
    """(page_count, freelist_count) of a SQLite file after folding its WAL in."""
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        count = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    return int(count), int(free)


def test_store_prune_4_a_new_sqlite_file_gives_freed_pages_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """[STORE-PRUNE.4] A database created now uses incremental auto-vacuum: after pruning
    most of a chain the file shrinks, down to the slack of free pages kept for the next
    blocks (16 pages here instead of 1,024, so a few hundred blocks show it)."""
    monkeypatch.setattr(storage_module, "VACUUM_SLACK_PAGES", 16)
    chain, _ = _chain_with_transfers(sqlite_url(tmp_path), 300)
    assert chain.ledger is not None
    storage = chain.ledger.storage
    with storage.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA auto_vacuum").scalar() == 2
    db = tmp_path / "chain.sqlite3"
    before, _ = _pages(db)
    storage.prune_blocks(storage.height() - 10)
    after, free = _pages(db)
    assert after < before and free <= 16, (before, after, free)
    chain.ledger.close()


def test_store_prune_4_an_old_sqlite_file_reuses_freed_pages(tmp_path: Path) -> None:
    """[STORE-PRUNE.4] A file created before auto-vacuum (auto_vacuum=NONE) keeps its size,
    but the pages pruning freed are reused: new blocks do not grow it."""
    db = tmp_path / "chain.sqlite3"
    with sqlite3.connect(db) as conn:  # what older software created: tables, no auto-vacuum
        conn.execute("PRAGMA auto_vacuum=NONE")
        conn.execute("CREATE TABLE placeholder (x INTEGER)")
    chain, _ = _chain_with_transfers(sqlite_url(tmp_path), 400)
    assert chain.ledger is not None
    storage = chain.ledger.storage
    with storage.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA auto_vacuum").scalar() == 0
    storage.prune_blocks(storage.height() - 10)
    size, free = _pages(db)
    assert free > 16  # what the pruned blocks held
    for _ in range(200):
        chain.block(chain.tx("alice", Transfer(chain.addr("bob"), Amount(1))))
    assert _pages(db)[0] == size
    chain.ledger.close()
