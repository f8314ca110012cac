"""Transport bench: the secure channel [WIRE-SECURE.*] against the open transport it replaced.

    .venv/bin/python bench/transport.py [--blob-mib 200] [--rounds 3] [--devnet-seconds 20]
                                        [--quick]

The open transport exists nowhere in the shipped code (no node can speak or
negotiate it), so its reference is the last commit that had it, ``OPEN_REF``:
this script extracts that tree with ``git archive`` into a temp dir and runs the
same benches in both trees, one after the other, in the same run:

- ``bench/blobs.py``: blob fetch throughput over raw loopback TCP (ratio;
  target for the encrypted tree: >= 0.30);
- ``bench/gossip.py``: 32-node gossip, p99 time to all nodes;
- ``bench/devnet.py``: 4 validators, finalized transactions per second
  (skipped with ``--devnet-seconds 0``, and in ``--quick``).

Last line: one JSON object (``JSON_KEYS``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.support.cli import emit, parse_args  # noqa: E402

OPEN_REF = "4905d95"
"""The last commit of the open transport (protocol version 1), before ``ec97d6e``."""
TARGET_RATIO = 0.30
JSON_KEYS = ("bench", "open_ref", "blob_mib", "blob_mib_per_s_open", "blob_mib_per_s_encrypted",
             "raw_tcp_mib_per_s_open", "raw_tcp_mib_per_s_encrypted", "blob_ratio_open",
             "blob_ratio_encrypted", "gossip_p99_ms_open", "gossip_p99_ms_encrypted",
             "gossip_p50_ms_open", "gossip_p50_ms_encrypted", "tx_per_s_open",
             "tx_per_s_encrypted", "pass")
"""Keys of the last line (tests/test_bench_quick.py)."""
NEEDS_DOCKER = True
"""No Docker, but it starts node processes (bench/blobs.py, bench/devnet.py): CI runs it
serially with the multi-process tests."""
QUICK = {"blob_mib": 8, "rounds": 1, "gossip_messages": 40, "devnet_seconds": 0}


def run_bench(tree: Path, script: str, *args: str) -> dict[str, Any]:
    """Runs ``tree/bench/<script>`` and returns its last line's JSON object."""
    proc = subprocess.run([sys.executable, str(tree / "bench" / script), *args], cwd=tree,
                          capture_output=True, text=True, check=False)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{tree.name}/bench/{script} failed ({proc.returncode}):\n"
                           f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    for line in lines[:-1]:
        print(f"  [{script} {'open' if tree != REPO else 'encrypted'}] {line}")
    return dict(json.loads(lines[-1]))


def extract_open_tree(into: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(REPO), "archive", OPEN_REF],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--blob-mib", type=int, default=200)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--gossip-messages", type=int, default=200)
    p.add_argument("--devnet-seconds", type=float, default=20.0)
    args = parse_args(p, QUICK)
    result: dict[str, Any] = {"bench": "transport", "open_ref": OPEN_REF,
                              "blob_mib": args.blob_mib}
    with tempfile.TemporaryDirectory(prefix="lc-bench-open-") as tmp:
        trees = {"open": extract_open_tree(Path(tmp)), "encrypted": REPO}
        for name, tree in trees.items():
            blobs = run_bench(tree, "blobs.py", "--mib", str(args.blob_mib),
                              "--rounds", str(args.rounds))
            result[f"blob_mib_per_s_{name}"] = blobs["blob_mib_per_s"]
            result[f"raw_tcp_mib_per_s_{name}"] = blobs["raw_tcp_mib_per_s"]
            result[f"blob_ratio_{name}"] = blobs["ratio"]
        for name, tree in trees.items():
            gossip = run_bench(tree, "gossip.py", "--messages", str(args.gossip_messages))
            result[f"gossip_p99_ms_{name}"] = gossip["p99_ms"]
            result[f"gossip_p50_ms_{name}"] = gossip["p50_ms"]
        for name, tree in trees.items():
            tx = None
            if args.devnet_seconds > 0:
                devnet = run_bench(tree, "devnet.py", "--seconds", str(args.devnet_seconds))
                tx = devnet["finalized_tx_per_s"]
            result[f"tx_per_s_{name}"] = tx
    result["pass"] = result["blob_ratio_encrypted"] >= TARGET_RATIO
    for name in ("open", "encrypted"):
        print(f"{name:>9}: blob {result[f'blob_mib_per_s_{name}']} MiB/s "
              f"(ratio {result[f'blob_ratio_{name}']}), gossip p99 "
              f"{result[f'gossip_p99_ms_{name}']} ms, finalized {result[f'tx_per_s_{name}']} tx/s")
    emit(result, JSON_KEYS)


if __name__ == "__main__":
    main()
