"""Consensus throughput of the core alone: the simulator with zero network delay.

Runs n = 4 and n = 16 honest validators with real signing and real signature
verification in every core, no network delay and no commit pause, so the
figures measure the state machine plus its cryptography on one core of this
machine. Prints a few lines, then as its LAST line one JSON object:

    {"n4": {"blocks_per_s": ..., "sig_verifications_per_block": ...}, "n16": {...}}

``sig_verifications_per_block`` is per validator (each node verifies each
proposal and vote it counts once); ``..._network`` sums over all validators.
Usage: .venv/bin/python bench/consensus.py [--blocks4 300] [--blocks16 60]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.consensus.sim import Scenario, SimNetwork


def measure(n: int, blocks: int) -> dict[str, float]:
    sim = SimNetwork(Scenario(seed=1, n=n, fast=False, delta=0, new_blocks_after_gst=blocks))
    start = time.perf_counter()
    sim.run()
    elapsed = time.perf_counter() - start
    committed = min(len(node.store) for node in sim.nodes)
    checks = sum(node.core.signature_checks for node in sim.nodes if node.core is not None)
    return {
        "blocks": committed,
        "seconds": round(elapsed, 3),
        "blocks_per_s": round(committed / elapsed, 1),
        "sig_verifications_per_block": round(checks / committed / n, 2),
        "sig_verifications_per_block_network": round(checks / committed, 1),
        "deliveries_per_block": round(sim.deliveries / committed, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks4", type=int, default=300)
    parser.add_argument("--blocks16", type=int, default=60)
    args = parser.parse_args()
    results = {"n4": measure(4, args.blocks4), "n16": measure(16, args.blocks16)}
    for name, r in results.items():
        print(
            f"{name}: {r['blocks']} blocks in {r['seconds']} s = {r['blocks_per_s']} blocks/s; "
            f"{r['sig_verifications_per_block']} signature checks per block per validator "
            f"({r['sig_verifications_per_block_network']} network-wide); "
            f"{r['deliveries_per_block']} message deliveries per block"
        )
    print(json.dumps(results, sort_keys=True))


if __name__ == "__main__":
    main()
