"""What one simulated run does, drawn from a seed [CONS-SIM]."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

BEHAVIOURS = ("silent", "equivocate", "double_vote", "phantom", "amnesia", "forger")


@dataclass
class Scenario:
    """Everything a run does, drawn from ``seed``; printed on failure."""

    seed: int
    n: int
    fast: bool = True
    """Trusting signature check injected into every driver and core (bulk seeds)."""
    behaviours: dict[int, str] = field(default_factory=dict)
    crashes: list[tuple[int, int, int]] = field(default_factory=list)
    """(node, crash at ms, restart at ms)."""
    partition: tuple[frozenset[int], int, int] | None = None
    """(one side, from ms, heals at ms)."""
    chaos_until: int = 0
    """Before this time: drops, long delays. After: delays <= delta, no drops."""
    delay_range: tuple[int, int] = (1, 50)
    delta: int = 50
    """Upper bound of message delay after GST (ms); 0: no delay at all (the benchmark)."""
    p_drop: float = 0.0
    p_dup: float = 0.0
    slow_precommits_ms: int = 0
    """Before GST, precommits get up to this much extra delay: a node may decide a block
    while the others time out of the round, the case locking exists for."""
    skew: dict[int, int] = field(default_factory=dict)
    clock_precision_ms: int = 200
    message_delay_ms: int = 1000
    """[CONS-TIME.2] bounds; the genesis defaults of [CONS-TIME.3] for skews of seconds."""
    busy: dict[int, tuple[int, int]] = field(default_factory=dict)
    """node -> (from ms, until ms): its storage refuses commits ([CONS-COMMIT.2]); the node
    stays honest, it only stalls and retries."""
    wal_full: dict[int, tuple[int, int]] = field(default_factory=dict)
    """node -> (from ms, until ms): its WAL refuses appends (a full disk, [CONS-WAL.3]); the
    node stays honest, it holds its step back and retries."""
    powers: dict[int, int] = field(default_factory=dict)
    """Voting power from genesis on (absent: 1)."""
    commit_ms: int = 0
    wal_dir: str | None = None
    """When set, each node keeps its WAL in a real fsynced file there (else in memory)."""
    new_blocks_after_gst: int = 3
    liveness_bound_ms: int = 30_000
    """Max simulated time after GST for the new blocks (observed max over CI seeds: ~6 s)."""
    empty_block_interval_ms: int = 0
    """[CONS-PACE.3] 0: a block at every height, the pace the liveness scenarios measure."""
    transfers: list[tuple[int, int]] = field(default_factory=list)
    """(at ms, node): that node signs a transfer into its mempool; gossip brings it to the
    others within the message delay [CONS-PACE.1]."""
    run_until_ms: int | None = None
    """Run to this time and skip the liveness target (the pacing tests check it themselves)."""

    @property
    def faulty(self) -> set[int]:
        return set(self.behaviours) | {c[0] for c in self.crashes}

    @property
    def gst(self) -> int:
        times = [self.chaos_until]
        if self.partition:
            times.append(self.partition[2])
        times.extend(c[2] for c in self.crashes)
        times.extend(until for _, until in self.busy.values())
        times.extend(until for _, until in self.wal_full.values())
        return max(times)


def random_scenario(seed: int, n: int, *, fast: bool) -> Scenario:
    rng = random.Random(seed * 1_000_003 + n)
    f = (n - 1) // 3
    sc = Scenario(seed=seed, n=n, fast=fast)
    faulty = rng.sample(range(n), rng.randint(0, f))
    kinds = [*BEHAVIOURS[:5], "crash", "crash"] + (["forger"] if not fast else [])
    for node in faulty:
        kind = rng.choice(kinds)
        if kind == "crash":
            at = rng.randint(0, 6000)
            sc.crashes.append((node, at, at + rng.randint(50, 4000)))
        else:
            sc.behaviours[node] = kind
    if rng.random() < 0.5:
        side = frozenset(rng.sample(range(n), rng.randint(1, n - 1)))
        start = rng.randint(0, 3000)
        sc.partition = (side, start, start + rng.randint(200, 8000))
    sc.chaos_until = rng.choice([0, rng.randint(500, 6000)])
    sc.delay_range = (1, rng.choice([20, 200, 1500]))
    sc.delta = rng.choice([5, 50, 200])
    sc.p_drop = rng.choice([0.0, 0.05, 0.3])
    sc.p_dup = rng.choice([0.0, 0.1])
    sc.skew = {i: rng.randint(-50, 50) for i in range(n)}
    # Real blocks cost real execution: pace heights (a 0 ms pace ran up to 370 heights)
    sc.commit_ms = rng.choice([30, 60, 100])
    sc.slow_precommits_ms = rng.choice([0, 0, 1500])
    if rng.random() < 0.3:  # unequal power; faulty keep power 1 so 3*f_power < total
        sc.powers = {i: 1 if i in sc.faulty else rng.randint(1, 3) for i in range(n)}
    busy_rng = random.Random(seed * 7_919 + n)
    if busy_rng.random() < 0.3:
        for node in busy_rng.sample(range(n), busy_rng.randint(1, n)):
            start = busy_rng.randint(0, 6000)
            sc.busy[node] = (start, start + busy_rng.randint(100, 4000))
    return sc


def lagging_scenario(seed: int, n: int, *, fast: bool = True) -> Scenario:
    """[CONS-CATCHUP.1] One honest node is cut off while the others commit far more than
    50 heights, then must catch up by block sync while consensus goes on."""
    rng = random.Random(seed * 31 + n)
    laggard = rng.randrange(n)
    start = rng.randint(0, 300)
    return Scenario(
        seed=seed, n=n, fast=fast,
        partition=(frozenset({laggard}), start, start + rng.randint(12_000, 15_000)),
        delta=rng.choice([5, 20]), commit_ms=0, p_dup=rng.choice([0.0, 0.1]),
        new_blocks_after_gst=3,
    )
