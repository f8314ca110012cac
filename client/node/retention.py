"""How many blocks a pruning node must keep, by its roles [STORE-PRUNE.1].

Apart from ``client.node.pruning`` (which prunes through ``chain.storage``) so that
checking a config (``client.node.config``) does not import SQLAlchemy.
"""

from __future__ import annotations

from chain.governance.evidence import EVIDENCE_MAX_AGE

MIN_RETAIN_BLOCKS = 1_000
"""[STORE-PRUNE.1] Any pruning node keeps at least this many: peers a few minutes behind
(a restart, a short partition) can still catch up from it; far above the consensus WAL's
window (``WAL_PRUNE_EVERY`` = 64 heights) and ``client.node.pruning.PRUNE_EVERY``."""
WORKER_MIN_RETAIN_BLOCKS = 10_000
"""[STORE-PRUNE.1] A worker reads the block that revealed a model to draw its challenge
seed, searching back at most 10,000 blocks ([VOTE-CHALLENGE.1], ``client/worker/votes.py``)."""
VALIDATOR_MIN_RETAIN_BLOCKS = EVIDENCE_MAX_AGE
"""[STORE-PRUNE.1] A validator keeps every block in which misbehaviour can still be
punished (evidence is accepted for 100,000 heights, [TX-EVIDENCE.1]): the certificates
and validator changes an auditor checks an ``evidence`` transaction against, and what a
validator away for as long as that needs to catch up."""


def min_retain_blocks(roles: tuple[str, ...]) -> int:
    """[STORE-PRUNE.1] The smallest ``retain_blocks`` (other than 0) these roles allow."""
    least = MIN_RETAIN_BLOCKS
    if "worker" in roles:
        least = max(least, WORKER_MIN_RETAIN_BLOCKS)
    if "validator" in roles:
        least = max(least, VALIDATOR_MIN_RETAIN_BLOCKS)
    return least


def retain_reason(roles: tuple[str, ...]) -> str:
    """Why the minimum of ``roles`` is what it is, for the config error."""
    if "validator" in roles:
        return (f"a validator keeps the blocks of the evidence window ({EVIDENCE_MAX_AGE} "
                "heights, [TX-EVIDENCE.1])")
    if "worker" in roles:
        return (f"a worker reads reveal blocks up to {WORKER_MIN_RETAIN_BLOCKS} heights back "
                "when it votes")
    return "peers a few minutes behind must be able to catch up from this node"
