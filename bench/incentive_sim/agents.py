"""Strategies and their decisions: what a member does, given what it knows. Pure, no I/O.

A strategy is a pair of policies: how the member works (trains and claims) and
how it votes. Each dishonest strategy changes exactly one of them from the
honest one, so its profit minus the honest profit measured in the same run is
the worth of that one deviation. Coalitions change both and coordinate.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from enum import StrEnum


class Work(StrEnum):
    HONEST = "honest"
    """Trains, claims the loss it reached, reveals on its turn, measures its own model."""
    CHEAT = "cheat"
    """Trains, claims a better loss than reached, reveals and insists (self-vote valid)."""
    CHEAT_WITHDRAW = "cheat_withdraw"
    """As CHEAT, but withdraws (self-vote invalid, the true loss) to escape the ban."""
    COPY = "copy"
    """Trains nothing: copies the best competing claim's commitment with a lower loss."""
    WITHHOLD = "withhold"
    """Trains and claims honestly, then never reveals (hoards the model)."""
    EXHAUST = "exhaust"
    """Sacrificial: claims every job with a loss far below anything reached, without
    training, reveals and insists, so that its cheat verdicts use up ``max_turns``."""


class Vote(StrEnum):
    HONEST = "honest"
    """Evaluates the revealed model and reports what it measured."""
    LAZY_VALID = "lazy_valid"
    """Votes valid without evaluating, with some loss in the valid range (claim + tol/2)."""
    LAZY_ECHO = "lazy_echo"
    """Votes valid without evaluating, echoing the claimed loss as measured."""
    GRIEF = "grief"
    """Votes 'cheat' (invalid, no loss) on every claim without evaluating."""
    NOSHOW = "noshow"
    """Never votes (withholds), and re-bonds to stay a verifier."""
    CARTEL = "cartel"
    """Valid (echo) on a coalition member's claim, 'cheat' on everyone else's; no work."""


@dataclass(frozen=True, slots=True)
class Strategy:
    name: str
    work: Work
    vote: Vote
    outsider_keys: int = 0
    """Unadmitted identities the member also runs (sybils): they claim and vote too."""
    threat: str = ""
    """The threat_model.md row this strategy exercises."""


STRATEGIES: dict[str, Strategy] = {s.name: s for s in (
    Strategy("honest", Work.HONEST, Vote.HONEST),
    Strategy("cheater", Work.CHEAT, Vote.HONEST, threat="claiming a loss never reached"),
    Strategy("cheater_withdraw", Work.CHEAT_WITHDRAW, Vote.HONEST,
             threat="a cheater that withdraws instead of insisting"),
    Strategy("copier", Work.COPY, Vote.HONEST,
             threat="copying a competitor's claim and landing it first"),
    Strategy("withholding_winner", Work.WITHHOLD, Vote.HONEST,
             threat="a winner that never reveals"),
    Strategy("lazy_valid", Work.HONEST, Vote.LAZY_VALID, threat="lazy voters"),
    Strategy("lazy_echo", Work.HONEST, Vote.LAZY_ECHO, threat="lazy voters"),
    Strategy("griefer", Work.HONEST, Vote.GRIEF, threat="false cheat votes"),
    Strategy("withholding_voter", Work.HONEST, Vote.NOSHOW,
             threat="a verifier that never votes"),
    Strategy("sybil", Work.HONEST, Vote.GRIEF, outsider_keys=4, threat="sybil identities"),
    Strategy("cartel", Work.CHEAT, Vote.CARTEL, threat="coalition"),
    Strategy("exhauster", Work.EXHAUST, Vote.HONEST, threat="turn exhaustion"),
)}
"""Every member strategy the simulation runs; ``honest`` is the reference."""


