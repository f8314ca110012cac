"""Hidden test sets (train/v3): the pool commitment and its split.

[HOLDOUT-POOL.1] [HOLDOUT-SPLIT.1]

Pure hashing, no I/O: the ledger, the submitter's packer (``sandbox.holdout_blob``),
every worker checking a published part and the tests all call these, so the
bytes agree everywhere. See protocol_spec/ledger.md §5b for the reasons.

A pool is ``n`` samples (files). Each is committed by a salted leaf, so that a
small pool (say, ten digits) cannot be guessed from its root; the root is a
binary Merkle tree over the leaves in index order. Which samples become public
is decided by a block hash after the post, not by the submitter.
"""

from __future__ import annotations

import hashlib
import math

from chain.encoding import encode
from chain.jobspec import MAX_POOL, MIN_POOL
from chain.types import DOMAIN, Hash32

__all__ = ["MAX_POOL", "MIN_POOL", "SALT_LEN", "hidden_indices", "leaf", "merkle_root",
           "min_hidden_samples", "public_count", "public_indices", "sample_digest",
           "split_seed"]

SALT_LEN = 32


def _h(*items: object) -> Hash32:
    return Hash32(hashlib.sha256(encode([DOMAIN, *items])).digest())


def sample_digest(sample: bytes) -> Hash32:
    """SHA-256 of one sample file's bytes."""
    return Hash32(hashlib.sha256(sample).digest())


def leaf(index: int, salt: bytes, digest: bytes) -> Hash32:
    """[HOLDOUT-POOL.1] The salted leaf of sample ``index``:
    ``SHA-256(encode([domain, "holdout-leaf", index, salt, SHA-256(sample)]))``."""
    if len(salt) != SALT_LEN:
        raise ValueError(f"a holdout salt is {SALT_LEN} bytes, got {len(salt)}")
    return _h("holdout-leaf", index, salt, digest)


def merkle_root(leaves: list[Hash32] | tuple[Hash32, ...]) -> Hash32:
    """[HOLDOUT-POOL.1] Pairs ``SHA-256(encode([domain, "holdout-node", left, right]))`` level
    by level; an odd last node moves up unchanged (never paired with itself, so no two
    leaf lists share a root)."""
    if not leaves:
        raise ValueError("a holdout pool has at least one leaf")
    level = list(leaves)
    while len(level) > 1:
        nxt = [_h("holdout-node", level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def split_seed(job_id: bytes, block_hash: bytes) -> Hash32:
    """[HOLDOUT-SPLIT.1] ``SHA-256(encode([domain, "holdout-split", job_id, block_hash]))`` where
    ``block_hash`` is the hash of the block at ``posted_height + 1``."""
    return _h("holdout-split", job_id, block_hash)


def public_count(pool: int, public_permille: int) -> int:
    """[HOLDOUT-SPLIT.1] How many samples the public part holds: ``pool × permille // 1000``."""
    return pool * public_permille // 1000


def public_indices(seed: bytes, pool: int, public_permille: int) -> tuple[int, ...]:
    """[HOLDOUT-SPLIT.1] The public samples: the ``public_count`` indices whose
    ``SHA-256(encode([domain, "holdout-pick", seed, i]))`` are smallest (ties by index),
    returned ascending. The rest are the hidden part."""
    keyed = sorted((_h("holdout-pick", seed, i), i) for i in range(pool))
    return tuple(sorted(i for _, i in keyed[:public_count(pool, public_permille)]))


def hidden_indices(seed: bytes, pool: int, public_permille: int) -> tuple[int, ...]:
    """The complement of ``public_indices``, ascending."""
    public = set(public_indices(seed, pool, public_permille))
    return tuple(i for i in range(pool) if i not in public)


def min_hidden_samples(sigma: float, tie_tolerance: float) -> int:
    """[HOLDOUT-SIZE.1] Hidden samples needed so that two equally good models' hidden losses
    differ by more than ``tie_tolerance`` only about 5 % of the time: the difference of two
    means of m samples has standard error at most √2·σ/√m, and the tolerance should be two
    of them, so ``m ≥ 8σ²/tie_tolerance²``."""
    if sigma < 0 or tie_tolerance <= 0:
        raise ValueError(f"need sigma >= 0 and tie_tolerance > 0, got {sigma}, {tie_tolerance}")
    return max(1, math.ceil(8 * sigma * sigma / (tie_tolerance * tie_tolerance)))
