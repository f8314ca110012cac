"""Gossip bench: 32 nodes on loopback, time for a message to reach all, copies per node.

    .venv/bin/python bench/gossip.py [--nodes 32] [--messages 200] [--interval 0.02] [--quick]

Nodes run in one process (one event loop) and talk over real WebSockets on
127.0.0.1. Each node bootstraps to two earlier ones and fills up to its
outbound target by peer exchange. A message's latency is from ``publish`` to
the moment the last node accepted it. Copies count every full message a node
received (first copy plus duplicates) per message. Last line: one JSON object.
Targets (issue 4): p99 <= 300 ms, copies <= 3.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
from collections import defaultdict
from contextlib import AsyncExitStack

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.support.cli import emit, parse_args
from chain.crypto import PrivateKey
from p2p.config import GossipParams, P2PConfig
from p2p.gossip import Gossip
from p2p.gossip_core import Receipt, Verdict
from p2p.node import Node

JSON_KEYS = ("bench", "nodes", "messages", "fully_delivered", "missing_deliveries", "p50_ms",
             "p99_ms", "copies_per_node_per_msg", "mean_connections", "mean_mesh_degree",
             "pass")
"""Keys of the last line (tests/test_bench_quick.py)."""
NEEDS_DOCKER = False
"""One process; its nodes listen on ports the kernel picks (port 0) on 127.0.0.1: CI may
run it in parallel with other pure tests."""
QUICK = {"nodes": 8, "messages": 30}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run(n: int, messages: int, interval: float, seed: int) -> dict[str, object]:
    rng = random.Random(seed)
    first_seen: dict[bytes, dict[int, float]] = defaultdict(dict)
    copies: dict[bytes, int] = defaultdict(int)
    nodes: list[Node] = []
    gossips: list[Gossip] = []
    async with AsyncExitStack() as stack:
        for i in range(n):
            boot = tuple(nodes[j].endpoint for j in rng.sample(range(i), min(2, i)))
            cfg = P2PConfig(chain_id="bench", bootstrap=boot, gossip=GossipParams())
            node = Node(PrivateKey.from_seed(b"bench%d" % i), cfg, rng=random.Random(rng.random()))
            gossip = Gossip(node, rng=random.Random(rng.random()))

            def validate(data: bytes, sender: object, i: int = i) -> Verdict:
                first_seen[data[:32]].setdefault(i, time.perf_counter())
                return Verdict.ACCEPT

            def observe(topic: str, msg_id: bytes, sender: object, receipt: Receipt) -> None:
                copies[msg_id] += 1

            gossip.subscribe("tx", validate)
            gossip.on_receive = observe
            await stack.enter_async_context(node)
            gossip.start()
            nodes.append(node)
            gossips.append(gossip)
        # Let peer exchange and the meshes settle.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            meshes = [len(g.core.mesh["tx"]) for g in gossips]
            if min(meshes) >= 2 and min(len(nd.peers) for nd in nodes) >= 3:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
        print(f"settled in {time.monotonic() - deadline + 20:.1f}s", file=sys.stderr)
        degrees = [len(nd.peers) for nd in nodes]
        meshes = [len(g.core.mesh["tx"]) for g in gossips]

        published: dict[bytes, tuple[float, bytes]] = {}
        for k in range(messages):
            origin = rng.randrange(n)
            tag = os.urandom(32)
            data = tag + b"payload %d " % k + os.urandom(200)
            t0 = time.perf_counter()
            first_seen[tag][origin] = t0
            msg_id = gossips[origin].publish("tx", data)
            published[tag] = (t0, msg_id)
            await asyncio.sleep(interval)
        await asyncio.sleep(2.0)

    latencies: list[float] = []
    missing = 0
    for tag, (t0, _) in published.items():
        seen = first_seen[tag]
        if len(seen) < n:
            missing += n - len(seen)
            continue
        latencies.append((max(seen.values()) - t0) * 1000)
    copy_counts = [copies[msg_id] / (n - 1) for _, msg_id in published.values()]
    p50 = percentile(latencies, 0.5) if latencies else float("inf")
    p99 = percentile(latencies, 0.99) if latencies else float("inf")
    per_node = statistics.mean(copy_counts)
    return {
        "bench": "gossip",
        "nodes": n,
        "messages": messages,
        "fully_delivered": len(latencies),
        "missing_deliveries": missing,
        "p50_ms": round(p50, 2),
        "p99_ms": round(p99, 2),
        "copies_per_node_per_msg": round(per_node, 3),
        "mean_connections": round(statistics.mean(degrees), 2),
        "mean_mesh_degree": round(statistics.mean(meshes), 2),
        "pass": p99 <= 300 and per_node <= 3 and missing == 0,
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--nodes", type=int, default=32)
    p.add_argument("--messages", type=int, default=200)
    p.add_argument("--interval", type=float, default=0.02)
    p.add_argument("--seed", type=int, default=1)
    args = parse_args(p, QUICK)
    result = asyncio.run(run(args.nodes, args.messages, args.interval, args.seed))
    print(f"seed {args.seed}: {args.nodes} nodes, {args.messages} messages")
    print(f"latency to all nodes: p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms")
    print(f"copies received per node per message: {result['copies_per_node_per_msg']}")
    emit(result, JSON_KEYS)


if __name__ == "__main__":
    main()
