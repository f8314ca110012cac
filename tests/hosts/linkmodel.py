"""When the bytes a link carries arrive: one-way delay, jitter, loss and a bandwidth cap.

Why a model of its own: this kernel has no netem qdisc, so the test bed's links are
emulated in user space by a relay (``tests.hosts.relay``) that every TCP connection
between two hosts passes through. The relay reads a chunk from one side and must
decide when to write it to the other; that decision lives here, pure, with the clock
and the random generator passed in, so it is unit-tested without sockets or sleeps.

What is emulated, per chunk the relay reads (at most ``CHUNK`` bytes):

- **bandwidth**: a link direction is one serializer shared by every connection on it:
  a chunk starts when the previous one has left and takes ``bytes * 8 / rate`` s;
- **delay and jitter**: then it travels ``delay_s + uniform(0, jitter_s)`` s. Jitter
  only adds, so the configured delay is a floor a test can check;
- **loss**: TCP hides loss from the application; what the application sees is a late
  chunk. Each of the chunk's segments (``MSS`` bytes) is lost with probability
  ``loss``; a chunk with a lost segment arrives one retransmission timeout later
  (``rto_s``, 0.2 s: Linux's minimum RTO), doubled for each time the retransmission is
  lost again. Real TCP often repairs a loss in a bulk flow within one round trip (fast
  retransmit), so this is the pessimistic side; a loss in a small message (a vote) does
  cost an RTO in real TCP too;
- **order**: bytes of one connection never overtake each other, so a chunk leaves no
  earlier than the one before it (head-of-line blocking behind a late chunk, as TCP).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

MSS = 1448
"""Bytes of payload per TCP segment on a 1500-byte MTU with timestamps."""
CHUNK = 16 * 1024
"""The relay reads at most this much at once: the granularity of delay and loss."""


@dataclass(frozen=True, slots=True)
class LinkSpec:
    """How one direction of a link between two hosts behaves."""

    delay_s: float = 0.0
    """One-way propagation delay (half the round trip of a symmetric link)."""
    jitter_s: float = 0.0
    """Extra one-way delay drawn uniformly from [0, jitter_s] per chunk."""
    loss: float = 0.0
    """Probability that one segment is lost (and retransmitted after ``rto_s``)."""
    rate_bps: float | None = None
    """Bandwidth cap in bits per second; None: no cap."""
    rto_s: float = 0.2
    """The retransmission timeout a lost segment costs."""

    def __post_init__(self) -> None:
        if self.delay_s < 0 or self.jitter_s < 0 or self.rto_s < 0:
            raise ValueError(f"negative delay in {self}")
        if not 0.0 <= self.loss < 1.0:
            raise ValueError(f"loss must be in [0, 1), got {self.loss}")
        if self.rate_bps is not None and self.rate_bps <= 0:
            raise ValueError(f"rate_bps must be positive, got {self.rate_bps}")

    @classmethod
    def from_rtt(cls, rtt_ms: float, *, jitter_ms: float = 0.0, loss: float = 0.0,
                 rate_mbit: float | None = None) -> LinkSpec:
        """A symmetric link's direction from its round trip, as a test describes a link."""
        return cls(delay_s=rtt_ms / 2000.0, jitter_s=jitter_ms / 1000.0, loss=loss,
                   rate_bps=None if rate_mbit is None else rate_mbit * 1e6)

    def to_json(self) -> dict[str, float | None]:
        return {"delay_s": self.delay_s, "jitter_s": self.jitter_s, "loss": self.loss,
                "rate_bps": self.rate_bps, "rto_s": self.rto_s}

    @classmethod
    def from_json(cls, doc: dict[str, float | None]) -> LinkSpec:
        rate = doc.get("rate_bps")
        return cls(delay_s=float(doc.get("delay_s") or 0.0),
                   jitter_s=float(doc.get("jitter_s") or 0.0),
                   loss=float(doc.get("loss") or 0.0),
                   rate_bps=None if rate is None else float(rate),
                   rto_s=float(doc.get("rto_s", 0.2) or 0.0))


class Wire:
    """One direction of one link: a serializer every connection on it shares."""

    def __init__(self) -> None:
        self.free_at = 0.0
        """When the last chunk handed to this wire has been put on it entirely."""

    def transmit(self, now: float, nbytes: int, rate_bps: float | None) -> float:
        """When a chunk of ``nbytes`` handed over at ``now`` has been sent."""
        if rate_bps is None:
            return now
        start = max(now, self.free_at)
        self.free_at = start + nbytes * 8.0 / rate_bps
        return self.free_at


MAX_BACKOFFS = 6
"""Retransmissions lost in a row that still double the wait; the next one gets through, so
a chunk waits at most 0.2 s * (2**7 - 1) = 25.4 s. Linux keeps doubling up to 120 s and
gives up after ``tcp_retries2`` (15); bounding it here keeps every seed's worst case finite
for a test's timeout (at 30 % loss, 6 losses in a row happen once in 1 400 chunks; a
test bed self-test once waited past its 5 s socket timeout on such a run)."""


def lost_segments_delay(nbytes: int, spec: LinkSpec, rng: random.Random) -> float:
    """The extra time a chunk waits for the retransmission of its lost segments."""
    if spec.loss <= 0.0 or nbytes <= 0:
        return 0.0
    segments = math.ceil(nbytes / MSS)
    if not any(rng.random() < spec.loss for _ in range(segments)):
        return 0.0
    extra, rto = spec.rto_s, spec.rto_s
    for _ in range(MAX_BACKOFFS):
        if rng.random() >= spec.loss:
            break
        rto *= 2  # the retransmission is lost too: the RTO doubles
        extra += rto
    return extra


class Stream:
    """One direction of one connection: keeps its bytes in order."""

    def __init__(self) -> None:
        self.last_departure = 0.0

    def departure(self, now: float, nbytes: int, spec: LinkSpec, wire: Wire,
                  rng: random.Random) -> float:
        """When the chunk of ``nbytes`` read at ``now`` is written to the far side."""
        sent = wire.transmit(now, nbytes, spec.rate_bps)
        arrive = (sent + spec.delay_s + rng.uniform(0.0, spec.jitter_s)
                  + lost_segments_delay(nbytes, spec, rng))
        self.last_departure = max(arrive, self.last_departure)
        return self.last_departure