@dataclass(frozen=True, slots=True)
class Economy:
    """Costs and ground truth, in credits-equivalent and loss units."""

    train_cost: float = 20.0
    """What one training run costs the worker (compute, power), in credits."""
    eval_cost: float = 1.0
    """What one evaluation of a revealed model costs a voter, in credits."""
    model_value: float = 150.0
    """What a submitter gains from a verified model it paid for."""
    claimers_per_job: int = 3
    """Workers that train each job (drawn at random among the members that work)."""
    base_loss: tuple[float, float] = (0.2, 0.6)
    """A job's best reachable loss is drawn uniformly in this range."""
    loss_spread: float = 0.05
    """Workers' reached losses: the job's base plus |N(0, spread)|."""
    cheat_margin: float = 0.05
    """A cheater claims its reached loss minus this (several tolerances: it ranks first)."""
    noise: float = 0.4
    """Honest measurement noise, uniform in ±noise × tolerance: always within tolerance."""
    challenge_spread: float = 0.03
    """Standard deviation of a model's loss on a random evaluation subset around its full
    loss (the challenge [VOTE-CHALLENGE.1]): what a voter cannot know without evaluating."""


@dataclass(frozen=True, slots=True)
class VoteChoice:
    valid: bool
    measured: float | None
    evaluated: bool
    """Whether the voter ran the evaluation (and so paid ``eval_cost``)."""
    challenge: float | None = None
    """The loss on the turn's challenge subset [VOTE-CHALLENGE.1], sent with the vote;
    None: no answer."""


def measure(true_loss: float, tolerance: float, economy: Economy, rng: random.Random) -> float:
    """An honest evaluation: the true loss within the job's reproducibility noise."""
    return true_loss + rng.uniform(-economy.noise, economy.noise) * tolerance


def challenge_loss(model_hash: bytes, seed: bytes, true_loss: float, economy: Economy) -> float:
    """The true loss of ``model_hash`` on the subset the challenge seed selects.

    Deterministic in (model, seed), as evaluating the same bytes on the same subset
    is; unpredictable from the claim, as a subset's loss is without running the model.
    """
    digest = hashlib.sha256(b"challenge-truth" + model_hash + seed).digest()
    gauss = random.Random(int.from_bytes(digest, "big")).gauss(0.0, 1.0)
    return true_loss + economy.challenge_spread * gauss


def claim_loss(work: Work, reached: float, economy: Economy) -> float:
    """The loss a worker claims for a model whose true loss is ``reached``."""
    if work in (Work.CHEAT, Work.CHEAT_WITHDRAW):
        return reached - economy.cheat_margin
    return reached


def vote(policy: Vote, *, claimed: float, true_loss: float | None, tolerance: float,
         coalition_claim: bool, challenge_truth: float | None, economy: Economy,
         rng: random.Random) -> VoteChoice | None:
    """A voter's vote on a revealed model, or None when it withholds its vote.

    ``true_loss`` is None when the revealed bytes are no model the evaluation can
    run. A vote must be consistent [VOTE-CONSISTENT.1]: valid exactly when the
    measured loss is within tolerance of the claim; every lazy vote obeys that.
    """
    if policy == Vote.NOSHOW:
        return None
    if policy == Vote.HONEST:
        if true_loss is None:
            return VoteChoice(False, None, True)
        measured = measure(true_loss, tolerance, economy, rng)
        challenge = None if challenge_truth is None else \
            measure(challenge_truth, tolerance, economy, rng)
        return VoteChoice(measured <= claimed + tolerance, measured, True, challenge)
    if policy == Vote.LAZY_ECHO or (policy == Vote.CARTEL and coalition_claim):
        return VoteChoice(True, claimed, False, claimed)
    if policy == Vote.LAZY_VALID:
        return VoteChoice(True, claimed + tolerance / 2, False, claimed)
    return VoteChoice(False, None, False, None)  # GRIEF, and CARTEL on an outsider's claim


def self_vote(work: Work, *, claimed: float, true_loss: float, tolerance: float,
              economy: Economy, rng: random.Random) -> VoteChoice | None:
    """The claimer's own measurement [VOTE-SELF.1] by work policy."""
    if work in (Work.CHEAT, Work.EXHAUST):  # insists, without paying for an evaluation
        return VoteChoice(True, claimed, False)
    if work in (Work.HONEST, Work.CHEAT_WITHDRAW):
        measured = measure(true_loss, tolerance, economy, rng)
        return VoteChoice(measured <= claimed + tolerance, measured, True)
    return None
