"""Running a job's entry points in hardened containers [JOB-SANDBOX.*].

One container per entry-point run. PID 1 only holds the container open; the entry
point runs as a ``docker exec`` through the launcher that installs the job's seccomp
profile [JOB-SECCOMP.5], so that after it exits its /output tmpfs volume still exists
and can be copied out, size-checked, before the container is removed. The copy goes
through the engine's archive API under a deadline that counts in the job's time
[JOB-OUT.6]: no program of the job's image ever runs for the host's own work, and no
wait on the container is unbounded. Everything the job can do wrong comes back as a
``RunResult``/``EvalResult`` with a ``FailureReason``; no exception leaks to the
caller, whatever the job wrote or printed [JOB-EXIT.2]. Which reasons
are the job's fault and which the node's is ``results.JOB_FAULTS`` /
``results.WORKER_FAULTS`` [JOB-EXIT.5]; ``engine_error`` only when the
engine itself is confirmed failing.

Evaluation runs in a fixed environment [EVAL-ENV.*] (``eval_env.py``).
"""

from __future__ import annotations

import contextlib
import math
import secrets
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import docker
import docker.errors
from docker.utils.socket import frames_iter

from sandbox import container_ops as ops
from sandbox import eval_env, gpu, launcher, policy
from sandbox.checkpoints import RunWatch
from sandbox.container_ops import EngineErrors
from sandbox.engine import connect
from sandbox.job_json import MAX_JSON_BYTES, JobJsonError, parse_metrics
from sandbox.limits import MIB, ResourceLimits, TrainParams
from sandbox.oom_watch import OomWatch, oom_killed
from sandbox.output import (
    ARCHIVE_ROOT,
    NO_ROOT,
    ArchiveSourceBroken,
    ArchiveStalled,
    OutputHostError,
    OutputRejected,
    clear_folder,
    extract_output,
)
from sandbox.results import EvalResult, FailureReason, RunResult
from sandbox.warm import WarmStarts, extra_volumes

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
POLL_S = 0.05
POLL_MAX_S = 1.0
"""The slowest poll of an exec whose output is open: each poll costs 2-3 ms of CPU."""
FULL_FRACTION = 0.98
"""A tmpfs this full after a failed run is taken to be why it failed."""
WHOLE_OUTPUT = ("output",)
"""What is archived after train: all of /output [JOB-SANDBOX.2]."""
COPY_GRACE_S = 10.0
"""[JOB-OUT.6] Time for copying /output out beyond what the entry point left of its
wall time, plus one second per ``COPY_BYTES_PER_S`` of the output cap."""
COPY_BYTES_PER_S = 16 * MIB
"""[JOB-OUT.6] The slowest copy rate allowed for (a tmpfs archives at hundreds of MiB/s)."""
FILL_CHECK_S = 10.0
"""[JOB-OUT.6] Time for counting how full /tmp and /output are after a failed run."""
SELF_TEST_LIMITS = ResourceLimits(memory_bytes=32 * MIB, nano_cpus=500_000_000, pids=8,
                                  wall_time_s=10.0, tmp_bytes=MIB, output_bytes=MIB,
                                  model_bytes=MIB, log_bytes=4096)
"""Limits of the known-good container that confirms an engine failure [JOB-EXIT.5]."""

FileCaps = Mapping[str, tuple[int, FailureReason]]
"""Per-file byte caps by name below /output, with the reason a larger file fails with."""


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
    oom: bool = False
    """The node killed it after the kernel's OOM kill of one of its processes [JOB-EXIT.6]."""


