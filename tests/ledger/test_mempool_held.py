"""[MEMPOOL-HOLD.1] Transactions refused only for room or order are held aside, bounded,
and a proposal by reference may name them; anything refused for what it is, is not."""

from __future__ import annotations

from chain.mempool import Admission, HeldTransactions, Mempool, MempoolLimits
from chain.transactions import SignedTransaction, Transfer, sign_transaction
from chain.transition import advance, apply_block, build_block
from chain.types import Amount, Signature
from tests.ledger.harness import Chain


def _transfer(chain: Chain, sender: str, nonce: int, amount: int = 1) -> SignedTransaction:
    return sign_transaction(chain.keys[sender], "test-chain", nonce,
                            Transfer(chain.addr("carol"), Amount(amount)))


def _forged(tx: SignedTransaction) -> SignedTransaction:
    """The same transaction under a signature that does not verify."""
    return SignedTransaction.create(tx.body, tx.sender_pubkey, tx.nonce,
                                    Signature(bytes(64 - 1) + b"\x01"))


def test_mempool_hold_1_refused_for_room_is_known_but_not_pending() -> None:
    chain = Chain()
    pool = Mempool(chain.state, chain.cache, MempoolLimits(max_txs=1, max_per_sender=5))
    first, second = _transfer(chain, "alice", 0), _transfer(chain, "bob", 0)
    assert pool.add(first, chain.now).accepted
    refused = pool.add(second, chain.now)
    assert (refused.status, refused.code) == (Admission.FULL, "mempool_full")
    assert pool.get(second.hash) is None and len(pool) == 1
    assert pool.known(second.hash) is second and pool.known(first.hash) is first
    assert [tx.hash for tx in pool.reap(10)] == [first.hash], "held is never proposed"


def test_mempool_hold_1_sender_limit_and_nonce_gaps_are_held() -> None:
    chain = Chain()
    pool = Mempool(chain.state, chain.cache, MempoolLimits(max_per_sender=1))
    assert pool.add(_transfer(chain, "alice", 0), chain.now).accepted
    over = _transfer(chain, "alice", 1)
    assert pool.add(over, chain.now).code == "sender_limit"
    gap = _transfer(chain, "bob", 3)
    assert pool.add(gap, chain.now).code == "bad_nonce"
    assert pool.known(over.hash) is over and pool.known(gap.hash) is gap


def test_mempool_hold_1_what_is_refused_for_itself_is_not_held() -> None:
    chain = Chain()
    pool = Mempool(chain.state, chain.cache, MempoolLimits(max_txs=1))
    too_much = _transfer(chain, "bob", 0, amount=10**9)
    assert pool.add(too_much, chain.now).code == "insufficient_balance"
    forged = _forged(_transfer(chain, "bob", 0))
    assert pool.add(forged, chain.now).code == "bad_signature"
    assert pool.add(_transfer(chain, "alice", 0), chain.now).accepted
    forged_full = _forged(_transfer(chain, "bob", 1))
    assert pool.add(forged_full, chain.now).code == "mempool_full"
    assert all(pool.known(tx.hash) is None for tx in (too_much, forged, forged_full))
    assert len(pool.held) == 0


def test_mempool_hold_1_admission_and_commit_take_transactions_out() -> None:
    chain = Chain()
    pool = Mempool(chain.state, chain.cache, MempoolLimits(max_txs=1))
    first, second = _transfer(chain, "alice", 0), _transfer(chain, "bob", 0)
    assert pool.add(first, chain.now).accepted
    assert pool.add(second, chain.now).code == "mempool_full"
    # The block includes both (another proposer had room): neither stays anywhere.
    block, _, dropped = build_block(chain.state, [first, second], chain.now + 1000,
                                    chain.addr("v0"), chain.cache)
    assert not dropped
    advance(chain.state, block, apply_block(chain.state, block, chain.cache))
    pool.update(list(block.txs), chain.now)
    assert pool.known(first.hash) is None and pool.known(second.hash) is None
    # Held, then admitted once there is room: pending, no longer held.
    third, fourth = _transfer(chain, "alice", 1), _transfer(chain, "bob", 1)
    assert pool.add(third, chain.now).accepted
    assert pool.add(fourth, chain.now).code == "mempool_full"
    pool.update([third], chain.now)
    assert pool.add(fourth, chain.now).accepted
    assert len(pool.held) == 0 and pool.get(fourth.hash) is fourth


def test_mempool_hold_1_the_store_is_bounded_oldest_out_first() -> None:
    chain = Chain()
    txs = [_transfer(chain, "alice", n) for n in range(5)]
    held = HeldTransactions(max_txs=3)
    for tx in txs[:3]:
        held.put(tx)
    held.put(txs[0])  # seen again: to the back
    held.put(txs[3])
    assert [held.get(tx.hash) is not None for tx in txs] == [True, False, True, True, False]
    by_bytes = HeldTransactions(max_bytes=2 * len(txs[0].wire))
    for tx in txs:
        by_bytes.put(tx)
    assert len(by_bytes) == 2 and by_bytes.get(txs[4].hash) is txs[4]
    by_bytes.discard(txs[4].hash)
    by_bytes.discard(txs[4].hash)
    assert len(by_bytes) == 1


def test_cons_msg_4_the_prefix_index_kept_on_arrival_finds_what_a_rebuild_finds() -> None:
    """[CONS-MSG.4] ``known_by_prefix`` is built once and then kept as transactions arrive
    (pending, held for room, held for order), dropped at each block: after every step of a
    random run it names every pending or held hash under its prefix, as a fresh build does,
    and anything else it names left the pool since the last block."""
    import random

    rng = random.Random(4)
    chain = Chain()
    pool = Mempool(chain.state, chain.cache, MempoolLimits(max_txs=12, max_per_sender=4))
    senders = ["alice", "bob"]
    nonce = dict.fromkeys(senders, 0)
    seen_since_block: set[bytes] = set()
    for step in range(300):
        action = rng.random()
        sender = rng.choice(senders)
        if action < 0.7:  # next nonce, or a gap (held for order), past limits (held for room)
            tx = _transfer(chain, sender, nonce[sender] + rng.choice((0, 0, 0, 1, 2)))
            if pool.add(tx, chain.now).accepted:
                nonce[sender] += 1
            seen_since_block.add(tx.hash)
        elif action < 0.8 and len(pool):  # a block of some of what is pending
            txs = pool.reap(rng.randint(1, len(pool)))
            block, _, dropped = build_block(chain.state, txs, chain.now + 1000,
                                            chain.addr("v0"), chain.cache)
            assert not dropped
            advance(chain.state, block, apply_block(chain.state, block, chain.cache))
            pool.update(list(block.txs), chain.now)
            seen_since_block = set()
        index = pool.known_by_prefix(8)
        rebuilt: dict[bytes, list[bytes]] = {}
        for tx_hash in (*[tx.hash for tx in pool.reap(10_000)], *pool.held.hashes()):
            rebuilt.setdefault(tx_hash[:8], []).append(tx_hash)
        for prefix, hashes in rebuilt.items():
            assert set(hashes) <= set(index.get(prefix, ())), step
        stale = {h for hashes in index.values() for h in hashes} - \
            {h for hashes in rebuilt.values() for h in hashes}
        assert stale <= seen_since_block, step
