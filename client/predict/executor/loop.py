"""The executor role: answer the prediction requests this node is drawn for [PRED-*].

A node whose ``[worker] predict = true`` runs an ``Executor`` next to its worker
(``client.node.ledger_node``). API, for the node and tests:

- ``Executor(node, policy, *, key=None, client=None, image=None)``; ``await start()``,
  ``await stop()``; ``summary()`` (JSON-able counters: offered, answered, committed,
  revealed, failed, warm containers started, the requests in hand).
- ``node_id`` (``predict-<address prefix>``): the label of its sandbox containers.

After every committed block it reads the ledger as the next block will begin it
(``chain.transition.preview_next_block``, the view the mempool admits against: a request
included in the block just committed is already drawn there [PRED-DRAW.1], so the drawn
executors answer and commit in the very next block) and, per open request
(``chain.predict.steps.open_predictions``) that drew it:

1. **offer** [PRED-OFFER.1]: while the policy says ``predict`` and the ledger has no
   ``predictor`` record for this key, send ``offer_prediction`` (locks the bond);
2. **answer and commit** [PRED-ANSWER.1]: in status ``commit``, fetch the deployed model's
   file (the model blob: safetensors-mlp or ONNX, [JOB-EXPORT.1]) and the input blob from
   peers, run the request in the model's warm sandbox (``PredictorPool``: one container per
   model, no network, the training limits [PRED-EXEC.1]), write the answer (hash, salt,
   values, output blob) durably (``ExecutorStore``), then send ``predict_commit``;
   a sandbox failure means no commit: a no-show, never a guess [PRED-EXEC.4]; a failed
   answer is tried again while the commit window is open, 1, 2, 4 ... (at most 30) s
   apart, and a start that failed because the engine lost the executor image builds it
   again first [PRED-EXEC.7];
3. **reveal** [PRED-REVEAL.1]: in status ``reveal``, publish the output blob (so the
   requester and anyone can fetch the agreed answer by its hash [PRED-IO.2]) and send
   ``predict_reveal`` opening the saved commitment;
4. **settled** [PRED-SETTLE.1]: log what happened to our answer, forget it.

Every transaction goes through the worker's ``Outbox`` (resent only after
``RESEND_BLOCKS`` without effect), and every step is decided from the ledger plus the saved
answers, so a restarted executor resumes wherever it stopped: it never computes a request
twice and never commits to two answers. Sandbox work and blob fetches run on threads or as
tasks, one request at a time, so the node's event loop never waits on Docker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import docker

from chain.crypto import PrivateKey, address_to_text
from chain.predict.answer import SALT_LEN, answer_commitment
from chain.predict.bodies import OfferPrediction, PredictCommit, PredictReveal
from chain.predict.io import UNLOADABLE_BLOB, UNLOADABLE_HASH
from chain.predict.params import PREDICT_BOND
from chain.predict.records import OPEN, Prediction, PredictionStatus
from chain.predict.steps import agreement_of, deployed_model, open_predictions, prediction
from chain.state import Overlay
from chain.transition import preview_next_block
from chain.types import Address, Hash32
from client.node.config import WorkerPolicy
from client.node.handle import CommittedBlock, NodeHandle
from client.predict.executor.predictors import PredictorPool, wrong_answer
from client.predict.executor.state import AnswerSecret, ExecutorStore
from client.worker.outbox import Action, Outbox, short
from p2p.blobstore import BlobError
from sandbox.cleanup import cleanup_containers
from sandbox.container_ops import EngineErrors
from sandbox.engine import connect
from sandbox.errors import SandboxError
from sandbox.predict_image import ensure_predict_image
from sandbox.predict_sandbox import PredictAnswer
from sandbox.predict_session import PredictSandboxError
from sandbox.runtime import resolve as resolve_runtime

log = logging.getLogger("learningchain.executor")

OFFER = b"offer"
"""The ``Action`` key of our ``offer_prediction`` (no request id)."""
RETRY_FIRST_S = 1.0
RETRY_MAX_S = 30.0
"""[PRED-EXEC.7] A failed answer (a blob not fetched, a sandbox that did not start or
answer) is tried again after 1 s, then 2, 4, ... at most 30 s apart, while the request's
commit window is open: the failures seen (a loaded machine's slow start, a pruned image, a
peer that had not stored the input yet) pass, and a no-show forfeits the bond. A fixed
two tries left all three executors of a CI run's request no-shows for its whole
300 s window."""


@dataclass(frozen=True)
class Retry:
    """A request whose answer failed: how often, and not before when (monotonic s)."""
    failures: int
    not_before: float


class Executor:
    """Answers prediction requests drawn to this node's key; see the module docstring."""

    def __init__(self, node: NodeHandle, policy: WorkerPolicy, *, key: PrivateKey | None = None,
                 client: docker.DockerClient | None = None, image: str | None = None) -> None:
        self.node = node
        self.policy = policy
        self.key = key if key is not None else node.key
        self.address: Address = self.key.address
        self.node_id = f"predict-{self.address.hex()[:12]}"
        self.store = ExecutorStore(node.data_dir / "executor")
        self.outbox = Outbox(node, self.key)
        self.counters: Counter[str] = Counter()
        self._client, self._image = client, image
        self._pool: PredictorPool | None = None
        self._wake = asyncio.Event()
        self._main: asyncio.Task[None] | None = None
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._queued: set[bytes] = set()
        self._retry: dict[bytes, Retry] = {}
        self.clock: Callable[[], float] = time.monotonic
        """The retry schedule's clock (tests move it)."""
        self._stopped = False
        self.problem: str | None = None
        """Why the executor did not start (no engine, no base image), else None."""
        self.store_problem: str | None = None
        """[PRED-EXEC.8] Why the last answer could not be kept (a full disk), until one is."""

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Open the saved answers, remove our containers left by a crash, build (or find)
        the executor image, follow the chain."""
        self.store.open()
        try:
            if self._client is None:
                self._client = await asyncio.to_thread(connect)
            left = await asyncio.to_thread(cleanup_containers, self._client, self.node_id)
            if left:
                log.info("removed %d prediction sandboxes left by an earlier run", len(left))
            if self._image is None:
                self._image = await asyncio.to_thread(ensure_predict_image, self._client)
            runtime = await asyncio.to_thread(resolve_runtime, self._client, self.policy.runtime)
        except SandboxError as e:  # the node runs on; it just serves no predictions
            self.problem = str(e)
            log.error("executor not started: %s", e)
            return
        self._pool = PredictorPool(self._client, self._image, self.node_id,
                                   runtime=runtime.name)  # [JOB-RUNTIME.1]
        log.info("executor %s starting (image %s, runtime %s, %d saved answers)%s",
                 address_to_text(self.address), self._image[:19], runtime.name,
                 len(self.store.answers),
                 "; !!! CHEATING (demo/test only): every answer is wrong !!!"
                 if self.policy.cheat_predictions else "")
        self.node.add_block_listener(self._on_block)
        self.node.add_tick_listener(self._on_tick)  # [CONS-PACE.1] work between blocks
        self._main = asyncio.create_task(self._run(), name="executor")
        self._wake.set()

    async def stop(self) -> None:
        """Cancel the loop, then remove the warm containers."""
        if self._stopped:
            return
        self._stopped = True
        if self._main is not None:
            self._main.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._main
        if self._pool is not None:
            await asyncio.to_thread(self._pool.close)
        log.info("executor %s stopped", address_to_text(self.address))

    def _on_block(self, _event: CommittedBlock) -> None:
        if not self._stopped:
            self._wake.set()

    def _on_tick(self) -> None:
        if not self._stopped:
            self._wake.set()

    async def _run(self) -> None:
        """The chain follower and the one request at a time it hands the sandbox."""
        work = asyncio.create_task(self._answer_queue(), name="executor-answers")
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                try:
                    self._step()
                except Exception:
                    log.exception("executor step failed; trying again at the next block")
        finally:
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await work

    # -- per block -----------------------------------------------------------------------

    def _preview(self) -> Overlay:
        """The committed state with the next block's begin steps applied [MEMPOOL-ADMIT.1]."""
        return preview_next_block(self.node.state, self.node.now_ms())

    def _step(self) -> None:
        state = self.node.state
        view = self._preview()
        height = state.height
        if self.policy.predict and state.get("predictor", self.address) is None:
            action = Action("offer_prediction", OFFER)
            funded = state.account(self.address).balance >= PREDICT_BOND  # else rejected
            if state.is_member(self.address) and funded and self.outbox.due(action, height):
                self.outbox.send(OfferPrediction(), "offer_prediction", OFFER, action)
        # an answer is kept while the request is open in either view: the preview may have
        # closed a window the next block (whose time is the proposer's) still has open
        live: set[bytes] = {bytes(r.request_id) for r in open_predictions(state)
                            if self.address in r.executors}
        for rec in open_predictions(view):
            if self.address not in rec.executors:
                continue
            live.add(bytes(rec.request_id))
            try:
                self._follow(rec, height)
            except Exception:
                log.exception("request %s: handling failed; the executor goes on",
                              short(rec.request_id))
        for request_hex in list(self.store.answers):
            request_id = bytes.fromhex(request_hex)
            if request_id not in live:
                self._settled(request_id)
        self.outbox.prune(live | {OFFER})
        self._retry = {k: v for k, v in self._retry.items() if k in live}

    def _follow(self, rec: Prediction, height: int) -> None:
        request_id = bytes(rec.request_id)
        mine = rec.answer_of(self.address)
        secret = self.store.answers.get(request_id.hex())
        if rec.status == PredictionStatus.COMMIT and mine is None:
            if secret is not None:
                self._commit(rec, secret, height)
            elif request_id not in self._queued and self._may_try(request_id) \
                    and self.node.now_ms() < rec.deadline_ms:
                self._queued.add(request_id)
                self._queue.put_nowait(request_id)
        elif rec.status == PredictionStatus.REVEAL and mine is not None and not mine.opened:
            if secret is None:
                log.error("request %s: we committed but hold no saved answer (state lost?); "
                          "we cannot reveal and will forfeit", short(request_id))
                return
            self._reveal(rec, secret, height)

    def _commit(self, rec: Prediction, secret: AnswerSecret, height: int) -> None:
        action = Action("predict_commit", bytes(rec.request_id))
        if not self.outbox.due(action, height):
            return
        commitment = answer_commitment(rec.request_id, self.address,
                                       bytes.fromhex(secret.output_hash),
                                       bytes.fromhex(secret.salt))
        if self.outbox.send(PredictCommit(rec.request_id, commitment), "predict_commit",
                            rec.request_id, action):
            self.counters["committed"] += 1

    def _reveal(self, rec: Prediction, secret: AnswerSecret, height: int) -> None:
        action = Action("predict_reveal", bytes(rec.request_id))
        if not self.outbox.due(action, height):
            return
        blob = self.store.blob_path(rec.request_id)
        if secret.values is None:
            try:  # [PRED-IO.2] the answer is fetched by its hash, like any blob
                self.node.put_blob_file(blob)
            except (OSError, BlobError) as e:
                self.outbox.note(action)
                log.error("request %s: cannot publish our answer blob %s: %s",
                          short(rec.request_id), blob, e)
                return
        values = None if secret.values is None else tuple(secret.values)
        body = PredictReveal(rec.request_id, Hash32(bytes.fromhex(secret.output_hash)),
                             bytes.fromhex(secret.salt), values)
        if self.outbox.send(body, "predict_reveal", rec.request_id, action):
            self.counters["revealed"] += 1

    def _settled(self, request_id: bytes) -> None:
        """[PRED-SETTLE.1] Log what our answer earned, then forget it."""
        rec = prediction(self.node.state, request_id)
        if rec is not None and rec.status not in OPEN:
            secret = self.store.answers[request_id.hex()]
            outcome = "not settled"
            if rec.status != PredictionStatus.UNSERVED:
                agreement = agreement_of(rec)
                outcome = ("agreed with the majority: paid" if self.address in agreement.agreeing
                           else "outvoted or no-show: forfeits")
            log.info("request %s settled %s; our answer %s%s: %s", short(request_id),
                     rec.status, secret.output_hash[:16], " (WRONG on purpose)"
                     if secret.wrong else "", outcome)
            self.counters[f"settled_{rec.status}"] += 1
        self.store.forget(request_id)

    # -- answering -----------------------------------------------------------------------

    def _may_try(self, request_id: bytes) -> bool:
        retry = self._retry.get(request_id)
        return retry is None or self.clock() >= retry.not_before

    def _failed(self, request_id: bytes) -> None:
        """[PRED-EXEC.7] Schedule the next try: 1 s, 2 s, 4 s, ... at most 30 s later."""
        failures = self._retry[request_id].failures + 1 if request_id in self._retry else 1
        wait = min(RETRY_MAX_S, RETRY_FIRST_S * 2 ** (failures - 1))
        self._retry[request_id] = Retry(failures, self.clock() + wait)
        self.counters["failed"] += 1
        log.info("request %s: try %d failed; trying again in %.0f s if the commit window is "
                 "still open", short(request_id), failures, wait)

    async def _answer_queue(self) -> None:
        while True:
            request_id = await self._queue.get()
            try:
                await self._answer(request_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("request %s: answering failed", short(request_id))
                self._failed(request_id)
            finally:
                self._queued.discard(request_id)

    async def _answer(self, request_id: bytes) -> None:
        """[PRED-ANSWER.1] Fetch, run in the warm sandbox, save, commit."""
        state = self._preview()
        rec = prediction(state, request_id)
        if rec is None or rec.status != PredictionStatus.COMMIT \
                or rec.answer_of(self.address) is not None \
                or request_id.hex() in self.store.answers:
            return
        record = deployed_model(state, rec.request.model_id)
        if record is None or self._pool is None:
            return
        req = rec.request
        try:
            model_path = await self.node.fetch_blob(record.model_hash)
            input_path = await self.node.fetch_blob(req.input_blob)
        except BlobError as e:
            log.error("request %s: cannot fetch the model or the input: %s",
                      short(request_id), e)
            self._failed(request_id)
            return
        pool = self._pool
        try:
            answer = await asyncio.to_thread(pool.answer, record, req.mode, model_path,
                                             input_path, req.rows)
        except SandboxError as e:
            if not (isinstance(e, PredictSandboxError) and e.reason == "model"):
                # [PRED-EXEC.4] a failure that may not repeat: no commit, never a guess
                log.error("request %s: the sandbox failed (%s); not committing",
                          short(request_id), e)
                if isinstance(e, PredictSandboxError) and e.reason == "start":
                    await self._restore_image(pool)
                self._failed(request_id)
                return
            # [PRED-UNLOADABLE.1] the loader refused the model file or its shape does not fit
            # the record: every honest executor fails alike, so answer "does not load"
            log.warning("request %s: the model does not load (%s); answering unloadable_model",
                        short(request_id), e)
            answer = PredictAnswer(UNLOADABLE_BLOB, UNLOADABLE_HASH, "unloadable_model", None,
                                   0.0)
        wrong = self.policy.cheat_predictions
        if wrong:
            answer = wrong_answer(answer, record, req.mode, req.tolerance)
            log.warning("request %s: CHEATING (demo/test): committing a wrong answer",
                        short(request_id))
        secret = AnswerSecret(answer.output_hash.hex(), os.urandom(SALT_LEN).hex(),
                              None if answer.values is None else list(answer.values),
                              answer.invalid, wrong)
        try:
            self.store.keep(request_id, secret,
                            None if answer.values is not None else answer.blob)
        except OSError as e:  # [PRED-EXEC.8] an answer we cannot keep is never committed
            log.error("request %s: cannot keep our answer (%s); not committing",
                      short(request_id), e)
            self.store_problem = str(e)
            self._failed(request_id)
            return
        self.store_problem = None
        self.counters["answered"] += 1
        log.info("request %s: answered %d rows in %.1f ms (%s%s); committing",
                 short(request_id), req.rows, answer.seconds * 1000, req.mode,
                 f", invalid: {answer.invalid}" if answer.invalid else "")
        current = prediction(self._preview(), request_id)
        if current is not None:
            self._commit(current, secret, self.node.height)

    async def _restore_image(self, pool: PredictorPool) -> None:
        """[PRED-EXEC.7] A sandbox that did not start: if the engine lost the executor
        image, build it again before the next try."""
        try:
            if await asyncio.to_thread(pool.restore_image):
                self.counters["image_rebuilt"] += 1
                log.warning("the engine had lost the executor image (pruned?); built it "
                            "again: %s", pool.image[:19])
        except (SandboxError, *EngineErrors) as e:
            log.error("cannot build the executor image again: %s", e)

    # -- status --------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """JSON-able progress for logs, the node status and tests."""
        return {"address": address_to_text(self.address),
                "running": self._main is not None and not self._stopped,
                "problem": self.problem, "store_problem": self.store_problem,
                "cheating": self.policy.cheat_predictions,
                "offering": self.node.state.get("predictor", self.address) is not None,
                "in_hand": sorted(self.store.answers), "warm_started":
                    self._pool.started if self._pool is not None else 0,
                "counters": dict(self.counters), "sent": dict(self.outbox.counters)}
