"""[TX-SIG-CACHE.2] The node's parallel verifier changes when a signature is checked, never
what is valid: it caches exactly the signatures a serial check accepts, leaves a bad one
for the ledger to refuse with ``bad_signature``, and a block applied after it gives the
same state root as a block applied with every check inline."""

from __future__ import annotations

import pytest

from chain.crypto import PrivateKey, address_to_text
from chain.errors import InvalidTransaction
from chain.genesis import Genesis, genesis_state
from chain.transactions import SignedTransaction, Transfer, sign_transaction
from chain.transition import SignatureCache, apply_block, build_block, check_signature
from chain.types import Amount
from client.node.sig_batch import MIN_BATCH, BatchVerifier

CHAIN = "sigbatch"
VALIDATOR = PrivateKey.from_seed(b"sigbatch-validator")
SENDERS = [PrivateKey.from_seed(b"sigbatch-%d" % i) for i in range(50)]


def _genesis() -> Genesis:
    return Genesis.from_json({
        "chain_id": CHAIN, "genesis_time_ms": 1_700_000_000_000,
        "validators": [{"pubkey": VALIDATOR.public_key.hex(), "power": 1}],
        "balances": {address_to_text(k.address): 1_000 for k in SENDERS},
        "params": {"max_block_txs": 1_000}})


def _transfers(n: int) -> list[SignedTransaction]:
    return [sign_transaction(SENDERS[i % 50], CHAIN, i // 50,
                             Transfer(SENDERS[(i + 1) % 50].address, Amount(1)))
            for i in range(n)]


def _forged(tx: SignedTransaction) -> SignedTransaction:
    """The same transaction signed for another chain: decodes, does not verify here."""
    signer = next(k for k in SENDERS if k.public_key == tx.sender_pubkey)
    other = sign_transaction(signer, "another-chain", tx.nonce, tx.body)
    return SignedTransaction.create(tx.body, tx.sender_pubkey, tx.nonce, other.signature)


def test_tx_sig_cache_2_caches_what_a_serial_check_accepts_and_nothing_else() -> None:
    txs = _transfers(200)
    txs[17] = _forged(txs[17])
    verifier = BatchVerifier(workers=2)
    try:
        assert verifier.check(txs, CHAIN) == [tx.signature_valid(CHAIN) for tx in txs]
        assert not txs[17].signature_valid(CHAIN)
        cache = SignatureCache()
        assert verifier.prefill(txs, CHAIN, cache) == 199
        assert txs[17].hash not in cache and all(t.hash in cache for t in txs if t is not txs[17])
        assert verifier.prefill(txs, CHAIN, cache) == 0  # nothing left unchecked
        small = SignatureCache()
        assert verifier.prefill(_transfers(MIN_BATCH - 1), CHAIN, small) == 0  # left inline
        # signed for another chain, the forged one is the only one valid there
        assert verifier.prefill(txs, "another-chain", SignatureCache()) == 1
    finally:
        verifier.close()


def test_tx_sig_cache_2_a_block_applies_to_the_same_root_and_a_bad_signature_is_refused(
        ) -> None:
    state = genesis_state(_genesis())
    txs = _transfers(300)
    block, _, dropped = build_block(state, txs, 1_700_000_001_000, VALIDATOR.address,
                                    SignatureCache())
    assert not dropped
    inline = apply_block(state, block, SignatureCache())
    verifier = BatchVerifier(workers=2)
    try:
        cache = SignatureCache()
        verifier.prefill(block.txs, CHAIN, cache)
        assert apply_block(state, block, cache).state_root == inline.state_root
        bad = [*block.txs[:5], _forged(block.txs[5]), *block.txs[6:]]
        cache = SignatureCache()
        assert verifier.prefill(bad, CHAIN, cache) == len(bad) - 1
        check_signature(bad[4], CHAIN, cache)  # found in the cache
        with pytest.raises(InvalidTransaction) as e:  # the ledger's own check refuses it
            check_signature(bad[5], CHAIN, cache)
        assert e.value.code == "bad_signature"
    finally:
        verifier.close()


def test_malloc_arenas_are_bounded_unless_the_operator_chose(monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    """glibc's mallopt(M_ARENA_MAX) applies in a node process (this Debian's glibc), and an
    operator's own MALLOC_ARENA_MAX is left alone."""
    from p2p.tuning import limit_arenas

    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert limit_arenas(8) is True  # 8: this test process's own bound stays loose
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_arenas() is False
