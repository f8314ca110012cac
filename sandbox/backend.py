"""The narrow interface between a node and wherever its sandboxed runs happen [JOB-RUNTIME.8].

What the worker, the verifier and the federated trainer ask of a sandbox is three calls,
each of which starts one hardened run, waits for it within the job's limits and hands back
what came out: ``train``, ``evaluate`` and ``run_entry`` (any other entry point, e.g.
``federate``). ``runner.SandboxRunner`` does them on a local Docker engine, under ``runc``
or gVisor's ``runsc``. A worker with a cluster would add one class beside it that does the
same three calls as Kubernetes Jobs under a gVisor ``RuntimeClass`` (job_contract.md
[JOB-RUNTIME.8]); nothing that calls them changes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

from sandbox.checkpoints import RunWatch
from sandbox.limits import ResourceLimits, TrainParams
from sandbox.results import EvalResult, FailureReason, RunResult


class JobSandbox(Protocol):
    """Runs a job's entry points in sandboxes; every failure comes back as a result."""

    node_id: str
    """Labels every run, so a restarted node finds and removes what a crash left."""
    runtime: str | None
    """``runsc``, ``runc``, or None for the backend's default [JOB-RUNTIME.1]."""

    def train(self, image_id: str, params: TrainParams, limits: ResourceLimits,
              input_dir: Path | None, output_dir: Path, *, job_id: str = ...,
              argv: Sequence[str] = ..., data: Mapping[str, Path] | None = ...,
              watch: RunWatch | None = ...) -> RunResult:
        """[JOB-TRAIN.*] One training run; the checked model in ``output_dir``."""
        ...

    def evaluate(self, image_id: str, model_path: Path, limits: ResourceLimits, *,
                 input_dir: Path | None = ..., job_id: str = ..., argv: Sequence[str] = ...,
                 seed: int | None = ..., variant: int = ...,
                 data: Mapping[str, Path] | None = ...) -> EvalResult:
        """[JOB-EVAL.*] One evaluation in the fixed environment [EVAL-ENV.*]."""
        ...

    def run_entry(self, image_id: str, entry: str, argv: Sequence[str], env: Mapping[str, str],
                  limits: ResourceLimits, output_dir: Path, *, input_dir: Path | None = ...,
                  job_id: str = ..., extra_binds: Mapping[str, Path] | None = ...,
                  collect: Sequence[str] = ..., output_cap: int | None = ...,
                  file_caps: Mapping[str, tuple[int, FailureReason]] | None = ...,
                  variant: int = ..., data: Mapping[str, Path] | None = ...,
                  watch: RunWatch | None = ...) -> RunResult:
        """Any entry point: ``argv`` in a fresh sandbox, /output copied to ``output_dir``."""
        ...
