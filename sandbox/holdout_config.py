"""The ``[holdout]`` table of a train/v3 job.toml and the values it gives the chain [JOB-FILE.4].

``HoldoutConfig`` is the table as parsed (``sandbox.job_file`` checks its keys);
``HoldoutConfig.terms`` adds what only the committed pool knows (its root and
size) and gives ``HoldoutTerms``: the fields of the job's hidden-test-set terms
on chain, in their wire order (ledger.md §5b), which ``job submit`` turns into
the chain's own object.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

HOLDOUT_KEYS = ("pool", "public_permille", "finalists", "deposit", "reveal_window",
                "tie_tolerance")
"""[JOB-FILE.4] Every key of ``[holdout]``; all are required."""
_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


@dataclass(frozen=True, slots=True)
class HoldoutTerms:
    """A train/v3 job's hidden-test-set terms as the chain carries them (ledger.md §5b)."""

    root: bytes
    """32 bytes: ``chain.train.holdout.split.merkle_root`` of the pool's salted leaves
    [HOLDOUT-POOL.1]."""
    pool: int
    """How many samples the pool holds (2..4,000)."""
    public_permille: int
    """Share of the pool made public after the post [HOLDOUT-SPLIT.1]."""
    finalists: int
    """How many of the best public claims are evaluated on the hidden part."""
    deposit: int
    """Credits escrowed beside the bounty, forfeited if the hidden part is not revealed."""
    reveal_window_ms: int
    """How long after expiry the submitter has to publish the hidden part."""
    tie_tolerance: float
    """Hidden losses this close count as tied; the earlier claim wins."""


@dataclass(frozen=True, slots=True)
class HoldoutConfig:
    """``[holdout]`` as job.toml declares it [JOB-FILE.4]."""

    pool: str
    """Folder of sample files, relative to the job folder."""
    public_permille: int
    finalists: int
    deposit: int
    reveal_window_ms: int
    tie_tolerance: float

    def pool_path(self, job_dir: Path) -> Path:
        """[JOB-FILE.4] The pool folder, checked to be a folder inside ``job_dir``."""
        root = job_dir.resolve()
        path = (job_dir / self.pool).resolve()
        if path == root or root not in path.parents:
            raise ValueError(f"[holdout] pool = {self.pool!r} leaves the job folder")
        if not path.is_dir():
            raise ValueError(f"[holdout] pool = {self.pool!r}: no such folder")
        return job_dir / self.pool

    def terms(self, root: bytes, pool: int) -> HoldoutTerms:
        """The chain's terms of this job once its pool is committed (``make_pool``)."""
        from chain.train.holdout.split import public_count

        if len(root) != 32:
            raise ValueError(f"a pool root is 32 bytes, got {len(root)}")
        public = public_count(pool, self.public_permille)
        if not 1 <= public <= pool - 1:
            raise ValueError(f"[holdout] public_permille {self.public_permille} of {pool} "
                             f"samples makes {public} public: both parts need a sample")
        return HoldoutTerms(bytes(root), pool, self.public_permille, self.finalists,
                            self.deposit, self.reveal_window_ms, self.tie_tolerance)


def duration_ms(value: object, where: str) -> int:
    """``"90s"``, ``"10m"``, ``"2h"``, ``"1d"``, ``"1500ms"`` or a number of seconds, as the
    CLI's duration options read them; positive. Gives milliseconds."""
    if isinstance(value, bool):
        raise ValueError(f"{where} must be a duration like \"90s\", \"10m\", \"2h\" or \"1d\"")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"{where} must be a finite duration")
        ms = int(value * 1000)
    elif isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*", value)
        if not match:
            raise ValueError(f"{where} must be a duration like \"90s\", \"10m\", \"2h\" or "
                             f"\"1d\", got {value!r}")
        ms = int(float(match.group(1)) * _UNITS_MS[match.group(2) or "s"])
    else:
        raise ValueError(f"{where} must be a duration like \"90s\", \"10m\", \"2h\" or \"1d\"")
    if ms <= 0:
        raise ValueError(f"{where} must be a positive duration")
    return ms
