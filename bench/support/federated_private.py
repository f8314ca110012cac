"""Private mode's key agreement and share exchange, timed [FED-PRIV.6-9].

Called by ``bench/federated.py --private``: ``participants`` owners each make fresh round
keys, derive a pair seed with every other (ECDH), Shamir-share their self seed and mask
secret (threshold n // 2 + 1) and encrypt each share to its recipient (ChaCha20-Poly1305);
one participant drops after the exchange; each survivor builds its unmask blob; then the
whole round is unmasked from the public bytes alone (``private_round``: open the shares,
rebuild the seeds, recompute the dropped one's pair seeds, remove the masks), checked
equal to the plain mean. Figures: seconds per participant and per round, bytes per
participant.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import numpy as np

from chain.crypto import PrivateKey
from chain.federated.fast import rdiv as fast_rdiv
from chain.federated.private.aggregate import RoundKeys, private_round
from chain.federated.private.fast import mask_update_array, masked_blob_bytes
from chain.federated.private.seeds import (
    make_share_blob,
    make_unmask_blob,
    pair_seeds,
    public_key,
    threshold,
)
from chain.federated.private.shamir import PRIME
from chain.types import Address, Hash32


def exchange_timing(arrays: dict[bytes, np.ndarray], job: Hash32, scale_bits: int,
                    dims: int) -> dict[str, Any]:
    addrs = sorted(arrays)
    n = len(addrs)
    t = threshold(n)
    t0 = time.perf_counter()
    secrets_of = {a: (PrivateKey.generate().secret, PrivateKey.generate().secret,
                      secrets.token_bytes(32)) for a in addrs}
    keys = {a: RoundKeys(public_key(m), public_key(e)) for a, (m, e, _) in secrets_of.items()}
    keygen = (time.perf_counter() - t0) / n
    enc = {a: k.enc_key for a, k in keys.items()}
    mask_keys = {a: k.mask_key for a, k in keys.items()}
    t0 = time.perf_counter()
    seeds = {a: pair_seeds(job, 1, a, secrets_of[a][0], mask_keys) for a in addrs}
    agree = (time.perf_counter() - t0) / n
    t0 = time.perf_counter()
    shares = {a: make_share_blob(job, 1, Address(a), secrets_of[a][1], secrets_of[a][2],
                                 secrets_of[a][0], enc,
                                 [secrets.randbelow(PRIME) for _ in range(t - 1)],
                                 [secrets.randbelow(PRIME) for _ in range(t - 1)]).to_bytes()
              for a in addrs}
    share_s = (time.perf_counter() - t0) / n
    gone = addrs[-1]
    up = [a for a in addrs if a != gone]
    masked = {a: masked_blob_bytes(job, 1, a, scale_bits, mask_update_array(
        arrays[a], a, secrets_of[a][2], seeds[a], job, 1)) for a in up}
    t0 = time.perf_counter()
    unmasks = {a: make_unmask_blob(job, 1, Address(a), secrets_of[a][1], enc, up,
                                   [gone]).to_bytes() for a in up}
    unmask_blob_s = (time.perf_counter() - t0) / len(up)
    t0 = time.perf_counter()
    out = private_round(job, 1, dims, scale_bits, keys, shares, masked, unmasks)
    round_s = time.perf_counter() - t0
    want = fast_rdiv(np.sum([arrays[a] for a in up], axis=0, dtype=np.int64), len(up))
    return {
        "private_threshold": t,
        "private_keygen_s_per_participant": keygen,
        "private_key_agreement_s_per_participant": agree,
        "private_share_blob_s_per_participant": share_s,
        "private_unmask_blob_s_per_survivor": unmask_blob_s,
        "private_round_from_blobs_s": round_s,
        "private_round_from_blobs_equals_mean": out.error is None
        and bool(np.array_equal(out.aggregate, want)),
        "private_share_blob_bytes_per_participant": len(shares[addrs[0]]),
        "private_unmask_blob_bytes_per_survivor": len(unmasks[up[0]]),
        "private_keys_tx_body_bytes": 2 * 33,
        "private_exchange_bytes_down_per_aggregator": sum(map(len, shares.values()))
        + sum(map(len, unmasks.values())),
    }


def report(out: dict[str, Any], n: int, dims: int) -> None:
    print(f"private exchange, {n} participants (threshold {out['private_threshold']}): keys "
          f"{out['private_keygen_s_per_participant'] * 1000:.1f} ms, ECDH pair seeds "
          f"{out['private_key_agreement_s_per_participant'] * 1000:.1f} ms, share blob "
          f"{out['private_share_blob_s_per_participant'] * 1000:.1f} ms "
          f"({out['private_share_blob_bytes_per_participant']:,} bytes) per participant; "
          f"unmask blob {out['private_unmask_blob_s_per_survivor'] * 1000:.1f} ms "
          f"({out['private_unmask_blob_bytes_per_survivor']:,} bytes) per survivor; the round "
          f"from the public blobs ({dims:,} parameters, 1 dropped) "
          f"{out['private_round_from_blobs_s']:.2f} s, equals the mean "
          f"{out['private_round_from_blobs_equals_mean']}", flush=True)


__all__ = ["exchange_timing", "report"]
