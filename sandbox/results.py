"""What a run of a job produced: success, or a failure with a machine-readable reason."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path


class FailureReason(StrEnum):
    """Why a job run failed [JOB-EXIT.*]. The values are stable strings for the wire."""

    TIMEOUT = "timeout"
    """Ran past its wall-time limit and was killed."""
    OOM = "oom"
    """Killed by the kernel for exceeding its memory limit."""
    LOG_TOO_LARGE = "log_too_large"
    """Printed more than its log limit to stdout/stderr and was killed."""
    OUTPUT_TOO_LARGE = "output_too_large"
    """Filled its output folder."""
    SCRATCH_FULL = "scratch_full"
    """Filled its /tmp scratch space and failed."""
    MODEL_TOO_LARGE = "model_too_large"
    """Wrote a model file larger than the model limit."""
    MODEL_MISSING = "model_missing"
    """Train exited 0 without writing a regular model file."""
    BAD_OUTPUT = "bad_output"
    """The output holds something other than regular files and folders."""
    BAD_PARAMS = "bad_params"
    """Train rejected its parameters (exit 2)."""
    INVALID_MODEL = "invalid_model"
    """Evaluate could not use the model it was given (exit 3)."""
    BAD_METRICS = "bad_metrics"
    """Evaluate exited 0 without a valid finite loss in metrics.json."""
    STRAY_PROCESSES = "stray_processes"
    """The entry point exited but left processes running, which were killed."""
    KILLED = "killed"
    """Killed by a signal the runner did not send."""
    NONZERO_EXIT = "nonzero_exit"
    """Any other non-zero exit code."""
    CONTAINER_FAILED = "container_failed"
    """The job's container could not start or run its commands while the engine answered
    and the container was still there (e.g. the image lacks ``sleep`` or ``tar``
    [JOB-IMAGE.1]): the job's fault [JOB-EXIT.5]."""
    IMAGE_MISSING = "image_missing"
    """The engine does not have the image."""
    ENGINE_ERROR = "engine_error"
    """The engine itself failed, confirmed by the engine: it did not answer a ping, or the
    job's container was stopped or removed from outside [JOB-EXIT.5]. Not the job's fault."""
    HOST_ERROR = "host_error"
    """The host failed writing output within the job's declared bounds (its disk full,
    an I/O error). Not the job's fault [JOB-EXIT.5]."""


WORKER_FAULTS: frozenset[FailureReason] = frozenset({
    FailureReason.IMAGE_MISSING, FailureReason.ENGINE_ERROR, FailureReason.HOST_ERROR,
})
"""[JOB-EXIT.5] Failures on the node's side: the attempt is not the job's to lose; a voter
abstains. Every other reason is in ``JOB_FAULTS``."""

JOB_FAULTS: frozenset[FailureReason] = frozenset(set(FailureReason) - WORKER_FAULTS)
"""[JOB-EXIT.5] Failures caused by what the job's code or image did, wrote or printed:
each uses up an attempt of the job, never triggers a retry as the engine's fault."""


def is_job_fault(reason: FailureReason | None) -> bool:
    """[JOB-EXIT.5] True when a failed run is the job's fault (``reason`` in ``JOB_FAULTS``)."""
    return reason in JOB_FAULTS


@dataclass(frozen=True, slots=True)
class RunResult:
    """The outcome of one entry point run (train, or any other)."""

    ok: bool
    reason: FailureReason | None
    """None exactly when ``ok``."""
    exit_code: int | None
    """Exit code of the entry point; None when it never finished."""
    seconds: float
    """Wall time of the entry point alone."""
    logs: bytes
    """Stdout and stderr, interleaved, cut at the log limit."""
    output_dir: Path | None
    """Host folder holding what the job wrote to /output."""
    model_path: Path | None = None
    """The model file, when train succeeded."""
    output_bytes: int = 0
    detail: str = ""
    """One human-readable line on what happened."""

    @property
    def log_tail(self) -> str:
        return self.logs[-2000:].decode("utf-8", "replace")


@dataclass(frozen=True, slots=True)
class EvalResult:
    """The outcome of evaluating one model [JOB-EVAL.*]."""

    ok: bool
    reason: FailureReason | None
    loss: float | None
    """The loss the job reported; None unless ``ok``."""
    metrics: Mapping[str, float] = field(default_factory=dict)
    """Every number in metrics.json (loss, accuracy, ...)."""
    exit_code: int | None = None
    seconds: float = 0.0
    logs: bytes = b""
    detail: str = ""
