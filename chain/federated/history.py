"""Replays of earlier updates [FED-REWARD.10]: an update within one quantum of any update
revealed earlier in the job is a replay, left out of its round, and earns nothing.

Why: commitments close before reveals [FED-COMMIT.1], so nobody can copy an update of
its own round, but every earlier round's updates are public blobs. A free-rider that
sends another owner's update of the round before (or its own) does no training, and the
stale update still points the way the honest ones do: under every rule of [FED-AGG.*] it
would be weighted like an honest one (measured: 1.4 × the lowest honest owner's pay under
Multi-Krum). Within one quantum, not only equal: a ±1 change of any coordinate is below
the update's own rounding [FED-QUANT.2] and buys nothing. A replay that adds more noise
than that is no longer the same update: the rules weigh it as what it is.
"""

from __future__ import annotations

from collections.abc import Sequence

REPLAY_QUANTUM = 1
"""[FED-REWARD.10] Two updates within this of each other in every coordinate are the same."""


def within_quantum(u: Sequence[int], v: Sequence[int]) -> bool:
    """[FED-REWARD.10] ``|u_j - v_j| <= 1`` for every j (and the same length)."""
    return len(u) == len(v) and all(abs(a - b) <= REPLAY_QUANTUM
                                    for a, b in zip(u, v, strict=True))


def replays(updates: Sequence[tuple[bytes, Sequence[int]]],
            earlier: Sequence[Sequence[int]]) -> set[bytes]:
    """[FED-REWARD.10] The participants whose update is within one quantum of an earlier
    revealed update."""
    return {a for a, u in updates if any(within_quantum(u, v) for v in earlier)}
