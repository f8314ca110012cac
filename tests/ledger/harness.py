"""A small chain driver for ledger tests: named keys, auto nonces, one call per block."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import replace
from typing import Any

from chain.blocks import Block
from chain.context import TxContext
from chain.crypto import PrivateKey, address_to_text
from chain.errors import InvalidTransaction
from chain.genesis import Genesis, genesis_state
from chain.jobspec import JobSpec, ParamSpec, ResourceLimits, VotingParams
from chain.ledger import Ledger
from chain.records import Params
from chain.state import Overlay, State
from chain.train.bodies import (
    ClaimLoss,
    RevealModel,
    VoteCommit,
    VoteReveal,
    model_commitment,
    vote_commitment,
)
from chain.transactions import SignedTransaction, sign_transaction
from chain.transition import SignatureCache, advance, apply_block, apply_transaction, build_block
from chain.types import Address, Amount, Hash32, Height, TimeMs

GENESIS_TIME = 1_700_000_000_000
MEMBER_NAMES = ("submitter", "alice", "bob", "carol", "dave", "erin")


def make_genesis(chain_id: str = "test-chain", validators: int = 1,
                 members: tuple[str, ...] = MEMBER_NAMES, balance: int = 1_000,
                 outsiders: tuple[str, ...] = ("mallory",), params: Params | None = None,
                 verifiers: tuple[str, ...] | None = None, protocol_version: int = 1,
                 ) -> tuple[Genesis, dict[str, PrivateKey]]:
    """``verifiers`` None: every member (validators included) verifies from genesis."""
    keys = {f"v{i}": PrivateKey.from_seed(f"validator-{i}".encode()) for i in range(validators)}
    keys.update({n: PrivateKey.from_seed(n.encode()) for n in (*members, *outsiders)})
    doc = {
        "chain_id": chain_id,
        "genesis_time_ms": GENESIS_TIME,
        "validators": [{"pubkey": keys[f"v{i}"].public_key.hex(), "power": 1, "name": f"v{i}"}
                       for i in range(validators)],
        "members": [address_to_text(keys[n].address) for n in members],
        "balances": {address_to_text(k.address): balance for k in keys.values()},
        "params": {} if params is None else dataclasses.asdict(params),
        # Every member (validators included) verifies, so a test's voters are eligible
        # [GENESIS-VERIFIERS.1]; tests of the opt-in itself build their own genesis.
        "verifiers": [address_to_text(k.address) for n, k in keys.items()
                      if (n in verifiers if verifiers is not None
                          else n in members or n.startswith("v"))],
        **({"protocol_version": protocol_version} if protocol_version != 1 else {}),
    }
    return Genesis.from_json(doc), keys


def job_spec(bounty: int = 100, expiry_ms: int = GENESIS_TIME + 10_000, *,
             voter_reward: int = 6, max_turns: int = 3, tolerance: float = 0.01,
             quorum: int = 667, supermajority: int = 667, window_ms: int = 5_000) -> JobSpec:
    return JobSpec(
        kind="train/v1",
        image_digest=Hash32(b"\x11" * 32),
        image_blob=Hash32(b"\x12" * 32),
        image_ref="learningchain/job-template:latest",
        entry_points=(("evaluate", ("python", "/job/evaluate.py")),
                      ("train", ("python", "/job/train.py"))),
        limits=ResourceLimits(memory_mb=512, cpu_millis=1000, time_s=60, disk_mb=64),
        search_space=(ParamSpec("lr", "log_uniform", (1e-4, 1e-1)),
                      ParamSpec("hidden", "choice", (16, 32, 64))),
        bounty=Amount(bounty),
        expiry_ms=TimeMs(expiry_ms),
        loss_tolerance=tolerance,
        voting=VotingParams(window_ms, window_ms, window_ms, quorum, supermajority,
                            Amount(voter_reward), max_turns),
        description="test job",
    )


class Chain:
    """Drives a ledger (in memory, or on a real database when ``url`` is given)."""

    def __init__(self, validators: int = 1, url: str | None = None, **kw: Any) -> None:
        self._pending: list[SignedTransaction] = []
        self.genesis, self.keys = make_genesis(validators=validators, **kw)
        self.ledger: Ledger | None = None
        if url is not None:
            self.ledger = Ledger.open(url, self.genesis)
            self.state: State = self.ledger.state
        else:
            self.state = genesis_state(self.genesis)
        self.cache = SignatureCache()
        self.blocks: list[Block] = []
        self.salts: dict[tuple[bytes, str], bytes] = {}

    # keys and transactions ----------------------------------------------------------
    def addr(self, name: str) -> Address:
        return self.keys[name].address

    def balance(self, name: str) -> int:
        return self.state.account(self.addr(name)).balance

    def tx(self, name: str, body: Any, nonce: int | None = None) -> SignedTransaction:
        if nonce is None:
            nonce = self.state.account(self.addr(name)).nonce + sum(
                1 for t in self._pending if t.sender == self.addr(name))
        tx = sign_transaction(self.keys[name], self.state.chain_id, nonce, body)
        self._pending.append(tx)
        return tx

    @property
    def now(self) -> int:
        return self.state.time_ms

    # blocks ----------------------------------------------------------------------------
    def block(self, *txs: SignedTransaction, at: int | None = None, dt: int = 1_000) -> Block:
        """Builds and applies one block; every given transaction must be included."""
        time_ms = TimeMs(at if at is not None else self.state.time_ms + dt)
        proposer = self.addr("v0")
        block, output, dropped = build_block(self.state, txs, time_ms, proposer, self.cache)
        self._pending = []
        if dropped:
            raise AssertionError(f"dropped: {[(t.body, str(e)) for t, e in dropped]}")
        if self.ledger is not None:
            self.ledger.apply(block)
        else:
            output = apply_block(self.state, block, self.cache)  # the validators' side
            advance(self.state, block, output)
        self.blocks.append(block)
        return block

    def reject(self, tx: SignedTransaction, at: int | None = None) -> str:
        """Runs ``tx`` alone against the next block; returns the rejection code."""
        self._pending = [t for t in self._pending if t is not tx]
        view = Overlay(self.state)
        time_ms = TimeMs(at if at is not None else self.state.time_ms + 1_000)
        ctx = TxContext(self.state.chain_id, Height(self.state.height + 1), time_ms, 0, tx.hash)
        try:
            apply_transaction(view, tx, ctx, None)
        except InvalidTransaction as e:
            return e.code
        raise AssertionError(f"transaction was accepted: {tx.body}")

    # job helpers -----------------------------------------------------------------------
    def claim(self, name: str, job_id: bytes, loss: float, model: bytes | None = None
              ) -> SignedTransaction:
        model_hash = model or os.urandom(32)
        salt = os.urandom(32)
        self.salts[(job_id, name)] = model_hash + salt
        return self.tx(name, ClaimLoss(Hash32(job_id), loss,
                                       model_commitment(job_id, self.addr(name), model_hash, salt)))

    def reveal(self, name: str, job_id: bytes) -> SignedTransaction:
        secret = self.salts[(job_id, name)]
        return self.tx(name, RevealModel(Hash32(job_id), Hash32(secret[:32]), secret[32:]))

    def vote_commit(self, voter: str, job_id: bytes, claimer: str, valid: bool,
                    measured: float | None) -> SignedTransaction:
        salt = os.urandom(32)
        self.salts[(job_id, f"vote:{voter}")] = salt
        c = vote_commitment(job_id, self.addr(claimer), self.addr(voter), valid, measured, salt)
        return self.tx(voter, VoteCommit(Hash32(job_id), self.addr(claimer), c))

    def vote_reveal(self, voter: str, job_id: bytes, claimer: str, valid: bool,
                    measured: float | None) -> SignedTransaction:
        salt = self.salts.get((job_id, f"vote:{voter}"), b"\x00" * 32)
        return self.tx(voter, VoteReveal(Hash32(job_id), self.addr(claimer), valid, measured, salt))

    def job(self, job_id: bytes) -> Any:
        job = self.state.job(job_id)
        if job is None:
            raise AssertionError("no such job")
        return job

    def vote_round(self, job_id: bytes, claimer: str, votes: dict[str, tuple[bool, float | None]]
                   ) -> None:
        """All listed voters commit in one block and reveal in the next."""
        from chain.records import JobStatus

        self.block(*(self.vote_commit(v, job_id, claimer, ok, m) for v, (ok, m) in votes.items()))
        job = self.job(job_id)
        if job.status == JobStatus.VOTE_COMMIT:  # not every eligible voter committed
            self.block(at=job.phase_deadline_ms)
        self.block(*(self.vote_reveal(v, job_id, claimer, ok, m) for v, (ok, m) in votes.items()))


__all__ = ["GENESIS_TIME", "Chain", "job_spec", "make_genesis", "replace"]
