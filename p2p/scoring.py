"""Per-peer score, temporary bans and rate limits [WIRE-SCORE.*]. Pure: time is passed in."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from chain.types import Address


class Offence(enum.Enum):
    """[WIRE-SCORE.2] What a peer did wrong; ``penalty`` is the points it costs.

    The values are names, not points: with points as values, offences that cost the
    same were aliases of one member, so stats, logs and metrics named the wrong one.
    """

    MALFORMED_FRAME = "malformed_frame"
    OVERSIZED_FRAME = "oversized_frame"
    REJECTED_MESSAGE = "rejected_message"
    """The topic validator rejected a gossip message: invalid signature, malformed transaction."""
    DUPLICATE_FROM_SAME_PEER = "duplicate_from_same_peer"
    """The same gossip message sent twice by one peer: honest nodes forward once."""
    FLOOD = "flood"
    """A frame beyond the peer's rate limit (charged per frame)."""
    BAD_RESPONSE = "bad_response"
    """A sync block or blob chunk that fails verification."""
    UNSOLICITED = "unsolicited"
    """A response to no request of ours, or an IWANT for something never announced."""
    PROTOCOL = "protocol"
    """A message out of place (e.g. a second Identify)."""
    BAD_RECORD = "bad_record"
    """[WIRE-SECURE.5] A record that does not open (tampered, replayed, reordered or
    injected) or a message that is no record; the connection is dropped as well."""

    @property
    def penalty(self) -> float:
        return PENALTIES[self]


PENALTIES: dict[Offence, float] = {
    Offence.MALFORMED_FRAME: 25, Offence.OVERSIZED_FRAME: 100, Offence.REJECTED_MESSAGE: 20,
    Offence.DUPLICATE_FROM_SAME_PEER: 5, Offence.FLOOD: 2, Offence.BAD_RESPONSE: 20,
    Offence.UNSOLICITED: 5, Offence.PROTOCOL: 25, Offence.BAD_RECORD: 50,
}
"""[WIRE-SCORE.2] Points per offence (wire.md's table)."""


@dataclass(slots=True)
class PeerScore:
    """[WIRE-SCORE.1] Starts at 0, loses points per offence, recovers linearly toward 0."""

    value: float = 0.0
    updated: float = 0.0

    def current(self, now: float, decay_per_second: float) -> float:
        if self.value < 0:
            return min(0.0, self.value + (now - self.updated) * decay_per_second)
        return self.value

    def charge(self, offence: Offence, now: float, decay_per_second: float) -> float:
        self.value = self.current(now, decay_per_second) - offence.penalty
        self.updated = now
        return self.value


@dataclass(slots=True)
class BanList:
    """[WIRE-SCORE.3] Addresses refused until a deadline."""

    until: dict[Address, float] = field(default_factory=dict)

    def ban(self, address: Address, now: float, seconds: float) -> None:
        self.until[address] = max(self.until.get(address, 0.0), now + seconds)

    def is_banned(self, address: Address, now: float) -> bool:
        deadline = self.until.get(address)
        if deadline is None:
            return False
        if deadline <= now:
            del self.until[address]
            return False
        return True


@dataclass(slots=True)
class TokenBucket:
    """[WIRE-SCORE.4] ``rate`` tokens per second, at most ``burst`` saved."""

    rate: float
    burst: float
    tokens: float = -1.0
    updated: float = 0.0

    def take(self, amount: float, now: float) -> bool:
        if self.tokens < 0:
            self.tokens = self.burst
            self.updated = now
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= amount:
            self.tokens -= amount
            return True
        return False
