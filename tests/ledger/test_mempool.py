"""The mempool admits only what would apply, bounded, and re-checks after blocks."""

from __future__ import annotations

from chain.mempool import Admission, Mempool, MempoolLimits
from chain.transactions import Transfer, sign_transaction
from chain.transition import advance, apply_block, build_block
from chain.types import Amount
from tests.ledger.harness import Chain


def test_admits_valid_chain_of_nonces_and_rejects_with_reason() -> None:
    """[MEMPOOL-ADMIT.1] Admitted only when it applies after everything pending."""
    chain = Chain()
    pool = Mempool(chain.state, chain.cache)
    key = chain.keys["alice"]
    for nonce in range(3):
        tx = sign_transaction(key, "test-chain", nonce, Transfer(chain.addr("bob"), Amount(100)))
        assert pool.add(tx, chain.now).accepted
    assert pool.add(tx, chain.now).status == Admission.DUPLICATE
    again = pool.add_bytes(tx.wire, chain.now)  # known by its hash, not parsed again
    assert (again.status, again.tx) == (Admission.DUPLICATE, tx)
    gap = sign_transaction(key, "test-chain", 7, Transfer(chain.addr("bob"), Amount(1)))
    assert pool.add(gap, chain.now).code == "bad_nonce"
    # 1000 credits: 3 x 100 pending, so 800 more does not fit.
    over = sign_transaction(key, "test-chain", 3, Transfer(chain.addr("bob"), Amount(800)))
    assert pool.add(over, chain.now).code == "insufficient_balance"
    assert pool.pending_nonce(chain.addr("alice")) == 3
    assert pool.add_bytes(b"\x00garbage", chain.now).status == Admission.REJECTED


def test_limits_per_sender_and_total() -> None:
    """[MEMPOOL-LIMIT.1] [MEMPOOL-LIMIT.2] The pool and each sender are bounded."""
    chain = Chain()
    pool = Mempool(chain.state, chain.cache, MempoolLimits(max_txs=3, max_per_sender=2))
    a, b = chain.keys["alice"], chain.keys["bob"]
    results = [pool.add(sign_transaction(a, "test-chain", n, Transfer(chain.addr("carol"),
                                                                      Amount(1))), chain.now)
               for n in range(3)]
    assert [r.status for r in results] == ["accepted", "accepted", "full"]
    assert results[2].code == "sender_limit"
    pool.add(sign_transaction(b, "test-chain", 0, Transfer(chain.addr("carol"), Amount(1))),
             chain.now)
    r = pool.add(sign_transaction(chain.keys["carol"], "test-chain", 0,
                                  Transfer(chain.addr("bob"), Amount(1))), chain.now)
    assert r.code == "mempool_full"


def test_update_after_block_drops_included_and_evicts_invalid() -> None:
    """[MEMPOOL-RECHECK.1] After a block: included dropped, the rest re-checked."""
    chain = Chain()
    pool = Mempool(chain.state, chain.cache)
    key = chain.keys["alice"]
    txs = [sign_transaction(key, "test-chain", n, Transfer(chain.addr("bob"), Amount(10)))
           for n in range(4)]
    for tx in txs:
        assert pool.add(tx, chain.now).accepted
    # A competing block spends alice's nonce 0 differently: the pool's chain breaks.
    other = sign_transaction(key, "test-chain", 0, Transfer(chain.addr("carol"), Amount(999)))
    block, _, _ = build_block(chain.state, [other], chain.now + 1000, chain.addr("v0"))
    advance(chain.state, block, apply_block(chain.state, block))
    evicted = pool.update(list(block.txs), chain.now)
    assert len(pool) == 0 and len(evicted) == 4
    # The normal path: the proposer reaps, the block includes, the pool empties.
    fresh = sign_transaction(key, "test-chain", 1, Transfer(chain.addr("bob"), Amount(1)))
    assert pool.add(fresh, chain.now).accepted
    block, _, dropped = build_block(chain.state, pool.reap(100), chain.now + 1000,
                                    chain.addr("v0"), chain.cache)
    assert not dropped
    advance(chain.state, block, apply_block(chain.state, block, chain.cache))
    assert pool.update(list(block.txs), chain.now) == [] and len(pool) == 0
