"""Metrics read from the node at scrape time: its state and the counters its parts keep.

``NodeCollector.collect`` runs on the event loop inside the ``/metrics``
handler, so it sees one consistent moment of the node and must stay cheap:
it only reads (no ban expiry, no I/O).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from chain.records import JobStatus
from client.observe.observed import ObservedNode
from p2p.scoring import Offence

P = "learningchain_"
TIMEOUT_STEPS = ("propose", "prevote", "precommit")
"""Timeouts that cost a step (NEW_HEIGHT pacing and rebroadcasts are routine, not counted)."""
REFS_OUTCOMES = ("expanded", "waiting", "expanded_late", "gave_up")
"""``ConsensusDriver.stats["refs:<outcome>"]``: a waiting proposal ends expanded_late or
gave_up (or superseded by its height's decision)."""
BLOB_FAILURES = {
    "BlobUnavailable": "unavailable",
    "BlobTooLarge": "too_large",
    "BlobCorrupt": "corrupt",
    "CancelledError": "cancelled",
    "TimeoutError": "timeout",
}
"""Exception names ``BlobService.stats`` records -> the ``reason`` label; others are ``error``."""


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(P + name, doc, value=value)


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(P + name, doc, value=value)


def _labelled(family: GaugeMetricFamily | CounterMetricFamily,
              samples: Iterable[tuple[tuple[str, ...], float]]) -> Metric:
    for labels, value in samples:
        family.add_metric(list(labels), value)
    return family


class NodeCollector(Collector):
    """Everything about a ``ObservedNode`` that can be read rather than counted as it happens."""

    def __init__(self, node: ObservedNode) -> None:
        self.node = node

    def describe(self) -> Iterable[Metric]:
        return []  # names are not checked for clashes: this registry belongs to one node

    def collect(self) -> Iterable[Metric]:
        yield from self._node()
        yield from self._consensus()
        yield from self._mempool()
        yield from self._peers()
        yield from self._blobs()
        yield from self._jobs()
        yield from self._worker()

    # -- sections ----------------------------------------------------------------------

    def _node(self) -> Iterator[Metric]:
        node = self.node
        info = GaugeMetricFamily(P + "node_info", "Constant 1, labelled with who this node is.",
                                 labels=("chain_id", "address", "roles"))
        info.add_metric([node.chain_id, node.address_text, ",".join(node.roles)], 1)
        yield info
        state = node.state
        yield _gauge("validators", "Validators in the current set.", len(state.keys("validator")))
        yield _gauge("members", "Admitted member accounts.", len(state.keys("member")))
        yield _gauge("sync_caught_up", "1 when block sync believes this node is at the tip.",
                     1 if node.sync.caught_up.is_set() or not node.p2p.peers else 0)

    def _consensus(self) -> Iterator[Metric]:
        node, driver = self.node, self.node.driver
        state = node.state
        yield _gauge("consensus_height", "Height of the last committed block.", node.height)
        yield _gauge("consensus_round", "Consensus round of the height being decided.",
                     driver.round)
        yield _gauge("last_block_time_seconds", "Block time of the last committed block (Unix).",
                     state.time_ms / 1000 if node.height else 0)
        yield _gauge("last_block_age_seconds", "Seconds since the last committed block's time.",
                     max(0.0, time.time() - state.time_ms / 1000) if node.height else 0)
        yield _gauge("consensus_halted", "1 when consensus stopped (the node cannot go on).",
                     1 if driver.halted is not None else 0)
        yield _gauge("consensus_commit_stalled",
                     "1 while a decided block waits to be stored (e.g. database locked).",
                     1 if driver.commit_stalled is not None else 0)
        yield _gauge("consensus_wal_blocked",
                     "1 while a signed message waits to be written to the WAL (disk full).",
                     1 if driver.wal_blocked is not None else 0)
        stats = driver.stats
        yield _counter("consensus_rounds_above_zero",
                       "Rounds above 0 this node entered: a height needed more than one round.",
                       stats["rounds_above_zero"])
        yield _labelled(
            CounterMetricFamily(P + "consensus_timeouts",
                                "Timeouts that moved this node's consensus on, by step.",
                                labels=("step",)),
            (((step,), stats[f"timeout:{step}"]) for step in TIMEOUT_STEPS))
        yield _labelled(
            CounterMetricFamily(P + "consensus_proposal_refs",
                                "Proposals by reference [NODE-CONS.4] this node received, by "
                                "outcome: expanded from the mempool at once, waiting for "
                                "transactions, expanded_late once they came, gave_up.",
                                labels=("outcome",)),
            (((outcome,), stats[f"refs:{outcome}"]) for outcome in REFS_OUTCOMES))

    def _mempool(self) -> Iterator[Metric]:
        mempool = self.node.mempool
        pending = mempool.reap(len(mempool))
        yield _gauge("mempool_txs", "Transactions pending in the mempool.", len(pending))
        yield _gauge("mempool_bytes", "Bytes of the transactions pending in the mempool.",
                     sum(len(tx.wire) for tx in pending))
        admitted = CounterMetricFamily(
            P + "mempool_admitted", "Transactions the mempool accepted, by source (local/gossip).",
            labels=("source",))
        rejected = CounterMetricFamily(
            P + "mempool_rejected",
            "Transactions the mempool refused, by source and reason (duplicate, mempool_full, "
            "sender_limit, or the validation error code).", labels=("source", "reason"))
        counts: Mapping[tuple[str, str], int] = self.node.admissions
        for source in ("local", "gossip"):
            admitted.add_metric([source], counts.get((source, "accepted"), 0))
        for (source, reason), value in sorted(counts.items()):
            if reason != "accepted":
                rejected.add_metric([source, reason], value)
        yield admitted
        yield rejected

    def _peers(self) -> Iterator[Metric]:
        p2p = self.node.p2p
        outbound = sum(1 for peer in p2p.peers.values() if peer.outbound)
        yield _labelled(
            GaugeMetricFamily(P + "peers", "Connected peers, by direction.",
                              labels=("direction",)),
            ((("inbound",), len(p2p.peers) - outbound), (("outbound",), outbound)))
        stats = p2p.stats
        yield _counter("p2p_sent_bytes", "Bytes of p2p frames sent to peers.",
                       stats["bytes_sent"])
        yield _counter("p2p_received_bytes", "Bytes of p2p frames received from peers.",
                       stats["bytes_received"])
        yield _counter("p2p_sent_frames", "P2p frames sent to peers.", stats["frames_sent"])
        yield _counter("p2p_received_frames", "P2p frames received from peers.",
                       stats["frames_received"])
        yield _counter("peer_bans", "Peers banned for misbehaviour.", stats["bans"])
        yield _labelled(
            CounterMetricFamily(P + "peer_penalties", "Score penalties charged to peers, by "
                                "offence.", labels=("offence",)),
            (((o.name.lower(),), stats[f"penalty:{o.name}"]) for o in Offence))
        now = p2p.now()
        yield _gauge("peers_banned", "Peers banned right now.",
                     sum(1 for until in p2p.bans.until.values() if until > now))

    def _blobs(self) -> Iterator[Metric]:
        stats = self.node.blobs.stats
        yield _counter("blob_fetches_started", "Blob fetches started (blob not in the store).",
                       stats["fetches_started"])
        yield _counter("blob_fetches_completed", "Blob fetches that stored the verified blob.",
                       stats["fetches_completed"])
        failed: Counter[str] = Counter({reason: 0 for reason in (*BLOB_FAILURES.values(), "error")})
        for key, value in stats.items():
            if key.startswith("failed:"):
                failed[BLOB_FAILURES.get(key.removeprefix("failed:"), "error")] += value
        yield _labelled(
            CounterMetricFamily(P + "blob_fetches_failed", "Blob fetches that failed, by reason.",
                                labels=("reason",)),
            (((reason,), value) for reason, value in sorted(failed.items())))
        yield _counter("blob_fetched_bytes", "Verified blob bytes received from peers.",
                       stats["bytes_fetched"])
        yield _counter("blob_served_bytes",
                       "Blob bytes served to peers (WebSocket chunk frames and bulk ranges).",
                       stats["bytes_served"])
        yield _counter("blob_served_chunks", "Blob chunks served to peers over WebSocket frames.",
                       stats["chunks_served"])
        yield _counter("blob_served_bulk_ranges", "Bulk range requests served [WIRE-BLOB.9].",
                       stats["bulk_streams_served"])
        yield _counter("blob_relays", "Blobs fetched because a peer asked for them and "
                       "another peer announced them [WIRE-BLOB.10].", stats["relayed"])

    def _jobs(self) -> Iterator[Metric]:
        state = self.node.state
        by_status: Counter[str] = Counter({status.value: 0 for status in JobStatus})
        for key in state.keys("job"):
            job = state.job(key)
            if job is not None:
                by_status[str(job.status)] += 1
        yield _labelled(
            GaugeMetricFamily(P + "jobs", "Jobs on chain, by status.", labels=("status",)),
            (((status,), value) for status, value in sorted(by_status.items())))

    def _worker(self) -> Iterator[Metric]:
        worker: Any = self.node.worker
        running: Counter[str] = Counter(worker.threads.running_names() if worker else ())
        yield _labelled(
            GaugeMetricFamily(P + "worker_runs_in_progress",
                              "Sandbox runs of the worker in progress, by kind.",
                              labels=("kind",)),
            (((kind,), running[kind]) for kind in ("train", "evaluate")))
        trainer = worker.trainer if worker is not None else None
        # /metrics is open to anyone: only the public view [API-PROGRESS.3], no step
        views = getattr(trainer, "live_progress", None)
        live: Mapping[bytes, Mapping[str, Any]] = views() if views is not None else {}
        yield _labelled(
            GaugeMetricFamily(P + "worker_job_progress_fraction",
                              "[API-PROGRESS.3] Fraction done of this worker's training run in "
                              "progress: the public view of the job's progress file (whole "
                              "percent, at most one change per 30 s).",
                              labels=("job",)),
            (((job.hex(),), float(p["fraction"])) for job, p in sorted(live.items())))
        yield _counter("worker_jobs_inconsistent",
                       "Jobs whose evaluation disagreed with itself in the worker's self-check "
                       "[WORK-SELFCHECK.1] (never claimed), since the node started.",
                       trainer.inconsistent_found if trainer is not None else 0)
        yield _gauge("worker_engine_unavailable",
                     "1 while job work waits for a Docker engine that failed mid-run.",
                     1 if worker is not None and worker.engine_problem is not None else 0)
        sent: Mapping[str, int] = worker.outbox.counters if worker else {}
        yield _counter("worker_claims_sent", "Loss claims the worker sent (resends included).",
                       sent.get("claim", 0))
        yield _counter("worker_reveals_sent", "Model reveals the worker sent.",
                       sent.get("reveal", 0))
        yield _counter("worker_txs_rejected", "Worker transactions the node refused.",
                       sent.get("rejected", 0))
        verifier = worker.verifier if worker else None
        votes: Mapping[tuple[str, bool], int] = verifier.votes if verifier else {}
        yield _labelled(
            CounterMetricFamily(P + "worker_votes",
                                "Verification votes the worker sent, by step (commit/reveal) "
                                "and verdict (valid/invalid).", labels=("step", "verdict")),
            (((step, "valid" if valid else "invalid"), votes.get((step, valid), 0))
             for step in ("commit", "reveal") for valid in (True, False)))
