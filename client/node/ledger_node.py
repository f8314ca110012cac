"""The node process: storage, mempool, p2p, consensus, blobs, HTTP API and worker, wired.

``LedgerNode`` implements ``client.node.handle.NodeHandle``. Roles decide what
runs: every node stores and follows the chain (full); a ``validator`` signs
consensus messages with its key; a ``worker`` trains and verifies jobs.
Restart resumes where it stopped: the ledger is in the database, signed
consensus messages in the WAL, the worker's claims under ``data_dir/worker``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from chain.blocks import Block
from chain.consensus.config import (
    DEFAULT_CLOCK_PRECISION_MS,
    DEFAULT_MESSAGE_DELAY_MS,
    ConsensusConfig,
)
from chain.consensus.evidence import DuplicateVoteEvidence
from chain.consensus.timeouts import TimeoutConfig
from chain.consensus.wal import WriteAheadLog
from chain.crypto import PrivateKey
from chain.encoding import decode, encode
from chain.errors import ChainError, DecodeError
from chain.genesis import Genesis
from chain.governance.bodies import Evidence
from chain.keyfile import read_key_file
from chain.ledger import Ledger
from chain.mempool import AddResult, Admission, Mempool, MempoolLimits
from chain.pacing import DEFAULT_EMPTY_BLOCK_INTERVAL_MS, rest_check_ms
from chain.statesync.roots import STATE_SYNC_VERSION
from chain.storage import sqlite_url
from chain.transactions import SignedTransaction, sign_transaction
from chain.types import Address
from client.api.server import ApiServer
from client.federated.member.node_loop import FederatedMember
from client.node import submit_window
from client.node.config import NodeConfig
from client.node.consensus_driver import CONSENSUS_TOPIC, ConsensusDriver
from client.node.handle import BlockListener, CommittedBlock, NodeStatus, PeerInfo
from client.node.join_notice import JoinNotice
from client.node.ledger_app import LedgerApp
from client.node.pruning import BlockPruner
from client.node.sig_batch import BatchVerifier
from client.node.snapshots import SnapshotKeeper
from client.node.state_sync import Restored, StateSyncFailed, state_sync
from client.node.stored_chain import StoredChainReads
from client.node.upgrade import (
    UPGRADE_EXIT_STATUS,
    BadVersionOverride,
    UpgradeRequired,
    clear_upgrade_info,
    highest_known_version,
    write_upgrade_info,
)
from client.observe.dashboard import install_dashboard
from client.observe.loop_stall import start_loop_stall_watch
from client.observe.memory_trace import start_memory_trace, stop_memory_trace
from client.observe.metrics import NodeMetrics, install_metrics
from client.predict.executor.loop import Executor
from client.predict.withdraw import PredictWithdrawal
from client.worker.worker import Worker
from p2p.blobs import BlobService
from p2p.blobstore import BlobStore
from p2p.config import GossipParams, P2PConfig
from p2p.gossip import Gossip
from p2p.gossip_core import Verdict
from p2p.node import Node
from p2p.scoring import Offence
from p2p.snapshots import SnapshotService
from p2p.sync import BlockSync
from p2p.tuning import limit_arenas
from sandbox.errors import SandboxError

log = logging.getLogger("learningchain.node")

TX_TOPIC = "tx"
REFS_CAPABILITY = "consensus-refs"
"""[NODE-CONS.4] Announced among the handshake's topics: this node reads proposals sent by
reference. No message is ever published on it."""
IDS_CAPABILITY = "consensus-ids"
"""[NODE-CONS.4] Announced as well: this node reads proposals by short ids [CONS-MSG.4]."""
TX_BATCH_BYTES = 60 * 1024
"""[NODE-TX.1] New transactions are gossiped in batches: a msgpack list of tx wires."""
TX_FLUSH_SECONDS = 0.02
MEMPOOL_LIMITS = MempoolLimits(max_txs=8_000, max_bytes=8 * 1024 * 1024, max_per_sender=2_000)
"""[NODE-MEMPOOL.1] About two blocks of work: beyond that, new transactions get 'full' (HTTP 503)
and the sender retries, instead of the node falling behind consensus."""
LOCAL_SUBMIT_LIMIT = submit_window.FLOOR
"""[NODE-MEMPOOL.2] Transactions submitted here (API, worker) are refused with 'full' while this
many are pending (grown up to ``submit_window.CEILING`` while the node's loop is idle), leaving
the rest of the pool for what peers gossip: a graph under load keeps its queue (and so the
submit-to-final latency) short, and clients back off and retry."""
FOLLOW_TICK_S = 1.0
"""Tick listeners run after this long without a committed block [CONS-PACE.1]."""
_FATAL_TX_CODES = {"bad_signature", "decode_error", "bad_field", "non_canonical"}


class LedgerNode(StoredChainReads):
    """A running node; ``async with LedgerNode(config) as node: await node.wait_stopped()``."""

    def __init__(self, config: NodeConfig, *, key: PrivateKey | None = None) -> None:
        self.config = config
        self.genesis = Genesis.load(config.genesis)
        self.key = key or read_key_file(config.key_file, config.passphrase())
        self._api_token = config.api_token()  # [API-AUTH.5] checked before anything binds
        self.data_dir = config.data_dir
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.roles = config.roles
        self.ledger = Ledger.open(config.storage_url or sqlite_url(self.data_dir), self.genesis)
        limit_arenas()  # before the verify threads: see p2p.tuning.limit_arenas
        self.verifier = BatchVerifier()  # [TX-SIG-CACHE.2] signatures on every core
        self.ledger.prefill = self.verifier.prefill
        self.mempool = Mempool(self.ledger.state, self.ledger.signatures, MEMPOOL_LIMITS)
        self.app = LedgerApp(self.ledger, self.mempool, self.key.address,
                             on_committed=self._on_committed, on_synced=self._on_synced,
                             empty_block_interval_ms=self.genesis.timing(  # [CONS-PACE.3]
                                 "empty_block_interval_ms", DEFAULT_EMPTY_BLOCK_INTERVAL_MS))
        self.p2p = Node(self.key, P2PConfig(
            chain_id=self.genesis.chain_id, host=config.p2p_host, port=config.p2p_port,
            bootstrap=config.bootstrap, peer_exchange=config.peer_exchange,
            is_admitted=self._is_admitted,
            gossip=GossipParams(max_message_size=((TX_TOPIC, 64 * 1024),
                                                  (CONSENSUS_TOPIC, 3 * 1024**2))),
            topics=(TX_TOPIC, CONSENSUS_TOPIC, REFS_CAPABILITY, IDS_CAPABILITY),
        ))
        self.gossip = Gossip(self.p2p)
        self.gossip.subscribe(TX_TOPIC, self._on_tx_gossip)
        self.blob_store = BlobStore(self.data_dir / "blobs")
        self.blobs = BlobService(self.p2p, self.blob_store)
        self.snapshots = SnapshotKeeper(self.data_dir / "snapshots", self.ledger,
                                        config.statesync, self.blob_store, self.blobs.announce)
        self.snapshots.load()
        self.snapshot_service = SnapshotService(self.p2p, self.snapshots)  # [WIRE-SNAP.*]
        self.restored: Restored | None = None
        """[SNAP-RESTORE.1] What state sync restored at start, if it ran."""
        self.sync = BlockSync(self.p2p, self.app)
        self.app.max_protocol_version = highest_known_version()  # [UPGRADE-HALT.2]
        self.pruner = BlockPruner(self.ledger.storage, config.retain_blocks)  # [STORE-PRUNE.3]
        self.join_notice = JoinNotice(self.address_text, self.genesis.chain_id)  # [NODE-JOIN.1]
        self.p2p.on_refused(self.join_notice.on_refused)
        self.p2p.on_connect(self.join_notice.on_connect)
        timeouts = config.consensus
        wal, wal_history = WriteAheadLog.open(self.data_dir / "consensus.wal")
        self.driver = ConsensusDriver(
            self.app,
            self.key if config.is_validator else None,
            ConsensusConfig(self.genesis.chain_id, TimeoutConfig(
                propose_base_ms=timeouts.propose_ms, prevote_base_ms=timeouts.prevote_ms,
                precommit_base_ms=timeouts.precommit_ms, commit_ms=timeouts.commit_ms,
            ), clock_precision_ms=self.genesis.timing(  # [GENESIS-TIMING.1]
                "clock_precision_ms", DEFAULT_CLOCK_PRECISION_MS),
                message_delay_ms=self.genesis.timing(
                    "message_delay_ms", DEFAULT_MESSAGE_DELAY_MS),
                rest_check_ms=rest_check_ms(self.app.empty_block_interval_ms)),
            wal,
            wal_history,
            self._publish_consensus,
            on_evidence=self._on_evidence, on_misbehaviour=self._on_misbehaviour,
            on_halt=self._on_halt,
        )
        self.gossip.subscribe(CONSENSUS_TOPIC, self.driver.on_gossip)
        self.gossip.after_accept(CONSENSUS_TOPIC, self.driver.drain_now)  # [NODE-CONS.3]
        self.driver.before_proposal = self._flush_txs
        compact = os.environ.get("LC_COMPACT_PROPOSALS", "1")
        if compact != "0":  # "refs": by hashes only, not by short ids
            self.driver.compact = self._peers_read_refs
            if compact != "refs":
                self.driver.short_ids = self._peers_read_ids
        self.api: ApiServer | None = None
        self.worker: Worker | None = None
        self.federated: FederatedMember | None = None
        """Aggregates and votes for federated jobs (``[worker] verify`` and ``federated``)."""
        self.executor: Executor | None = None
        """Answers prediction requests drawn to this node (``[worker] predict``)."""
        self.predict_withdrawal: PredictWithdrawal | None = None
        """With ``predict`` off: takes back a bond left from when it was on."""
        self.metrics: NodeMetrics | None = None
        """Prometheus counters the node's parts bump, once the API runs."""
        self.admissions: Counter[tuple[str, str]] = Counter()
        self.submit_window = submit_window.SubmitWindow(floor=LOCAL_SUBMIT_LIMIT)
        """Metrics: mempool admissions by (``local``/``gossip``, ``accepted`` or the code)."""
        self._listeners: list[BlockListener] = []
        self._tick_listeners: list[Callable[[], None]] = []
        self._listener_queue: asyncio.Queue[CommittedBlock] | None = None
        self._tx_batch: list[bytes] = []
        self._tx_batch_bytes = 0
        self._flush_handle: asyncio.TimerHandle | None = None
        self._resync_pending = False
        self._stopped: asyncio.Event | None = None
        self.stop_requested = False  # by a signal: a start it cuts short is no fault
        self.exit_error: BaseException | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        upgrade = self.app.upgrade_required()
        if upgrade is not None:  # [UPGRADE-HALT.1] this software cannot run the next height
            write_upgrade_info(self.data_dir, upgrade)
            raise upgrade
        clear_upgrade_info(self.data_dir)
        self._stopped = asyncio.Event()
        self._listener_queue = asyncio.Queue()
        self.sync.held = self._state_sync_wanted()  # block sync would leave genesis meanwhile
        await self.p2p.start()
        # Consensus runs from the first connection: a peer's proposal or vote that arrived
        # while state sync was asking for offers would otherwise be gossip-marked as seen
        # and never counted (a two-validator graph stalled at height 0 that way).
        self.gossip.start()
        self.sync.start()
        self.driver.start()
        # [NODE-CONS.3] the one owner of consensus state; cancelled in stop() with the others
        self._tasks.append(asyncio.create_task(self.driver.run(), name="consensus"))
        self._tasks.append(asyncio.create_task(self._deliver_blocks(), name="block-listeners"))
        self._tasks.append(asyncio.create_task(submit_window.probe_lag(self.submit_window),
                                               name="loop-lag"))  # [NODE-MEMPOOL.2]
        if self.sync.held:
            try:
                await self._state_sync()
            finally:
                self.sync.held = False
            if self.restored is not None:
                self.driver.resync()  # the core moves to the restored height + 1
        self.api = ApiServer(self, self.config.api_host, self.config.api_port,
                             token=self._api_token, upload_limits=self.config.api_uploads)
        # Routes must be added before the server starts (aiohttp freezes the router).
        self.metrics = install_metrics(self.api.app, self)
        install_dashboard(self.api.app, self)
        await self.api.start()
        if self.config.is_worker:
            self.worker = Worker(self, self.config.worker)
            self.metrics.attach_worker(self.worker)
            await self.worker.start()
        if self.config.is_worker and self.config.worker.verify and self.config.worker.federated:
            self.federated = FederatedMember(self, self.config.worker.cheat_federated_aggregate,
                                             self.config.worker.cheat_federated_first_draw)
            self.federated.start()
        if self.config.is_worker and self.config.worker.predict:  # [PRED-OFFER.1]
            self.executor = Executor(self, self.config.worker)
            await self.executor.start()
        else:  # [PRED-WITHDRAW.1] not (or no longer) offering: take a left bond back
            self.predict_withdrawal = PredictWithdrawal(self)
            self.predict_withdrawal.start()
        log.info("node %s up: height %d, p2p %s, api %s, roles %s", self.address_text,
                 self.height, self.p2p.endpoint, self.api_endpoint, ",".join(self.roles))

    async def stop(self) -> None:
        if self.executor is not None:
            with contextlib.suppress(Exception):
                await self.executor.stop()
        if self.worker is not None:
            with contextlib.suppress(Exception):
                await self.worker.stop()
        if self.api is not None:
            with contextlib.suppress(Exception):
                await self.api.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.driver.stop()
        await self.p2p.stop()
        self.ledger.close()
        self.verifier.close()
        if self._stopped is not None:
            self._stopped.set()

    async def __aenter__(self) -> LedgerNode:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def wait_stopped(self) -> None:
        assert self._stopped is not None
        await self._stopped.wait()

    def request_stop(self) -> None:
        self.stop_requested = True
        if self._stopped is not None and not self._stopped.is_set():
            asyncio.get_running_loop().create_task(self.stop())

    # -- p2p admission, gossip ---------------------------------------------------

    def _is_admitted(self, address: Address) -> bool:
        state = self.ledger.state
        return state.is_member(address) or address in state.validators()

    def _on_tx_gossip(self, data: bytes, sender: bytes | None) -> Verdict:
        """[NODE-TX.1] ``REJECT`` if a transaction does not decode or is badly signed;
        ``ACCEPT`` (forward the batch as it is) only when every transaction was new and
        admitted; otherwise ``IGNORE``, and the new ones, if any, travel on in our own
        next batch: a known batch re-wrapped around one new transaction is not
        forwarded again, only that transaction is."""
        try:
            wires = decode(data, max_size=64 * 1024)
        except DecodeError:
            return Verdict.REJECT
        if not isinstance(wires, list) or not all(isinstance(w, bytes) for w in wires):
            return Verdict.REJECT
        now = self.now_ms()
        admitted: list[bytes] = []
        parsed = self.mempool.decode_new(wires)
        self.ledger.prefill_signatures([tx for tx in parsed if tx is not None])
        for wire, tx in zip(wires, parsed, strict=True):
            result = self.mempool.add(tx, now) if tx is not None \
                else self.mempool.add_bytes(wire, now)
            self.admissions["gossip", result.code or result.status.value] += 1
            if result.accepted:
                admitted.append(wire)
                self.driver.wake()  # [CONS-PACE.1]
            elif result.status is Admission.REJECTED and result.code in _FATAL_TX_CODES:
                return Verdict.REJECT
        if admitted and len(admitted) == len(wires):
            return Verdict.ACCEPT
        for wire in admitted:
            self._queue_tx(wire)
        return Verdict.IGNORE

    async def prefill_signatures(self, txs: list[SignedTransaction]) -> None:
        """[TX-SIG-CACHE.2] An API batch's signatures over the verify pool (the loop waits
        for the pool's threads, as it would for the serial checks, but half as long)."""
        self.ledger.prefill_signatures(txs)

    def _queue_tx(self, wire: bytes) -> None:
        if self._tx_batch_bytes + len(wire) + 8 > TX_BATCH_BYTES:
            self._flush_txs()
        self._tx_batch.append(wire)
        self._tx_batch_bytes += len(wire) + 8
        if self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_later(
                TX_FLUSH_SECONDS, self._flush_txs)

    def _flush_txs(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if self._tx_batch:
            batch, self._tx_batch, self._tx_batch_bytes = self._tx_batch, [], 0
            self.gossip.publish(TX_TOPIC, encode(batch))

    def _peers_read_refs(self) -> bool:
        """[NODE-CONS.4] Every connected peer announced ``consensus-refs``."""
        return all(REFS_CAPABILITY in conn.identity.topics
                   for conn in self.p2p.peers.values())

    def _peers_read_ids(self) -> bool:
        """[NODE-CONS.4] Every connected peer announced ``consensus-ids``."""
        return all(IDS_CAPABILITY in conn.identity.topics
                   for conn in self.p2p.peers.values())

    def _publish_consensus(self, data: bytes) -> None:
        self.gossip.publish(CONSENSUS_TOPIC, data)

    def _on_misbehaviour(self, peer: bytes | None, code: str) -> None:
        conn = self.p2p.peers.get(peer) if peer is not None else None  # type: ignore[call-overload]
        if conn is not None:
            log.info("consensus: %r misbehaved (%s)", conn, code)
            self.p2p.penalize(conn, Offence.REJECTED_MESSAGE)

    def _on_evidence(self, evidence: DuplicateVoteEvidence) -> None:
        """Equivocation seen: report it on chain so the offender is banned [TX-EVIDENCE]."""
        body = Evidence(encode(evidence.vote_a.to_wire()), encode(evidence.vote_b.to_wire()))
        tx = sign_transaction(self.key, self.chain_id, self.next_nonce(self.key.address), body)
        result = self.submit(tx)
        log.warning("equivocation by %s reported: %s", evidence.vote_a.validator.hex(),
                    result.status)

    def _on_halt(self, error: BaseException) -> None:
        self.exit_error = error
        self.request_stop()

    # -- commits -----------------------------------------------------------------

    def _state_sync_wanted(self) -> bool:
        """[SNAP-*] A database at genesis starts from a snapshot: ``always`` (``node start
        --state-sync``), or ``auto`` when peers offer one at least ``auto_min_height`` high;
        only on a graph whose genesis is at version 3 [STATE-ROOT.2]."""
        policy = self.config.statesync
        if policy.mode == "never" or self.ledger.state.height != 0:
            return False
        if policy.mode == "auto" and not self.config.bootstrap:
            return False  # nobody to ask: a graph's first node, or one that waits to be dialled
        if self.genesis.protocol_version < STATE_SYNC_VERSION:
            if policy.mode == "always":
                raise StateSyncFailed(f"this graph's genesis starts at protocol version "
                                      f"{self.genesis.protocol_version}: snapshots need "
                                      f"{STATE_SYNC_VERSION} from genesis [STATE-ROOT.2]")
            return False
        return True

    async def _state_sync(self) -> None:
        policy = self.config.statesync
        self.restored = await state_sync(
            self.ledger, self.snapshot_service, self.blobs,
            min_height=1 if policy.mode == "always" else policy.auto_min_height,
            patience_s=policy.patience_s)
        if self.restored is not None:
            self.mempool.update([], self.now_ms())
        elif policy.mode == "always":
            raise StateSyncFailed(f"no peer offered a snapshot that checks out within "
                                  f"{policy.patience_s} s; the database is still at genesis")

    def _on_committed(self, block: Block, certificate: bytes) -> None:
        self.submit_window.committed()  # [NODE-MEMPOOL.2]
        self.snapshots.after_commit(block, certificate)
        self.pruner.after_commit(int(block.header.height))  # before the status: its base
        self.sync.notify_height()
        if self._listener_queue is not None:
            self._listener_queue.put_nowait(
                CommittedBlock(block, certificate, int(block.header.time_ms)))
        txs = len(block.txs)
        if txs or block.header.height % 50 == 0:
            log.info("committed height %d (%d txs, %d pending)", block.header.height, txs,
                     len(self.mempool))
        upgrade = self.app.upgrade_required()
        if upgrade is not None and self.exit_error is None:  # [UPGRADE-HALT.1] stop before H
            write_upgrade_info(self.data_dir, upgrade)
            self._on_halt(upgrade)

    def _on_synced(self) -> None:
        if not self._resync_pending:
            self._resync_pending = True
            asyncio.get_running_loop().call_soon(self._resync)

    def _resync(self) -> None:
        self._resync_pending = False
        self.driver.resync()

    async def _deliver_blocks(self) -> None:
        assert self._listener_queue is not None
        while True:
            try:  # asyncio.timeout, not wait_for: 3.11's wait_for can swallow the cancel of
                # stop() when a block arrives at that instant, and stop() then waits forever
                async with asyncio.timeout(FOLLOW_TICK_S):
                    event = await self._listener_queue.get()
            except TimeoutError:
                self._tick()
                continue
            for listener in list(self._listeners):
                try:
                    result = listener(event)
                    if asyncio.iscoroutine(result):
                        await result
                except Exception:
                    log.exception("block listener failed at height %d", event.block.header.height)

    def _tick(self) -> None:
        """[CONS-PACE.1] A graph at rest commits no block for minutes: followers whose work
        waits on time, not on a block (a retry, a blob that arrived), act on a tick."""
        for listener in list(self._tick_listeners):
            try:
                listener()
            except Exception:
                log.exception("tick listener failed at height %d", self.height)

    # -- NodeHandle --------------------------------------------------------------

    @property
    def address_text(self) -> str:
        from chain.crypto import address_to_text

        return address_to_text(self.key.address)

    @property
    def api_endpoint(self) -> str:
        return f"{self.config.api_host}:{self.api.port}" if self.api is not None else ""

    def now_ms(self) -> int:
        return int(time.time() * 1000)

    def status(self) -> NodeStatus:
        state = self.ledger.state
        now = self.p2p.now()
        peers = tuple(
            PeerInfo(
                address=conn.address,
                endpoint=_endpoint_text(conn.listen_endpoint),
                outbound=conn.outbound,
                score=conn.score.current(now, self.p2p.config.score_decay_per_second),
            )
            for conn in self.p2p.peers.values()
        )
        worker = self.worker.summary() if self.worker is not None else {}
        if self.executor is not None:
            worker = {**worker, "executor": self.executor.summary()}
        return NodeStatus(
            chain_id=self.chain_id, address=self.key.address, roles=self.roles,
            height=self.height, last_block_time_ms=int(state.time_ms),
            last_block_hash=state.block_hash if self.height else None,
            state_root=state.state_root if self.height else None,
            protocol=self.protocol_status(),
            caught_up=self.sync.caught_up.is_set() or not self.p2p.peers,
            consensus_round=self.driver.round, mempool_txs=len(self.mempool), peers=peers,
            p2p_endpoint=self.p2p.endpoint, api_endpoint=self.api_endpoint, worker=worker,
            storage_problem=self.driver.commit_stalled or self.driver.wal_blocked,
            base_height=self.ledger.storage.base_height(), sync_missing=self.sync.missing,
        )

    def protocol_status(self) -> dict[str, object]:
        """[UPGRADE-HALT.1] The version in force, the newest this node runs, a pending plan."""
        state = self.ledger.state
        plan = state.upgrade_plan
        upgrade = self.app.upgrade_required()
        return {"version": state.protocol_version,
                "max_known_version": self.app.max_protocol_version,
                "upgrade_plan": None if plan is None else {
                    "name": plan.name, "version": plan.version, "height": plan.height},
                "upgrade_required": None if upgrade is None else str(upgrade)}

    def submit_room(self) -> int:
        """How many new transactions this node's clients may still add before its
        submission window answers 'full' [NODE-MEMPOOL.2]: what a batch parses [API-BATCH.1]."""
        return max(0, self.submit_window.size - len(self.mempool))

    def submit(self, tx: SignedTransaction) -> AddResult:
        if tx.hash not in self.mempool and not self.submit_window.admits(len(self.mempool)):
            self.admissions["local", "mempool_full"] += 1
            return AddResult(Admission.FULL, "mempool_full",
                             f"{len(self.mempool)} transactions pending; retry shortly")
        result = self.mempool.add(tx, self.now_ms())
        self.admissions["local", result.code or result.status.value] += 1
        if result.accepted:
            self._queue_tx(tx.wire)
            self.driver.wake()  # [CONS-PACE.1]
        return result

    def put_blob_file(self, path: Path) -> bytes:
        blob = self._store_blob_file(path)
        self.blobs.announce(blob)
        return blob

    async def fetch_blob(
        self, blob: bytes, progress: Callable[[int, int], None] | None = None
    ) -> Path:
        return await self.blobs.fetch(blob, progress=progress)


def _endpoint_text(endpoint: tuple[str, int] | None) -> str:
    return f"{endpoint[0]}:{endpoint[1]}" if endpoint else ""


async def run_node(config: NodeConfig, *, ready: Callable[[LedgerNode], None] | None = None) -> int:
    """Runs a node until SIGTERM/SIGINT; returns the process exit code."""
    import signal

    try:
        node = LedgerNode(config)
    except (ChainError, BadVersionOverride) as e:
        log.error("%s", e)
        return 1
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, node.request_stop)
    stall_watch = start_loop_stall_watch()  # names the code that blocks the loop
    try:
        await node.start()
    except (SandboxError, StateSyncFailed) as e:
        # [JOB-RUNTIME.2] no runsc; [SNAP-*] nothing restored; or a stop cut the start short
        with contextlib.suppress(Exception):
            await node.stop()
        if node.stop_requested:
            log.info("node stopped while starting (a stop signal cut short: %s)", e)
            return 0
        log.error("node not started: %s", e)
        return 1
    except UpgradeRequired as e:  # [UPGRADE-HALT.1] restarted with the same old software
        log.error("node not started: %s; install software that knows version %d "
                  "(%s in the data directory)", e, e.version, "upgrade-info.json")
        node.ledger.close()
        return UPGRADE_EXIT_STATUS
    if ready is not None:
        ready(node)
    memory_trace = start_memory_trace()  # LC_TRACEMALLOC_DIR: a diagnosis switch
    await node.wait_stopped()
    await stop_memory_trace(memory_trace)
    if stall_watch is not None:
        stall_watch.stop()
    if isinstance(node.exit_error, UpgradeRequired):  # [UPGRADE-HALT.1]
        error = node.exit_error
        log.error("node stopped at height %d: %s; its data is intact: install software that "
                  "knows version %d and start it again", node.height, error, error.version)
        write_upgrade_info(node.data_dir, error)
        return UPGRADE_EXIT_STATUS
    if node.exit_error is not None:
        log.error("node stopped: %s", node.exit_error)
        return 3
    log.info("node stopped cleanly at height %d (pid %d)", node.height, os.getpid())
    return 0
