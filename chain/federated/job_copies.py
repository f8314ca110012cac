"""Copies over the job share one leave-one-out improvement [FED-REWARD.14].

Why: one owner that sends its update through k addresses, with fresh noise each round to
keep every pair of its updates under the copy threshold of [FED-REWARD.8], is caught in
the round weights once the noise cancels in the running sums [FED-REWARD.11]; but the
leave-one-out pool [FED-REWARD.3] read each address alone, and taking one of k copies out
still costs the model part of the owner's direction, so each address kept an improvement
of its own and the k of them earned up to 1.7 times what the owner earns as one address
(bench/fedsplit.py). Over the whole job the noise has cancelled, so the addresses' *job
sums* are near-copies: each address's improvement is divided by the number of such
copies, as [FED-REWARD.8] divides a round weight. Honest owners of different data keep
different sums (measured: largest cosine of two honest owners' job sums 0.70).

The rule changes what a member votes on the end ballot, not the ballot's form: for each
participant a *credited loss* whose improvement over the final loss is the divided one,
so the ledger's payout [FED-REWARD.5] reads it unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from chain.federated import fast
from chain.federated.errors import FederatedError
from chain.federated.fixed import clamp
from chain.federated.fltrust import square_norm, trust
from chain.federated.rewards import COPY_TRUST
from chain.federated.rounds import RoundInput


def job_sums(inputs: Sequence[RoundInput], participants: Sequence[bytes]
             ) -> dict[bytes, tuple[int, ...]]:
    """[FED-REWARD.14] Each participant's updates in ``inputs`` (the end's replays' rounds,
    [FED-REWARD.2]) summed, then clamped per coordinate [FED-QUANT.3]; a participant with
    no update there has none."""
    out: dict[bytes, tuple[int, ...]] = {}
    for a in participants:
        vectors = [r.updates[a] for r in inputs if a in r.updates]
        if vectors:
            out[a] = tuple(clamp(sum(int(x) for x in col)) for col in zip(*vectors, strict=True))
    return out


def copy_counts(sums: Mapping[bytes, Sequence[int]], participants: Sequence[bytes]
                ) -> list[int]:
    """[FED-REWARD.14] For each participant (in the given order), 1 plus the number of other
    participants whose job sum has trust [FED-AGG.4] at least ``COPY_TRUST`` with its own
    (a participant without a sum counts 1 and is nobody's copy)."""
    counts = []
    for a in participants:
        mine = sums.get(a)
        counts.append(1 if mine is None or square_norm(mine) == 0 else 1 + sum(
            1 for b in participants if b != a and b in sums
            and len(sums[b]) == len(mine) and trust(mine, sums[b]) >= COPY_TRUST))
    return counts


def copy_counts_array(inputs: Sequence[RoundInput], participants: Sequence[bytes]
                      ) -> list[int]:
    """``copy_counts(job_sums(inputs, participants), participants)`` on int64 arrays, bit
    for bit (what members run on jobs of 10**6 coordinates)."""
    if not inputs or not participants:
        return [1] * len(participants)
    dims = next((len(v) for r in inputs for v in r.updates.values()), 0)
    present = [a for a in participants if any(a in r.updates for r in inputs)]
    if not present or dims == 0:
        return [1] * len(participants)
    sums = np.zeros((len(present), dims), dtype=np.int64)
    for i, a in enumerate(present):
        for r in inputs:
            if a in r.updates:  # decoded blobs, valid [FED-QUANT.5]: only the length to check
                v = np.asarray(r.updates[a], dtype=np.int64)
                if v.shape != (dims,):
                    raise FederatedError("bad_dims", f"an update of {a.hex()} has "
                                         f"{v.shape} coordinates, expected {dims}",
                                         dims=(v.shape, dims))
                sums[i] += v
    sums = fast.clamp(sums)
    n2s = fast.square_norms(sums)
    live = [i for i, n2 in enumerate(n2s) if n2 > 0]
    count = dict.fromkeys(range(len(present)), 1)
    for (i, j), t in fast.pair_trusts(sums[live], live, n2s).items():
        if t >= COPY_TRUST:
            count[i] += 1
            count[j] += 1
    by_address = {a: count[i] for i, a in enumerate(present)}
    return [by_address.get(a, 1) for a in participants]


def credited_losses(final_loss: int, losses: Sequence[int], counts: Sequence[int]
                    ) -> list[int]:
    """[FED-REWARD.14] The end vote's losses after the final one: ``L_F + (L - L_F) // c``
    for a loss ``L`` above the final loss ``L_F`` (its improvement divided by its copy
    count ``c``), the loss itself otherwise (no improvement to share)."""
    if len(losses) != len(counts) or any(c < 1 for c in counts):
        raise FederatedError("bad_counts", "one copy count >= 1 per loss",
                             losses=len(losses), counts=list(counts))
    return [final_loss + (loss - final_loss) // c if loss > final_loss else loss
            for loss, c in zip(losses, counts, strict=True)]
