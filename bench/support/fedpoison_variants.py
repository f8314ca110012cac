"""Experimental aggregation rules for bench/fedpoison.py, harness-side only.

A variant is a callable ``(updates, reference, dims, center) -> (aggregate, weights)``
named in ``VARIANTS``; ``--rules`` picks it like a project rule and the harness replays
it with the same center it kept during the job. Why here and not in chain/federated:
to compare parameters and designs on the benchmark before one enters the spec (issue 49
§1: "choose parameters by measurement"). Floats are fine for that; nothing here is what
a member recomputes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import numpy as np

from bench.support.fedsim import Ints, RoundFn, standard_weights
from chain.federated import fast


def bucketed_centered_clip(bucket: int, radius_quantile: float = 0.5) -> RoundFn:
    """Karimireddy, He and Jaggi's recipe (ICLR 2022): updates averaged in random buckets of
    ``bucket`` (permutation seeded by the round's updates, standing in for the block
    hash), each bucket's difference from the center clipped to the ``radius_quantile`` of
    those differences' norms, the center plus their mean."""
    def rule(updates: Mapping[bytes, Ints], reference: Ints, dims: int,
             center: Ints) -> tuple[Ints, dict[bytes, int]]:
        addrs = sorted(updates)
        m = np.stack([updates[a] for a in addrs]).astype(np.int64)
        digest = hashlib.sha256(m.tobytes()).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
        order = rng.permutation(len(addrs))
        buckets = np.stack([m[order[i:i + bucket]].mean(axis=0)
                            for i in range(0, len(order), bucket)])
        diffs = buckets - center
        norms = np.linalg.norm(diffs, axis=1)
        radius = float(np.quantile(norms, radius_quantile))
        scale = np.minimum(1.0, radius / np.maximum(norms, 1e-12))
        agg = fast.clamp(np.rint(center + (diffs * scale[:, None]).mean(axis=0))
                         .astype(np.int64))
        return agg, dict(zip(addrs, standard_weights(m, agg), strict=True))
    return rule


VARIANTS: dict[str, RoundFn] = {
    "bucket2_cclip": bucketed_centered_clip(2),
    "bucket2_cclip_q75": bucketed_centered_clip(2, 0.75),
}
"""Name -> experimental rule. Add temporary ones here; they never run unless named."""
