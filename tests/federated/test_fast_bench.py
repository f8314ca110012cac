"""bench/federated.py --timing at a small size: what it reports is checked, not timed
[FED-AGG.1] [FED-AGG.9] [FED-QUANT.5] [FED-PRIV.1] [FED-PRIV.4].

The bench's figures are only worth printing if the fast path it times computes the
reference's rounds; at 6 participants × 3,000 parameters the same code path runs and
its equality flags, byte counts and keys are asserted (never its seconds).
"""

from __future__ import annotations

from bench.federated import RULES, timing


def test_timing_compares_fast_and_reference_and_counts_bytes() -> None:
    """[FED-AGG.1] [FED-AGG.9] [FED-QUANT.5] [FED-PRIV.1] [FED-PRIV.4] Every rule's fast
    round (Multi-Krum's included) equals the reference's, masking and unmasking equal the
    reference's and unmask to the plain sum; an update blob is 68 + 4·dims bytes, a masked
    one 68 + 8·dims."""
    out = timing(6, 3000, 2, reference=True)
    print({k: v for k, v in out.items() if not k.endswith("_runs")})
    assert out["identical_to_reference"] is True
    assert out["private_identical_to_reference"] is True
    assert out["private_unmask_equals_sum"] is True
    assert out["bytes_up_per_participant"] == 68 + 4 * 3000
    assert out["private_bytes_up_per_participant"] == 68 + 8 * 3000
    assert out["bytes_down_per_verifier"] == 6 * (68 + 4 * 3000) + 12 + 4 * 3000
    for name in RULES:
        assert out[f"{name}_s_per_round"] > 0 and out[f"{name}_reference_s_per_round"] > 0
    assert "trimmed_mean_s_per_round" in out and "meets_target" in out
    assert "multi_krum_s_per_round" in out and "multi_krum_speedup" in out  # [FED-AGG.9]
