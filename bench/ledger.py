"""Applies one block of 10,000 signed transfers, signature checks included.

Prints tx_per_s (block application, fresh signature cache: every signature is
verified inside the block), verify_per_s (bare coincurve verify on the same
machine in the same run) and their ratio. Target: ratio >= 0.5.
Last line: one JSON object.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import coincurve

from chain.crypto import PrivateKey, address_to_text, sha256
from chain.genesis import Genesis, genesis_state
from chain.transactions import Transfer, sign_transaction
from chain.transition import SignatureCache, apply_block, build_block
from chain.types import Amount

N_TX = 10_000
N_SENDERS = 1_000


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
    validator = PrivateKey.from_seed(b"bench-validator")
    senders = [PrivateKey.from_seed(b"sender-%d" % i) for i in range(N_SENDERS)]
    genesis = Genesis.from_json({
        "chain_id": "bench", "genesis_time_ms": 1_700_000_000_000,
        "validators": [{"pubkey": validator.public_key.hex(), "power": 1}],
        "balances": {address_to_text(k.address): 1_000_000 for k in senders},
        "params": {"max_block_txs": N_TX},
    })
    txs = []
    for i in range(N_TX):
        sender = senders[i % N_SENDERS]
        to = senders[(i + 1) % N_SENDERS].address
        txs.append(sign_transaction(sender, "bench", i // N_SENDERS, Transfer(to, Amount(1))))
    state = genesis_state(genesis)
    block, _, dropped = build_block(state, txs, 1_700_000_001_000, validator.address,
                                    SignatureCache())
    assert not dropped and len(block.txs) == N_TX
    timings = []
    for _ in range(3):
        start = time.perf_counter()
        apply_block(state, block, SignatureCache())  # every signature verified again
        timings.append(time.perf_counter() - start)
    best = min(timings)
    tx_per_s = N_TX / best
    verify_per_s = bare_verify_rate()
    result = {
        "bench": "ledger",
        "txs": N_TX,
        "block_apply_s": round(best, 4),
        "tx_per_s": round(tx_per_s),
        "verify_per_s": round(verify_per_s),
        "ratio": round(tx_per_s / verify_per_s, 3),
        "target_ratio": 0.5,
    }
    print(f"applied {N_TX} transfers in {best:.3f}s; bare verify {verify_per_s:.0f}/s")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
