"""Consensus throughput of the core alone: the simulator with zero network delay.

Runs n = 4 and n = 16 honest validators of the simulator (tests/consensus/sim.py: each
node runs the real ``ConsensusDriver`` over the real ``LedgerApp`` and ``chain.Ledger``,
storage in memory) with real signing and real signature verification (``fast=False``),
no network delay and no commit pause, so the figures measure the state machine, block
execution and its cryptography on one core of this machine. The run's invariants
(agreement, a valid certificate for every stored block, liveness) are checked after the
timed part. Prints a few lines, then as its LAST line one JSON object:

    {"n4": {"blocks_per_s": ..., "sig_verifications_per_block": ...}, "n16": {...}}

``sig_verifications_per_block`` is per validator: the consensus signatures each node
checks per block (its driver checks a peer's message once, on arrival [NODE-CONS.2]; the
core checks the rest); ``..._network`` sums over all validators.

    .venv/bin/python bench/consensus.py [--blocks4 300] [--blocks16 60] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.support.cli import emit, parse_args
from client.node.consensus_driver import ConsensusDriver
from tests.consensus.sim import Scenario, SimNetwork

JSON_KEYS = ("n4", "n16")
"""Keys of the last line (tests/test_bench_quick.py); each holds ``FIGURES``."""
FIGURES = ("blocks", "seconds", "blocks_per_s", "sig_verifications_per_block",
           "sig_verifications_per_block_network", "deliveries_per_block")
NEEDS_DOCKER = False
"""One process, no sockets, no files: CI may run it in parallel with other pure tests."""
QUICK = {"blocks4": 50, "blocks16": 8}


class BenchNetwork(SimNetwork):
    """The simulator, counting every consensus signature check, its invariants checked
    apart so that the timing holds the run alone."""

    def __init__(self, sc: Scenario) -> None:
        super().__init__(sc)
        self.signature_checks = 0
        self.target: int | None = None
        network = self

        class CountingDriver(ConsensusDriver):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                check = kwargs["check_signature"]

                def counted(public_key: bytes, digest: bytes, signature: bytes) -> bool:
                    network.signature_checks += 1
                    return bool(check(public_key, digest, signature))

                kwargs["check_signature"] = counted
                super().__init__(*args, **kwargs)

        self.driver_class = CountingDriver

    def check(self, target: int | None) -> None:
        self.target = target  # checked by ``measure`` once the clock has stopped

    def check_invariants(self) -> None:
        SimNetwork.check(self, self.target)


def measure(n: int, blocks: int) -> dict[str, float]:
    sim = BenchNetwork(Scenario(seed=1, n=n, fast=False, delta=0,
                                new_blocks_after_gst=blocks))
    start = time.perf_counter()
    sim.run()
    elapsed = time.perf_counter() - start
    sim.check_invariants()
    committed = min(node.height for node in sim.nodes)
    if committed < blocks:
        raise SystemExit(f"n={n}: only {committed} blocks committed, wanted {blocks}")
    return {
        "blocks": committed,
        "seconds": round(elapsed, 3),
        "blocks_per_s": round(committed / elapsed, 1),
        "sig_verifications_per_block": round(sim.signature_checks / committed / n, 2),
        "sig_verifications_per_block_network": round(sim.signature_checks / committed, 1),
        "deliveries_per_block": round(sim.deliveries / committed, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks4", type=int, default=300)
    parser.add_argument("--blocks16", type=int, default=60)
    args = parse_args(parser, QUICK)
    results = {"n4": measure(4, args.blocks4), "n16": measure(16, args.blocks16)}
    for name, r in results.items():
        print(
            f"{name}: {r['blocks']} blocks in {r['seconds']} s = {r['blocks_per_s']} blocks/s; "
            f"{r['sig_verifications_per_block']} signature checks per block per validator "
            f"({r['sig_verifications_per_block_network']} network-wide); "
            f"{r['deliveries_per_block']} message deliveries per block"
        )
        if tuple(r) != FIGURES:
            raise SystemExit(f"{name}: figures {list(r)} are not FIGURES {list(FIGURES)}")
    emit(results, JSON_KEYS, sort_keys=True)


if __name__ == "__main__":
    main()
