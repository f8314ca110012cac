"""Executors answer prediction requests from a warm sandbox per model [PRED-EXEC.1-5].

Starting a hardened container costs about a second; evaluating a batch of rows costs
milliseconds. A ``WarmPredictor`` therefore keeps one long-lived container per deployed
model (the training policy: no network, read-only root, no capabilities, seccomp, limits,
nobody) with the model mounted read-only and ``predict_server`` reading requests on its
stdin, and sends each request's input blob in and reads its answer out. ``warm=False`` is
the cold path, one container per request with the same code and limits, for comparison.

The requester's bytes (and the model file) are parsed only inside the container: the host
copies the blob in and checks the bounded answer's *shape* before handing it on (a
compromised sandbox can lie, as any executor can, which the majority catches [PRED-AGREE.*];
it cannot make the host parse more than a small canonical blob). A request that outruns its
timeout, a server that dies or a malformed reply gets a ``PredictSandboxError`` and the
container is killed, removed and replaced; the next request is served by the new one.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker

from chain.encoding import decode
from chain.errors import DecodeError, FieldError
from chain.predict.answer import check_values, values_hash
from chain.predict.io import (
    INVALID_REASONS,
    LABELS_FORMAT,
    invalid_blob,
    labels_blob,
    output_hash,
)
from chain.predict.model import DeployedModel
from chain.types import Hash32
from sandbox.limits import ResourceLimits
from sandbox.model_format import MAX_MODEL_BYTES
from sandbox.predict_frames import MAX_REPLY_BYTES, MAX_REQUEST_BYTES
from sandbox.predict_server import MODEL_FILES, MODES
from sandbox.predict_session import MODEL_FILE, PredictSandboxError, Session

REQUEST_TIMEOUT_S = 30.0
START_TIMEOUT_S = 60.0
_INVALID = {invalid_blob(r): r for r in INVALID_REASONS}


@dataclass(frozen=True, slots=True)
class PredictAnswer:
    """One executor answer [PRED-IO.2] [PRED-ANSWER.2].

    ``blob``: the labels blob, the CKKS scores blob or the invalid blob; in ``values`` mode
    ``encode(values)`` (the values travel inline, ``values`` holds them). ``output_hash`` is
    what the executor commits to; ``invalid`` the [PRED-IO.3] reason, if any."""

    blob: bytes
    output_hash: Hash32
    invalid: str | None
    values: tuple[int, ...] | None
    seconds: float


def _stage_model(model_path: Path, name: str = MODEL_FILE) -> Path:
    """A private copy of the model file, readable by the container's user: the container
    sees a fixed file even if the original changes [PRED-EXEC.1]."""
    if model_path.is_symlink() or not model_path.is_file():
        raise PredictSandboxError("model", f"no model file at {model_path}")
    size = model_path.stat().st_size
    if size > MAX_MODEL_BYTES:
        raise PredictSandboxError("model", f"model file of {size} bytes over {MAX_MODEL_BYTES}")
    folder = Path(tempfile.mkdtemp(prefix="lc-predict-model-"))
    folder.chmod(0o755)
    shutil.copyfile(model_path, folder / name)
    (folder / name).chmod(0o444)
    return folder


def checked_answer(mode: str, record: DeployedModel, raw: bytes, rows: int,
                   started: float) -> PredictAnswer:
    """[PRED-EXEC.2] A sandbox's reply as an answer, if it has the shape of one in ``mode``
    (bounded, canonical); else ``PredictSandboxError('protocol')``."""
    seconds = time.monotonic() - started
    reason = _INVALID.get(raw)
    if reason is not None:
        return PredictAnswer(raw, output_hash(raw), reason, None, seconds)
    try:
        if mode == "labels":
            wire = decode(raw, max_size=MAX_REPLY_BYTES)
            if not isinstance(wire, list) or len(wire) != 2 or wire[0] != LABELS_FORMAT \
                    or not isinstance(wire[1], list) or len(wire[1]) != rows \
                    or labels_blob(wire[1], len(record.output.labels)) != raw:
                raise FieldError("answer", f"a labels blob of {rows} rows", raw[:32])
            return PredictAnswer(raw, output_hash(raw), None, None, seconds)
        if mode == "values":
            wire = decode(raw, max_size=MAX_REPLY_BYTES)
            if not isinstance(wire, list):
                raise FieldError("answer", "a list of values", raw[:32])
            values = check_values(wire, rows * record.output.outputs)
            return PredictAnswer(raw, values_hash(values), None, values, seconds)
        from sandbox.ckks_eval import CkksError, scores_ciphertext

        try:
            scores_ciphertext(raw)
        except (CkksError, DecodeError) as e:
            raise FieldError("answer", "a CKKS scores blob", raw[:32]) from e
        return PredictAnswer(raw, output_hash(raw), None, None, seconds)
    except (DecodeError, FieldError) as e:
        raise PredictSandboxError("protocol", f"the reply is not a {mode} answer: {e}") from e


class WarmPredictor:
    """Answers requests for one deployed model from one sandbox container [PRED-EXEC.1].

    ``warm=False``: the cold path, a fresh container per request [PRED-EXEC.5].
    One request at a time (the channel is one stream): an executor serving a model
    concurrently keeps one predictor per worker thread, or queues."""

    def __init__(self, client: docker.DockerClient, image: str, model_path: Path,
                 record: DeployedModel, mode: str, *, limits: ResourceLimits | None = None,
                 warm: bool = True, request_timeout_s: float = REQUEST_TIMEOUT_S,
                 start_timeout_s: float = START_TIMEOUT_S, node_id: str = "local",
                 runtime: str | None = None) -> None:
        if mode not in MODES or (mode == "labels") != (record.output.kind == "classes"):
            raise ValueError(f"mode {mode!r} does not fit a {record.output.kind} model")
        self.client, self.image, self.record, self.mode = client, image, record, mode
        self.limits = limits or ResourceLimits()
        self.warm, self.node_id = warm, node_id
        self.runtime = runtime
        """[JOB-RUNTIME.1] The node's runtime for every container it starts."""
        self.request_timeout_s, self.start_timeout_s = request_timeout_s, start_timeout_s
        self.restarts = 0
        """Containers replaced after a timeout, crash or bad reply."""
        self._model_dir = _stage_model(model_path, MODEL_FILES[record.format])
        self._session: Session | None = None
        if warm:
            try:
                self._session = self._start()
            except BaseException:
                self.close()
                raise

    def __enter__(self) -> WarmPredictor:
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.close()

    @property
    def container_id(self) -> str:
        """The warm container's id ('' when none is running)."""
        return self._session.id if self._session is not None else ""

    def healthy(self) -> bool:
        """Is the warm container still serving (its output not ended)?"""
        return self._session is not None and self._session.alive()

    def _start(self) -> Session:
        return Session(self.client, self.image, self._model_dir, self.record, self.mode,
                       self.limits, node_id=self.node_id,
                       start_timeout_s=self.start_timeout_s, runtime=self.runtime)

    def _restart(self) -> None:
        """[PRED-EXEC.4] Kill and remove the broken container; start its replacement now, so
        the next request finds a warm one (if that fails, the next request tries again)."""
        if self._session is not None:
            self._session.close()
            self._session = None
        self.restarts += 1
        try:
            self._session = self._start()
        except PredictSandboxError:
            self._session = None

    def predict(self, blob: bytes, rows: int) -> PredictAnswer:
        """[PRED-EXEC.2] The answer to one request (``rows`` as the request states)."""
        started = time.monotonic()
        if len(blob) > MAX_REQUEST_BYTES:  # what the evaluation answers to it, unsent
            return self._answer(invalid_blob("not_rows"), rows, started)
        if not self.warm:
            session = self._start()
            try:  # timed before the removal, which need not delay the answer
                return self._answer(session.request(rows, blob, self.request_timeout_s),
                                    rows, started)
            finally:
                session.close()
        if self._session is None or not self._session.alive():
            self._restart()  # died while idle: replaced before the request, not blamed on it
            if self._session is None:
                self._session = self._start()
        try:
            return self._answer(self._session.request(rows, blob, self.request_timeout_s),
                                rows, started)
        except PredictSandboxError:
            self._restart()
            raise

    def _answer(self, raw: bytes, rows: int, started: float) -> PredictAnswer:
        return checked_answer(self.mode, self.record, raw, rows, started)

    def close(self) -> None:
        """Remove the container and the staged model; idempotent [PRED-EXEC.1]."""
        if self._session is not None:
            self._session.close()
            self._session = None
        shutil.rmtree(self._model_dir, ignore_errors=True)
