"""A toy federated job in pure integers, for the reward tests and vectors.

The "model" is a vector, the hidden loss is its squared distance to a target,
and each kind of participant behaves as the attacks of protocol_spec/federated.md
describe. Everything is deterministic given the noise a test passes in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from chain.federated.rewards import Payout, payout
from chain.federated.rounds import Aggregation, RoundInput, aggregate_round, apply_aggregate, replay

Behaviour = Callable[[tuple[int, ...], tuple[int, ...], int], tuple[int, ...]]
"""(honest step, model, round) -> the update this participant reveals."""


def honest(noise: Sequence[int] = (), bias: int = 0) -> Behaviour:
    """The honest step plus this member's noise (cycled) and a constant ``bias`` on the first
    coordinate (so members with the same noise still send different vectors)."""
    return lambda step, model, r: tuple(
        x + (noise[(r * 7 + j) % len(noise)] if noise else 0) + (bias if j == 0 else 0)
        for j, x in enumerate(step))


def free_rider(step: tuple[int, ...], model: tuple[int, ...], r: int) -> tuple[int, ...]:
    return (0,) * len(step)


def sign_flipper(scale: int) -> Behaviour:
    return lambda step, model, r: tuple(-scale * x for x in step)


def scaler(scale: int) -> Behaviour:
    return lambda step, model, r: tuple(scale * x for x in step)


def loss(model: Sequence[int], target: Sequence[int]) -> int:
    """The toy hidden loss: squared distance to the target (an integer, as votes are)."""
    return sum((m - t) ** 2 for m, t in zip(model, target, strict=True))


@dataclass(frozen=True, slots=True)
class ToyRun:
    rounds: tuple[RoundInput, ...]
    weights: tuple[dict[bytes, int], ...]
    final: tuple[int, ...]
    final_loss: int
    loo_losses: dict[bytes, int]
    payout: Payout


def run(agg: Aggregation, target: Sequence[int], people: Mapping[bytes, Behaviour],
        n_rounds: int, bounty: int, loo_permille: int) -> ToyRun:
    """Each round the honest step is a quarter of the way to the target; the owner's
    reference (used by FLTrust) is that step."""
    dims = len(target)
    model: tuple[int, ...] = (0,) * dims
    rounds, weights = [], []
    for r in range(1, n_rounds + 1):
        step = tuple((t - m) // 4 for t, m in zip(target, model, strict=True))
        updates = {a: b(step, model, r) for a, b in people.items()}
        result = aggregate_round(agg, updates, step, dims)
        rounds.append(RoundInput(updates, step))
        weights.append(dict(result.weights))
        model = apply_aggregate(model, result.aggregate)
    assert replay(agg, (0,) * dims, rounds) == model
    loo = {a: loss(replay(agg, (0,) * dims, rounds, without=a), target) for a in people}
    final_loss = loss(model, target)
    return ToyRun(tuple(rounds), tuple(weights), model, final_loss, loo,
                  payout(bounty, loo_permille, weights, final_loss, loo))
