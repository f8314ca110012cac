"""A long version 3 chain with realistic state, for bench/statesync.py (issue 48 §2).

``build_chain`` makes a real ``Ledger`` on SQLite (tests/framework/certified_chain.py)
whose every block carries a real commit certificate, signed by every validator of its
height:

1. *set changes*: governance adds ``set_changes`` validators one by one
   (``GovernancePropose`` add_validator by v0, ``GovernanceApprove`` by every other
   validator; with one genesis validator the first passes at once), each waited out
   until the new set holds [GOV-*] [SNAP-WALK.3];
2. *accounts*: transfers from one funded account to fresh addresses,
   ``transfers_per_block`` a block;
3. *jobs*: ``PostJob`` of train/v1 (tests/ledger/harness.py ``job_spec``), train/v3
   (tests/train/holdout ``v3_spec``) and federated/v1 (tests/federated ``fed_job_spec``)
   in turn, ``jobs_per_block`` a block, each expiring a minute after it is posted (so
   the empty blocks after it run their expiries);
4. empty blocks up to ``blocks``, committed by ``BatchedCommits``: the same blocks,
   executed and certified the same way, written ``batch`` blocks per SQLite
   transaction instead of one (the only thing the fast path changes).

Every block, busy or empty, is checked again when bench/statesync.py replays the chain
from genesis (each certificate verified, each block re-executed to its header's root).
"""

from __future__ import annotations

import dataclasses
import hashlib
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from chain.blocks import Block
from chain.consensus.certificate import certificate_from_precommits
from chain.consensus.messages import PRECOMMIT, sign_vote
from chain.crypto import PrivateKey
from chain.encoding import encode
from chain.governance.bodies import GovernanceAction, GovernanceApprove, GovernancePropose
from chain.jobspec import JobSpec
from chain.ledger import Ledger, walk_entry
from chain.statesync.roots import DIGEST_INTERVAL
from chain.train.bodies import PostJob
from chain.transactions import Body, SignedTransaction, Transfer, sign_transaction
from chain.transition import BlockOutput, advance, build_block
from chain.types import Address, Amount, Hash32, Round, TimeMs
from tests.federated.fed_ledger_story import fed_job_spec
from tests.framework.certified_chain import CertifiedChain
from tests.ledger.harness import job_spec, make_genesis
from tests.train.holdout.test_holdout import v3_spec

FUNDS = 10**12
"""Every genesis key's balance: the funder pays every transfer, the poster every escrow."""
JOB_LIFETIME_MS = 60_000
BATCH = 1_000
"""Empty blocks per SQLite transaction on the fast path."""


@dataclass
class BuiltChain:
    chain: CertifiedChain
    data_dir: Path
    accounts: int
    """Fresh addresses funded by transfers (beyond the genesis keys)."""
    jobs: dict[str, int]
    """Jobs posted, by kind."""
    set_changes: int
    busy_blocks: int
    """Blocks up to the last one with a transaction."""
    build_s: float

    @property
    def ledger(self) -> Ledger:
        return self.chain.ledger


class BatchedCommits:
    """Commits executed, certified blocks to the ledger's SQLite file ``batch`` at a time.

    Writes exactly the rows ``Storage.commit_block`` writes (the block with its
    certificate, its transaction index, its state changes, its walk entry, the tip in
    ``meta``) but for several blocks in one transaction, then advances the ledger's
    state in memory as ``Ledger.commit_executed`` does. A bench-only shortcut for
    building a long chain: one fsync per batch instead of one per block.
    """

    def __init__(self, ledger: Ledger, db_path: Path, batch: int = BATCH) -> None:
        self.ledger = ledger
        self.batch = batch
        self.db = sqlite3.connect(db_path, isolation_level=None, timeout=10.0)
        self.db.execute("PRAGMA synchronous=FULL")
        self.pending = 0

    def commit(self, block: Block, output: BlockOutput, certificate: bytes) -> None:
        state, h = self.ledger.state, block.header
        if h.height != state.height + 1 or h.prev_hash != state.block_hash:
            raise ValueError("the executed block does not extend the committed state")
        if self.pending == 0:
            self.db.execute("BEGIN IMMEDIATE")
        db = self.db
        db.execute("INSERT INTO blocks (height, hash, data, certificate) VALUES (?, ?, ?, ?)",
                   (h.height, block.hash, block.encode(), certificate))
        if block.txs:
            db.executemany("INSERT INTO txs (hash, height, idx) VALUES (?, ?, ?)",
                           [(tx.hash, h.height, i) for i, tx in enumerate(block.txs)])
        upserts = [(c.table, c.key, c.value) for c in output.changes if c.value is not None]
        if upserts:
            db.executemany("INSERT INTO state (tbl, key, value) VALUES (?, ?, ?) ON CONFLICT "
                           "(tbl, key) DO UPDATE SET value = excluded.value", upserts)
        deletes = [(c.table, c.key) for c in output.changes if c.value is None]
        if deletes:
            db.executemany("DELETE FROM state WHERE tbl = ? AND key = ?", deletes)
        entry = walk_entry(block, output, certificate)
        if entry is not None:
            db.execute("INSERT INTO walk (height, entry) VALUES (?, ?)", (h.height, entry))
        db.executemany("UPDATE meta SET value = ? WHERE key = ?",
                       [(encode(h.height), "height"), (encode(block.hash), "block_hash"),
                        (encode(h.time_ms), "time_ms"), (encode(output.state_root),
                                                          "state_root")])
        advance(state, block, output)
        self.ledger.last_output = output
        self.pending += 1
        if self.pending >= self.batch:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.db.execute("COMMIT")
            self.pending = 0

    def close(self) -> None:
        self.flush()
        self.db.close()


