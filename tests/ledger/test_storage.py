"""Storage on real databases: SQLite files and the local PostgreSQL [STORE-*]."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from chain.genesis import genesis_state
from chain.ledger import GenesisMismatch, Ledger
from chain.storage import (
    BUSY_TIMEOUT_SECONDS,
    Storage,
    StorageBusy,
    StorageError,
    metadata,
    sqlite_url,
)
from chain.train.bodies import PostJob
from chain.transactions import Transfer
from chain.transition import advance, apply_block, build_block
from chain.types import Amount
from tests.framework.db_lock import PG_URL, foreign_lock
from tests.ledger.harness import Chain, job_spec, make_genesis

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
        return
    engine = sa.create_engine(PG_URL)
    metadata.drop_all(engine)  # a clean database per test (fails loudly if PG is down)
    engine.dispose()
    yield PG_URL
    engine = sa.create_engine(PG_URL)
    metadata.drop_all(engine)
    engine.dispose()


def test_blocks_and_state_survive_reopen(db_url: str) -> None:
    chain = Chain(url=db_url)
    post = chain.tx("submitter", PostJob(job_spec()))
    chain.block(chain.tx("alice", Transfer(chain.addr("bob"), Amount(7))), post)
    chain.block(chain.claim("alice", post.hash, 0.3))
    digest, height, root = chain.state.digest(), chain.state.height, chain.state.state_root
    assert chain.ledger is not None
    chain.ledger.close()
    reopened = Ledger.open(db_url, chain.genesis)
    assert (reopened.state.height, reopened.state.state_root) == (height, root)
    assert reopened.state.digest() == digest
    stored = reopened.storage.block(2)
    assert stored is not None and stored.hash == chain.blocks[1].hash
    assert reopened.storage.tx_location(post.hash) == (1, 1)
    reopened.close()


def test_wrong_genesis_is_refused(db_url: str) -> None:
    chain = Chain(url=db_url)
    assert chain.ledger is not None
    chain.ledger.close()
    other, _ = make_genesis(chain_id="another-chain")
    with pytest.raises(GenesisMismatch):
        Ledger.open(db_url, other)


def test_failed_commit_leaves_no_half_block(db_url: str) -> None:
    """[STORE-ATOMIC.1] A fault in the middle of a block's write commits nothing."""
    chain = Chain(url=db_url)
    assert chain.ledger is not None
    chain.block(chain.tx("alice", Transfer(chain.addr("bob"), Amount(1))))
    before = (chain.state.height, chain.state.digest())
    engine = chain.ledger.storage.engine

    def explode(conn, cursor, statement, params, context, executemany):  # type: ignore[no-untyped-def]
        if "INSERT INTO state" in statement:
            raise RuntimeError("injected fault: disk gone")

    sa.event.listen(engine, "before_cursor_execute", explode)
    tx = chain.tx("bob", Transfer(chain.addr("carol"), Amount(2)))
    block, _, _ = build_block(chain.state, [tx], chain.now + 1000, chain.addr("v0"),
                              chain.cache)
    with pytest.raises((StorageError, RuntimeError)):
        chain.ledger.apply(block)
    sa.event.remove(engine, "before_cursor_execute", explode)
    assert (chain.state.height, chain.state.digest()) == before  # memory untouched
    fresh = chain.ledger.storage.load_state()
    assert (fresh.height, fresh.digest()) == before  # disk untouched
    assert chain.ledger.storage.block(block.header.height) is None
    chain.ledger.apply(block)  # and the same block applies once the fault is gone
    assert chain.state.height == before[0] + 1


