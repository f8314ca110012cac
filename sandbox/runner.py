"""Running a job's entry points in hardened containers [JOB-SANDBOX.*].

One container per entry-point run. PID 1 only holds the container open;
the entry point runs as a ``docker exec`` so that after it exits its
/output tmpfs still exists and can be copied out, size-checked, before the
container is removed. Everything the job can do wrong comes back as a
``RunResult``/``EvalResult`` with a ``FailureReason``; no Docker exception
leaks to the caller.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests.exceptions
from docker.utils.socket import frames_iter

from sandbox import policy
from sandbox.engine import connect
from sandbox.limits import ResourceLimits, TrainParams
from sandbox.output import OutputRejected, extract_output
from sandbox.results import EvalResult, FailureReason, RunResult

TRAIN_ARGV = ("/job/train",)
"""Default train entry point [JOB-ENTRY.1]."""
EVALUATE_ARGV = ("/job/evaluate",)
"""Default evaluate entry point [JOB-ENTRY.1]."""
MODEL_FILE = "model.pt"
"""Train writes ``/output/model.pt`` [JOB-TRAIN.3]; evaluate reads ``/model/model.pt``."""
METRICS_FILE = "metrics.json"
"""Evaluate writes ``/output/metrics.json`` with a ``loss`` [JOB-EVAL.2]."""
EXIT_BAD_PARAMS = 2
EXIT_INVALID_MODEL = 3
KILL_GRACE_S = 10.0
SIGKILL_EXIT = 128 + 9
OOM_EVENT_WAIT_S = 0.3
"""The engine's oom event can trail the killed process's exit by a moment."""
POLL_S = 0.05
FULL_FRACTION = 0.98
"""A tmpfs this full after a failed run is taken to be why it failed."""

EngineErrors = (docker.errors.DockerException, requests.exceptions.RequestException, OSError)


@dataclass(frozen=True, slots=True)
class _Exec:
    """How one entry point ended, before its output is looked at."""

    exit_code: int | None
    seconds: float
    logs: bytes
    log_overflow: bool
    timed_out: bool
    started: float
    """Epoch seconds at the exec's start, to ask the engine for events since."""
    stray: bool
    """The entry point exited but processes it left behind still held its output open."""


