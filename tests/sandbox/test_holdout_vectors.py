"""Vectors for a hidden test set's hashing and parts: protocol_spec/vectors/holdout.json.

A pool of five samples with fixed salts: each sample's digest and salted leaf
[HOLDOUT-POOL.1], the Merkle root (five leaves: the odd last node moves up), the
split seed from a job id and a block hash and the public and hidden indices for
400 and 600 permille [HOLDOUT-SPLIT.1], and the canonical holdout.json of the
public part at 400 permille [HOLDOUT-BLOB.3], so a second implementation can
check its bytes without this code. Regenerate with ``LC_WRITE_VECTORS=1``.
"""

from __future__ import annotations

import hashlib
from typing import Any

from chain.train.holdout.split import (
    hidden_indices,
    leaf,
    merkle_root,
    public_indices,
    sample_digest,
    split_seed,
)
from chain.types import Hash32
from sandbox.holdout_blob import part_json
from sandbox.holdout_pool import PoolSecret
from tests.ledger.vector_files import check_vector_file

SAMPLES = [b"label,x\n3,0.25\n", b"label,x\n7,0.5\n", b"", b"label,x\n1,1\n2,0\n",
           bytes(range(256))]
NAMES = ("a.csv", "b.csv", "c.csv", "d.csv", "e.bin")
JOB_ID = hashlib.sha256(b"holdout vector job").digest()
BLOCK_HASH = hashlib.sha256(b"holdout vector block").digest()
PERMILLES = (400, 600)


def _salt(i: int) -> bytes:
    return hashlib.sha256(f"holdout vector salt {i}".encode()).digest()


def build_vectors() -> dict[str, Any]:
    digests = [sample_digest(s) for s in SAMPLES]
    leaves = [leaf(i, _salt(i), d) for i, d in enumerate(digests)]
    seed = split_seed(JOB_ID, BLOCK_HASH)
    secret = PoolSecret.of(NAMES, tuple(_salt(i) for i in range(len(SAMPLES))),
                           tuple(Hash32(d) for d in digests))
    assert secret.root == merkle_root(leaves)
    return {
        "about": "hidden test set (train/v3): salted leaves, Merkle root, split seed, public "
                 "indices, a public part's holdout.json; protocol_spec/ledger.md §5b, "
                 "job_contract.md §1b",
        "samples": [{"index": i, "name": NAMES[i], "bytes": s.hex(), "sha256": d.hex(),
                     "salt": _salt(i).hex(), "leaf": x.hex()}
                    for i, (s, d, x) in enumerate(zip(SAMPLES, digests, leaves, strict=True))],
        "root": merkle_root(leaves).hex(),
        "prefix_roots": [merkle_root(leaves[:k]).hex() for k in range(1, len(leaves) + 1)],
        "split": {"job_id": JOB_ID.hex(), "block_hash": BLOCK_HASH.hex(), "seed": seed.hex(),
                  "parts": [{"public_permille": p,
                             "public": list(public_indices(seed, len(SAMPLES), p)),
                             "hidden": list(hidden_indices(seed, len(SAMPLES), p))}
                            for p in PERMILLES]},
        "public_part_400": part_json(secret, seed, 400, "public").decode(),
    }


def test_holdout_vectors_match_the_committed_file() -> None:
    """[HOLDOUT-POOL.1] [HOLDOUT-SPLIT.1] [HOLDOUT-BLOB.3] The pool's hashing and a part's
    holdout.json, recomputed, equal protocol_spec/vectors/holdout.json byte for byte."""
    vectors = build_vectors()
    split = vectors["split"]["parts"]
    assert [len(p["public"]) for p in split] == [2, 3]  # 5 × 400 // 1000, 5 × 600 // 1000
    assert all(sorted(p["public"] + p["hidden"]) == list(range(5)) for p in split)
    check_vector_file("holdout.json", vectors)
