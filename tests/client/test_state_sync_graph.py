"""[SNAP-RESTORE.1] [SNAP-WALK.3] [WIRE-SNAP.1-4] A node that joins late starts from a
snapshot on a graph of real processes, trusting only the genesis.

Four validators on loopback, version 3 from genesis, taking a snapshot every 100 heights.
node3 runs with the others for a few blocks, is stopped, and its data directory is
removed; the others go on past height 100 (a snapshot is taken there). node3 starts again
on an empty database with ``[statesync] mode = "always"``: it walks the validator sets
from the genesis, checks the offered snapshot against a certified header, restores it,
block-syncs the rest and then takes part in consensus: the same height and state root as
the others, no block below its base (410 pruned), the snapshot's height in its log.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
from pathlib import Path

from client.api.http_client import ApiClient, ApiError
from client.devnet.network import create_network
from client.devnet.processes import down, load_pids, start_node_process, up
from tests.framework.ports import free_base_port
from tests.framework.wait import wait_until

SNAPSHOT_EVERY = 100


def _height(api: ApiClient) -> int:
    try:
        return int(api.status()["height"])
    except Exception:
        return -1


def _process_alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_snap_restore_1_a_late_node_starts_from_a_snapshot(tmp_path: Path) -> None:
    root = tmp_path / "net"
    layout = create_network(root, validators=4, workers=0, base_port=free_base_port(4),
                            consensus={"commit_ms": 50, "propose_ms": 400})
    for node in layout.nodes:
        with node.config.open("a") as f:
            f.write(f"\n[statesync]\nsnapshot_every = {SNAPSHOT_EVERY}\n")
    up(root, log_level="info")
    try:
        apis = [ApiClient(n.api_url) for n in layout.nodes]
        late = layout.nodes[3]
        wait_until(lambda: _height(apis[3]) >= 3, what="node3 with the others")
        pids = load_pids(root)
        os.kill(pids[late.name], signal.SIGTERM)
        # The API goes quiet before the process has closed its database (closing
        # SQLite removes chain.sqlite3-wal): wait for the process itself to exit.
        wait_until(lambda: not _process_alive(pids[late.name]), what="node3 exited")
        shutil.rmtree(late.directory / "data")
        wait_until(lambda: _height(apis[0]) >= SNAPSHOT_EVERY + 5, timeout=180,
                   what=f"three validators past height {SNAPSHOT_EVERY}")
        offers = list((layout.nodes[0].directory / "data" / "snapshots").glob("*.offer"))
        assert offers, "no snapshot taken at height 100"
        with late.config.open("a") as f:
            f.write('mode = "always"\n')  # appended to its [statesync] table
        pids[late.name] = start_node_process(late)
        (root / "devnet.json").write_text(json.dumps({"pids": pids}))
        wait_until(lambda: _height(apis[3]) >= _height(apis[0]) - 1 > SNAPSHOT_EVERY,
                   timeout=120, what="node3 restored and level with the others")
        status = apis[3].status()
        base = int(status["base_height"])
        assert base % SNAPSHOT_EVERY == 1 and base > 1, status
        try:
            apis[3].block(base - 1)
            raise AssertionError("a block below the restored base was served")
        except ApiError as e:
            assert e.status == 410, e
        common = min(_height(a) for a in apis)
        assert len({a.block(common)["state_root"] for a in apis}) == 1
        log = (late.directory / "node.log").read_text()
        assert f"state sync: restored height {base - 1}" in log
        # node3 signs again: a transfer-free graph still needs its vote at some height
        later = _height(apis[0]) + 3
        wait_until(lambda: min(_height(a) for a in apis) >= later, timeout=60,
                   what="the graph going on with node3")
    finally:
        outcome = down(root)
    assert set(outcome.values()) == {"stopped"}, outcome
