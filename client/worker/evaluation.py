"""One way to evaluate a model, for the claimer and for every voter [EVAL-SAME.1].

Issue 30 §1: the claimer's self-check [WORK-SELFCHECK.1] and its own vote [VOTE-SELF.1]
ran ``evaluate`` without ``$LC_INPUT/challenge.json`` while every voter's run had it, so
an ``evaluate`` that passes without the file and fails with it got honest claimers judged
cheats. Now every evaluation a worker runs is built by :func:`evaluation_inputs` and run by
:func:`run_evaluation`, so the self-check, the own vote and a voter's vote hand the runner
the same things, in the same order: the same entry point, the same declared limits, the
same ``LC_SEED``, the same data mounts, and an input folder holding exactly one
``challenge.json`` of the same form.

[EVAL-SAME.2] Only one value may differ: the challenge seed of the self-check. The
self-check runs before the claim is revealed, so the turn's seed (derived from the hash of
the block that includes the reveal [VOTE-CHALLENGE.1]) does not exist yet; it gets 32 bytes
drawn fresh from the operating system instead. The job cannot tell the two apart: the real
seed is SHA-256 of an encoding that includes a block hash no job can know (the block is
made after the run, and the job has no network), so to the job it is 32 uniformly random
bytes, exactly as the fresh draw is. The own vote and every voter's vote use the real seed.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from chain.jobspec import JobSpec
from chain.train.challenge import CHALLENGE_SIZE
from client.worker.policy import sandbox_limits
from client.worker.sandboxing import container_label
from sandbox.eval_env import CHALLENGE_FILE, eval_seed, evaluation_env, write_challenge
from sandbox.limits import ResourceLimits
from sandbox.results import EvalResult
from sandbox.runner import SandboxRunner

SEED_BYTES = 32


def fresh_challenge_seed() -> bytes:
    """[EVAL-SAME.2] The self-check's stand-in for the turn's challenge seed: 32 bytes from
    the operating system, distributed as the real seed looks to any job."""
    return os.urandom(SEED_BYTES)


@dataclass(frozen=True, slots=True)
class EvaluationInputs:
    """[EVAL-SAME.1] Everything a worker decides about one evaluation run; the runner adds
    only the fixed environment [EVAL-ENV.*], the same for every caller."""

    argv: tuple[str, ...]
    """The job's evaluate entry point."""
    limits: ResourceLimits
    """The job's declared limits only [EVAL-ENV.6]."""
    seed: int
    """``LC_SEED`` [EVAL-ENV.2]: a function of the job id alone."""
    data: tuple[tuple[str, Path], ...]
    """Data mounts by name, sorted by name: the mount points the job sees never vary. The
    host paths are this worker's caches (not visible to the job as data)."""
    challenge_seed: bytes
    """The 32-byte seed of ``$LC_INPUT/challenge.json`` [VOTE-CHALLENGE.1]."""
    challenge_size: int
    """The challenge's size (``CHALLENGE_SIZE``)."""
    label: str
    """The container label (host side only: which job, which worker)."""

    def environment(self) -> dict[str, str]:
        """The variables the runner gives this run on top of [JOB-ENTRY.2]'s."""
        return evaluation_env(self.seed)

    def input_files(self) -> dict[str, bytes]:
        """The input folder's files, by name, as the job reads them."""
        with tempfile.TemporaryDirectory(prefix="lc-inputs-") as tmp:
            folder = write_challenge(Path(tmp), self.challenge_seed, self.challenge_size)
            return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def evaluation_inputs(job_id: bytes, spec: JobSpec, worker: bytes,
                      data: dict[str, Path] | None, challenge_seed: bytes) -> EvaluationInputs:
    """[EVAL-SAME.1] The one builder of an evaluation's inputs: self-check, own vote, vote
    and the hidden-part run of a holdout vote (``data`` with the hidden part as ``valid``)."""
    if len(challenge_seed) != SEED_BYTES:
        raise ValueError(f"a challenge seed is {SEED_BYTES} bytes, got {len(challenge_seed)}")
    return EvaluationInputs(
        argv=tuple(spec.entry_point("evaluate")), limits=sandbox_limits(spec),
        seed=eval_seed(job_id), data=tuple(sorted((data or {}).items())),
        challenge_seed=challenge_seed, challenge_size=CHALLENGE_SIZE,
        label=container_label(job_id, worker))


def run_evaluation(runner: SandboxRunner, image_id: str, model: Path,
                   inputs: EvaluationInputs, *, variant: int = 0) -> EvalResult:
    """[EVAL-SAME.1] Run one evaluation (blocking: call it on a thread). ``variant`` > 0 only
    for the self-check's second run [EVAL-ENV.8]."""
    with tempfile.TemporaryDirectory(prefix="lc-challenge-") as tmp:
        folder = write_challenge(Path(tmp), inputs.challenge_seed, inputs.challenge_size)
        return runner.evaluate(image_id, model, inputs.limits, job_id=inputs.label,
                               argv=inputs.argv, seed=inputs.seed, data=dict(inputs.data),
                               input_dir=folder, variant=variant)


def challenge_form(content: bytes) -> tuple[list[str], int, int]:
    """The shape of a ``challenge.json`` (its keys, the seed's length in hex digits, the
    size): what must be the same for the claimer's and a voter's runs."""
    value = json.loads(content)
    return sorted(value), len(value["seed"]), value["size"]


__all__ = ["CHALLENGE_FILE", "EvaluationInputs", "challenge_form", "evaluation_inputs",
           "fresh_challenge_seed", "run_evaluation"]
