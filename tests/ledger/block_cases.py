"""Block-level state-transition cases: one per rule of [BLOCK-APPLY.1].

Each ``case_*`` builds a pre-state (a genesis document plus the blocks applied
on it), one candidate block and what applying it must give: an
``InvalidBlock`` code (and for a bad transaction inside, the transaction's
own code and index), or the post-state root. ``test_invalid_blocks.py`` runs
every case and writes them all to ``protocol_spec/vectors/blocks.json``
(format: ``protocol_spec/vectors/README.md``). Every candidate is a valid
block except for the one fault named, so each case isolates one rule.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chain.blocks import Block, BlockHeader, tx_root
from chain.crypto import PrivateKey
from chain.errors import InvalidBlock
from chain.genesis import Genesis, genesis_state
from chain.records import Params
from chain.state import State
from chain.train.bodies import ClaimLoss, PostJob
from chain.transactions import SignedTransaction, Transfer, sign_transaction
from chain.transition import advance, apply_block, build_block, execute
from chain.types import Amount, Hash32, Height, TimeMs
from tests.ledger.harness import job_spec, make_genesis

CHAIN_ID = "vector-chain"
GENESES: dict[str, Params] = {
    "default": Params(),
    "max_2_txs": Params(max_block_txs=2),
    "max_400_bytes": Params(max_block_bytes=400),
}
"""The genesis documents the cases start from, by name: default parameters or one bound lowered."""


def vector_genesis(name: str) -> tuple[Genesis, dict[str, PrivateKey]]:
    """Validator ``v0``; members submitter, alice, bob, carol, dave, erin; 1,000 credits each."""
    return make_genesis(chain_id=CHAIN_ID, params=GENESES[name])


@dataclass(frozen=True, slots=True)
class BlockCase:
    """A pre-state, a block, and the outcome a conforming implementation must reach."""

    name: str
    rules: tuple[str, ...]
    description: str
    genesis: str
    """Key into ``GENESES``."""
    pre_blocks: tuple[Block, ...]
    block: Block
    error: str | None = None
    """The expected ``InvalidBlock`` code; None when the block is valid."""
    tx_index: int | None = None
    tx_error: str | None = None
    """For ``invalid_transaction``: the index and code of the transaction that fails."""

    def pre_state(self) -> State:
        """Genesis, then every pre-block applied as a validator applies it."""
        state = genesis_state(vector_genesis(self.genesis)[0])
        for block in self.pre_blocks:
            advance(state, block, apply_block(state, block))
        return state

    def post_state_root(self) -> Hash32:
        state = self.pre_state()
        return apply_block(state, Block.decode(self.block.encode())).state_root

    def to_vector(self) -> dict[str, Any]:
        pre = self.pre_state()
        out: dict[str, Any] = {
            "name": self.name, "rules": list(self.rules), "description": self.description,
            "genesis": self.genesis, "pre_blocks": [b.encode().hex() for b in self.pre_blocks],
            "pre_state": {"height": pre.height, "block_hash": pre.block_hash.hex(),
                          "time_ms": pre.time_ms, "state_root": pre.state_root.hex()},
            "block": self.block.encode().hex(),
        }
        if self.error is None:
            out["post"] = {"state_root": self.post_state_root().hex(),
                           "block_hash": self.block.hash.hex()}
        else:
            out["error"] = self.error
            if self.tx_error is not None:
                out["tx_index"], out["tx_error"] = self.tx_index, self.tx_error
        return out


# --- building blocks --------------------------------------------------------------------

@dataclass(slots=True)
class Scene:
    """A pre-state after one block of transfers, and the keys to sign more."""

    genesis: str
    keys: dict[str, PrivateKey]
    state: State
    pre_blocks: tuple[Block, ...]

    def transfer(self, sender: str, to: str, amount: int, nonce: int | None = None,
                 chain_id: str = CHAIN_ID) -> SignedTransaction:
        if nonce is None:
            nonce = self.state.account(self.keys[sender].address).nonce
        return sign_transaction(self.keys[sender], chain_id, nonce,
                                Transfer(self.keys[to].address, Amount(amount)))

    @property
    def next_time(self) -> TimeMs:
        return TimeMs(self.state.time_ms + 1_000)

    def honest(self, *txs: SignedTransaction) -> Block:
        """The block an honest proposer (v0) builds from ``txs``; all must be included."""
        block, _, dropped = build_block(self.state, txs, self.next_time, self.keys["v0"].address)
        if dropped:
            raise AssertionError(f"honest block dropped {[str(e) for _, e in dropped]}")
        return block

    def forged(self, txs: tuple[SignedTransaction, ...], **header: Any) -> Block:
        """A block over ``txs`` whose header is right except for the fields in ``header``.

        The state root is the one the transactions really give when they all apply;
        when one fails it is the root of the valid ones (what a careless proposer sends).
        """
        try:
            output, _, _ = execute(self.state, Height(self.state.height + 1), self.next_time,
                                   CHAIN_ID, txs)
            root = output.state_root
        except InvalidBlock:
            honest, _, _ = build_block(self.state, txs, self.next_time,
                                       self.keys["v0"].address)
            root = honest.header.state_root
        base = BlockHeader(CHAIN_ID, Height(self.state.height + 1), self.next_time,
                           self.state.block_hash, self.keys["v0"].address, tx_root(txs), root,
                           Hash32(b"\x00" * 32))
        return Block(dataclasses.replace(base, **header), txs)


def scene(genesis: str = "default") -> Scene:
    """Genesis, then block 1 in which alice sends bob 10: the tip every case extends."""
    g, keys = vector_genesis(genesis)
    state = genesis_state(g)
    first = Scene(genesis, keys, state, ())
    block = first.honest(first.transfer("alice", "bob", 10))
    advance(state, block, apply_block(state, block))
    return Scene(genesis, keys, state, (block,))


def case(sc: Scene, name: str, rules: tuple[str, ...], description: str, block: Block,
         error: str | None = None, tx_index: int | None = None,
         tx_error: str | None = None) -> BlockCase:
    return BlockCase(name, rules, description, sc.genesis, sc.pre_blocks, block, error,
                     tx_index, tx_error)


# --- the cases --------------------------------------------------------------------------

def case_valid_transfers() -> BlockCase:
    sc = scene()
    block = sc.honest(sc.transfer("bob", "carol", 5), sc.transfer("carol", "dave", 7))
    return case(sc, "valid_transfers", ("BLOCK-APPLY.1", "STATE-ROOT.1", "TX-TRANSFER.1"),
                "two transfers; the post-state root is the header's", block)


def case_valid_empty_block() -> BlockCase:
    sc = scene()
    return case(sc, "valid_empty_block", ("BLOCK-APPLY.1", "BLOCK-MERKLE.1", "STATE-ROOT.1"),
                "no transactions: tx_root is SHA-256(\"\"), no state changes", sc.honest())


def case_invalid_wrong_chain() -> BlockCase:
    sc = scene()
    block = sc.forged((sc.transfer("bob", "carol", 5),), chain_id="other-chain")
    return case(sc, "invalid_wrong_chain", ("BLOCK-APPLY.1",),
                "header names another chain id", block, "wrong_chain")


def case_invalid_wrong_height() -> BlockCase:
    sc = scene()
    block = sc.forged((sc.transfer("bob", "carol", 5),), height=Height(sc.state.height + 2))
    return case(sc, "invalid_wrong_height", ("BLOCK-APPLY.1",),
                "height skips one (tip + 2)", block, "wrong_height")


def case_invalid_wrong_prev_hash() -> BlockCase:
    sc = scene()
    genesis_hash = vector_genesis(sc.genesis)[0].hash
    block = sc.forged((sc.transfer("bob", "carol", 5),), prev_hash=genesis_hash)
    return case(sc, "invalid_wrong_prev_hash", ("BLOCK-APPLY.1",),
                "prev_hash is the genesis hash, not the tip's hash", block, "wrong_prev_hash")


def case_invalid_time_not_increasing() -> BlockCase:
    sc = scene()
    block = sc.forged((sc.transfer("bob", "carol", 5),), time_ms=sc.state.time_ms)
    return case(sc, "invalid_time_not_increasing", ("BLOCK-APPLY.1",),
                "time equals the tip's time (it must be greater)", block,
                "time_not_increasing")


def case_invalid_unknown_proposer() -> BlockCase:
    sc = scene()
    block = sc.forged((sc.transfer("bob", "carol", 5),), proposer=sc.keys["alice"].address)
    return case(sc, "invalid_unknown_proposer", ("BLOCK-APPLY.1",),
                "proposer is a member but not a validator", block, "unknown_proposer")


def case_invalid_too_many_txs() -> BlockCase:
    sc = scene("max_2_txs")
    txs = (sc.transfer("bob", "carol", 1), sc.transfer("carol", "dave", 1),
           sc.transfer("dave", "erin", 1))
    return case(sc, "invalid_too_many_txs", ("BLOCK-APPLY.1",),
                "3 transactions where max_block_txs is 2", sc.forged(txs), "too_many_txs")


def case_invalid_block_too_large() -> BlockCase:
    sc = scene("max_400_bytes")
    txs = (sc.transfer("bob", "carol", 1), sc.transfer("carol", "dave", 1),
           sc.transfer("dave", "erin", 1))
    return case(sc, "invalid_block_too_large", ("BLOCK-APPLY.1", "BLOCK-SIZE.1"),
                "transactions sum to more than max_block_bytes (400)", sc.forged(txs),
                "block_too_large")


def case_invalid_wrong_tx_root() -> BlockCase:
    sc = scene()
    txs = (sc.transfer("bob", "carol", 5), sc.transfer("carol", "dave", 7))
    block = sc.forged(txs, tx_root=tx_root(txs[::-1]))
    return case(sc, "invalid_wrong_tx_root", ("BLOCK-APPLY.1", "BLOCK-MERKLE.1"),
                "tx_root is the root of the transactions in the other order", block,
                "wrong_tx_root")


def case_invalid_state_root_mismatch() -> BlockCase:
    sc = scene()
    txs = (sc.transfer("bob", "carol", 5),)
    block = sc.forged(txs, state_root=sc.state.state_root)
    return case(sc, "invalid_state_root_mismatch", ("BLOCK-APPLY.1", "STATE-ROOT.1"),
                "state_root is the pre-state's root, not the root after the block", block,
                "state_root_mismatch")


def case_invalid_last_commit_hash() -> BlockCase:
    sc = scene()
    block = sc.forged((sc.transfer("bob", "carol", 5),),
                      last_commit_hash=Hash32(b"\x01" * 32))
    return case(sc, "invalid_last_commit_hash", ("BLOCK-LAST-COMMIT.1",),
                "last_commit_hash is not the empty hash (v1 carries no previous commit)",
                block, "bad_last_commit_hash")


def case_invalid_tx_bad_signature() -> BlockCase:
    sc = scene()
    bad = sc.transfer("carol", "dave", 7, chain_id="other-chain")
    block = sc.forged((sc.transfer("bob", "carol", 5), bad))
    return case(sc, "invalid_tx_bad_signature", ("BLOCK-APPLY.1", "TX-APPLY.1", "TX-SIG.1"),
                "the second transaction is signed for another chain", block,
                "invalid_transaction", 1, "bad_signature")


def case_invalid_tx_replayed_nonce() -> BlockCase:
    sc = scene()
    replay = sc.pre_blocks[0].txs[0]  # alice -> bob 10, already in block 1
    block = sc.forged((sc.transfer("bob", "carol", 5), replay))
    return case(sc, "invalid_tx_replayed_nonce", ("BLOCK-APPLY.1", "TX-NONCE.1"),
                "the second transaction replays block 1's transaction", block,
                "invalid_transaction", 1, "bad_nonce")


def case_invalid_tx_same_nonce_twice() -> BlockCase:
    sc = scene()
    block = sc.forged((sc.transfer("bob", "carol", 5), sc.transfer("bob", "dave", 5, nonce=0)))
    return case(sc, "invalid_tx_same_nonce_twice", ("BLOCK-APPLY.1", "TX-NONCE.1"),
                "two transactions of bob with nonce 0 in one block", block,
                "invalid_transaction", 1, "bad_nonce")


def case_invalid_tx_insufficient_balance() -> BlockCase:
    sc = scene()
    block = sc.forged((sc.transfer("bob", "carol", 5), sc.transfer("carol", "dave", 1_006)))
    return case(sc, "invalid_tx_insufficient_balance", ("BLOCK-APPLY.1", "TX-TRANSFER.1"),
                "carol sends 1 more credit than she holds after the first transfer", block,
                "invalid_transaction", 1, "insufficient_balance")


def case_invalid_tx_unknown_job() -> BlockCase:
    sc = scene()
    claim = sign_transaction(sc.keys["alice"], CHAIN_ID, 1,
                             ClaimLoss(Hash32(b"\x42" * 32), 0.5, Hash32(b"\x43" * 32)))
    block = sc.forged((claim,))
    return case(sc, "invalid_tx_unknown_job", ("BLOCK-APPLY.1", "JOB-CLAIM.1"),
                "a claim on a job that does not exist", block, "invalid_transaction", 0,
                "unknown_job")


def case_invalid_tx_quorum_too_high() -> BlockCase:
    sc = scene()
    post = sign_transaction(sc.keys["alice"], CHAIN_ID, 1, PostJob(job_spec(quorum=668)))
    block = sc.forged((post,))
    return case(sc, "invalid_tx_quorum_too_high", ("BLOCK-APPLY.1", "JOB-POST.1"),
                "a job asking for a quorum of 668 permille, one above the protocol maximum "
                "(THREAT-QUORUM.1)", block, "invalid_transaction", 0, "quorum_too_high")


def case_invalid_tx_supermajority_too_high() -> BlockCase:
    sc = scene()
    post = sign_transaction(sc.keys["alice"], CHAIN_ID, 1,
                            PostJob(job_spec(supermajority=1000)))
    block = sc.forged((post,))
    return case(sc, "invalid_tx_supermajority_too_high", ("BLOCK-APPLY.1", "JOB-POST.1"),
                "a job asking for a unanimous supermajority (1000 permille)", block,
                "invalid_transaction", 0, "supermajority_too_high")


def case_valid_post_at_the_largest_quorum() -> BlockCase:
    sc = scene()
    post = sign_transaction(sc.keys["alice"], CHAIN_ID, 1,
                            PostJob(job_spec(quorum=667, supermajority=667)))
    return case(sc, "valid_post_at_the_largest_quorum", ("BLOCK-APPLY.1", "JOB-POST.1"),
                "a job at the largest quorum and supermajority (667 permille each)",
                sc.honest(post))


CASES: tuple[Callable[[], BlockCase], ...] = (
    case_valid_transfers, case_valid_empty_block, case_invalid_wrong_chain,
    case_invalid_wrong_height, case_invalid_wrong_prev_hash, case_invalid_time_not_increasing,
    case_invalid_unknown_proposer, case_invalid_too_many_txs, case_invalid_block_too_large,
    case_invalid_wrong_tx_root, case_invalid_state_root_mismatch, case_invalid_last_commit_hash,
    case_invalid_tx_bad_signature, case_invalid_tx_replayed_nonce,
    case_invalid_tx_same_nonce_twice, case_invalid_tx_insufficient_balance,
    case_invalid_tx_unknown_job, case_invalid_tx_quorum_too_high,
    case_invalid_tx_supermajority_too_high, case_valid_post_at_the_largest_quorum,
)
"""Every case, in the order of the vector file."""