class SandboxRunner:
    """Runs job entry points for one node; every container carries the node's label."""

    def __init__(self, client: docker.DockerClient | None = None, node_id: str = "local") -> None:
        self.client = client if client is not None else connect()
        self.node_id = node_id

    # -- the entry points of the job contract --------------------------------------------

    def train(
        self,
        image_id: str,
        params: TrainParams,
        limits: ResourceLimits,
        input_dir: Path | None,
        output_dir: Path,
        *,
        job_id: str = "",
        argv: Sequence[str] = TRAIN_ARGV,
    ) -> RunResult:
        """Train once with ``params``; on success ``model_path`` is the checked model.

        [JOB-TRAIN.1-4]: parameters in ``LC_PARAMS``, model at /output/model.pt,
        no larger than ``limits.model_bytes``.
        """
        env = {"LC_PARAMS": params.to_json(), "LC_SEED": str(params.seed)}
        result = self.run_entry(image_id, "train", argv, env, limits, output_dir,
                                input_dir=input_dir, job_id=job_id)
        if not result.ok:
            return result
        model = output_dir / MODEL_FILE
        if not model.is_file() or model.is_symlink():
            return _fail_like(result, FailureReason.MODEL_MISSING,
                              f"train exited 0 but wrote no /output/{MODEL_FILE}")
        size = model.stat().st_size
        if size > limits.model_bytes:
            model.unlink()
            return _fail_like(result, FailureReason.MODEL_TOO_LARGE,
                              f"model is {size} bytes, limit {limits.model_bytes}")
        return _replace(result, model_path=model)

    def evaluate(
        self,
        image_id: str,
        model_path: Path,
        limits: ResourceLimits,
        *,
        input_dir: Path | None = None,
        job_id: str = "",
        argv: Sequence[str] = EVALUATE_ARGV,
    ) -> EvalResult:
        """Evaluate the model at ``model_path``; the loss comes from metrics.json [JOB-EVAL.*]."""
        size = model_path.stat().st_size if model_path.is_file() else -1
        if size < 0:
            return EvalResult(False, FailureReason.MODEL_MISSING, None,
                              detail=f"no model file at {model_path}")
        if size > limits.model_bytes:
            return EvalResult(False, FailureReason.MODEL_TOO_LARGE, None,
                              detail=f"model is {size} bytes, limit {limits.model_bytes}")
        with tempfile.TemporaryDirectory(prefix="lc-eval-") as tmp:
            model_dir = Path(tmp) / "model"
            model_dir.mkdir(mode=0o755)
            shutil.copyfile(model_path, model_dir / MODEL_FILE)
            (model_dir / MODEL_FILE).chmod(0o644)
            Path(tmp).chmod(0o755)
            out = Path(tmp) / "out"
            env = {"LC_MODEL": f"{policy.MODEL_MOUNT}/{MODEL_FILE}"}
            run = self.run_entry(image_id, "evaluate", argv, env, limits, out,
                                 input_dir=input_dir, job_id=job_id,
                                 extra_binds={policy.MODEL_MOUNT: model_dir})
            if not run.ok:
                return EvalResult(False, run.reason, None, exit_code=run.exit_code,
                                  seconds=run.seconds, logs=run.logs, detail=run.detail)
            metrics, problem = read_metrics(out / METRICS_FILE)
        if metrics is None:
            return EvalResult(False, FailureReason.BAD_METRICS, None, exit_code=run.exit_code,
                              seconds=run.seconds, logs=run.logs, detail=problem)
        return EvalResult(True, None, metrics["loss"], metrics, run.exit_code, run.seconds,
                          run.logs, f"loss {metrics['loss']!r}")

    # -- the general mechanism -----------------------------------------------------------

    def run_entry(
        self,
        image_id: str,
        entry: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        limits: ResourceLimits,
        output_dir: Path,
        *,
        input_dir: Path | None = None,
        job_id: str = "",
        extra_binds: Mapping[str, Path] | None = None,
    ) -> RunResult:
        """Run ``argv`` in a fresh hardened container and copy /output to ``output_dir``.

        ``output_dir`` is created if missing and must be empty. Any entry point
        of a job kind (train, evaluate, later predict...) goes through here.
        """
        output_dir.mkdir(parents=True, exist_ok=True)
        if any(output_dir.iterdir()):
            raise ValueError(f"output folder {output_dir} is not empty")
        binds = dict(extra_binds or {})
        if input_dir is not None:
            binds[policy.INPUT_MOUNT] = input_dir.resolve()
        full_env = {
            "HOME": policy.SCRATCH_DIR,
            "LC_ENTRY": entry,
            "LC_OUTPUT": policy.OUTPUT_DIR,
            "LC_CPUS": str(max(1, math.ceil(limits.nano_cpus / 1e9))),
            **({"LC_INPUT": policy.INPUT_MOUNT} if input_dir is not None else {}),
            **env,
        }
        kwargs = policy.container_kwargs(image_id, limits,
                                         policy.labels_for(job_id, self.node_id, entry), binds)
        try:
            container = self.client.containers.create(**kwargs)
        except docker.errors.ImageNotFound:
            return _early_failure(FailureReason.IMAGE_MISSING, output_dir,
                                  f"image {image_id} is not loaded in the engine")
        except EngineErrors as e:
            return _early_failure(FailureReason.ENGINE_ERROR, output_dir,
                                  f"could not create container: {e}")
        try:
            return self._run_in(container, argv, full_env, limits, output_dir)
        except EngineErrors as e:
            return _early_failure(FailureReason.ENGINE_ERROR, output_dir, f"engine error: {e}")
        finally:
            _remove(container)

    def _run_in(self, container: Any, argv: Sequence[str], env: Mapping[str, str],
                limits: ResourceLimits, output_dir: Path) -> RunResult:
        container.start()
        done = self._exec(container, argv, env, limits)
        base = RunResult(ok=False, reason=None, exit_code=done.exit_code, seconds=done.seconds,
                         logs=done.logs, output_dir=output_dir)
        if done.log_overflow:
            return _fail_like(base, FailureReason.LOG_TOO_LARGE,
                              f"printed more than {limits.log_bytes} bytes; killed")
        if done.timed_out:
            return _fail_like(base, FailureReason.TIMEOUT,
                              f"ran past its {limits.wall_time_s:g} s limit; killed")
        if done.exit_code in (None, SIGKILL_EXIT) and self._oom_killed(container, done.started):
            return _fail_like(base, FailureReason.OOM,
                              f"exceeded its {limits.memory_bytes} byte memory limit; killed")
        if done.stray:
            return _fail_like(base, FailureReason.STRAY_PROCESSES,
                              "exited but left processes running; killed")
        if done.exit_code is None:
            return _fail_like(base, FailureReason.KILLED, "entry point did not report an exit")
        if done.exit_code != 0:
            return _fail_like(base, *self._why_nonzero(container, done.exit_code, env))
        try:
            summary = extract_output(self._output_archive(container), output_dir,
                                     limits.output_bytes)
        except OutputRejected as e:
            reason = (FailureReason.OUTPUT_TOO_LARGE if e.reason == "too_large"
                      else FailureReason.BAD_OUTPUT)
            return _fail_like(base, reason, str(e))
        return _replace(base, ok=True, output_bytes=summary.total_bytes,
                        detail=f"exit 0, {summary.files} output files, {summary.total_bytes} bytes")

    def _output_archive(self, container: Any) -> Iterator[bytes]:
        """A tar stream of /output, made inside the container.

        The engine's own archive API cannot see into tmpfs mounts, so ``tar``
        runs in the container, as the job's user. Its bytes are as untrusted
        as the rest of the job's output; ``extract_output`` caps and checks them.
        """
        api = self.client.api
        exec_id = api.exec_create(container.id, ["tar", "-C", "/", "-cf", "-", "output"],
                                  user=policy.JOB_USER)["Id"]
        for stdout, _stderr in api.exec_start(exec_id, stream=True, demux=True):
            if stdout:
                yield stdout

    def _exec(self, container: Any, argv: Sequence[str], env: Mapping[str, str],
              limits: ResourceLimits) -> _Exec:
        api = self.client.api
        exec_id = api.exec_create(container.id, list(argv), user=policy.JOB_USER,
                                  environment=dict(env), workdir=policy.SCRATCH_DIR)["Id"]
        started = time.monotonic()
        wall_started = time.time()
        sock = api.exec_start(exec_id, socket=True)
        # A job may stay silent for longer than the client's HTTP timeout.
        api._disable_socket_timeout(sock)
        stream = (data for _kind, data in frames_iter(sock, tty=False))
        reader = _CappedReader(stream, limits.log_bytes,
                               on_overflow=lambda: _kill_in_background(container))
        reader.start()
        deadline = started + limits.wall_time_s
        timed_out = False
        # Wait for the process, not for its output: a job may close stdout and run on.
        while True:
            if reader.is_alive():
                reader.join(POLL_S)
            else:
                time.sleep(POLL_S)
            if not _exec_state(api, exec_id)[0]:
                reader.join(1.0)  # the last bytes of output are on their way
                break
            if time.monotonic() >= deadline:
                timed_out = True
                _kill(container)
                break
        seconds = time.monotonic() - started
        stray = False
        if reader.is_alive():  # background children still hold stdout open
            stray = not timed_out
            _kill(container)
            reader.join(KILL_GRACE_S)
        exit_code = _exec_state(api, exec_id)[1]
        with contextlib.suppress(OSError):
            sock.close()
        return _Exec(exit_code, seconds, reader.data(), reader.overflow, timed_out, wall_started,
                     stray)

    def _oom_killed(self, container: Any, since: float) -> bool:
        """Did the kernel OOM-kill anything in the container since ``since`` (epoch s)?

        ``State.OOMKilled`` only covers PID 1, and the entry point is an exec,
        so the engine's ``oom`` event for the container is asked for as well.
        """
        try:
            container.reload()
            if container.attrs.get("State", {}).get("OOMKilled"):
                return True
            events = self.client.events(since=since - 1, until=time.time() + OOM_EVENT_WAIT_S,
                                        filters={"container": container.id, "event": "oom"},
                                        decode=True)
            return any(True for _ in events)
        except EngineErrors:
            return False

    def _why_nonzero(self, container: Any, code: int, env: Mapping[str, str]
                     ) -> tuple[FailureReason, str]:
        if code == EXIT_BAD_PARAMS and env.get("LC_PARAMS") is not None:
            return FailureReason.BAD_PARAMS, "train rejected its parameters (exit 2)"
        if code == EXIT_INVALID_MODEL and env.get("LC_MODEL") is not None:
            return FailureReason.INVALID_MODEL, "evaluate rejected the model (exit 3)"
        usage = _tmpfs_usage(self.client, container)
        if usage.get(policy.OUTPUT_DIR, 0.0) >= FULL_FRACTION:
            return FailureReason.OUTPUT_TOO_LARGE, f"filled its output folder (exit {code})"
        if usage.get(policy.SCRATCH_DIR, 0.0) >= FULL_FRACTION:
            return FailureReason.SCRATCH_FULL, f"filled its /tmp scratch space (exit {code})"
        if code >= 128:
            return FailureReason.KILLED, f"killed by signal {code - 128}"
        return FailureReason.NONZERO_EXIT, f"exit {code}"


