"""Where a height's time goes: the seconds a node's consensus spends in each step.

Read as ``learningchain_consensus_step_duration_seconds{step}`` (client/observe) and
printed by ``bench/devnet.py`` as ``step_mean_ms``: which wait a faster graph must cut
(the proposal and its transactions, a vote quorum, storing the block, the pause after
a commit). CometBFT's ``consensus_step_duration_seconds`` answers the same question.
"""

from __future__ import annotations

from collections.abc import Callable

from chain.consensus.core import ConsensusCore
from chain.consensus.round_rules import Step

STEP_NAMES = {Step.NEW_HEIGHT: "new_height", Step.PROPOSE: "propose", Step.PREVOTE: "prevote",
              Step.PRECOMMIT: "precommit"}
"""A core's step by name; a core at rest [CONS-PACE.1] is in ``rest``, and storing a decided
block (inside the step that decided it) is ``commit``."""
STEP_TIMES = ("rest", *STEP_NAMES.values(), "commit")


class StepTimes:
    """Calls ``on_time(step, seconds)`` each time the core leaves a step. Between two
    decisions the seconds add up to the driver's commit latency, ``rest`` aside (a step
    left at once, as a proposer's propose, is not reported)."""

    def __init__(self) -> None:
        self.on_time: Callable[[str, float], None] | None = None
        self._step: tuple[int, int, str] | None = None
        self._since = 0.0

    def after(self, core: ConsensusCore, height: int, started: float, now: float) -> None:
        """After a step of ``core`` that began at ``started`` at ``height``: a step that
        decided the height ends the wait where it began, and its own time is ``commit``."""
        step = (int(core.height), int(core.round),
                "rest" if core.at_rest else STEP_NAMES[core.step])
        if step == self._step:
            return
        if self.on_time is not None and self._step is not None:
            if core.height != height:
                self.on_time(self._step[2], max(0.0, started - self._since))
                self.on_time("commit", max(0.0, now - started))
            else:
                self.on_time(self._step[2], max(0.0, now - self._since))
        self._step, self._since = step, now
