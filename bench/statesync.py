"""What a graph at rest writes to disk: ``idle_bytes_per_day`` (issue 48 §1) [CONS-PACE.3].

    .venv/bin/python bench/statesync.py [--probe-seconds 60] [--rest-seconds 120] [--quick]

Two runs of 4 real validator processes on 127.0.0.1, nothing submitted:

1. *probe*: the genesis's empty-block interval set to ``--probe-interval-ms`` (1 s, about
   the old pace), for ``--probe-seconds``: the bytes each node's data directory gains per
   empty block (every file: the SQLite chain, the consensus WAL, peers, logs);
2. *rest*: the production interval (300 s), for ``--rest-seconds``: the bytes a node
   gains per second while no block is due (logs, peer books), and the blocks written.

Each run measures the data directories of stopped nodes (so SQLite's WAL is checkpointed
into the file and the sizes are settled): stopped after the graph's first block, started
again, run, stopped, measured; and, live, from 2 s after the restart to the end. The rest
run's difference between the two is what a restart itself writes (start and stop lines,
peer books): subtracted from the probe's, so the per-block figure is the blocks'.
``idle_bytes_per_day`` = bytes per empty block x blocks a day at the production interval
+ rest bytes per second x 86,400: *extrapolated* from minutes, and labelled so in the
last line. ``old_pace_bytes_per_day`` is the same
directory at the probe's pace (a block a second, as before [CONS-PACE.1]).

Issue 48 §2's state-sync figures (``state_sync_s``, ``replay_s``, ``snapshot_bytes`` on a
chain of 1,000,000 blocks) join this script's last line with state sync itself.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.support.cli import emit, parse_args  # noqa: E402
from chain.pacing import DEFAULT_EMPTY_BLOCK_INTERVAL_MS  # noqa: E402
from client.api.http_client import ApiClient  # noqa: E402
from client.devnet.processes import down, up  # noqa: E402
from tests.framework.ports import free_base_port  # noqa: E402

JSON_KEYS = ("bench", "validators", "probe_blocks", "bytes_per_empty_block",
             "rest_seconds", "rest_blocks", "rest_bytes_per_s", "empty_block_interval_ms",
             "idle_bytes_per_day", "old_pace_bytes_per_day", "extrapolated", "pass")
"""Keys of the last line (tests/test_bench_quick.py)."""
NEEDS_DOCKER = True
"""Starts 4 validator processes twice: CI runs it serially, with the multi-process tests."""
QUICK = {"probe_seconds": 6.0, "rest_seconds": 4.0}
VALIDATORS = 4
DAY_S = 86_400
TARGET_BYTES_PER_DAY = 1_000_000
SETTLE_S = 2.0


def _dir_bytes(node_dir: Path) -> int:
    return sum(p.stat().st_size for p in node_dir.rglob("*") if p.is_file())


def _run(root: Path, interval_ms: int, seconds: float,
         base_port: int) -> tuple[int, list[int], list[int]]:
    """Blocks node0 gained over ``seconds``, and bytes each node directory gained: between
    two clean stops, and live (from 2 s after the restart to the end)."""
    layout = up(root, validators=VALIDATORS, workers=0, base_port=base_port,
                log_level="info", empty_block_interval_ms=interval_ms)
    down(root)
    dirs = [n.directory for n in layout.nodes]
    before = [_dir_bytes(d) for d in dirs]
    layout = up(root, validators=VALIDATORS, workers=0, base_port=base_port, log_level="info")
    try:
        time.sleep(SETTLE_S)
        start_height = int(ApiClient(layout.nodes[0].api_url).status()["height"])
        live_start = [_dir_bytes(d) for d in dirs]
        time.sleep(seconds)
        end_height = int(ApiClient(layout.nodes[0].api_url).status()["height"])
        live_end = [_dir_bytes(d) for d in dirs]
    finally:
        down(root)
    after = [_dir_bytes(d) for d in dirs]
    return (end_height - start_height, [b - a for a, b in zip(before, after, strict=True)],
            [b - a for a, b in zip(live_start, live_end, strict=True)])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--probe-seconds", type=float, default=60.0)
    p.add_argument("--probe-interval-ms", type=int, default=1_000)
    p.add_argument("--rest-seconds", type=float, default=120.0)
    args = parse_args(p, QUICK)
    with tempfile.TemporaryDirectory(prefix="lc-bench-idle-") as tmp:
        rest_blocks, rest_stops, rest_live = _run(
            Path(tmp) / "rest", DEFAULT_EMPTY_BLOCK_INTERVAL_MS, args.rest_seconds,
            free_base_port(VALIDATORS))
        probe_blocks, probe_stops, _ = _run(Path(tmp) / "probe", args.probe_interval_ms,
                                            args.probe_seconds, free_base_port(VALIDATORS))
    # a restart's own writes (start and stop lines, peer books) are not the rest's
    restart = [s - live for s, live in zip(rest_stops, rest_live, strict=True)]
    probe_bytes = [s - r for s, r in zip(probe_stops, restart, strict=True)]
    per_block = max(probe_bytes) / max(probe_blocks, 1)
    rest_rate = max(rest_live) / args.rest_seconds
    blocks_a_day = DAY_S * 1000 / DEFAULT_EMPTY_BLOCK_INTERVAL_MS
    idle = per_block * blocks_a_day + rest_rate * DAY_S
    old_pace = per_block * probe_blocks / args.probe_seconds * DAY_S
    rest_bytes = rest_live
    print(f"probe: {probe_blocks} empty blocks in {args.probe_seconds:.0f}s, node dirs grew "
          f"{probe_bytes} bytes: {per_block:.0f} bytes per empty block (largest node)")
    print(f"rest: {rest_blocks} blocks in {args.rest_seconds:.0f}s, node dirs grew "
          f"{rest_bytes} bytes live ({rest_rate:.1f} bytes/s); a restart writes {restart}")
    print(f"extrapolated: {idle / 1e6:.3f} MB a day per node at rest "
          f"({blocks_a_day:.0f} empty blocks), {old_pace / 1e6:.1f} MB at the old pace")
    emit({
        "bench": "statesync", "validators": VALIDATORS, "probe_blocks": probe_blocks,
        "bytes_per_empty_block": round(per_block), "rest_seconds": args.rest_seconds,
        "rest_blocks": rest_blocks, "rest_bytes_per_s": round(rest_rate, 1),
        "empty_block_interval_ms": DEFAULT_EMPTY_BLOCK_INTERVAL_MS,
        "idle_bytes_per_day": round(idle), "old_pace_bytes_per_day": round(old_pace),
        "extrapolated": "idle_bytes_per_day and old_pace_bytes_per_day: from minutes to a day",
        "pass": idle <= TARGET_BYTES_PER_DAY and rest_blocks == 0,
    }, JSON_KEYS)


if __name__ == "__main__":
    main()
