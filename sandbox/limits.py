"""What a job may use and what it is given: resource limits and train parameters."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Protocol

MIB = 1024 * 1024
Scalar = int | float | str


@dataclass(frozen=True, slots=True)
class ResourceLimits:
    """Limits of one container run [JOB-LIMITS.1].

    ``tmp_bytes`` and ``output_bytes`` size in-memory file systems, so they
    count against ``memory_bytes`` too: a job cannot trade memory for disk.
    """

    memory_bytes: int = 1024 * MIB
    """Memory of the container; swap is off (memswap equals memory)."""
    nano_cpus: int = 2_000_000_000
    """CPU quota in billionths of a core."""
    pids: int = 128
    """Processes and threads the container may hold at once."""
    wall_time_s: float = 600.0
    """Wall-clock limit of the entry point; past it the container is killed."""
    tmp_bytes: int = 64 * MIB
    """Size of the scratch tmpfs at /tmp."""
    output_bytes: int = 64 * MIB
    """Size of the /output tmpfs: the whole output, model included."""
    model_bytes: int = 32 * MIB
    """Largest model file accepted [JOB-TRAIN.4]."""
    log_bytes: int = 1 * MIB
    """Stdout plus stderr kept; more than this kills the job [JOB-EXIT.3]."""
    gpu_count: int = 0
    """[JOB-GPU.2] GPUs passed through to the container; 0: none (no device request)."""
    gpu_memory_mb: int = 0
    """[JOB-GPU.1] Least memory per GPU the job declared; the worker's policy checks it
    [WORK-GPU.1], the engine cannot (a device request names a count only)."""

    def __post_init__(self) -> None:
        for name in ("memory_bytes", "nano_cpus", "pids", "tmp_bytes", "output_bytes",
                     "model_bytes", "log_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"ResourceLimits.{name} must be a positive int, got {value!r}")
        if not (isinstance(self.wall_time_s, int | float) and math.isfinite(self.wall_time_s)
                and self.wall_time_s > 0):
            raise ValueError(f"ResourceLimits.wall_time_s must be > 0, got {self.wall_time_s!r}")
        if self.memory_bytes < 16 * MIB:
            raise ValueError("ResourceLimits.memory_bytes below 16 MiB cannot start a container")
        if self.pids < 4:
            raise ValueError("ResourceLimits.pids below 4 cannot start a container")
        for name in ("gpu_count", "gpu_memory_mb"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"ResourceLimits.{name} must be an int >= 0, got {value!r}")

    @classmethod
    def from_job(cls, memory_mb: int, cpu_millis: int, time_s: int, disk_mb: int,
                 model_mb: int | None = None, gpu_count: int = 0,
                 gpu_memory_mb: int = 0) -> ResourceLimits:
        """Map a job spec's coarse limits (see ``chain.jobspec``) onto container limits.

        ``disk_mb`` is split: a quarter for /tmp scratch, the rest for /output.
        """
        output = max(1, disk_mb - disk_mb // 4) * MIB
        return cls(
            memory_bytes=memory_mb * MIB,
            nano_cpus=cpu_millis * 1_000_000,
            wall_time_s=float(time_s),
            tmp_bytes=max(1, disk_mb // 4) * MIB,
            output_bytes=output,
            model_bytes=min(output, (model_mb or disk_mb) * MIB),
            gpu_count=gpu_count,
            gpu_memory_mb=gpu_memory_mb,
        )

    def cpu_only(self) -> ResourceLimits:
        """[JOB-GPU.3] These limits without GPUs: what every evaluation runs with, so a
        voter needs no GPU and every voter measures on the same kind of device."""
        return replace(self, gpu_count=0, gpu_memory_mb=0)


class DeclaredLimits(Protocol):
    """The coarse limits a job declares (``chain.jobspec.ResourceLimits``)."""

    @property
    def memory_mb(self) -> int: ...
    @property
    def cpu_millis(self) -> int: ...
    @property
    def time_s(self) -> int: ...
    @property
    def disk_mb(self) -> int: ...
    @property
    def model_mb(self) -> int: ...
    @property
    def gpu_count(self) -> int: ...
    @property
    def gpu_memory_mb(self) -> int: ...


def from_spec(declared: DeclaredLimits) -> ResourceLimits:
    """Container limits from a job's *declared* limits only [JOB-LIMITS.1], [EVAL-ENV.6].

    Every worker and voter maps one job to the same limits, whatever its own
    settings: memory, CPU quota, time, disk and the model bound come from
    the chain's ``JobSpec.limits`` and nothing else.
    """
    return ResourceLimits.from_job(declared.memory_mb, declared.cpu_millis, declared.time_s,
                                   declared.disk_mb, declared.model_mb, declared.gpu_count,
                                   declared.gpu_memory_mb)


def _frozen(mapping: Mapping[str, Scalar]) -> Mapping[str, Scalar]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True, slots=True)
class TrainParams:
    """What the worker chose for one training run [JOB-TRAIN.2]."""

    seed: int
    """Seeds every random generator of the job; same seed, same model on one machine."""
    hyperparameters: Mapping[str, Scalar] = field(default_factory=dict)
    """One value per search-space dimension, by name."""

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) \
                or not 0 <= self.seed < 2**63:
            raise ValueError(f"TrainParams.seed must be an int in [0, 2**63), got {self.seed!r}")
        for key, value in self.hyperparameters.items():
            if not isinstance(key, str) or not key:
                raise ValueError(f"hyperparameter name must be a non-empty str, got {key!r}")
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise ValueError(f"hyperparameter {key!r} must be int, float or str")
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"hyperparameter {key!r} must be finite")
        object.__setattr__(self, "hyperparameters", _frozen(self.hyperparameters))

    def to_json(self) -> str:
        """The canonical JSON handed to the job in ``LC_PARAMS`` [JOB-TRAIN.2]."""
        return json.dumps({"seed": self.seed, "hyperparameters": dict(self.hyperparameters)},
                          sort_keys=True, separators=(",", ":"))
