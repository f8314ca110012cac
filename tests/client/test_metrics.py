"""[NODE-METRICS.1] Real nodes on loopback serve ``/metrics``; the numbers move with what happens.

Each test starts real ``LedgerNode``s in this process (ports chosen by the OS) and
scrapes them over HTTP; every scrape must parse with the Prometheus parser.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import threading
import types
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from chain.crypto import address_to_text
from chain.keyfile import read_key_file
from chain.transactions import Transfer, sign_transaction
from chain.types import Address, Amount, Height, Round
from client.devnet.network import NetworkLayout, create_network
from client.node.config import NodeConfig, WorkerPolicy
from client.node.ledger_node import LedgerNode
from client.observe.metrics import METRIC_NAMES
from client.worker.worker import Worker
from p2p.blobstore import BlobUnavailable
from p2p.scoring import Offence
from sandbox.results import EvalResult, FailureReason, RunResult
from tests.framework.wait import describe, wait_until_async

Families = dict[str, list[Sample]]
FAST = {"propose_ms": 300, "prevote_ms": 150, "precommit_ms": 150, "commit_ms": 50}
SLOW_PROPOSE = {**FAST, "propose_ms": 1500}
"""Room to start and connect a graph before anyone's first propose timeout."""


# -- helpers -----------------------------------------------------------------------------

