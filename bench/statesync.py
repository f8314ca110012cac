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

Issue 48 §2, state sync (bench/support/statesync_chain.py and statesync_measure.py), run
first, in this process, in a temp dir:

3. *build*: a version 3 chain of ``--blocks`` blocks (a multiple of 100, so the tip is
   a digest height) on SQLite, every block with a real commit certificate:
   ``--set-changes`` validators added by governance, ``--accounts`` fresh accounts
   funded by transfers (2,000 a block), ``--jobs`` jobs of train/v1, train/v3 and
   federated/v1, then empty blocks (written 1,000 per SQLite transaction);
4. *snapshot*: the tip's body and manifest (``snapshot_bytes``: the body's size);
5. *state sync*: a joining node at genesis restores the snapshot from a source node
   over real p2p sockets on 127.0.0.1 (``client.node.state_sync.state_sync``: offers,
   the walk from the genesis set, the header and manifest checks, the body fetched and
   checked, the database written), timed from call to return (``state_sync_s``); its
   state root must be the source's, also after reopening its database;
6. *replay*: a fresh ledger takes the same blocks from genesis as block sync does
   (each certificate verified against the set of its height, then ``Ledger.apply``):
   all of them, or the first ``--replay-blocks`` (the busy ones included) and the rest
   extrapolated at the measured rate of the prefix's empty blocks, labelled so
   (``replay_extrapolated``, ``replay_note``).

    .venv/bin/python bench/statesync.py --blocks 1000000 [--replay-blocks 20000]
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
from bench.support.statesync_chain import build_chain  # noqa: E402
from bench.support.statesync_measure import (  # noqa: E402
    replay,
    snapshot,
    state_sync_over_p2p,
)
from chain.pacing import DEFAULT_EMPTY_BLOCK_INTERVAL_MS  # noqa: E402
from chain.statesync.roots import DIGEST_INTERVAL  # noqa: E402
from client.api.http_client import ApiClient  # noqa: E402
from client.devnet.processes import down, up  # noqa: E402
from tests.framework.ports import free_base_port  # noqa: E402

JSON_KEYS = ("bench", "validators", "probe_blocks", "bytes_per_empty_block",
             "rest_seconds", "rest_blocks", "rest_bytes_per_s", "empty_block_interval_ms",
             "idle_bytes_per_day", "old_pace_bytes_per_day", "extrapolated",
             "blocks", "accounts", "jobs", "set_changes", "build_s", "snapshot_bytes",
             "snapshot_records", "state_sync_s", "state_sync_same_root", "replay_s",
             "replay_blocks_measured", "replay_extrapolated", "replay_note", "pass")
"""Keys of the last line (tests/test_bench_quick.py)."""
NEEDS_DOCKER = True
"""Starts 4 validator processes twice: CI runs it serially, with the multi-process tests."""
QUICK = {"probe_seconds": 6.0, "rest_seconds": 4.0, "blocks": 300}
VALIDATORS = 4
DAY_S = 86_400
TARGET_BYTES_PER_DAY = 1_000_000
TARGET_STATE_SYNC_S = 60.0
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


def _state_sync_figures(args: argparse.Namespace) -> dict[str, object]:
    """Build, snapshot, state sync, replay (issue 48 §2): the last line's §2 keys."""
    with tempfile.TemporaryDirectory(prefix="lc-bench-statesync-") as tmp:
        root = Path(tmp)
        built = build_chain(root, blocks=args.blocks, accounts=args.accounts, jobs=args.jobs,
                            set_changes=args.set_changes)
        ledger = built.ledger
        print(f"build: {args.blocks} blocks ({built.busy_blocks} busy) in {built.build_s:.1f}s; "
              f"{len(ledger.state.validators())} validators, "
              f"{len(ledger.storage.walk_entries(0, 1_000))} walk entries, "
              f"{sum(built.jobs.values())} jobs {built.jobs}")
        snap = snapshot(ledger, root / "snapshot")
        print(f"snapshot of height {snap.manifest.height}: {snap.manifest.record_count} "
              f"records, {snap.manifest.body_bytes} bytes, written in {snap.seconds:.2f}s")
        synced = state_sync_over_p2p(ledger, snap, root / "sync")
        same = (synced.height == args.blocks and synced.state_root == ledger.state.state_root
                and synced.reopened_root == ledger.state.state_root)
        print(f"state sync over p2p: height {synced.height}, {synced.records} records, "
              f"{synced.body_bytes} bytes, {synced.walk_entries} walk entries, in "
              f"{synced.seconds:.2f}s; same state root as the source: {same}")
        measured = args.blocks if args.replay_blocks <= 0 else min(
            args.blocks, max(args.replay_blocks, built.busy_blocks + DIGEST_INTERVAL))
        replayed = replay(ledger, root / "replay", measured, built.busy_blocks)
        expected = ledger.storage.block(measured)
        if expected is None or replayed.state_root != expected.header.state_root:
            raise SystemExit(f"replay of {measured} blocks ended at another state root")
        extrapolated = measured < args.blocks
        replay_s = replayed.seconds
        note = f"replayed all {measured} blocks"
        if extrapolated:
            per_block = replayed.tail_seconds / max(replayed.tail_blocks, 1)
            replay_s += (args.blocks - measured) * per_block
            note = (f"extrapolated: {measured} blocks replayed in {replayed.seconds:.1f}s "
                    f"(the busy {built.busy_blocks} included), the other "
                    f"{args.blocks - measured} empty blocks at the prefix's empty-block rate "
                    f"({per_block * 1e3:.3f} ms a block)")
        print(f"replay from genesis: {note}: {replay_s:.1f}s for {args.blocks} blocks "
              f"({replay_s / max(synced.seconds, 1e-9):.0f}x the state sync)")
        ledger.close()
    return {
        "blocks": args.blocks, "accounts": built.accounts, "jobs": built.jobs,
        "set_changes": built.set_changes, "build_s": round(built.build_s, 1),
        "snapshot_bytes": snap.manifest.body_bytes, "snapshot_records": snap.manifest.record_count,
        "state_sync_s": round(synced.seconds, 3), "state_sync_same_root": same,
        "replay_s": round(replay_s, 1), "replay_blocks_measured": measured,
        "replay_extrapolated": extrapolated, "replay_note": note,
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--probe-seconds", type=float, default=60.0)
    p.add_argument("--probe-interval-ms", type=int, default=1_000)
    p.add_argument("--rest-seconds", type=float, default=120.0)
    p.add_argument("--blocks", type=int, default=1_000_000,
                   help="the state-sync chain's length (a multiple of 100)")
    p.add_argument("--accounts", type=int, default=10_000)
    p.add_argument("--jobs", type=int, default=1_000)
    p.add_argument("--set-changes", type=int, default=3)
    p.add_argument("--replay-blocks", type=int, default=20_000,
                   help="blocks replayed from genesis, the rest extrapolated; 0: all")
    args = parse_args(p, QUICK)
    sync = _state_sync_figures(args)
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
        **sync,
        "pass": (idle <= TARGET_BYTES_PER_DAY and rest_blocks == 0
                 and bool(sync["state_sync_same_root"])
                 and float(sync["state_sync_s"]) <= TARGET_STATE_SYNC_S),  # type: ignore[arg-type]
    }, JSON_KEYS)


if __name__ == "__main__":
    main()
