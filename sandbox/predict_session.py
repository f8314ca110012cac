"""One prediction sandbox container and its attached stdin/stdout [PRED-EXEC.1] [PRED-EXEC.2].

The container gets exactly the hardening of a training container (``policy.container_kwargs``:
no network, read-only root, no capabilities, the project's seccomp profile, memory, CPU and
pid limits, nobody), the model file's folder read-only at /model, and this project's
``chain`` and ``sandbox`` packages read-only at /lc (the code the host itself runs, so the
answer is the host's reference by construction). Its PID 1 is ``predict_server``; the host
talks to it over the attached stdin/stdout (Docker's multiplexed stream, demultiplexed here),
so nothing needs a network and nothing in it can write to the host.

Every read has a deadline and every reply a size cap; past either the session is dead and
the caller (``predict_sandbox``) kills it and starts another.
"""

from __future__ import annotations

import contextlib
import secrets
import select
import socket
import struct
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import docker
import docker.errors

import chain
import sandbox
from chain.encoding import encode
from chain.predict.model import DeployedModel
from sandbox import container_ops as ops
from sandbox import policy
from sandbox.container_ops import EngineErrors
from sandbox.errors import SandboxError
from sandbox.limits import ResourceLimits
from sandbox.predict_frames import (
    ERROR,
    EXECUTOR_FAULT,
    MAX_REPLY_BYTES,
    MODEL_FAULT,
    READY,
    REPLY_HEAD,
    parse_reply_head,
    request_frame,
)

CODE_MOUNT = "/lc"
MODEL_FILE = "model.safetensors"
"""The staged file's name for a safetensors-mlp model; an ONNX model's is ``model.onnx``
(``predict_server.MODEL_FILES``)."""
SERVER_ARGV = ("python3", "-m", "sandbox.predict_server")
ENTRY = "predict"
STDOUT, STDERR = 1, 2
MUX_HEAD = struct.Struct(">BxxxI")
"""Docker's stream multiplexing header (non-TTY attach): stream, 3 zero bytes, size."""
MAX_LOG_BYTES = 64 * 1024
"""Stderr kept per session (tracebacks); more is dropped, never buffered."""
THREAD_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
"""One BLAS thread: the same kernel path whatever the executor's core count [PRED-EXEC.3]."""


class PredictSandboxError(SandboxError):
    """A prediction sandbox failed (not the input: a bad input gets the invalid answer).

    ``reason`` is machine-readable: ``start`` (the container did not start or did not say
    READY in time), ``model`` (the server refused the model file), ``executor`` (the
    sandbox's own fault at start, e.g. no TenSEAL: never "does not load"), ``timeout``,
    ``crashed``
    (the server died or closed its output), ``protocol`` (a malformed or oversized reply).
    ``logs`` holds the server's stderr, bounded."""

    def __init__(self, reason: str, message: str, logs: bytes = b"") -> None:
        self.reason, self.logs = reason, logs[-2000:]
        super().__init__(f"prediction sandbox {reason}: {message}")


def start_failure_reason(message: str) -> str:
    """``model`` when the server refused the deployed model file, ``executor`` when the
    fault was the sandbox's own (the message begins ``EXECUTOR_FAULT``) [PRED-UNLOADABLE.1]."""
    return "executor" if message.startswith(EXECUTOR_FAULT) else "model"


def code_binds() -> dict[str, Path]:
    """The host's ``chain`` and ``sandbox`` packages, read-only below /lc."""
    return {f"{CODE_MOUNT}/chain": Path(chain.__file__).parent,
            f"{CODE_MOUNT}/sandbox": Path(sandbox.__file__).parent}


def container_args(image: str, model_dir: Path, limits: ResourceLimits, node_id: str,
                   job: str, env: Mapping[str, str], runtime: str | None = None
                   ) -> dict[str, Any]:
    """``containers.create`` arguments: the training policy (and runtime [JOB-RUNTIME.1]),
    then the server as PID 1."""
    binds = {policy.MODEL_MOUNT: model_dir, **code_binds()}
    kwargs = policy.container_kwargs(image, limits, policy.labels_for(job, node_id, ENTRY),
                                     binds, name=f"lc-predict-{secrets.token_hex(6)}",
                                     runtime=runtime)
    kwargs.update(command=list(SERVER_ARGV), user=policy.JOB_USER, stdin_open=True,
                  environment={"PYTHONPATH": CODE_MOUNT, "PYTHONDONTWRITEBYTECODE": "1",
                               "HOME": policy.SCRATCH_DIR, **THREAD_ENV, **env})
    return kwargs


class _Demux:
    """Docker's multiplexed stream → stdout bytes (kept whole) and stderr (bounded)."""

    def __init__(self) -> None:
        self.raw = bytearray()
        self.stdout = bytearray()
        self.stderr = bytearray()

    def feed(self, data: bytes) -> None:
        self.raw += data
        while len(self.raw) >= MUX_HEAD.size:
            stream, size = MUX_HEAD.unpack_from(self.raw)
            if len(self.raw) < MUX_HEAD.size + size:
                return
            chunk = bytes(self.raw[MUX_HEAD.size:MUX_HEAD.size + size])
            del self.raw[:MUX_HEAD.size + size]
            if stream == STDOUT:
                self.stdout += chunk
            elif len(self.stderr) < MAX_LOG_BYTES:
                self.stderr += chunk[:MAX_LOG_BYTES - len(self.stderr)]


