"""The executor's warm sandboxes: one ``WarmPredictor`` per (model, mode) [PRED-EXEC.1].

Keeping a container per deployed model turns a ~0.3 s container start into a ~1 ms round
trip [PRED-EXEC.5]; keeping *every* model warm would pin memory for models nobody asks for,
so at most ``MAX_WARM`` stay up, the least recently used one is closed first. Calls block
(Docker I/O): the executor runs them on a thread, one request at a time (a predictor's
channel is one stream).

``wrong_answer`` is the demo/test switch ``cheat_predictions``: it turns an honest answer
into a wrong one of the same shape, so the ledger's agreement, not a malformed-reply check,
is what must catch it [PRED-PAY.1].
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from pathlib import Path

import docker
import docker.errors

from chain.encoding import decode
from chain.predict.answer import values_hash
from chain.predict.io import invalid_blob, labels_blob, output_hash
from chain.predict.model import DeployedModel
from sandbox.limits import ResourceLimits
from sandbox.predict_frames import MAX_REQUEST_BYTES
from sandbox.predict_image import ensure_predict_image
from sandbox.predict_sandbox import PredictAnswer, WarmPredictor, checked_answer

log = logging.getLogger("learningchain.executor")

MAX_WARM = 4
"""Warm containers kept at once; more models: the least recently used is closed."""


class PredictorPool:
    """Warm predictors by (model id, mode), least recently used closed first."""

    def __init__(self, client: docker.DockerClient, image: str, node_id: str,
                 limits: ResourceLimits | None = None, max_warm: int = MAX_WARM,
                 runtime: str | None = None) -> None:
        self.client, self.image, self.node_id = client, image, node_id
        self.runtime = runtime
        """[JOB-RUNTIME.1] The node's runtime (``runtime.resolve``) for every warm sandbox."""
        self.limits = limits or ResourceLimits()
        self.max_warm = max_warm
        self._warm: OrderedDict[tuple[bytes, str], WarmPredictor] = OrderedDict()
        self.started = 0
        """Warm containers started (first use of a model, or after an LRU eviction)."""

    def answer(self, record: DeployedModel, mode: str, model_path: Path, input_path: Path,
               rows: int) -> PredictAnswer:
        """[PRED-EXEC.2] The answer to one request; ``PredictSandboxError`` if the sandbox
        failed (then the executor does not commit [PRED-EXEC.4])."""
        started = time.monotonic()
        if input_path.stat().st_size > MAX_REQUEST_BYTES:  # unsent, as the sandbox answers
            return checked_answer(mode, record, invalid_blob("not_rows"), rows, started)
        predictor = self._predictor(record, mode, model_path)
        return predictor.predict(input_path.read_bytes(), rows)

    def _predictor(self, record: DeployedModel, mode: str, model_path: Path) -> WarmPredictor:
        key = (bytes(record.job_id), mode)
        found = self._warm.get(key)
        if found is not None:
            self._warm.move_to_end(key)
            return found
        while len(self._warm) >= self.max_warm:
            _, oldest = self._warm.popitem(last=False)
            oldest.close()
        predictor = WarmPredictor(self.client, self.image, model_path, record, mode,
                                  limits=self.limits, node_id=self.node_id,
                                  runtime=self.runtime)
        self.started += 1
        log.info("model %s: warm %s sandbox %s started", record.job_id.hex()[:12], mode,
                 predictor.container_id[:12])
        self._warm[key] = predictor
        return predictor

    def restore_image(self) -> bool:
        """[PRED-EXEC.7] After a failed start: if the engine lost the executor image (an
        operator's prune, another program), build it again (seconds, from the base image)
        and use it from now on. True if it was rebuilt; ``PredictImageError`` or an engine
        error if it could not be."""
        try:
            self.client.images.get(self.image)
            return False
        except docker.errors.ImageNotFound:
            pass
        self.image = ensure_predict_image(self.client)
        return True

    def close(self) -> None:
        """Remove every warm container (the node stops)."""
        while self._warm:
            _, predictor = self._warm.popitem()
            predictor.close()


def wrong_answer(answer: PredictAnswer, record: DeployedModel, mode: str,
                 tolerance: int) -> PredictAnswer:
    """DEMO/TEST ONLY (``cheat_predictions``): a wrong answer of the right shape: every label
    shifted by one, every value off by ``tolerance + 1``, a CKKS blob with one byte
    changed. An invalid answer is answered ``not_finite`` instead (or ``schema``)."""
    if answer.invalid is not None:
        other = "schema" if answer.invalid == "not_finite" else "not_finite"
        blob = invalid_blob(other)
        return PredictAnswer(blob, output_hash(blob), other, None, answer.seconds)
    if mode == "labels":
        indices = decode(answer.blob)[1]
        count = len(record.output.labels)
        blob = labels_blob([(i + 1) % count for i in indices], count)
        return PredictAnswer(blob, output_hash(blob), None, None, answer.seconds)
    if mode == "values" and answer.values is not None:
        shift = tolerance + 1
        values = tuple(v - shift if v > 0 else v + shift for v in answer.values)
        return PredictAnswer(answer.blob, values_hash(values), None, values, answer.seconds)
    blob = answer.blob[:-1] + bytes([answer.blob[-1] ^ 1])
    return PredictAnswer(blob, output_hash(blob), None, None, answer.seconds)
