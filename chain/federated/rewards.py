"""The bounty split of a federated job [FED-REWARD.1] [FED-REWARD.3-6].

Two measured contributions, nothing self-reported: each round's weights
([FED-AGG.7], from the revealed updates) and each participant's leave-one-out
improvement on the hidden test set at the end (losses voted as integers in
micro-units). Every split is integer arithmetic with the largest-remainder rule,
so the payments sum to the bounty exactly. See protocol_spec/federated.md §4.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from chain.federated.errors import FederatedError

K = TypeVar("K", bytes, int)

MAX_LOSS = 1 << 40
"""[FED-REWARD.3] A voted loss is an integer in 0..2**40 - 1 micro-units (loss × 10**6)."""
MAX_WEIGHT = (1 << 64) - 1


def split(total: int, weights: Mapping[K, int]) -> dict[K, int]:
    """[FED-REWARD.4] ``total`` shared in proportion to ``weights`` (ints >= 0, sum > 0):
    each key gets ``floor(total · w / W)``; the dust ``total - sum`` (fewer units than keys
    with a non-zero remainder) goes one unit each to the largest remainders
    ``total · w mod W``, ties by ascending key. A key of weight 0 gets exactly 0."""
    if total < 0:
        raise FederatedError("bad_total", f"cannot split {total}", total=total)
    bad = {k: w for k, w in weights.items() if not 0 <= w <= MAX_WEIGHT}
    if bad:
        raise FederatedError("bad_weight", f"weights are ints in 0..2**64-1: {bad}", bad=bad)
    w_sum = sum(weights.values())
    if w_sum == 0:
        raise FederatedError("no_weight", "a split needs some positive weight", total=total)
    shares = {k: total * w // w_sum for k, w in weights.items()}
    dust = total - sum(shares.values())
    order = sorted(weights, key=lambda k: (-(total * weights[k] % w_sum), k))
    for k in order[:dust]:
        shares[k] += 1
    return shares


@dataclass(frozen=True, slots=True)
class Payout:
    """[FED-REWARD.5] What the bounty becomes: ``paid`` per participant (address order, zero
    shares left out) and ``refund`` to the owner; ``sum(paid) + refund == bounty``."""

    paid: tuple[tuple[bytes, int], ...]
    refund: int
    round_pool: int
    loo_pool: int

    def of(self, participant: bytes) -> int:
        return dict(self.paid).get(participant, 0)


def improvements(final_loss: int, loo_losses: Mapping[bytes, int],
                 eligible: set[bytes]) -> dict[bytes, int]:
    """[FED-REWARD.3] ``max(0, L_without_i - L_final)`` for each participant with a positive
    weight in some round; 0 for the others (an update the rules never accepted contributed
    nothing, whatever the loss says)."""
    for name, loss in (("final", final_loss), *((a.hex(), v) for a, v in loo_losses.items())):
        if isinstance(loss, bool) or not isinstance(loss, int) or not 0 <= loss < MAX_LOSS:
            raise FederatedError("bad_loss", f"loss {name} must be an int in "
                                 f"0..2**40-1 micro-units", loss=loss)
    return {a: max(0, loss - final_loss) if a in eligible else 0
            for a, loss in loo_losses.items()}


def payout(bounty: int, loo_permille: int, round_weights: Sequence[Mapping[bytes, int]],
           final_loss: int | None = None,
           loo_losses: Mapping[bytes, int] | None = None) -> Payout:
    """[FED-REWARD.5] The bounty split.

    - Rounds with a positive total weight are *scored*; the others pay nothing.
    - Improvements ``imp_i`` [FED-REWARD.3]; none when ``final_loss`` is None (private
      mode, or no verified hidden loss) [FED-REWARD.6].
    - No scored round and no improvement: the whole bounty is refunded. Only one kind
      present: it takes the whole bounty. Both: ``loo_pool = bounty · loo_permille // 1000``
      and the round pool is the rest.
    - The round pool is split equally over the scored rounds [FED-REWARD.4] (dust to the
      earliest), each round's share by that round's weights [FED-REWARD.1]; the loo pool
      by ``imp_i``. A participant's payment is the sum of its shares.
    """
    if not 0 <= loo_permille <= 1000 or bounty < 0:
        raise FederatedError("bad_param", "bounty >= 0, loo_permille in 0..1000",
                             bounty=bounty, loo_permille=loo_permille)
    scored = {r: ws for r, ws in enumerate(round_weights) if sum(ws.values()) > 0}
    eligible = {a for ws in scored.values() for a, w in ws.items() if w > 0}
    imp: dict[bytes, int] = {}
    if final_loss is not None and loo_losses is not None:
        imp = improvements(final_loss, loo_losses, eligible)
    has_loo = sum(imp.values()) > 0
    if not scored and not has_loo:
        return Payout((), bounty, 0, 0)
    if not has_loo:
        loo_pool = 0
    elif not scored:
        loo_pool = bounty
    else:
        loo_pool = bounty * loo_permille // 1000
    round_pool = bounty - loo_pool
    paid: dict[bytes, int] = {}
    if scored:
        for r, pool in split(round_pool, {r: 1 for r in scored}).items():
            for a, share in split(pool, scored[r]).items():
                paid[a] = paid.get(a, 0) + share
    if has_loo:
        for a, share in split(loo_pool, imp).items():
            paid[a] = paid.get(a, 0) + share
    return Payout(tuple(sorted((a, v) for a, v in paid.items() if v)), 0, round_pool,
                  loo_pool)


def private_round_weights(included: Sequence[bytes]) -> dict[bytes, int]:
    """[FED-REWARD.6] Private mode sees no single update, so a round's weights are 1 for
    each participant whose masked update entered the unmasked sum."""
    return {a: 1 for a in included}
