"""``[statesync]``: when a node starts from a snapshot and which snapshots it keeps [SNAP-*].

    [statesync]
    mode = "auto"              # auto: when the database is at genesis and a peer offers a
                               # snapshot at least auto_min_height high; always; never
    auto_min_height = 1000
    snapshot_every = 1000      # take a snapshot at each multiple of this (of 100); 0 = none
    snapshot_keep = 2          # the newest this many are served, older ones removed
    patience_s = 20            # how long a joining node looks for peers and offers
"""

from __future__ import annotations

from dataclasses import dataclass

from chain.statesync.roots import DIGEST_INTERVAL

MODES = ("auto", "always", "never")


@dataclass(frozen=True, slots=True)
class StateSyncPolicy:
    mode: str = "auto"
    auto_min_height: int = 1000
    snapshot_every: int = 1000
    snapshot_keep: int = 2
    patience_s: int = 20

    def problem(self) -> str | None:
        """What is wrong with these values, for the config's error; None when nothing."""
        if self.snapshot_every % DIGEST_INTERVAL:
            return (f"snapshot_every must be a multiple of {DIGEST_INTERVAL} (the digest "
                    f"heights of [STATE-ROOT.2]), got {self.snapshot_every}")
        if self.snapshot_every and self.snapshot_keep < 1:
            return "snapshot_keep must be at least 1 while snapshot_every is set"
        return None
