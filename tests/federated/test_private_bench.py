"""bench/federated.py --private at a small size: its figures are checked, not timed
[FED-PRIV.6] [FED-PRIV.7] [FED-PRIV.8] [FED-PRIV.9]."""

from __future__ import annotations

from bench.federated import timing


def test_private_figures_count_bytes_and_unmask_to_the_mean() -> None:
    """[FED-PRIV.6] [FED-PRIV.7] [FED-PRIV.8] [FED-PRIV.9] With ``private`` the timing run
    adds the key agreement and share exchange: the round unmasked from the public blobs
    equals the survivors' mean; a share blob is 68 + 184·n bytes, an unmask blob 68 + 53·n;
    the existing keys stay."""
    out = timing(6, 2000, 3, reference=False, private=True)
    assert out["private_round_from_blobs_equals_mean"] is True
    assert out["private_threshold"] == 4
    assert out["private_share_blob_bytes_per_participant"] == 68 + 184 * 6
    assert out["private_unmask_blob_bytes_per_survivor"] == 68 + 53 * 6
    assert out["private_exchange_bytes_down_per_aggregator"] == 6 * (68 + 184 * 6) \
        + 5 * (68 + 53 * 6)
    for key in ("private_keygen_s_per_participant", "private_key_agreement_s_per_participant",
                "private_share_blob_s_per_participant", "private_round_from_blobs_s"):
        assert out[key] > 0
    assert "trimmed_mean_s_per_round" in out and "private_mask_s_per_participant" in out
