"""A real ``Ledger`` on a SQLite file whose every block carries a real commit certificate:
what a node stores, for state-sync tests and bench/statesync.py [SNAP-*].

Blocks are built and executed by ``chain.transition`` and committed through
``Ledger.commit_executed`` with precommits signed by every validator of the block's
height (keys looked up by public key, newcomers included), as consensus would.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from chain.blocks import Block
from chain.consensus.certificate import certificate_from_precommits
from chain.consensus.messages import PRECOMMIT, sign_vote
from chain.crypto import PrivateKey
from chain.genesis import Genesis
from chain.ledger import Ledger
from chain.storage import sqlite_url
from chain.transactions import SignedTransaction, sign_transaction
from chain.transition import BlockOutput, build_block
from chain.types import Address, Round, TimeMs


class CertifiedChain:
    def __init__(self, genesis: Genesis, keys: Iterable[PrivateKey], data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.genesis = genesis
        self.keys = {k.public_key: k for k in keys}
        self.ledger = Ledger.open(sqlite_url(data_dir), genesis)
        self.step_ms = 1_000
        self.last_output: BlockOutput | None = None
        self.certificates: dict[int, bytes] = {}

    @property
    def state(self):  # type: ignore[no-untyped-def]
        return self.ledger.state

    def sign(self, key: PrivateKey, body: object) -> SignedTransaction:
        nonce = self.state.account(key.address).nonce
        return sign_transaction(key, self.genesis.chain_id, nonce, body)

    def block(self, *txs: SignedTransaction, proposer: Address | None = None) -> Block:
        state = self.state
        validators = state.validators()
        proposer = proposer or next(iter(validators))
        block, output, dropped = build_block(state, txs, TimeMs(state.time_ms + self.step_ms),
                                             proposer, self.ledger.signatures)
        if dropped:
            raise AssertionError(f"dropped: {[(t.body, str(e)) for t, e in dropped]}")
        signers = [self.keys[v.pubkey] for v in validators.values()]
        certificate = certificate_from_precommits(
            sign_vote(k, self.genesis.chain_id, PRECOMMIT, block.header.height, Round(0),
                      block.hash) for k in signers).encode()
        self.ledger.commit_executed(block, output, certificate)
        self.last_output = output
        self.certificates[int(block.header.height)] = certificate
        return block

    def empty_blocks(self, count: int) -> None:
        for _ in range(count):
            self.block()