class Session:
    """One started, configured sandbox container; ``request`` is one round trip."""

    def __init__(self, client: docker.DockerClient, image: str, model_dir: Path,
                 record: DeployedModel, mode: str, limits: ResourceLimits, *,
                 node_id: str, start_timeout_s: float, env: Mapping[str, str] | None = None,
                 runtime: str | None = None) -> None:
        self.client = client
        self.container: Any = None
        self._sock: socket.socket | None = None
        self._holder: Any = None
        self._demux = _Demux()
        deadline = time.monotonic() + start_timeout_s
        kwargs = container_args(image, model_dir, limits, node_id, record.job_id.hex(),
                                env or {}, runtime)
        try:
            self.container = client.containers.create(**kwargs)
            self._holder = client.api.attach_socket(
                self.container.id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
            self._sock = getattr(self._holder, "_sock", self._holder)
            self._sock.setblocking(False)
            self.container.start()
        except EngineErrors as e:
            self.close()
            raise PredictSandboxError("start", f"could not start the container: {e}") from e
        try:
            self._send(request_frame(0, encode([mode, record.to_wire()])), deadline)
            kind, payload = self._reply(deadline, 0)
        except PredictSandboxError as e:
            self.close()
            raise PredictSandboxError("start", str(e), e.logs) from e
        if kind != READY:
            self.close()
            message = payload.decode("utf-8", "replace")
            raise PredictSandboxError(start_failure_reason(message), message, self.logs)

    @property
    def logs(self) -> bytes:
        return bytes(self._demux.stderr)

    @property
    def id(self) -> str:
        return str(self.container.id) if self.container is not None else ""

    def alive(self) -> bool:
        """False when the server has already ended its output (crashed or was killed): a
        readable socket between requests can only mean end of stream or stray bytes."""
        if self._sock is None:
            return False
        readable, _, _ = select.select([self._sock], [], [], 0)
        return not readable

    def request(self, rows: int, blob: bytes, timeout_s: float, cap: int = MAX_REPLY_BYTES
                ) -> bytes:
        """Send one input, return the answer bytes, or raise ``PredictSandboxError``."""
        deadline = time.monotonic() + timeout_s
        self._send(request_frame(rows, blob), deadline)
        kind, payload = self._reply(deadline, cap)
        if kind != 2:  # ANSWER
            message = payload.decode("utf-8", "replace") if kind == ERROR \
                else "unexpected READY"
            # [PRED-EXEC.6] the deployed model failed in the runtime: as deterministic as a
            # refusal at start, so the executor answers "does not load" [PRED-UNLOADABLE.1]
            reason = "model" if kind == ERROR and message.startswith(MODEL_FAULT) \
                else "crashed"
            raise PredictSandboxError(reason, message, self.logs)
        return payload

    def _send(self, data: bytes, deadline: float) -> None:
        assert self._sock is not None
        view = memoryview(data)
        while view:
            left = deadline - time.monotonic()
            if left <= 0:
                raise PredictSandboxError("timeout", "the server stopped reading its input",
                                          self.logs)
            _, writable, _ = select.select([], [self._sock], [], left)
            if not writable:
                continue
            try:
                sent = self._sock.send(view[:1 << 20])
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as e:
                raise PredictSandboxError("crashed", f"input closed: {e}", self.logs) from e
            view = view[sent:]

    def _reply(self, deadline: float, cap: int) -> tuple[int, bytes]:
        """The next reply frame, read within ``deadline`` and refused past ``cap``."""
        out = self._demux.stdout
        length = -1
        kind = 0
        while True:
            if length < 0 and len(out) >= REPLY_HEAD.size:
                try:
                    kind, length = parse_reply_head(bytes(out[:REPLY_HEAD.size]), cap)
                except ValueError as e:
                    raise PredictSandboxError("protocol", str(e), self.logs) from e
            if length >= 0 and len(out) >= REPLY_HEAD.size + length:
                payload = bytes(out[REPLY_HEAD.size:REPLY_HEAD.size + length])
                del out[:REPLY_HEAD.size + length]
                return kind, payload
            if len(self._demux.raw) > cap + (1 << 20):
                raise PredictSandboxError("protocol", "reply stream over its cap", self.logs)
            self._read_some(deadline)

    def _read_some(self, deadline: float) -> None:
        assert self._sock is not None
        left = deadline - time.monotonic()
        if left <= 0:
            raise PredictSandboxError("timeout", "no answer in time", self.logs)
        readable, _, _ = select.select([self._sock], [], [], left)
        if not readable:
            raise PredictSandboxError("timeout", "no answer in time", self.logs)
        try:
            data = self._sock.recv(1 << 20)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            raise PredictSandboxError("crashed", f"output broke: {e}", self.logs) from e
        if not data:
            raise PredictSandboxError("crashed", "the server ended its output", self.logs)
        self._demux.feed(data)

    def close(self) -> None:
        """Kill and remove the container (force), close the attachment; idempotent."""
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None
        if self._holder is not None:
            with contextlib.suppress(OSError):
                self._holder.close()
            self._holder = None
        if self.container is not None:
            ops.remove(self.container)
            self.container = None