async def scrape(node: LedgerNode) -> Families:
    """GET /metrics over HTTP; checks the content type and that the text parses."""
    async with aiohttp.ClientSession() as session, \
            session.get(f"http://127.0.0.1:{node.api.port}/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await response.text()
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def value(families: Families, sample: str, **labels: str) -> float:
    """The one sample called ``sample`` whose labels include ``labels``."""
    family = sample
    for suffix in ("_total", "_count", "_sum", "_bucket"):
        family = family.removesuffix(suffix)
    found = [s.value for s in families[family]
             if s.name == sample and labels.items() <= s.labels.items()]
    assert len(found) == 1, (sample, labels, families[family])
    return found[0]


async def wait_for(node: LedgerNode, check: Callable[[Families], bool],
                   timeout: float = 15.0) -> Families:
    """Scrapes until ``check`` holds; returns that scrape."""
    async def scraped() -> Families | None:
        families = await scrape(node)
        return families if check(families) else None

    return await wait_until_async(scraped, timeout=timeout, step=0.1,
                                  what=f"metrics: {describe(check)}")


def gossiped(families: Families) -> float:
    """Transactions that reached the mempool by gossip, admitted or not."""
    names = ("learningchain_mempool_admitted", "learningchain_mempool_rejected")
    return sum(s.value for name in names for s in families[name]
               if s.labels["source"] == "gossip")


def network(tmp_path: Path, validators: int) -> NetworkLayout:
    return create_network(tmp_path / "net", validators=validators, workers=0,
                          users={"alice": 1_000, "bob": 0}, consensus=FAST)


def local_node(layout: NetworkLayout, index: int, *bootstrap: str) -> LedgerNode:
    """Node ``index`` of the layout on OS-chosen ports, dialling only ``bootstrap``."""
    config = NodeConfig.load(layout.nodes[index].config)
    return LedgerNode(dataclasses.replace(config, p2p_port=0, api_port=0, bootstrap=bootstrap))


def transfer(layout: NetworkLayout, node: LedgerNode, amount: int):  # type: ignore[no-untyped-def]
    alice = next(u for u in layout.users if u.name == "alice")
    bob = next(u for u in layout.users if u.name == "bob")
    key = read_key_file(alice.key_file, alice.passphrase_file.read_text().strip())
    from chain.crypto import address_from_text

    return sign_transaction(key, node.chain_id, node.next_nonce(key.address),
                            Transfer(Address(address_from_text(bob.address)), Amount(amount)))


# -- one node ----------------------------------------------------------------------------

async def test_metrics_single_node_scrape_lists_every_metric_and_counts_a_transfer(
        tmp_path: Path) -> None:
    """[NODE-METRICS.1] ``GET /metrics`` over HTTP: text format 0.0.4 that the Prometheus
    parser reads, exactly the names of ``METRIC_NAMES``, values read at scrape time that
    move with a transfer, and the commit latency and the time in each consensus step as
    histograms."""
    layout = network(tmp_path, validators=1)
    node = local_node(layout, 0)
    await node.start()
    try:
        first = await scrape(node)
        assert set(first) == set(METRIC_NAMES)
        info = first["learningchain_node_info"][0]
        assert info.labels["address"] == node.address_text and info.value == 1
        assert value(first, "learningchain_validators") == 1
        assert value(first, "learningchain_worker_runs_finished_total",
                     kind="train", outcome="timeout") == 0
        start_height = value(first, "learningchain_consensus_height")
        start_blocks = value(first, "learningchain_blocks_committed_total")

        tx = transfer(layout, node, 25)
        assert node.submit(tx).accepted
        assert not node.submit(tx).accepted  # the same again: a duplicate
        pending = await scrape(node)
        if node.tx_location(tx.hash) is None:  # not yet in a block: it is pending
            assert value(pending, "learningchain_mempool_txs") == 1
            assert value(pending, "learningchain_mempool_bytes") == len(tx.wire)

        after = await wait_for(node, lambda f: value(f, "learningchain_txs_committed_total") >= 1)
        assert node.tx_location(tx.hash) is not None
        assert value(after, "learningchain_mempool_admitted_total", source="local") == 1
        assert value(after, "learningchain_mempool_rejected_total",
                     source="local", reason="duplicate") == 1
        assert value(after, "learningchain_mempool_txs") == 0
        assert value(after, "learningchain_consensus_height") > start_height
        assert value(after, "learningchain_blocks_committed_total") > start_blocks
        decided = value(after, "learningchain_consensus_commit_latency_seconds_count")
        assert decided >= 1
        # Every decision stored once, each in a step of its own [the step histogram]
        assert value(after, "learningchain_consensus_step_duration_seconds_count",
                     step="commit") == decided
        assert value(after, "learningchain_consensus_step_duration_seconds_sum",
                     step="commit") > 0
        assert value(after, "learningchain_consensus_proposal_refs_total",
                     outcome="gave_up") == 0  # alone: its own proposals are never by reference
        assert value(after, "learningchain_last_block_time_seconds") > 0
    finally:
        await node.stop()


async def test_metrics_worker_runs_are_counted_by_kind_and_outcome(tmp_path: Path) -> None:
    """The worker's thread hook, with real result records; the worker is built, not started."""
    layout = network(tmp_path, validators=1)
    node = local_node(layout, 0)
    await node.start()
    try:
        worker = Worker(node, WorkerPolicy())
        node.worker = worker
        node.metrics.attach_worker(worker)
        release = threading.Event()

        def train() -> RunResult:
            release.wait(10)
            return RunResult(False, FailureReason.TIMEOUT, None, 42.0, b"", None)

        def evaluate() -> EvalResult:
            return EvalResult(True, None, 0.25, seconds=3.0)

        def keep_model() -> str:
            return "not a run"

        running = asyncio.create_task(worker.threads.run(train))
        busy = await wait_for(node, lambda f: value(
            f, "learningchain_worker_runs_in_progress", kind="train") == 1)
        assert value(busy, "learningchain_worker_runs_in_progress", kind="evaluate") == 0
        release.set()
        await running
        await worker.threads.run(evaluate)
        await worker.threads.run(keep_model)
        worker.outbox.counters["claim"] += 1  # what Outbox.send counts for a claim

        done = await scrape(node)
        assert value(done, "learningchain_worker_runs_in_progress", kind="train") == 0
        assert value(done, "learningchain_worker_runs_finished_total",
                     kind="train", outcome="timeout") == 1
        assert value(done, "learningchain_worker_runs_finished_total",
                     kind="evaluate", outcome="succeeded") == 1
        assert sum(s.value for s in done["learningchain_worker_runs_finished"]
                   if s.name.endswith("_total")) == 2  # keep_model is not a run
        assert value(done, "learningchain_worker_run_duration_seconds_sum", kind="train") == 42
        assert value(done, "learningchain_worker_run_duration_seconds_bucket",
                     kind="evaluate", le="5.0") == 1
        assert value(done, "learningchain_worker_claims_sent_total") == 1
        assert value(done, "learningchain_worker_votes_total",
                     step="commit", verdict="valid") == 0
        assert value(done, "learningchain_worker_jobs_inconsistent_total") == 0
        # [WORK-SELFCHECK.1] what the trainer counts when a self-check disagrees
        worker.trainer = types.SimpleNamespace(inconsistent_found=2, engine_problem=None,
                                               task=None)  # type: ignore[assignment]
        counted = await scrape(node)
        assert value(counted, "learningchain_worker_jobs_inconsistent_total") == 2
        worker.trainer = None
    finally:
        node.worker = None  # never started: nothing of it to stop
        await node.stop()


# -- a graph ------------------------------------------------------------------------------

async def test_metrics_three_of_four_validators_count_timeouts_rounds_peers_bytes_blobs_bans(
        tmp_path: Path) -> None:
    """The proposer of height 1 round 0 is down: the others time out, go to round 1, commit."""
    layout = create_network(tmp_path / "net", validators=4, workers=0,
                            users={"alice": 1_000, "bob": 0}, consensus=SLOW_PROPOSE)
    probe = local_node(layout, 0)
    absent = address_to_text(
        probe.app.validators_at(Height(1)).proposer(Height(1), Round(0)).address)
    nodes = [probe if i == 0 else local_node(layout, i)
             for i, n in enumerate(layout.nodes) if n.address != absent]
    if probe not in nodes:
        probe.ledger.close()
    started: list[LedgerNode] = []
    try:
        for node in nodes:  # all up and connected well before the 1.5 s propose timeout
            await node.start()
            started.append(node)
        for node in nodes[1:]:
            for earlier in nodes[:nodes.index(node)]:
                node.p2p.connect("127.0.0.1", earlier.p2p.listen_port)
        for node in nodes:
            await wait_for(node, lambda f: value(f, "learningchain_consensus_height") >= 1
                           and value(f, "learningchain_blocks_committed_total") >= 1)
        for node in nodes:
            done = await scrape(node)
            assert value(done, "learningchain_consensus_timeouts_total", step="propose") >= 1
            assert value(done, "learningchain_consensus_rounds_above_zero_total") >= 1
            assert value(done, "learningchain_peers", direction="inbound") \
                + value(done, "learningchain_peers", direction="outbound") == 2
            assert value(done, "learningchain_p2p_sent_bytes_total") > 0
            assert value(done, "learningchain_p2p_received_bytes_total") > 0
        first, second = nodes[0], nodes[1]

        # Traffic keeps moving; a transfer submitted to one reaches another's mempool by gossip
        # (admitted, or refused when its block got there first) and is committed.
        before = await scrape(second)
        tx = transfer(layout, first, 5)
        assert first.submit(tx).accepted
        later = await wait_for(second, lambda f: gossiped(f) >= 1
                               and value(f, "learningchain_txs_committed_total") >= 1)
        for name in ("p2p_sent_bytes", "p2p_received_bytes", "p2p_received_frames"):
            sample = f"learningchain_{name}_total"
            assert value(later, sample) > value(before, sample), name

        # A blob published on one node is fetched by another; an unknown one fails.
        source = tmp_path / "blob.bin"
        source.write_bytes(os.urandom(1_500_000))
        blob = first.put_blob_file(source)
        await second.fetch_blob(blob)
        with pytest.raises(BlobUnavailable):
            await second.blobs.fetch(b"\x01" * 32, patience=0.3)
        fetcher = await scrape(second)
        assert value(fetcher, "learningchain_blob_fetches_started_total") == 2
        assert value(fetcher, "learningchain_blob_fetches_completed_total") == 1
        assert value(fetcher, "learningchain_blob_fetches_failed_total", reason="unavailable") == 1
        assert value(fetcher, "learningchain_blob_fetched_bytes_total") == 1_500_000
        served = [await scrape(node) for node in nodes if node is not second]
        # 2 chunks of 1 MiB + 0.43 MiB go over the bulk stream [WIRE-BLOB.9]
        assert sum(value(f, "learningchain_blob_served_bulk_ranges_total") for f in served) >= 1
        assert sum(value(f, "learningchain_blob_served_chunks_total") for f in served) == 0
        assert sum(value(f, "learningchain_blob_served_bytes_total") for f in served) >= 1_500_000

        # Misbehaviour: penalties are counted by offence, and so is the ban that follows.
        peer = first.p2p.peers[second.key.address]
        first.p2p.penalize(peer, Offence.OVERSIZED_FRAME)
        first.p2p.penalize(peer, Offence.OVERSIZED_FRAME)
        banned = await scrape(first)
        assert value(banned, "learningchain_peer_penalties_total", offence="oversized_frame") == 2
        assert value(banned, "learningchain_peer_bans_total") == 1
        assert value(banned, "learningchain_peers_banned") == 1
    finally:
        for node in reversed(started):
            await node.stop()
