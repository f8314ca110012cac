"""The progress file a training job writes [JOB-PROGRESS.*]: bounded, strict, total.

The file is written by untrusted code, so everything here assumes the worst:
``parse_progress`` never raises anything but ``ProgressError`` (a ``JobJsonError``,
so a ``SandboxError``) whatever the bytes, and ``read_progress_file`` never raises
at all: it returns the progress, or None and one line naming the broken rule, for
the caller to log and ignore. The host only ever shows progress; nothing it pays
or decides depends on it.
"""

from __future__ import annotations

import math
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox.job_json import JobJsonError, JsonBounds, parse_json

PROGRESS_FILE = "progress.json"
"""[JOB-PROGRESS.1] ``$LC_CHECKPOINT/progress.json`` (``/checkpoint/progress.json``)."""
MAX_PROGRESS_BYTES = 1024
"""[JOB-PROGRESS.2] The whole file is at most 1 KiB."""
MAX_STEP = 2**53
"""[JOB-PROGRESS.3] A step is an integer in [0, 2**53] (exact as a double)."""
METRIC_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,32}$")
"""[JOB-PROGRESS.3] A metric name: 1 to 32 of ``A-Z a-z 0-9 _ . -``."""
BOUNDS = JsonBounds(max_bytes=MAX_PROGRESS_BYTES, max_depth=1)
"""[JOB-PROGRESS.2] One flat object: no value is an array or object."""
KEYS = frozenset({"fraction", "step", "metric", "metric_name", "checkpoint_step"})


class ProgressError(JobJsonError):
    """A progress file broke a rule; ``rule`` names it, the message shows the bad bytes."""


@dataclass(frozen=True, slots=True)
class Progress:
    """What a training run said about itself, as parsed [JOB-PROGRESS.3]."""

    fraction: float
    """Done, in [0, 1]."""
    step: int
    """The job's own unit of work (the template: epochs done)."""
    metric: float | None = None
    metric_name: str = ""
    checkpoint_step: int | None = None
    """[JOB-CHECKPOINT.2] The step of the newest complete checkpoint in /checkpoint."""

    def to_json(self) -> dict[str, Any]:
        return {"fraction": self.fraction, "step": self.step, "metric": self.metric,
                "metric_name": self.metric_name, "checkpoint_step": self.checkpoint_step}


def parse_progress(data: bytes) -> Progress:
    """[JOB-PROGRESS.2-3] Parse one progress file; raise only ``ProgressError``."""
    try:
        doc = parse_json(data, BOUNDS)
    except ProgressError:
        raise
    except JobJsonError as e:
        raise ProgressError(e.rule, e.detail, e.excerpt) from None
    if not isinstance(doc, dict):
        raise ProgressError("JOB-PROGRESS.3", f"not a JSON object but {type(doc).__name__}")
    unknown = sorted(set(doc) - KEYS)
    if unknown:
        raise ProgressError("JOB-PROGRESS.3", "unknown key", repr(unknown[0][:40]))
    fraction = doc.get("fraction")
    if isinstance(fraction, bool) or not isinstance(fraction, int | float) \
            or not math.isfinite(fraction) or not 0 <= fraction <= 1:
        raise ProgressError("JOB-PROGRESS.3", "fraction must be a number in [0, 1]",
                            repr(fraction))
    step = _step(doc, "step", required=True)
    assert step is not None
    metric = doc.get("metric")
    if metric is not None and (isinstance(metric, bool) or not isinstance(metric, int | float)):
        raise ProgressError("JOB-PROGRESS.3", "metric must be a finite number or null",
                            repr(metric)[:48])
    name = doc.get("metric_name", "")
    if not isinstance(name, str) or (name and not METRIC_NAME_RE.fullmatch(name)):
        raise ProgressError("JOB-PROGRESS.3", "metric_name must be 1-32 of A-Z a-z 0-9 _ . -",
                            repr(name)[:48])
    checkpoint = _step(doc, "checkpoint_step", required=False)
    if checkpoint is not None and checkpoint > step:
        raise ProgressError("JOB-PROGRESS.3", "checkpoint_step is after step",
                            f"{checkpoint} > {step}")
    return Progress(float(fraction), step, None if metric is None else float(metric), name,
                    checkpoint)


def _step(doc: dict[str, Any], key: str, *, required: bool) -> int | None:
    value = doc.get(key)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_STEP:
        raise ProgressError("JOB-PROGRESS.3", f"{key} must be an integer in [0, 2**53]",
                            repr(value)[:48])
    return value


def read_progress_file(path: Path) -> tuple[Progress | None, str]:
    """[JOB-PROGRESS.4] Read one progress file the host copied out; never raises.

    Only a regular file is read (a link is refused without following it: opened with
    ``O_NOFOLLOW``, checked with ``fstat``), and at most one byte past the cap.
    Returns the progress, or None and why (the rule broken and the bad bytes).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        return None, f"no {PROGRESS_FILE} yet"
    except OSError as e:  # ELOOP: a symbolic link
        return None, f"[JOB-PROGRESS.4] {PROGRESS_FILE} not readable as a file: {e.strerror}"
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None, f"[JOB-PROGRESS.4] {PROGRESS_FILE} is not a regular file"
        if info.st_size > MAX_PROGRESS_BYTES:
            return None, (f"[JOB-PROGRESS.2] {PROGRESS_FILE} is {info.st_size} bytes, more "
                          f"than {MAX_PROGRESS_BYTES}")
        data = os.read(fd, MAX_PROGRESS_BYTES + 1)
    except OSError as e:
        return None, f"[JOB-PROGRESS.4] {PROGRESS_FILE} unreadable: {e.strerror}"
    finally:
        os.close(fd)
    try:
        return parse_progress(data), ""
    except ProgressError as e:
        return None, f"{PROGRESS_FILE}: {e}"
