"""A job's claim window sized from this machine's speed, measured just before posting.

Why: a claim window (``--expires-in``) must hold a worker's first attempt (one training run
and the two self-check evaluations [WORK-SELFCHECK.1], each a fresh container) and its claim.
Fixed seconds that suffice on a quiet machine do not on a loaded one: ``make demo``'s 75 s
window left the honest worker and the cheater without a claim in 2 of 3 runs of ``make
test-repeat`` on a loaded 2-core machine, and a story without their claims shows nothing. So
the demo (and the graph tests, ``tests/framework/job_windows``) time one attempt of the built
job here, on the engine the workers use and under whatever load the machine has now, and size
the window from it.

The probe runs alone; in the story several workers train at once and share the cores
(``contention``). Sized for one attempt times three, the demo's window still left the honest
worker and the cheater without a claim in a ``make test-repeat`` run: the probe took 17.5 s,
the window was 75 s, and the three workers' attempts, side by side while the other test
process loaded images, took 68, 80 and 87 s.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from pathlib import Path

PICKUP_S = 10.0
"""What a worker spends before its first run starts: noticing the job, checking the image
and fetching the data blobs (a second or two on a quiet machine)."""
ATTEMPT_MARGIN = 3.0
"""The claim window holds this many measured attempts: the worker's own attempt runs while
other nodes commit blocks and run containers of their own."""
LOAD_MARGIN = 2.0
"""Beyond the story's own workers sharing the cores (``contention``), the rest of the
machine's load may change after the probe: the claim window holds this many contended
attempts."""
VOTE_MARGIN = 4.0
"""A reveal, vote-commit or vote-reveal window holds this many measured attempts: a voter
fetches the model and evaluates it (twice on a job with a hidden part: the public and the
hidden half), while the other voters' containers share the machine's cores."""


def measure_attempt(job_dir: Path, runtime: str | None = None) -> float:
    """Seconds one worker attempt of the built job in ``job_dir`` takes here now: a training
    run with the search space's point of seed 1 and two evaluations of its model, in the
    sandbox, on the machine's engine, with the job's own limits and data, under ``runtime``
    (the workers' resolved runtime, ``runsc`` or ``runc``; None: the engine's default), since
    gVisor's cost per run is part of what the window must hold [JOB-RUNTIME.9]."""
    from sandbox.job_file import load_job_file
    from sandbox.job_template import template_data
    from sandbox.runner import SandboxRunner

    image_id = json.loads((job_dir / "image.json").read_text())["image_id"]
    job = load_job_file(job_dir)
    runner = SandboxRunner(node_id="window-probe", runtime=runtime)
    with tempfile.TemporaryDirectory(prefix="lc-window-probe-") as tmp:
        data = template_data(job_dir, Path(tmp) / "data")
        started = time.monotonic()
        trained = runner.train(image_id, job.sample_params(1), job.limits, None,
                               Path(tmp) / "out", data=data)
        if not trained.ok or trained.model_path is None:
            raise RuntimeError(f"the probe attempt's training failed: {trained.reason} "
                               f"{trained.detail}")
        for variant in (1, 2):
            checked = runner.evaluate(image_id, trained.model_path, job.limits, data=data,
                                      variant=variant)
            if not checked.ok:
                raise RuntimeError(f"the probe attempt's evaluation failed: {checked.reason} "
                                   f"{checked.detail}")
        return time.monotonic() - started


def contention(trainers: int, nano_cpus: int, cpus: int | None = None) -> float:
    """How many times longer each attempt takes when ``trainers`` workers train at once on
    this machine's ``cpus`` cores than the one attempt the probe timed alone: each container
    may use up to ``nano_cpus`` (the job's limit), and together they share the cores."""
    cores = cpus or os.cpu_count() or 1
    each = min(nano_cpus / 1e9, cores)
    return max(1.0, trainers * each / cores)


def claim_window_s(attempt_s: float, *, minimum_s: float = 30.0, factor: float = 1.0,
                   contended: float = 1.0) -> int:
    """A claim window for a job whose one attempt takes ``attempt_s`` here alone: the pickup
    and the larger of ``ATTEMPT_MARGIN`` attempts and ``LOAD_MARGIN`` attempts slowed
    ``contended`` times (``contention``), at least ``minimum_s``, times ``factor``."""
    attempts = max(ATTEMPT_MARGIN, LOAD_MARGIN * contended)
    return math.ceil(factor * max(minimum_s, PICKUP_S + attempts * attempt_s))


def vote_window_s(attempt_s: float, *, minimum_s: float = 20.0, factor: float = 1.0,
                  contended: float = 1.0) -> int:
    """A reveal, vote-commit or vote-reveal window for a job whose one attempt takes
    ``attempt_s`` here alone: the larger of ``VOTE_MARGIN`` attempts and ``LOAD_MARGIN``
    attempts slowed ``contended`` times (the members evaluating at once on this machine,
    ``contention``), at least ``minimum_s``, times ``factor``. These windows end as soon as
    every member has acted, so a long one costs nothing when nobody is late."""
    attempts = max(VOTE_MARGIN, LOAD_MARGIN * contended)
    return math.ceil(factor * max(minimum_s, attempts * attempt_s))