def certify(chain: CertifiedChain, *txs: SignedTransaction) -> tuple[Block, BlockOutput, bytes]:
    """The next block, executed, and its certificate signed by every validator of its height
    (what ``CertifiedChain.block`` does, short of committing)."""
    state = chain.state
    validators = state.validators()
    block, output, dropped = build_block(state, txs, TimeMs(state.time_ms + chain.step_ms),
                                         next(iter(validators)), chain.ledger.signatures)
    if dropped:
        raise AssertionError(f"dropped: {[(t.body, str(e)) for t, e in dropped]}")
    certificate = certificate_from_precommits(
        sign_vote(chain.keys[v.pubkey], chain.genesis.chain_id, PRECOMMIT, block.header.height,
                  Round(0), block.hash) for v in validators.values()).encode()
    return block, output, certificate


def fresh_address(i: int) -> Address:
    return Address(hashlib.sha256(b"statesync-bench-account:%d" % i).digest()[:20])


def _signed(chain: CertifiedChain, key: PrivateKey, bodies: list[Body]) -> list[
        SignedTransaction]:
    nonce = chain.state.account(key.address).nonce
    return [sign_transaction(key, chain.genesis.chain_id, nonce + i, body)
            for i, body in enumerate(bodies)]


def _add_validators(chain: CertifiedChain, keys: dict[str, PrivateKey], count: int) -> None:
    for i in range(1, count + 1):
        newcomer = keys[f"new{i}"]
        others = [k for k in chain.keys.values()
                  if k.address in chain.state.validators() and k.address != keys["v0"].address]
        propose = chain.sign(keys["v0"], GovernancePropose(
            GovernanceAction("add_validator", newcomer.public_key, 1)))
        chain.block(propose, *(chain.sign(k, GovernanceApprove(Hash32(propose.hash)))
                               for k in others))
        while newcomer.address not in chain.state.validators():
            chain.block()
        chain.block()  # the new set's first height, signed by it


def _job_specs(count: int, now_ms: int) -> list[tuple[str, JobSpec]]:
    expiry = TimeMs(now_ms + JOB_LIFETIME_MS)
    makers: list[tuple[str, Callable[[], JobSpec]]] = [
        ("train/v1", lambda: job_spec(expiry_ms=expiry)),
        ("train/v3", lambda: dataclasses.replace(v3_spec(), expiry_ms=expiry)),
        ("federated/v1", lambda: dataclasses.replace(fed_job_spec(), expiry_ms=expiry)),
    ]
    out = []
    for i in range(count):
        kind, make = makers[i % len(makers)]
        out.append((kind, dataclasses.replace(make(), description=f"bench job {i}")))
    return out


def build_chain(root: Path, *, blocks: int, accounts: int, jobs: int, set_changes: int = 3,
                transfers_per_block: int = 2_000, jobs_per_block: int = 100,
                progress: Callable[[str], None] = print) -> BuiltChain:
    """A chain of ``blocks`` blocks (a multiple of the digest interval) in ``root``."""
    if blocks % DIGEST_INTERVAL:
        raise ValueError(f"--blocks must be a multiple of {DIGEST_INTERVAL} (a digest height)")
    started = time.perf_counter()
    outsiders = ("mallory", *(f"new{i}" for i in range(1, set_changes + 1)))
    genesis, keys = make_genesis(chain_id="statesync-bench", validators=1, balance=FUNDS,
                                 outsiders=outsiders, protocol_version=3)
    data_dir = root / "source"
    chain = CertifiedChain(genesis, keys.values(), data_dir)
    _add_validators(chain, keys, set_changes)
    funder, poster = keys["alice"], keys["submitter"]
    for first in range(0, accounts, transfers_per_block):
        bodies: list[Body] = [Transfer(fresh_address(i), Amount(1_000))
                                for i in range(first, min(first + transfers_per_block,
                                                          accounts))]
        chain.block(*_signed(chain, funder, bodies))
    posted: dict[str, int] = {}
    for first in range(0, jobs, jobs_per_block):
        specs = _job_specs(min(jobs_per_block, jobs - first), chain.state.time_ms)
        for kind, _ in specs:
            posted[kind] = posted.get(kind, 0) + 1
        chain.block(*_signed(chain, poster, [PostJob(spec) for _, spec in specs]))
    busy = int(chain.state.height)
    if busy >= blocks:
        raise ValueError(f"--blocks {blocks} leaves no room: the busy blocks take {busy}")
    progress(f"build: {busy} busy blocks ({accounts} accounts, {jobs} jobs, {set_changes} set "
             f"changes) in {time.perf_counter() - started:.1f}s")
    writer = BatchedCommits(chain.ledger, data_dir / "chain.sqlite3")
    report_every = max(blocks // 10, 1)
    try:
        while chain.state.height < blocks:
            writer.commit(*certify(chain))
            if chain.state.height % report_every == 0:
                progress(f"build: height {chain.state.height} "
                         f"({time.perf_counter() - started:.0f}s)")
    finally:
        writer.close()
    return BuiltChain(chain, data_dir, accounts, posted, set_changes, busy,
                      time.perf_counter() - started)
