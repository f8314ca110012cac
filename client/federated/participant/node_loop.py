"""The participant loop inside a node: ports over the NodeHandle, local training in the sandbox.

``FederatedJoin`` steps a ``Participant`` after every committed block and whenever its
local training finishes. Training runs on a thread (``Threads``), never on the event
loop: the job's image is made present as a worker's is (``ImageCache``, [JOB-IMAGE.3]),
then the job's ``federate`` entry runs on the owner's data folder, read-only, network
off [JOB-FED.1], and the host turns its output into the round's update blob [JOB-FED.5].
A DP-SGD run's privacy report is kept and composed over the rounds (``DpLedger``,
[JOB-FED.7]) and each round's epsilon is logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from chain.crypto import address_to_text
from chain.federated.blobs import ModelBlob, UpdateBlob
from chain.jobspec import JobSpec
from chain.state import StateReader
from chain.transactions import Body
from client.federated.participant.dp_accounting import DpLedger
from client.federated.participant.private import PrivateParticipant, PrivateStore
from client.federated.participant.rounds import Participant, RoundStore
from client.node.handle import CommittedBlock, NodeHandle
from client.worker.outbox import Outbox
from client.worker.policy import sandbox_limits
from client.worker.sandboxing import ImageCache, Threads
from sandbox.engine import connect
from sandbox.federated import run_federate
from sandbox.limits import Scalar
from sandbox.runner import SandboxRunner
from sandbox.runtime import resolve as resolve_runtime

log = logging.getLogger("learningchain.federated")


class NodePorts:
    """A participant's ports on a running node."""

    def __init__(self, node: NodeHandle, job_id: bytes, folder: Path) -> None:
        self.node, self.job_id, self.folder = node, job_id, folder
        self.outbox = Outbox(node, node.key)
        self._fetching: dict[bytes, asyncio.Task[Path]] = {}

    def state(self) -> StateReader:
        return self.node.state

    def now_ms(self) -> int:
        return self.node.now_ms()

    def submit(self, body: Body, what: str) -> bool:
        return self.outbox.send(body, f"federated {what}", self.job_id)

    def read_blob(self, blob_id: bytes) -> bytes | None:
        path = self.node.blob_path(blob_id)
        if path is not None:
            return path.read_bytes()
        task = self._fetching.get(blob_id)
        if task is None or task.done():
            self._fetching[blob_id] = asyncio.get_running_loop().create_task(
                self.node.fetch_blob(blob_id))
        return None

    def put_blob(self, data: bytes, source: Path | None = None) -> bytes:
        """Into the node's blob store, hard-linked where it can: ``source`` as it is (a
        kept round file: no new bytes on a full disk [WORK-FED.2]), else a copy of
        ``data`` that is removed once linked (before, every posted model and revealed
        update left one in the job's folder for good)."""
        if source is not None:
            return self.node.put_blob_file(source)
        path = self.folder / f".blob-{hashlib.sha256(data).hexdigest()[:16]}.tmp"
        try:
            path.write_bytes(data)
            return self.node.put_blob_file(path)
        finally:
            path.unlink(missing_ok=True)


MAX_TRIES = 3
"""Local runs of one round before giving the round up (a broken image or data folder must
not start a container on every block)."""


