"""Voter rewards earned by answering a per-turn challenge [VOTE-CHALLENGE.1] [VOTE-REWARD.2].

Under [VOTE-REWARD.1] alone a voter is paid for agreeing with the verdict, and on
an honest claim the verdict is "valid": a voter that votes "valid" echoing the
claimed loss is paid without evaluating anything (the verifier's dilemma;
threat_model.md [THREAT-LAZY.1]). So a voter is paid for an answer that cannot
be derived from the claim:

- [VOTE-CHALLENGE.1] The block that includes a turn's reveal fixes a challenge
  seed; the seed picks ``CHALLENGE_SIZE`` of the job's evaluation examples. Each
  vote carries, besides its measured loss, the model's loss on that subset,
  measured in the same evaluation run, covered by the vote commitment.
- [VOTE-REWARD.2] (replaces VOTE-REWARD.1 where a turn has challenge answers) The
  turn's reward goes to the voters that agreed with the verdict *and* whose
  challenge loss lies in the largest group of challenge losses within
  ``loss_tolerance`` of each other ([VOTE-AGREE.1]'s grouping), if that group
  holds a supermajority of the opened votes; otherwise nobody is paid for the turn
  and the pool stays in escrow (returned at settlement).

Pure arithmetic, like chain.train.verdict: no state is read or written here;
chain.train.rules pays what ``turn_rewards`` returns.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from chain.blocks import Block
from chain.encoding import encode
from chain.train.bodies import RevealModel
from chain.types import Address, Hash32

DOMAIN = "learningchain/v1"
CHALLENGE_SIZE = 32
"""[VOTE-CHALLENGE.1] Examples in a turn's challenge subset (all of them when the job has
fewer). A protocol constant: small, so a subset's loss spreads by several tolerances
around the full loss, and no job spec field changes."""


def challenge_seed(reveal_block_hash: bytes, job_id: bytes, claimer: bytes,
                   model_hash: bytes) -> Hash32:
    """[VOTE-CHALLENGE.1] The turn's seed: fixed by the block that includes the reveal,
    so neither the claim nor anything before the reveal predicts it."""
    return Hash32(hashlib.sha256(encode([DOMAIN, "vote-challenge", reveal_block_hash, job_id,
                                         claimer, model_hash])).digest())


def reveal_block_hash(blocks: Iterable[Block], job_id: bytes, claimer: bytes,
                      model_hash: bytes) -> Hash32 | None:
    """[VOTE-CHALLENGE.1] The hash of the block that includes the turn's reveal (the first of
    ``blocks`` holding a ``reveal`` of ``model_hash`` for ``job_id`` signed by ``claimer``):
    how a voter finds the seed's block. None when none of them holds it."""
    for block in blocks:
        for tx in block.txs:
            body = tx.body
            if isinstance(body, RevealModel) and body.job_id == job_id \
                    and body.model_hash == model_hash and tx.sender == claimer:
                return block.hash
    return None


def challenge_subset(seed: bytes, examples: int, size: int = CHALLENGE_SIZE) -> tuple[int, ...]:
    """[VOTE-CHALLENGE.1] ``min(size, examples)`` distinct example indices in
    ``range(examples)``, sorted, drawn from SHA-256(seed, counter) by rejection sampling
    (no modulo bias)."""
    if examples < 1 or size < 1:
        raise ValueError(f"cannot draw {size} of {examples} examples")
    size = min(size, examples)
    bound = (1 << 64) - (1 << 64) % examples
    chosen: set[int] = set()
    counter = 0
    while len(chosen) < size:
        block = hashlib.sha256(seed + counter.to_bytes(8, "big")).digest()
        counter += 1
        for i in range(0, 32, 8):
            value = int.from_bytes(block[i:i + 8], "big")
            if value < bound and len(chosen) < size:
                chosen.add(value % examples)
    return tuple(sorted(chosen))


@dataclass(frozen=True, slots=True)
class ChallengeAnswer:
    """One opened vote as the proposed reward rule sees it."""

    voter: Address
    agrees: bool
    """The vote agreed with the verdict ([VOTE-REWARD.1]'s condition)."""
    loss: float | None
    """The voter's measured loss on the challenge subset; None if it sent none."""