class _CappedReader(threading.Thread):
    """Reads an exec's output stream, keeping at most ``cap`` bytes.

    Past the cap it calls ``on_overflow`` (which kills the container) once
    and then discards: a job printing gigabytes costs the host one cap of
    memory. It keeps draining until the stream ends, because an engine whose
    output stream is not read cannot finish killing the container.
    """

    def __init__(self, stream: Iterator[bytes], cap: int, on_overflow: Any) -> None:
        super().__init__(daemon=True)
        self._stream = stream
        self._cap = cap
        self._on_overflow = on_overflow
        self._chunks: list[bytes] = []
        self._size = 0
        self.overflow = False

    def run(self) -> None:
        try:
            for chunk in self._stream:
                if self.overflow:
                    continue
                room = self._cap - self._size
                self._chunks.append(chunk[:room])
                self._size += min(len(chunk), room)
                if len(chunk) > room:
                    self.overflow = True
                    self._on_overflow()
        except EngineErrors:
            return

    def data(self) -> bytes:
        return b"".join(self._chunks)


def read_metrics(path: Path) -> tuple[dict[str, float] | None, str]:
    """Parse metrics.json: a JSON object with a finite number ``loss`` [JOB-EVAL.2]."""
    if not path.is_file() or path.is_symlink():
        return None, f"evaluate wrote no {METRICS_FILE}"
    if path.stat().st_size > 64 * 1024:
        return None, f"{METRICS_FILE} is larger than 64 KiB"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        return None, f"{METRICS_FILE} is not JSON: {e}"
    if not isinstance(raw, dict):
        return None, f"{METRICS_FILE} is not a JSON object"
    metrics = {
        str(k): float(v) for k, v in raw.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    }
    if "loss" not in metrics:
        return None, f"{METRICS_FILE} has no finite number 'loss'"
    return metrics, ""