def test_a_foreign_lock_defers_a_commit_and_changes_nothing(db_url: str) -> None:
    """[CONS-COMMIT.2] A block's write that meets a lock held by another client gives up
    after ``BUSY_TIMEOUT_SECONDS`` with ``StorageBusy`` (consensus retries it later), in
    memory and on disk nothing changed, and the same block commits once the lock is gone.
    On PostgreSQL the write waited for ever before the node set ``lock_timeout``: the
    node's event loop, API included, froze while an operator's lock lasted."""
    chain = Chain(url=db_url)
    assert chain.ledger is not None
    ledger = chain.ledger
    chain.block(chain.tx("alice", Transfer(chain.addr("bob"), Amount(1))))
    before = (chain.state.height, chain.state.digest())
    tx = chain.tx("bob", Transfer(chain.addr("carol"), Amount(2)))
    block, _, _ = build_block(chain.state, [tx], chain.now + 1000, chain.addr("v0"),
                              chain.cache)
    outcome: list[BaseException | None] = []

    def commit() -> None:
        try:
            ledger.apply(block)
            outcome.append(None)
        except BaseException as e:  # reported to the test's thread below
            outcome.append(e)

    with foreign_lock(db_url):
        writer = threading.Thread(target=commit, daemon=True)
        writer.start()
        writer.join(60)  # liveness, not timing: a write that waits for ever never returns
        assert outcome, "the write is still waiting on the foreign lock"
        assert isinstance(outcome[0], StorageBusy), outcome
        assert (chain.state.height, chain.state.digest()) == before  # memory untouched
    fresh = ledger.storage.load_state()
    assert (fresh.height, fresh.digest()) == before  # disk untouched
    assert ledger.storage.block(block.header.height) is None
    ledger.apply(block)
    assert chain.state.height == before[0] + 1


def test_a_full_disk_is_storage_full_a_kind_of_busy() -> None:
    """[NODE-APP.3] SQLite's ``SQLITE_FULL`` and PostgreSQL's ``disk_full`` (53100) are
    ``StorageFull``, a ``StorageBusy``: nothing was written and consensus waits it out as a
    lock (the real disk: tests/reliability/test_resource_faults.py, a 48 MiB tmpfs filled
    under a node); any other failure stays a ``StorageError``."""
    import sqlite3

    import psycopg2.errors

    from chain.storage import StorageFull

    storage = Storage("sqlite://")

    def failing(orig: Exception) -> type[StorageError]:
        with pytest.raises(StorageError) as caught, storage._write():
            raise sa.exc.OperationalError("INSERT", {}, orig)
        return type(caught.value)

    assert failing(sqlite3.OperationalError("database or disk is full")) is StorageFull
    assert failing(psycopg2.errors.DiskFull("could not extend file")) is StorageFull
    assert failing(sqlite3.OperationalError("database is locked")) is StorageBusy
    assert failing(sqlite3.OperationalError("disk I/O error")) is StorageError
    assert issubclass(StorageFull, StorageBusy)


def test_postgres_lock_timeout_joins_the_urls_own_options() -> None:
    """The URL's own libpq ``options`` are kept, ``lock_timeout`` after them; SQLite and
    other PostgreSQL drivers get no such argument."""
    from chain.storage import _postgres_args

    assert _postgres_args("postgresql+psycopg2://u:p@h/db") == {
        "options": f"-c lock_timeout={int(BUSY_TIMEOUT_SECONDS * 1000)}"}
    assert _postgres_args("postgresql://u:p@h/db?options=-c%20search_path%3Dlc")["options"] \
        == f"-c search_path=lc -c lock_timeout={int(BUSY_TIMEOUT_SECONDS * 1000)}"
    assert _postgres_args("sqlite:///x.db") == {}
    assert _postgres_args("postgresql+pg8000://u:p@h/db") == {}


def test_unreachable_database_is_a_clear_error() -> None:
    with pytest.raises(StorageError, match="cannot open database"):
        Storage("postgresql+psycopg2://nobody:pw@127.0.0.1:1/none")


@pytest.mark.parametrize("seed", range(6))
def test_kill_during_commits_recovers_consistent_state(tmp_path: Path, seed: int) -> None:
    """SIGKILL a process that commits blocks as fast as it can, at a random moment; the
    reopened database equals a replay of its own stored blocks."""
    url = sqlite_url(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "tests.ledger.commit_loop", url, str(seed)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
    time.sleep(random.Random(seed).uniform(0.2, 1.0))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    genesis, _ = make_genesis()
    storage = Storage(url)
    height = storage.height()
    assert height > 0, "the writer never committed a block"
    recovered = storage.load_state()
    replay = genesis_state(genesis)
    for h in range(1, height + 1):
        block = storage.block(h)
        assert block is not None
        advance(replay, block, apply_block(replay, block))
    assert recovered.state_root == replay.state_root
    assert recovered.digest() == replay.digest()
    assert recovered.total_credits() == recovered.supply
    storage.close()
