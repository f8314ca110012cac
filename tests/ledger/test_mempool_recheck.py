"""[MEMPOOL-RECHECK.2] Re-checking only what a block touched leaves the pool exactly as a
full re-check [MEMPOOL-RECHECK.1] does: the same pending transactions in the same order,
the same evictions, the same view of every account."""

from __future__ import annotations

import random

import pytest

from chain.mempool import Mempool
from chain.mempool_recheck import untouched
from chain.state import META_PROTOCOL_VERSION
from chain.transactions import SignedTransaction, Transfer, sign_transaction
from chain.transition import advance, apply_block, build_block
from chain.types import Address, Amount
from chain.verifiers.bodies import VerifierJoin
from tests.ledger.harness import MEMBER_NAMES, Chain

NAMES = (*MEMBER_NAMES, "mallory")


def _transfer(chain: Chain, sender: str, nonce: int, to: str, amount: int) -> SignedTransaction:
    return sign_transaction(chain.keys[sender], "test-chain", nonce,
                            Transfer(chain.addr(to), Amount(amount)))


def _scenario(seed: int) -> tuple[Chain, list[SignedTransaction], list[SignedTransaction]]:
    """Pending transfers among a few accounts, and a block that includes some of them
    (a prefix of each chosen sender's) and competes with others (a nonce spent on
    another transfer, a balance drained by a transfer that was not pending)."""
    rng = random.Random(seed)
    chain = Chain()
    names = list(NAMES)
    nonces = dict.fromkeys(names, 0)
    pending: list[SignedTransaction] = []
    for _ in range(rng.randrange(5, 40)):
        sender, to = rng.sample(names, 2)
        pending.append(_transfer(chain, sender, nonces[sender], to, rng.randrange(1, 200)))
        nonces[sender] += 1
    block_txs: list[SignedTransaction] = []
    taken = dict.fromkeys(names, 0)
    for tx in pending:
        name = next(n for n in names if chain.addr(n) == tx.sender)
        if taken[name] == tx.nonce and rng.random() < 0.5:
            block_txs.append(tx)
            taken[name] += 1
    for _ in range(rng.randrange(0, 3)):  # competing transfers the pool never saw
        sender, to = rng.sample(names, 2)
        block_txs.append(_transfer(chain, sender, taken[sender], to, rng.randrange(1, 900)))
        taken[sender] += 1
    return chain, pending, block_txs


@pytest.mark.parametrize("seed", range(60))
def test_mempool_recheck_2_skipping_untouched_transfers_changes_nothing(seed: int) -> None:
    chain, pending, block_txs = _scenario(seed)
    pools = [Mempool(chain.state, chain.cache) for _ in range(2)]
    for pool in pools:
        admitted = [pool.add(tx, chain.now).accepted for tx in pending]
    block, _, _ = build_block(chain.state, block_txs, chain.now + 1000, chain.addr("v0"))
    output = apply_block(chain.state, block)
    advance(chain.state, block, output)
    full = pools[0].update(list(block.txs), chain.now + 1000)
    partial = pools[1].update(list(block.txs), chain.now + 1000, output.overlay.writes)
    assert [tx.hash for tx in partial] == [tx.hash for tx in full]
    assert pools[1].reap(1000) == pools[0].reap(1000)
    for name in NAMES:
        address = chain.addr(name)
        assert pools[1].pending_nonce(address) == pools[0].pending_nonce(address)
        assert pools[1]._view.account(address) == pools[0]._view.account(address)
    assert pools[1]._per_sender == pools[0]._per_sender and len(pools[1]) == len(pools[0])
    assert any(admitted)


def test_mempool_recheck_2_groups_follow_the_links_between_accounts() -> None:
    """A block that wrote one account touches every pending transfer linked to it,
    through any chain of senders and recipients; the rest are untouched."""
    chain = Chain()
    ab = _transfer(chain, "alice", 0, "bob", 5)
    bc = _transfer(chain, "bob", 0, "carol", 5)
    other = _transfer(chain, "mallory", 0, "dave", 5)
    found = untouched([ab, bc, other], [("account", chain.addr("carol")), ("meta", b"x")])
    assert found is not None
    assert found.tx_hashes == {other.hash}
    assert chain.addr("alice") not in found.accounts
    assert chain.addr("mallory") in found.accounts
    nothing = untouched([ab, bc, other], [])
    assert nothing is not None and nothing.tx_hashes == {ab.hash, bc.hash, other.hash}
    assert untouched([ab], [("account", Address(b"\x00" * 20))]) is not None
    join = sign_transaction(chain.keys["erin"], "test-chain", 0, VerifierJoin())
    assert untouched([ab, join], []) is None  # not a plain transfer: re-check everything
    assert untouched([ab], [("meta", META_PROTOCOL_VERSION)]) is None  # an upgrade height
