"""Prometheus metrics of one node at ``GET /metrics`` on its HTTP server [NODE-METRICS.1].

Two kinds of numbers, both in one ``CollectorRegistry`` per node (a test
process may run several nodes):

* **Read at scrape time** (``client.observe.collect.NodeCollector``): values
  the node already keeps — height, round, mempool size, peers, job counts —
  and the plain counters its parts bump (``ObservedNode.admissions``,
  ``p2p.Node.stats``, ``BlobService.stats``, ``ConsensusDriver.stats``, the
  worker's outbox and verifier). Nothing is copied, so nothing can drift.
* **Observed as they happen** (this module): events that carry a value a
  counter cannot hold — commit latency, the time in each consensus step and sandbox
  run durations (histograms) — and committed blocks, heard as a block listener.

Every name starts with ``learningchain_``; ``METRIC_NAMES`` lists them all,
and each metric's HELP text says what it means.
"""

from __future__ import annotations

import logging

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from client.node.handle import CommittedBlock
from client.node.step_times import STEP_TIMES
from client.observe.collect import NodeCollector
from client.observe.observed import ObservedNode
from client.worker.worker import Worker
from sandbox.results import EvalResult, FailureReason, RunResult

log = logging.getLogger("learningchain.metrics")

METRICS_PATH = "/metrics"
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
"""``text/plain; version=0.0.4; charset=utf-8``: what every Prometheus server reads."""