class SandboxRunner:
    """Runs job entry points for one node; every container carries the node's label."""

    def __init__(self, client: docker.DockerClient | None = None, node_id: str = "local",
                 self_test_image: str | None = None, runtime: str | None = None,
                 eval_runtime: str | None = None, warm_start: bool | None = None) -> None:
        self.client = client if client is not None else connect()
        self.node_id = node_id
        self.runtime = runtime
        """[JOB-RUNTIME.1] ``runsc`` or ``runc`` for every container; None: the engine's."""
        self.eval_runtime = eval_runtime or runtime
        """[JOB-RUNTIME.13] The graph's runtime for ``evaluate``; None: ``runtime``."""
        self.self_test_image = self_test_image
        """Known-good image for [JOB-EXIT.5]'s confirmation; default: the base image."""
        self.warm = WarmStarts(self.client, node_id, warm_start)
        """[JOB-WARM.*] Restored sandboxes with torch imported (runsc; None: ``$LC_WARM_START``)."""

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
        data: Mapping[str, Path] | None = None,
        watch: RunWatch | None = None,
    ) -> RunResult:
        """Train once with ``params``; on success ``model_path`` is the checked model.

        [JOB-TRAIN.1-4]: parameters in ``LC_PARAMS``, model at /output/model.pt,
        no larger than ``limits.model_bytes``, refused from its tar header before
        any byte of it is written on the host [JOB-OUT.4]. ``watch`` (train only) adds
        the checkpoint tmpfs, the kept copy at /resume, and reads progress while the
        run goes [JOB-PROGRESS.*], [JOB-CHECKPOINT.*].
        """
        env = {"LC_PARAMS": params.to_json(), "LC_SEED": str(params.seed)}
        result = self.run_entry(image_id, "train", argv, env, limits, output_dir,
                                input_dir=input_dir, job_id=job_id, data=data, watch=watch,
                                file_caps={MODEL_FILE: (limits.model_bytes,
                                                        FailureReason.MODEL_TOO_LARGE)})
        if not result.ok:
            return result
        model = output_dir / MODEL_FILE
        if not model.is_file() or model.is_symlink():
            return _fail_like(result, FailureReason.MODEL_MISSING,
                              f"train exited 0 but wrote no /output/{MODEL_FILE}")
        return replace(result, model_path=model)

    def evaluate(
        self,
        image_id: str,
        model_path: Path,
        limits: ResourceLimits,
        *,
        input_dir: Path | None = None,
        job_id: str = "",
        argv: Sequence[str] = EVALUATE_ARGV,
        seed: int | None = None,
        variant: int = 0,
        data: Mapping[str, Path] | None = None,
    ) -> EvalResult:
        """Evaluate the model at ``model_path`` in the fixed environment [EVAL-ENV.*].

        ``limits`` must come from the job's declared limits only
        (``ResourceLimits.from_spec``) [EVAL-ENV.6]. ``seed`` is handed to the
        job as ``LC_SEED`` (default: ``eval_env.eval_seed(job_id)``) [EVAL-ENV.2].
        ``variant`` > 0 varies what the contract does not fix (container name,
        start time, staging paths) for a worker's self-check [EVAL-ENV.8].
        The loss comes from metrics.json, parsed bounded [JOB-EVAL.2].
        """
        limits = limits.cpu_only()  # [JOB-GPU.3] evaluation never gets a GPU
        size = model_path.stat().st_size if model_path.is_file() else -1
        if size < 0:
            return EvalResult(False, FailureReason.MODEL_MISSING, None,
                              detail=f"no model file at {model_path}")
        if size > limits.model_bytes:
            return EvalResult(False, FailureReason.MODEL_TOO_LARGE, None,
                              detail=f"model is {size} bytes, limit {limits.model_bytes}")
        env = {"LC_MODEL": f"{policy.MODEL_MOUNT}/{MODEL_FILE}",
               **eval_env.evaluation_env(eval_env.eval_seed(job_id) if seed is None else seed)}
        with tempfile.TemporaryDirectory(prefix=f"lc-eval-{variant}-") as tmp:
            model_dir = eval_env.stage_model(model_path, Path(tmp), MODEL_FILE)
            out = Path(tmp) / "out"
            run = self.run_entry(image_id, "evaluate", argv, env, limits, out,
                                 input_dir=input_dir, job_id=job_id, data=data,
                                 extra_binds={policy.MODEL_MOUNT: model_dir},
                                 collect=(f"output/{METRICS_FILE}",),
                                 output_cap=MAX_JSON_BYTES,
                                 file_caps={METRICS_FILE: (MAX_JSON_BYTES,
                                                           FailureReason.BAD_METRICS)},
                                 variant=variant)
            if not run.ok:
                detail = run.detail
                if run.reason == FailureReason.BAD_METRICS:  # metrics.json over its cap
                    detail = f"{METRICS_FILE}: [JOB-JSON.1] {detail}"
                return EvalResult(False, run.reason, None, exit_code=run.exit_code,
                                  seconds=run.seconds, logs=run.logs, detail=detail)
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
        collect: Sequence[str] = WHOLE_OUTPUT,
        output_cap: int | None = None,
        file_caps: FileCaps | None = None,
        variant: int = 0,
        data: Mapping[str, Path] | None = None,
        watch: RunWatch | None = None,
    ) -> RunResult:
        """Run ``argv`` in a fresh hardened container and copy /output to ``output_dir``.

        ``output_dir`` is created if missing and must be empty. Any entry point
        of a job kind (train, evaluate, later predict...) goes through here.
        ``collect`` names what is archived out of the container, ``output_cap``
        (default ``limits.output_bytes``) and ``file_caps`` bound what the host
        writes [JOB-OUT.4]. An input folder is mounted as a private, fixed copy
        [EVAL-ENV.4]. ``data`` maps a job's data roles to their unpacked, fixed folders
        (``data_blob.unpack_data``), each mounted read-only at ``/data/<role>`` [JOB-DATA.3].
        """
        if limits.gpu_count:
            self.require_gpus(limits)  # [JOB-GPU.2] before anything is created
        output_dir.mkdir(parents=True, exist_ok=True)
        if any(output_dir.iterdir()):
            raise ValueError(f"output folder {output_dir} is not empty")
        if variant:
            time.sleep(eval_env.VARIANT_DELAY_S * variant)  # [EVAL-ENV.8] a later start
        with tempfile.TemporaryDirectory(prefix="lc-run-") as staging:
            binds = {**(extra_binds or {}), launcher.MOUNT: launcher.folder()}  # [JOB-SECCOMP.5]
            if input_dir is not None:
                binds[policy.INPUT_MOUNT] = eval_env.stage_input(input_dir, Path(staging))
            binds.update(policy.data_binds(data or {}))
            if watch is not None:
                binds.update(watch.binds(Path(staging)))
                env = {**watch.env(), **env}
            full_env = eval_env.ordered_env({
                "HOME": policy.SCRATCH_DIR, "LC_ENTRY": entry, "LC_OUTPUT": policy.OUTPUT_DIR,
                "LC_CPUS": str(max(1, math.ceil(limits.nano_cpus / 1e9))),
                **launcher.ENTRY_ENV,  # [JOB-MAPCACHE.1] [JOB-STATCACHE.1] [JOB-MALLOC.1]
                **({"LC_INPUT": policy.INPUT_MOUNT} if input_dir is not None else {}),
                **({"LC_DATA": policy.DATA_MOUNT} if data else {}),
                **env,
            })
            caps = dict(file_caps or {})
            cap = limits.output_bytes if output_cap is None else output_cap
            return self._create_and_run(image_id, entry, argv, full_env, limits, output_dir,
                                        binds, job_id, variant,
                                        lambda c, d: self._collect(c, collect, output_dir, cap,
                                                                   caps, d), watch)

    def require_gpus(self, limits: ResourceLimits) -> None:
        """[JOB-GPU.2] Raise ``GpuUnavailable`` unless the engine can pass GPUs through."""
        info = self.client.info()
        if not gpu.has_nvidia_runtime(info):
            raise gpu.GpuUnavailable(limits.gpu_count, gpu.engine_runtimes(info))

    def _create_and_run(self, image_id: str, entry: str, argv: Sequence[str],
                        env: Mapping[str, str], limits: ResourceLimits, output_dir: Path,
                        binds: Mapping[str, Path], job_id: str, variant: int,
                        collect: Any, watch: RunWatch | None = None) -> RunResult:
        runtime = self.eval_runtime if entry == "evaluate" else self.runtime
        kwargs = policy.container_kwargs(image_id, limits,
                                         policy.labels_for(job_id, self.node_id, entry), binds,
                                         name=_container_name(entry, job_id, variant),
                                         runtime=runtime)
        if watch is not None:  # [JOB-CHECKPOINT.1] the checkpoint tmpfs
            kwargs["mounts"] = [*kwargs["mounts"], *watch.mounts()]
        warm = self.warm.checkpoint_for(entry, image_id, env, limits, runtime,
                                        extra_volumes(kwargs))
        try:
            container = self.client.containers.create(**self.warm.container_kwargs(kwargs, warm))
        except docker.errors.ImageNotFound:
            return _early_failure(FailureReason.IMAGE_MISSING, output_dir,
                                  f"image {image_id} is not loaded in the engine")
        except EngineErrors as e:  # only our own arguments and the engine are involved
            return _early_failure(FailureReason.ENGINE_ERROR, output_dir,
                                  f"could not create container: {e}")
        try:
            try:
                container, exec_argv = self.warm.start(container, kwargs, warm)
            except EngineErrors as e:
                return self._blame(container, "start", e, output_dir)
            if watch is not None:
                watch.start(self.client, container)
            return self._run_in(container, exec_argv(argv), env, limits, output_dir, collect)
        except EngineErrors as e:
            return self._blame(container, "run", e, output_dir)
        finally:
            if watch is not None:
                watch.stop()
            ops.remove(container)

    def _run_in(self, container: Any, argv: Sequence[str], env: Mapping[str, str],
                limits: ResourceLimits, output_dir: Path, collect: Any) -> RunResult:
        done = self._exec(container, argv, env, limits)
        base = RunResult(ok=False, reason=None, exit_code=done.exit_code, seconds=done.seconds,
                         logs=done.logs, output_dir=output_dir)
        if done.log_overflow:
            return _fail_like(base, FailureReason.LOG_TOO_LARGE,
                              f"printed more than {limits.log_bytes} bytes; killed")
        if done.oom:
            return _fail_like(base, FailureReason.OOM,
                              f"exceeded its {limits.memory_bytes} byte memory limit; killed "
                              "(the kernel killed one of its processes) [JOB-EXIT.6]")
        if done.timed_out:
            return _fail_like(base, FailureReason.TIMEOUT,
                              f"ran past its {limits.wall_time_s:g} s limit; killed")
        # Any nonzero end: under runc the OOM-killed entry point ends with SIGKILL (137), under
        # runsc 20240729 with status 1 (the Sentry's own answer) [JOB-RUNTIME.3]
        if done.exit_code != 0 and oom_killed(self.client, container, done.started):
            return _fail_like(base, FailureReason.OOM,
                              f"exceeded its {limits.memory_bytes} byte memory limit; killed")
        if done.stray:
            return _fail_like(base, FailureReason.STRAY_PROCESSES,
                              "exited but left processes running; killed")
        if done.exit_code is None:
            return _fail_like(base, FailureReason.KILLED, "entry point did not report an exit")
        if done.exit_code != 0:
            return _fail_like(base, *self._why_nonzero(container, done.exit_code, env, limits))
        # [JOB-OUT.6] the copy may use what the entry point left of its time, and a grace
        deadline = (time.monotonic() + max(0.0, limits.wall_time_s - done.seconds)
                    + COPY_GRACE_S + limits.output_bytes / COPY_BYTES_PER_S)
        reason, detail, total = collect(container, deadline)
        if reason is not None:
            return _fail_like(base, reason, detail)
        return replace(base, ok=True, output_bytes=total, detail=detail)

    def _collect(self, container: Any, paths: Sequence[str], output_dir: Path, cap: int,
                 file_caps: Mapping[str, tuple[int, FailureReason]], deadline: float
                 ) -> tuple[FailureReason | None, str, int]:
        """Copy ``paths`` out of the container within the caps [JOB-OUT.*] by ``deadline``
        [JOB-OUT.6]; classify failures. ``paths`` is ``output`` (all of it) or files below
        it (``output/metrics.json``); a file the job did not write is not copied."""
        files = total = 0
        caps = {name: limit for name, (limit, _) in file_caps.items()}
        try:
            for path in paths:
                root, dest = _archive_target(path, output_dir)
                archive = ops.read_archive(self.client.api, container.id, f"/{path}", deadline,
                                           on_expiry=lambda: ops.kill_in_background(container))
                try:
                    with contextlib.closing(archive):  # closed at once, even when refused
                        summary = extract_output(archive, dest, cap - total, caps, root=root)
                except ops.ArchiveMissing:
                    if root == ARCHIVE_ROOT:
                        raise
                    continue
                files += summary.files
                total += summary.total_bytes
        except OutputRejected as e:
            clear_folder(output_dir)
            if e.reason == "file_too_large" and e.name in file_caps:
                return file_caps[e.name][1], str(e), 0
            reason = (FailureReason.OUTPUT_TOO_LARGE if e.reason == "too_large"
                      else FailureReason.BAD_OUTPUT)
            return reason, str(e), 0
        except OutputHostError as e:
            clear_folder(output_dir)
            return FailureReason.HOST_ERROR, str(e), 0
        except ArchiveStalled as e:
            clear_folder(output_dir)
            return self._blame_stalled_archive(e), f"[JOB-OUT.6] {e}", 0
        except ArchiveSourceBroken as e:
            clear_folder(output_dir)
            return self._blame_broken_archive(container, e), str(e), 0
        return None, f"exit 0, {files} output files, {total} bytes", total

    def _blame_stalled_archive(self, error: ArchiveStalled) -> FailureReason:
        """[JOB-OUT.6] The copy of the output missed its deadline: the engine's failure
        when it does not answer a ping; otherwise ``timeout``, a failed run of the job
        (its time covers the copy of what it wrote)."""
        try:
            self.client.ping()
        except EngineErrors:
            return FailureReason.ENGINE_ERROR
        return FailureReason.TIMEOUT

    def _blame_broken_archive(self, container: Any, error: ArchiveSourceBroken
                              ) -> FailureReason:
        """[JOB-EXIT.5] The engine's stream of the output broke: the engine's failure when it
        does not answer or the container is gone; otherwise the host's (never the job's:
        what the job wrote was never read)."""
        try:
            self.client.ping()
        except EngineErrors:
            return FailureReason.ENGINE_ERROR
        if not ops.still_running(container):
            return FailureReason.ENGINE_ERROR
        return FailureReason.HOST_ERROR

    # -- whose fault [JOB-EXIT.5] -------------------------------------------------------

    def _blame(self, container: Any, stage: str, error: BaseException,
               output_dir: Path) -> RunResult:
        """An engine call failed during ``stage``: the engine's failure, or the job's?

        ``engine_error`` only when confirmed: the engine does not answer a ping,
        the container was stopped or removed from outside, or the engine cannot
        run a known-good container with the same policy either. Otherwise the
        job's image or code made its own container fail: ``container_failed``.
        """
        clear_folder(output_dir)
        what = f"{stage}: {_short(error)}"
        try:
            self.client.ping()
        except EngineErrors as e:
            return _early_failure(FailureReason.ENGINE_ERROR, output_dir,
                                  f"engine does not answer ({_short(e)}) after {what}")
        if stage == "run" and not ops.still_running(container):
            return _early_failure(FailureReason.ENGINE_ERROR, output_dir,
                                  f"container was stopped or removed from outside; {what}")
        problem = self._engine_self_test()
        if problem:
            return _early_failure(FailureReason.ENGINE_ERROR, output_dir,
                                  f"engine cannot run a known-good container ({problem}); "
                                  f"{what}")
        return _early_failure(FailureReason.CONTAINER_FAILED, output_dir,
                              f"the job's container failed while the engine works; {what}")

    def _engine_self_test(self) -> str:
        """Start and remove a known-good container under the same policy; '' when it works."""
        from sandbox.base_image import BASE_TAG

        image = self.self_test_image or BASE_TAG
        kwargs = policy.container_kwargs(image, SELF_TEST_LIMITS,
                                         policy.labels_for("", self.node_id, "self-test"), {},
                                         name=_container_name("self-test", "", 0),
                                         runtime=self.runtime)
        try:
            container = self.client.containers.create(**kwargs)
        except EngineErrors as e:
            return f"create {image}: {_short(e)}"
        try:
            container.start()
        except EngineErrors as e:
            return f"start {image}: {_short(e)}"
        finally:
            ops.remove(container)
        return ""

    # -- one exec ------------------------------------------------------------------------

    def _exec(self, container: Any, argv: Sequence[str], env: Mapping[str, str],
              limits: ResourceLimits) -> _Exec:
        api = self.client.api
        exec_id = api.exec_create(container.id, list(argv), user=policy.JOB_USER,
                                  environment=[f"{k}={v}" for k, v in env.items()],
                                  workdir=policy.SCRATCH_DIR)["Id"]
        started = time.monotonic()
        wall_started = time.time()
        sock = api.exec_start(exec_id, socket=True)
        # A job may stay silent for longer than the client's HTTP timeout.
        api._disable_socket_timeout(sock)
        stream = (data for _kind, data in frames_iter(sock, tty=False))
        reader = ops.CappedReader(stream, limits.log_bytes,
                                  on_overflow=lambda: ops.kill_in_background(container))
        reader.start()
        deadline = started + limits.wall_time_s
        watch = OomWatch(self.client, container.id, wall_started).start()
        try:
            timed_out, oom = _wait_for_exec(api, exec_id, container, reader, deadline, watch)
        finally:
            watch.close()
        seconds = time.monotonic() - started
        stray = False
        if reader.is_alive():  # background children still hold stdout open
            stray = not (timed_out or oom)
            ops.kill(container)
            reader.join(KILL_GRACE_S)
        exit_code = ops.exec_state(api, exec_id)[1]
        with contextlib.suppress(OSError):
            sock.close()
        return _Exec(exit_code, seconds, reader.data(), reader.overflow, timed_out, wall_started,
                     stray, oom)

    def _why_nonzero(self, container: Any, code: int, env: Mapping[str, str],
                     limits: ResourceLimits) -> tuple[FailureReason, str]:
        if code == EXIT_BAD_PARAMS and env.get("LC_PARAMS") is not None:
            return FailureReason.BAD_PARAMS, "train rejected its parameters (exit 2)"
        if code == EXIT_INVALID_MODEL and env.get("LC_MODEL") is not None:
            return FailureReason.INVALID_MODEL, "evaluate rejected the model (exit 3)"
        # [JOB-OUT.6] counted from the engine's archives, never asked of the image's df
        deadline = time.monotonic() + FILL_CHECK_S
        if ops.folder_fill(self.client.api, container.id, policy.OUTPUT_DIR,
                           limits.output_bytes, deadline) >= FULL_FRACTION:
            return FailureReason.OUTPUT_TOO_LARGE, f"filled its output folder (exit {code})"
        if ops.folder_fill(self.client.api, container.id, policy.SCRATCH_DIR,
                           limits.tmp_bytes, deadline) >= FULL_FRACTION:
            return FailureReason.SCRATCH_FULL, f"filled its /tmp scratch space (exit {code})"
        if code == 128:  # [JOB-RUNTIME.12] an exec status with no signal: the sandbox ended
            return FailureReason.KILLED, ("the sandbox stopped under the job (exit 128, no "
                                          "signal; under runsc: its pids or memory exhausted)")
        if code > 128:
            return FailureReason.KILLED, f"killed by signal {code - 128}"
        return FailureReason.NONZERO_EXIT, f"exit {code}"