def _exec_state(api: Any, exec_id: str) -> tuple[bool, int | None]:
    """(running, exit code) of an exec; a killed container takes its execs with it."""
    try:
        info = api.exec_inspect(exec_id)
    except docker.errors.NotFound:
        return False, None
    if info.get("Running"):
        return True, None
    code = info.get("ExitCode")
    return False, code if isinstance(code, int) else None


def _tmpfs_usage(client: docker.DockerClient, container: Any) -> dict[str, float]:
    """Fill fraction of /tmp and /output, asked of ``df`` inside the still-running container."""
    try:
        exec_id = client.api.exec_create(
            container.id, ["df", "-P", policy.SCRATCH_DIR, policy.OUTPUT_DIR],
            user=policy.JOB_USER)["Id"]
        text = client.api.exec_start(exec_id).decode("utf-8", "replace")
    except EngineErrors:
        return {}
    usage: dict[str, float] = {}
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 6 and fields[1].isdigit() and int(fields[1]) > 0:
            usage[fields[5]] = int(fields[2]) / int(fields[1])
    return usage




def _kill(container: Any) -> None:
    with contextlib.suppress(*EngineErrors):  # already dead
        container.kill()


def _kill_in_background(container: Any) -> None:
    threading.Thread(target=_kill, args=(container,), daemon=True).start()


def _remove(container: Any) -> None:
    # On failure, cleanup_containers() finds it by its label at the node's next start.
    with contextlib.suppress(*EngineErrors):
        container.remove(force=True)


def _replace(result: RunResult, **changes: Any) -> RunResult:
    from dataclasses import replace

    return replace(result, **changes)


def _fail_like(result: RunResult, reason: FailureReason, detail: str) -> RunResult:
    return _replace(result, ok=False, reason=reason, detail=detail, model_path=None)


def _early_failure(reason: FailureReason, output_dir: Path, detail: str) -> RunResult:
    return RunResult(ok=False, reason=reason, exit_code=None, seconds=0.0, logs=b"",
                     output_dir=output_dir, detail=detail)
