"""[WORK-SELFCHECK.1] Before it claims, a worker checks that the job's evaluation agrees
with itself.

The trained model is evaluated twice, each time in a fresh evaluation container
with the contract's fixed environment [EVAL-ENV.1-6] (the one voters use, never
inside the training container), the second a variant run that changes what the
contract leaves incidental [EVAL-ENV.8]: another container, a later start, fresh
staging copies. The worker claims only when both runs succeed and their losses
agree within the job's ``loss_tolerance``, and then claims the worse of the two.

Anything else means the job's evaluation is not a function of the model alone
(or that the model cannot be evaluated): the worker does not claim, marks the
job inconsistent in its state and never runs it again. A failure of this node's
own engine or host (``WORKER_FAULTS`` [JOB-EXIT.5]) says nothing about the job:
the attempt is given back, bounded by [WORK-ATTEMPTS.1].

Why: a claim that does not reproduce is judged by voters in another window, on
other machines; the claimer's own two runs are the cheapest witness that a
submitter's evaluate reads the clock, chance or the machine, and refusing such a
job costs the worker one evaluation instead of its stake (ledger.md §5, "Why
neither a griefing submitter nor a cheating worker gains").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from sandbox.results import WORKER_FAULTS, EvalResult

VARIANTS = (0, 1)
"""[EVAL-ENV.8] The plain run and one variant run."""


class CheckOutcome(StrEnum):
    AGREE = "agree"
    """Both runs measured a loss and they agree: claim ``loss``."""
    INCONSISTENT = "inconsistent"
    """The job's evaluation does not reproduce (or cannot evaluate the model): no claim,
    never again."""
    WORKER_FAULT = "worker_fault"
    """This node's engine or host failed: no claim now, the attempt is given back."""


@dataclass(frozen=True, slots=True)
class SelfCheck:
    """The verdict of a worker's self-check on one trained model."""

    outcome: CheckOutcome
    loss: float | None
    """The loss to claim (the worse of the two) when ``outcome`` is AGREE; else None."""
    why: str
    """One line naming both runs' results."""

    @property
    def claimable(self) -> bool:
        return self.outcome == CheckOutcome.AGREE


def _describe(result: EvalResult) -> str:
    if result.ok:
        return f"loss {result.loss!r}"
    return f"{result.reason}: {result.detail}"


def judge(runs: tuple[EvalResult, ...], tolerance: float) -> SelfCheck:
    """[WORK-SELFCHECK.1] Decide from the evaluation runs of one model (pure).

    - a run failed for a reason in ``WORKER_FAULTS``: WORKER_FAULT;
    - a run failed for any other reason (the job's or the model's): INCONSISTENT;
    - both measured, ``max - min <= tolerance``: AGREE, the worse (higher) loss;
    - otherwise INCONSISTENT.
    """
    text = "; ".join(f"run {i + 1} ({'variant' if i else 'plain'}): {_describe(r)}"
                     for i, r in enumerate(runs))
    for result in runs:
        if not result.ok and result.reason in WORKER_FAULTS:
            return SelfCheck(CheckOutcome.WORKER_FAULT, None, f"our sandbox failed: {text}")
    losses = [r.loss for r in runs if r.ok and r.loss is not None and math.isfinite(r.loss)]
    if len(losses) != len(runs) or not losses:
        return SelfCheck(CheckOutcome.INCONSISTENT, None,
                         f"the job's evaluation failed on our model: {text}")
    spread = max(losses) - min(losses)
    if not spread <= tolerance:
        return SelfCheck(CheckOutcome.INCONSISTENT, None,
                         f"the job's evaluation does not reproduce: {text}; difference "
                         f"{spread!r} > loss_tolerance {tolerance!r}")
    return SelfCheck(CheckOutcome.AGREE, max(losses), text)