def read_metrics(path: Path) -> tuple[dict[str, float] | None, str]:
    """Parse metrics.json, bounded and total [JOB-EVAL.2], [JOB-JSON.*]; never raises.

    Returns the metrics, or None and one line naming the rule broken.
    """
    try:
        if not path.is_file() or path.is_symlink():
            return None, f"evaluate wrote no {METRICS_FILE}"
        with open(path, "rb") as f:
            data = f.read(MAX_JSON_BYTES + 1)
        return parse_metrics(data), ""
    except JobJsonError as e:
        return None, f"{METRICS_FILE}: {e}"
    except OSError as e:
        return None, f"{METRICS_FILE} unreadable: {e}"


def _archive_target(path: str, output_dir: Path) -> tuple[str, Path]:
    """(root, folder) to extract the engine's archive of ``/path`` with: all of /output is
    archived as ``output/...``; a single file below it as its bare name, into its folder."""
    parts = Path(path).parts
    if not parts or parts[0] != ARCHIVE_ROOT or ".." in parts:
        raise ValueError(f"can only collect below {ARCHIVE_ROOT}/, not {path!r}")
    if len(parts) == 1:
        return ARCHIVE_ROOT, output_dir
    return NO_ROOT, output_dir.joinpath(*parts[1:-1])


