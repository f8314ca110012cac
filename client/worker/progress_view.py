"""Who sees what of a training run's progress [API-PROGRESS.2-3] [JOB-PROGRESS.5].

issue 47 §1: a job that wrote its weights into its progress file, a few bytes per update
(the step is an integer up to 2**53, the metric a double, the metric name 32 characters),
and then exited 1 without a claim had them served to anyone through ``GET /jobs/{id}/logs``,
``GET /status`` and ``job watch``: 1,024 of 1,024 bytes came back, about 15-25 bytes a
second per worker, and the submitter got its escrow back.

So a run's progress has two views:

- the **operator's** (``operator_json``): the last valid progress file as read
  [JOB-PROGRESS.4], every field, for the node's own operator only: a request that carries
  the node's API token, or any request to a node whose API takes writes without one
  ([API-AUTH.1]: loopback-bound, no token, so every client is already the operator);
- the **public** one (``public_json``), for everyone else: the fraction done in whole
  percent, never decreasing within the run, published at most once per ``PUBLISH_S``
  seconds (at ticks counted from the run's start, not when the job writes), and nothing
  else the job wrote: ``step``, ``metric``, ``metric_name``, ``checkpoint_step`` and
  ``resumed_from`` are withheld (``null``, ``""``), ``updated_ms`` is the tick at which the
  percent last rose.

What the public view can carry is counted, not estimated: over a run of ``N`` ticks it is a
non-decreasing sequence of ``N`` values among 102 (none yet, 0 %, ..., 100 %), one of
``C(N + 101, 101)``; ``public_bits(run_s)`` is its log2 (the channel budget of
threat_model.md [THREAT-LEAK.1]): at most log2(102) = 6.7 bits per 30 s tick (0.22 bit/s),
and at most about 101 * log2(e * (N + 101) / 101) bits per run whatever its length.

Everything here is pure: the callers pass the time (``now_ms``, wall-clock milliseconds).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from sandbox.progress import Progress

PUBLISH_S = 30
"""[API-PROGRESS.3] The public view changes at most once per this many seconds."""
PUBLISH_MS = PUBLISH_S * 1000
PERCENT_STATES = 102
"""[API-PROGRESS.3] What one tick of the public view can show: nothing yet, or 0..100 %."""
OPERATOR, PUBLIC = "operator", "public"
"""[API-PROGRESS.2] The two views, named in each answer's ``view``."""


@dataclass(frozen=True, slots=True)
class ProgressFeed:
    """One training run's progress as this node keeps it: the last valid file, and what the
    public view has published from it."""

    worker: str
    """The worker's address text."""
    attempt: int
    resumed_from: int | None
    """[WORK-RESUME.1] The checkpoint step the run resumed from (operator view only)."""
    started_ms: int
    """When the run started: the public view's ticks count from here."""
    latest: Progress | None = None
    """[JOB-PROGRESS.4] The last valid progress file, or None before the first."""
    latest_ms: int = 0
    """When ``latest`` was read."""
    tick: int = 0
    """The last tick closed: ``started_ms + tick * PUBLISH_MS`` is behind us."""
    percent: int | None = None
    """[API-PROGRESS.3] The published percent (None: nothing published yet)."""
    changed_ms: int = 0
    """The tick at which ``percent`` last rose."""


def percent_of(fraction: float) -> int:
    """[API-PROGRESS.3] Whole percent, rounded down (0.999 is 99 %, only 1.0 is 100 %)."""
    return max(0, min(100, math.floor(fraction * 100 + 1e-9)))


def advance(feed: ProgressFeed, now_ms: int) -> ProgressFeed:
    """[API-PROGRESS.3] Close the ticks up to ``now_ms``: at each, the progress in force
    (read before the tick) is published, in whole percent, when it is higher."""
    tick = max(feed.tick, (now_ms - feed.started_ms) // PUBLISH_MS)
    if tick == feed.tick:
        return feed
    if feed.latest is None:
        return replace(feed, tick=tick)
    shown = percent_of(feed.latest.fraction)
    if feed.percent is not None and shown <= feed.percent:
        return replace(feed, tick=tick)
    # ``latest`` was read before tick ``feed.tick + 1`` (each read closes the ticks before it)
    return replace(feed, tick=tick, percent=shown,
                   changed_ms=feed.started_ms + (feed.tick + 1) * PUBLISH_MS)


def observe(feed: ProgressFeed, progress: Progress, now_ms: int) -> ProgressFeed:
    """[JOB-PROGRESS.4] A valid progress file read at ``now_ms``: the ticks before it close
    with what was in force, then it is the latest."""
    return replace(advance(feed, now_ms), latest=progress, latest_ms=now_ms)


def operator_json(feed: ProgressFeed) -> dict[str, Any] | None:
    """[API-PROGRESS.2] Everything the run's last valid progress file said (None before)."""
    if feed.latest is None:
        return None
    return {"worker": feed.worker, "attempt": feed.attempt, **feed.latest.to_json(),
            "resumed_from": feed.resumed_from, "updated_ms": feed.latest_ms, "view": OPERATOR}


def public_json(feed: ProgressFeed, now_ms: int) -> dict[str, Any] | None:
    """[API-PROGRESS.3] What anyone may see at ``now_ms``: the published percent as a
    fraction, the rest withheld (None until the first tick that had progress in force)."""
    shown = advance(feed, now_ms)
    if shown.percent is None:
        return None
    return {"worker": feed.worker, "attempt": feed.attempt, "fraction": shown.percent / 100,
            "step": None, "metric": None, "metric_name": "", "checkpoint_step": None,
            "resumed_from": None, "updated_ms": shown.changed_ms, "view": PUBLIC}


def monotone_sequences(ticks: int, states: int) -> int:
    """How many non-decreasing sequences of ``ticks`` values among ``states`` there are:
    ``C(ticks + states - 1, states - 1)`` (stars and bars)."""
    return math.comb(ticks + states - 1, states - 1)


def public_bits(run_s: float) -> float:
    """[API-PROGRESS.3] [THREAT-LEAK.1] Bits the public view of one run of ``run_s`` seconds
    can carry at most: log2 of the number of non-decreasing sequences of its ticks' values
    (``updated_ms`` and when the view first appears follow from the sequence)."""
    return math.log2(monotone_sequences(int(run_s // PUBLISH_S), PERCENT_STATES))
