"""Durable storage on SQLAlchemy 2 Core [STORE-*]: SQLite (WAL) by default, PostgreSQL by URL.

A block, its transaction index, its state changes and the new chain tip are
written in ONE database transaction [STORE-ATOMIC.1], so a crash between
blocks can never leave a half-applied block: on restart the node sees either
the whole block or none of it.

State is kept as current values only (table ``state``); what grows with the
chain is ``blocks`` and ``txs``, which ``prune_blocks`` trims from below in
bounded transactions, recording the oldest height kept as ``base_height``
[STORE-PRUNE.2-3].
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from chain.blocks import Block
from chain.encoding import decode, encode
from chain.errors import ChainError
from chain.state import Change, State, decode_record, encode_record
from chain.types import Hash32, Height, TimeMs

metadata = sa.MetaData()

meta_table = sa.Table(
    "meta", metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.LargeBinary, nullable=False),
)
blocks_table = sa.Table(
    "blocks", metadata,
    sa.Column("height", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("hash", sa.LargeBinary(32), nullable=False, unique=True),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("certificate", sa.LargeBinary, nullable=True),
)
txs_table = sa.Table(
    "txs", metadata,
    sa.Column("hash", sa.LargeBinary(32), primary_key=True),
    sa.Column("height", sa.BigInteger, nullable=False),
    sa.Column("idx", sa.Integer, nullable=False),
)
txs_height_index = sa.Index("txs_height", txs_table.c.height)
"""Lets pruning delete the index rows below a height without scanning every row."""
state_table = sa.Table(
    "state", metadata,
    sa.Column("tbl", sa.String(32), primary_key=True),
    sa.Column("key", sa.LargeBinary, primary_key=True),
    sa.Column("value", sa.LargeBinary, nullable=False),
)
walk_table = sa.Table(
    "walk", metadata,
    sa.Column("height", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("entry", sa.LargeBinary, nullable=False),
)
"""[SNAP-WALK.3] The walk entries of the heights whose next validator set changed: never
pruned (a few per set change), served to nodes that state-sync [WIRE-SNAP.3]."""

# The statements a node runs every block or every API read, built once with bound
# parameters: building ``table.c.key == key`` anew costs SQLAlchemy about 0.1 ms each time
# (coercion and a fresh cache key), and an empty block's commit built six of them (measured:
# the ledger's CPU per empty block 2.32 -> 0.91 ms; a node's, bench/devnet.py's idle phase,
# about 10 % less).
_META_VALUE = sa.select(meta_table.c.value).where(meta_table.c.key == sa.bindparam("k"))
_META_SET = (meta_table.update().where(meta_table.c.key == sa.bindparam("k"))
             .values(value=sa.bindparam("v")))
_BLOCK_INSERT = blocks_table.insert()
_BLOCK_DATA = (sa.select(blocks_table.c.data, blocks_table.c.certificate)
               .where(blocks_table.c.height == sa.bindparam("h")))
_BLOCKS_RANGE = (sa.select(blocks_table.c.data, blocks_table.c.certificate)
                 .where(blocks_table.c.height >= sa.bindparam("lo"))
                 .where(blocks_table.c.height < sa.bindparam("hi"))
                 .order_by(blocks_table.c.height))
_TX_LOCATION = (sa.select(txs_table.c.height, txs_table.c.idx)
                .where(txs_table.c.hash == sa.bindparam("tx")))
_STATE_DELETE = state_table.delete().where((state_table.c.tbl == sa.bindparam("t"))
                                           & (state_table.c.key == sa.bindparam("k")))


class StorageError(ChainError):
    code = "storage_error"


class StorageBusy(StorageError):
    """Another connection holds the database lock; nothing was written, try again later."""

    code = "storage_busy"


class StorageFull(StorageBusy):
    """The disk (or the database's quota) is full; nothing was written, try again once
    space is freed [NODE-APP.3]. A ``StorageBusy``: every caller that waits out a lock
    waits out a full disk the same way."""

    code = "storage_full"


PRUNE_BATCH_HEIGHTS = 1_000
"""[STORE-PRUNE.3] Heights deleted per database transaction: about 1 MB of empty blocks, a
few milliseconds on SQLite, so a prune never holds the write lock a commit waits for long."""
VACUUM_SLACK_PAGES = 1_024
"""SQLite: free pages kept for the next blocks to reuse; beyond that, pruning hands them back
to the file system (``incremental_vacuum``) on databases created with auto_vacuum."""

BUSY_TIMEOUT_SECONDS = 2.0
"""How long one statement waits for a lock held elsewhere (SQLite's busy timeout,
PostgreSQL's ``lock_timeout``). Writes run on the node's event loop, so this bounds how
long a foreign lock can freeze it per attempt; consensus retries a deferred commit later
[CONS-COMMIT.2]. PostgreSQL's own default is to wait for ever: a table locked by an
operator's ``LOCK TABLE``, ``VACUUM FULL`` or migration froze the node, API included,
until it was released."""


def _is_full(error: sa.exc.SQLAlchemyError) -> bool:
    """SQLite's ``SQLITE_FULL``; PostgreSQL's ``disk_full`` (SQLSTATE 53100) or a file it
    could not extend."""
    orig = getattr(error, "orig", error)
    text = str(orig).lower()
    return (getattr(orig, "sqlstate", None) == "53100" or getattr(orig, "pgcode", None) == "53100"
            or type(orig).__name__ == "DiskFull"
            or "database or disk is full" in text or "no space left on device" in text)


def _is_busy(error: sa.exc.SQLAlchemyError) -> bool:
    text = str(getattr(error, "orig", error)).lower()
    return isinstance(error, sa.exc.OperationalError) and (
        "database is locked" in text or "database table is locked" in text
        or "busy" in text or "lock timeout" in text or "could not obtain lock" in text
    )


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{(data_dir / 'chain.sqlite3').resolve()}"


def _make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_SECONDS})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            # A no-op on a database that has tables already; a new one can give pages back.
            cur.execute("PRAGMA auto_vacuum=INCREMENTAL")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")  # a committed block survives power loss
            cur.close()

        return engine
    return sa.create_engine(url, pool_pre_ping=True, connect_args=_postgres_args(url))


def _postgres_args(url: str) -> dict[str, Any]:
    """libpq's start-up ``options`` with ``lock_timeout`` (a session setting from the first
    statement on, which no rollback undoes), after any the URL's own ``options`` give;
    nothing for a driver that does not take them."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() != "postgresql" or \
            parsed.get_driver_name() not in ("psycopg2", "psycopg"):  # both pass libpq's
        return {}
    own = parsed.query.get("options", "")
    own = " ".join(own) if isinstance(own, tuple) else own
    lock = f"-c lock_timeout={int(BUSY_TIMEOUT_SECONDS * 1000)}"
    return {"options": f"{own} {lock}".strip()}


def _upsert(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    dialect = conn.dialect.name
    if dialect == "sqlite":
        conn.exec_driver_sql("INSERT INTO state (tbl, key, value) VALUES (?, ?, ?) "
                             "ON CONFLICT (tbl, key) DO UPDATE SET value = excluded.value",
                             [(r["tbl"], r["key"], r["value"]) for r in rows])
        return
    if dialect != "postgresql":
        raise StorageError(f"unsupported database {dialect!r} (use sqlite or postgresql)")
    from sqlalchemy.dialects.postgresql import insert

    stmt = insert(state_table)
    conn.execute(stmt.on_conflict_do_update(index_elements=["tbl", "key"],
                                            set_={"value": stmt.excluded.value}), rows)


class Storage:
    """The node's database. Only ``Ledger`` writes to it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._base_height: int | None = None
        """Cached: only this object writes ``base_height`` (status reads it every block)."""
        try:
            self.engine = _make_engine(url)
            metadata.create_all(self.engine)
            txs_height_index.create(self.engine, checkfirst=True)  # older databases lack it
        except sa.exc.SQLAlchemyError as e:
            raise StorageError(f"cannot open database {_redact(url)}: {e.__class__.__name__}: "
                               f"{str(e).splitlines()[0]}") from e

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> Storage:
        data_dir.mkdir(parents=True, exist_ok=True)
        return cls(sqlite_url(data_dir))

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as conn:
                yield conn
        except sa.exc.SQLAlchemyError as e:
            kind = (StorageFull if _is_full(e) else StorageBusy if _is_busy(e)
                    else StorageError)
            raise kind(f"database write failed, nothing was committed: "
                       f"{str(e).splitlines()[0]}") from e

    # --- writes -------------------------------------------------------------------------

    def init_genesis(self, genesis_hash: Hash32, state: State) -> None:
        rows = [{"tbl": t, "key": k, "value": encode_record(t, v)}
                for t, table in state.tables.items() for k, v in table.items()]
        with self._write() as conn:
            if conn.execute(sa.select(meta_table.c.key)).first() is not None:
                raise StorageError("database already initialised")
            _upsert(conn, rows)
            self._put_meta(conn, state, genesis_hash=genesis_hash)

    def init_snapshot(self, genesis_hash: Hash32, state: State, walk: list[tuple[int, bytes]],
                      *, replace_genesis: bool = False) -> None:
        """[SNAP-RESTORE.1] A database that starts at a verified snapshot's height: its
        records, tip and walk entries, and no block (the base is the height after).
        ``replace_genesis``: the database may hold the genesis state only, replaced here in
        the same transaction."""
        rows = [{"tbl": t, "key": k, "value": encode_record(t, v)}
                for t, table in state.tables.items() for k, v in table.items()]
        with self._write() as conn:
            tip = self._meta(conn, "height")
            if replace_genesis and tip == 0:
                for table in (state_table, meta_table, walk_table):
                    conn.execute(table.delete())
            elif conn.execute(sa.select(meta_table.c.key)).first() is not None:
                raise StorageError(f"database already holds a chain at height {tip}: state "
                                   "sync needs one at genesis")
            _upsert(conn, rows)
            self._put_meta(conn, state, genesis_hash=genesis_hash)
            self._set_meta(conn, "base_height", int(state.height) + 1)
            if walk:
                conn.execute(walk_table.insert(), [{"height": h, "entry": e} for h, e in walk])
        self._base_height = None

    def walk_entries(self, above: int, limit: int) -> list[bytes]:
        """[SNAP-WALK.3] Stored walk entries of heights above ``above``, ascending."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(walk_table.c.entry).where(walk_table.c.height > above)
                                .order_by(walk_table.c.height).limit(limit)).all()
        return [bytes(r[0]) for r in rows]

    def commit_block(self, block: Block, changes: list[Change], state_root: Hash32,
                     certificate: bytes | None = None, walk_entry: bytes | None = None) -> None:
        """[STORE-ATOMIC.1] Block, index, state changes and tip in one transaction (and the
        block's walk entry when its next validator set changed [SNAP-WALK.3])."""
        upserts = [{"tbl": c.table, "key": c.key, "value": c.value}
                   for c in changes if c.value is not None]
        deletes = [{"t": c.table, "k": c.key} for c in changes if c.value is None]
        h = block.header
        with self._write() as conn:
            tip = self._meta(conn, "height")
            if tip is None or tip + 1 != h.height:
                raise StorageError(f"block {h.height} does not follow stored tip {tip}")
            conn.execute(_BLOCK_INSERT, [{"height": h.height, "hash": block.hash,
                                          "data": block.encode(), "certificate": certificate}])
            if block.txs:
                if conn.dialect.name == "sqlite":  # thousands of rows: skip SQLAlchemy's binding
                    conn.exec_driver_sql("INSERT INTO txs (hash, height, idx) VALUES (?, ?, ?)",
                                         [(tx.hash, h.height, i)
                                          for i, tx in enumerate(block.txs)])
                else:
                    conn.execute(txs_table.insert(),
                                 [{"hash": tx.hash, "height": h.height, "idx": i}
                                  for i, tx in enumerate(block.txs)])
            _upsert(conn, upserts)
            if walk_entry is not None:
                conn.execute(walk_table.insert(), [{"height": h.height, "entry": walk_entry}])
            if deletes:
                conn.execute(_STATE_DELETE, deletes)
            conn.execute(_META_SET, [{"k": key, "v": encode(value)} for key, value in (
                ("height", h.height), ("block_hash", block.hash), ("time_ms", h.time_ms),
                ("state_root", state_root))])

    def prune_blocks(self, below_height: int, *, batch: int = PRUNE_BATCH_HEIGHTS,
                     max_batches: int | None = None) -> int:
        """[STORE-PRUNE.2-3] Deletes blocks and index rows below ``below_height``; returns the new
        base height (the oldest block kept).

        Each batch of at most ``batch`` heights is one transaction that also records the new
        ``base_height``, so a crash leaves the old base or the new one, never a gap the base
        does not show. ``max_batches`` bounds the work of one call (the node prunes a backlog
        a batch per commit). The tip block is never deleted.
        """
        if batch < 1:
            raise StorageError(f"prune batch must be at least 1, got {batch}")
        done = 0
        while max_batches is None or done < max_batches:
            with self._write() as conn:
                tip = int(self._meta(conn, "height") or 0)
                if below_height > tip:
                    raise StorageError(f"cannot prune below height {below_height}: the tip is "
                                       f"{tip} and the tip block is always kept")
                base = self._base(conn)
                upto = min(below_height, base + batch)
                if upto <= base:
                    return base
                conn.execute(blocks_table.delete().where(blocks_table.c.height < upto))
                conn.execute(txs_table.delete().where(txs_table.c.height < upto))
                self._set_meta(conn, "base_height", upto)
            self._base_height = upto
            done += 1
            self._give_back_pages()
        return self.base_height()

    def _give_back_pages(self) -> None:
        """SQLite only: freed pages beyond the slack go back to the file system."""
        if self.engine.dialect.name != "sqlite":
            return  # PostgreSQL's autovacuum marks dead rows for reuse
        with self.engine.connect() as conn:
            if conn.exec_driver_sql("PRAGMA auto_vacuum").scalar() != 2:  # 2 = incremental
                return  # an older file: freed pages are reused by new blocks, not returned
            free = int(conn.exec_driver_sql("PRAGMA freelist_count").scalar() or 0)
            conn.rollback()
            if free > VACUUM_SLACK_PAGES:
                # executescript steps the pragma to its end (execute frees one page per call)
                raw = conn.connection.dbapi_connection
                assert raw is not None
                raw.executescript(f"PRAGMA incremental_vacuum({free - VACUUM_SLACK_PAGES});")

    def put_certificate(self, height: int, certificate: bytes) -> None:
        with self._write() as conn:
            conn.execute(blocks_table.update().where(blocks_table.c.height == height),
                         {"certificate": certificate})

    def _put_meta(self, conn: Connection, state: State, genesis_hash: Hash32) -> None:
        rows = {"chain_id": state.chain_id, "genesis_hash": genesis_hash,
                "height": state.height, "block_hash": state.block_hash,
                "time_ms": state.time_ms, "state_root": state.state_root}
        conn.execute(meta_table.insert(), [{"key": k, "value": encode(v)} for k, v in rows.items()])

    # --- reads --------------------------------------------------------------------------

    def _meta(self, conn: Connection, key: str) -> Any:
        row = conn.execute(_META_VALUE, {"k": key}).first()
        return None if row is None else decode(row[0])

    def _set_meta(self, conn: Connection, key: str, value: Any) -> None:
        updated = conn.execute(_META_SET, {"k": key, "v": encode(value)})
        if updated.rowcount == 0:
            conn.execute(meta_table.insert(), [{"key": key, "value": encode(value)}])

    def _base(self, conn: Connection) -> int:
        return int(self._meta(conn, "base_height") or 1)

    def base_height(self) -> int:
        """[STORE-PRUNE.2] The oldest height whose block is stored (1 on an unpruned node)."""
        if self._base_height is None:
            with self.engine.connect() as conn:
                self._base_height = self._base(conn)
        return self._base_height

    def meta(self, key: str) -> Any:
        with self.engine.connect() as conn:
            return self._meta(conn, key)

    def is_empty(self) -> bool:
        return self.meta("height") is None

    def load_state(self) -> State:
        with self.engine.connect() as conn:
            chain_id = self._meta(conn, "chain_id")
            if chain_id is None:
                raise StorageError("database holds no chain")
            state = State(chain_id=chain_id, height=Height(self._meta(conn, "height")),
                          block_hash=Hash32(self._meta(conn, "block_hash")),
                          time_ms=TimeMs(self._meta(conn, "time_ms")),
                          state_root=Hash32(self._meta(conn, "state_root")))
            for tbl, key, value in conn.execute(sa.select(state_table)):
                state.tables[tbl][bytes(key)] = decode_record(tbl, bytes(value))
        return state

    def height(self) -> int:
        return int(self.meta("height") or 0)

    def block_data(self, height: int) -> tuple[bytes, bytes | None] | None:
        with self.engine.connect() as conn:
            row = conn.execute(_BLOCK_DATA, {"h": height}).first()
        if row is None:
            return None
        return bytes(row[0]), None if row[1] is None else bytes(row[1])

    def block(self, height: int) -> Block | None:
        found = self.block_data(height)
        return None if found is None else Block.decode(found[0])

    def blocks_range(self, start: int, count: int) -> list[tuple[bytes, bytes | None]]:
        with self.engine.connect() as conn:
            rows = conn.execute(_BLOCKS_RANGE, {"lo": start, "hi": start + count}).all()
        return [(bytes(d), None if c is None else bytes(c)) for d, c in rows]

    def tx_location(self, tx_hash: bytes) -> tuple[int, int] | None:
        with self.engine.connect() as conn:
            row = conn.execute(_TX_LOCATION, {"tx": tx_hash}).first()
        return None if row is None else (int(row[0]), int(row[1]))


def _redact(url: str) -> str:
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<database url>"