class SandboxTrainer:
    """Trains one round at a time on a thread; ``__call__`` hands over a finished update."""

    def __init__(self, node: NodeHandle, job_id: bytes, spec: JobSpec, data_dir: Path,
                 hyperparameters: Mapping[str, Scalar], on_done: Any,
                 ledger: DpLedger | None = None, runtime: str | None = None) -> None:
        self.node, self.job_id, self.spec, self.data_dir = node, job_id, spec, data_dir
        self.hyperparameters = dict(hyperparameters)
        self.on_done = on_done
        self.ledger = ledger
        self.client = connect()
        self.threads = Threads()
        self.images = ImageCache(node, self.client, self.threads)
        # [JOB-RUNTIME.1-2] the node's [worker] runtime against this engine: auto is runsc
        # where registered; runsc on an engine without it raises RuntimeUnavailable here
        choice = resolve_runtime(self.client, runtime)
        (log.info if choice.isolated else log.warning)("federated %s: %s", job_id.hex()[:12],
                                                       choice.describe())
        self.runner = SandboxRunner(self.client, node_id=f"fed-{node.key.address.hex()[:12]}",
                                    runtime=choice.name)
        self.runner.warm.prepare_in_background(choice.name)  # [JOB-WARM.2] before round 1
        self.ready: dict[int, UpdateBlob] = {}
        self.failures: dict[int, str] = {}
        self.tries: dict[int, int] = {}
        self._task: asyncio.Task[None] | None = None

    def __call__(self, model: ModelBlob, round_no: int) -> UpdateBlob | None:
        if round_no in self.ready:
            return self.ready.pop(round_no)
        if (self._task is None or self._task.done()) \
                and self.tries.get(round_no, 0) < MAX_TRIES:
            self.tries[round_no] = self.tries.get(round_no, 0) + 1
            self._task = asyncio.get_running_loop().create_task(self._train(model, round_no))
        return None

    async def _train(self, model: ModelBlob, round_no: int) -> None:
        label = f"{self.job_id.hex()[:16]}-{self.node.key.address.hex()[:12]}"
        try:
            image_id = await self.images.ensure(self.spec, label, self.job_id)
            seed = int.from_bytes(hashlib.sha256(self.job_id + round_no.to_bytes(4, "big")
                                                 + self.node.key.address).digest()[:7], "big")
            result = await self.threads.run(
                run_federate, self.runner, image_id, model, self.data_dir,
                sandbox_limits(self.spec), job_id=self.job_id, round_no=round_no,
                participant=self.node.key.address, seed=seed,
                hyperparameters=self.hyperparameters)
        except Exception as e:  # the node keeps running; the next block tries again
            self.failures[round_no] = f"{type(e).__name__}: {e}"
            log.error("federated %s round %d: training failed: %s", self.job_id.hex()[:12],
                      round_no, e)
            return
        if result.ok and result.blob is not None:
            if result.privacy is not None and self.ledger is not None:  # [JOB-FED.7]
                try:
                    line = self.ledger.record(round_no, result.privacy).line()
                except Exception as e:  # accounting is the owner's view; the round goes on
                    line = f"round {round_no}: dp-sgd accounting failed: {e}"
                log.info("federated %s: %s", self.job_id.hex()[:12], line)
            self.ready[round_no] = result.blob
            self.on_done()
        else:
            self.failures[round_no] = f"{result.reason}: {result.detail}"
            log.error("federated %s round %d: local run failed: %s: %s",
                      self.job_id.hex()[:12], round_no, result.reason, result.detail)


class FederatedJoin:
    """Takes part in ``job_id`` from a running node with the data in ``data_dir``; local
    runs use ``runtime``, the node's ``[worker] runtime`` (None: ``sandbox.runtime.default``)
    [JOB-RUNTIME.1]."""

    def __init__(self, node: NodeHandle, job_id: bytes, data_dir: Path,
                 hyperparameters: Mapping[str, Scalar] | None = None,
                 runtime: str | None = None) -> None:
        job = node.state.job(job_id)
        if job is None:
            raise ValueError(f"no job {job_id.hex()} on this chain")
        cohort = job.spec.federated.cohort if job.spec.federated is not None else ()
        if cohort and node.key.address not in cohort:  # [FED-SPEC.4] [TX-FED.2]
            raise ValueError(f"{address_to_text(node.key.address)} is not in the cohort of "
                             f"job {job_id.hex()}: its owner takes updates only from "
                             f"{len(cohort)} named addresses (not_in_cohort)")
        folder = node.data_dir / "federated" / job_id.hex()
        folder.mkdir(parents=True, exist_ok=True)
        self.node, self.job_id = node, job_id
        self.trainer = SandboxTrainer(node, job_id, job.spec, data_dir.resolve(),
                                      hyperparameters or {}, self._wake, DpLedger(folder),
                                      runtime=runtime)
        ports = NodePorts(node, job_id, folder)
        say = lambda m: log.info("federated %s: %s", job_id.hex()[:12], m)  # noqa: E731
        private = PrivateParticipant(job_id, node.key.address, ports, self.trainer,
                                     PrivateStore(folder), say)  # [FED-PRIV.10]
        self.participant = Participant(job_id, node.key.address, ports, self.trainer,
                                       RoundStore(folder), log=say, private=private)
        self.last = ""
        self.finished = asyncio.Event()

    def start(self) -> None:
        """Step on every block and on every quiet second [CONS-PACE.1]: a graph at rest
        commits no block for minutes, and a model blob fetched in between (each round's new
        global model) would otherwise wait for the window's closing block, which made every
        round after an accepted one void in ``make demo-federated``."""
        self.node.add_block_listener(self._on_block)
        self.node.add_tick_listener(self._wake)
        self._wake()

    def _on_block(self, _event: CommittedBlock) -> None:
        self._wake()

    def _wake(self) -> None:
        try:
            self.last = self.participant.step()
        except Exception as e:  # a bad model blob or a state we do not understand: log, go on
            log.error("federated %s: step failed: %s", self.job_id.hex()[:12], e)
            self.last = "error"
        if self.last == "done":
            self.finished.set()
