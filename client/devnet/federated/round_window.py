"""The federated demos' commit windows sized from one local round timed here, just before
the post (as ``client.devnet.windows`` sizes the training demo's claim window).

Why: a federated phase lasts its whole window (federated.md §9), and a round counts only
with ``min_participants`` updates committed inside it. Six owners train at once, each in
its own sandbox, on the demo machine's cores: a fixed 30 s held them on a quiet 2-core
machine, but on one at half that pace under gVisor each local round took 50-56 s side by
side, every round of ``make demo-federated`` went void (0-3 updates of the 4 needed) and
the job was refunded (2026-11-28, twice, ``tests/federated/test_federated_graph.py``).
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from pathlib import Path

from chain.jobspec import ResourceLimits
from chain.types import Address
from client.devnet.windows import PICKUP_S, contention

ROUND_MARGIN = 2.0
"""The commit window holds this many contended local rounds (the probe alone times the cores
shared, ``contention``). The nodes, gVisor's own work and the verifiers' evaluations share
the cores too: with a probe of 9.1 s, 1.5 (a 51 s window) held rounds 3-5, whose six
trainings ended 38-45 s into the window, but not round 2, which ran beside the evaluations
of a cheating aggregate (4 commitments, 3 in time)."""
MIN_COMMIT_MS = 30_000
"""The window on a machine fast enough: what held six owners on a quiet 2-core machine."""
IMAGE_CHECK_MS = 60_000
"""Round 1's commit window holds, before its local round, each owner node's first look at
the job's image (it checks the image before its first run: up to 55 s under that load)."""


@dataclass(frozen=True, slots=True)
class RoundWindows:
    """What the demo posts: every later round's commit window and round 1's."""

    round_s: float
    """One local round alone here, measured (seconds)."""
    commit_ms: int
    first_commit_ms: int


def round_windows(round_s: float, owners: int, limits: ResourceLimits,
                  cpus: int | None = None) -> RoundWindows:
    """Windows for ``owners`` training at once, each capped at ``limits.cpu_millis``, when
    one local round takes ``round_s`` alone: the pickup and ``ROUND_MARGIN`` contended
    rounds, at least ``MIN_COMMIT_MS``; round 1 adds ``IMAGE_CHECK_MS``."""
    slowed = contention(owners, limits.cpu_millis * 1_000_000, cpus=cpus)
    commit = max(MIN_COMMIT_MS, math.ceil(1000 * (PICKUP_S + ROUND_MARGIN * slowed * round_s)))
    return RoundWindows(round_s, commit, commit + IMAGE_CHECK_MS)


def measure_round(image_id: str, data_dir: Path, limits: ResourceLimits, hidden: int,
                  scale_bits: int, runtime: str | None = None) -> float:
    """Seconds one owner's local round of the template job takes here now: the ``federate``
    entry on ``data_dir`` from the initial model, in the sandbox under ``runtime`` (the
    owners' resolved runtime; gVisor's start-up is part of what the window must hold)."""
    from client.devnet.federated.setup import initial_model
    from sandbox.federated import run_federate
    from sandbox.limits import from_spec
    from sandbox.runner import SandboxRunner

    job_id = hashlib.sha256(b"learningchain/v1 demo round probe").digest()
    runner = SandboxRunner(node_id="fed-round-probe", runtime=runtime)
    started = time.monotonic()
    result = run_federate(runner, image_id, initial_model(hidden, scale_bits), data_dir,
                          from_spec(limits), job_id=job_id, round_no=1,
                          participant=Address(b"\x00" * 20), seed=1)
    if not result.ok:
        raise RuntimeError(f"the probe's local round failed: {result.reason} {result.detail}")
    return time.monotonic() - started
