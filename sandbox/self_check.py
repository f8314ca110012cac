"""A worker's self-check before it claims: does the job's evaluation agree with itself?
[EVAL-ENV.8]

Two evaluations of the same model, the second with the incidental
conditions varied (``variant=1``: another container name and id, a later
start, fresh staging copies). Everything the contract fixes is the same in
both, so an honest job gives the same loss bit for bit; a job whose
evaluate reads randomness, the clock or anything else not fixed will
usually not. A worker that sees two losses does not claim: the job, not
the worker, is broken.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sandbox.limits import ResourceLimits
from sandbox.results import EvalResult
from sandbox.runner import EVALUATE_ARGV, SandboxRunner


@dataclass(frozen=True, slots=True)
class SelfCheck:
    """The two evaluations and whether they agree."""

    first: EvalResult
    second: EvalResult

    @property
    def reproducible(self) -> bool:
        """Both runs ended alike: the same loss bit for bit, or the same failure reason."""
        a, b = self.first, self.second
        return (a.ok, a.reason, a.loss) == (b.ok, b.reason, b.loss)

    @property
    def detail(self) -> str:
        a, b = self.first, self.second
        what = "agree" if self.reproducible else "DISAGREE"
        return f"evaluation self-check: runs {what}: {_outcome(a)} vs {_outcome(b)}"


def _outcome(result: EvalResult) -> str:
    return repr(result.loss) if result.ok else str(result.reason)


def self_check(runner: SandboxRunner, image_id: str, model_path: Path,
               limits: ResourceLimits, *, job_id: str, seed: int | None = None,
               input_dir: Path | None = None,
               argv: Sequence[str] = EVALUATE_ARGV) -> SelfCheck:
    """Evaluate ``model_path`` twice, the second time as ``variant=1`` [EVAL-ENV.8]."""
    runs = [runner.evaluate(image_id, model_path, limits, input_dir=input_dir, job_id=job_id,
                            argv=argv, seed=seed, variant=variant) for variant in (0, 1)]
    return SelfCheck(runs[0], runs[1])
