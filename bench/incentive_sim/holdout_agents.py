"""Strategies on hidden test sets (train/v3, ledger.md §5b): who trains, who votes, who submits.

What the ledger cannot know lives here: a model's loss on the public part and on
the hidden part. An honest model generalises (hidden = public + a small gap); an
overfitter trained on the public part, so its public loss is better and its
hidden loss much worse. Each dishonest strategy changes one policy of the honest
one, so its profit minus the same member's honest profit is that deviation's worth.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum

from bench.incentive_sim.agents import Economy, measure


class HWork(StrEnum):
    HONEST = "honest"
    """Trains on the train data only, claims its public loss, reveals on its turn."""
    OVERFIT = "overfit"
    """Trains on the public part too: claims its (true) public loss, far better than an
    honest model's, for a model whose hidden loss is far worse."""
    NOSHOW = "noshow"
    """Trains and claims honestly, then never reveals on its turn (a finalist that keeps
    its model) [HOLDOUT-FINALIST.1] [JOB-REVEAL.1]."""


class HVote(StrEnum):
    HONEST = "honest"
    """Checks the hidden part against the root, evaluates on both parts, reports both, and
    answers the hidden challenge [HOLDOUT-CHALLENGE.1] from the hidden run."""
    HIDDEN_LIAR = "hidden_liar"
    """Evaluates the public part only and reports the hidden loss as the public one (no
    generalisation gap: the lie that favours an overfitter); its best guess at the hidden
    challenge is its public run's answer to the same seed."""
    LAZY = "lazy"
    """Evaluates nothing: valid, the claimed loss as measured, the part ok, and the claimed
    loss as the hidden loss and as the hidden challenge's answer."""


class Submitter(StrEnum):
    HONEST = "honest"
    """Publishes the public part, reveals the true hidden part in the window."""
    WITHHOLD = "withhold"
    """Publishes, never reveals the hidden part [HOLDOUT-FORFEIT.1]."""
    MISMATCH = "mismatch"
    """Reveals a hidden part that does not match its root [HOLDOUT-JUDGE.1]."""


@dataclass(frozen=True, slots=True)
class HStrategy:
    name: str
    work: HWork
    vote: HVote
    threat: str = ""
    """The threat_model.md row this strategy exercises."""


HOLDOUT_STRATEGIES: dict[str, HStrategy] = {s.name: s for s in (
    HStrategy("honest", HWork.HONEST, HVote.HONEST),
    HStrategy("overfitter", HWork.OVERFIT, HVote.HONEST,
              threat="a worker trains on the public part (overfits)"),
    HStrategy("finalist_noshow", HWork.NOSHOW, HVote.HONEST,
              threat="a finalist that never reveals"),
    HStrategy("hidden_liar", HWork.HONEST, HVote.HIDDEN_LIAR,
              threat="a voter lies about the hidden loss"),
    HStrategy("lazy_v3", HWork.HONEST, HVote.LAZY,
              threat="lazy voters on holdout turns"),
)}
"""Member strategies on train/v3 jobs; the submitter strategies are ``Submitter``."""


@dataclass(frozen=True, slots=True)
class HoldoutEconomy:
    """Ground truth of the hidden part, beside the train/v1 economy's costs."""

    base: Economy = Economy()
    honest_gap: tuple[float, float] = (0.0, 0.02)
    """An honest model's hidden loss: its public loss plus a gap drawn in this range."""
    overfit_gain: float = 0.08
    """How much better an overfitter's public loss is than the model it would have trained."""
    overfit_penalty: float = 0.25
    """How much worse its hidden loss is than that model's."""
    overfit_value: float = 30.0
    """What a submitter gains from an overfit model (it does not generalise)."""


@dataclass(frozen=True, slots=True)
class Truth:
    public: float
    hidden: float
    generalises: bool


def model_truth(work: HWork, reached: float, econ: HoldoutEconomy,
                rng: random.Random) -> Truth:
    """A worker's model: ``reached`` is what training on the train data alone gets."""
    gap = rng.uniform(*econ.honest_gap)
    if work == HWork.OVERFIT:
        return Truth(reached - econ.overfit_gain, reached + econ.overfit_penalty, False)
    return Truth(reached, reached + gap, True)


@dataclass(frozen=True, slots=True)
class HoldoutChoice:
    valid: bool
    measured: float | None
    holdout_ok: bool
    hidden: float | None
    evaluations: int
    """Evaluations run (public part, hidden part): what the vote cost."""
    hidden_challenge: float | None = None
    """The answer to the hidden challenge [HOLDOUT-CHALLENGE.1]; None: none sent."""
    public_challenge: float | None = None
    """The answer to the public challenge [HOLDOUT-CHALLENGE.1]; None: none sent."""


def holdout_vote(policy: HVote, *, claimed: float, truth: Truth | None, part_ok: bool,
                 tolerance: float, econ: HoldoutEconomy, rng: random.Random,
                 answers: tuple[float, float] | None = None) -> HoldoutChoice:
    """A vote on a live turn [HOLDOUT-VOTE.1]; consistent as the ledger requires (no hidden
    loss, and no hidden answer, when the part is not ok; valid exactly when the measurement
    is within tolerance). ``answers``: the model's true losses on the turn's challenge
    subsets of the public and of the hidden part; None: nobody answers (votes from before
    [HOLDOUT-CHALLENGE.1])."""
    if policy == HVote.LAZY:
        echo = None if answers is None else claimed
        return HoldoutChoice(True, claimed, True, claimed, 0, echo, echo)
    if truth is None:  # the revealed bytes are no model
        return HoldoutChoice(False, None, part_ok, None, 1)
    # The losses are drawn first, in the order of the votes before the rule, so that the
    # before/ scenarios and these see the same measurements; the answers after them.
    measured = measure(truth.public, tolerance, econ.base, rng)
    valid = measured <= claimed + tolerance
    hidden = measure(truth.hidden, tolerance, econ.base, rng) \
        if part_ok and policy != HVote.HIDDEN_LIAR else None
    public = None if answers is None else measure(answers[0], tolerance, econ.base, rng)
    if policy == HVote.HIDDEN_LIAR:
        return HoldoutChoice(valid, measured, True, measured, 1, public, public)
    if not part_ok:
        return HoldoutChoice(valid, measured, False, None, 1, None, public)
    answer = None if answers is None else measure(answers[1], tolerance, econ.base, rng)
    return HoldoutChoice(valid, measured, True, hidden, 2, answer, public)