COMMIT_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
STEP_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Seconds in one consensus step: a proposal or a vote quorum on 127.0.0.1 takes
milliseconds, a WAN round trip tenths, a timeout seconds."""
"""Seconds; a healthy local graph commits in well under a second, a struggling one in rounds."""
RUN_SECONDS_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
"""Seconds of one sandbox entry point run (train or evaluate)."""

RUN_KINDS = ("train", "evaluate")
"""Sandbox calls counted as runs; other worker threads (image loads, hashing) are not."""
RUN_OUTCOMES = ("succeeded", *(reason.value for reason in FailureReason))

METRIC_NAMES = tuple("learningchain_" + name for name in (
    # who
    "node_info", "validators", "members", "sync_caught_up",
    # consensus
    "consensus_height", "consensus_round", "last_block_time_seconds", "last_block_age_seconds",
    "consensus_halted", "consensus_commit_stalled", "consensus_wal_blocked",
    "consensus_rounds_above_zero",
    "consensus_timeouts", "consensus_proposal_refs",
    "consensus_commit_latency_seconds", "consensus_step_duration_seconds",
    "blocks_committed", "txs_committed",
    # mempool
    "mempool_txs", "mempool_bytes", "mempool_admitted", "mempool_rejected",
    # peers
    "peers", "p2p_sent_bytes", "p2p_received_bytes", "p2p_sent_frames", "p2p_received_frames",
    "peer_bans", "peer_penalties", "peers_banned",
    # blobs
    "blob_fetches_started", "blob_fetches_completed", "blob_fetches_failed",
    "blob_fetched_bytes", "blob_served_bytes", "blob_served_chunks", "blob_served_bulk_ranges",
    "blob_relays",
    # jobs and the worker
    "jobs", "worker_runs_in_progress", "worker_job_progress_fraction",
    "worker_jobs_inconsistent", "worker_engine_unavailable",
    "worker_runs_finished",
    "worker_run_duration_seconds",
    "worker_claims_sent", "worker_reveals_sent", "worker_txs_rejected", "worker_votes",
))
"""Every metric family a node exposes (counters without their ``_total`` suffix)."""


class NodeMetrics:
    """The node's metric registry and the hooks that feed its event metrics."""

    def __init__(self, node: ObservedNode) -> None:
        self.node = node
        self.registry = CollectorRegistry(auto_describe=False)
        registry = self.registry
        self.blocks_committed = Counter(
            "learningchain_blocks_committed",
            "Blocks this node committed since it started (decided by consensus or block sync).",
            registry=registry)
        self.txs_committed = Counter(
            "learningchain_txs_committed",
            "Transactions in the blocks this node committed since it started.",
            registry=registry)
        self.commit_latency = Histogram(
            "learningchain_consensus_commit_latency_seconds",
            "Seconds from entering a height to this node's consensus deciding it.",
            buckets=COMMIT_LATENCY_BUCKETS, registry=registry)
        self.step_seconds = Histogram(
            "learningchain_consensus_step_duration_seconds",
            "Seconds this node's consensus spent in a step before leaving it, by step: "
            "propose (waiting for the proposal and its transactions, then executing it), "
            "prevote and precommit (waiting for a quorum of votes), commit (storing the "
            "decided block), new_height (the wait after a commit), rest (no transaction to "
            "record). Between two decisions all but rest add up to the commit latency.",
            ("step",), buckets=STEP_SECONDS_BUCKETS, registry=registry)
        for step in STEP_TIMES:
            self.step_seconds.labels(step)
        self.runs_finished = Counter(
            "learningchain_worker_runs_finished",
            "Sandbox runs of the worker that finished, by kind (train/evaluate) and outcome "
            "(succeeded, or the FailureReason).",
            ("kind", "outcome"), registry=registry)
        self.run_seconds = Histogram(
            "learningchain_worker_run_duration_seconds",
            "Wall time of the job's entry point in one sandbox run, by kind.",
            ("kind",), buckets=RUN_SECONDS_BUCKETS, registry=registry)
        for kind in RUN_KINDS:
            self.run_seconds.labels(kind)
            for outcome in RUN_OUTCOMES:
                self.runs_finished.labels(kind, outcome)
        registry.register(NodeCollector(node))

    # -- hooks -------------------------------------------------------------------------

    def on_block(self, event: CommittedBlock) -> None:
        """Block listener: one more block and its transactions."""
        self.blocks_committed.inc()
        self.txs_committed.inc(len(event.block.txs))

    def on_commit_latency(self, seconds: float) -> None:
        """``ConsensusDriver.on_commit_latency``: a height was decided ``seconds`` after entry."""
        self.commit_latency.observe(max(0.0, seconds))

    def on_step_time(self, step: str, seconds: float) -> None:
        """``ConsensusDriver.step_times``: the core left ``step`` after ``seconds``."""
        self.step_seconds.labels(step).observe(max(0.0, seconds))

    def on_sandbox_result(self, name: str, result: object) -> None:
        """``Threads.on_result``: a worker thread returned; runs are counted by kind and outcome.

        ``train`` returns a ``RunResult`` and ``evaluate`` an ``EvalResult``; every other
        thread (image checks, hashing) is ignored.
        """
        if name not in RUN_KINDS or not isinstance(result, RunResult | EvalResult):
            return
        outcome = "succeeded" if result.ok else str(result.reason or "unknown")
        self.runs_finished.labels(name, outcome).inc()
        self.run_seconds.labels(name).observe(max(0.0, float(result.seconds)))

    def attach_worker(self, worker: Worker) -> None:
        """Called by the node once its worker exists (before it starts)."""
        worker.threads.on_result = self.on_sandbox_result

    # -- exposition --------------------------------------------------------------------

    def render(self) -> bytes:
        """The registry in the Prometheus text format 0.0.4."""
        return generate_latest(self.registry)

    async def handle(self, _request: web.Request) -> web.Response:
        return web.Response(body=self.render(), headers={"Content-Type": CONTENT_TYPE})


def install_metrics(app: web.Application, node: ObservedNode) -> NodeMetrics:
    """Adds ``GET /metrics`` to ``app`` and hooks the node's event sources; before the app runs."""
    disable_created_metrics()  # process-wide: no ``*_created`` series next to every counter
    metrics = NodeMetrics(node)
    app.router.add_get(METRICS_PATH, metrics.handle)
    node.add_block_listener(metrics.on_block)
    node.driver.on_commit_latency = metrics.on_commit_latency
    node.driver.step_times.on_time = metrics.on_step_time
    if node.worker is not None:
        metrics.attach_worker(node.worker)
    return metrics
