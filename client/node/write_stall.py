"""A write the node waits out instead of stopping: a decided block its database refuses
[CONS-COMMIT.2] (another process's lock, a full disk), or a signed message its consensus WAL
cannot take [CONS-WAL.3] (a full disk). Each kind keeps why, since when, and when to try
again: 0.25 s, doubling to 4 s, as long as it takes. The log says it once, again when the
reason changes, and once more when the write went through."""

from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger("learningchain.consensus")

RETRY_FIRST_S = 0.25
RETRY_MAX_S = 4.0
"""Seconds between attempts (doubling)."""


@dataclass
class WriteStall:
    """One kind of write that failed and is being retried; ``reason`` is None while none."""

    reason: str | None = None
    since: float = 0.0
    delay: float = RETRY_FIRST_S
    attempts: int = 0

    def failed(self, what: str, reason: str, now: float) -> float:
        """Records a failed attempt to store ``what``; returns the seconds to the next."""
        if self.reason is None:
            self.since, self.delay = now, RETRY_FIRST_S
            log.error("cannot store %s yet: %s; retrying, the node keeps serving", what, reason)
        elif reason != self.reason:
            log.error("%s still not stored after %.1f s: %s", what, now - self.since, reason)
        self.reason = reason
        self.attempts += 1
        delay, self.delay = self.delay, min(RETRY_MAX_S, self.delay * 2)
        return delay

    def stored(self, what: str, now: float) -> None:
        """The write went through."""
        if self.reason is not None:
            log.warning("%s stored after %.1f s of waiting", what, now - self.since)
        self.reason = None