def _container_name(entry: str, job_id: str, variant: int) -> str:
    """A fresh name per run; names are incidental [EVAL-ENV.8], never seen by the job."""
    safe = "".join(c if c.isalnum() else "-" for c in job_id[:16]) or "job"
    entry_safe = "".join(c if c.isalnum() else "-" for c in entry[:16]) or "entry"
    return f"lc-{entry_safe}-{safe}-v{variant}-{secrets.token_hex(6)}"


def _short(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}"
    return text if len(text) <= 300 else text[:300] + "..."


def _wait_for_exec(api: Any, exec_id: str, container: Any, reader: ops.CappedReader,
                   deadline: float, watch: OomWatch) -> tuple[bool, bool]:
    """Wait for the process, not for its output: a job may close stdout and run on. Polls
    back off while the output is open, never waiting past the deadline. Kills the container
    at the deadline, or once an OOM kill is ``OOM_GRACE_S`` old [JOB-EXIT.6]; returns
    (timed out, killed after an OOM kill)."""
    poll = POLL_S
    while True:
        wait = max(0.0, min(poll, deadline - time.monotonic()))
        if reader.is_alive():
            reader.join(wait)
            poll = min(poll * 2, POLL_MAX_S) if reader.is_alive() else POLL_S
        else:
            time.sleep(wait)
            poll = min(poll * 2, POLL_MAX_S)
        if not ops.exec_state(api, exec_id)[0]:
            reader.join(1.0)  # the last bytes of output are on their way
            return False, False
        now = time.monotonic()
        if now >= deadline or watch.overdue(now):
            ops.kill(container)
            return now >= deadline, watch.seen_at() is not None


def _fail_like(result: RunResult, reason: FailureReason, detail: str) -> RunResult:
    return replace(result, ok=False, reason=reason, detail=detail, model_path=None)


def _early_failure(reason: FailureReason, output_dir: Path, detail: str) -> RunResult:
    return RunResult(ok=False, reason=reason, exit_code=None, seconds=0.0, logs=b"",
                     output_dir=output_dir, detail=detail)
