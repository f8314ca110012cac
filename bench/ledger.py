"""Applies one block of 10,000 signed transfers, signature checks included.

Prints tx_per_s (block application as a node applies a block it has not seen, fresh
signature cache: the node's parallel verifier [TX-SIG-CACHE.2] checks the block's
signatures on every core, then the serial apply finds them), tx_per_s_one_thread (the
same block with every signature checked inline, one at a time), verify_per_s (bare
coincurve verify, one thread, on the same machine in the same run) and both ratios.
Target (issue 51): ratio >= 0.9. Rounds are interleaved (serial, parallel, bare) and the
best of each is kept, so a busy neighbour moves all three alike.
Last line: one JSON object.

    .venv/bin/python bench/ledger.py [--txs 10000] [--senders 1000] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import coincurve

from bench.support.cli import emit, parse_args
from chain.crypto import PrivateKey, address_to_text, sha256
from chain.genesis import Genesis, genesis_state
from chain.transactions import Transfer, sign_transaction
from chain.transition import SignatureCache, apply_block, build_block
from chain.types import Amount
from client.node.sig_batch import BatchVerifier

JSON_KEYS = ("bench", "txs", "block_apply_s", "tx_per_s", "verify_per_s", "ratio",
             "target_ratio", "tx_per_s_one_thread", "ratio_one_thread", "verify_threads")
"""Keys of the last line (tests/test_bench_quick.py)."""
NEEDS_DOCKER = False
"""One process, no sockets, no files: CI may run it in parallel with other pure tests."""
QUICK = {"txs": 2_000, "senders": 200, "repeats": 1, "verifies": 2_000}


def bare_verify_rate(n: int = 20_000) -> float:
    """coincurve's own API: parse the key and a DER signature, verify; as a user would."""
    key = coincurve.PrivateKey()
    pub = key.public_key.format()
    msg = sha256(b"bench")
    sig = key.sign(msg, hasher=None)
    start = time.perf_counter()
    for _ in range(n):
        coincurve.PublicKey(pub).verify(sig, msg, hasher=None)
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--txs", type=int, default=10_000, help="transfers in the block")
    parser.add_argument("--senders", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=3, help="block applications (best)")
    parser.add_argument("--verifies", type=int, default=20_000, help="bare verifies timed")
    args = parse_args(parser, QUICK)
    n_tx, n_senders = args.txs, args.senders
    validator = PrivateKey.from_seed(b"bench-validator")
    senders = [PrivateKey.from_seed(b"sender-%d" % i) for i in range(n_senders)]
    genesis = Genesis.from_json({
        "chain_id": "bench", "genesis_time_ms": 1_700_000_000_000,
        "validators": [{"pubkey": validator.public_key.hex(), "power": 1}],
        "balances": {address_to_text(k.address): 1_000_000 for k in senders},
        "params": {"max_block_txs": n_tx},
    })
    txs = []
    for i in range(n_tx):
        sender = senders[i % n_senders]
        to = senders[(i + 1) % n_senders].address
        txs.append(sign_transaction(sender, "bench", i // n_senders, Transfer(to, Amount(1))))
    state = genesis_state(genesis)
    block, _, dropped = build_block(state, txs, 1_700_000_001_000, validator.address,
                                    SignatureCache())
    if dropped or len(block.txs) != n_tx:
        raise SystemExit(f"block holds {len(block.txs)} of {n_tx} transfers, dropped {dropped}")
    verifier = BatchVerifier()
    serial, parallel, bare = [], [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        apply_block(state, block, SignatureCache())  # every signature verified inline
        serial.append(time.perf_counter() - start)
        start = time.perf_counter()
        cache = SignatureCache()  # as Ledger.apply does on a node [TX-SIG-CACHE.2]
        verifier.prefill(block.txs, state.chain_id, cache)
        apply_block(state, block, cache)
        parallel.append(time.perf_counter() - start)
        bare.append(bare_verify_rate(args.verifies))
    verifier.close()
    best, best_serial, verify_per_s = min(parallel), min(serial), max(bare)
    tx_per_s = n_tx / best
    result = {
        "bench": "ledger",
        "txs": n_tx,
        "block_apply_s": round(best, 4),
        "tx_per_s": round(tx_per_s),
        "verify_per_s": round(verify_per_s),
        "ratio": round(tx_per_s / verify_per_s, 3),
        "target_ratio": 0.9,
        "tx_per_s_one_thread": round(n_tx / best_serial),
        "ratio_one_thread": round(n_tx / best_serial / verify_per_s, 3),
        "verify_threads": verifier.workers,
    }
    print(f"applied {n_tx} transfers in {best:.3f}s with {verifier.workers} verify threads "
          f"({best_serial:.3f}s one thread); bare verify {verify_per_s:.0f}/s")
    emit(result, JSON_KEYS)


if __name__ == "__main__":
    main()