def challenge_group(answers: Sequence[ChallengeAnswer], tolerance: float) -> tuple[Address, ...]:
    """The voters whose challenge losses form the largest group of width ``tolerance``
    ([VOTE-AGREE.1]'s grouping; ties to the lowest interval). Answers without a loss are
    never in it: a missing answer proves no evaluation."""
    numeric = sorted((a for a in answers if a.loss is not None), key=lambda a: (a.loss, a.voter))
    losses = [a.loss for a in numeric if a.loss is not None]
    best_size, best_start, end = 0, 0, 0
    for start in range(len(losses)):
        end = max(end, start)
        while end + 1 < len(losses) and losses[end + 1] - losses[start] <= tolerance:
            end += 1
        if end - start + 1 > best_size:
            best_size, best_start = end - start + 1, start
    return tuple(sorted(a.voter for a in numeric[best_start:best_start + best_size]))


def challenge_centre(answers: Sequence[ChallengeAnswer], group: set[Address]) -> float:
    """[VOTE-REWARD.2] The lower median of the group's challenge losses.

    Paying every answer within tolerance of it (not only the group's window) keeps every
    honest voter paid when the honest answers lie within tolerance of each other and the
    others are fewer than half of the group: the median then lies among honest answers,
    so a lucky echo that shifts the window cannot push an honest answer out."""
    losses = sorted(a.loss for a in answers if a.voter in group and a.loss is not None)
    return losses[(len(losses) - 1) // 2]


def challenge_rewards(answers: Sequence[ChallengeAnswer], tolerance: float,
                      supermajority_permille: int, pool: int) -> dict[Address, int]:
    """[VOTE-REWARD.2] Each paid voter's share of the turn's ``pool``.

    Paid: agreed with the verdict and answered the challenge inside the group, when the
    group is a supermajority of the opened votes. Integer division; the remainder (and
    the whole pool when nobody qualifies) stays in escrow.
    """
    if pool < 0:
        raise ValueError(f"negative reward pool {pool}")
    group = set(challenge_group(answers, tolerance))
    if not answers or len(group) * 1000 < supermajority_permille * len(answers):
        return {}
    centre = challenge_centre(answers, group)
    paid = sorted(a.voter for a in answers if a.agrees and a.loss is not None
                  and abs(a.loss - centre) <= tolerance)
    if not paid:
        return {}
    share = pool // len(paid)
    return {voter: share for voter in paid}


def turn_rewards(answers: Sequence[ChallengeAnswer], tolerance: float,
                 supermajority_permille: int, pool: int,
                 unpaid: frozenset[Address] = frozenset()) -> dict[Address, int]:
    """What one turn pays its voters [VOTE-REWARD.2], or [VOTE-REWARD.1] on a turn where no
    opened vote carries a challenge answer (votes of jobs or workers from before the
    challenge): then every agreeing voter shares the pool. A turn of holdout votes reaches
    here through [HOLDOUT-VOTE-REWARD.1] (``chain.train.holdout.rules.reward_answers``), which
    hands over answer-less votes that agree exactly when they are to be paid.

    ``answers`` are the opened voter votes (the claimer's own is never one); voters in
    ``unpaid`` (banned since they voted) still count in the group and the supermajority
    but are never paid, and the pool is split among the others.
    """
    if pool < 0:
        raise ValueError(f"negative reward pool {pool}")
    if any(a.loss is not None for a in answers):
        group = set(challenge_group(answers, tolerance))
        if len(group) * 1000 < supermajority_permille * len(answers):
            return {}
        centre = challenge_centre(answers, group)
        paid = sorted(a.voter for a in answers
                      if a.agrees and a.loss is not None and a.voter not in unpaid
                      and abs(a.loss - centre) <= tolerance)
    else:
        paid = sorted(a.voter for a in answers if a.agrees and a.voter not in unpaid)
    if not paid or pool == 0:
        return {}
    share = pool // len(paid)
    return {voter: share for voter in paid}
