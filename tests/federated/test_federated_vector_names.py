"""federated.json's names stand for addresses: ``SHA-256("address:" + name)[:20]``.

An implementation written from the spec alone had to guess this (predict.json says its
own derivation, ``"addr:"``, and federated.json said none; protocol_spec/vectors/README.md
now does). Every listed payout is recomputed here from the names through that derivation
and the ledger's own ``payout`` [FED-REWARD.5]: the ties and the dust of a split follow
the addresses' bytes, so the derivation is part of the vector.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from chain.federated.rewards import payout, split

VECTORS = Path(__file__).resolve().parents[2] / "protocol_spec" / "vectors" / "federated.json"


def address(name: str, label: str = "address:") -> bytes:
    return hashlib.sha256(f"{label}{name}".encode()).digest()[:20]


def recomputed(case: dict[str, Any], label: str = "address:") -> dict[str, Any]:
    loo = case["loo_losses"]
    if isinstance(loo, int):  # one loss for every participant (weight_steps.job)
        names = sorted({n for ws in case["round_weights"] for n in ws})
        loo = dict.fromkeys(names, loo)
    p = payout(case["bounty"], case["loo_permille"],
               [{address(n, label): w for n, w in ws.items()} for ws in case["round_weights"]],
               case["final_loss"],
               None if loo is None else {address(n, label): v for n, v in loo.items()})
    return {"paid": {n: p.of(address(n, label)) for n in case["paid"]}, "refund": p.refund}


def test_fed_reward_5_vector_names_are_sha256_address_prefixed() -> None:
    """[FED-REWARD.5] [FED-END.5] Each payout of federated.json, from its names."""
    rewards = json.loads(VECTORS.read_text())["rewards"]
    cases = [*rewards["payouts"], rewards["weight_steps"]["job"]]
    assert len(cases) >= 3
    for case in cases:
        assert recomputed(case) == {"paid": case["paid"], "refund": case["refund"]}, case


def recomputed_split(case: dict[str, Any], label: str = "address:") -> dict[str, int]:
    shares = split(case["total"], {address(n, label): int(w)
                                   for n, w in case["weights"].items()})
    return {n: shares[address(n, label)] for n in case["weights"]}


def test_fed_reward_4_split_dust_follows_the_derived_addresses() -> None:
    """[FED-REWARD.4] The splits' dust goes to the largest remainders, ties by address: from
    the names through ``"address:"`` every listed split comes out; a reader that took the
    names' own bytes for addresses gets the three-way tie's dust wrong (the vector pins
    a derivation; which prefix, only the README states: ``"addr:"`` happens to give the
    same splits)."""
    splits = json.loads(VECTORS.read_text())["rewards"]["splits"]
    for case in splits:
        assert recomputed_split(case) == case["shares"], case
    assert recomputed_split(splits[0], "") != splits[0]["shares"]
